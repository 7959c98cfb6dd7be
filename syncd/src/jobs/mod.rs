//! Scheduled jobs: reconcile recordings, close stale sessions, enforce retention.
//!
//! Each job runs once per tick across any number of replicas: the first to insert the
//! (job, tick) row in `fred.job_runs` runs it. Ticks come from the cron schedule, so every
//! replica computes the same ones; a replica that dies mid-run blocks nothing.

pub mod reconcile;
pub mod retention;
pub mod stale;

use crate::config::{Config, Jobs};
use crate::db::{Db, DbError};
use crate::egress::{Egress, EgressError};
use crate::metrics::{JobLabel, Metrics};
use crate::s3::{S3, S3Error};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Instant;
use tokio_postgres::types::Type;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Job {
    Reconcile,
    Stale,
    Retention,
}

impl Job {
    pub fn name(self) -> &'static str {
        match self {
            Job::Reconcile => "reconcile",
            Job::Stale => "stale",
            Job::Retention => "retention",
        }
    }

    pub fn parse(s: &str) -> Option<Job> {
        [Job::Reconcile, Job::Stale, Job::Retention]
            .into_iter()
            .find(|j| j.name() == s)
    }
}

impl prometheus_client::encoding::EncodeLabelValue for Job {
    fn encode(
        &self,
        e: &mut prometheus_client::encoding::LabelValueEncoder,
    ) -> Result<(), std::fmt::Error> {
        prometheus_client::encoding::EncodeLabelValue::encode(&self.name(), e)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Egress(#[from] EgressError),
    #[error(transparent)]
    S3(#[from] S3Error),
    #[error("{0}")]
    NotConfigured(&'static str),
}

impl From<tokio_postgres::Error> for JobError {
    fn from(e: tokio_postgres::Error) -> Self {
        JobError::Db(DbError::Sql(e))
    }
}

/// What a job needs; API clients are absent when not configured.
#[derive(Clone)]
pub struct Context {
    pub db: Db,
    pub egress: Option<Egress>,
    pub s3: Option<S3>,
    pub jobs: Jobs,
    pub metrics: Arc<Metrics>,
    pub runner: String,
}

impl Context {
    pub fn new(config: &Config, db: Db, metrics: Arc<Metrics>, runner: String) -> Context {
        let egress = Egress::from_config(config);
        Context {
            db,
            egress,
            s3: config.s3.as_ref().map(S3::new),
            jobs: config.jobs.clone(),
            metrics,
            runner,
        }
    }
}

/// An interval parameter as Postgres reads it.
pub fn interval(d: std::time::Duration) -> String {
    format!("{} seconds", d.as_secs())
}

/// Runs the job body once, without claiming a tick. Returns how many rows it changed.
pub async fn run_body(ctx: &Context, job: Job) -> Result<usize, JobError> {
    match job {
        Job::Reconcile => reconcile::run(ctx).await,
        Job::Stale => stale::run(ctx).await,
        Job::Retention => retention::run(ctx).await,
    }
}

/// Claims `tick` for `job`; when this runner wins, runs it and records the outcome.
/// Returns `None` when another replica has the tick.
pub async fn run_tick(
    ctx: &Context,
    job: Job,
    tick: DateTime<Utc>,
) -> Result<Option<usize>, JobError> {
    let tick_s = tick.to_rfc3339();
    let claimed: bool = ctx
        .db
        .scalar(
            "select fred.claim_job_tick($1, $2::text::timestamptz, $3)",
            &[
                (&job.name(), Type::TEXT),
                (&tick_s, Type::TEXT),
                (&ctx.runner, Type::TEXT),
            ],
        )
        .await?
        .unwrap_or(false);
    if !claimed {
        return Ok(None);
    }
    let label = JobLabel { job };
    let started = Instant::now();
    let result = run_body(ctx, job).await;
    let ms = started.elapsed().as_millis() as i64;
    ctx.metrics.job_runs.get_or_create(&label).inc();
    ctx.metrics
        .job_last_run
        .get_or_create(&label)
        .set(Utc::now().timestamp());
    ctx.metrics
        .job_last_duration_ms
        .get_or_create(&label)
        .set(ms);
    let (changed, error) = match &result {
        Ok(n) => {
            ctx.metrics
                .job_changed
                .get_or_create(&label)
                .inc_by(*n as u64);
            tracing::info!(job = job.name(), tick = %tick_s, changed = n, ms, "job ran");
            (*n as i32, None)
        }
        Err(e) => {
            ctx.metrics.job_failures.get_or_create(&label).inc();
            tracing::warn!(job = job.name(), tick = %tick_s, error = %e, ms, "job failed");
            (0, Some(e.to_string()))
        }
    };
    ctx.db
        .query(
            "select fred.finish_job_run($1, $2::text::timestamptz, $3, $4)",
            &[
                (&job.name(), Type::TEXT),
                (&tick_s, Type::TEXT),
                (&changed, Type::INT4),
                (&error, Type::TEXT),
            ],
        )
        .await?;
    result.map(Some)
}

/// Runs `job` on every tick of `schedule` until `stop`.
pub async fn schedule_loop(
    ctx: Context,
    job: Job,
    schedule: cron::Schedule,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        let Some(next) = schedule.upcoming(Utc).next() else {
            return;
        };
        let wait = (next - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => return,
        }
        if let Err(e) = run_tick(&ctx, job, next).await {
            tracing::debug!(job = job.name(), error = %e, "tick not run");
        }
    }
}
