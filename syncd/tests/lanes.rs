//! Drain lanes (issue 13): the queue is partitioned by room, rooms drain in parallel, order
//! is kept within a room, and nothing is lost or applied twice, across a restart with a
//! different lane count.

mod common;
use common::*;
use serde_json::{Value, json};
use syncd::spool::room_key;

const LANES: u64 = 4;

fn joined(id: &str, room: &str) -> Value {
    json!({"event": "participant_joined", "id": id, "createdAt": "1795510802",
        "room": {"sid": format!("RM_{room}"), "name": room},
        "participant": {"sid": "PA_x", "identity": "user-x", "joinedAt": "1795510802"}})
}

fn lane_of(ev: &Value) -> u64 {
    room_key(ev["id"].as_str().unwrap(), ev.to_string().as_bytes()) as u64 % LANES
}

async fn ledger_count(pg: &tokio_postgres::Client, ids: &[String]) -> i64 {
    pg.query_one(
        "select count(*) from fred.livekit_events where event_id = any($1)",
        &[&ids],
    )
    .await
    .unwrap()
    .get(0)
}

/// An event that keeps failing on its own holds up the events queued behind it in its room
/// (order is kept), and nothing in the other lanes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_room_holds_up_only_its_own_lane() {
    let tdb = TestDb::new().await;
    let pg = tdb.pg().await;
    let tag = unique("lane");
    let stuck_room = format!("stuck-{tag}");
    let first = joined(&format!("EV_first_{tag}"), &stuck_room);
    let second = joined(&format!("EV_second_{tag}"), &stuck_room);
    let stuck_lane = lane_of(&first);
    plant_fault(&pg, first["id"].as_str().unwrap(), "P0001").await;
    let d = start(
        &tdb.url(),
        &[
            ("SYNCD_DRAIN_LANES", &LANES.to_string()),
            ("SYNCD_POISON_TRIES", "100"),
        ],
    )
    .await;
    assert_eq!(post(&d.url, first.to_string().as_bytes()).await, 200);
    assert_eq!(post(&d.url, second.to_string().as_bytes()).await, 200);

    // Rooms of every other lane, five events each.
    let mut others = Vec::new();
    let mut lanes_seen = std::collections::HashSet::new();
    for r in 0.. {
        if lanes_seen.len() as u64 == LANES - 1 && others.len() >= 60 {
            break;
        }
        let room = format!("other{r}-{tag}");
        if lane_of(&joined("x", &room)) == stuck_lane {
            continue;
        }
        for i in 0..5 {
            let ev = joined(&format!("EV_{r}_{i}_{tag}"), &room);
            lanes_seen.insert(lane_of(&ev));
            others.push(ev);
        }
    }
    for ev in &others {
        assert_eq!(post(&d.url, ev.to_string().as_bytes()).await, 200);
    }
    let other_ids: Vec<String> = others
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        wait_ledger(&pg, &other_ids, 30).await,
        other_ids.len() as i64,
        "every other lane drains while one room is stuck"
    );
    let stuck_ids = vec![
        first["id"].as_str().unwrap().to_owned(),
        second["id"].as_str().unwrap().to_owned(),
    ];
    assert_eq!(
        ledger_count(&pg, &stuck_ids).await,
        0,
        "the room's second event waits behind its first"
    );
    // Drained events leave the spool through its writer shortly after they reach the ledger.
    eventually(
        10,
        "only the stuck room's two events are left in the spool",
        || async { d.running.state.spool.depth().await.unwrap() == 2 },
    )
    .await;

    // The fault is cleared: the room drains, first before second.
    pg.execute(
        "delete from public.syncd_test_faults where event_id = $1",
        &[&stuck_ids[0]],
    )
    .await
    .unwrap();
    assert_eq!(wait_ledger(&pg, &stuck_ids, 30).await, 2);
    let in_order: bool = pg
        .query_one(
            "select (select applied_at from fred.livekit_events where event_id = $1)
                 <= (select applied_at from fred.livekit_events where event_id = $2)",
            &[&stuck_ids[0], &stuck_ids[1]],
        )
        .await
        .unwrap()
        .get(0);
    assert!(in_order, "the room's events were applied in arrival order");
    assert_eq!(d.running.state.spool.quarantine_depth().await.unwrap(), 0);
    d.running.shutdown().await;
}

/// Events spooled while Postgres is unreachable (four lanes), then drained by a daemon with
/// three lanes on the same spool: every acknowledged event lands exactly once, redeliveries
/// included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lanes_lose_and_duplicate_nothing_across_a_restart_with_another_lane_count() {
    let tdb = TestDb::new().await;
    let pg = tdb.pg().await;
    let tag = unique("relane");
    let spool = tempfile::tempdir().unwrap();
    let events: Vec<Value> = (0..300)
        .map(|i| joined(&format!("EV_{i}_{tag}"), &format!("room{}-{tag}", i % 37)))
        .collect();
    let ids: Vec<String> = events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();

    let down = config(
        spool.path(),
        &unused_db_url(),
        &[("SYNCD_DRAIN_LANES", "4"), ("SYNCD_DB_TIMEOUT", "2s")],
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = syncd::app::start(&down, listener).await.unwrap();
    let url = format!("http://{}", running.addr);
    for ev in &events {
        assert_eq!(post(&url, ev.to_string().as_bytes()).await, 200);
    }
    // Redelivered while still queued: answered, stored once.
    for ev in events.iter().take(50) {
        assert_eq!(post(&url, ev.to_string().as_bytes()).await, 200);
    }
    assert_eq!(running.state.spool.depth().await.unwrap(), 300);
    running.shutdown().await;

    let up = config(spool.path(), &tdb.url(), &[("SYNCD_DRAIN_LANES", "3")]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = syncd::app::start(&up, listener).await.unwrap();
    let url = format!("http://{}", running.addr);
    assert_eq!(wait_ledger(&pg, &ids, 60).await, ids.len() as i64);
    eventually(10, "the spool drains", || async {
        running.state.spool.depth().await.unwrap() == 0
    })
    .await;
    // Redelivered after draining: answered, never applied twice.
    for ev in events.iter().step_by(7) {
        assert_eq!(post(&url, ev.to_string().as_bytes()).await, 200);
    }
    eventually(10, "the redeliveries settle", || async {
        running.state.spool.depth().await.unwrap() == 0
    })
    .await;
    assert_eq!(ledger_count(&pg, &ids).await, ids.len() as i64, "lost = 0");
    let applied_twice: i64 = pg
        .query_one(
            "select count(*) from (select event_id from fred.livekit_events
              where event_id = any($1) group by event_id having count(*) > 1) d",
            &[&ids],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(applied_twice, 0, "duplicates = 0");
    let sessions: i64 = pg
        .query_one(
            "select count(distinct room_name) from fred.livekit_events where event_id = any($1)",
            &[&ids],
        )
        .await
        .unwrap()
        .get(0);
    assert!(sessions <= 37);
    assert_eq!(running.state.spool.quarantine_depth().await.unwrap(), 0);
    running.shutdown().await;
}
