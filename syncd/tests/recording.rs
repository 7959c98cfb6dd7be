//! Recordings end to end: the Egress fake, a real S3 (s3s-fs) and the real local Postgres.

mod common;
use common::fake_egress::{Fake, Mode};
use common::s3_server::{AK, S3Server, SK};
use common::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn room_started(sid: &str, name: &str) -> Vec<u8> {
    json!({"event": "room_started", "id": format!("EV_{sid}"), "createdAt": now().to_string(),
           "room": {"sid": sid, "name": name, "creationTime": now().to_string()}})
    .to_string()
    .into_bytes()
}

fn recording_env<'a>(fake: &'a str, s3: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("LIVEKIT_URL", fake),
        ("RECORDING_S3_ACCESS_KEY", AK),
        ("RECORDING_S3_SECRET", SK),
        ("RECORDING_S3_ENDPOINT", s3),
        ("RECORDING_S3_REGION", "eu-central-1"),
        ("SYNCD_EGRESS_TIMEOUT", "1s"),
    ]
}

/// Polls a session column until it has `want` (or times out and returns what it has).
async fn wait_column(
    pg: &tokio_postgres::Client,
    sid: &str,
    column: &str,
    want: &str,
) -> Option<String> {
    let sql = format!("select {column}::text from fred.coaching_sessions where room_sid = $1");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got: Option<String> = pg
            .query_opt(&sql, &[&sid])
            .await
            .unwrap()
            .and_then(|r| r.get(0));
        if got.as_deref() == Some(want) || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_requests(fake: &Fake, method: &str, n: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    while fake.requests(method).len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fake.requests(method).len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn room_started_starts_one_audio_only_egress() {
    let tdb = TestDb::new().await;
    let fake = Fake::start(KEY, SECRET, Mode::Ok("EG_started1".into())).await;
    let ws = fake.url.replace("http://", "ws://");
    let env = recording_env(&ws, "https://ref.supabase.co/storage/v1/s3");
    let d = start(&tdb.url(), &env).await;
    let pg = tdb.pg().await;
    let sid = unique("RM_rec");
    let name = format!("call-{sid}");
    assert_eq!(post(&d.url, &room_started(&sid, &name)).await, 200);
    assert_eq!(wait_requests(&fake, "StartRoomCompositeEgress", 1).await, 1);
    let req = &fake.requests("StartRoomCompositeEgress")[0];
    let token = req
        .authorization
        .strip_prefix("Bearer ")
        .expect("a Bearer token");
    let claims = livekit_api::access_token::TokenVerifier::with_api_key(KEY, SECRET)
        .verify(token)
        .expect("signed with the API secret");
    assert!(claims.video.room_record, "the roomRecord grant");
    assert_eq!(req.body["room_name"], name);
    assert_eq!(req.body["audio_only"], true);
    let out = &req.body["file_outputs"][0];
    assert_eq!(out["file_type"], "OGG");
    assert_eq!(
        out["filepath"], "{room_name}/{time}.ogg",
        "the key template is sent unchanged"
    );
    assert_eq!(
        out["s3"],
        json!({"access_key": AK, "secret": SK, "region": "eu-central-1", "endpoint": "https://ref.supabase.co/storage/v1/s3",
               "bucket": "voice-recordings", "force_path_style": true})
    );
    assert_eq!(
        wait_column(&pg, &sid, "recording_status", "starting")
            .await
            .as_deref(),
        Some("starting")
    );
    assert_eq!(
        wait_column(&pg, &sid, "egress_id", "EG_started1")
            .await
            .as_deref(),
        Some("EG_started1")
    );

    // Replays never start a second egress: the same delivery, a new event id for the same room,
    // and another replica sharing the database.
    assert_eq!(post(&d.url, &room_started(&sid, &name)).await, 200);
    let mut again: Value = serde_json::from_slice(&room_started(&sid, &name)).unwrap();
    again["id"] = json!(format!("EV_{sid}_again"));
    assert_eq!(post(&d.url, &again.to_string().into_bytes()).await, 200);
    let replica = start(&tdb.url(), &env).await;
    again["id"] = json!(format!("EV_{sid}_replica"));
    assert_eq!(
        post(&replica.url, &again.to_string().into_bytes()).await,
        200
    );
    assert_eq!(
        wait_ledger(
            &pg,
            &[format!("EV_{sid}_again"), format!("EV_{sid}_replica")],
            20
        )
        .await,
        2
    );
    // Every start attempt the replays caused has run to its end (the hook's tasks are tracked):
    // only then does "one request" mean no second one is coming.
    eventually(
        10,
        "the room_started hooks of both replicas finished",
        || {
            let (a, b) = (
                d.running.state.tasks.clone(),
                replica.running.state.tasks.clone(),
            );
            async move { a.is_empty() && b.is_empty() }
        },
    )
    .await;
    assert_eq!(
        fake.requests("StartRoomCompositeEgress").len(),
        1,
        "exactly one egress for the room instance"
    );
    d.running.shutdown().await;
    replica.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn start_failures_never_block_the_call() {
    let tdb = TestDb::new().await;
    let pg = tdb.pg().await;
    let refused = format!(
        "http://127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    );
    let cases: Vec<(&str, Mode, &str)> = vec![
        (
            "redis",
            Mode::Fail(
                500,
                json!({"code": "internal", "msg": "egress not connected (redis required)"})
                    .to_string(),
            ),
            "egress not connected",
        ),
        (
            "busy",
            Mode::Fail(
                503,
                json!({"code": "unavailable", "msg": "no response from servers"}).to_string(),
            ),
            "503 unavailable",
        ),
        (
            "noroom",
            Mode::Fail(
                404,
                json!({"code": "not_found", "msg": "requested room does not exist"}).to_string(),
            ),
            "requested room does not exist",
        ),
        ("slow", Mode::Slow(3, "EG_late".into()), "unreachable"),
        ("refused", Mode::Ok("EG_never".into()), "unreachable"),
    ];
    for (label, mode, reason) in cases {
        let fake = Fake::start(KEY, SECRET, mode).await;
        let url = if label == "refused" {
            refused.clone()
        } else {
            fake.url.clone()
        };
        let d = start(&tdb.url(), &recording_env(&url, "http://127.0.0.1:9")).await;
        let sid = unique(&format!("RM_{label}"));
        assert_eq!(
            post(&d.url, &room_started(&sid, &format!("call-{sid}"))).await,
            200,
            "{label}: the webhook is answered"
        );
        if label == "slow" {
            assert_eq!(
                *fake.answered.lock().unwrap(),
                0,
                "slow: the webhook was answered before Egress answered"
            );
        }
        assert_eq!(
            wait_column(&pg, &sid, "recording_status", "unavailable")
                .await
                .as_deref(),
            Some("unavailable"),
            "{label}"
        );
        let err: String = pg
            .query_one("select coalesce(recording_error, '') from fred.coaching_sessions where room_sid = $1", &[&sid])
            .await
            .unwrap()
            .get(0);
        assert!(
            err.contains(reason),
            "{label}: recording_error {err:?} should mention {reason:?}"
        );
        let status = session_status(&pg, &sid).await;
        assert_eq!(status, "active", "{label}: the call goes on");
        d.running.shutdown().await;
    }
}

#[tokio::test]
async fn recording_off_marks_disabled_but_never_over_egress_state() {
    let tdb = TestDb::new().await;
    let d = start(&tdb.url(), &[]).await;
    let pg = tdb.pg().await;
    let sid = unique("RM_off");
    assert_eq!(post(&d.url, &room_started(&sid, "off")).await, 200);
    assert_eq!(
        wait_column(&pg, &sid, "recording_status", "disabled")
            .await
            .as_deref(),
        Some("disabled")
    );
    // An egress someone else started is applied first: `disabled` must not replace it.
    let sid2 = unique("RM_other");
    let eg = json!({"event": "egress_updated", "id": format!("EV_{sid2}_eg"), "room": {"sid": sid2, "name": "other"},
                    "egressInfo": {"egressId": "EG_o", "status": "EGRESS_ACTIVE"}});
    assert_eq!(post(&d.url, &eg.to_string().into_bytes()).await, 200);
    assert_eq!(
        wait_column(&pg, &sid2, "recording_status", "recording")
            .await
            .as_deref(),
        Some("recording")
    );
    assert_eq!(post(&d.url, &room_started(&sid2, "other")).await, 200);
    assert_eq!(
        wait_ledger(&pg, &[format!("SY_disabled_{sid2}")], 20).await,
        1
    );
    assert_eq!(
        wait_column(&pg, &sid2, "recording_status", "recording")
            .await
            .as_deref(),
        Some("recording")
    );
    d.running.shutdown().await;
}

/// Runs `syncd recording-url` as an operator would.
fn recording_url(db: &str, id: &str, expires: &str, s3: &str) -> std::process::Output {
    syncd_command(&["recording-url", id, "--expires", expires], db)
        .env("SYNCD_RECORD", "none")
        .env("RECORDING_S3_ACCESS_KEY", AK)
        .env("RECORDING_S3_SECRET", SK)
        .env("RECORDING_S3_ENDPOINT", s3)
        .output()
        .unwrap()
}

fn egress_ended(sid: &str, name: &str, egress: &str, key: &str, endpoint: &str) -> Vec<u8> {
    json!({"event": "egress_ended", "id": format!("EV_{sid}_end"), "createdAt": now().to_string(),
           "room": {"sid": sid, "name": name},
           "egressInfo": {"egressId": egress, "roomId": sid, "roomName": name, "status": "EGRESS_COMPLETE", "updatedAt": "5",
             "roomComposite": {"roomName": name, "audioOnly": true, "fileOutputs": [{"fileType": "OGG", "filepath": "{room_name}/{time}.ogg",
               "s3": {"endpoint": endpoint, "bucket": "voice-recordings", "forcePathStyle": true}}]},
             "fileResults": [{"filename": key, "size": "11", "duration": "2000000000", "location": format!("{endpoint}/voice-recordings/{key}")}]}})
    .to_string()
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn completed_upload_is_verified_and_playable() {
    let tdb = TestDb::new().await;
    let s3 = S3Server::start("voice-recordings").await;
    let fake = Fake::start(KEY, SECRET, Mode::Ok("EG_e2e".into())).await;
    let d = start(&tdb.url(), &recording_env(&fake.url, &s3.url)).await;
    let pg = tdb.pg().await;
    let sid = unique("RM_e2e");
    let name = format!("call-{sid}");
    assert_eq!(post(&d.url, &room_started(&sid, &name)).await, 200);
    assert_eq!(
        wait_column(&pg, &sid, "egress_id", "EG_e2e")
            .await
            .as_deref(),
        Some("EG_e2e")
    );
    let key = format!("{name}/2026-11-24T101500.ogg");
    let audio = b"OggS-fake-audio-bytes-0123456789".to_vec();
    s3.put("voice-recordings", &key, &audio);
    let right = syncd::s3::S3::new(&syncd::config::S3 {
        access_key: AK.into(),
        secret: SK.into(),
        endpoint: s3.url.clone(),
        bucket: "voice-recordings".into(),
        region: "eu-central-1".into(),
        key_template: String::new(),
    });
    assert_eq!(
        right.head("voice-recordings", &key).await.unwrap(),
        Some(audio.len() as i64),
        "HeadObject with the right key"
    );
    assert_eq!(
        right.head("voice-recordings", "no/such.ogg").await.unwrap(),
        None,
        "HeadObject of a missing key"
    );
    assert_eq!(
        post(&d.url, &egress_ended(&sid, &name, "EG_e2e", &key, &s3.url)).await,
        200
    );
    assert_eq!(
        wait_column(&pg, &sid, "recording_status", "ready")
            .await
            .as_deref(),
        Some("ready")
    );
    let row = pg.query_one("select id::text, recording_bytes, recording_verified_at is not null from fred.coaching_sessions where room_sid = $1", &[&sid]).await.unwrap();
    let (id, bytes, verified): (String, Option<i64>, bool) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(
        bytes,
        Some(audio.len() as i64),
        "the size HeadObject saw, not the event's"
    );
    assert!(verified);

    // `syncd recording-url` gives a URL that downloads the object; a tampered one does not.
    let out = recording_url(&tdb.url(), &id, "10m", &s3.url);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(url.contains("X-Amz-Signature="), "{url}");
    let got = http().get(&url).send().await.unwrap();
    assert_eq!(got.status().as_u16(), 200);
    assert_eq!(got.bytes().await.unwrap().to_vec(), audio);
    let tampered = url.replace("X-Amz-Expires=600", "X-Amz-Expires=6000");
    assert_eq!(
        http()
            .get(&tampered)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        403,
        "a tampered URL is refused"
    );
    let too_long = recording_url(&tdb.url(), &id, "8d", &s3.url);
    assert!(!too_long.status.success(), "more than 7 days is refused");

    // An upload that never arrived is `missing`.
    let sid2 = unique("RM_gone");
    assert_eq!(
        post(
            &d.url,
            &egress_ended(&sid2, "gone", "EG_gone", "gone/none.ogg", &s3.url)
        )
        .await,
        200
    );
    assert_eq!(
        wait_column(&pg, &sid2, "recording_status", "missing")
            .await
            .as_deref(),
        Some("missing")
    );
    d.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_errors_are_not_missing() {
    let tdb = TestDb::new().await;
    let s3 = S3Server::start("voice-recordings").await;
    let fake = Fake::start(KEY, SECRET, Mode::Ok("EG_x".into())).await;
    let mut env = recording_env(&fake.url, &s3.url);
    env.retain(|(k, _)| *k != "RECORDING_S3_SECRET");
    env.push(("RECORDING_S3_SECRET", "the-wrong-secret"));
    let d = start(&tdb.url(), &env).await;
    let pg = tdb.pg().await;
    let sid = unique("RM_badkey");
    s3.put("voice-recordings", "badkey/a.ogg", b"x");
    assert_eq!(
        post(
            &d.url,
            &egress_ended(&sid, "badkey", "EG_bk", "badkey/a.ogg", &s3.url)
        )
        .await,
        200
    );
    assert_eq!(
        wait_column(&pg, &sid, "recording_status", "uploaded")
            .await
            .as_deref(),
        Some("uploaded")
    );
    // A whole verifier pass with the daemon's own (wrong-keyed) S3 client: it completes, changes
    // nothing, and the signature error leaves the row waiting, never `missing`.
    let changed = syncd::recording::verify_pending(
        &d.running.state.db,
        d.running.state.s3.as_ref().expect("S3 is configured"),
    )
    .await
    .expect("a verification pass");
    assert_eq!(changed, 0, "a failed HeadObject changes no row");
    let status: String = pg
        .query_one(
            "select recording_status from fred.coaching_sessions where room_sid = $1",
            &[&sid],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "uploaded");
    let wrong = syncd::config::S3 {
        access_key: AK.into(),
        secret: "the-wrong-secret".into(),
        endpoint: s3.url.clone(),
        bucket: "voice-recordings".into(),
        region: "us-east-1".into(),
        key_template: String::new(),
    };
    let s3c = syncd::s3::S3::new(&wrong);
    assert!(
        s3c.head("voice-recordings", "badkey/a.ogg").await.is_err(),
        "s3s-fs checks signatures: a wrong secret fails"
    );
    d.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_egress_error_echoing_the_secret_reaches_neither_row_nor_log() {
    let tdb = TestDb::new().await;
    let echo = json!({"code": "invalid_argument",
                      "msg": format!("bad request {{\"s3\": {{\"access_key\": \"{AK}\", \"secret\": \"{SK}\"}}, \"api_secret\": \"{SECRET}\"}}")})
    .to_string();
    let fake = Fake::start(KEY, SECRET, Mode::Fail(400, echo)).await;
    let spool = tempfile::tempdir().unwrap();
    let log_path = spool.path().join("syncd.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = syncd_command(&["serve"], &tdb.url());
    for (k, v) in recording_env(&fake.url, "http://127.0.0.1:9") {
        cmd.env(k, v);
    }
    let mut child = cmd
        .env("SYNCD_LISTEN", format!("127.0.0.1:{port}"))
        .env("SYNCD_SPOOL_DIR", spool.path().join("spool"))
        .env("RUST_LOG", "debug")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    eventually(20, "syncd is up", || {
        let url = url.clone();
        async move { http().get(format!("{url}/healthz")).send().await.is_ok() }
    })
    .await;
    let pg = tdb.pg().await;
    let sid = unique("RM_echo");
    assert_eq!(
        post(&url, &room_started(&sid, &format!("call-{sid}"))).await,
        200
    );
    assert_eq!(
        wait_column(&pg, &sid, "recording_status", "unavailable")
            .await
            .as_deref(),
        Some("unavailable")
    );
    let err: String = pg
        .query_one(
            "select coalesce(recording_error, '') from fred.coaching_sessions where room_sid = $1",
            &[&sid],
        )
        .await
        .unwrap()
        .get(0);
    let _ = child.kill();
    let _ = child.wait();
    let logged = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        logged.contains("recording could not start"),
        "the failure is logged: {logged}"
    );
    for secret in [SK, AK, SECRET] {
        assert!(
            !err.contains(secret),
            "recording_error holds a secret: {err}"
        );
        assert!(!logged.contains(secret), "the log holds a secret: {logged}");
    }
    assert!(err.len() <= 160, "a short reason: {err}");
    assert!(err.contains("400 invalid_argument"), "{err}");
}
