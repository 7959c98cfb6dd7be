//! The webhook path: request → verify → spool → 2xx. It never waits on Postgres.

pub mod verify;

use crate::app::AppState;
use crate::spool::{Put, SpoolError};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// What the spool keys an accepted body by, and whether it goes straight to quarantine.
#[derive(Debug, PartialEq)]
pub struct Keyed {
    pub key: String,
    pub room_sid: Option<String>,
    pub room_name: Option<String>,
    pub event: Option<String>,
    pub quarantine: Option<&'static str>,
}

/// Keys a verified body by its event id. A body that is not JSON, or has no string `id`,
/// is keyed by the SHA-256 of its bytes and quarantined: it is signed, so LiveKit must get
/// a 2xx, but no rule can apply it.
pub fn key_body(body: &[u8]) -> Keyed {
    let by_hash = |why| Keyed {
        key: format!("sha256:{:x}", Sha256::digest(body)),
        room_sid: None,
        room_name: None,
        event: None,
        quarantine: Some(why),
    };
    let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(body) else {
        return by_hash("not a JSON object");
    };
    match o.get("id") {
        Some(Value::String(id)) if !id.is_empty() => {
            let room = |k: &str| {
                o.get("room")
                    .and_then(|r| r.get(k))
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
            };
            let event = o.get("event").and_then(Value::as_str).map(str::to_owned);
            Keyed {
                key: id.clone(),
                room_sid: room("sid"),
                room_name: room("name"),
                event,
                quarantine: None,
            }
        }
        _ => by_hash("no string id"),
    }
}

pub async fn receive(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    app.metrics.received.inc();
    let mut auth = headers.get_all(header::AUTHORIZATION).iter();
    let token = match (auth.next(), auth.next()) {
        (Some(v), None) => v.to_str().ok(),
        _ => None,
    };
    if let Err(e) = app.verifier.verify(token, &body) {
        app.metrics.reject(e.reason());
        tracing::debug!(reason = e.reason(), "webhook rejected");
        return (StatusCode::UNAUTHORIZED, "unauthorized\n").into_response();
    }
    let keyed = key_body(&body);
    match app
        .spool
        .put(keyed.key.clone(), body.to_vec(), keyed.quarantine)
        .await
    {
        Ok(Put::Stored) => {
            app.metrics.accepted.inc();
            if let Some(why) = keyed.quarantine {
                app.metrics.quarantined.inc();
                tracing::warn!(key = %keyed.key, reason = why, "signed body quarantined");
            }
            app.drain_wakeup.notify_one();
            app.after_accept(&keyed);
            (StatusCode::OK, "ok\n").into_response()
        }
        Ok(Put::Duplicate) => {
            app.metrics.duplicates.inc();
            (StatusCode::OK, "duplicate\n").into_response()
        }
        Err(SpoolError::Closed) | Err(SpoolError::Io(_)) => {
            app.metrics.reject("spool_unavailable");
            tracing::error!("spool write failed; answering 503");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "2")],
                "spool unavailable\n",
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_by_id_or_by_hash() {
        let k = key_body(br#"{"event":"room_started","id":"EV_1","room":{"sid":"RM_1"}}"#);
        assert_eq!(
            (k.key.as_str(), k.room_sid.as_deref(), k.quarantine),
            ("EV_1", Some("RM_1"), None)
        );
        let k = key_body(b"not json");
        assert!(k.key.starts_with("sha256:") && k.key.len() == 7 + 64);
        assert_eq!(k.quarantine, Some("not a JSON object"));
        assert_eq!(
            key_body(br#"{"event":"room_started","id":5}"#).quarantine,
            Some("no string id")
        );
        assert_eq!(
            key_body(br#"["EV_1"]"#).quarantine,
            Some("not a JSON object")
        );
    }
}
