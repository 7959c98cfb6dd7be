//! A jsonb argument read in its binary form, without converting it to text or to a
//! `serde_json::Value` (pgrx's `JsonB` does both), or made into a `Value` without the text.
//!
//! The layout is PostgreSQL's (src/include/utils/jsonb.h): a container is a `u32` header (count
//! and kind) followed by one `u32` JEntry per child (arrays: the elements; objects: the keys, then
//! the values), then the children's data. A JEntry holds the child's type and either its length
//! or, every `JB_OFFSET_STRIDE`th child, its end offset. Nested containers and numerics are
//! 4-byte aligned inside the data; the padding counts as part of the child.

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::{
    callconv::{Arg, ArgAbi},
    pgrx_sql_entity_graph::metadata::{
        ArgumentError, ReturnsError, ReturnsRef, SqlMappingRef, SqlTranslatable,
    },
};

/// A detoasted jsonb datum, borrowed for the function call.
pub struct RawJsonb {
    datum: pg_sys::Datum,
}

impl RawJsonb {
    /// The varlena's payload: the top-level container.
    pub fn container(&self) -> &[u8] {
        unsafe {
            let v = self.datum.cast_mut_ptr::<pg_sys::varlena>();
            let len = varsize_any_exhdr(v);
            let data = vardata_any(v);
            std::slice::from_raw_parts(data, len)
        }
    }

    pub fn datum(&self) -> pg_sys::Datum {
        self.datum
    }
}

unsafe fn varsize_any_exhdr(v: *const pg_sys::varlena) -> usize {
    unsafe { pgrx::varlena::varsize_any_exhdr(v) }
}

unsafe fn vardata_any(v: *const pg_sys::varlena) -> *const u8 {
    unsafe { pgrx::varlena::vardata_any(v) as *const u8 }
}

impl FromDatum for RawJsonb {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _: pg_sys::Oid,
    ) -> Option<Self> {
        if is_null {
            return None;
        }
        // Detoasting may copy into the function's memory context, which outlives the call.
        let detoasted = unsafe { pg_sys::pg_detoast_datum_packed(datum.cast_mut_ptr()) };
        Some(RawJsonb {
            datum: pg_sys::Datum::from(detoasted),
        })
    }
}

unsafe impl<'fcx> ArgAbi<'fcx> for RawJsonb {
    unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
        let index = arg.index();
        unsafe {
            arg.unbox_arg_using_from_datum()
                .unwrap_or_else(|| panic!("argument {index} must not be null"))
        }
    }

    unsafe fn unbox_nullable_arg(arg: Arg<'_, 'fcx>) -> pgrx::nullable::Nullable<Self> {
        unsafe { arg.unbox_arg_using_from_datum().into() }
    }
}

unsafe impl SqlTranslatable for RawJsonb {
    const TYPE_IDENT: &'static str = pgrx::pgrx_resolved_type!(RawJsonb);
    const TYPE_ORIGIN: pgrx::pgrx_sql_entity_graph::metadata::TypeOrigin =
        pgrx::pgrx_sql_entity_graph::metadata::TypeOrigin::External;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> = Ok(SqlMappingRef::literal("jsonb"));
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> =
        Ok(ReturnsRef::One(SqlMappingRef::literal("jsonb")));
}

const JB_CMASK: u32 = 0x0FFF_FFFF;
const JB_FSCALAR: u32 = 0x1000_0000;
const JB_FOBJECT: u32 = 0x2000_0000;
const JB_FARRAY: u32 = 0x4000_0000;
const JENTRY_OFFLENMASK: u32 = 0x0FFF_FFFF;
const JENTRY_TYPEMASK: u32 = 0x7000_0000;
const JENTRY_HAS_OFF: u32 = 0x8000_0000;
const JENTRY_ISSTRING: u32 = 0x0000_0000;
const JENTRY_ISNUMERIC: u32 = 0x1000_0000;
const JENTRY_ISBOOL_FALSE: u32 = 0x2000_0000;
const JENTRY_ISBOOL_TRUE: u32 = 0x3000_0000;
const JENTRY_ISNULL: u32 = 0x4000_0000;
const JENTRY_ISCONTAINER: u32 = 0x5000_0000;

/// One child of a container.
#[derive(Clone, Copy, Debug)]
pub enum Node<'a> {
    String(&'a [u8]),
    /// The numeric varlena, header included.
    Numeric(&'a [u8]),
    Bool(bool),
    Null,
    Container(Container<'a>),
}

#[derive(Clone, Copy, Debug)]
pub struct Container<'a> {
    bytes: &'a [u8],
    header: u32,
    /// Where the children's data starts.
    base: usize,
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn int_align(n: usize) -> usize {
    (n + 3) & !3
}

impl<'a> Container<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        let header = read_u32(bytes, 0);
        let count = (header & JB_CMASK) as usize;
        let n_entries = if header & JB_FOBJECT != 0 {
            2 * count
        } else {
            count
        };
        Container {
            bytes,
            header,
            base: 4 + 4 * n_entries,
        }
    }

    fn header(&self) -> u32 {
        self.header
    }

    /// Number of elements (array) or pairs (object).
    pub fn count(&self) -> usize {
        (self.header() & JB_CMASK) as usize
    }

    pub fn is_scalar(&self) -> bool {
        self.header() & JB_FSCALAR != 0
    }

    pub fn is_array(&self) -> bool {
        self.header() & JB_FARRAY != 0
    }

    pub fn is_object(&self) -> bool {
        self.header() & JB_FOBJECT != 0
    }

    fn n_entries(&self) -> usize {
        if self.is_object() {
            2 * self.count()
        } else {
            self.count()
        }
    }

    fn entry(&self, i: usize) -> u32 {
        read_u32(self.bytes, 4 + 4 * i)
    }

    fn data_start(&self) -> usize {
        self.base
    }

    /// Start offset of child `i`, relative to the data (getJsonbOffset).
    fn offset(&self, i: usize) -> usize {
        let mut off = 0usize;
        let mut j = i;
        while j > 0 {
            j -= 1;
            let e = self.entry(j);
            off += (e & JENTRY_OFFLENMASK) as usize;
            if e & JENTRY_HAS_OFF != 0 {
                break;
            }
        }
        off
    }

    /// Child `i` given its start offset (so a sequential walk need not recompute it); returns
    /// the node and the offset of the next child.
    fn child_at(&self, i: usize, off: usize) -> (Node<'a>, usize) {
        let e = self.entry(i);
        let end = if e & JENTRY_HAS_OFF != 0 {
            (e & JENTRY_OFFLENMASK) as usize
        } else {
            off + (e & JENTRY_OFFLENMASK) as usize
        };
        let base = self.data_start();
        let node = match e & JENTRY_TYPEMASK {
            JENTRY_ISSTRING => Node::String(&self.bytes[base + off..base + end]),
            JENTRY_ISNUMERIC => Node::Numeric(&self.bytes[base + int_align(off)..base + end]),
            JENTRY_ISBOOL_FALSE => Node::Bool(false),
            JENTRY_ISBOOL_TRUE => Node::Bool(true),
            JENTRY_ISNULL => Node::Null,
            JENTRY_ISCONTAINER => Node::Container(Container::new(
                &self.bytes[base + int_align(off)..base + end],
            )),
            t => panic!("fred: unknown jsonb entry type {t:#x}"),
        };
        (node, end)
    }

    /// The children in order (elements; or keys then values).
    pub fn children(&self) -> impl Iterator<Item = Node<'a>> + '_ {
        let mut off = 0usize;
        (0..self.n_entries()).map(move |i| {
            let (node, next) = self.child_at(i, off);
            off = next;
            node
        })
    }
}

/// An object's text length, visiting each (key, value) pair on the way: one pass over the keys
/// and the values side by side.
pub fn object_text_len<'a>(
    c: Container<'a>,
    numeric_len: &dyn Fn(&[u8]) -> usize,
    mut visit: impl FnMut(&'a [u8], Node<'a>),
) -> usize {
    let n = c.count();
    let mut key_off = 0usize;
    let mut val_off = c.offset(n);
    let mut len = 2 + 2 * n + if n > 0 { 2 * (n - 1) } else { 0 };
    for i in 0..n {
        let (k, next_key) = c.child_at(i, key_off);
        let (v, next_val) = c.child_at(n + i, val_off);
        key_off = next_key;
        val_off = next_val;
        len += text_len(k, numeric_len) + text_len(v, numeric_len);
        if let Node::String(k) = k {
            visit(k, v);
        }
    }
    len
}

/// Bytes a character adds when escape_json writes it: `\b \f \n \r \t \" \\` take two,
/// other control characters six (`\u00XX`).
const EXTRA: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = 5;
        c += 1;
    }
    t[0x08] = 1;
    t[0x0c] = 1;
    t[b'\n' as usize] = 1;
    t[b'\r' as usize] = 1;
    t[b'\t' as usize] = 1;
    t[b'"' as usize] = 1;
    t[b'\\' as usize] = 1;
    t
};

/// Length in bytes of a string as `jsonb::text` writes it (escape_json: quotes, two-character
/// escapes, `\u00XX` for other control characters). A string without any such character (the
/// common case) is recognised with one vectorised pass.
fn escaped_len(s: &[u8]) -> usize {
    let mut any = 0u8;
    for &c in s {
        any |= u8::from(c < 0x20) | u8::from(c == b'"') | u8::from(c == b'\\');
    }
    if any == 0 {
        return 2 + s.len();
    }
    2 + s.len() + s.iter().map(|&c| EXTRA[c as usize] as usize).sum::<usize>()
}

/// `octet_length(j::text)` for a node, computed from the binary form (JsonbToCString without
/// indentation: ", " between siblings, ": " after keys). `numeric_len` gives a numeric's
/// `numeric_out` length.
pub fn text_len(node: Node<'_>, numeric_len: &dyn Fn(&[u8]) -> usize) -> usize {
    match node {
        Node::String(s) => escaped_len(s),
        Node::Numeric(n) => numeric_len(n),
        Node::Bool(true) => 4,
        Node::Bool(false) => 5,
        Node::Null => 4,
        Node::Container(c) => container_text_len(c, numeric_len),
    }
}

pub fn container_text_len(c: Container<'_>, numeric_len: &dyn Fn(&[u8]) -> usize) -> usize {
    let n = c.count();
    if c.is_scalar() {
        return c.children().next().map_or(0, |v| text_len(v, numeric_len));
    }
    let inner: usize = if c.is_object() {
        // keys, then values: each pair is `key: value`
        c.children()
            .map(|v| text_len(v, numeric_len))
            .sum::<usize>()
            + 2 * n
    } else {
        c.children().map(|v| text_len(v, numeric_len)).sum()
    };
    2 + inner + if n > 0 { 2 * (n - 1) } else { 0 }
}

/// `numeric_out`'s length for a numeric stored inside a jsonb (rare in transcripts).
pub fn numeric_text_len(n: &[u8]) -> usize {
    numeric_text(n).len()
}

/// `numeric_out` of a numeric stored inside a jsonb.
fn numeric_text(n: &[u8]) -> String {
    unsafe {
        // The numeric is a varlena inside the (already detoasted) jsonb; copy it so it is
        // aligned as numeric_out expects.
        let copy = pg_sys::palloc(n.len()) as *mut u8;
        std::ptr::copy_nonoverlapping(n.as_ptr(), copy, n.len());
        let out = pgrx::fcinfo::direct_function_call_as_datum(
            pg_sys::numeric_out,
            &[Some(pg_sys::Datum::from(copy))],
        )
        .expect("numeric_out returns a value");
        let s = std::ffi::CStr::from_ptr(out.cast_mut_ptr::<std::ffi::c_char>())
            .to_string_lossy()
            .into_owned();
        pg_sys::pfree(out.cast_mut_ptr());
        pg_sys::pfree(copy.cast());
        s
    }
}

/// The value as a `serde_json` tree, read from the binary form: the tree pgrx's `JsonB` builds
/// by printing the jsonb as text and parsing that text again (numbers keep `numeric_out`'s
/// digits, as `arbitrary_precision` keeps the text's). None where a string is not UTF-8 (a
/// database in another encoding), which the caller reads through the text instead.
pub fn to_value(c: Container<'_>) -> Option<serde_json::Value> {
    if c.is_scalar() {
        return c.children().next().and_then(node_value);
    }
    container_value(c)
}

fn container_value(c: Container<'_>) -> Option<serde_json::Value> {
    use serde_json::Value;
    if !c.is_object() {
        return c
            .children()
            .map(node_value)
            .collect::<Option<Vec<_>>>()
            .map(Value::Array);
    }
    let n = c.count();
    let nodes: Vec<Node<'_>> = c.children().collect();
    let mut map = serde_json::Map::new();
    for (key, value) in nodes[..n].iter().zip(&nodes[n..]) {
        let Node::String(key) = key else {
            return None;
        };
        map.insert(
            std::str::from_utf8(key).ok()?.to_owned(),
            node_value(*value)?,
        );
    }
    Some(Value::Object(map))
}

fn node_value(node: Node<'_>) -> Option<serde_json::Value> {
    use serde_json::Value;
    Some(match node {
        Node::String(s) => Value::String(std::str::from_utf8(s).ok()?.to_owned()),
        Node::Numeric(n) => Value::Number(numeric_text(n).parse().ok()?),
        Node::Bool(b) => Value::Bool(b),
        Node::Null => Value::Null,
        Node::Container(c) => container_value(c)?,
    })
}

impl RawJsonb {
    /// The value as a `serde_json` tree (`to_value`), through the text where it must be.
    pub fn value(&self) -> serde_json::Value {
        to_value(Container::new(self.container())).unwrap_or_else(|| {
            unsafe { pgrx::JsonB::from_datum(self.datum, false) }
                .expect("a jsonb datum")
                .0
        })
    }
}
