//! Applying one LiveKit event to its session row, idempotently and order-independently.
//!
//! Room fields merge with commutative operations (least/greatest/set-if-null); the egress
//! fields are taken whole from the event with the highest (rank, updatedAt), so every
//! order of one call's events gives the same row.

use crate::error::Result;
use crate::event::{self, Egress, Event, Kind};
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys::{self, PgOid};
use pgrx::spi::{OwnedPreparedStatement, Spi, SpiClient, SpiTupleTable};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

thread_local! {
    /// Plans kept for the life of the backend: each statement is parsed and planned once, not
    /// on every event (Postgres's plan cache still revalidates them after DDL). Keyed by the
    /// statement's address and length: hashing its text on every call cost more than its lookup.
    /// Shared (`Rc`) so that a trigger fired by one statement can run its own (`tombstone.rs`).
    static PLANS: RefCell<HashMap<(usize, usize), Rc<OwnedPreparedStatement>>> = RefCell::new(HashMap::new());
}

/// Runs one of this module's statements through its kept plan.
pub(crate) fn run<'c>(
    client: &mut SpiClient<'c>,
    sql: &'static str,
    args: &[DatumWithOid<'_>],
) -> SpiTupleTable<'c> {
    let key = (sql.as_ptr() as usize, sql.len());
    let kept = PLANS.with(|plans| plans.borrow().get(&key).cloned());
    let plan = kept.unwrap_or_else(|| {
        let types: Vec<PgOid> = args.iter().map(|a| PgOid::from_untagged(a.oid())).collect();
        let plan = Rc::new(
            client
                .prepare_mut(sql, &types)
                .expect("fred: prepare")
                .keep(),
        );
        PLANS.with(|plans| plans.borrow_mut().insert(key, Rc::clone(&plan)));
        plan
    });
    client
        .update(&*plan, None, args)
        .expect("fred: SPI statement failed")
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
/// the owner from the room's metadata, `fin` whether the event finishes the room; `more` further
/// SET items (the egress merge, `egress_merge!`). For one event (`$2` room creation, `$3` event
/// time, `$4` owner, `$5` finished) see `room_update!`; a batch passes each room's aggregates
/// (`batch.rs`), which give the same row as its events one by one.
#[rustfmt::skip]
macro_rules! room_merge {
    (start = $start:literal, last = $last:literal, end = $end:literal, user = $user:literal, fin = $fin:literal, more = $more:expr, from = $from:literal, where = $where:literal) => {
        concat!(
            "update fred.coaching_sessions s set
       started_at    = least(s.started_at, ", $start, "),
       last_event_at = greatest(s.last_event_at, ", $last, "),
       user_id       = coalesce(", $user, ", s.user_id),
       status        = case when ", $fin, " then 'ended' else s.status end,
       ended_at      = case when not ", $fin, " then s.ended_at
                            when s.end_reason is not null then ", $end, "
                            else greatest(s.ended_at, ", $end, ") end,
       end_reason    = case when ", $fin, " then null else s.end_reason end,",
            $more,
            "
       updated_at    = now()
     ",
            $from,
            $where
        )
    };
}
pub(crate) use room_merge;

/// Whether an egress event's state replaces the row's: the row follows one egress (the first it
/// learns of; syncd records the one it starts), and the event wins on (rank, updatedAt), with
/// STARTING (0) < ACTIVE < ENDING < the four final states (3, as in the SQL install any other
/// name); no status stored yet is -1, so any event wins. `$10` egress id, `$12` the event's rank, `$13` its updatedAt.
#[rustfmt::skip]
macro_rules! egress_wins {
    () => {
        "(s.egress_id is null or $10::text is null or s.egress_id = $10)
            and ($12::int4, $13::int8) > (case when s.egress_status is null then -1
                   else coalesce(pg_catalog.array_position('{EGRESS_STARTING,EGRESS_ACTIVE,EGRESS_ENDING}'::text[], s.egress_status), 4) - 1 end,
                 coalesce(s.egress_updated_ns, 0))"
    };
}

/// The egress merge, SET items on the row as it was: when the event wins (`egress_wins!`), its
/// status (`$11`), updatedAt and recording state (`$14`; verification, ready/missing, and
/// retention, deleted, are the daemon's later word), and the file's location. `$15` the status
/// leaves a file, `$16` it is final; `$17` file name, `$18` location, `$19` `endpoint/bucket/`,
/// `$20` bucket, `$21` size, `$22` duration ms, `$23` error. The object key falls back to the
/// room name; a deleted recording keeps where it was. One multi-column assignment whose
/// sub-select computes the win once (`offset 0` keeps the planner from copying it back into
/// each column): the executor builds each expression again at every statement's start.
#[rustfmt::skip]
macro_rules! egress_merge {
    () => {
        concat!(
            "
       (egress_id, egress_status, egress_updated_ns, recording_status, recording_url, recording_bucket,
        recording_key, recording_bytes, recording_duration_ms, recording_error) = (select
          case when w.wins then coalesce(s.egress_id, $10) else s.egress_id end,
          case when w.wins then $11 else s.egress_status end,
          case when w.wins then $13 else s.egress_updated_ns end,
          case when not w.wins then s.recording_status
               when s.recording_status = 'deleted' then 'deleted'
               when s.recording_status in ('ready', 'missing') and $14 = 'uploaded' then s.recording_status
               else $14 end,
          case when not w.wins or s.recording_status = 'deleted' then s.recording_url
               when $15 then coalesce($18, $19 || coalesce($17, s.room_name)) end,
          case when not w.wins or s.recording_status = 'deleted' then s.recording_bucket else $20 end,
          case when not w.wins or s.recording_status = 'deleted' then s.recording_key
               when $15 or $16 then coalesce($17, s.room_name) else $17 end,
          case when not w.wins or s.recording_status = 'deleted' then s.recording_bytes else $21 end,
          case when not w.wins or s.recording_status = 'deleted' then s.recording_duration_ms else $22 end,
          case when w.wins then $23 else s.recording_error end
        from (select ", egress_wins!(), " as wins offset 0) w),"
        )
    };
}

/// The room merge of one event (see `room_merge!`), with `more` SET items, returning the id.
macro_rules! room_update {
    ($more:expr, $where:literal) => {
        concat!(
            room_merge!(
                start = "timestamptz 'epoch' + $2 * interval '1 microsecond', timestamptz 'epoch' + $3 * interval '1 microsecond'",
                last = "coalesce(timestamptz 'epoch' + $3 * interval '1 microsecond', now())",
                end = "coalesce(timestamptz 'epoch' + $3 * interval '1 microsecond', now())",
                user = "$4::uuid",
                fin = "$5",
                more = $more,
                from = "",
                where = $where
            ),
            "
     returning s.id::text"
        )
    };
}

/// An applicable event of a room with a sid, in one statement: the ledger insert (`$6` event id,
/// `$7` type, `$8` room name, `$9` outcome; sid and time as in the merge) and, when the ledger
/// took the id, the merge on the session of that sid. One row when the ledger took the id (none
/// for a duplicate): the merged row's id, or NULL when no session has that sid yet.
macro_rules! ledger_and_merge {
    ($more:expr) => {
        concat!(
            ledger_and_merge_ctes!($more),
            "
     select (select u.id from u) from l"
        )
    };
}

/// The CTEs of `ledger_and_merge!`: `l` the ledger insert, `u` the merge.
macro_rules! ledger_and_merge_ctes {
    ($more:expr) => {
        concat!(
            "with l as (
       insert into fred.livekit_events (event_id, event_type, room_sid, room_name, created_at, outcome)
       values ($6, $7, $1, $8, timestamptz 'epoch' + $3 * interval '1 microsecond', $9)
       on conflict (event_id) do nothing returning event_id),
     u as (",
            room_update!($more, "where s.room_sid = $1 and exists (select 1 from l)"),
            ")"
        )
    };
}

/// Which merge an event needs: the room's alone, or the room's and the egress's in one
/// statement. The egress merge gets a statement of its own after the room's when the event also
/// names an owner, so that the owner and the recording state change in two steps, each with its
/// change event, as the SQL install does.
#[derive(Clone, Copy, PartialEq)]
enum Merge {
    Room,
    RoomAndEgress,
}

const LEDGER_AND_MERGE: &str = ledger_and_merge!("");
const LEDGER_AND_MERGE_EGRESS: &str = ledger_and_merge!(egress_merge!());
const ROOM_UPDATE: &str = room_update!("", "where s.id = $1::uuid");
const ROOM_UPDATE_EGRESS: &str = room_update!(egress_merge!(), "where s.id = $1::uuid");
/// The egress merge alone, by id (`$2`–`$9` are unused).
const EGRESS_UPDATE: &str = concat!(
    "update fred.coaching_sessions s set",
    egress_merge!(),
    "
       updated_at            = now()
     where s.id = $1::uuid"
);

const BY_SID: &str =
    "select s.id::text from fred.coaching_sessions s where s.room_sid = $1 for update";

/// Under the room lock: the newest session of that name not yet bound to a room whose owner
/// does not contradict the room's metadata (`name`, `sid`, `owner`), locked (`f`); else a new
/// session (`i`), inserted with its owner and, when `merge`, with the event's room merge already
/// applied (`room_us` room creation, `ev_us` event time): `room_merge!` on a new row that the
/// event does not finish, which the differential suite holds equal. `guard`: when to look at
/// all. The insert finds nothing when a session of that sid appeared since the lookup by sid
/// (its conflict).
#[rustfmt::skip]
macro_rules! find_or_insert {
    (name = $name:literal, sid = $sid:literal, owner = $owner:literal, merge = $merge:literal,
     room_us = $room_us:literal, ev_us = $ev_us:literal, guard = $guard:literal) => {
        concat!(
            "f as (
       select s.id from fred.coaching_sessions s
        where ", $guard, " and s.room_name = ", $name, " and (s.room_sid is null or ", $sid, "::text is null)
          and (s.user_id is null or ", $owner, "::uuid is null or s.user_id = ", $owner, "::uuid)
        order by s.created_at desc limit 1 for update),
     i as (
       insert into fred.coaching_sessions (room_name, room_sid, user_id, started_at, last_event_at)
       select ", $name, ", ", $sid, ", ", $owner, "::uuid,
              case when ", $merge, " then least(timestamptz 'epoch' + ", $room_us, " * interval '1 microsecond',
                                      timestamptz 'epoch' + ", $ev_us, " * interval '1 microsecond') end,
              case when ", $merge, " then coalesce(timestamptz 'epoch' + ", $ev_us, " * interval '1 microsecond', now()) end
        where ", $guard, " and not exists (select 1 from f)
       on conflict (room_sid) do nothing returning id)"
        )
    };
}

/// `find_or_insert!` in a statement of its own (`$1` name, `$2` sid, `$3` owner, `$4` merge,
/// `$5` room creation, `$6` event time): the found id, then the inserted id.
const FIND_OR_INSERT: &str = concat!(
    "with ",
    find_or_insert!(
        name = "$1",
        sid = "$2",
        owner = "$3",
        merge = "$4",
        room_us = "$5",
        ev_us = "$6",
        guard = "true"
    ),
    "
     select (select f.id::text from f), (select i.id::text from i)"
);

/// A room's `room_started`, usually its first event, under the room lock taken before the
/// statement: the ledger insert, the merge on the session of that sid, else `find_or_insert!`
/// with the merge, all in one statement (slots as in `ledger_and_merge!`, `$10` the name to look
/// up). One row when the ledger took the id: the merged id, the found id (still to bind and
/// merge) and the inserted id, NULL where the step did not happen.
const ROOM_STARTED: &str = concat!(
    ledger_and_merge_ctes!(""),
    ",
     ",
    find_or_insert!(
        name = "$10",
        sid = "$1",
        owner = "$4",
        merge = "true",
        room_us = "$2",
        ev_us = "$3",
        guard = "exists (select 1 from l) and not exists (select 1 from u)"
    ),
    "
     select (select u.id from u), (select f.id::text from f), (select i.id::text from i) from l"
);

const BIND_SID: &str =
    "update fred.coaching_sessions s set room_sid = $2, updated_at = now() where s.id = $1::uuid";

unsafe extern "C" {
    /// Postgres's `hash_any_extended` (common/hashfn.c): pure, it never raises an error.
    fn hash_bytes_extended(k: *const u8, keylen: i32, seed: u64) -> u64;
}

/// `fred.lock_room(name)`, without a statement: the same transaction-scoped advisory lock on
/// `hashtextextended('fred.room:' || name, 0)`, which for the default (deterministic) collation is
/// `hash_bytes_extended` of the bytes (15_speed.sql proves the two take one lock).
fn lock_room(name: &str) {
    let key = format!("fred.room:{name}");
    unsafe {
        let hash = hash_bytes_extended(key.as_ptr(), key.len() as i32, 0);
        pgrx::direct_function_call_as_datum(
            pg_sys::pg_advisory_xact_lock_int8,
            &[Some(pg_sys::Datum::from(hash))],
        );
    }
}

/// `lock_room` if the lock is free now (`pg_try_advisory_xact_lock`): a caller that may already
/// hold the room's row lock must not wait for the room lock, whose holder may wait for that row.
fn try_lock_room(name: &str) -> bool {
    let key = format!("fred.room:{name}");
    unsafe {
        let hash = hash_bytes_extended(key.as_ptr(), key.len() as i32, 0);
        pgrx::direct_function_call::<bool>(
            pg_sys::pg_try_advisory_xact_lock_int8,
            &[Some(pg_sys::Datum::from(hash))],
        )
        .unwrap_or(false)
    }
}

pub fn apply(body: &Value) -> Result<&'static str> {
    let ev = event::parse(body)?;
    Ok(Spi::connect_mut(|client| apply_parsed(client, &ev)))
}

pub(crate) fn apply_parsed(client: &mut SpiClient<'_>, ev: &Event) -> &'static str {
    let outcome = if ev.ignored() { "ignored" } else { "applied" };
    let finished = ev.kind == Kind::RoomFinished;
    let merge = match (&ev.egress, &ev.room.user_id) {
        (Some(_), None) => Merge::RoomAndEgress,
        _ => Merge::Room,
    };
    // `$1`, then the room slots `$2`–`$5`, the ledger's `$6`–`$9` (NULL where a statement has
    // none) and, for a statement with the egress merge, `$10`–`$23`.
    let args = |first: &str, ledger: bool, egress: bool| -> Vec<DatumWithOid<'static>> {
        let none: Option<&str> = None;
        let mut a: Vec<DatumWithOid<'static>> = vec![
            first.into(),
            ev.room.created_us.into(),
            ev.created_us.into(),
            ev.room.user_id.as_deref().into(),
            finished.into(),
        ];
        if ledger {
            a.extend([
                ev.id.as_str().into(),
                ev.event.as_str().into(),
                ev.room_name().into(),
                outcome.into(),
            ]);
        } else {
            a.extend([none.into(), none.into(), none.into(), none.into()]);
        }
        if let (true, Some(eg)) = (egress, &ev.egress) {
            a.extend(egress_args(eg));
        }
        a
    };
    // A room_started, when the room lock is free: the whole event in one statement.
    if let (false, Some(sid), true, Merge::Room) = (
        ev.ignored(),
        ev.room_sid(),
        ev.kind == Kind::RoomStarted,
        merge,
    ) {
        let name = ev.room_name().unwrap_or(sid);
        if try_lock_room(name) {
            let mut a = args(sid, true, false);
            a.push(name.into());
            let table = run(client, ROOM_STARTED, &a);
            if table.is_empty() {
                return "duplicate";
            }
            let row = table.first();
            let updated: Option<String> = row.get(1).expect("merged");
            let found: Option<String> = row.get(2).expect("found");
            let inserted: Option<String> = row.get(3).expect("inserted");
            if updated.is_some() || inserted.is_some() {
                return "applied";
            }
            let id = match found {
                Some(id) => {
                    run(client, BIND_SID, &[id.as_str().into(), sid.into()]);
                    id
                }
                None => one_text(client, BY_SID, &[sid.into()])
                    .expect("fred: a conflicting room_sid row exists"),
            };
            let merged = run(client, ROOM_UPDATE, &args(&id, false, false));
            assert!(!merged.is_empty(), "fred: the session row exists");
            return "applied";
        }
    }
    // Usually the room's session exists: the ledger insert and the merge on the session of the
    // room sid (found and locked by the UPDATE) are one statement.
    let mut merged: Option<String> = None;
    let mut sid_looked_up = false;
    if let (false, Some(sid)) = (ev.ignored(), ev.room_sid()) {
        sid_looked_up = true;
        let (sql, eg) = match merge {
            Merge::Room => (LEDGER_AND_MERGE, false),
            Merge::RoomAndEgress => (LEDGER_AND_MERGE_EGRESS, true),
        };
        let table = run(client, sql, &args(sid, true, eg));
        if table.is_empty() {
            return "duplicate";
        }
        merged = table.first().get_one().expect("id");
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
    let id = match merged {
        Some(id) => id,
        None => {
            // A new session can be inserted with the room merge applied, unless the event
            // finishes the room (its `status` change is an event of its own) or also merges the
            // egress in the same statement.
            let merge_on_insert = !finished && merge == Merge::Room;
            let (id, merged_on_insert) = session_for(client, ev, sid_looked_up, merge_on_insert);
            if merged_on_insert {
                if ev.egress.is_some() {
                    run(client, EGRESS_UPDATE, &args(&id, false, true));
                }
                return "applied";
            }
            let (sql, eg) = match merge {
                Merge::Room => (ROOM_UPDATE, false),
                Merge::RoomAndEgress => (ROOM_UPDATE_EGRESS, true),
            };
            let found = run(client, sql, &args(&id, false, eg));
            assert!(!found.is_empty(), "fred: the session row exists");
            if merge == Merge::RoomAndEgress {
                return "applied";
            }
            id
        }
    };
    if merge == Merge::Room && ev.egress.is_some() {
        run(client, EGRESS_UPDATE, &args(&id, false, true));
    }
    "applied"
}

/// The egress merge's slots `$10`–`$23` (see `egress_merge!`).
fn egress_args(eg: &Egress) -> [DatumWithOid<'static>; 14] {
    let status = eg.status;
    let file = status.leaves_file();
    let final_state = status.rank() == 3;
    [
        eg.egress_id.clone().into(),
        status.name().into(),
        i32::from(status.rank()).into(),
        eg.updated_ns.into(),
        status.recording_status().into(),
        file.into(),
        final_state.into(),
        eg.filename.clone().into(),
        eg.location.clone().into(),
        eg.url_prefix().into(),
        eg.bucket.clone().into(),
        eg.size.filter(|_| file).into(),
        eg.duration_ns
            .filter(|_| file)
            .map(|d| d / 1_000_000)
            .into(),
        eg.error.clone().filter(|_| final_state).into(),
    ]
}

/// The session of a room instance: by `room_sid`; else the newest session of that name not yet
/// bound to a room (the app's `fred_upsert_session`) whose owner does not contradict the room's
/// metadata; else a new one. `sid_looked_up`: the caller's statement just found no session of
/// that sid, so the lookup by sid is not repeated (one that appears since is caught by the
/// insert's conflict, below). `merge_on_insert`: a new session gets the event's room merge in its
/// insert; the second value says it did (the session is new and merged).
fn session_for(
    client: &mut SpiClient<'_>,
    ev: &Event,
    sid_looked_up: bool,
    merge_on_insert: bool,
) -> (String, bool) {
    let (sid, owner) = (ev.room_sid(), ev.room.user_id.as_deref());
    if !sid_looked_up && let Some(id) = sid.and_then(|sid| one_text(client, BY_SID, &[sid.into()]))
    {
        return (id, false);
    }
    let name = ev
        .room_name()
        .or(sid)
        .expect("parse() guarantees a room sid or name");
    lock_room(name);
    let row = run(
        client,
        FIND_OR_INSERT,
        &[
            name.into(),
            sid.into(),
            owner.into(),
            merge_on_insert.into(),
            ev.room.created_us.into(),
            ev.created_us.into(),
        ],
    )
    .first();
    let found: Option<String> = row.get(1).expect("found");
    let inserted: Option<String> = row.get(2).expect("inserted");
    if let Some(id) = found {
        if sid.is_some() {
            run(client, BIND_SID, &[id.as_str().into(), sid.into()]);
        }
        return (id, false);
    }
    match inserted {
        Some(id) => (id, merge_on_insert),
        None => (
            one_text(client, BY_SID, &[sid.into()])
                .expect("fred: a conflicting room_sid row exists"),
            false,
        ),
    }
}
