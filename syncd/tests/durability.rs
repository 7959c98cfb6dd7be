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
    /// The database URL the proxy stands in front of.
    target: String,
    /// Its `host:port`.
    upstream: String,
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
    async fn start(target: &str) -> Proxy {
        let (_, rest) = target.split_once('@').expect("a URL with user@host:port");
        let upstream = rest.split('/').next().unwrap().to_owned();
        let upstream2 = upstream.clone();
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
                let upstream = upstream2.clone();
                tokio::spawn(async move {
                    // A new connection while stalled is held, silent, until the stall ends.
                    until(&mut stall, false).await;
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
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
            target: target.to_owned(),
            upstream,
            up,
            generation,
            stalled,
        }
    }

    fn url(&self) -> String {
        self.target
            .replacen(&self.upstream, &format!("127.0.0.1:{}", self.port), 1)
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

/// Counts every row the ledger ever takes, per event id, in a table without a key: an event
/// applied twice (a ledger that let a redelivery through, a row deleted and inserted again)
/// shows up as a second row here, which a count over `fred.livekit_events`' primary key never
/// could. Installed in the test's own database before syncd starts.
async fn audit_ledger(pg: &tokio_postgres::Client) {
    pg.batch_execute(
        "create table public.syncd_test_ledger_audit (event_id text not null, at timestamptz not null default clock_timestamp());
         create function public.syncd_test_ledger_audit() returns trigger
         language plpgsql security definer set search_path = '' as $$
         begin
           insert into public.syncd_test_ledger_audit (event_id) values (new.event_id);
           return null;
         end $$;
         create trigger syncd_test_ledger_audit after insert on fred.livekit_events
           for each row execute function public.syncd_test_ledger_audit();",
    )
    .await
    .expect("install the ledger audit");
}

impl Report {
    async fn judge(&self, name: &str, pg: &tokio_postgres::Client, wait_secs: u64) {
        let persisted = wait_ledger(pg, &self.acked, wait_secs).await as usize;
        // Applications per event id, from the audit: every acked event exactly once.
        let row = pg
            .query_one(
                "select count(*) filter (where n > 1), coalesce(sum(n - 1), 0)::bigint, count(*)
                 from (select event_id, count(*) as n from public.syncd_test_ledger_audit
                       where event_id = any($1) group by event_id) a",
                &[&self.acked],
            )
            .await
            .unwrap();
        let (dup_ids, dup, audited): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        let lost = self.acked.len() - persisted;
        println!(
            "{name}: sent={} acked={} persisted={} lost={lost} dup={dup} (on {dup_ids} ids; earlier persisted={})",
            self.sent,
            self.acked.len(),
            persisted,
            self.persisted
        );
        assert_eq!(lost, 0, "{name}: acked events were lost");
        assert_eq!(
            audited as usize, persisted,
            "{name}: the audit saw every persisted event"
        );
        assert_eq!(dup, 0, "{name}: events applied more than once");
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

fn syncd_serve(spool: &std::path::Path, db: &str) -> std::process::Command {
    let mut c = syncd_command(&["serve"], db);
    c.env("SYNCD_SPOOL_DIR", spool);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_loses_nothing_acked() {
    let tdb = TestDb::new().await;
    let pg = tdb.pg().await;
    audit_ledger(&pg).await;
    let proxy = Proxy::start(&tdb.url()).await;
    let spool = tempfile::tempdir().unwrap();
    let tag = unique("kill");
    let mut report = Report {
        sent: 0,
        acked: vec![],
        persisted: 0,
    };
    // Round 1 drains while it receives; round 2 runs with Postgres cut off, so everything it
    // acks is only in the spool when it is killed.
    for round in 0..2 {
        proxy.set(round == 0);
        let mut served = serve(syncd_serve(spool.path(), &proxy.url())).await;
        let url = served.url.clone();
        let acks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in round * 300..round * 300 + 300 {
            let (id, body) = event(&tag, i);
            let (url, acks) = (url.clone(), acks.clone());
            tasks.push(tokio::spawn(async move {
                let auth = sign(&body);
                let ok = http()
                    .post(format!("{url}/livekit/webhook"))
                    .header("authorization", auth)
                    .body(body)
                    .send()
                    .await;
                let acked = matches!(ok, Ok(r) if r.status().as_u16() == 200);
                if acked {
                    acks.fetch_add(1, Ordering::SeqCst);
                }
                (id, acked)
            }));
        }
        // Kill once some are acked, while the rest are still in flight.
        eventually(30, "50 of the 300 requests acked before the kill", || {
            let acks = acks.clone();
            async move { acks.load(Ordering::SeqCst) >= 50 }
        })
        .await;
        served.child.kill().expect("kill -9");
        served.child.wait().unwrap();
        for t in tasks {
            let (id, acked) = t.await.unwrap();
            report.sent += 1;
            if acked {
                report.acked.push(id);
            }
        }
        println!(
            "kill -9 round {round}: {} of 300 acked before the kill",
            acks.load(Ordering::SeqCst)
        );
    }
    proxy.set(true);
    let mut served = serve(syncd_serve(spool.path(), &proxy.url())).await;
    report.judge("kill -9", &pg, 60).await;
    served.child.kill().unwrap();
    served.child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_outage_acks_everything_and_catches_up() {
    let tdb = TestDb::new().await;
    let outage: u64 = std::env::var("SYNCD_TEST_OUTAGE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let pg = tdb.pg().await;
    audit_ledger(&pg).await;
    let proxy = Proxy::start(&tdb.url()).await;
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
    let tdb = TestDb::new().await;
    let pg = tdb.pg().await;
    audit_ledger(&pg).await;
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
    let proxy = Proxy::start(&tdb.url()).await;
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

/// README, syncd, "SIGTERM": in-flight requests get the grace period, then exit 0. A request
/// whose body is still arriving when SIGTERM comes is answered 200, and its event is durable:
/// in the spool on disk, and applied once a syncd runs on that spool again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_request_in_flight_and_its_event_lands() {
    let tdb = TestDb::new().await;
    let pg = tdb.pg().await;
    let spool = tempfile::tempdir().unwrap();
    let mut served = serve(syncd_serve(spool.path(), &tdb.url())).await;
    let tag = unique("term");
    let (first, body) = event(&tag, 0);
    assert_eq!(post(&served.url, &body).await, 200);
    assert_eq!(wait_ledger(&pg, std::slice::from_ref(&first), 20).await, 1);

    // A signed webhook whose body is half sent: the handler is waiting for the rest.
    let (id, body) = event(&tag, 1);
    let mut s = TcpStream::connect(("127.0.0.1", served.port))
        .await
        .unwrap();
    let head = format!(
        "POST /livekit/webhook HTTP/1.1\r\nhost: x\r\nauthorization: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        sign(&body),
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body[..10]).await.unwrap();
    let url = served.url.clone();
    eventually(10, "the half-sent request reached the handler", || {
        let url = url.clone();
        async move {
            metrics_text(&url)
                .await
                .contains("syncd_webhooks_received_total 2")
        }
    })
    .await;
    served.term();
    // The listener closes at once: a new connection is refused (the positive sign that SIGTERM
    // was taken), while the request in flight is still being read.
    eventually(10, "syncd stopped accepting after SIGTERM", || {
        let port = served.port;
        async move { TcpStream::connect(("127.0.0.1", port)).await.is_err() }
    })
    .await;
    assert!(
        served.child.try_wait().unwrap().is_none(),
        "syncd waits for the request in flight"
    );
    s.write_all(&body[10..]).await.unwrap();
    let mut answer = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut s, &mut answer)
        .await
        .unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "the request in flight is answered: {answer}"
    );
    let status = wait_exit(&mut served.child, 15, "syncd exits after SIGTERM").await;
    assert!(status.success(), "exit status after SIGTERM: {status}");
    // Durable: on disk in the spool (or already applied by the drainer's last batch); a new syncd
    // on the same spool applies it, once.
    let mut again = serve(syncd_serve(spool.path(), &tdb.url())).await;
    assert_eq!(
        wait_ledger(&pg, std::slice::from_ref(&id), 20).await,
        1,
        "the event answered during shutdown lands"
    );
    again.term();
    let status = wait_exit(&mut again.child, 15, "the second syncd exits after SIGTERM").await;
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backend_that_stops_answering_stalls_neither_readyz_nor_shutdown() {
    let tdb = TestDb::new().await;
    let proxy = Proxy::start(&tdb.url()).await;
    let d = start(
        &proxy.url(),
        &[("SYNCD_DB_TIMEOUT", "2s"), ("SYNCD_SHUTDOWN_GRACE", "2s")],
    )
    .await;
    let pg = tdb.pg().await;
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
