//! Wiring: the HTTP server, the drainer, the spool's upkeep and (when configured) recordings
//! and jobs; and a bounded shutdown.

use crate::config::Config;
use crate::drain::Drainer;
use crate::jobs;
use crate::recording;
use crate::server;
use crate::state::AppState;
use crate::webhook;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower_http::timeout::TimeoutLayer;

pub fn router(state: AppState, request_timeout: Duration) -> Router {
    Router::new()
        .route(
            "/livekit/webhook",
            post(webhook::receive).layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                request_timeout,
            )),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// How long /readyz waits for Postgres.
const READY_DB_WAIT: Duration = Duration::from_secs(3);

/// 200 when the spool can write, Postgres answers with a new enough fred, and the oldest
/// queued event is younger than SYNCD_READY_MAX_LAG; 503 otherwise, saying which.
async fn readyz(State(app): State<AppState>) -> impl IntoResponse {
    let spool = app.spool.probe().await;
    // In its own task, so a slow answer is never cut off mid-statement.
    let check = tokio::spawn({
        let db = app.db.clone();
        async move { db.check().await }
    });
    let db = match tokio::time::timeout(READY_DB_WAIT, check).await {
        Ok(Ok(r)) => r.map_err(|e| e.to_string()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {READY_DB_WAIT:?}")),
    };
    let lag = app.spool.oldest_age().await.unwrap_or(0);
    app.metrics.oldest_queued_age.set(lag);
    let lagging = lag as u64 > app.ready_max_lag.as_secs();
    let drain = if lagging {
        format!(
            "lagging: the oldest queued event waited {lag} s, over SYNCD_READY_MAX_LAG ({} s)",
            app.ready_max_lag.as_secs()
        )
    } else {
        "ok".to_owned()
    };
    let body = serde_json::json!({
        "spool": spool.as_ref().map(|_| "ok".to_owned()).unwrap_or_else(|e| e.to_string()),
        "database": db.as_ref().map(|_| "ok".to_owned()).unwrap_or_else(|e| e.clone()),
        "drain": drain,
        "oldest_queued_age_seconds": lag,
    });
    let status = if spool.is_ok() && db.is_ok() && !lagging {
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
    if let Ok(age) = app.spool.oldest_age().await {
        app.metrics.oldest_queued_age.set(age);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
}

/// Prunes the spool's bookkeeping and gives its space back, every `every`.
async fn maintain_loop(
    spool: crate::spool::Spool,
    every: Duration,
    keep: Duration,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
        match spool.maintain(keep).await {
            Ok(m) => tracing::debug!(
                seen_pruned = m.seen_pruned,
                claims_pruned = m.claims_pruned,
                bytes_on_disk = m.bytes_on_disk,
                "spool maintained"
            ),
            Err(e) => tracing::warn!(error = %e, "spool maintenance failed"),
        }
    }
}

/// A running daemon: its address, and a handle to stop it within the grace period.
pub struct Running {
    pub addr: std::net::SocketAddr,
    pub state: AppState,
    stop: CancellationToken,
    grace: Duration,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, gives in-flight requests and spawned tasks the grace period, lets the
    /// drainer finish its batch, then returns; whatever is still running then is dropped
    /// (spooled events stay on disk for the next start).
    pub async fn shutdown(self) {
        self.stop.cancel();
        self.state.tasks.close();
        let deadline = tokio::time::Instant::now() + self.grace + Duration::from_millis(500);
        let tracked = self.state.tasks.clone();
        let mut tasks = self.tasks;
        let all = async {
            for t in tasks.iter_mut() {
                let _ = t.await;
            }
            tracked.wait().await;
        };
        if tokio::time::timeout_at(deadline, all).await.is_err() {
            tracing::warn!(
                spawned = self.state.tasks.len(),
                "grace period over: dropping work still running"
            );
            for t in &tasks {
                t.abort();
            }
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
    let stop = CancellationToken::new();

    let drainer = Drainer {
        spool: state.spool.clone(),
        db: config.drain_db()?,
        metrics: state.metrics.clone(),
        wake: state.drain_wakeup.clone(),
        landed: state.verify_wakeup.clone(),
        poison_tries: config.drain.poison_tries,
        lanes: config.drain.lanes,
    };
    let app = router(state.clone(), config.limits.request_timeout);
    let mut tasks = vec![
        tokio::spawn(server::serve(
            listener,
            app,
            config.limits.clone(),
            state.metrics.clone(),
            stop.clone(),
        )),
        tokio::spawn(drainer.run(stop.clone())),
        tokio::spawn(maintain_loop(
            state.spool.clone(),
            config.drain.maintain_every,
            config.drain.seen_window,
            stop.clone(),
        )),
    ];
    if let Some(s3) = state.s3.clone() {
        tasks.push(tokio::spawn(recording::verify_loop(
            state.db.clone(),
            s3,
            state.verify_wakeup.clone(),
            Duration::from_secs(30),
            stop.clone(),
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
                stop.clone(),
            )));
        }
    }
    tracing::info!(%addr, spool = %state.spool.path().display(), "syncd listening");
    Ok(Running {
        addr,
        state,
        stop,
        grace: config.limits.shutdown_grace,
        tasks,
    })
}
