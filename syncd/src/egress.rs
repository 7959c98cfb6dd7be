//! The LiveKit Egress Twirp API (JSON): start an audio-only room-composite recording into S3,
//! list and stop egresses. The JWT comes from the official `livekit-api` crate. It never
//! writes to the database: callers spool or apply what it returns.

use livekit_api::access_token::{AccessToken, VideoGrants};
use serde_json::{Value, json};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    /// LiveKit answered with a Twirp error.
    #[error("egress API {status} {code}: {msg}")]
    Twirp {
        status: u16,
        code: String,
        msg: String,
    },
    /// No answer: refused, timed out, or not HTTP.
    #[error("egress API unreachable: {0}")]
    Transport(String),
    #[error("egress API reply not understood: {0}")]
    Reply(String),
    #[error("could not sign the request: {0}")]
    Token(String),
}

impl EgressError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, EgressError::Twirp { status: 404, .. })
            || matches!(self, EgressError::Twirp { code, .. } if code == "not_found")
    }
}

#[derive(Clone)]
pub struct Egress {
    http: reqwest::Client,
    base: String,
    key: String,
    secret: String,
}

impl Egress {
    pub fn new(base: &str, key: &str, secret: &str, timeout: Duration) -> Egress {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .expect("reqwest client");
        Egress {
            http,
            base: base.trim_end_matches('/').to_owned(),
            key: key.to_owned(),
            secret: secret.to_owned(),
        }
    }

    async fn call(&self, method: &str, body: Value) -> Result<Value, EgressError> {
        let token = AccessToken::with_api_key(&self.key, &self.secret)
            .with_ttl(Duration::from_secs(600))
            .with_grants(VideoGrants {
                room_record: true,
                ..Default::default()
            })
            .to_jwt()
            .map_err(|e| EgressError::Token(e.to_string()))?;
        let resp = self
            .http
            .post(format!("{}/twirp/livekit.Egress/{method}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .map_err(|e| EgressError::Transport(e.to_string()))?;
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .map_err(|e| EgressError::Transport(e.to_string()))?;
        if status != 200 {
            let err: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            return Err(EgressError::Twirp {
                status,
                code: err["code"].as_str().unwrap_or("unknown").to_owned(),
                msg: err["msg"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| text.chars().take(200).collect()),
            });
        }
        if text.trim().is_empty() {
            return Ok(json!({}));
        }
        serde_json::from_str(&text).map_err(|e| EgressError::Reply(e.to_string()))
    }

    /// Starts an audio-only OGG recording of `room` into the bucket; returns the EgressInfo.
    pub async fn start(&self, room: &str, s3: &crate::config::S3) -> Result<Value, EgressError> {
        let body = json!({
            "room_name": room,
            "audio_only": true,
            "file_outputs": [{
                "file_type": "OGG",
                "filepath": s3.key_template,
                "disable_manifest": true,
                "s3": {
                    "access_key": s3.access_key,
                    "secret": s3.secret,
                    "region": s3.region,
                    // Egress wants no trailing slash here, or `location` gets `//`.
                    "endpoint": s3.endpoint.trim_end_matches('/'),
                    "bucket": s3.bucket,
                    "force_path_style": true
                }
            }]
        });
        let info = self.call("StartRoomCompositeEgress", body).await?;
        match info
            .get("egress_id")
            .or_else(|| info.get("egressId"))
            .and_then(Value::as_str)
        {
            Some(id) if !id.is_empty() => Ok(info),
            _ => Err(EgressError::Reply("no egress_id in the reply".into())),
        }
    }

    /// ListEgress by egress id or by room name; every page.
    pub async fn list(
        &self,
        egress_id: Option<&str>,
        room: Option<&str>,
    ) -> Result<Vec<Value>, EgressError> {
        let mut items = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let mut body = json!({});
            if let Some(id) = egress_id {
                body["egress_id"] = json!(id);
            }
            if let Some(r) = room {
                body["room_name"] = json!(r);
            }
            if let Some(p) = &page {
                body["page_token"] = json!({"token": p});
            }
            let reply = self.call("ListEgress", body).await?;
            if let Some(Value::Array(a)) = reply.get("items") {
                items.extend(a.iter().cloned());
            }
            match reply
                .get("next_page_token")
                .or_else(|| reply.get("nextPageToken"))
                .and_then(|t| t.get("token").or(Some(t)))
                .and_then(Value::as_str)
            {
                Some(t) if !t.is_empty() && items.len() < 10_000 => page = Some(t.to_owned()),
                _ => return Ok(items),
            }
        }
    }

    pub async fn stop(&self, egress_id: &str) -> Result<Value, EgressError> {
        self.call("StopEgress", json!({"egress_id": egress_id}))
            .await
    }
}
