//! syncd against the real local Postgres: the drainer's batch call applies the recorded call.

mod common;
use common::*;
use syncd::db::{Class, Db};
use syncd::drain::{Applied, apply_batch};
use syncd::spool::Pending;

fn pending(events: &[serde_json::Value]) -> Vec<Pending> {
    events
        .iter()
        .enumerate()
        .map(|(i, e)| Pending {
            seq: i as i64,
            key: e["id"].as_str().unwrap_or("").into(),
            body: e.to_string().into_bytes(),
            attempts: 0,
        })
        .collect()
}

#[tokio::test]
async fn batch_applies_the_recorded_call() {
    let tdb = TestDb::new().await;
    let db = Db::new(&tdb.url()).unwrap();
    db.check()
        .await
        .expect("fred is installed in the test database");
    let tag = unique("db");
    let events: Vec<_> = call_events().iter().map(|e| retag(e, &tag)).collect();
    let results = apply_batch(&db, &pending(&events)).await.unwrap();
    let outcomes: Vec<_> = results
        .iter()
        .map(|r| match r {
            Applied::Done(o) => o.as_str(),
            _ => "rejected",
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            "applied", "applied", "applied", "ignored", "applied", "applied", "applied", "applied"
        ]
    );
    let again = apply_batch(&db, &pending(&events)).await.unwrap();
    assert!(
        again
            .iter()
            .all(|r| *r == Applied::Done("duplicate".into())),
        "{again:?}"
    );

    let pg = tdb.pg().await;
    let row = outcome(&pg, &format!("RM_{tag}"))
        .await
        .expect("session row");
    assert_eq!(row["status"], "ended");
    assert_eq!(row["recording_status"], "uploaded");
    assert_eq!(
        row["recording_key"],
        format!("room-{tag}/2026-11-24T101500.ogg")
    );
    assert_eq!(row["user_id"], "7c9e6679-7425-40de-944b-e07fc1f90ae7");
}

#[tokio::test]
async fn poison_in_a_batch_is_reported_and_neighbours_land() {
    let tdb = TestDb::new().await;
    let db = Db::new(&tdb.url()).unwrap();
    let tag = unique("poison");
    let good = serde_json::json!({"event": "room_started", "id": format!("EV_{tag}_1"), "room": {"sid": format!("RM_{tag}"), "name": tag}});
    let bad = serde_json::json!({"event": "room_started", "id": format!("EV_{tag}_2"), "createdAt": "never", "room": {"sid": format!("RM_{tag}")}});
    let results = apply_batch(&db, &pending(&[good, bad])).await.unwrap();
    assert_eq!(results[0], Applied::Done("applied".into()));
    assert!(
        matches!(&results[1], Applied::Rejected { sqlstate, .. } if sqlstate == "22023"),
        "{results:?}"
    );
}

#[tokio::test]
async fn nul_bytes_fail_the_whole_batch_as_poison() {
    let tdb = TestDb::new().await;
    // jsonb refuses \u0000 while parsing the batch, before any rule runs: the drainer must split.
    let db = Db::new(&tdb.url()).unwrap();
    let body =
        br#"{"event":"room_started","id":"EV_nul","room":{"sid":"RM_nul","name":"a\u0000b"}}"#
            .to_vec();
    let err = apply_batch(
        &db,
        &[Pending {
            seq: 1,
            key: "EV_nul".into(),
            body,
            attempts: 0,
        }],
    )
    .await
    .unwrap_err();
    assert_eq!(err.class(), Class::Isolate, "{err}");
    assert!(err.is_poison(), "{err}");
    assert!(err.to_string().starts_with("SQLSTATE 22P05: "), "{err}");
}

#[tokio::test]
async fn unreachable_database_is_transient() {
    let db = Db::new("postgres://postgres@127.0.0.1:1/none").unwrap();
    let err = db.check().await.unwrap_err();
    assert_eq!(err.class(), Class::Transient, "{err}");
}
