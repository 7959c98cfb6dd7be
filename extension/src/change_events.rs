//! The change events of `fred.coaching_sessions` (20261201000005_fred_events.sql §1), sent by a
//! trigger in Rust: the same payload, sent the same ways, as the SQL install's PL/pgSQL trigger,
//! without its three nested PL/pgSQL calls per change. `12_events.sql` and `listen.sh` hold both
//! installs to the same messages and the same NOTIFY payloads, byte for byte.
//!
//! Installed over the shared PL/pgSQL definition by `extension/upgrade/fred--0.1.0--0.2.0.final.sql`
//! (also run last by a fresh install), so the triggers keep their function.

use pgrx::prelude::*;
use pgrx::spi::{OwnedPreparedStatement, Spi};
use std::cell::RefCell;

/// Postgres's cap on a NOTIFY payload (`NOTIFY_PAYLOAD_MAX_LENGTH`, bytes with the NUL).
const NOTIFY_PAYLOAD_MAX: usize = 8000;

const REALTIME: &str = "select fred.realtime_send($1, $2::jsonb)";

thread_local! {
    static REALTIME_PLAN: RefCell<Option<OwnedPreparedStatement>> = const { RefCell::new(None) };
}

/// What changed, in the order of the payload's `changed` (`created` for a new row); None when
/// nothing watched changed (a write of the same values).
fn changed(
    new: &PgHeapTuple<'_, AllocatedByPostgres>,
    old: Option<&PgHeapTuple<'_, AllocatedByPostgres>>,
) -> Vec<&'static str> {
    let Some(old) = old else {
        return vec!["created"];
    };
    let mut out = Vec::new();
    if uuid(old, "user_id") != uuid(new, "user_id") {
        out.push("user_id");
    }
    for col in ["status", "recording_status", "summary"] {
        if text(old, col) != text(new, col) {
            out.push(col);
        }
    }
    out
}

fn uuid(t: &PgHeapTuple<'_, AllocatedByPostgres>, col: &str) -> Option<pgrx::Uuid> {
    t.get_by_name::<pgrx::Uuid>(col)
        .unwrap_or_else(|e| panic!("fred: {col}: {e}"))
}

/// A text column of a trigger's row (also the tombstone's, `tombstone.rs`).
pub(crate) fn text(t: &PgHeapTuple<'_, AllocatedByPostgres>, col: &str) -> Option<String> {
    t.get_by_name::<String>(col)
        .unwrap_or_else(|e| panic!("fred: {col}: {e}"))
}

/// A JSON string or null, escaped as Postgres's `escape_json` does.
fn json(s: Option<&str>) -> String {
    s.map_or_else(
        || "null".to_owned(),
        |s| serde_json::to_string(s).expect("a string serializes"),
    )
}

/// `fred.session_event(...)::text`: jsonb's key order (by length, then bytes) and spacing.
fn payload(new: &PgHeapTuple<'_, AllocatedByPostgres>, changed: &[&str]) -> String {
    let id = uuid(new, "id").expect("id is not null");
    let changed: Vec<String> = changed.iter().map(|c| json(Some(c))).collect();
    format!(
        r#"{{"status": {}, "changed": [{}], "room_name": {}, "session_id": "{id}", "has_summary": {}, "recording_status": {}}}"#,
        json(text(new, "status").as_deref()),
        changed.join(", "),
        json(text(new, "room_name").as_deref()),
        text(new, "summary").is_some(),
        json(text(new, "recording_status").as_deref()),
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
    let changed = changed(&new, old.as_ref());
    if changed.is_empty() {
        return Ok(None);
    }
    let payload = payload(&new, &changed);
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
    if let Some(owner) = uuid(&new, "user_id")
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
