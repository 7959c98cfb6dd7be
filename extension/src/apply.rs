//! Applying one LiveKit event to its session row, idempotently and order-independently.
//!
//! Room fields merge with commutative operations (least/greatest/set-if-null); the egress
//! fields are taken whole from the event with the highest (rank, updatedAt), so every
//! order of one call's events gives the same row.

use crate::error::Result;
use crate::event::{self, EgressStatus, Event, Kind};
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys::PgOid;
use pgrx::spi::{OwnedPreparedStatement, Spi, SpiClient, SpiTupleTable};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::HashMap;

thread_local! {
    /// Plans kept for the life of the backend: each statement is parsed and planned once, not
    /// on every event (Postgres's plan cache still revalidates them after DDL).
    static PLANS: RefCell<HashMap<&'static str, OwnedPreparedStatement>> = RefCell::new(HashMap::new());
}

/// Runs one of this module's statements through its kept plan.
pub(crate) fn run<'c>(
    client: &mut SpiClient<'c>,
    sql: &'static str,
    args: &[DatumWithOid<'_>],
) -> SpiTupleTable<'c> {
    PLANS.with(|plans| {
        let mut plans = plans.borrow_mut();
        if !plans.contains_key(sql) {
            let types: Vec<PgOid> = args.iter().map(|a| PgOid::from_untagged(a.oid())).collect();
            let plan = client
                .prepare_mut(sql, &types)
                .expect("fred: prepare")
                .keep();
            plans.insert(sql, plan);
        }
        client
            .update(&plans[sql], None, args)
            .expect("fred: SPI statement failed")
    })
}

fn one_text(
    client: &mut SpiClient<'_>,
    sql: &'static str,
    args: &[DatumWithOid<'_>],
) -> Option<String> {
    let table = run(client, sql, args);
    if table.is_empty() {
        return None;
    }
    table.first().get_one::<String>().expect("fred: SPI result")
}

const LEDGER: &str = "insert into fred.livekit_events (event_id, event_type, room_sid, room_name, created_at, outcome)
     values ($1, $2, $3, $4, timestamptz 'epoch' + $5 * interval '1 microsecond', $6)
     on conflict (event_id) do nothing returning event_id";

/// The room merge, one SET clause for every way of finding the row and for a batch. The slots
/// are SQL expressions: `start` the candidates for `started_at` (a `least` list), `last` the
/// event time for `last_event_at`, `end` the time a `room_finished` ends the session at, `user`
/// the owner from the room's metadata, `fin` whether the event finishes the room. For one event
/// (`$2` room creation, `$3` event time, `$4` owner, `$5` finished) see `room_update!`; a batch
/// passes each room's aggregates (`batch.rs`), which give the same row as its events one by one.
#[rustfmt::skip]
macro_rules! room_merge {
    (start = $start:literal, last = $last:literal, end = $end:literal, user = $user:literal, fin = $fin:literal, from = $from:literal, where = $where:literal) => {
        concat!(
            "update fred.coaching_sessions s set
       started_at    = least(s.started_at, ", $start, "),
       last_event_at = greatest(s.last_event_at, ", $last, "),
       user_id       = coalesce(", $user, ", s.user_id),
       status        = case when ", $fin, " then 'ended' else s.status end,
       ended_at      = case when not ", $fin, " then s.ended_at
                            when s.end_reason is not null then ", $end, "
                            else greatest(s.ended_at, ", $end, ") end,
       end_reason    = case when ", $fin, " then null else s.end_reason end,
       updated_at    = now()
     ",
            $from,
            $where
        )
    };
}
pub(crate) use room_merge;

/// The room merge of one event (see `room_merge!`), returning the id first, then the egress
/// state the event is merged against.
macro_rules! room_update {
    ($where:literal) => {
        concat!(
            room_merge!(
                start = "timestamptz 'epoch' + $2 * interval '1 microsecond', timestamptz 'epoch' + $3 * interval '1 microsecond'",
                last = "coalesce(timestamptz 'epoch' + $3 * interval '1 microsecond', now())",
                end = "coalesce(timestamptz 'epoch' + $3 * interval '1 microsecond', now())",
                user = "$4::uuid",
                fin = "$5",
                from = "",
                where = $where
            ),
            "
     returning s.id::text, s.room_name, s.egress_id, s.egress_status, s.egress_updated_ns, s.recording_status"
        )
    };
}

const ROOM_UPDATE: &str = room_update!("where s.id = $1::uuid");

/// An applicable event of a room with a sid, in one statement: the ledger insert (`$6` event id,
/// `$7` type, `$8` room name, `$9` outcome; sid and time as in the merge) and, when the ledger
/// took the id, the room merge on the session of that sid. Exactly one row: whether the ledger
/// took the id, then the merged row's columns, or NULLs when no session has that sid yet.
const LEDGER_AND_MERGE: &str = concat!(
    "with l as (
       insert into fred.livekit_events (event_id, event_type, room_sid, room_name, created_at, outcome)
       values ($6, $7, $1, $8, timestamptz 'epoch' + $3 * interval '1 microsecond', $9)
       on conflict (event_id) do nothing returning event_id),
     u as (",
    room_update!("where s.room_sid = $1 and exists (select 1 from l)"),
    ")
     select (select count(*) from l)::int4, u.* from (select 1) one left join u on true"
);

const EGRESS_UPDATE: &str = "update fred.coaching_sessions s set
       egress_id             = coalesce(s.egress_id, $2),
       egress_status         = $3,
       egress_updated_ns     = $4,
       recording_status      = $5,
       recording_url         = case when $12 then s.recording_url else $6 end,
       recording_bucket      = case when $12 then s.recording_bucket else $7 end,
       recording_key         = case when $12 then s.recording_key else $8 end,
       recording_bytes       = case when $12 then s.recording_bytes else $9 end,
       recording_duration_ms = case when $12 then s.recording_duration_ms else $10 end,
       recording_error       = $11,
       updated_at            = now()
     where s.id = $1::uuid";

const BY_SID: &str =
    "select s.id::text from fred.coaching_sessions s where s.room_sid = $1 for update";

const LOCK_ROOM: &str = "select fred.lock_room($1)";

const UNBOUND_BY_NAME: &str = "select s.id::text from fred.coaching_sessions s
      where s.room_name = $1 and (s.room_sid is null or $2::text is null)
        and (s.user_id is null or $3::uuid is null or s.user_id = $3::uuid)
      order by s.created_at desc limit 1 for update";

const BIND_SID: &str =
    "update fred.coaching_sessions s set room_sid = $2, updated_at = now() where s.id = $1::uuid";

const INSERT_SESSION: &str =
    "insert into fred.coaching_sessions (room_name, room_sid) values ($1, $2)
     on conflict (room_sid) do nothing returning id::text";

pub fn apply(body: &Value) -> Result<&'static str> {
    let ev = event::parse(body)?;
    Ok(Spi::connect_mut(|client| apply_parsed(client, &ev)))
}

pub(crate) fn apply_parsed(client: &mut SpiClient<'_>, ev: &Event) -> &'static str {
    let outcome = if ev.ignored() { "ignored" } else { "applied" };
    let finished = ev.kind == Kind::RoomFinished;
    // Usually the room's session exists: the ledger insert and the merge on the session of the
    // room sid (found and locked by the UPDATE) are one statement.
    let mut merged = None;
    let mut sid_looked_up = false;
    if let (false, Some(sid)) = (ev.ignored(), ev.room_sid()) {
        sid_looked_up = true;
        let row = run(
            client,
            LEDGER_AND_MERGE,
            &[
                sid.into(),
                ev.room.created_us.into(),
                ev.created_us.into(),
                ev.room.user_id.as_deref().into(),
                finished.into(),
                ev.id.as_str().into(),
                ev.event.as_str().into(),
                ev.room_name().into(),
                outcome.into(),
            ],
        )
        .first();
        let fresh: i32 = row.get(1).expect("fresh").unwrap_or(0);
        if fresh == 0 {
            return "duplicate";
        }
        let id: Option<String> = row.get(2).expect("id");
        if id.is_some() {
            merged = Some(row);
        }
    } else {
        let fresh = one_text(
            client,
            LEDGER,
            &[
                ev.id.as_str().into(),
                ev.event.as_str().into(),
                ev.room_sid().into(),
                ev.room_name().into(),
                ev.created_us.into(),
                outcome.into(),
            ],
        );
        if fresh.is_none() {
            return "duplicate";
        }
        if ev.ignored() {
            return "ignored";
        }
    }
    // The merged row's columns start after the ledger flag (LEDGER_AND_MERGE) or at 1.
    let (row, at) = match merged {
        Some(row) => (row, 2),
        None => {
            let id = session_for(
                client,
                ev.room_sid(),
                ev.room_name(),
                ev.room.user_id.as_deref(),
                sid_looked_up,
            );
            let row = merge(client, ROOM_UPDATE, &id, ev, finished)
                .expect("fred: the session row exists");
            (row, 1)
        }
    };
    let Some(eg) = &ev.egress else {
        return "applied";
    };
    let id: String = row.get(at).expect("id").expect("id is not null");
    let room_name: Option<String> = row.get(at + 1).expect("room_name");
    let cur_egress: Option<String> = row.get(at + 2).expect("egress_id");
    let cur_status: Option<String> = row.get(at + 3).expect("egress_status");
    let cur_updated: Option<i64> = row.get(at + 4).expect("egress_updated_ns");
    let cur_recording: Option<String> = row.get(at + 5).expect("recording_status");

    // A session follows one egress: the first it learns of (syncd records the one it starts).
    if let (Some(a), Some(b)) = (&cur_egress, &eg.egress_id)
        && a != b
    {
        return "applied";
    }
    let wins = match cur_status.as_deref().and_then(EgressStatus::from_name) {
        None => true,
        Some(cur) => {
            eg.status.rank() > cur.rank()
                || (eg.status.rank() == cur.rank() && eg.updated_ns > cur_updated.unwrap_or(0))
        }
    };
    if !wins {
        return "applied";
    }

    let status = eg.status;
    let final_state = status.rank() == 3;
    let mut recording = status.recording_status();
    // Verification (ready/missing) and retention (deleted) are the daemon's later word.
    match cur_recording.as_deref() {
        Some(c @ ("ready" | "missing")) if recording == "uploaded" => recording = leak(c),
        Some("deleted") => recording = "deleted",
        _ => {}
    }
    let room_name = room_name.as_deref();
    let (url, key) = if status.leaves_file() {
        (eg.url(room_name), eg.key(room_name))
    } else if final_state {
        (None, eg.key(room_name))
    } else {
        (None, eg.filename.clone())
    };
    let keep_files = recording == "deleted";
    run(
        client,
        EGRESS_UPDATE,
        &[
            id.as_str().into(),
            eg.egress_id.as_deref().into(),
            status.name().into(),
            eg.updated_ns.into(),
            recording.into(),
            url.as_deref().into(),
            eg.bucket.as_deref().into(),
            key.as_deref().into(),
            eg.size.filter(|_| status.leaves_file()).into(),
            eg.duration_ns
                .filter(|_| status.leaves_file())
                .map(|d| d / 1_000_000)
                .into(),
            eg.error.as_deref().filter(|_| final_state).into(),
            keep_files.into(),
        ],
    );
    "applied"
}

/// The room merge of `ev` on the session found by `key` (see `room_update!`); None when no
/// session matches.
fn merge<'c>(
    client: &mut SpiClient<'c>,
    sql: &'static str,
    key: &str,
    ev: &Event,
    finished: bool,
) -> Option<SpiTupleTable<'c>> {
    let table = run(
        client,
        sql,
        &[
            key.into(),
            ev.room.created_us.into(),
            ev.created_us.into(),
            ev.room.user_id.as_deref().into(),
            finished.into(),
        ],
    );
    if table.is_empty() {
        None
    } else {
        Some(table.first())
    }
}

fn leak(s: &str) -> &'static str {
    match s {
        "ready" => "ready",
        _ => "missing",
    }
}

/// The session of a room instance: by `room_sid`; else the newest session of that name not yet
/// bound to a room (the app's `fred_upsert_session`) whose owner does not contradict the room's
/// metadata; else a new one. `sid_looked_up`: the caller's statement just found no session of
/// that sid, so the lookup by sid is not repeated (one that appears since is caught by the
/// insert's conflict, below).
fn session_for(
    client: &mut SpiClient<'_>,
    sid: Option<&str>,
    name: Option<&str>,
    owner: Option<&str>,
    sid_looked_up: bool,
) -> String {
    if !sid_looked_up && let Some(id) = sid.and_then(|sid| one_text(client, BY_SID, &[sid.into()]))
    {
        return id;
    }
    let name = name.or(sid).expect("parse() guarantees a room sid or name");
    run(client, LOCK_ROOM, &[name.into()]);
    if let Some(id) = one_text(
        client,
        UNBOUND_BY_NAME,
        &[name.into(), sid.into(), owner.into()],
    ) {
        if sid.is_some() {
            run(client, BIND_SID, &[id.as_str().into(), sid.into()]);
        }
        return id;
    }
    one_text(client, INSERT_SESSION, &[name.into(), sid.into()]).unwrap_or_else(|| {
        one_text(client, BY_SID, &[sid.into()]).expect("fred: a conflicting room_sid row exists")
    })
}
