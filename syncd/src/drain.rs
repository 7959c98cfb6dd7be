//! The drainer: spooled events → `fred.apply_livekit_events`, in batches, in arrival order.
//!
//! Transient failures are retried for as long as it takes; poison events (SQLSTATE class 22,
//! 54000) are quarantined and never block their neighbours; anything else is retried with a
//! backoff capped at 10 s, counted and logged. Nothing is ever dropped.

use crate::db::{Class, Db, DbError};
use crate::metrics::{Metrics, Outcome};
use crate::spool::{Pending, Spool};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};
use tokio_postgres::types::Type;

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
    let client = db.client().await?;
    let rows = client
        .query_typed(
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
}

fn backoff(attempt: u32, cap: Duration) -> Duration {
    let base = Duration::from_millis(100).saturating_mul(1 << attempt.min(10));
    let base = base.min(cap);
    // Jitter from the clock: enough to spread replicas apart, no RNG needed.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let jitter = nanos as u64 % (base.as_millis() as u64 / 4 + 1);
    base + Duration::from_millis(jitter)
}

impl Drainer {
    /// Runs until `stop` turns true and the spool is momentarily empty or Postgres is down.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut failures: u32 = 0;
        let mut last_depth = Instant::now();
        loop {
            if *stop.borrow() {
                return;
            }
            let batch = match self.spool.next_batch(BATCH).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "spool read failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            // Counting the queue scans it: keep that off the hot path.
            if last_depth.elapsed() >= Duration::from_secs(1) || batch.is_empty() {
                if let Ok(d) = self.spool.depth().await {
                    self.metrics.spool_depth.set(d);
                }
                last_depth = Instant::now();
            }
            if batch.is_empty() {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            match self.drain(batch).await {
                Ok(()) => failures = 0,
                Err((class, e)) => {
                    failures += 1;
                    let cap = if class == Class::Transient {
                        Duration::from_secs(30)
                    } else {
                        Duration::from_secs(10)
                    };
                    let wait = backoff(failures, cap);
                    tracing::warn!(error = %e, ?class, retry_in_ms = wait.as_millis() as u64, "batch not applied; will retry");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stop.changed() => {}
                    }
                }
            }
        }
    }

    /// Applies one batch. A batch that fails as a whole with a poison error is split, so the
    /// poison event is found and set aside while the rest land.
    async fn drain(&self, batch: Vec<Pending>) -> Result<(), (Class, DbError)> {
        let started = Instant::now();
        match apply_batch(&self.db, &batch).await {
            Ok(results) => {
                self.metrics
                    .apply_latency
                    .observe(started.elapsed().as_secs_f64());
                self.settle(&batch, results).await;
                Ok(())
            }
            Err(e) => {
                let class = e.class();
                self.metrics.db_error(match class {
                    Class::Transient => "transient",
                    Class::Poison => "poison",
                    Class::Other => "other",
                });
                if class == Class::Poison {
                    if batch.len() == 1 {
                        let p = &batch[0];
                        let state = e.sqlstate().map(|s| s.code().to_owned());
                        self.set_aside(p, e.to_string(), state).await;
                        return Ok(());
                    }
                    for p in batch {
                        Box::pin(self.drain(vec![p])).await?;
                    }
                    return Ok(());
                }
                if class == Class::Other {
                    let _ = self
                        .spool
                        .record_attempt(batch.iter().map(|p| p.seq).collect())
                        .await;
                }
                Err((class, e))
            }
        }
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
                    self.set_aside(p, message, Some(sqlstate)).await
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
