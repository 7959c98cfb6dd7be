//! Recordings: start an egress when a room starts, and confirm finished uploads in S3.
//!
//! A start never blocks the webhook: it runs in the background, and what it learns (the
//! egress id or the failure) is spooled as a `syncd_*` event, so it reaches Postgres through
//! the same durable path, in order, after the room's own `room_started`.

use crate::config::{Config, Record, S3 as S3Config};
use crate::db::{Db, DbError};
use crate::egress::Egress;
use crate::metrics::{Metrics, RecordingOutcome};
use crate::s3::S3;
use crate::spool::Spool;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_postgres::types::Type;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What follows an accepted webhook without delaying its answer: a new room gets its
/// recording started, or its row marked `disabled`. Its tasks are tracked, so shutdown waits
/// for them (within the grace period).
#[derive(Clone)]
pub struct RoomStartedHook {
    recorder: Option<Recorder>,
    spool: Spool,
    wake: Arc<Notify>,
    tasks: TaskTracker,
}

impl RoomStartedHook {
    pub fn new(
        recorder: Option<Recorder>,
        spool: Spool,
        wake: Arc<Notify>,
        tasks: TaskTracker,
    ) -> Self {
        RoomStartedHook {
            recorder,
            spool,
            wake,
            tasks,
        }
    }

    /// Called for every accepted event; acts on `room_started` only.
    pub fn after_accept(&self, event: Option<&str>, sid: Option<&str>, name: Option<&str>) {
        let (Some("room_started"), Some(sid), Some(name)) = (event, sid, name) else {
            return;
        };
        let (sid, name) = (sid.to_owned(), name.to_owned());
        match &self.recorder {
            Some(r) if r.wants(&name) => {
                let r = r.clone();
                self.tasks.spawn(async move { r.start(sid, name).await });
            }
            _ => {
                let (spool, wake) = (self.spool.clone(), self.wake.clone());
                self.tasks.spawn(async move {
                    spool_event(&spool, &wake, disabled_event(&sid, &name)).await
                });
            }
        }
    }
}

#[derive(Clone)]
pub struct Recorder {
    egress: Egress,
    s3: S3Config,
    policy: Record,
    spool: Spool,
    db: Db,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    instance: String,
}

pub fn instance_name() -> String {
    format!(
        "{}:{}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "syncd".into()),
        std::process::id()
    )
}

impl Recorder {
    /// `None` when recording is off (no S3 configured, or SYNCD_RECORD=none).
    pub fn new(
        config: &Config,
        spool: Spool,
        db: Db,
        metrics: Arc<Metrics>,
        wake: Arc<Notify>,
    ) -> Option<Recorder> {
        let s3 = config.s3.as_ref()?;
        if !config.record.all {
            return None;
        }
        Some(Recorder {
            egress: Egress::from_config(config)?,
            s3: s3.clone(),
            policy: config.record.clone(),
            spool,
            db,
            metrics,
            wake,
            instance: instance_name(),
        })
    }

    pub fn wants(&self, room_name: &str) -> bool {
        self.policy
            .prefix
            .as_deref()
            .is_none_or(|p| room_name.starts_with(p))
    }

    async fn start(self, sid: String, name: String) {
        // Never twice for one room instance: claim it on local disk, then in Postgres if it
        // answers quickly. Two replicas that both start while Postgres is down is the one case
        // left; the reconcile job stops the extra egress.
        match self.spool.claim(sid.clone()).await {
            Ok(false) => return,
            Ok(true) => {}
            Err(e) => {
                tracing::warn!(error = %e, room = %name, "could not claim the egress start locally")
            }
        }
        match tokio::time::timeout(
            Duration::from_secs(2),
            claim_in_postgres(&self.db, &sid, &name, &self.instance),
        )
        .await
        {
            Ok(Ok(false)) => {
                self.metrics.recording(RecordingOutcome::ClaimedElsewhere);
                return;
            }
            Ok(Ok(true)) => {}
            Ok(Err(e)) => {
                tracing::info!(error = %e, room = %name, "egress claim not recorded in Postgres; relying on the local claim")
            }
            Err(_) => {
                tracing::info!(room = %name, "Postgres slow; relying on the local egress claim")
            }
        }
        let event = match self.egress.start(&name, &self.s3).await {
            Ok(info) => {
                self.metrics.recording(RecordingOutcome::Started);
                let id = info
                    .get("egress_id")
                    .or_else(|| info.get("egressId"))
                    .cloned()
                    .unwrap_or(Value::Null);
                tracing::info!(room = %name, egress_id = %id, "recording started");
                json!({"event": "syncd_egress_started", "id": format!("SY_started_{sid}"), "room": {"sid": sid, "name": name}, "egress_id": id})
            }
            Err(e) => {
                self.metrics.recording(RecordingOutcome::Unavailable);
                // `e` carries remote text already truncated and stripped of secrets; the row
                // gets only the short reason.
                tracing::warn!(room = %name, error = %e, "recording could not start; the call goes on without one");
                json!({"event": "syncd_egress_failed", "id": format!("SY_failed_{sid}"), "room": {"sid": sid, "name": name}, "error": e.short_reason()})
            }
        };
        spool_event(&self.spool, &self.wake, event).await;
    }
}

/// Spools a syncd event, retrying for a while: it carries what only this process knows.
pub async fn spool_event(spool: &Spool, wake: &Notify, event: Value) {
    let key = event["id"].as_str().unwrap_or_default().to_owned();
    let body = event.to_string().into_bytes();
    for attempt in 0..60 {
        match spool.put(key.clone(), body.clone(), None).await {
            Ok(_) => {
                wake.notify_one();
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, key = %key, attempt, "could not spool a syncd event; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    tracing::error!(key = %key, event = %event, "gave up spooling a syncd event");
}

/// The record of a room whose recording is off, so the row says `disabled`.
pub fn disabled_event(sid: &str, name: &str) -> Value {
    json!({"event": "syncd_recording_disabled", "id": format!("SY_disabled_{sid}"), "room": {"sid": sid, "name": name}})
}

async fn claim_in_postgres(
    db: &Db,
    sid: &str,
    name: &str,
    instance: &str,
) -> Result<bool, DbError> {
    let claimed: Option<bool> = db
        .scalar(
            "select fred.claim_egress_start($1, $2, $3)",
            &[
                (&sid, Type::TEXT),
                (&name, Type::TEXT),
                (&instance, Type::TEXT),
            ],
        )
        .await?;
    Ok(claimed.unwrap_or(false))
}

/// Confirms finished uploads: `ready` with the object's size, or `missing`. A failed S3 request
/// changes nothing and is retried on the next pass. Returns how many rows changed.
pub async fn verify_pending(db: &Db, s3: &S3) -> Result<usize, DbError> {
    // No pooled connection is held across the S3 calls.
    let rows = db
        .query(
            "select session_id::text, bucket, key from fred.recordings_to_verify(100)",
            &[],
        )
        .await?;
    let mut changed = 0;
    for r in rows {
        let id: String = r.get(0);
        let bucket: Option<String> = r.get(1);
        let key: String = r.get(2);
        let bucket = bucket.unwrap_or_else(|| s3.bucket.clone());
        let (found, bytes) = match s3.head(&bucket, &key).await {
            Ok(Some(size)) => (true, Some(size)),
            Ok(None) => (false, None),
            Err(e) => {
                tracing::warn!(error = %e, bucket = %bucket, key = %key, "HeadObject failed; will retry");
                continue;
            }
        };
        let status: Option<String> = db
            .scalar::<Option<String>>(
                "select fred.record_verification($1::text::uuid, $2, $3)",
                &[
                    (&id, Type::TEXT),
                    (&found, Type::BOOL),
                    (&bytes, Type::INT8),
                ],
            )
            .await?
            .flatten();
        if status.is_some() {
            tracing::info!(bucket = %bucket, key = %key, found, "recording verified");
            changed += 1;
        }
    }
    Ok(changed)
}

/// Runs verification every `every` and whenever woken (after a batch lands).
pub async fn verify_loop(
    db: Db,
    s3: S3,
    wake: Arc<Notify>,
    every: Duration,
    stop: CancellationToken,
) {
    loop {
        if let Err(e) = verify_pending(&db, &s3).await {
            tracing::debug!(error = %e, "verification pass failed");
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorder(prefix: Option<&str>) -> Recorder {
        let mut env: std::collections::HashMap<String, String> = [
            ("DATABASE_URL", "postgres://u@127.0.0.1:1/db"),
            ("LIVEKIT_URL", "wss://lk.example.com"),
            ("LIVEKIT_API_KEY", "k"),
            ("LIVEKIT_API_SECRET", "s"),
            ("RECORDING_S3_ACCESS_KEY", "a"),
            ("RECORDING_S3_SECRET", "b"),
            ("RECORDING_S3_ENDPOINT", "https://s3.example"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        if let Some(p) = prefix {
            env.insert("SYNCD_RECORD_PREFIX".into(), p.into());
        }
        let config = Config::from_map(&env).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let db = config.db().unwrap();
        Recorder::new(&config, spool, db, Metrics::new(), Arc::new(Notify::new()))
            .expect("recording is on")
    }

    #[tokio::test]
    async fn prefix_picks_the_rooms_to_record() {
        assert!(recorder(None).wants("anything"));
        let r = recorder(Some("coach-"));
        assert!(r.wants("coach-42"));
        assert!(!r.wants("support-42"));
    }
}
