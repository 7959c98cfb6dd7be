//! The drainer: spooled events → `fred.apply_livekit_events`, in batches, in arrival order.
//!
//! No event can stop the drain:
//! - a transient failure (the database, not the event) is retried for as long as it takes;
//! - any other failure splits the batch in halves until the failing event stands alone. A
//!   class 22 or 54 event is then quarantined at once; any other is tried `poison_tries` times
//!   with backoff, then quarantined with its SQLSTATE, message and detail. A batch that hits
//!   `statement_timeout` (57014) is halved the same way.
//!
//! Nothing is ever dropped: quarantined events can be replayed (`syncd quarantine replay`).

use crate::db::{Class, Db, DbError};
use crate::metrics::{DbErrorClass, Metrics, Outcome};
use crate::spool::{Pending, Spool};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_postgres::types::Type;
use tokio_util::sync::CancellationToken;

pub const BATCH: usize = 256;

/// What Postgres said about one event of a batch.
#[derive(Debug, PartialEq)]
pub enum Applied {
    Done(String),
    Rejected { sqlstate: String, message: String },
}

pub async fn apply_batch(db: &Db, batch: &[Pending]) -> Result<Vec<Applied>, DbError> {
    let mut json = Vec::with_capacity(batch.iter().map(|p| p.body.len() + 1).sum::<usize>() + 2);
    json.push(b'[');
    for (i, p) in batch.iter().enumerate() {
        if i > 0 {
            json.push(b',');
        }
        json.extend_from_slice(&p.body);
    }
    json.push(b']');
    // Bodies were parsed as JSON at the door; invalid UTF-8 never reaches here.
    let text = String::from_utf8_lossy(&json);
    let rows = db
        .query(
            "select idx, result, error_code, error_message from fred.apply_livekit_events($1::text::jsonb) order by idx",
            &[(&text.as_ref(), Type::TEXT)],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let result: String = r.get(1);
        out.push(if result == "rejected" {
            Applied::Rejected {
                sqlstate: r.get::<_, Option<String>>(2).unwrap_or_default(),
                message: r.get::<_, Option<String>>(3).unwrap_or_default(),
            }
        } else {
            Applied::Done(result)
        });
    }
    Ok(out)
}

pub struct Drainer {
    pub spool: Spool,
    pub db: Db,
    pub metrics: Arc<Metrics>,
    pub wake: Arc<Notify>,
    /// Told after each batch lands (the upload verifier listens).
    pub landed: Arc<Notify>,
    /// Tries of one event failing alone (outside class 22/54) before it is quarantined.
    pub poison_tries: u32,
}

/// Why a batch did not land this time.
#[derive(Debug)]
enum Stalled {
    /// The database: wait and retry the same batch.
    Transient(DbError),
    /// One event failed alone and has tries left.
    Retrying {
        key: String,
        tries: i64,
        error: DbError,
    },
}

/// Exponential backoff from `base`, capped, with jitter.
fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let wait = base.saturating_mul(1 << attempt.min(10)).min(cap);
    // Jitter from the clock: enough to spread replicas apart, no RNG needed.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let jitter = nanos as u64 % (wait.as_millis() as u64 / 4 + 1);
    wait + Duration::from_millis(jitter)
}

impl Drainer {
    /// Runs until `stop` is cancelled.
    pub async fn run(self, stop: CancellationToken) {
        let mut failures: u32 = 0;
        let mut last_depth = Instant::now() - Duration::from_secs(2);
        while !stop.is_cancelled() {
            let batch = match self.spool.next_batch(BATCH).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "spool read failed");
                    self.pause(Duration::from_secs(1), &stop).await;
                    continue;
                }
            };
            // Counting the queue scans it: keep that off the hot path.
            if last_depth.elapsed() >= Duration::from_secs(1) || batch.is_empty() {
                self.refresh_gauges().await;
                last_depth = Instant::now();
            }
            if batch.is_empty() {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.cancelled() => {}
                }
                continue;
            }
            match self.drain(&batch).await {
                Ok(()) => failures = 0,
                Err(Stalled::Transient(e)) => {
                    failures += 1;
                    let wait = backoff(
                        failures,
                        Duration::from_millis(100),
                        Duration::from_secs(30),
                    );
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "batch not applied (transient); will retry");
                    self.pause(wait, &stop).await;
                }
                Err(Stalled::Retrying { key, tries, error }) => {
                    failures = 0;
                    let wait = backoff(
                        tries as u32,
                        Duration::from_millis(100),
                        Duration::from_secs(5),
                    );
                    tracing::warn!(key = %key, tries, error = %error, retry_in_ms = wait.as_millis() as u64, "event failed on its own; will retry, then quarantine");
                    self.pause(wait, &stop).await;
                }
            }
        }
    }

    async fn pause(&self, wait: Duration, stop: &CancellationToken) {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => {}
        }
    }

    async fn refresh_gauges(&self) {
        if let Ok(d) = self.spool.depth().await {
            self.metrics.spool_depth.set(d);
        }
        if let Ok(age) = self.spool.oldest_age().await {
            self.metrics.oldest_queued_age.set(age);
        }
    }

    /// Applies one batch; on a failure that is not transient, halves it and applies each half,
    /// so the failing event ends up alone.
    async fn drain(&self, batch: &[Pending]) -> Result<(), Stalled> {
        let started = Instant::now();
        let e = match apply_batch(&self.db, batch).await {
            Ok(results) => {
                self.metrics
                    .apply_latency
                    .observe(started.elapsed().as_secs_f64());
                self.settle(batch, results).await;
                return Ok(());
            }
            Err(e) => e,
        };
        let class = e.class();
        self.metrics.db_error(match class {
            Class::Transient => DbErrorClass::Transient,
            Class::Isolate => DbErrorClass::Isolate,
        });
        if class == Class::Transient {
            return Err(Stalled::Transient(e));
        }
        if batch.len() > 1 {
            let (first, second) = batch.split_at(batch.len() / 2);
            Box::pin(self.drain(first)).await?;
            return Box::pin(self.drain(second)).await;
        }
        let p = &batch[0];
        let tries = p.attempts + 1;
        if e.is_poison() || tries >= i64::from(self.poison_tries) {
            let state = e.sqlstate().map(|s| s.code().to_owned());
            self.set_aside(p, e.to_string(), state).await;
            return Ok(());
        }
        if let Err(se) = self.spool.record_attempt(vec![p.seq]).await {
            tracing::error!(error = %se, key = %p.key, "could not count a failed try");
        }
        Err(Stalled::Retrying {
            key: p.key.clone(),
            tries,
            error: e,
        })
    }

    async fn settle(&self, batch: &[Pending], results: Vec<Applied>) {
        let mut done = Vec::with_capacity(batch.len());
        for (p, r) in batch.iter().zip(results) {
            match r {
                Applied::Done(outcome) => {
                    self.metrics
                        .applied
                        .get_or_create(&Outcome { outcome })
                        .inc();
                    done.push((p.seq, p.key.clone()));
                }
                Applied::Rejected { sqlstate, message } => {
                    let reason = format!("SQLSTATE {sqlstate}: {message}");
                    self.set_aside(p, reason, Some(sqlstate)).await
                }
            }
        }
        self.landed.notify_one();
        if let Err(e) = self.spool.complete(done).await {
            // Not fatal: they will be re-applied and answered as duplicates.
            tracing::error!(error = %e, "could not mark events drained");
        }
    }

    async fn set_aside(&self, p: &Pending, reason: String, sqlstate: Option<String>) {
        self.metrics.quarantined.inc();
        tracing::warn!(key = %p.key, sqlstate = sqlstate.as_deref().unwrap_or(""), reason = %reason, "event quarantined");
        if let Err(e) = self.spool.quarantine(p.seq, reason, sqlstate).await {
            tracing::error!(error = %e, key = %p.key, "could not quarantine event; it stays queued");
        }
    }
}
