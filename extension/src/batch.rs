//! Applying a batch of events (syncd's drain, through `fred.apply_livekit_events`) in a few
//! statements instead of one or more per event, with the same results and the same rows as
//! applying them one by one, in order:
//! - one ledger insert for the batch;
//! - one lookup that finds and locks the sessions of its rooms;
//! - one merge per round for all those rooms, with each room's events folded into aggregates
//!   (`room_merge!`: least, greatest, the last owner named).
//!
//! A round holds at most one event per room that changes a watched field (owner, status), so a
//! session emits the same change events as one by one. Rooms that need more than the merge (an
//! egress event, no session yet) and batches with syncd's own events or a room named only by
//! name are applied one event at a time, in order (`apply::apply_parsed`).

use crate::apply::{apply_parsed, room_merge, run};
use crate::error::{Result, bad};
use crate::event::{self, Event, Kind};
use pgrx::pg_sys;
use pgrx::spi::{Spi, SpiClient};
use serde_json::Value;
use std::collections::{HashMap, HashSet};

/// Microseconds from the Unix epoch to Postgres's (2000-01-01).
const PG_EPOCH_US: i64 = 946_684_800_000_000;

const SYNCD: &str = "select fred.apply_syncd_event($1)";

const SESSIONS_BY_SID: &str = "select s.room_sid, s.id::text, s.user_id::text, s.status
       from fred.coaching_sessions s
      where s.room_sid = any($1)
      order by s.id
        for update";

const LEDGER_MANY: &str = "insert into fred.livekit_events (event_id, event_type, room_sid, room_name, created_at, outcome)
     select u.id, u.t, u.sid, u.name, timestamptz 'epoch' + u.us * interval '1 microsecond', u.outcome
       from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::text[]) u(id, t, sid, name, us, outcome)
     on conflict (event_id) do nothing returning event_id";

const MERGE_MANY: &str = room_merge!(
    start = "timestamptz 'epoch' + r.start_lo * interval '1 microsecond'",
    last = "timestamptz 'epoch' + r.last_hi * interval '1 microsecond'",
    end = "timestamptz 'epoch' + r.end_hi * interval '1 microsecond'",
    user = "r.user_id::uuid",
    fin = "r.fin",
    more = "",
    from = "from unnest($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::text[], $6::bool[])
            r(id, start_lo, last_hi, end_hi, user_id, fin)
     ",
    where = "where s.id = r.id::uuid"
);

enum Item {
    Syncd(Value),
    Livekit(Box<Event>),
}

/// Applies `events` (a JSON array); returns each event's outcome, in order. A malformed event
/// fails the whole call with its SQLSTATE (the caller then applies the batch one by one).
pub fn apply_batch(events: Value) -> Result<Vec<String>> {
    let Value::Array(list) = events else {
        return Err(bad("events must be a JSON array"));
    };
    let mut items = Vec::with_capacity(list.len());
    for v in list {
        // As fred.apply_one_event: `event ->> 'event' like 'syncd\_%'`.
        if v.get("event")
            .and_then(Value::as_str)
            .is_some_and(|t| t.starts_with("syncd_"))
        {
            items.push(Item::Syncd(v));
        } else {
            items.push(Item::Livekit(Box::new(event::parse(&v)?)));
        }
    }
    let grouped: Option<Vec<&Event>> = items
        .iter()
        .map(|it| match it {
            Item::Livekit(ev) if ev.ignored() || ev.room_sid().is_some() => Some(&**ev),
            _ => None,
        })
        .collect();
    Ok(Spi::connect_mut(|client| match grouped {
        Some(evs) => by_room(client, &evs),
        None => items
            .iter()
            .map(|it| match it {
                Item::Syncd(v) => syncd(client, v),
                Item::Livekit(ev) => apply_parsed(client, ev).to_owned(),
            })
            .collect(),
    }))
}

fn syncd(client: &mut SpiClient<'_>, v: &Value) -> String {
    run(client, SYNCD, &[pgrx::JsonB(v.clone()).into()])
        .first()
        .get_one::<String>()
        .expect("fred: SPI result")
        .expect("fred.apply_syncd_event returns a result")
}

/// One room's events in a round, folded: the merge of the aggregates is the merge of the events.
#[derive(Default)]
struct Fold {
    /// The least of the events' room creation and event times.
    start_lo: Option<i64>,
    /// The greatest event time (now() for an event without one).
    last_hi: i64,
    /// The greatest time of a `room_finished` (now() without one).
    end_hi: Option<i64>,
    /// The last owner named.
    user: Option<String>,
    fin: bool,
    /// Whether an event of this round changes a watched field.
    changes: bool,
}

/// A room's events in the batch; `session` is its id, owner and status.
struct Room {
    events: Vec<usize>,
    one_by_one: bool,
    session: Option<(String, Option<String>, String)>,
}

fn by_room(client: &mut SpiClient<'_>, evs: &[&Event]) -> Vec<String> {
    let mut out: Vec<Option<&'static str>> = vec![None; evs.len()];
    // A later copy of an id is a duplicate whatever the first does: that puts the id in the ledger.
    let mut seen = HashSet::with_capacity(evs.len());
    let mut ignored = Vec::new();
    let mut rooms: Vec<Room> = Vec::new();
    let mut room_of: HashMap<&str, usize> = HashMap::new();
    for (i, ev) in evs.iter().enumerate() {
        if !seen.insert(ev.id.as_str()) {
            out[i] = Some("duplicate");
            continue;
        }
        if ev.ignored() {
            ignored.push(i);
            continue;
        }
        let sid = ev.room_sid().expect("grouped batches name each room's sid");
        let r = *room_of.entry(sid).or_insert_with(|| {
            rooms.push(Room {
                events: Vec::new(),
                one_by_one: false,
                session: None,
            });
            rooms.len() - 1
        });
        rooms[r].events.push(i);
        rooms[r].one_by_one |= ev.egress.is_some();
    }

    // The sessions of the rooms the merge alone applies to, locked (in id order).
    let sids: Vec<String> = room_of
        .iter()
        .filter(|(_, r)| !rooms[**r].one_by_one)
        .map(|(sid, _)| (*sid).to_owned())
        .collect();
    if !sids.is_empty() {
        for row in run(client, SESSIONS_BY_SID, &[sids.into()]) {
            let sid: String = row.get(1).expect("sid").expect("sid is not null");
            let id: String = row.get(2).expect("id").expect("id is not null");
            let user: Option<String> = row.get(3).expect("user_id");
            let status: String = row.get(4).expect("status").expect("status is not null");
            rooms[room_of[sid.as_str()]].session = Some((id, user, status));
        }
    }
    for room in &mut rooms {
        room.one_by_one |= room.session.is_none();
    }

    // One ledger insert: the ignored events and the merged rooms' events.
    let led: Vec<usize> = ignored
        .iter()
        .copied()
        .chain(
            rooms
                .iter()
                .filter(|r| !r.one_by_one)
                .flat_map(|r| r.events.iter().copied()),
        )
        .collect();
    let mut fresh = HashSet::new();
    if !led.is_empty() {
        let col = |f: &dyn Fn(&Event) -> Option<String>| -> Vec<Option<String>> {
            led.iter().map(|&i| f(evs[i])).collect()
        };
        let table = run(
            client,
            LEDGER_MANY,
            &[
                col(&|e| Some(e.id.clone())).into(),
                col(&|e| Some(e.event.clone())).into(),
                col(&|e| e.room_sid().map(str::to_owned)).into(),
                col(&|e| e.room_name().map(str::to_owned)).into(),
                led.iter()
                    .map(|&i| evs[i].created_us)
                    .collect::<Vec<Option<i64>>>()
                    .into(),
                col(&|e| Some(if e.ignored() { "ignored" } else { "applied" }.to_owned())).into(),
            ],
        );
        for row in table {
            let id: String = row.get(1).expect("event_id").expect("not null");
            fresh.insert(id);
        }
    }
    for &i in &ignored {
        out[i] = Some(if fresh.contains(&evs[i].id) {
            "ignored"
        } else {
            "duplicate"
        });
    }

    // Each merged room's fresh events, folded into rounds.
    let now_us = unsafe { pg_sys::GetCurrentTransactionStartTimestamp() } + PG_EPOCH_US;
    let mut rounds: Vec<Vec<(&str, Fold)>> = Vec::new();
    for room in rooms.iter().filter(|r| !r.one_by_one) {
        let (id, user0, status0) = room.session.as_ref().expect("merged rooms have a session");
        let (mut user, mut ended) = (user0.clone(), status0 == "ended");
        let mut folds: Vec<Fold> = Vec::new();
        for &i in &room.events {
            let ev = evs[i];
            if !fresh.contains(&ev.id) {
                out[i] = Some("duplicate");
                continue;
            }
            out[i] = Some("applied");
            let fin = ev.kind == Kind::RoomFinished;
            let next_user = ev.room.user_id.clone().or_else(|| user.clone());
            let changes = next_user != user || (fin && !ended);
            if folds.last().is_none_or(|f| changes && f.changes) {
                folds.push(Fold {
                    last_hi: i64::MIN,
                    ..Fold::default()
                });
            }
            let f = folds.last_mut().expect("a fold");
            let t = ev.created_us.unwrap_or(now_us);
            f.changes |= changes;
            f.start_lo = [f.start_lo, ev.room.created_us, ev.created_us]
                .into_iter()
                .flatten()
                .min();
            f.last_hi = f.last_hi.max(t);
            if fin {
                f.fin = true;
                f.end_hi = Some(f.end_hi.map_or(t, |e| e.max(t)));
            }
            if ev.room.user_id.is_some() {
                f.user.clone_from(&ev.room.user_id);
            }
            user = next_user;
            ended |= fin;
        }
        for (k, f) in folds.into_iter().enumerate() {
            if rounds.len() <= k {
                rounds.push(Vec::new());
            }
            rounds[k].push((id.as_str(), f));
        }
    }
    for round in rounds {
        run(
            client,
            MERGE_MANY,
            &[
                round
                    .iter()
                    .map(|(id, _)| (*id).to_owned())
                    .collect::<Vec<String>>()
                    .into(),
                round
                    .iter()
                    .map(|(_, f)| f.start_lo)
                    .collect::<Vec<_>>()
                    .into(),
                round
                    .iter()
                    .map(|(_, f)| f.last_hi)
                    .collect::<Vec<_>>()
                    .into(),
                round
                    .iter()
                    .map(|(_, f)| f.end_hi)
                    .collect::<Vec<_>>()
                    .into(),
                round
                    .iter()
                    .map(|(_, f)| f.user.clone())
                    .collect::<Vec<_>>()
                    .into(),
                round.iter().map(|(_, f)| f.fin).collect::<Vec<_>>().into(),
            ],
        );
    }

    // The rest, one event at a time, in order.
    let mut rest: Vec<usize> = rooms
        .iter()
        .filter(|r| r.one_by_one)
        .flat_map(|r| r.events.iter().copied())
        .collect();
    rest.sort_unstable();
    for i in rest {
        out[i] = Some(apply_parsed(client, evs[i]));
    }
    out.into_iter()
        .map(|o| o.expect("every event has an outcome").to_owned())
        .collect()
}
