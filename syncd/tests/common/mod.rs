//! Shared test harness: a real Postgres, syncd in-process, and webhooks signed as LiveKit signs them.
#![allow(dead_code)]

pub mod fake_egress;
pub mod s3_server;

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};
use syncd::config::Config;

pub const KEY: &str = "APItestkey";
pub const SECRET: &str = "test-secret-that-is-long-enough-for-hs256";

/// The server and credentials the tests use: `FRED_TEST_DATABASE_URL` names the daemon's role
/// (`fred_syncd`) and `FRED_TEST_ADMIN_URL` a superuser; their database part is ignored, since
/// every test gets a database of its own (see [`TestDb`]).
fn env_url(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.into())
}

fn server_of(url: &str) -> String {
    // postgres://user:pw@host:port/db?params -> postgres://user:pw@host:port
    let (head, tail) = url.split_once("://").expect("a postgres:// URL");
    let (authority, rest) = tail.split_once('/').unwrap_or((tail, ""));
    let params = rest
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    format!("{head}://{authority}/{{db}}{params}")
}

/// `url` with its database replaced by `db`.
pub fn with_db(url: &str, db: &str) -> String {
    server_of(url).replace("{db}", db)
}

/// A database of one test's own, cloned from the template that has fred installed
/// (`FRED_TEST_TEMPLATE`, made by `.ci/syncd-tests.sh`): `create database … template …`, as
/// `sqlx::test` does. Dropped when the value is dropped, unless the test panicked: then it is
/// kept for a look and its name printed (the script drops the run's leftovers at its end).
pub struct TestDb {
    pub name: String,
    url: String,
    admin: String,
}

impl TestDb {
    pub async fn new() -> TestDb {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let template =
            std::env::var("FRED_TEST_TEMPLATE").unwrap_or_else(|_| "fred_syncd_template".into());
        let run = std::env::var("FRED_TEST_RUN").unwrap_or_else(|_| "local".into());
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("fred_syncd_t_{run}_{}_{n}", std::process::id());
        let admin = env_url(
            "FRED_TEST_ADMIN_URL",
            "postgres://postgres@127.0.0.1:5432/postgres",
        );
        let url = env_url(
            "FRED_TEST_DATABASE_URL",
            "postgres://fred_syncd:fred_syncd@127.0.0.1:5432/postgres",
        );
        let owner = std::env::var("FRED_TEST_DB_OWNER")
            .map(|o| format!(" owner {o}"))
            .unwrap_or_default();
        let (c, conn) =
            tokio_postgres::connect(&with_db(&admin, "postgres"), tokio_postgres::NoTls)
                .await
                .expect("connect to the test server's postgres database");
        tokio::spawn(conn);
        // Two clones of one template at the same moment can meet "source database is being
        // accessed by other users" while the other CREATE DATABASE reads it: retry a little.
        let mut tries = 0;
        loop {
            match c
                .batch_execute(&format!(
                    "create database {name} template {template}{owner}"
                ))
                .await
            {
                Ok(()) => break,
                Err(e) if tries < 50 && e.code().is_some_and(|c| c.code() == "55006") => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => panic!(
                    "create database {name} from template {template} (run .ci/syncd-tests.sh, \
                     which makes the template): {e:?}"
                ),
            }
        }
        TestDb {
            url: with_db(&url, &name),
            admin: with_db(&admin, &name),
            name,
        }
    }

    /// The daemon's connection: the least-privilege `fred_syncd` role, as in production.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The tests' own connection, for setting up and checking rows the daemon cannot read.
    pub fn admin_url(&self) -> String {
        self.admin.clone()
    }

    pub async fn pg(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.admin, tokio_postgres::NoTls)
            .await
            .expect("connect to the test database");
        tokio::spawn(conn);
        client
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test database kept: {}", self.name);
            return;
        }
        let (admin, name) = (with_db(&self.admin, "postgres"), self.name.clone());
        // Its own thread and runtime: Drop may run inside a runtime that must not block.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok((c, conn)) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await
                {
                    tokio::spawn(conn);
                    let _ = c
                        .batch_execute(&format!("drop database if exists {name} with (force)"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// A URL for commands that must stop before they connect (configuration errors).
pub fn unused_db_url() -> String {
    with_db(
        &env_url(
            "FRED_TEST_DATABASE_URL",
            "postgres://fred_syncd:fred_syncd@127.0.0.1:5432/postgres",
        ),
        "fred_syncd_unused",
    )
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

pub fn body_hash(body: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body))
}

/// An HS256/HS512 JWT made by hand, so tests can forge every edge case independently of syncd.
pub fn jwt(alg: &str, secret: &str, claims: &Value) -> String {
    let header = b64url(json!({"alg": alg, "typ": "JWT"}).to_string().as_bytes());
    let payload = b64url(claims.to_string().as_bytes());
    let input = format!("{header}.{payload}");
    let sig = match alg {
        "HS256" => {
            let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
            m.update(input.as_bytes());
            m.finalize().into_bytes().to_vec()
        }
        "HS512" => {
            let mut m = Hmac::<sha2::Sha512>::new_from_slice(secret.as_bytes()).unwrap();
            m.update(input.as_bytes());
            m.finalize().into_bytes().to_vec()
        }
        "none" => vec![],
        _ => panic!("alg {alg}"),
    };
    format!("{input}.{}", b64url(&sig))
}

/// The claims LiveKit's server sends: iss, nbf = iat = now, exp = now + 5 min, sha256.
pub fn claims(body: &[u8]) -> Value {
    let t = now();
    json!({"iss": KEY, "nbf": t, "iat": t, "exp": t + 300, "sha256": body_hash(body)})
}

pub fn sign(body: &[u8]) -> String {
    jwt("HS256", SECRET, &claims(body))
}

/// The recorded call, one body per line.
pub fn call_events() -> Vec<Value> {
    include_str!("../livekit-call.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The recorded call moved to a room and event ids of its own.
pub fn retag(ev: &Value, tag: &str) -> Value {
    let s = ev
        .to_string()
        .replace("RM_demo000000001", &format!("RM_{tag}"))
        .replace("coaching-demo-1", &format!("room-{tag}"));
    let mut v: Value = serde_json::from_str(&s).unwrap();
    let id = format!("{}_{tag}", v["id"].as_str().unwrap());
    v["id"] = Value::String(id);
    v
}

pub fn unique(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(
        "{prefix}{}x{}x{n}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    )
}

pub fn config(spool: &std::path::Path, db: &str, extra: &[(&str, &str)]) -> Config {
    let mut m: HashMap<String, String> = [
        ("DATABASE_URL", db),
        ("LIVEKIT_API_KEY", KEY),
        ("LIVEKIT_API_SECRET", SECRET),
        ("SYNCD_LISTEN", "127.0.0.1:0"),
        ("SYNCD_SPOOL_DIR", spool.to_str().unwrap()),
        ("SYNCD_RECONCILE_CRON", "off"),
        ("SYNCD_STALE_CRON", "off"),
        ("SYNCD_RETENTION_CRON", "off"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (k, v) in extra {
        m.insert((*k).to_owned(), (*v).to_owned());
    }
    Config::from_map(&m).expect("test config")
}

pub struct Daemon {
    pub running: syncd::app::Running,
    pub url: String,
    pub spool: tempfile::TempDir,
}

pub async fn start(db: &str, extra: &[(&str, &str)]) -> Daemon {
    let spool = tempfile::tempdir().unwrap();
    let cfg = config(spool.path(), db, extra);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = syncd::app::start(&cfg, listener).await.unwrap();
    let url = format!("http://{}", running.addr);
    Daemon {
        running,
        url,
        spool,
    }
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap()
}

pub async fn post_raw(url: &str, body: Vec<u8>, auth: Option<String>) -> u16 {
    let mut req = http()
        .post(format!("{url}/livekit/webhook"))
        .header("content-type", "application/webhook+json")
        .body(body);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    req.send().await.expect("request").status().as_u16()
}

/// Signs and posts one event body exactly as given.
pub async fn post(url: &str, body: &[u8]) -> u16 {
    post_raw(url, body.to_vec(), Some(sign(body))).await
}

/// Waits until every event id is in the ledger (or gives up after `secs`).
pub async fn wait_ledger(db: &tokio_postgres::Client, ids: &[String], secs: u64) -> i64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let n: i64 = db
            .query_one(
                "select count(*) from fred.livekit_events where event_id = any($1)",
                &[&ids],
            )
            .await
            .unwrap()
            .get(0);
        if n as usize == ids.len() || std::time::Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A session row as JSON, without its identity and bookkeeping.
pub async fn outcome(db: &tokio_postgres::Client, room_sid: &str) -> Option<Value> {
    db.query_opt(
        "select to_jsonb(s) - array['id', 'room_sid', 'created_at', 'updated_at'] from fred.coaching_sessions s where room_sid = $1",
        &[&room_sid],
    )
    .await
    .unwrap()
    .map(|r| r.get(0))
}

/// The syncd binary as an operator runs it: a clean environment with the database and the
/// LiveKit key; callers add what their command needs.
pub fn syncd_command(args: &[&str], db: &str) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_syncd"));
    c.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", db)
        .env("LIVEKIT_API_KEY", KEY)
        .env("LIVEKIT_API_SECRET", SECRET);
    c
}

/// The status code of one request.
pub async fn status(req: reqwest::RequestBuilder) -> u16 {
    req.send().await.expect("request").status().as_u16()
}

/// What syncd's /metrics says.
pub async fn metrics_text(url: &str) -> String {
    http()
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A session's `status`, by room sid.
pub async fn session_status(db: &tokio_postgres::Client, room_sid: &str) -> String {
    db.query_one(
        "select status from fred.coaching_sessions where room_sid = $1",
        &[&room_sid],
    )
    .await
    .unwrap()
    .get(0)
}

/// Waits until `check` holds, polling; panics naming `what` when `secs` pass first.
pub async fn eventually<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "not within {secs} s: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Resident memory of a process, in bytes (Linux).
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Installs (once per database) a trigger on `fred.livekit_events` that fails chosen event
/// ids with a chosen SQLSTATE, or stalls them (`sleep`), so tests provoke each error class
/// deliberately.
pub async fn plant_fault(pg: &tokio_postgres::Client, event_id: &str, sqlstate: &str) {
    pg.batch_execute(
        "begin;
         select pg_advisory_xact_lock(727272);
         create table if not exists public.syncd_test_faults (event_id text primary key, sqlstate text not null);
         grant select on public.syncd_test_faults to public;
         create or replace function public.syncd_test_fault() returns trigger
         language plpgsql security definer set search_path = '' as $$
         declare v text;
         begin
           select f.sqlstate into v from public.syncd_test_faults f where f.event_id = new.event_id;
           if v = 'sleep' then
             perform pg_catalog.pg_sleep(30);
           elsif v is not null then
             raise exception 'test fault % for %', v, new.event_id
               using errcode = v, detail = 'planted by the syncd tests';
           end if;
           return new;
         end $$;
         create or replace trigger syncd_test_fault before insert on fred.livekit_events
           for each row execute function public.syncd_test_fault();
         commit;",
    )
    .await
    .expect("install the fault trigger");
    pg.execute(
        "insert into public.syncd_test_faults (event_id, sqlstate) values ($1, $2)
         on conflict (event_id) do update set sqlstate = excluded.sqlstate",
        &[&event_id, &sqlstate],
    )
    .await
    .expect("plant a fault");
}

/// The syncd binary serving, on the port it bound itself.
pub struct Served {
    pub child: std::process::Child,
    pub port: u16,
    pub url: String,
    /// Its log lines (JSON) so far.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Served {
    /// Sends SIGTERM.
    pub fn term(&self) {
        let ok = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success(), "kill -TERM");
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

/// Runs `cmd` (a `syncd serve`) on `127.0.0.1:0` and learns its port from its own log line
/// ("syncd listening", with the bound address): no port is probed and then bound by another.
/// It logs JSON at warn, with syncd's info lines; stderr is read until the process ends.
pub async fn serve(mut cmd: std::process::Command) -> Served {
    use std::io::BufRead;
    cmd.env("SYNCD_LISTEN", "127.0.0.1:0")
        .env("SYNCD_LOG_FORMAT", "json")
        .env("RUST_LOG", "warn,syncd=info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawn syncd");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<String>();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log2 = log.clone();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["fields"]["message"] == "syncd listening"
                && let Some(addr) = v["fields"]["addr"].as_str()
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(addr.to_owned());
            }
            log2.lock().unwrap().push(line);
        }
    });
    let addr = match tokio::time::timeout(std::time::Duration::from_secs(30), rx).await {
        Ok(Ok(a)) => a,
        Ok(Err(_)) => panic!(
            "syncd ended before it logged its address: {}",
            log.lock().unwrap().join("\n")
        ),
        Err(_) => panic!(
            "syncd did not log \"syncd listening\" within 30 s: {}",
            log.lock().unwrap().join("\n")
        ),
    };
    let addr: std::net::SocketAddr = addr.parse().expect("a socket address");
    let url = format!("http://{addr}");
    let health = format!("{url}/healthz");
    eventually(20, "syncd answers /healthz", || {
        let health = health.clone();
        async move {
            http()
                .get(&health)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    })
    .await;
    Served {
        child,
        port: addr.port(),
        url,
        log,
    }
}

/// Waits for a child process to end, at most `secs`; panics naming `what` if it does not.
pub async fn wait_exit(
    child: &mut std::process::Child,
    secs: u64,
    what: &str,
) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("not within {secs} s: {what}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
