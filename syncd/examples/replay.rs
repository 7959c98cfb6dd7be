//! Replays a call's webhook bodies (one JSON body per line) into syncd, signed with the official
//! LiveKit SDK exactly as the LiveKit server signs them. With `--shuffle`, the call arrives the
//! way real networks deliver it: `egress_ended` before `room_finished` is swapped, and some
//! events are sent twice.
//!
//!   cargo run -p syncd --example replay -- http://127.0.0.1:8787 call.jsonl [--shuffle]

use base64::Engine;
use livekit_api::access_token::AccessToken;
use sha2::{Digest, Sha256};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _ = dotenvy::dotenv();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(url), Some(file)) = (args.first(), args.get(1)) else {
        return Err("usage: replay <syncd url> <file.jsonl> [--shuffle]".into());
    };
    let key = std::env::var("LIVEKIT_API_KEY")?;
    let secret = std::env::var("LIVEKIT_API_SECRET")?;
    let bodies: Vec<String> = std::fs::read_to_string(file)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    let mut order: Vec<usize> = (0..bodies.len()).collect();
    if args.iter().any(|a| a == "--shuffle") {
        // Out of order: the last two swapped, the egress updates ahead of the participants.
        let n = order.len();
        if n >= 2 {
            order.swap(n - 1, n - 2);
        }
        if n >= 5 {
            order.swap(3, 4);
        }
        // Duplicated: every third event is delivered twice, as LiveKit's retries do.
        order = order
            .into_iter()
            .flat_map(|i| if i % 3 == 0 { vec![i, i] } else { vec![i] })
            .collect();
    }
    let client = reqwest::Client::new();
    for i in order {
        let body = bodies[i].as_bytes();
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body));
        let token = AccessToken::with_api_key(&key, &secret)
            .with_ttl(Duration::from_secs(300))
            .with_sha256(&hash)
            .to_jwt()?;
        let status = client
            .post(format!("{url}/livekit/webhook"))
            .header("content-type", "application/webhook+json")
            .header("authorization", token)
            .body(body.to_vec())
            .send()
            .await?
            .status();
        let event: serde_json::Value = serde_json::from_slice(body)?;
        println!(
            "{:>3} {:<20} {}",
            status.as_u16(),
            event["event"].as_str().unwrap_or("?"),
            event["id"].as_str().unwrap_or("?")
        );
        if !status.is_success() {
            return Err(format!("syncd answered {status}").into());
        }
    }
    Ok(())
}
