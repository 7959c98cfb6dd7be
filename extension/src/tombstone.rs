//! The ledger's tombstone (20261201000005_fred_events.sql, "Tombstones"), as a trigger in Rust:
//! an applicable event of an erased room is recorded as `ignored`, without its room name, and
//! the insert itself is skipped, so the engine sees the id as taken and creates nothing. The
//! same rule as the SQL install's PL/pgSQL trigger, which fires under the same shared `WHEN`
//! clause; `13_erasure.sql` holds both installs to the same outcome. It runs on every event
//! (eight per call), so the lookup is one probe of `fred.erased_rooms`'s primary key, not a
//! statement: a statement's start-up cost more than the rest of the trigger.
//!
//! The table's own tombstone (a session never gets an erased room's sid) is here too, with the
//! same lookup: it runs on every new session.
//!
//! Both are installed over the shared definitions by `extension/upgrade/fred--0.1.0--0.2.0.final.sql`.

use crate::apply::run;
use crate::change_events::Columns;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::spi::Spi;

const IGNORED: &str = "insert into fred.livekit_events (event_id, event_type, room_sid, room_name, created_at, outcome)
     values ($1, $2, $3, null, $4, 'ignored')
     on conflict (event_id) do nothing";

/// Whether `fred.erased_rooms` holds `sid`, as the SQL trigger's `exists` sees it: under a
/// fresh snapshot (READ COMMITTED sees an erasure committed since the statement began), as the
/// table's owner (no row security), by the primary key's index.
fn erased(sid: &str) -> bool {
    unsafe {
        let ns = pg_sys::get_namespace_oid(c"fred".as_ptr(), false);
        let relid = pg_sys::get_relname_relid(c"erased_rooms".as_ptr(), ns);
        if relid == pg_sys::InvalidOid {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
                "fred: relation fred.erased_rooms does not exist"
            );
        }
        let attno = pg_sys::get_attnum(relid, c"room_sid".as_ptr());
        if attno <= 0 {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
                "fred: column fred.erased_rooms.room_sid does not exist"
            );
        }
        let lock = pg_sys::AccessShareLock as pg_sys::LOCKMODE;
        let rel = pg_sys::table_open(relid, lock);
        // Fills rd_pkindex (the list itself is not needed).
        pg_sys::list_free(pg_sys::RelationGetIndexList(rel));
        let pk = (*rel).rd_pkindex;
        // The column's collation, which the index sorts by (texteq needs one).
        let collation = pgrx::PgTupleDesc::from_pg_unchecked((*rel).rd_att)
            .get((attno - 1) as usize)
            .expect("fred: room_sid's attribute")
            .attcollation;
        let mut key: pg_sys::ScanKeyData = std::mem::zeroed();
        pg_sys::ScanKeyEntryInitialize(
            &mut key,
            0,
            attno,
            pg_sys::BTEqualStrategyNumber as pg_sys::StrategyNumber,
            pg_sys::InvalidOid,
            collation,
            pg_sys::Oid::from(pg_sys::F_TEXTEQ),
            sid.into_datum().expect("a text datum"),
        );
        let snapshot = pg_sys::RegisterSnapshot(pg_sys::GetTransactionSnapshot());
        let scan =
            pg_sys::systable_beginscan(rel, pk, pk != pg_sys::InvalidOid, snapshot, 1, &mut key);
        let found = !pg_sys::systable_getnext(scan).is_null();
        pg_sys::systable_endscan(scan);
        pg_sys::UnregisterSnapshot(snapshot);
        pg_sys::table_close(rel, lock);
        found
    }
}

/// The ledger columns the trigger reads, by their index in `Columns`.
const LEDGER_COLUMNS: [&str; 4] = ["room_sid", "event_id", "event_type", "created_at"];
const ROOM_SID: usize = 0;
const EVENT_ID: usize = 1;
const EVENT_TYPE: usize = 2;
const CREATED_AT: usize = 3;

/// Before a ledger row that is being applied now is inserted (the trigger's `WHEN`).
#[pg_trigger(sql = false)]
fn livekit_events_tombstone<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, PgHeapTupleError> {
    let Some(new) = trigger.new() else {
        return Ok(None);
    };
    let c = Columns::find(&new, LEDGER_COLUMNS);
    let Some(sid) = c.text(&new, ROOM_SID) else {
        return Ok(Some(new));
    };
    if !erased(&sid) {
        return Ok(Some(new));
    }
    let created: Option<TimestampWithTimeZone> = c.get(&new, CREATED_AT);
    Spi::connect_mut(|client| {
        run(
            client,
            IGNORED,
            &[
                c.text(&new, EVENT_ID).into(),
                c.text(&new, EVENT_TYPE).into(),
                sid.as_str().into(),
                created.into(),
            ],
        );
    });
    Ok(None)
}

/// Before a session gets a room sid (the shared trigger's `WHEN`: the sid is not null). Only a
/// writer racing the erasure meets it: 40001, so it retries, and the retry stops at the ledger.
#[pg_trigger(sql = false)]
fn coaching_sessions_tombstone<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, PgHeapTupleError> {
    let Some(new) = trigger.new() else {
        return Ok(None);
    };
    let c = Columns::find(&new, ["room_sid"]);
    if let Some(sid) = c.text(&new, 0)
        && erased(&sid)
    {
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_T_R_SERIALIZATION_FAILURE,
            format!("fred: room {sid} was erased"),
            "fred",
        )
        .set_hint("Retry: the event is then ignored.")
        .report(PgLogLevel::ERROR);
    }
    Ok(Some(new))
}
