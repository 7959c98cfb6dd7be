//! Wiring: the HTTP server, the drainer and (when configured) recordings and jobs.

use crate::config::Config;
use crate::db::Db;
use crate::drain::Drainer;
use crate::jobs;
use crate::metrics::Metrics;
use crate::recording::{self, Recorder};
use crate::s3::S3;
use crate::spool::Spool;
use crate::webhook::{self, Keyed, verify::Verifier};
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

#[derive(Clone)]
pub struct AppState {
    pub verifier: Verifier,
    pub spool: Spool,
    pub db: Db,
    pub metrics: Arc<Metrics>,
    pub drain_wakeup: Arc<Notify>,
    /// Present when recording is on.
    pub recorder: Option<Recorder>,
    pub s3: Option<S3>,
    /// Wakes the upload verifier after a batch lands.
    pub verify_wakeup: Arc<Notify>,
}

impl AppState {
    pub fn new(config: &Config) -> Result<AppState, Box<dyn std::error::Error + Send + Sync>> {
        let spool = Spool::open(&config.spool_dir)?;
        let db = Db::new(&config.database_url)?;
        let metrics = Metrics::new();
        let drain_wakeup = Arc::new(Notify::new());
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
            verifier: Verifier::new(&config.livekit.keys),
            spool,
            db,
            metrics,
            drain_wakeup,
            recorder,
            s3: config.s3.as_ref().map(S3::new),
            verify_wakeup: Arc::new(Notify::new()),
        })
    }

    /// Work that follows an accepted webhook without delaying its answer: a new room gets its
    /// recording started, or its row marked `disabled`.
    pub fn after_accept(&self, keyed: &Keyed) {
        if keyed.event.as_deref() != Some("room_started") {
            return;
        }
        let (Some(sid), Some(name)) = (keyed.room_sid.clone(), keyed.room_name.clone()) else {
            return;
        };
        match &self.recorder {
            Some(r) if r.wants(&name) => r.on_room_started(sid, name),
            _ => {
                let (spool, wake) = (self.spool.clone(), self.drain_wakeup.clone());
                tokio::spawn(async move {
                    recording::spool_event(&spool, &wake, recording::disabled_event(&sid, &name))
                        .await
                });
            }
        }
    }
}

pub fn router(state: AppState, max_body: usize) -> Router {
    Router::new()
        .route(
            "/livekit/webhook",
            post(webhook::receive).layer(DefaultBodyLimit::max(max_body)),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(State(app): State<AppState>) -> impl IntoResponse {
    let spool = app.spool.probe().await;
    let db = app.db.check().await;
    let body = serde_json::json!({
        "spool": spool.as_ref().map(|_| "ok".to_owned()).unwrap_or_else(|e| e.to_string()),
        "database": db.as_ref().map(|_| "ok".to_owned()).unwrap_or_else(|e| e.to_string()),
    });
    let status = if spool.is_ok() && db.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
}

async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    if let Ok(d) = app.spool.depth().await {
        app.metrics.spool_depth.set(d);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
}

/// A running daemon: its address, and a handle to stop it gracefully.
pub struct Running {
    pub addr: std::net::SocketAddr,
    pub state: AppState,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stop accepting, finish in-flight requests, let the drainer finish its batch, then return.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Starts the server and the drainer on `listener`. Postgres may be down: webhooks are still
/// accepted, and only /readyz reports it.
pub async fn start(
    config: &Config,
    listener: TcpListener,
) -> Result<Running, Box<dyn std::error::Error + Send + Sync>> {
    let state = AppState::new(config)?;
    let addr = listener.local_addr()?;
    let (stop, stop_rx) = watch::channel(false);

    let drainer = Drainer {
        spool: state.spool.clone(),
        db: state.db.clone(),
        metrics: state.metrics.clone(),
        wake: state.drain_wakeup.clone(),
        landed: state.verify_wakeup.clone(),
    };
    let mut http_stop = stop_rx.clone();
    let app = router(state.clone(), config.max_body);
    let server = tokio::spawn(async move {
        let shutdown = async move {
            let _ = http_stop.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "http server failed");
        }
    });
    let drain = tokio::spawn(drainer.run(stop_rx.clone()));
    let mut tasks = vec![server, drain];
    if let Some(s3) = state.s3.clone() {
        tasks.push(tokio::spawn(recording::verify_loop(
            state.db.clone(),
            s3,
            state.verify_wakeup.clone(),
            std::time::Duration::from_secs(30),
            stop_rx.clone(),
        )));
    }
    let ctx = jobs::Context::new(
        config,
        state.db.clone(),
        state.metrics.clone(),
        recording::instance_name(),
    );
    for (job, schedule) in [
        (jobs::Job::Reconcile, &config.jobs.reconcile),
        (jobs::Job::Stale, &config.jobs.stale),
        (jobs::Job::Retention, &config.jobs.retention),
    ] {
        if let Some(schedule) = schedule.clone() {
            tasks.push(tokio::spawn(jobs::schedule_loop(
                ctx.clone(),
                job,
                schedule,
                stop_rx.clone(),
            )));
        }
    }
    tracing::info!(%addr, spool = %state.spool.path().display(), "syncd listening");
    Ok(Running {
        addr,
        state,
        stop,
        tasks,
    })
}
