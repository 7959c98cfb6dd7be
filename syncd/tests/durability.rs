//! Durability: kill -9, a long Postgres outage and a full disk. Each scenario reports sent,
//! acked, persisted, lost (must be 0) and duplicates stored (must be 0).

mod common;
use common::*;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy to Postgres that can be cut off and restored, so an outage never touches the
/// machine's cluster.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    generation: Arc<tokio::sync::watch::Sender<u64>>,
    /// While set, connections stay open but nothing is forwarded: a backend that stopped answering.
    stalled: Arc<tokio::sync::watch::Sender<bool>>,
}

/// Waits until the watched flag equals `want`.
async fn until(rx: &mut tokio::sync::watch::Receiver<bool>, want: bool) {
    while *rx.borrow_and_update() != want {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

impl Proxy {
    async fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let (tx, _) = tokio::sync::watch::channel(0u64);
        let generation = Arc::new(tx);
        let (stall_tx, _) = tokio::sync::watch::channel(false);
        let stalled = Arc::new(stall_tx);
        let (up2, gen2, stall2) = (up.clone(), generation.clone(), stalled.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                if !up2.load(Ordering::SeqCst) {
                    let _ = client.shutdown().await;
                    continue;
                }
                let mut cut = gen2.subscribe();
                let mut stall = stall2.subscribe();
                tokio::spawn(async move {
                    // A new connection while stalled is held, silent, until the stall ends.
                    until(&mut stall, false).await;
                    let Ok(mut server) = TcpStream::connect("127.0.0.1:5432").await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                        // Stop forwarding but keep both sockets open until the stall ends.
                        _ = until(&mut stall, true) => until(&mut stall, false).await,
                    }
                });
            }
        });
        Proxy {
            port,
            up,
            generation,
            stalled,
        }
    }

    fn url(&self) -> String {
        let url = db_url();
        assert!(
            url.contains("127.0.0.1:5432"),
            "the proxy forwards to 127.0.0.1:5432: {url}"
        );
        url.replace("127.0.0.1:5432", &format!("127.0.0.1:{}", self.port))
    }

    fn stall(&self, on: bool) {
        self.stalled.send_replace(on);
    }

    fn set(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if !up {
            self.generation.send_modify(|g| *g += 1);
        }
    }
}

struct Report {
    sent: usize,
    acked: Vec<String>,
    persisted: usize,
}

impl Report {
    async fn judge(&self, name: &str, pg: &tokio_postgres::Client, wait_secs: u64) {
        let persisted = wait_ledger(pg, &self.acked, wait_secs).await as usize;
        let dup: i64 = pg
            .query_one("select count(*) - count(distinct event_id) from fred.livekit_events where event_id = any($1)", &[&self.acked])
            .await
            .unwrap()
            .get(0);
        let lost = self.acked.len() - persisted;
        println!(
            "{name}: sent={} acked={} persisted={} lost={lost} dup={dup} (earlier persisted={})",
            self.sent,
            self.acked.len(),
            persisted,
            self.persisted
        );
        assert_eq!(lost, 0, "{name}: acked events were lost");
        assert_eq!(dup, 0, "{name}: duplicates stored");
    }
}

fn event(tag: &str, i: usize) -> (String, Vec<u8>) {
    let id = format!("EV_{tag}_{i}");
    let body = json!({"event": "participant_joined", "id": id, "createdAt": (now() + i as i64).to_string(),
                      "room": {"sid": format!("RM_{tag}_{}", i % 7), "name": format!("room-{tag}-{}", i % 7)},
                      "participant": {"identity": format!("user-{i}")}})
    .to_string()
    .into_bytes();
    (id, body)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn_syncd(spool: &std::path::Path, db: &str, port: u16) -> std::process::Child {
    syncd_command(&["serve"], db)
        .env("SYNCD_LISTEN", format!("127.0.0.1:{port}"))
        .env("SYNCD_SPOOL_DIR", spool)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn syncd")
}

async fn wait_up(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(r) = http()
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("syncd did not come up on {port}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_loses_nothing_acked() {
    let pg = pg().await;
    let proxy = Proxy::start().await;
    let spool = tempfile::tempdir().unwrap();
    let port = free_port();
    let tag = unique("kill");
    let url = format!("http://127.0.0.1:{port}");
    let mut report = Report {
        sent: 0,
        acked: vec![],
        persisted: 0,
    };
    // Round 1 drains while it receives; round 2 runs with Postgres cut off, so everything it
    // acks is only in the spool when it is killed.
    for round in 0..2 {
        proxy.set(round == 0);
        let mut child = spawn_syncd(spool.path(), &proxy.url(), port);
        wait_up(port).await;
        let mut tasks = Vec::new();
        for i in round * 300..round * 300 + 300 {
            let (id, body) = event(&tag, i);
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                let auth = sign(&body);
                let ok = http()
                    .post(format!("{url}/livekit/webhook"))
                    .header("authorization", auth)
                    .body(body)
                    .send()
                    .await;
                (id, matches!(ok, Ok(r) if r.status().as_u16() == 200))
            }));
        }
        // Kill while requests are still in flight.
        tokio::time::sleep(Duration::from_millis(150)).await;
        child.kill().expect("kill -9");
        child.wait().unwrap();
        for t in tasks {
            let (id, acked) = t.await.unwrap();
            report.sent += 1;
            if acked {
                report.acked.push(id);
            }
        }
    }
    assert!(
        !report.acked.is_empty(),
        "some requests were acked before the kill"
    );
    proxy.set(true);
    let mut child = spawn_syncd(spool.path(), &proxy.url(), port);
    wait_up(port).await;
    report.judge("kill -9", &pg, 60).await;
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_outage_acks_everything_and_catches_up() {
    let outage: u64 = std::env::var("SYNCD_TEST_OUTAGE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let pg = pg().await;
    let proxy = Proxy::start().await;
    let d = start(&proxy.url(), &[]).await;
    let tag = unique("outage");
    let mut report = Report {
        sent: 0,
        acked: vec![],
        persisted: 0,
    };
    let mut worst = 0u16;
    let started = Instant::now();
    let mut i = 0;
    // Events keep arriving before, during and after the outage (about 20 per second).
    while started.elapsed() < Duration::from_secs(outage + 10) {
        let t = started.elapsed();
        proxy.set(!(t >= Duration::from_secs(3) && t < Duration::from_secs(3 + outage)));
        let (id, body) = event(&tag, i);
        i += 1;
        report.sent += 1;
        let status = post(&d.url, &body).await;
        worst = worst.max(status);
        if status == 200 {
            report.acked.push(id);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(worst, 200, "every event got 200 during the outage");
    assert_eq!(report.acked.len(), report.sent);
    report
        .judge(&format!("postgres outage {outage}s"), &pg, 120)
        .await;
    let m = metrics_text(&d.url).await;
    assert!(
        m.contains("syncd_db_errors_total{reason=\"transient\"}"),
        "the outage was seen and counted"
    );
    d.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_disk_gives_503_and_recovers() {
    let pg = pg().await;
    let dir = tempfile::tempdir().unwrap();
    let mount = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(dir.path())
        .status()
        .expect("run mount");
    assert!(
        mount.success(),
        "mounting a tmpfs needs root; this test is part of the suite on purpose"
    );
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _guard = Unmount(dir.path().to_owned());
    let proxy = Proxy::start().await;
    proxy.set(false); // nothing drains: the spool only grows
    let spool_dir = dir.path().join("spool");
    let cfg = config(&spool_dir, &proxy.url(), &[]);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = syncd::app::start(&cfg, listener).await.unwrap();
    let url = format!("http://{}", running.addr);
    // Fill most of the filesystem so the spool hits ENOSPC soon.
    let filler = dir.path().join("filler");
    std::fs::write(&filler, vec![0u8; 3 << 20]).unwrap();

    let tag = unique("full");
    let mut acked = Vec::new();
    let mut refused = Vec::new();
    let pad = "p".repeat(16 << 10);
    for i in 0..400 {
        let id = format!("EV_{tag}_{i}");
        let body = json!({"event": "participant_joined", "id": id, "pad": pad, "room": {"sid": format!("RM_{tag}"), "name": "full"},
                          "participant": {"identity": "u"}})
        .to_string()
        .into_bytes();
        let r = http()
            .post(format!("{url}/livekit/webhook"))
            .header("authorization", sign(&body))
            .body(body)
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            200 => acked.push(id),
            503 => {
                assert!(
                    r.headers().get("retry-after").is_some(),
                    "503 carries Retry-After"
                );
                refused.push(id);
                if refused.len() >= 3 {
                    break;
                }
            }
            s => panic!("unexpected status {s}"),
        }
    }
    assert!(!refused.is_empty(), "a full disk must give 503");
    assert!(
        !acked.is_empty(),
        "the spool accepted events before the disk filled"
    );
    // Space comes back: the spool accepts again.
    std::fs::remove_file(&filler).unwrap();
    let (id, body) = event(&tag, 10_000);
    assert_eq!(
        post(&url, &body).await,
        200,
        "the spool recovers once space is freed"
    );
    acked.push(id);
    // Postgres comes back: every acked event lands, and none of the refused ones was stored.
    proxy.set(true);
    let report = Report {
        sent: acked.len() + refused.len(),
        acked: acked.clone(),
        persisted: 0,
    };
    report.judge("full disk", &pg, 60).await;
    let stored: i64 = pg
        .query_one(
            "select count(*) from fred.livekit_events where event_id = any($1)",
            &[&refused],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 0, "a refused (503) event was never stored");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_cleanly() {
    let spool = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = spawn_syncd(spool.path(), &db_url(), port);
    wait_up(port).await;
    let tag = unique("term");
    let (id, body) = event(&tag, 0);
    assert_eq!(post(&format!("http://127.0.0.1:{port}"), &body).await, 200);
    let pg = pg().await;
    assert_eq!(wait_ledger(&pg, std::slice::from_ref(&id), 20).await, 1);
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "syncd did not stop after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backend_that_stops_answering_stalls_neither_readyz_nor_shutdown() {
    let proxy = Proxy::start().await;
    let d = start(
        &proxy.url(),
        &[("SYNCD_DB_TIMEOUT", "2s"), ("SYNCD_SHUTDOWN_GRACE", "2s")],
    )
    .await;
    let pg = pg().await;
    let tag = unique("stall");
    let (first, body) = event(&tag, 0);
    assert_eq!(post(&d.url, &body).await, 200);
    assert_eq!(wait_ledger(&pg, std::slice::from_ref(&first), 20).await, 1);

    proxy.stall(true);
    let (second, body) = event(&tag, 1);
    let started = Instant::now();
    assert_eq!(
        post(&d.url, &body).await,
        200,
        "the HTTP path never waits on Postgres"
    );
    let ready = tokio::time::timeout(Duration::from_secs(8), async {
        http()
            .get(format!("{}/readyz", d.url))
            .send()
            .await
            .unwrap()
    })
    .await
    .expect("/readyz answers while the backend is silent");
    assert_eq!(ready.status().as_u16(), 503);
    println!(
        "stalled backend: /readyz answered 503 after {:?}",
        started.elapsed()
    );

    proxy.stall(false);
    assert_eq!(
        wait_ledger(&pg, std::slice::from_ref(&second), 30).await,
        1,
        "the drain recovers once the backend answers again"
    );

    proxy.stall(true);
    let (third, body) = event(&tag, 2);
    assert_eq!(post(&d.url, &body).await, 200);
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(6), d.running.shutdown())
        .await
        .expect("shutdown is bounded while the backend is silent");
    println!("stalled backend: shutdown took {:?}", started.elapsed());
    proxy.stall(false);
    let _ = third;
}
