//! The drainer: spooled events → `fred.apply_livekit_events`, in batches, in arrival order
//! per room.
//!
//! The queue is partitioned by room into `SYNCD_DRAIN_LANES` lanes (see [`crate::spool`]), each
//! drained by its own task on its own connection, so rooms drain in parallel; within a lane,
//! and so within a room, events keep their arrival order (the SQL merge does not depend on it
//! anyway). A lane's batch starts at [`BATCH`] events and doubles, up to [`MAX_BATCH`], while
//! the lane's queue fills whole batches; it shrinks back when the queue is short, and halves
//! after a statement timeout. A failing event holds up only its own lane. Under a steady trickle
//! a lane waits [`LINGER`] after a batch of fewer than [`LINGER_BELOW`] events, so the next
//! batch gathers more: Postgres's cost is mostly per statement, not per event. An event that
//! arrives after a quiet spell is drained at once.
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
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_util::sync::CancellationToken;

/// A lane's batch size when its queue is short.
pub const BATCH: usize = 256;
/// The largest batch a deep queue grows to.
pub const MAX_BATCH: usize = 4096;
/// A lane waits this long after a batch of fewer than [`LINGER_BELOW`] events (not after a
/// quiet spell): a few milliseconds of persist latency for larger batches.
pub const LINGER: Duration = Duration::from_millis(2);
/// See [`LINGER`].
pub const LINGER_BELOW: usize = 32;
/// The default number of drain lanes (`SYNCD_DRAIN_LANES`): a small (2-core) database does
/// best with 2, as fewer lanes make larger batches (BENCHMARKS.md §1).
pub const DEFAULT_LANES: usize = 2;
/// The most drain lanes `SYNCD_DRAIN_LANES` accepts.
pub const MAX_LANES: usize = 64;

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
    /// Lanes the queue is partitioned into, by room (`SYNCD_DRAIN_LANES`).
    pub lanes: usize,
}

/// One lane of the drain: the rooms whose hash is `index` modulo the lane count.
struct Lane {
    drainer: Arc<Drainer>,
    index: usize,
    wake: Arc<Notify>,
    /// The next batch size (see the module's notes).
    limit: usize,
    /// Set when a statement timeout was met while draining the last batch.
    timed_out: std::sync::atomic::AtomicBool,
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
    /// Runs every lane until `stop` is cancelled; returns when each has finished its batch.
    pub async fn run(self, stop: CancellationToken) {
        let lanes = self.lanes.max(1);
        // Until the spool knows the lane count, no lane may read: events would be misplaced.
        let mut tries = 0;
        while let Err(e) = self.spool.set_lanes(lanes).await {
            tracing::error!(error = %e, "could not partition the spool into lanes");
            tries += 1;
            self.pause(
                backoff(tries, Duration::from_millis(100), Duration::from_secs(5)),
                &stop,
            )
            .await;
            if stop.is_cancelled() {
                return;
            }
        }
        let drainer = Arc::new(self);
        let wakes: Vec<Arc<Notify>> = (0..lanes).map(|_| Arc::new(Notify::new())).collect();
        let mut set = tokio::task::JoinSet::new();
        for (index, wake) in wakes.iter().enumerate() {
            let lane = Lane {
                drainer: drainer.clone(),
                index,
                wake: wake.clone(),
                limit: BATCH,
                timed_out: Default::default(),
            };
            set.spawn(lane.run(stop.clone()));
        }
        // One wake-up (a webhook spooled) reaches every lane; each keeps the permit until it
        // looks, so none is lost between a lane finding its queue empty and waiting.
        let fan_out = {
            let drainer = drainer.clone();
            let stop = stop.clone();
            async move {
                loop {
                    tokio::select! {
                        _ = drainer.wake.notified() => {
                            for w in &wakes {
                                w.notify_one();
                            }
                        }
                        _ = stop.cancelled() => return,
                    }
                }
            }
        };
        set.spawn(fan_out);
        // Counting the queue scans it: once a second, off the lanes' path.
        set.spawn({
            let drainer = drainer.clone();
            let stop = stop.clone();
            async move {
                while !stop.is_cancelled() {
                    drainer.refresh_gauges().await;
                    drainer.pause(Duration::from_secs(1), &stop).await;
                }
            }
        });
        while set.join_next().await.is_some() {}
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
    async fn drain(&self, batch: &[Pending], timed_out: &AtomicBool) -> Result<(), Stalled> {
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
        if e.sqlstate() == Some(&SqlState::QUERY_CANCELED) {
            timed_out.store(true, Ordering::Relaxed);
        }
        if batch.len() > 1 {
            let (first, second) = batch.split_at(batch.len() / 2);
            Box::pin(self.drain(first, timed_out)).await?;
            return Box::pin(self.drain(second, timed_out)).await;
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

impl Lane {
    async fn run(mut self, stop: CancellationToken) {
        let mut failures: u32 = 0;
        let d = self.drainer.clone();
        while !stop.is_cancelled() {
            let batch = match d.spool.next_lane_batch(self.index, self.limit).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, lane = self.index, "spool read failed");
                    d.pause(Duration::from_secs(1), &stop).await;
                    continue;
                }
            };
            if batch.is_empty() {
                self.limit = BATCH;
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.cancelled() => {}
                }
                continue;
            }
            let full = batch.len() >= self.limit;
            self.timed_out.store(false, Ordering::Relaxed);
            match d.drain(&batch, &self.timed_out).await {
                Ok(()) => {
                    failures = 0;
                    if batch.len() < LINGER_BELOW {
                        d.pause(LINGER, &stop).await;
                    }
                }
                Err(Stalled::Transient(e)) => {
                    failures += 1;
                    let wait = backoff(
                        failures,
                        Duration::from_millis(100),
                        Duration::from_secs(30),
                    );
                    tracing::warn!(error = %e, lane = self.index, retry_in_ms = wait.as_millis() as u64, "batch not applied (transient); will retry");
                    d.pause(wait, &stop).await;
                }
                Err(Stalled::Retrying { key, tries, error }) => {
                    failures = 0;
                    let wait = backoff(
                        tries as u32,
                        Duration::from_millis(100),
                        Duration::from_secs(5),
                    );
                    tracing::warn!(key = %key, lane = self.index, tries, error = %error, retry_in_ms = wait.as_millis() as u64, "event failed on its own; will retry, then quarantine");
                    d.pause(wait, &stop).await;
                }
            }
            self.limit = next_limit(
                self.limit,
                batch.len(),
                full,
                self.timed_out.load(Ordering::Relaxed),
            );
        }
    }
}

/// The next batch size: halved after a statement timeout (down to one event), doubled after
/// a full batch (the queue is deep, up to [`MAX_BATCH`]), back towards [`BATCH`] when short.
fn next_limit(limit: usize, got: usize, full: bool, timed_out: bool) -> usize {
    if timed_out {
        (limit / 2).max(1)
    } else if full {
        (limit * 2).min(MAX_BATCH)
    } else if got < limit / 2 {
        (limit / 2).max(BATCH.min(limit))
    } else {
        limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_grow_when_deep_and_halve_on_timeouts() {
        assert_eq!(next_limit(BATCH, BATCH, true, false), 2 * BATCH);
        assert_eq!(next_limit(MAX_BATCH, MAX_BATCH, true, false), MAX_BATCH);
        assert_eq!(next_limit(2048, 10, false, false), 1024);
        assert_eq!(next_limit(BATCH, 10, false, false), BATCH);
        assert_eq!(next_limit(BATCH, BATCH, true, true), BATCH / 2);
        assert_eq!(next_limit(1, 1, true, true), 1);
        // After a timeout the size stays small while the queue is short, and grows again
        // only when whole batches come back.
        assert_eq!(next_limit(8, 3, false, false), 8);
        assert_eq!(next_limit(8, 8, true, false), 16);
    }
}
