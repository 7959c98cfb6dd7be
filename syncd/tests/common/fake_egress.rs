//! A faithful local fake of LiveKit's Egress Twirp API: it checks the JWT and its roomRecord
//! grant, records every request, and answers like LiveKit, errors included.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use livekit_api::access_token::TokenVerifier;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug)]
pub enum Mode {
    /// Start succeeds with this egress id.
    Ok(String),
    /// Answer with this status and body.
    Fail(u16, String),
    /// Take this long before answering 200.
    Slow(u64, String),
}

#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub authorization: String,
    pub body: Value,
}

#[derive(Clone)]
pub struct Fake {
    pub url: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub mode: Arc<Mutex<Mode>>,
    /// Egresses LiveKit knows, as snake_case EgressInfo.
    pub egresses: Arc<Mutex<Vec<Value>>>,
    pub answered: Arc<Mutex<usize>>,
    key: String,
    secret: String,
}

impl Fake {
    pub async fn start(key: &str, secret: &str, mode: Mode) -> Fake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = Fake {
            url: format!("http://{}", listener.local_addr().unwrap()),
            seen: Arc::default(),
            mode: Arc::new(Mutex::new(mode)),
            egresses: Arc::default(),
            answered: Arc::default(),
            key: key.into(),
            secret: secret.into(),
        };
        let app = Router::new()
            .route(
                "/twirp/livekit.Egress/{method}",
                axum::routing::post(handle),
            )
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        fake
    }

    pub fn requests(&self, method: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.method == method)
            .cloned()
            .collect()
    }

    pub fn add_egress(&self, info: Value) {
        self.egresses.lock().unwrap().push(info);
    }
}

fn twirp(status: u16, code: &str, msg: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        json!({"code": code, "msg": msg}).to_string(),
    )
        .into_response()
}

pub fn egress_info(id: &str, room: &str, status: &str) -> Value {
    json!({"egress_id": id, "room_id": format!("RM_{room}"), "room_name": room, "status": status,
           "started_at": "0", "ended_at": "0", "updated_at": "1", "error": "", "error_code": 0, "details": "",
           "source_type": "EGRESS_SOURCE_TYPE_SDK", "file_results": [{"filename": format!("{room}/a.ogg"), "size": "0"}],
           "room_composite": {"room_name": room, "audio_only": true}})
}

async fn handle(
    State(fake): State<Fake>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    fake.seen.lock().unwrap().push(Seen {
        method: method.clone(),
        authorization: authorization.clone(),
        body: body.clone(),
    });
    let Some(token) = authorization.strip_prefix("Bearer ") else {
        return (StatusCode::UNAUTHORIZED, "no token").into_response();
    };
    let Ok(claims) = TokenVerifier::with_api_key(&fake.key, &fake.secret).verify(token) else {
        return (StatusCode::UNAUTHORIZED, "invalid token").into_response();
    };
    if !claims.video.room_record {
        return twirp(401, "unauthenticated", "permissions denied");
    }
    let reply = match method.as_str() {
        "StartRoomCompositeEgress" => {
            let mode = fake.mode.lock().unwrap().clone();
            let room = body["room_name"].as_str().unwrap_or("").to_owned();
            match mode {
                Mode::Ok(id) => {
                    let info = egress_info(&id, &room, "EGRESS_STARTING");
                    fake.add_egress(info.clone());
                    (StatusCode::OK, info.to_string()).into_response()
                }
                Mode::Fail(status, b) => (StatusCode::from_u16(status).unwrap(), b).into_response(),
                Mode::Slow(secs, id) => {
                    tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
                    (
                        StatusCode::OK,
                        egress_info(&id, &room, "EGRESS_STARTING").to_string(),
                    )
                        .into_response()
                }
            }
        }
        "ListEgress" => {
            let all = fake.egresses.lock().unwrap().clone();
            if let Some(id) = body["egress_id"].as_str().filter(|s| !s.is_empty()) {
                match all.iter().find(|e| e["egress_id"] == id) {
                    Some(e) => (StatusCode::OK, json!({"items": [e]}).to_string()).into_response(),
                    None => twirp(404, "not_found", "egress does not exist"),
                }
            } else {
                let room = body["room_name"].as_str().unwrap_or("");
                let items: Vec<Value> = all
                    .into_iter()
                    .filter(|e| room.is_empty() || e["room_name"] == room)
                    .collect();
                (
                    StatusCode::OK,
                    json!({"items": items, "next_page_token": null}).to_string(),
                )
                    .into_response()
            }
        }
        "StopEgress" => {
            let id = body["egress_id"].as_str().unwrap_or("");
            let mut all = fake.egresses.lock().unwrap();
            match all.iter_mut().find(|e| e["egress_id"] == id) {
                None => twirp(404, "not_found", "egress does not exist"),
                Some(e)
                    if matches!(
                        e["status"].as_str(),
                        Some(
                            "EGRESS_COMPLETE"
                                | "EGRESS_FAILED"
                                | "EGRESS_ABORTED"
                                | "EGRESS_LIMIT_REACHED"
                        )
                    ) =>
                {
                    twirp(
                        412,
                        "failed_precondition",
                        &format!(
                            "egress with status {} cannot be stopped",
                            e["status"].as_str().unwrap()
                        ),
                    )
                }
                Some(e) => {
                    e["status"] = json!("EGRESS_ENDING");
                    (StatusCode::OK, e.to_string()).into_response()
                }
            }
        }
        _ => twirp(404, "bad_route", "no handler for path"),
    };
    *fake.answered.lock().unwrap() += 1;
    reply
}
