//! Load generator for the webhook benchmark: C workers post pre-signed, unique LiveKit-shaped
//! events to syncd for D seconds (loopback only), then report acks, latency, and how many
//! events reached Postgres within the window (rows, not answers).
//!
//!   loadgen <syncd url> <database url> <concurrency> <seconds> <tag>
//!
//! With `STALLED=n`, first opens n unsigned uploads (a forged token, headers and 700 KB of a
//! 1 MB body, then silence) and holds them for the whole run, as in issue 12's attack.
//! Lost = acked ids missing from the ledger after the drain; duplicates = ledger inserts of
//! the same id counted by the bench's audit table (`public.bench_ledger_audit`), when present.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Opens `n` uploads with a forged token that send their headers and 700 KB, then stall.
async fn stalled_uploads(addr: &str, n: usize) -> Vec<TcpStream> {
    let forged = format!(
        "{}.{}.{}",
        b64url(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64url(br#"{"iss":"APIbench","exp":4102444800}"#),
        b64url(b"not-a-signature")
    );
    let head = format!(
        "POST /livekit/webhook HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/webhook+json\r\nauthorization: {forged}\r\ncontent-length: {}\r\n\r\n",
        1 << 20
    );
    let chunk = vec![b'x'; 700 << 10];
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let Ok(Ok(mut s)) =
            tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await
        else {
            continue;
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            s.write_all(head.as_bytes()).await?;
            s.write_all(&chunk).await
        })
        .await;
        out.push(s);
    }
    out
}

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Signs as the LiveKit server does: HS256, iss, nbf, exp and the body's sha256. The token lives
/// 5 minutes, inside SYNCD_MAX_TOKEN_TTL (10 m by default).
fn sign(key: &str, secret: &str, body: &[u8], now: i64) -> String {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body));
    let header = b64url(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims =
        serde_json::json!({"iss": key, "nbf": now, "iat": now, "exp": now + 300, "sha256": hash});
    let input = format!("{header}.{}", b64url(claims.to_string().as_bytes()));
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(input.as_bytes());
    format!("{input}.{}", b64url(&m.finalize().into_bytes()))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() != 5 {
        return Err(
            "usage: loadgen <syncd url> <database url> <concurrency> <seconds> <tag>".into(),
        );
    }
    let (url, db, c, secs, tag) = (
        a[0].clone(),
        a[1].clone(),
        a[2].parse::<usize>()?,
        a[3].parse::<u64>()?,
        a[4].clone(),
    );
    let key = std::env::var("LIVEKIT_API_KEY")?;
    let secret = std::env::var("LIVEKIT_API_SECRET")?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    let per_worker = 12_000;
    let mut work = Vec::with_capacity(c);
    for w in 0..c {
        let mut v = Vec::with_capacity(per_worker);
        for i in 0..per_worker {
            let body = serde_json::json!({"event": "participant_joined", "id": format!("EV_{tag}_{w}_{i}"), "createdAt": "1795510802",
                "room": {"sid": format!("RM_bench{w}"), "name": format!("bench-{w}")},
                "participant": {"sid": "PA_x", "identity": "user-x", "joinedAt": "1795510802"}})
            .to_string()
            .into_bytes();
            let token = sign(&key, &secret, &body, now);
            v.push((format!("EV_{tag}_{w}_{i}"), body, token));
        }
        work.push(v);
    }
    let (pg, conn) = tokio_postgres::connect(&db, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let stalled_n: usize = std::env::var("STALLED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let addr = url.trim_start_matches("http://").to_owned();
    let held = stalled_uploads(&addr, stalled_n).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(c)
        .build()?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for v in work {
        let (client, url) = (client.clone(), format!("{url}/livekit/webhook"));
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut bad, mut sent) = (Vec::new(), 0u64, 0u64);
            let mut acked = Vec::new();
            for (id, body, token) in v {
                if Instant::now() >= deadline {
                    break;
                }
                let t = Instant::now();
                let r = client
                    .post(&url)
                    .header("authorization", token)
                    .body(body)
                    .send()
                    .await;
                sent += 1;
                match r {
                    Ok(r) if r.status().is_success() => {
                        lat.push(t.elapsed());
                        acked.push(id);
                    }
                    _ => bad += 1,
                }
            }
            (lat, bad, sent, acked)
        }));
    }
    let mut lat = Vec::new();
    let mut acked = Vec::new();
    let (mut bad, mut sent) = (0, 0);
    for t in tasks {
        let (l, b, s, a) = t.await?;
        lat.extend(l);
        acked.extend(a);
        bad += b;
        sent += s;
    }
    let window = start.elapsed().as_secs_f64();
    let persisted: i64 = pg
        .query_one("select count(*) from fred.livekit_events", &[])
        .await?
        .get(0);
    // Then let the drain finish (up to a minute), to check that nothing acked is missing.
    let mut settled = 0i64;
    for _ in 0..600 {
        settled = pg
            .query_one(
                "select count(*) from fred.livekit_events where event_id = any($1)",
                &[&acked],
            )
            .await?
            .get(0);
        if settled as usize >= acked.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lost = acked.len() as i64 - settled;
    let audited: bool = pg
        .query_one(
            "select to_regclass('public.bench_ledger_audit') is not null",
            &[],
        )
        .await?
        .get(0);
    let duplicates: Option<i64> = if audited {
        Some(
            pg.query_one(
                "select count(*) - count(distinct event_id) from public.bench_ledger_audit where event_id like $1",
                &[&format!("EV\\_{tag}\\_%")],
            )
            .await?
            .get(0),
        )
    } else {
        None
    };
    let stalled_open = held.len();
    drop(held);
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    };
    println!(
        "{}",
        serde_json::json!({"sent": sent, "acked": lat.len(), "non2xx": bad, "window_s": window,
            "persisted_in_window": persisted, "persisted_per_s": persisted as f64 / window, "acked_per_s": lat.len() as f64 / window,
            "settled": settled, "lost": lost, "duplicates": duplicates, "stalled": stalled_open,
            "p50_ms": pct(0.50), "p99_ms": pct(0.99)})
    );
    Ok(())
}
