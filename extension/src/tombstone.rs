//! The ledger's tombstone (20261201000005_fred_events.sql, "Tombstones"), as a trigger in Rust:
//! an applicable event of an erased room is recorded as `ignored`, without its room name, and
//! the insert itself is skipped, so the engine sees the id as taken and creates nothing. The
//! same rule as the SQL install's PL/pgSQL trigger, which fires under the same shared `WHEN`
//! clause; `13_erasure.sql` holds both installs to the same outcome. It runs on every event
//! (eight per call), where one PL/pgSQL call with its SPI query cost more than the rest of it.
//!
//! Installed over the shared definition by `extension/upgrade/fred--0.1.0--0.2.0.final.sql`.

use crate::apply::run;
use crate::change_events::text;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::spi::Spi;

const ERASED: &str = "select 1 from fred.erased_rooms r where r.room_sid = $1";

const IGNORED: &str = "insert into fred.livekit_events (event_id, event_type, room_sid, room_name, created_at, outcome)
     values ($1, $2, $3, null, $4, 'ignored')
     on conflict (event_id) do nothing";

/// Before a ledger row that is being applied now is inserted (the trigger's `WHEN`).
#[pg_trigger(sql = false)]
fn livekit_events_tombstone<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, PgHeapTupleError> {
    let Some(new) = trigger.new() else {
        return Ok(None);
    };
    let Some(sid) = text(&new, "room_sid") else {
        return Ok(Some(new));
    };
    let erased = Spi::connect_mut(|client| {
        if run(client, ERASED, &[sid.as_str().into()]).is_empty() {
            return false;
        }
        let created: Option<TimestampWithTimeZone> = new
            .get_by_name("created_at")
            .unwrap_or_else(|e| panic!("fred: created_at: {e}"));
        run(
            client,
            IGNORED,
            &[
                text(&new, "event_id").into(),
                text(&new, "event_type").into(),
                sid.as_str().into(),
                created.into(),
            ],
        );
        true
    });
    Ok(if erased { None } else { Some(new) })
}
