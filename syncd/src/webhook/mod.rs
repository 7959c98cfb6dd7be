//! The webhook path: request → verify → spool → 2xx. It never waits on Postgres.

pub mod verify;

use crate::metrics::RejectReason;
use crate::spool::{Put, SpoolError};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use sha2::{Digest, Sha256};
use verify::VerifyError;

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

/// The webhook door: the token from the header first, then Content-Length against the limit
/// and a share of the bytes in flight, and only then the body, checked against the token's
/// sha256. A stranger costs a header parse; nothing waits on Postgres.
pub async fn receive(State(app): State<AppState>, req: Request) -> Response {
    app.metrics.received.inc();
    let (parts, body) = req.into_parts();
    let signed = match app
        .verifier
        .check_token(single_authorization(&parts.headers))
    {
        Ok(s) => s,
        Err(e) => return unauthorized(&app, e),
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > app.max_body) {
        return refuse(
            &app,
            RejectReason::TooLarge,
            StatusCode::PAYLOAD_TOO_LARGE,
            "body too large\n",
        );
    }
    let share = declared.unwrap_or(app.max_body).max(1);
    let Ok(_permit) = app.inflight.clone().try_acquire_many_owned(share as u32) else {
        return busy(&app);
    };
    let body = match axum::body::to_bytes(body, app.max_body).await {
        Ok(b) => b,
        Err(e) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            return if too_large {
                refuse(
                    &app,
                    RejectReason::TooLarge,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body too large\n",
                )
            } else {
                refuse(
                    &app,
                    RejectReason::BodyRead,
                    StatusCode::BAD_REQUEST,
                    "body not read\n",
                )
            };
        }
    };
    if let Err(e) = signed.check_body(&body) {
        return unauthorized(&app, e);
    }
    spool(&app, &body).await
}

fn single_authorization(headers: &HeaderMap) -> Option<&str> {
    let mut auth = headers.get_all(header::AUTHORIZATION).iter();
    match (auth.next(), auth.next()) {
        (Some(v), None) => v.to_str().ok(),
        _ => None,
    }
}

fn refuse(
    app: &AppState,
    reason: RejectReason,
    status: StatusCode,
    text: &'static str,
) -> Response {
    app.metrics.reject(reason);
    tracing::debug!(reason = reason.as_str(), "webhook refused");
    (status, text).into_response()
}

fn unauthorized(app: &AppState, e: VerifyError) -> Response {
    refuse(app, e.reason(), StatusCode::UNAUTHORIZED, "unauthorized\n")
}

fn busy(app: &AppState) -> Response {
    app.metrics.reject(RejectReason::Busy);
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "1")],
        "busy: too many bytes in flight\n",
    )
        .into_response()
}

/// Stores a verified body; the 2xx means it is on disk.
async fn spool(app: &AppState, body: &[u8]) -> Response {
    let keyed = key_body(body);
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
            app.room_started.after_accept(
                keyed.event.as_deref(),
                keyed.room_sid.as_deref(),
                keyed.room_name.as_deref(),
            );
            (StatusCode::OK, "ok\n").into_response()
        }
        Ok(Put::Duplicate) => {
            app.metrics.duplicates.inc();
            (StatusCode::OK, "duplicate\n").into_response()
        }
        Err(SpoolError::Closed) | Err(SpoolError::Io(_)) => {
            app.metrics.reject(RejectReason::SpoolUnavailable);
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
