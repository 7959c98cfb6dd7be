//! fred: the coaching-session rules for LiveKit voice calls, inside Postgres.
//!
//! Rust holds the engine (transcript caps and shape, LiveKit event decoding and merging);
//! the shared SQL in `sql/supabase/migrations/*_fred_core.sql` holds the tables, the public
//! API and the grants, identical to the pure-SQL install.

use pgrx::prelude::*;

mod apply;
mod batch;
mod change_events;
mod error;
mod event;
mod guc;
mod jsonb;
mod tombstone;
mod transcript;

::pgrx::pg_module_magic!(name, version);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    guc::init();
}

/// Checks a transcript given as `transcript::text`; returns its entry count.
#[pg_extern(stable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn check_transcript_text(transcript: Option<&str>) -> i32 {
    let Some(text) = transcript else {
        error::bad("transcript must not be null").raise()
    };
    let max_entries = guc::MAX_TRANSCRIPT_ENTRIES.get() as usize;
    let max_bytes = guc::MAX_TRANSCRIPT_BYTES.get() as usize;
    match transcript::check(text, max_entries, max_bytes) {
        Ok(n) => n as i32,
        Err(e) => e.raise(),
    }
}

/// Applies one verified LiveKit webhook body; returns `applied`, `ignored` or `duplicate`.
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn apply_livekit_event(event: Option<jsonb::RawJsonb>) -> &'static str {
    let Some(body) = event.map(|e| e.value()) else {
        error::bad("a LiveKit event must not be null").raise()
    };
    match apply::apply(&body) {
        Ok(outcome) => outcome,
        Err(e) => e.raise(),
    }
}

/// Applies a batch of LiveKit events and syncd's own records (`fred.apply_livekit_events`'s fast
/// path); returns each one's outcome, in order. A malformed event fails the call (22023, 22001).
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn apply_event_batch(events: Option<jsonb::RawJsonb>) -> Vec<String> {
    let Some(body) = events.map(|e| e.value()) else {
        error::bad("events must be a JSON array").raise()
    };
    match batch::apply_batch(body) {
        Ok(outcomes) => outcomes,
        Err(e) => e.raise(),
    }
}

/// Checks a transcript (caps and shape) on its binary form; returns its entry count. The byte
/// cap is `octet_length(transcript::text)`, computed without making the text.
#[pg_extern(stable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn check_transcript(transcript: Option<jsonb::RawJsonb>) -> i32 {
    let Some(t) = transcript else {
        error::bad("transcript must not be null").raise()
    };
    let max_entries = guc::MAX_TRANSCRIPT_ENTRIES.get() as usize;
    let max_bytes = guc::MAX_TRANSCRIPT_BYTES.get() as usize;
    match transcript::check_binary(
        jsonb::Container::new(t.container()),
        max_entries,
        max_bytes,
        &jsonb::numeric_text_len,
    ) {
        Ok(n) => n as i32,
        Err(e) => e.raise(),
    }
}

/// The transcript's digest kept on the row (`transcript_digest`): SHA-256 of the jsonb's binary
/// form, so an identical repeat is found without reading the stored transcript.
#[pg_extern(immutable, strict, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn transcript_digest(transcript: jsonb::RawJsonb) -> Vec<u8> {
    let bytes = transcript.container();
    // A persist hashes its transcript to find an identical repeat, then the table's trigger
    // hashes the same value again to store it. Equal bytes have the equal digest, so the second
    // time is a comparison of the bytes (a memcmp, far cheaper than SHA-256), not a second hash.
    if let Some(d) = LAST_DIGEST.with(|last| {
        let last = last.borrow();
        (last.0 == bytes).then(|| last.1.clone())
    }) {
        return d;
    }
    // sha256(bytea) reads any varlena's payload: hand it the jsonb as it is, no copy.
    let digest = unsafe {
        let out = pgrx::fcinfo::direct_function_call_as_datum(
            pg_sys::sha256_bytea,
            &[Some(transcript.datum())],
        )
        .expect("sha256 returns a value");
        let o = out.cast_mut_ptr::<pg_sys::varlena>();
        let d = std::slice::from_raw_parts(
            pgrx::varlena::vardata_any(o) as *const u8,
            pgrx::varlena::varsize_any_exhdr(o),
        )
        .to_vec();
        pg_sys::pfree(o.cast());
        d
    };
    LAST_DIGEST.with(|last| {
        let mut last = last.borrow_mut();
        last.0.clear();
        last.0.extend_from_slice(bytes);
        last.1.clone_from(&digest);
    });
    digest
}

thread_local! {
    /// The last value `transcript_digest` hashed (the jsonb's binary form) and its digest.
    static LAST_DIGEST: std::cell::RefCell<(Vec<u8>, Vec<u8>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

// The shared migrations, in their release order: 0.1.0's core, then each later release's files
// (the same files make up fred--OLD--NEW.sql; see extension/build-upgrade.sh).
extension_sql_file!(
    "../../sql/supabase/migrations/20261124000002_fred_core.sql",
    name = "core",
    requires = [
        check_transcript,
        check_transcript_text,
        transcript_digest,
        apply_livekit_event
    ]
);
extension_sql_file!(
    "../../sql/supabase/migrations/20261201000001_fred_lifecycle.sql",
    name = "v0_2_0_lifecycle",
    requires = ["core"]
);
extension_sql_file!(
    "../../sql/supabase/migrations/20261201000002_fred_security.sql",
    name = "v0_2_0_security",
    requires = ["v0_2_0_lifecycle"]
);
extension_sql_file!(
    "../../sql/supabase/migrations/20261201000005_fred_events.sql",
    name = "v0_2_0_events",
    requires = ["v0_2_0_security"]
);
extension_sql_file!(
    "../../sql/supabase/migrations/20261201000007_fred_adoption.sql",
    name = "v0_2_0_adoption",
    requires = ["v0_2_0_events"]
);
extension_sql_file!(
    "../../sql/supabase/migrations/20261201000009_fred_speed.sql",
    name = "v0_2_0_speed",
    requires = ["v0_2_0_adoption", apply_event_batch]
);
// The extension's replacements of shared PL/pgSQL definitions, last (as in the upgrade script).
extension_sql_file!(
    "../upgrade/fred--0.1.0--0.2.0.final.sql",
    name = "v0_2_0_final",
    requires = ["v0_2_0_speed"],
    finalize
);

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn sqlstate_of(sql: &str) -> String {
        let sql = sql.to_owned();
        PgTryBuilder::new(move || {
            Spi::run(&sql).expect("spi");
            "ok".to_string()
        })
        .catch_others(|e| match e {
            pg_sys::panic::CaughtError::PostgresError(r)
            | pg_sys::panic::CaughtError::ErrorReport(r) => format!("{:?}", r.sql_error_code()),
            pg_sys::panic::CaughtError::RustPanic { .. } => "panic".to_string(),
        })
        .execute()
    }

    fn entries(n: usize) -> String {
        let one = r#"{"text": "hello", "speaker": "coach"}"#;
        format!("[{}]", vec![one; n].join(","))
    }

    #[pg_test]
    fn cap_is_500_by_default() {
        let ok = format!("select fred.check_transcript('{}'::jsonb)", entries(500));
        assert_eq!(Spi::get_one::<i32>(&ok).unwrap(), Some(500));
        let over = format!("select fred.check_transcript('{}'::jsonb)", entries(501));
        assert_eq!(sqlstate_of(&over), "ERRCODE_STRING_DATA_RIGHT_TRUNCATION");
    }

    #[pg_test]
    fn guc_moves_the_cap() {
        Spi::run("set fred.max_transcript_entries = 3").unwrap();
        let over = format!("select fred.check_transcript('{}'::jsonb)", entries(4));
        assert_eq!(sqlstate_of(&over), "ERRCODE_STRING_DATA_RIGHT_TRUNCATION");
        let ok = format!("select fred.check_transcript('{}'::jsonb)", entries(3));
        assert_eq!(Spi::get_one::<i32>(&ok).unwrap(), Some(3));
    }

    #[pg_test]
    fn guc_is_superuser_only() {
        let ctx = Spi::get_one::<String>(
            "select context from pg_settings where name = 'fred.max_transcript_entries'",
        )
        .unwrap();
        assert_eq!(ctx.as_deref(), Some("superuser"));
    }

    #[pg_test]
    fn bad_shape_is_22023() {
        for t in [r#"{"a": 1}"#, r#"[{"text": "x"}]"#, r#"[1]"#] {
            let sql = format!("select fred.check_transcript('{t}'::jsonb)");
            assert_eq!(sqlstate_of(&sql), "ERRCODE_INVALID_PARAMETER_VALUE", "{t}");
        }
        assert_eq!(
            sqlstate_of("select fred.check_transcript(null)"),
            "ERRCODE_INVALID_PARAMETER_VALUE"
        );
    }

    /// The binary check answers exactly as the text check: the same count, or the same error.
    #[pg_test]
    fn binary_check_equals_text_check() {
        fn outcome(sql: String) -> String {
            PgTryBuilder::new(move || format!("{:?}", Spi::get_one::<i32>(&sql).expect("spi")))
                .catch_others(|e| match e {
                    pg_sys::panic::CaughtError::PostgresError(r)
                    | pg_sys::panic::CaughtError::ErrorReport(r) => r.message().to_string(),
                    pg_sys::panic::CaughtError::RustPanic { .. } => "panic".to_string(),
                })
                .execute()
        }
        Spi::run("set fred.max_transcript_bytes = 1024").unwrap();
        let long = format!(
            r#"{{"text": "{}", "speaker": "s"}}"#,
            "ab\\u0001\\t".repeat(60)
        );
        let cases = [
            "[]".to_string(),
            entries(40),
            entries(501),
            r#"[{"text": "a\"b\\c\n\u0002", "role": "r", "n": 1.50, "e": 1e-7, "x": [true, false, null, {}]}]"#.to_string(),
            r#"[{"text": "a", "speaker": "s"}, {"text": 1, "speaker": "s"}]"#.to_string(),
            r#"{"text": "a"}"#.to_string(),
            "3".to_string(),
            format!("[{long}]"),
            format!("[{long}, {long}]"),
        ];
        for t in cases {
            let q = t.replace('\'', "''");
            let bin = outcome(format!("select fred.check_transcript('{q}'::jsonb)"));
            let txt = outcome(format!(
                "select fred.check_transcript_text('{q}'::jsonb::text)"
            ));
            assert_eq!(bin, txt, "{t}");
        }
    }

    #[pg_test]
    fn digest_follows_the_value() {
        let d = |t: &str| {
            Spi::get_one::<Vec<u8>>(&format!("select fred.transcript_digest('{t}'::jsonb)"))
                .unwrap()
                .unwrap()
        };
        assert_eq!(
            d(r#"[{"a": 1, "b": [1, 2]}]"#),
            d(r#"[{"b": [1,2], "a": 1}]"#)
        );
        assert_ne!(
            d(r#"[{"a": 1, "b": [1, 2]}]"#),
            d(r#"[{"a": 1, "b": [1, 3]}]"#)
        );
        assert_eq!(d("[]").len(), 32);
        // The last value's digest is kept: a repeat, then another value of the same length, then
        // the first again each give their own value's digest.
        let (a, b) = (r#"[{"t": "aaaa"}]"#, r#"[{"t": "aaab"}]"#);
        let da = d(a);
        assert_eq!(d(a), da);
        assert_ne!(d(b), da);
        assert_eq!(d(a), da);
        assert_eq!(
            Spi::get_one::<Vec<u8>>(&format!(
                "select fred.transcript_digest(t) from (values ('{a}'::jsonb), ('{b}'::jsonb), ('{a}'::jsonb)) v(t) offset 2"
            ))
            .unwrap()
            .unwrap(),
            da
        );
    }

    /// The event's tree read from the jsonb binary equals the one pgrx's `JsonB` builds from the
    /// text: keys, strings with escapes, every kind of number, nesting, scalars.
    #[pg_test]
    fn binary_value_equals_text_value() {
        let texts = [
            r#"{"a": 1, "b": [true, false, null, "x\u00e9\n\"q\"", 1.50, -0, 1e3, 12345678901234567890123, -2.5e-3], "": {}, "é": {"z": [[], {}]}}"#,
            r#""a scalar""#,
            "42",
            "null",
            "[]",
            "{}",
            r#"{"k": "\ud83d\ude00", "long": "0123456789012345678901234567890123456789"}"#,
            r#"{"event":"egress_ended","id":"EV_1","egressInfo":{"egressId":"EG_1","status":"EGRESS_COMPLETE","fileResults":[{"filename":"a/b.ogg","size":"1234","duration":"5000000000"}]},"room":{"sid":"RM_1","name":"r","metadata":"{\"user_id\": \"7c9e6679-7425-40de-944b-e07fc1f90ae7\"}"}}"#,
        ];
        for text in texts {
            let c = std::ffi::CString::new(text).unwrap();
            let datum = unsafe {
                pgrx::direct_function_call_as_datum(
                    pg_sys::jsonb_in,
                    &[Some(pg_sys::Datum::from(c.as_ptr()))],
                )
            }
            .expect("jsonb_in");
            let raw = unsafe { crate::jsonb::RawJsonb::from_datum(datum, false) }.unwrap();
            let binary = crate::jsonb::to_value(crate::jsonb::Container::new(raw.container()))
                .expect("UTF-8");
            let via_text = unsafe { pgrx::JsonB::from_datum(datum, false) }.unwrap().0;
            assert_eq!(binary, via_text, "{text}");
            assert_eq!(binary.to_string(), via_text.to_string(), "{text}");
        }
    }

    #[pg_test]
    fn events_are_idempotent() {
        let ev = r#"{"event":"room_started","id":"EV_t1","createdAt":"1795510800","room":{"sid":"RM_t","name":"t","creationTime":"1795510800"}}"#;
        let q = format!("select fred.apply_livekit_event('{ev}'::jsonb)");
        assert_eq!(
            Spi::get_one::<String>(&q).unwrap().as_deref(),
            Some("applied")
        );
        assert_eq!(
            Spi::get_one::<String>(&q).unwrap().as_deref(),
            Some("duplicate")
        );
        let n = Spi::get_one::<i64>(
            "select count(*) from fred.coaching_sessions where room_sid = 'RM_t'",
        )
        .unwrap();
        assert_eq!(n, Some(1));
        assert_eq!(
            sqlstate_of("select fred.apply_livekit_event('{\"event\":\"room_started\"}'::jsonb)"),
            "ERRCODE_INVALID_PARAMETER_VALUE"
        );
    }
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
