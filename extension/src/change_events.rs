//! The change events of `fred.coaching_sessions` (20261201000005_fred_events.sql §1), sent by a
//! trigger in Rust: the same payload, sent the same ways, as the SQL install's PL/pgSQL trigger,
//! without its three nested PL/pgSQL calls per change. `12_events.sql` and `listen.sh` hold both
//! installs to the same messages and the same NOTIFY payloads, byte for byte.
//!
//! Installed over the shared PL/pgSQL definition by `extension/upgrade/fred--0.1.0--0.2.0.final.sql`
//! (also run last by a fresh install), so the triggers keep their function.

use pgrx::datum::UnboxDatum;
use pgrx::prelude::*;
use pgrx::spi::{OwnedPreparedStatement, Spi};
use std::cell::RefCell;
use std::ffi::CStr;
use std::num::NonZeroUsize;

/// Postgres's cap on a NOTIFY payload (`NOTIFY_PAYLOAD_MAX_LENGTH`, bytes with the NUL).
const NOTIFY_PAYLOAD_MAX: usize = 8000;

const REALTIME: &str = "select fred.realtime_send($1, $2::jsonb)";

thread_local! {
    static REALTIME_PLAN: RefCell<Option<OwnedPreparedStatement>> = const { RefCell::new(None) };
}

/// The columns the triggers read. Found by name once per call, in one pass over the row's
/// descriptor: pgrx's `get_by_name` scans it again, with a UTF-8 check per column, for every read.
#[derive(Clone, Copy)]
pub(crate) struct Columns<const N: usize>([NonZeroUsize; N]);

impl<const N: usize> Columns<N> {
    pub(crate) fn find(t: &PgHeapTuple<'_, AllocatedByPostgres>, names: [&str; N]) -> Self {
        let mut found = [None; N];
        for (no, att) in t.attributes() {
            if att.attisdropped {
                continue;
            }
            // SAFETY: a NameData is NUL-terminated.
            let name = unsafe { CStr::from_ptr(att.attname.data.as_ptr()) }.to_bytes();
            if let Some(i) = names.iter().position(|n| n.as_bytes() == name) {
                found[i] = Some(no);
            }
        }
        Self(std::array::from_fn(|i| {
            found[i]
                .unwrap_or_else(|| panic!("fred: the trigger's table has no column {}", names[i]))
        }))
    }

    /// A text column (`i` indexes the names given to `find`).
    pub(crate) fn text(
        &self,
        t: &PgHeapTuple<'_, AllocatedByPostgres>,
        i: usize,
    ) -> Option<String> {
        t.get_by_index::<String>(self.0[i])
            .unwrap_or_else(|e| panic!("fred: column {}: {e}", self.0[i]))
    }

    pub(crate) fn get<'t, T>(
        &self,
        t: &'t PgHeapTuple<'_, AllocatedByPostgres>,
        i: usize,
    ) -> Option<T>
    where
        T: FromDatum + IntoDatum + UnboxDatum<As<'t> = T> + 't,
    {
        t.get_by_index::<T>(self.0[i])
            .unwrap_or_else(|e| panic!("fred: column {}: {e}", self.0[i]))
    }
}

/// The session columns a change event reads, by their index in `Columns`.
const SESSION_COLUMNS: [&str; 6] = [
    "id",
    "user_id",
    "status",
    "recording_status",
    "summary",
    "room_name",
];
const ID: usize = 0;
const USER_ID: usize = 1;
const STATUS: usize = 2;
const RECORDING_STATUS: usize = 3;
const SUMMARY: usize = 4;
const ROOM_NAME: usize = 5;

type Session = Columns<6>;

/// What changed, in the order of the payload's `changed` (`created` for a new row); None when
/// nothing watched changed (a write of the same values).
fn changed(
    c: Session,
    new: &PgHeapTuple<'_, AllocatedByPostgres>,
    old: Option<&PgHeapTuple<'_, AllocatedByPostgres>>,
) -> Vec<&'static str> {
    let Some(old) = old else {
        return vec!["created"];
    };
    let mut out = Vec::new();
    if c.get::<pgrx::Uuid>(old, USER_ID) != c.get::<pgrx::Uuid>(new, USER_ID) {
        out.push("user_id");
    }
    for (i, col) in [
        (STATUS, "status"),
        (RECORDING_STATUS, "recording_status"),
        (SUMMARY, "summary"),
    ] {
        if c.text(old, i) != c.text(new, i) {
            out.push(col);
        }
    }
    out
}

/// A JSON string or null, escaped as Postgres's `escape_json` does.
fn json(s: Option<&str>) -> String {
    s.map_or_else(
        || "null".to_owned(),
        |s| serde_json::to_string(s).expect("a string serializes"),
    )
}

/// `fred.session_event(...)::text`: jsonb's key order (by length, then bytes) and spacing.
fn payload(c: Session, new: &PgHeapTuple<'_, AllocatedByPostgres>, changed: &[&str]) -> String {
    let id = c.get::<pgrx::Uuid>(new, ID).expect("id is not null");
    let changed: Vec<String> = changed.iter().map(|c| json(Some(c))).collect();
    format!(
        r#"{{"status": {}, "changed": [{}], "room_name": {}, "session_id": "{id}", "has_summary": {}, "recording_status": {}}}"#,
        json(c.text(new, STATUS).as_deref()),
        changed.join(", "),
        json(c.text(new, ROOM_NAME).as_deref()),
        c.text(new, SUMMARY).is_some(),
        json(c.text(new, RECORDING_STATUS).as_deref()),
    )
}

/// After a session is created or one of its watched fields changes (the triggers' WHEN clauses
/// leave out writes that change nothing watched). Never fails the write.
#[pg_trigger(sql = false)]
fn coaching_sessions_events<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, PgHeapTupleError> {
    let Some(new) = trigger.new() else {
        return Ok(None);
    };
    let old = trigger.old();
    let c = Session::find(&new, SESSION_COLUMNS);
    let changed = changed(c, &new, old.as_ref());
    if changed.is_empty() {
        return Ok(None);
    }
    let payload = payload(c, &new, &changed);
    // NOTIFY fails only on a payload over the cap, checked here (fred's payloads are far below it).
    if payload.len() >= NOTIFY_PAYLOAD_MAX {
        pgrx::warning!(
            "fred: NOTIFY fred_sessions failed (22023): payload string too long; the change is stored"
        );
    } else {
        unsafe {
            pgrx::direct_function_call_as_datum(
                pg_sys::pg_notify,
                &["fred_sessions".into_datum(), payload.as_str().into_datum()],
            );
        }
    }
    // Realtime's private topic of an owned session, where Realtime is installed: fred.realtime_send
    // (shared with the SQL install) checks for realtime.send and turns its failure into a WARNING.
    if let Some(owner) = c.get::<pgrx::Uuid>(&new, USER_ID)
        && unsafe { pg_sys::get_namespace_oid(c"realtime".as_ptr(), true) } != pg_sys::InvalidOid
    {
        Spi::connect_mut(|client| {
            REALTIME_PLAN.with(|plan| {
                let mut plan = plan.borrow_mut();
                let plan = plan.get_or_insert_with(|| {
                    client
                        .prepare_mut(
                            REALTIME,
                            &[PgOid::from(pg_sys::UUIDOID), PgOid::from(pg_sys::TEXTOID)],
                        )
                        .expect("fred: prepare")
                        .keep()
                });
                client
                    .update(&*plan, None, &[owner.into(), payload.as_str().into()])
                    .expect("fred: realtime_send");
            })
        });
    }
    Ok(None)
}
