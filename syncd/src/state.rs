//! The state every request handler and background task shares.

use crate::config::Config;
use crate::db::Db;
use crate::metrics::Metrics;
use crate::recording::{Recorder, RoomStartedHook};
use crate::s3::S3;
use crate::spool::Spool;
use crate::webhook::verify::Verifier;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use tokio_util::task::TaskTracker;

#[derive(Clone)]
pub struct AppState {
    pub verifier: Verifier,
    pub spool: Spool,
    pub db: Db,
    pub metrics: Arc<Metrics>,
    pub drain_wakeup: Arc<Notify>,
    /// Starts recordings (or marks them disabled) for new rooms.
    pub room_started: RoomStartedHook,
    pub s3: Option<S3>,
    /// Wakes the upload verifier after a batch lands.
    pub verify_wakeup: Arc<Notify>,
    /// Tasks spawned on behalf of requests; shutdown waits for them within the grace period.
    pub tasks: TaskTracker,
    /// Bytes of webhook bodies being read, by Content-Length (SYNCD_MAX_INFLIGHT_BYTES).
    pub inflight: Arc<Semaphore>,
    pub max_body: usize,
    /// /readyz answers 503 when the oldest queued event is older (SYNCD_READY_MAX_LAG).
    pub ready_max_lag: Duration,
}

impl AppState {
    pub fn new(config: &Config) -> Result<AppState, Box<dyn std::error::Error + Send + Sync>> {
        let spool = Spool::open(&config.spool_dir)?;
        let db = config.db()?;
        let metrics = Metrics::new();
        let drain_wakeup = Arc::new(Notify::new());
        let tasks = TaskTracker::new();
        let recorder = Recorder::new(
            config,
            spool.clone(),
            db.clone(),
            metrics.clone(),
            drain_wakeup.clone(),
        );
        if recorder.is_none() {
            tracing::info!(
                "recording is off: RECORDING_S3_ACCESS_KEY, RECORDING_S3_SECRET and RECORDING_S3_ENDPOINT must all be set (and SYNCD_RECORD not \"none\")"
            );
        }
        Ok(AppState {
            verifier: Verifier::new(&config.livekit.keys, config.limits.max_token_ttl),
            room_started: RoomStartedHook::new(
                recorder,
                spool.clone(),
                drain_wakeup.clone(),
                tasks.clone(),
            ),
            spool,
            db,
            metrics,
            drain_wakeup,
            s3: config.s3.as_ref().map(S3::new),
            verify_wakeup: Arc::new(Notify::new()),
            tasks,
            inflight: Arc::new(Semaphore::new(config.limits.max_inflight_bytes)),
            max_body: config.max_body,
            ready_max_lag: config.drain.ready_max_lag,
        })
    }
}
