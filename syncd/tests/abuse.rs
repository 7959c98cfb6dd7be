//! syncd under abuse (issue 12): no event stops the drain, strangers are cheap to refuse,
//! shutdown is bounded, and errors keep their cause. Real Postgres, the real binary where the
//! process itself is what is measured, loopback only, every wait bounded.

mod common;
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn joined(tag: &str) -> (String, Vec<u8>) {
    let id = format!("EV_{tag}");
    let body = json!({"event": "participant_joined", "id": id, "createdAt": now().to_string(),
                      "room": {"sid": format!("RM_{tag}"), "name": format!("room-{tag}")},
                      "participant": {"identity": "user-1"}})
    .to_string()
    .into_bytes();
    (id, body)
}

/// The test database's URL with a statement timeout for syncd's own sessions.
fn db_url_with_statement_timeout(tdb: &TestDb, ms: u32) -> String {
    let url = tdb.url();
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20statement_timeout%3D{ms}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_class_is_set_aside_and_the_next_event_lands() {
    let tdb = TestDb::new().await;
    let pg = tdb.pg().await;
    let d = start(
        &db_url_with_statement_timeout(&tdb, 500),
        &[("SYNCD_POISON_TRIES", "3")],
    )
    .await;
    // 22 and 54 come back per event; 23, P0001 and a real statement timeout fail the batch.
    for fault in ["22023", "23514", "54000", "P0001", "sleep"] {
        let tag = unique(&format!("class{fault}"));
        let (bad_id, bad) = joined(&format!("{tag}bad"));
        let (good_id, good) = joined(&format!("{tag}good"));
        plant_fault(&pg, &bad_id, fault).await;
        assert_eq!(post(&d.url, &bad).await, 200);
        assert_eq!(post(&d.url, &good).await, 200);
        let started = Instant::now();
        assert_eq!(
            wait_ledger(&pg, std::slice::from_ref(&good_id), 20).await,
            1,
            "the event after a {fault} failure lands"
        );
        println!(
            "{fault}: the next event landed after {:?}",
            started.elapsed()
        );
        let want = if fault == "sleep" { "57014" } else { fault };
        let spool = d.running.state.spool.clone();
        eventually(10, &format!("{bad_id} quarantined with {want}"), || {
            let (spool, bad_id) = (spool.clone(), bad_id.clone());
            async move {
                spool
                    .list_quarantine()
                    .await
                    .unwrap()
                    .iter()
                    .any(|q| q.key == bad_id && q.sqlstate.as_deref() == Some(want))
            }
        })
        .await;
        let q = spool.list_quarantine().await.unwrap();
        let reason = &q.iter().find(|q| q.key == bad_id).unwrap().reason;
        assert!(
            reason.starts_with(&format!("SQLSTATE {want}: ")),
            "the reason keeps the SQLSTATE and message: {reason}"
        );
        if fault != "sleep" && !fault.starts_with("22") && !fault.starts_with("54") {
            assert!(
                reason.contains("test fault") && reason.contains("planted by the syncd tests"),
                "message and detail: {reason}"
            );
        }
    }
    d.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_reports_a_lagging_drain_and_the_metric_says_how_far() {
    let tdb = TestDb::new().await;
    let pg = tdb.pg().await;
    let d = start(
        &tdb.url(),
        &[("SYNCD_READY_MAX_LAG", "1s"), ("SYNCD_POISON_TRIES", "100")],
    )
    .await;
    let tag = unique("lag");
    let (bad_id, bad) = joined(&tag);
    plant_fault(&pg, &bad_id, "P0001").await;
    assert_eq!(post(&d.url, &bad).await, 200);
    let url = d.url.clone();
    eventually(15, "/readyz answers 503 naming the lag", || {
        let url = url.clone();
        async move {
            let r = http().get(format!("{url}/readyz")).send().await.unwrap();
            let code = r.status().as_u16();
            let body = r.text().await.unwrap();
            code == 503 && body.contains("SYNCD_READY_MAX_LAG")
        }
    })
    .await;
    let m = metrics_text(&d.url).await;
    let age: i64 = m
        .lines()
        .find_map(|l| l.strip_prefix("syncd_oldest_queued_age_seconds "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the age metric");
    assert!(age >= 1, "{m}");
    // Let it go: once it is set aside, readiness comes back.
    pg.execute(
        "delete from public.syncd_test_faults where event_id = $1",
        &[&bad_id],
    )
    .await
    .unwrap();
    assert_eq!(wait_ledger(&pg, &[bad_id], 30).await, 1);
    d.running.shutdown().await;
}

/// Opens `n` uploads that send their headers and part of a large body, then stall.
async fn stalled_uploads(port: u16, n: usize, body_part: usize, auth: &str) -> Vec<TcpStream> {
    let mut out = Vec::with_capacity(n);
    let chunk = vec![b'x'; body_part];
    for _ in 0..n {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await else {
            continue;
        };
        let head = format!(
            "POST /livekit/webhook HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/webhook+json\r\nauthorization: {auth}\r\ncontent-length: {}\r\n\r\n",
            1 << 20
        );
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            s.write_all(head.as_bytes()).await?;
            s.write_all(&chunk).await
        })
        .await;
        out.push(s);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stalled_unsigned_uploads_cost_little_and_signed_webhooks_still_land() {
    let tdb = TestDb::new().await;
    let spool = tempfile::tempdir().unwrap();
    let mut cmd = syncd_command(&["serve"], &tdb.url());
    cmd.env("SYNCD_SPOOL_DIR", spool.path());
    let served = serve(cmd).await;
    let (port, mut child) = (served.port, served.child);
    let idle = rss_bytes(child.id());
    let forged = jwt("HS256", "not-the-secret", &claims(b"whatever"));
    let held = stalled_uploads(port, 400, 700 << 10, &forged).await;
    let tag = unique("stalled");
    let (id, body) = joined(&tag);
    let started = Instant::now();
    let code = post(&format!("http://127.0.0.1:{port}"), &body).await;
    let ack = started.elapsed();
    let rss = rss_bytes(child.id());
    println!(
        "400 stalled unsigned uploads: ack {ack:?}, rss {} MiB (idle {} MiB)",
        rss >> 20,
        idle >> 20
    );
    assert_eq!(code, 200);
    assert!(ack < Duration::from_secs(2), "ack took {ack:?}");
    assert!(
        rss < idle + (64 << 20),
        "RSS grew from {} MiB to {} MiB under stalled uploads",
        idle >> 20,
        rss >> 20
    );
    assert_eq!(wait_ledger(&tdb.pg().await, &[id], 20).await, 1);
    drop(held);
    let _ = child.kill();
    let _ = child.wait();
}

/// Sends only the head of a webhook request that declares `len` body bytes, and returns the
/// status syncd answers with before any of the body is sent. (A client that sends the body too
/// may find the socket closed under it, as syncd refuses without reading it: a broken pipe, not
/// an answer.)
async fn status_before_body(url: &str, auth: &str, len: usize) -> u16 {
    let mut s = TcpStream::connect(url.trim_start_matches("http://"))
        .await
        .unwrap();
    let head = format!(
        "POST /livekit/webhook HTTP/1.1\r\nhost: x\r\ncontent-type: application/webhook+json\r\nauthorization: {auth}\r\ncontent-length: {len}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut answer))
        .await
        .expect("syncd answers before the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_overlong_tokens_are_refused_before_the_body() {
    let tdb = TestDb::new().await;
    let d = start(&tdb.url(), &[("SYNCD_MAX_TOKEN_TTL", "10m")]).await;
    let body = joined(&unique("ttl")).1;
    let mut long = claims(&body);
    long["exp"] = json!(now() + 24 * 3600);
    let token = jwt("HS256", SECRET, &long);
    assert_eq!(status_before_body(&d.url, &token, body.len()).await, 401);
    let m = metrics_text(&d.url).await;
    assert!(
        m.contains("syncd_webhooks_rejected_total{reason=\"token_lifetime\"} 1"),
        "{m}"
    );
    // A signed request declaring more than SYNCD_MAX_BODY is refused on its Content-Length.
    let big = vec![b' '; 2 << 20];
    assert_eq!(
        status_before_body(&d.url, &sign(&big), big.len()).await,
        413
    );
    d.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_stalled_client_exits_within_the_grace_period() {
    let tdb = TestDb::new().await;
    let spool = tempfile::tempdir().unwrap();
    let mut cmd = syncd_command(&["serve"], &tdb.url());
    cmd.env("SYNCD_SPOOL_DIR", spool.path())
        .env("SYNCD_SHUTDOWN_GRACE", "2s");
    let served = serve(cmd).await;
    let (port, mut child) = (served.port, served.child);
    // A signed request whose body never finishes.
    let body = joined(&unique("term")).1;
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let head = format!(
        "POST /livekit/webhook HTTP/1.1\r\nhost: x\r\nauthorization: {}\r\ncontent-length: {}\r\n\r\n",
        sign(&body),
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body[..10]).await.unwrap();
    let url = format!("http://127.0.0.1:{port}");
    eventually(10, "the stalled request reached the handler", || {
        let url = url.clone();
        async move {
            metrics_text(&url)
                .await
                .contains("syncd_webhooks_received_total 1")
        }
    })
    .await;
    let started = Instant::now();
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if started.elapsed() > Duration::from_secs(6) {
            let _ = child.kill();
            panic!("syncd still running {:?} after SIGTERM", started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!("exited {:?} after SIGTERM", started.elapsed());
    assert!(status.success(), "{status}");
    assert!(started.elapsed() < Duration::from_secs(4));
    drop(s);
}

#[tokio::test]
async fn connection_errors_keep_their_cause() {
    let tdb = TestDb::new().await;
    // This machine's Postgres trusts local connections, so a wrong password cannot be
    // provoked; an unknown role takes the same path (a FATAL ErrorResponse at startup).
    let url = tdb.url();
    let (_, rest) = url.split_once("://").unwrap();
    let (_, host) = rest.split_once('@').unwrap();
    let bad = format!("postgres://nobody_{}:wrong@{host}", std::process::id());
    let out = syncd_command(&["check"], &bad)
        .env("SYNCD_SPOOL_DIR", tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("SQLSTATE 28000")
            && err.contains(&format!(
                "role \"nobody_{}\" does not exist",
                std::process::id()
            )),
        "the cause is named: {err}"
    );
    assert!(!err.contains("wrong"), "no password in the message: {err}");
}

/// A database with fred 0.1.0's shape: the batch function, and no `fred.version()`.
async fn old_schema_database(tdb: &TestDb) -> (String, String) {
    let name = format!("{}_old", tdb.name);
    let admin = tdb.admin_url();
    let (c, conn) = tokio_postgres::connect(&with_db(&admin, "postgres"), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    for sql in [
        format!("drop database if exists {name} with (force)"),
        format!("create database {name}"),
    ] {
        c.batch_execute(&sql).await.unwrap();
    }
    let (o, conn) = tokio_postgres::connect(&with_db(&admin, &name), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    o.batch_execute(
        "create schema fred;
         create function fred.apply_livekit_events(events jsonb)
         returns table (idx integer, result text, error_code text, error_message text)
         language sql as $$ select 0, 'applied', null::text, null::text $$;",
    )
    .await
    .unwrap();
    (name.clone(), with_db(&admin, &name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_schema_is_refused_by_check_and_serve_and_check_prints_the_version() {
    let tdb = TestDb::new().await;
    let out = syncd_command(&["check"], &tdb.url())
        .env("SYNCD_SPOOL_DIR", tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("fred schema: 0.2.0"), "{text}");

    let (name, old) = old_schema_database(&tdb).await;
    let want = "fred schema 0.1.0 is older than 0.2.0, which this syncd needs: run ALTER EXTENSION fred UPDATE, or apply the new migrations";
    for args in [&["check"][..], &["serve"][..]] {
        let spool = tempfile::tempdir().unwrap();
        let out = syncd_command(args, &old)
            .env("SYNCD_SPOOL_DIR", spool.path())
            .env("SYNCD_LISTEN", "127.0.0.1:0")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} must refuse: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let (c, conn) = tokio_postgres::connect(
        &with_db(&tdb.admin_url(), "postgres"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    c.batch_execute(&format!("drop database if exists {name} with (force)"))
        .await
        .unwrap();
}

#[tokio::test]
async fn short_retention_and_thresholds_are_refused_naming_the_variable() {
    for (var, value) in [
        ("RECORDING_RETENTION_DAYS", "0"),
        ("TRANSCRIPT_RETENTION_DAYS", "0"),
        ("SYNCD_STALE_AFTER", "30s"),
        ("SYNCD_RECONCILE_AFTER", "59s"),
    ] {
        let out = syncd_command(&["check"], &unused_db_url())
            .env(var, value)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {err}");
        assert!(err.contains(var), "{var}={value}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spool_is_pruned_and_gives_its_space_back() {
    let tdb = TestDb::new().await;
    let d = start(
        &tdb.url(),
        &[
            ("SYNCD_SEEN_WINDOW", "1s"),
            ("SYNCD_SPOOL_MAINTAIN_EVERY", "1s"),
        ],
    )
    .await;
    let pg = tdb.pg().await;
    let tag = unique("prune");
    let pad = "p".repeat(16 << 10);
    let mut ids = Vec::new();
    let client = http();
    let spool = d.running.state.spool.clone();
    let mut peak = 0;
    for chunk in 0..20 {
        let mut sends = Vec::new();
        for i in 0..50 {
            let id = format!("EV_{tag}_{chunk}_{i}");
            let body =
                json!({"event": "participant_joined", "id": id, "createdAt": now().to_string(),
                              "room": {"sid": format!("RM_{tag}"), "name": format!("room-{tag}")},
                              "participant": {"identity": format!("u{i}"), "metadata": pad}})
                .to_string()
                .into_bytes();
            ids.push(id);
            let req = client
                .post(format!("{}/livekit/webhook", d.url))
                .header("authorization", sign(&body))
                .body(body);
            sends.push(status(req));
        }
        for code in futures_util::future::join_all(sends).await {
            assert_eq!(code, 200);
        }
        peak = peak.max(spool.bytes_on_disk());
    }
    assert!(peak > 4 << 20, "the burst grew the spool: {peak}");
    assert_eq!(wait_ledger(&pg, &ids, 60).await as usize, ids.len());
    let first = ids[0].clone();
    eventually(30, "drained ids pruned and the space given back", || {
        let (spool, first) = (spool.clone(), first.clone());
        async move { !spool.seen(first).await.unwrap() && spool.bytes_on_disk() < peak / 4 }
    })
    .await;
    println!("spool: peak {peak} bytes, now {}", spool.bytes_on_disk());
    d.running.shutdown().await;
}
