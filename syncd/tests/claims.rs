//! README claims about syncd, each tested by name: the SQLSTATE classes of the "Drain" bullet,
//! and the `syncd quarantine` commands run as an operator runs them.

mod common;
use common::*;
use serde_json::{Value, json};
use syncd::db::{Class, classify};

fn joined(tag: &str, n: usize) -> (String, Vec<u8>) {
    let id = format!("EV_{tag}_{n}");
    let body = json!({"event": "participant_joined", "id": id, "createdAt": now().to_string(),
                      "room": {"sid": format!("RM_{tag}"), "name": format!("room-{tag}")},
                      "participant": {"identity": format!("user-{n}")}})
    .to_string()
    .into_bytes();
    (id, body)
}

/// README, syncd, "Drain": transient are no connection, classes 08, 53, 57P, 25, 28, 3D, 3F, 42,
/// and 40001, 40P01, 55P03, 55006; any other failure is isolated (57014 included).
#[test]
fn readme_drain_sqlstate_classes_transient_and_isolate() {
    let transient = [
        "08000", "08006", "08P01", "53000", "53100", "53200", "53300", "57P01", "57P02", "57P03",
        "57P04", "25000", "25006", "25P02", "28000", "28P01", "3D000", "3F000", "42000", "42501",
        "42883", "42P01", "40001", "40P01", "55P03", "55006",
    ];
    let isolate = [
        "22023", "22P05", "22001", "23505", "23514", "54000", "54001", "P0001", "57014", "40002",
        "40003", "55000", "XX000", "0A000", "2F005", "39P01",
    ];
    for code in transient {
        assert_eq!(classify(code), Class::Transient, "{code} is transient");
    }
    for code in isolate {
        assert_eq!(classify(code), Class::Isolate, "{code} is isolated");
    }
}

/// The same classes end to end, through the real drain: a transient SQLSTATE raised by Postgres
/// is retried (counted as transient, never quarantined) and the event lands once the cause is
/// gone; an isolated one is set aside while its neighbour lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_drain_transient_codes_are_retried_and_never_quarantined() {
    let tdb = TestDb::new().await;
    let pg = tdb.pg().await;
    let d = start(&tdb.url(), &[("SYNCD_POISON_TRIES", "2")]).await;
    let tag = unique("class");
    let spool = d.running.state.spool.clone();
    for (n, code) in ["40001", "42501", "55P03", "08006", "3D000"]
        .iter()
        .enumerate()
    {
        let (id, body) = joined(&tag, n);
        plant_fault(&pg, &id, code).await;
        let before = transient_count(&d.url).await;
        assert_eq!(post(&d.url, &body).await, 200);
        // The positive signal: the drain met the fault, more than SYNCD_POISON_TRIES times.
        let url = d.url.clone();
        eventually(
            20,
            &format!("{code}: three transient failures counted"),
            || {
                let url = url.clone();
                async move { transient_count(&url).await >= before + 3 }
            },
        )
        .await;
        let q = spool.list_quarantine().await.unwrap();
        assert!(
            q.iter().all(|q| q.key != id),
            "{code} is transient: never quarantined ({q:?})"
        );
        assert_eq!(wait_ledger(&pg, std::slice::from_ref(&id), 0).await, 0);
        pg.execute(
            "delete from public.syncd_test_faults where event_id = $1",
            &[&id],
        )
        .await
        .unwrap();
        assert_eq!(
            wait_ledger(&pg, std::slice::from_ref(&id), 40).await,
            1,
            "{code}: the event lands once the cause is gone"
        );
    }
    // An isolated class for contrast: quarantined at once (class 22), its neighbour lands.
    let (bad, bad_body) = joined(&tag, 100);
    let (good, good_body) = joined(&tag, 101);
    plant_fault(&pg, &bad, "22023").await;
    assert_eq!(post(&d.url, &bad_body).await, 200);
    assert_eq!(post(&d.url, &good_body).await, 200);
    assert_eq!(wait_ledger(&pg, std::slice::from_ref(&good), 20).await, 1);
    eventually(10, "22023 quarantined", || {
        let (spool, bad) = (spool.clone(), bad.clone());
        async move {
            spool
                .list_quarantine()
                .await
                .unwrap()
                .iter()
                .any(|q| q.key == bad && q.sqlstate.as_deref() == Some("22023"))
        }
    })
    .await;
    d.running.shutdown().await;
}

async fn transient_count(url: &str) -> u64 {
    metrics_text(url)
        .await
        .lines()
        .find_map(|l| l.strip_prefix("syncd_db_errors_total{reason=\"transient\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn quarantine(spool: &std::path::Path, db: &str, args: &[&str]) -> (String, String) {
    let mut all = vec!["quarantine"];
    all.extend_from_slice(args);
    let out = syncd_command(&all, db)
        .env("SYNCD_SPOOL_DIR", spool)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "syncd {all:?}: {stdout}{stderr}");
    (stdout, stderr)
}

/// README, syncd: `syncd quarantine list` prints quarantined events as JSON lines;
/// `replay <key>` moves one back to the queue and `replay --all` all of them; the next syncd
/// on that spool applies them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_quarantine_list_replay_key_and_replay_all() {
    let tdb = TestDb::new().await;
    let pg = tdb.pg().await;
    let tag = unique("quar");
    let ids: Vec<(String, Vec<u8>)> = (0..3).map(|n| joined(&tag, n)).collect();
    let d = start(&tdb.url(), &[]).await;
    for (id, body) in &ids {
        plant_fault(&pg, id, "22023").await;
        assert_eq!(post(&d.url, body).await, 200);
    }
    let spool = d.running.state.spool.clone();
    eventually(20, "the three events quarantined", || {
        let spool = spool.clone();
        async move { spool.list_quarantine().await.unwrap().len() == 3 }
    })
    .await;
    drop(spool);
    let dir = d.spool.path().to_owned();
    let keep = d.spool;
    d.running.shutdown().await;

    // list: one JSON line per event, with its key and SQLSTATE.
    let (out, _) = quarantine(&dir, &tdb.url(), &["list"]);
    let listed: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let mut keys: Vec<&str> = listed.iter().map(|q| q["key"].as_str().unwrap()).collect();
    keys.sort();
    let mut want: Vec<&str> = ids.iter().map(|(id, _)| id.as_str()).collect();
    want.sort();
    assert_eq!(keys, want, "{out}");
    assert!(
        listed.iter().all(|q| q["sqlstate"] == "22023"),
        "each carries its SQLSTATE: {out}"
    );

    // The cause is fixed; replay one by key, then the rest with --all.
    pg.execute(
        "delete from public.syncd_test_faults where event_id = any($1)",
        &[&want],
    )
    .await
    .unwrap();
    let (out, _) = quarantine(&dir, &tdb.url(), &["replay", &ids[0].0]);
    assert_eq!(out.trim(), "replayed 1");
    let (out, _) = quarantine(&dir, &tdb.url(), &["list"]);
    assert_eq!(out.lines().count(), 2, "two left: {out}");
    assert!(!out.contains(&format!("\"{}\"", ids[0].0)), "{out}");
    let (out, _) = quarantine(&dir, &tdb.url(), &["replay", "--all"]);
    assert_eq!(out.trim(), "replayed 2");
    let (out, _) = quarantine(&dir, &tdb.url(), &["list"]);
    assert_eq!(out, "", "nothing left in quarantine");
    // Neither command touched Postgres: the events land when a syncd drains that spool.
    let owned: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    assert_eq!(wait_ledger(&pg, &owned, 0).await, 0);
    let cfg = config(&dir, &tdb.url(), &[]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = syncd::app::start(&cfg, listener).await.unwrap();
    assert_eq!(
        wait_ledger(&pg, &owned, 20).await,
        3,
        "the replayed events are applied"
    );
    running.shutdown().await;
    drop(keep);
}
