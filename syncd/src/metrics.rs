//! Prometheus metrics, rendered by prometheus-client.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Arc;

/// Label values are snake_case names, as before the labels became enums.
macro_rules! label_values {
    ($t:ty { $($v:ident => $s:literal),+ $(,)? }) => {
        impl $t {
            pub fn as_str(self) -> &'static str {
                match self { $(<$t>::$v => $s),+ }
            }
        }
        impl EncodeLabelValue for $t {
            fn encode(&self, e: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                EncodeLabelValue::encode(&self.as_str(), e)
            }
        }
    };
}

label_values!(RejectReason {
    Missing => "missing",
    Malformed => "malformed",
    UnknownKey => "unknown_key",
    BadToken => "bad_token",
    TokenLifetime => "token_lifetime",
    BadHash => "bad_hash",
    TooLarge => "too_large",
    Busy => "busy",
    BodyRead => "body_read",
    SpoolUnavailable => "spool_unavailable",
});
label_values!(DbErrorClass { Transient => "transient", Isolate => "isolate" });
label_values!(RecordingOutcome {
    Started => "started",
    Unavailable => "unavailable",
    ClaimedElsewhere => "claimed_elsewhere",
});

/// Why a webhook was refused.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum RejectReason {
    Missing,
    Malformed,
    UnknownKey,
    BadToken,
    TokenLifetime,
    BadHash,
    TooLarge,
    Busy,
    BodyRead,
    SpoolUnavailable,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub reason: RejectReason,
}

/// How the drainer classed a database error.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum DbErrorClass {
    Transient,
    Isolate,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorClass {
    pub reason: DbErrorClass,
}

/// What became of a recording action.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum RecordingOutcome {
    Started,
    Unavailable,
    ClaimedElsewhere,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RecordingLabel {
    pub outcome: RecordingOutcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabel {
    pub job: crate::jobs::Job,
}

pub struct Metrics {
    registry: Registry,
    pub received: Counter,
    pub accepted: Counter,
    pub duplicates: Counter,
    pub rejected: Family<Reason, Counter>,
    pub quarantined: Counter,
    pub applied: Family<Outcome, Counter>,
    pub db_errors: Family<ErrorClass, Counter>,
    pub spool_depth: Gauge,
    /// Seconds the oldest queued event has waited.
    pub oldest_queued_age: Gauge,
    /// Connections refused because SYNCD_MAX_CONNECTIONS were open, and failed accepts.
    pub connections_refused: Counter,
    pub accept_errors: Counter,
    pub apply_latency: Histogram,
    pub job_runs: Family<JobLabel, Counter>,
    pub job_failures: Family<JobLabel, Counter>,
    pub job_changed: Family<JobLabel, Counter>,
    pub job_last_run: Family<JobLabel, Gauge>,
    pub job_last_duration_ms: Family<JobLabel, Gauge>,
    pub recordings: Family<RecordingLabel, Counter>,
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
            oldest_queued_age: Gauge::default(),
            connections_refused: Counter::default(),
            accept_errors: Counter::default(),
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
            "oldest_queued_age_seconds",
            "How long the oldest queued event has waited",
            m.oldest_queued_age.clone(),
        );
        r.register(
            "connections_refused",
            "Connections answered 503 because SYNCD_MAX_CONNECTIONS were open",
            m.connections_refused.clone(),
        );
        r.register(
            "accept_errors",
            "Failed accepts (such as running out of file descriptors)",
            m.accept_errors.clone(),
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

    pub fn reject(&self, reason: RejectReason) {
        self.rejected.get_or_create(&Reason { reason }).inc();
    }

    pub fn db_error(&self, class: DbErrorClass) {
        self.db_errors
            .get_or_create(&ErrorClass { reason: class })
            .inc();
    }

    pub fn recording(&self, outcome: RecordingOutcome) {
        self.recordings
            .get_or_create(&RecordingLabel { outcome })
            .inc();
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String");
        out
    }
}
