//! The LiveKit Egress Twirp API (JSON): start an audio-only room-composite recording into S3,
//! list and stop egresses. The JWT comes from the official `livekit-api` crate. It never
//! writes to the database: callers spool or apply what it returns.
//!
//! Why not `livekit_api::services::egress::EgressClient` (0.10.0): its
//! `start_room_composite_egress` always sends `advanced` encoding options (1080p30 H264 video
//! plus Opus), even for an audio-only recording, and cannot send a preset or omit them; the
//! other way in, `start_egress`, calls the newer `StartEgress` RPC that older servers lack. It
//! also brings a second reqwest (0.13) and accepts no reqwest client of ours, so no timeout or
//! CA roots of our choosing. The JSON Twirp calls here are three small functions.
//!
//! Remote error text is never trusted: it is truncated and every configured secret is cut out
//! before it reaches a log line, and only [`EgressError::short_reason`] reaches a row.

use livekit_api::access_token::{AccessToken, VideoGrants};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use std::sync::Arc;
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

impl EgressError {
    /// A short reason for the session row, which its owner can read: the status, the Twirp
    /// code and at most 80 characters of the (already redacted) message.
    pub fn short_reason(&self) -> String {
        match self {
            EgressError::Twirp { status, code, msg } => {
                let code: String = code
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .take(40)
                    .collect();
                let msg: String = msg.chars().take(80).collect();
                format!("egress API {status} {code}: {msg}")
            }
            EgressError::Transport(_) => "egress API unreachable".to_owned(),
            EgressError::Reply(_) => "egress API reply not understood".to_owned(),
            EgressError::Token(_) => "could not sign the egress request".to_owned(),
        }
    }
}

/// The most of a remote error's text that is kept.
const MAX_REMOTE_TEXT: usize = 200;

/// Cuts every secret out of `text`, then truncates it.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(s.as_str(), "[redacted]");
    }
    if out.chars().count() > MAX_REMOTE_TEXT {
        out = out.chars().take(MAX_REMOTE_TEXT).collect::<String>() + "…";
    }
    out
}

#[derive(Clone)]
pub struct Egress {
    http: reqwest::Client,
    base: String,
    key: String,
    secret: SecretString,
    /// Cut out of any remote error text.
    secrets: Arc<Vec<String>>,
}

impl Egress {
    /// `None` when LIVEKIT_URL is not set.
    pub fn from_config(config: &crate::config::Config) -> Option<Egress> {
        let url = config.livekit.url.as_ref()?;
        let (key, secret) = &config.livekit.keys[0];
        Some(Egress::new(
            url,
            key,
            secret.expose_secret(),
            config.egress_timeout,
            config.secrets(),
        ))
    }

    pub fn new(
        base: &str,
        key: &str,
        secret: &str,
        timeout: Duration,
        secrets: Vec<String>,
    ) -> Egress {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .expect("reqwest client");
        Egress {
            http,
            base: base.trim_end_matches('/').to_owned(),
            key: key.to_owned(),
            secret: SecretString::from(secret),
            secrets: Arc::new(secrets),
        }
    }

    async fn call(&self, method: &str, body: Value) -> Result<Value, EgressError> {
        let token = AccessToken::with_api_key(&self.key, self.secret.expose_secret())
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
            .map_err(|e| EgressError::Transport(redact(&e.to_string(), &self.secrets)))?;
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .map_err(|e| EgressError::Transport(e.to_string()))?;
        if status != 200 {
            let err: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            return Err(EgressError::Twirp {
                status,
                code: redact(err["code"].as_str().unwrap_or("unknown"), &self.secrets),
                msg: redact(err["msg"].as_str().unwrap_or(&text), &self.secrets),
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
                    "secret": s3.secret.expose_secret(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_cuts_secrets_and_truncates() {
        let secrets = vec!["s3-secret-value".to_owned(), "x".to_owned()];
        let r = redact(
            &format!(
                "bad request: {{\"secret\": \"s3-secret-value\"}} {}",
                "y".repeat(500)
            ),
            &secrets,
        );
        assert!(!r.contains("s3-secret-value"), "{r}");
        assert!(r.contains("[redacted]"));
        assert!(r.chars().count() <= MAX_REMOTE_TEXT + 1);
    }
}
