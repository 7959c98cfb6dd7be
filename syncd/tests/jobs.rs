//! Scheduled jobs against the real Postgres, the Egress fake and s3s-fs.

mod common;
use common::fake_egress::{Fake, Mode};
use common::s3_server::{AK, S3Server, SK};
use common::*;
use serde_json::{Value, json};
use syncd::jobs::{Context, Job, run_body};

async fn apply(pg: &tokio_postgres::Client, ev: Value) {
    let r: String = pg
        .query_one("select fred.apply_livekit_event($1::jsonb)", &[&ev])
        .await
        .unwrap()
        .get(0);
    assert_eq!(r, "applied", "{ev}");
}

fn ctx(tdb: &TestDb, fake: &str, s3: &str, extra: &[(&str, &str)]) -> Context {
    let spool = tempfile::tempdir().unwrap();
    let mut env = vec![
        ("LIVEKIT_URL", fake),
        ("RECORDING_S3_ACCESS_KEY", AK),
        ("RECORDING_S3_SECRET", SK),
        ("RECORDING_S3_ENDPOINT", s3),
    ];
    env.extend_from_slice(extra);
    let cfg = config(spool.path(), &tdb.url(), &env);
    Context::new(
        &cfg,
        syncd::db::Db::new(&tdb.url()).unwrap(),
        syncd::metrics::Metrics::new(),
        unique("runner"),
    )
}

async fn row(pg: &tokio_postgres::Client, sid: &str) -> Value {
    outcome(pg, sid).await.expect("session row")
}

fn item(egress: &str, sid: &str, room: &str, status: &str, key: &str, s3: &str) -> Value {
    json!({"egress_id": egress, "room_id": sid, "room_name": room, "status": status, "updated_at": (now() * 1_000_000_000).to_string(),
           "error": "", "error_code": 0, "source_type": "EGRESS_SOURCE_TYPE_SDK",
           "room_composite": {"room_name": room, "audio_only": true, "file_outputs": [{"file_type": "OGG", "filepath": "{room_name}/{time}.ogg",
              "s3": {"endpoint": s3, "bucket": "voice-recordings", "force_path_style": true}}]},
           "file_results": [{"filename": key, "size": "5", "duration": "1000000000", "location": ""}]})
}

/// A call that started an hour ago and whose egress was last heard of then.
async fn stuck_call(
    pg: &tokio_postgres::Client,
    sid: &str,
    room: &str,
    egress: &str,
    status: &str,
) {
    let t = (now() - 3600).to_string();
    apply(pg, json!({"event": "room_started", "id": format!("EV_{sid}_rs"), "createdAt": t, "room": {"sid": sid, "name": room}})).await;
    apply(pg, json!({"event": "egress_updated", "id": format!("EV_{sid}_eg"), "createdAt": t, "room": {"sid": sid, "name": room},
                     "egressInfo": {"egressId": egress, "status": status, "updatedAt": "1"}}))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_heals_a_missed_egress_ended() {
    let tdb = TestDb::new().await;
    let pg = tdb.pg().await;
    let s3 = S3Server::start("voice-recordings").await;
    let fake = Fake::start(KEY, SECRET, Mode::Ok("unused".into())).await;
    let sid = unique("RM_heal");
    let room = format!("room-{sid}");
    let key = format!("{room}/a.ogg");
    stuck_call(&pg, &sid, &room, &format!("EG_{sid}"), "EGRESS_ACTIVE").await;
    fake.add_egress(item(
        &format!("EG_{sid}"),
        &sid,
        &room,
        "EGRESS_COMPLETE",
        &key,
        &s3.url,
    ));
    s3.put("voice-recordings", &key, b"12345");
    let ctx = ctx(&tdb, &fake.url, &s3.url, &[]);
    assert!(
        run_body(&ctx, Job::Reconcile).await.unwrap() >= 2,
        "applied and verified"
    );
    let r = row(&pg, &sid).await;
    assert_eq!(r["recording_status"], "ready", "{r}");
    assert_eq!(r["egress_status"], "EGRESS_COMPLETE");
    assert_eq!(r["recording_key"], key);
    assert_eq!(
        r["recording_url"],
        format!("{}/voice-recordings/{key}", s3.url)
    );
    assert_eq!(r["recording_bytes"], 5);
    // A second run finds nothing more to do for this call.
    let before = row(&pg, &sid).await;
    run_body(&ctx, Job::Reconcile).await.unwrap();
    assert_eq!(row(&pg, &sid).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_marks_unknown_egress_lost_and_stops_extras() {
    let tdb = TestDb::new().await;
    let pg = tdb.pg().await;
    let fake = Fake::start(KEY, SECRET, Mode::Ok("unused".into())).await;
    let lost = unique("RM_lost");
    stuck_call(
        &pg,
        &lost,
        &format!("room-{lost}"),
        &format!("EG_{lost}"),
        "EGRESS_ACTIVE",
    )
    .await;
    let two = unique("RM_two");
    let room = format!("room-{two}");
    stuck_call(&pg, &two, &room, &format!("EG_{two}_keep"), "EGRESS_ACTIVE").await;
    fake.add_egress(item(
        &format!("EG_{two}_keep"),
        &two,
        &room,
        "EGRESS_ACTIVE",
        "k",
        "http://s3",
    ));
    fake.add_egress(item(
        &format!("EG_{two}_extra"),
        &two,
        &room,
        "EGRESS_ACTIVE",
        "k2",
        "http://s3",
    ));
    let ctx = ctx(&tdb, &fake.url, "http://127.0.0.1:9", &[]);
    run_body(&ctx, Job::Reconcile).await.unwrap();
    let r = row(&pg, &lost).await;
    assert_eq!(r["recording_status"], "lost");
    assert!(
        r["recording_error"]
            .as_str()
            .unwrap()
            .contains("egress does not exist"),
        "{r}"
    );
    let stops: Vec<String> = fake
        .requests("StopEgress")
        .iter()
        .map(|s| s.body["egress_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        stops,
        vec![format!("EG_{two}_extra")],
        "only the extra egress is stopped"
    );
    assert_eq!(row(&pg, &two).await["egress_id"], format!("EG_{two}_keep"));
}

#[tokio::test]
async fn stale_sessions_are_closed_at_their_last_activity() {
    let tdb = TestDb::new().await;
    let pg = tdb.pg().await;
    let old = unique("RM_stale");
    let fresh = unique("RM_fresh");
    let t_old = now() - 7 * 3600;
    apply(&pg, json!({"event": "participant_joined", "id": format!("EV_{old}"), "createdAt": t_old.to_string(),
                      "room": {"sid": old, "name": old}, "participant": {"identity": "u"}}))
    .await;
    apply(&pg, json!({"event": "participant_joined", "id": format!("EV_{fresh}"), "createdAt": now().to_string(),
                      "room": {"sid": fresh, "name": fresh}, "participant": {"identity": "u"}}))
    .await;
    let ctx = ctx(&tdb, "http://127.0.0.1:9", "http://127.0.0.1:9", &[]);
    assert!(run_body(&ctx, Job::Stale).await.unwrap() >= 1);
    let q = "select status, end_reason, extract(epoch from ended_at)::bigint from fred.coaching_sessions where room_sid = $1";
    let r = pg.query_one(q, &[&old]).await.unwrap();
    assert_eq!(
        (
            r.get::<_, String>(0),
            r.get::<_, Option<String>>(1),
            r.get::<_, Option<i64>>(2)
        ),
        ("ended".into(), Some("stale".into()), Some(t_old))
    );
    let r = pg.query_one(q, &[&fresh]).await.unwrap();
    assert_eq!(
        r.get::<_, String>(0),
        "active",
        "a recent session stays open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_objects_then_rows_and_is_idempotent() {
    let tdb = TestDb::new().await;
    let pg = tdb.pg().await;
    let s3 = S3Server::start("voice-recordings").await;
    let tag = unique("ret");
    let key = format!("{tag}/old.ogg");
    s3.put("voice-recordings", &key, b"old audio");
    let id: String = pg
        .query_one(
            "insert into fred.coaching_sessions (room_name, room_sid, status, started_at, ended_at, recording_status, recording_bucket,
               recording_key, recording_url, recording_bytes, transcript_json, transcript_entries, summary, decisions)
             values ($1, $1, 'ended', now() - interval '41 days', now() - interval '40 days', 'ready', 'voice-recordings', $2,
               'https://x/' || $2, 9, '[{\"text\": \"hi\", \"speaker\": \"u\"}]', 1, 'old call', '[\"d\"]')
             returning id::text",
            &[&tag, &key],
        )
        .await
        .unwrap()
        .get(0);
    let keep = unique("keep");
    s3.put("voice-recordings", &format!("{keep}/new.ogg"), b"new audio");
    pg.execute(
        "insert into fred.coaching_sessions (room_name, room_sid, status, ended_at, recording_status, recording_bucket, recording_key, summary)
         values ($1, $1, 'ended', now() - interval '2 days', 'ready', 'voice-recordings', $1 || '/new.ogg', 'recent')",
        &[&keep],
    )
    .await
    .unwrap();
    let ctx = ctx(
        &tdb,
        "http://127.0.0.1:9",
        &s3.url,
        &[
            ("RECORDING_RETENTION_DAYS", "30"),
            ("TRANSCRIPT_RETENTION_DAYS", "30"),
        ],
    );
    assert!(run_body(&ctx, Job::Retention).await.unwrap() >= 2);
    assert!(
        !s3.root.path().join("voice-recordings").join(&key).exists(),
        "the old object is deleted from S3"
    );
    assert!(
        s3.root
            .path()
            .join("voice-recordings")
            .join(format!("{keep}/new.ogg"))
            .exists(),
        "a recent object stays"
    );
    let r = pg
        .query_one(
            "select recording_status, recording_key, recording_url, recording_bytes, transcript_json, transcript_entries, summary, decisions
               from fred.coaching_sessions where id = $1::text::uuid",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(r.get::<_, Option<String>>(0).as_deref(), Some("deleted"));
    assert!(
        r.get::<_, Option<String>>(1).is_none()
            && r.get::<_, Option<String>>(2).is_none()
            && r.get::<_, Option<i64>>(3).is_none()
    );
    assert!(
        r.get::<_, Option<Value>>(4).is_none()
            && r.get::<_, i32>(5) == 0
            && r.get::<_, Option<String>>(6).is_none()
            && r.get::<_, Option<Value>>(7).is_none()
    );
    let recent: Option<String> = pg
        .query_one(
            "select summary from fred.coaching_sessions where room_sid = $1",
            &[&keep],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(recent.as_deref(), Some("recent"));
    // Again: nothing left to do.
    let snapshot = row(&pg, &tag).await;
    assert_eq!(
        run_body(&ctx, Job::Retention).await.unwrap(),
        0,
        "a second run changes nothing"
    );
    assert_eq!(row(&pg, &tag).await, snapshot);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_run_each_tick_once() {
    let tdb = TestDb::new().await;
    let pg = tdb.pg().await;
    let extra = [("SYNCD_STALE_CRON", "* * * * * *")];
    let a = start(&tdb.url(), &extra).await;
    let b = start(&tdb.url(), &extra).await;
    // The scheduler follows the wall clock (cron over chrono's Utc::now), so tokio's paused
    // clock cannot drive it: wait for three finished ticks in this test's own database instead.
    let finished =
        "select count(*) from fred.job_runs where job = 'stale' and finished_at is not null";
    let pg2 = &pg;
    eventually(30, "three stale ticks finished", || async move {
        pg2.query_one(finished, &[]).await.unwrap().get::<_, i64>(0) >= 3
    })
    .await;
    let (ma_m, mb_m) = (
        a.running.state.metrics.clone(),
        b.running.state.metrics.clone(),
    );
    a.running.shutdown().await;
    b.running.shutdown().await;
    let runs: i64 = pg.query_one(finished, &[]).await.unwrap().get(0);
    let claimed: i64 = pg
        .query_one(
            "select count(*) from fred.job_runs where job = 'stale'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(claimed, runs, "every claimed tick was finished by shutdown");
    let metric = |m: &std::sync::Arc<syncd::metrics::Metrics>| {
        let text = m.render();
        text.lines()
            .find(|l| l.starts_with("syncd_job_runs_total{job=\"stale\"}"))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<i64>().unwrap())
            .unwrap_or(0)
    };
    let (ma, mb) = (metric(&ma_m), metric(&mb_m));
    assert!(runs >= 3, "about one run per second: {runs}");
    assert_eq!(
        ma + mb,
        runs,
        "each tick ran once across both replicas (a={ma}, b={mb}, ticks={runs})"
    );
}

#[tokio::test]
async fn a_dead_runner_does_not_block_the_next_tick() {
    let tdb = TestDb::new().await;
    let pg = tdb.pg().await;
    let claim = "select fred.claim_job_tick('reconcile', $1::text::timestamptz, $2)";
    // Ticks of our own, far from any real schedule.
    let tick1 = format!("2031-01-01T00:00:{:02}.{}Z", now() % 60, std::process::id());
    let won: bool = pg
        .query_one(claim, &[&tick1, &"dead-runner"])
        .await
        .unwrap()
        .get(0);
    let again: bool = pg
        .query_one(claim, &[&tick1, &"live-runner"])
        .await
        .unwrap()
        .get(0);
    let tick2 = format!("2031-01-02T00:00:{:02}.{}Z", now() % 60, std::process::id());
    let next: bool = pg
        .query_one(claim, &[&tick2, &"live-runner"])
        .await
        .unwrap()
        .get(0);
    assert!(
        won && !again && next,
        "one runner per tick; an unfinished tick blocks only itself"
    );
}

#[test]
fn bad_schedules_stop_start_up_naming_the_variable() {
    for (var, value) in [
        ("SYNCD_STALE_CRON", "every minute"),
        ("SYNCD_RECONCILE_AFTER", "soon"),
        ("SYNCD_RETENTION_CRON", "0 0 0 31 2 * 1999 x"),
    ] {
        let out = syncd_command(&["check"], &unused_db_url())
            .env(var, value)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}={value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(var), "{var}: {err}");
    }
}

#[tokio::test]
async fn run_job_runs_one_job_once_and_exits() {
    let tdb = TestDb::new().await;
    let pg = tdb.pg().await;
    let sid = unique("RM_cli");
    apply(
        &pg,
        json!({"event": "participant_joined", "id": format!("EV_{sid}"), "createdAt": (now() - 8 * 3600).to_string(),
               "room": {"sid": sid, "name": sid}, "participant": {"identity": "u"}}),
    )
    .await;
    let run = |job: &str| {
        syncd_command(&["run-job", job], &tdb.url())
            .output()
            .unwrap()
    };
    let out = run("stale");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["job"], "stale");
    assert!(reply["changed"].as_i64().unwrap() >= 1, "{reply}");
    let status = session_status(&pg, &sid).await;
    assert_eq!(status, "ended");
    let bad = run("vacuum");
    assert!(!bad.status.success(), "an unknown job is refused");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown job"));
}
