//! Erasure end to end (issue 14): a call arrives as signed webhooks, its recording is in S3
//! (s3s-fs), the session is erased with `fred_delete_session`; syncd's retention job deletes the
//! object whatever the retention age, and finishes the erasure; neither the redelivered webhooks
//! nor a late event of the same room bring the session back, and none is quarantined.

mod common;
use common::s3_server::{AK, S3Server, SK};
use common::*;
use serde_json::Value;
use syncd::jobs::{Context, Job, run_body};

/// The jobs' context with s3s-fs as the bucket and, when `days` is given, a recording
/// retention age (`RECORDING_RETENTION_DAYS`); without it recordings are kept for ever.
fn retention_ctx(db: &str, s3: &str, days: Option<&str>) -> Context {
    let spool = tempfile::tempdir().unwrap();
    let mut vars = vec![
        ("RECORDING_S3_ACCESS_KEY", AK),
        ("RECORDING_S3_SECRET", SK),
        ("RECORDING_S3_ENDPOINT", s3),
        ("SYNCD_RECORD", "none"),
    ];
    if let Some(days) = days {
        vars.push(("RECORDING_RETENTION_DAYS", days));
    }
    let cfg = config(spool.path(), db, &vars);
    Context::new(
        &cfg,
        syncd::db::Db::new(db).unwrap(),
        syncd::metrics::Metrics::new(),
        unique("runner"),
    )
}

async fn count(pg: &tokio_postgres::Client, sql: &str, arg: &str) -> i64 {
    pg.query_one(sql, &[&arg]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_call_loses_its_recording_and_never_comes_back() {
    let tdb = TestDb::new().await;
    let pg = tdb.pg().await;
    let s3 = S3Server::start("voice-recordings").await;
    let d = start(&tdb.url(), &[("SYNCD_RECORD", "none")]).await;
    let tag = unique("erase");
    let sid = format!("RM_{tag}");
    let room = format!("room-{tag}");
    let events: Vec<Value> = call_events().iter().map(|e| retag(e, &tag)).collect();
    let ids: Vec<String> = events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();

    // 1. The call, as LiveKit sends it.
    for ev in &events {
        assert_eq!(post(&d.url, ev.to_string().as_bytes()).await, 200);
    }
    assert_eq!(wait_ledger(&pg, &ids, 30).await, ids.len() as i64);
    let row = pg
        .query_one(
            "select id::text, recording_bucket, recording_key, recording_status from fred.coaching_sessions where room_sid = $1",
            &[&sid],
        )
        .await
        .unwrap();
    let (id, bucket, key, status): (String, String, String, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(status, "uploaded");
    s3.put(&bucket, &key, b"the call's audio");
    let object = s3.root.path().join(&bucket).join(&key);
    assert!(object.exists());

    // 2. Erasure (service_role's or the owner's call; here the test's own trusted role).
    let erased: bool = pg
        .query_one("select public.fred_delete_session($1::text::uuid)", &[&id])
        .await
        .unwrap()
        .get(0);
    assert!(erased, "fred_delete_session erases the session");
    assert_eq!(
        count(
            &pg,
            "select count(*) from fred.coaching_sessions where room_sid = $1",
            &sid
        )
        .await,
        0,
        "the row, transcript and all, is gone at once"
    );
    assert_eq!(
        count(
            &pg,
            "select count(*) from fred.erasures where session_id = $1::text::uuid",
            &id
        )
        .await,
        1,
        "the object's location waits for retention"
    );
    assert!(
        object.exists(),
        "the object is still there until the job runs"
    );

    // 3. The retention job: the call is a week old, under the 30 days, and is deleted anyway.
    let ctx = retention_ctx(&tdb.url(), &s3.url, Some("30"));
    assert!(run_body(&ctx, Job::Retention).await.unwrap() >= 1);
    assert!(!object.exists(), "the recording object is gone from S3");
    assert_eq!(
        count(
            &pg,
            "select count(*) from fred.erasures where session_id = $1::text::uuid",
            &id
        )
        .await,
        0,
        "the erasure is finished: its bookkeeping row is gone"
    );

    // 4. The whole call redelivered, then a late event of the same room with a new id.
    for ev in &events {
        assert_eq!(post(&d.url, ev.to_string().as_bytes()).await, 200);
    }
    let mut late = events[7].clone();
    late["id"] = Value::String(format!("EV_late_{tag}"));
    assert_eq!(post(&d.url, late.to_string().as_bytes()).await, 200);
    let late_id = vec![format!("EV_late_{tag}")];
    assert_eq!(wait_ledger(&pg, &late_id, 30).await, 1);
    eventually(10, "the spool drains", || async {
        d.running.state.spool.depth().await.unwrap() == 0
    })
    .await;
    assert_eq!(
        d.running.state.spool.quarantine_depth().await.unwrap(),
        0,
        "nothing was quarantined"
    );
    for (sql, arg) in [
        (
            "select count(*) from fred.coaching_sessions where room_sid = $1",
            &sid,
        ),
        (
            "select count(*) from fred.coaching_sessions where room_name = $1",
            &room,
        ),
    ] {
        assert_eq!(count(&pg, sql, arg).await, 0, "no session came back");
    }
    let outcome: (String, Option<String>) = pg
        .query_one(
            "select outcome, room_name from fred.livekit_events where event_id = $1",
            &[&late_id[0]],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(
        outcome,
        ("ignored".to_owned(), None),
        "the late event is in the ledger as ignored, without the room name"
    );
    assert_eq!(
        run_body(&ctx, Job::Retention).await.unwrap(),
        0,
        "a second run has nothing to do"
    );
    d.running.shutdown().await;
}

/// A call's webhooks in, its recording uploaded to s3s-fs; returns (session id, object path).
async fn recorded_call(
    pg: &tokio_postgres::Client,
    s3: &S3Server,
    url: &str,
    tag: &str,
) -> (String, std::path::PathBuf) {
    let events: Vec<Value> = call_events().iter().map(|e| retag(e, tag)).collect();
    let ids: Vec<String> = events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    for ev in &events {
        assert_eq!(post(url, ev.to_string().as_bytes()).await, 200);
    }
    assert_eq!(wait_ledger(pg, &ids, 30).await, ids.len() as i64);
    let row = pg
        .query_one(
            "select id::text, recording_bucket, recording_key from fred.coaching_sessions where room_sid = $1",
            &[&format!("RM_{tag}")],
        )
        .await
        .unwrap();
    let (id, bucket, key): (String, String, String) = (row.get(0), row.get(1), row.get(2));
    s3.put(&bucket, &key, b"the call's audio");
    let object = s3.root.path().join(&bucket).join(&key);
    assert!(object.exists());
    (id, object)
}

/// With S3 configured and `RECORDING_RETENTION_DAYS` unset (recordings kept for ever), the
/// retention job still finishes erasures: the erased call's object goes, the other stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_is_finished_without_a_retention_age() {
    let tdb = TestDb::new().await;
    let pg = tdb.pg().await;
    let s3 = S3Server::start("voice-recordings").await;
    let d = start(&tdb.url(), &[("SYNCD_RECORD", "none")]).await;
    let (erased_id, erased_object) = recorded_call(&pg, &s3, &d.url, &unique("erase")).await;
    let (kept_id, kept_object) = recorded_call(&pg, &s3, &d.url, &unique("keep")).await;

    let erased: bool = pg
        .query_one(
            "select public.fred_delete_session($1::text::uuid)",
            &[&erased_id],
        )
        .await
        .unwrap()
        .get(0);
    assert!(erased);

    let ctx = retention_ctx(&tdb.url(), &s3.url, None);
    assert!(ctx.jobs.recording_retention_days.is_none());
    assert!(run_body(&ctx, Job::Retention).await.unwrap() >= 1);
    assert!(!erased_object.exists(), "the erased call's object is gone");
    assert_eq!(
        count(
            &pg,
            "select count(*) from fred.erasures where session_id = $1::text::uuid",
            &erased_id
        )
        .await,
        0,
        "the erasure is finished"
    );
    assert!(
        kept_object.exists(),
        "without a retention age, other recordings are kept"
    );
    assert_eq!(
        count(
            &pg,
            "select count(*) from fred.coaching_sessions where id = $1::text::uuid and recording_status is distinct from 'deleted'",
            &kept_id
        )
        .await,
        1,
        "the kept call's row still points at its recording"
    );
    d.running.shutdown().await;
}
