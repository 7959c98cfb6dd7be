//! Prometheus metrics, rendered by prometheus-client.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabel {
    pub job: String,
}

pub struct Metrics {
    registry: Registry,
    pub received: Counter,
    pub accepted: Counter,
    pub duplicates: Counter,
    pub rejected: Family<Reason, Counter>,
    pub quarantined: Counter,
    pub applied: Family<Outcome, Counter>,
    pub db_errors: Family<Reason, Counter>,
    pub spool_depth: Gauge,
    pub apply_latency: Histogram,
    pub job_runs: Family<JobLabel, Counter>,
    pub job_failures: Family<JobLabel, Counter>,
    pub job_changed: Family<JobLabel, Counter>,
    pub job_last_run: Family<JobLabel, Gauge>,
    pub job_last_duration_ms: Family<JobLabel, Gauge>,
    pub recordings: Family<Outcome, Counter>,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut r = Registry::with_prefix("syncd");
        let m = Metrics {
            received: Counter::default(),
            accepted: Counter::default(),
            duplicates: Counter::default(),
            rejected: Family::default(),
            quarantined: Counter::default(),
            applied: Family::default(),
            db_errors: Family::default(),
            spool_depth: Gauge::default(),
            apply_latency: Histogram::new([
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            job_runs: Family::default(),
            job_failures: Family::default(),
            job_changed: Family::default(),
            job_last_run: Family::default(),
            job_last_duration_ms: Family::default(),
            recordings: Family::default(),
            registry: Registry::default(),
        };
        r.register(
            "webhooks_received",
            "Webhook requests received",
            m.received.clone(),
        );
        r.register(
            "webhooks_accepted",
            "Webhooks durably spooled",
            m.accepted.clone(),
        );
        r.register(
            "webhooks_duplicate",
            "Webhooks already spooled or drained",
            m.duplicates.clone(),
        );
        r.register(
            "webhooks_rejected",
            "Webhooks rejected, by reason",
            m.rejected.clone(),
        );
        r.register(
            "events_quarantined",
            "Events set aside as poison",
            m.quarantined.clone(),
        );
        r.register(
            "events_applied",
            "Events applied to Postgres, by outcome",
            m.applied.clone(),
        );
        r.register(
            "db_errors",
            "Database errors, by class",
            m.db_errors.clone(),
        );
        r.register(
            "spool_depth",
            "Events waiting in the spool",
            m.spool_depth.clone(),
        );
        r.register(
            "apply_batch_seconds",
            "Time to apply one batch",
            m.apply_latency.clone(),
        );
        r.register("job_runs", "Scheduled job runs", m.job_runs.clone());
        r.register(
            "job_failures",
            "Scheduled job failures",
            m.job_failures.clone(),
        );
        r.register(
            "job_changed_rows",
            "Rows changed by scheduled jobs",
            m.job_changed.clone(),
        );
        r.register(
            "job_last_run_timestamp_seconds",
            "When each job last ran",
            m.job_last_run.clone(),
        );
        r.register(
            "job_last_duration_milliseconds",
            "How long each job last took",
            m.job_last_duration_ms.clone(),
        );
        r.register(
            "recordings",
            "Recording actions, by outcome",
            m.recordings.clone(),
        );
        Arc::new(Metrics { registry: r, ..m })
    }

    pub fn reject(&self, reason: &str) {
        self.rejected
            .get_or_create(&Reason {
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub fn db_error(&self, class: &str) {
        self.db_errors
            .get_or_create(&Reason {
                reason: class.to_owned(),
            })
            .inc();
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String");
        out
    }
}
