//! Configuration: parsed once, from the environment and an optional `.env` file, into typed
//! structs. A missing or invalid value names its variable.

use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{var}: {msg}")]
pub struct ConfigError {
    pub var: &'static str,
    pub msg: String,
}

fn err(var: &'static str, msg: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        msg: msg.into(),
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    /// Holds the password: kept out of Debug output.
    pub database_url: SecretString,
    pub livekit: LiveKit,
    pub listen: SocketAddr,
    pub spool_dir: PathBuf,
    pub max_body: usize,
    /// Present only when access key, secret and endpoint are all set.
    pub s3: Option<S3>,
    pub record: Record,
    pub jobs: Jobs,
    pub log_json: bool,
    /// Per-request timeout of Egress API calls.
    pub egress_timeout: Duration,
    pub limits: Limits,
    pub drain: Drain,
}

/// What a stranger can cost: each limit has its variable (see docs/syncd-notes.md).
#[derive(Clone, Debug)]
pub struct Limits {
    /// SYNCD_HEADER_TIMEOUT: a request's headers must arrive within this.
    pub header_timeout: Duration,
    /// SYNCD_REQUEST_TIMEOUT: a webhook, body included, must be read and answered within this.
    pub request_timeout: Duration,
    /// SYNCD_MAX_CONNECTIONS: open connections; past it a connection is answered 503.
    pub max_connections: usize,
    /// SYNCD_MAX_INFLIGHT_BYTES: bodies being read at once (by Content-Length); past it, 503.
    pub max_inflight_bytes: usize,
    /// SYNCD_MAX_TOKEN_TTL: a webhook token may not be valid for longer than this from now.
    pub max_token_ttl: Duration,
    /// SYNCD_SHUTDOWN_GRACE: after SIGTERM, how long in-flight work may take.
    pub shutdown_grace: Duration,
}

/// The drainer, the database and the spool's upkeep.
#[derive(Clone, Debug)]
pub struct Drain {
    /// SYNCD_DB_TIMEOUT: client-side timeout of every database call.
    pub db_timeout: Duration,
    /// SYNCD_READY_MAX_LAG: /readyz answers 503 when the oldest queued event is older.
    pub ready_max_lag: Duration,
    /// SYNCD_POISON_TRIES: tries of one event failing on its own before it is quarantined.
    pub poison_tries: u32,
    /// SYNCD_SEEN_WINDOW: how long drained ids and recording claims are remembered.
    pub seen_window: Duration,
    /// SYNCD_SPOOL_MAINTAIN_EVERY: how often the spool is pruned and its space given back.
    pub maintain_every: Duration,
    /// SYNCD_DRAIN_LANES: the queue is partitioned by room into this many lanes, drained in
    /// parallel, each on its own database connection.
    pub lanes: usize,
}

#[derive(Clone, Debug)]
pub struct LiveKit {
    /// The server URL for the Egress API (`wss://` is sent as `https://`).
    pub url: Option<String>,
    /// (api key, secret) pairs; the first is `LIVEKIT_API_KEY`, the rest are for rotation.
    pub keys: Vec<(String, SecretString)>,
}

#[derive(Clone, Debug)]
pub struct S3 {
    pub access_key: String,
    pub secret: SecretString,
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub key_template: String,
}

#[derive(Clone, Debug)]
pub struct Record {
    pub all: bool,
    pub prefix: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Jobs {
    pub reconcile: Option<cron::Schedule>,
    pub reconcile_after: Duration,
    pub stale: Option<cron::Schedule>,
    pub stale_after: Duration,
    pub retention: Option<cron::Schedule>,
    pub recording_retention_days: Option<u32>,
    pub transcript_retention_days: Option<u32>,
}

struct Vars<'a>(&'a HashMap<String, String>);

impl Vars<'_> {
    /// A value, with surrounding whitespace removed; empty counts as unset.
    fn get(&self, var: &str) -> Option<&str> {
        self.0.get(var).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    fn required(&self, var: &'static str) -> Result<String, ConfigError> {
        self.get(var)
            .map(str::to_owned)
            .ok_or_else(|| err(var, "is required"))
    }

    fn duration(&self, var: &'static str, default: &str) -> Result<Duration, ConfigError> {
        let v = self.get(var).unwrap_or(default);
        let d = humantime::parse_duration(v).map_err(|e| {
            err(
                var,
                format!("{v:?} is not a duration like 90s, 10m or 6h ({e})"),
            )
        })?;
        if d.is_zero() {
            return Err(err(var, "must be longer than zero"));
        }
        Ok(d)
    }

    /// A duration of at least `min`.
    fn duration_min(
        &self,
        var: &'static str,
        default: &str,
        min: Duration,
    ) -> Result<Duration, ConfigError> {
        let d = self.duration(var, default)?;
        if d < min {
            return Err(err(
                var,
                format!(
                    "must be at least {} (got {})",
                    humantime::format_duration(min),
                    humantime::format_duration(d)
                ),
            ));
        }
        Ok(d)
    }

    /// A whole number within `range`.
    fn count(
        &self,
        var: &'static str,
        default: usize,
        range: std::ops::RangeInclusive<usize>,
    ) -> Result<usize, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            Some(s) => match s.parse::<usize>() {
                Ok(n) if range.contains(&n) => Ok(n),
                _ => Err(err(
                    var,
                    format!(
                        "{s:?} must be a whole number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                )),
            },
        }
    }

    fn schedule(
        &self,
        var: &'static str,
        default: &str,
    ) -> Result<Option<cron::Schedule>, ConfigError> {
        let v = self.get(var).unwrap_or(default);
        if v.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        if v.split_whitespace().count() != 6 {
            return Err(err(
                var,
                format!(
                    "{v:?} must have six fields (sec min hour day month weekday) or be \"off\""
                ),
            ));
        }
        cron::Schedule::from_str(v)
            .map(Some)
            .map_err(|e| err(var, format!("{v:?} is not a cron schedule ({e})")))
    }

    fn days(&self, var: &'static str) -> Result<Option<u32>, ConfigError> {
        match self.get(var) {
            None => Ok(None),
            Some(v) => match v.parse::<u32>() {
                Ok(d) if (1..=36_500).contains(&d) => Ok(Some(d)),
                _ => Err(err(
                    var,
                    format!("{v:?} must be a whole number of days from 1 to 36500"),
                )),
            },
        }
    }
}

impl Config {
    /// The database pool, with the client-side timeout.
    pub fn db(&self) -> Result<crate::db::Db, crate::db::DbError> {
        crate::db::Db::with_timeout(self.database_url.expose_secret(), self.drain.db_timeout)
    }

    /// The drainer's own pool: one connection per lane, so no lane waits on another or on
    /// the jobs and /readyz.
    pub fn drain_db(&self) -> Result<crate::db::Db, crate::db::DbError> {
        crate::db::Db::with_pool_size(
            self.database_url.expose_secret(),
            self.drain.db_timeout,
            self.drain.lanes,
        )
    }

    /// Every configured secret, to cut out of remote error text before it is logged or stored:
    /// the LiveKit secrets, the S3 keys and the database password.
    pub fn secrets(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .livekit
            .keys
            .iter()
            .map(|(_, s)| s.expose_secret().to_owned())
            .collect();
        if let Some(s3) = &self.s3 {
            out.push(s3.secret.expose_secret().to_owned());
            out.push(s3.access_key.clone());
        }
        if let Ok(c) = tokio_postgres::Config::from_str(self.database_url.expose_secret())
            && let Some(pw) = c.get_password()
        {
            out.push(String::from_utf8_lossy(pw).into_owned());
        }
        out
    }

    /// Reads `.env` (if present; real environment variables win), then the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let _ = dotenvy::dotenv();
        Self::from_map(&std::env::vars().collect())
    }

    pub fn from_map(map: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let v = Vars(map);
        let database_url = v.required("DATABASE_URL")?;
        if !(database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")) {
            return Err(err(
                "DATABASE_URL",
                "must be a URL: postgres://user:password@host:port/database",
            ));
        }
        tokio_postgres::Config::from_str(&database_url).map_err(|e| {
            err(
                "DATABASE_URL",
                format!("is not a valid connection URL ({e})"),
            )
        })?;

        let mut keys = vec![(
            v.required("LIVEKIT_API_KEY")?,
            SecretString::from(v.required("LIVEKIT_API_SECRET")?),
        )];
        if let Some(extra) = v.get("LIVEKIT_EXTRA_KEYS") {
            for pair in extra.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                match pair.split_once(':') {
                    Some((k, s)) if !k.trim().is_empty() && !s.trim().is_empty() => {
                        keys.push((k.trim().to_owned(), SecretString::from(s.trim())))
                    }
                    _ => {
                        return Err(err(
                            "LIVEKIT_EXTRA_KEYS",
                            "must be a comma-separated list of key:secret pairs",
                        ));
                    }
                }
            }
        }
        let url = match v.get("LIVEKIT_URL") {
            None => None,
            Some(u) => Some(livekit_http_url(u).ok_or_else(|| {
                err(
                    "LIVEKIT_URL",
                    format!("{u:?} must start with wss://, ws://, https:// or http://"),
                )
            })?),
        };

        let listen = v.get("SYNCD_LISTEN").unwrap_or("127.0.0.1:8787");
        let listen = listen.parse::<SocketAddr>().map_err(|_| {
            err(
                "SYNCD_LISTEN",
                format!("{listen:?} must be an address like 127.0.0.1:8787"),
            )
        })?;
        let spool_dir = PathBuf::from(v.get("SYNCD_SPOOL_DIR").unwrap_or(".syncd-spool"));
        let max_body = match v.get("SYNCD_MAX_BODY") {
            None => 1 << 20,
            Some(s) => match s.parse::<usize>() {
                Ok(n) if (1024..=64 << 20).contains(&n) => n,
                _ => {
                    return Err(err(
                        "SYNCD_MAX_BODY",
                        format!("{s:?} must be a number of bytes from 1024 to 67108864"),
                    ));
                }
            },
        };

        let s3 = match (
            v.get("RECORDING_S3_ACCESS_KEY"),
            v.get("RECORDING_S3_SECRET"),
            v.get("RECORDING_S3_ENDPOINT"),
        ) {
            (Some(a), Some(s), Some(e)) => {
                if !(e.starts_with("https://") || e.starts_with("http://")) {
                    return Err(err(
                        "RECORDING_S3_ENDPOINT",
                        format!("{e:?} must start with https:// or http://"),
                    ));
                }
                Some(S3 {
                    access_key: a.to_owned(),
                    secret: SecretString::from(s),
                    endpoint: e.to_owned(),
                    bucket: v
                        .get("RECORDING_S3_BUCKET")
                        .unwrap_or("voice-recordings")
                        .to_owned(),
                    region: v
                        .get("RECORDING_S3_REGION")
                        .unwrap_or("us-east-1")
                        .to_owned(),
                    key_template: v
                        .get("RECORDING_S3_KEY_TEMPLATE")
                        .unwrap_or("{room_name}/{time}.ogg")
                        .to_owned(),
                })
            }
            _ => None,
        };
        let all = match v.get("SYNCD_RECORD") {
            None | Some("all") => s3.is_some(),
            Some("none") => false,
            Some(o) => {
                return Err(err(
                    "SYNCD_RECORD",
                    format!("{o:?} must be \"all\" or \"none\""),
                ));
            }
        };
        if all && url.is_none() {
            return Err(err(
                "LIVEKIT_URL",
                "is required to start recordings (set SYNCD_RECORD=none to run without)",
            ));
        }
        let record = Record {
            all,
            prefix: v.get("SYNCD_RECORD_PREFIX").map(str::to_owned),
        };

        let jobs = Jobs {
            reconcile: v.schedule("SYNCD_RECONCILE_CRON", "0 * * * * *")?,
            reconcile_after: v.duration_min("SYNCD_RECONCILE_AFTER", "10m", MINUTE)?,
            stale: v.schedule("SYNCD_STALE_CRON", "0 */10 * * * *")?,
            stale_after: v.duration_min("SYNCD_STALE_AFTER", "6h", MINUTE)?,
            retention: v.schedule("SYNCD_RETENTION_CRON", "0 30 3 * * *")?,
            recording_retention_days: v.days("RECORDING_RETENTION_DAYS")?,
            transcript_retention_days: v.days("TRANSCRIPT_RETENTION_DAYS")?,
        };
        let log_json = match v.get("SYNCD_LOG_FORMAT") {
            None | Some("text") => false,
            Some("json") => true,
            Some(o) => {
                return Err(err(
                    "SYNCD_LOG_FORMAT",
                    format!("{o:?} must be \"text\" or \"json\""),
                ));
            }
        };
        let egress_timeout = v.duration("SYNCD_EGRESS_TIMEOUT", "10s")?;
        let limits = Limits {
            header_timeout: v.duration("SYNCD_HEADER_TIMEOUT", "10s")?,
            request_timeout: v.duration("SYNCD_REQUEST_TIMEOUT", "30s")?,
            max_connections: v.count("SYNCD_MAX_CONNECTIONS", 1024, 1..=1_000_000)?,
            max_inflight_bytes: v.count(
                "SYNCD_MAX_INFLIGHT_BYTES",
                64 << 20,
                max_body..=(u32::MAX as usize),
            )?,
            max_token_ttl: v.duration("SYNCD_MAX_TOKEN_TTL", "10m")?,
            shutdown_grace: v.duration("SYNCD_SHUTDOWN_GRACE", "10s")?,
        };
        let drain = Drain {
            db_timeout: v.duration("SYNCD_DB_TIMEOUT", "30s")?,
            ready_max_lag: v.duration("SYNCD_READY_MAX_LAG", "5m")?,
            poison_tries: v.count("SYNCD_POISON_TRIES", 4, 1..=100)? as u32,
            seen_window: v.duration("SYNCD_SEEN_WINDOW", "24h")?,
            maintain_every: v.duration("SYNCD_SPOOL_MAINTAIN_EVERY", "10m")?,
            lanes: v.count(
                "SYNCD_DRAIN_LANES",
                crate::drain::DEFAULT_LANES,
                1..=crate::drain::MAX_LANES,
            )?,
        };
        Ok(Config {
            database_url: SecretString::from(database_url),
            livekit: LiveKit { url, keys },
            listen,
            spool_dir,
            max_body,
            s3,
            record,
            jobs,
            log_json,
            egress_timeout,
            limits,
            drain,
        })
    }
}

const MINUTE: Duration = Duration::from_secs(60);

/// LiveKit's API is plain HTTP(S) at the same host as its WebSocket URL.
pub fn livekit_http_url(u: &str) -> Option<String> {
    let u = u.trim_end_matches('/');
    if let Some(rest) = u.strip_prefix("wss://") {
        Some(format!("https://{rest}"))
    } else if let Some(rest) = u.strip_prefix("ws://") {
        Some(format!("http://{rest}"))
    } else if u.starts_with("https://") || u.starts_with("http://") {
        Some(u.to_owned())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> HashMap<String, String> {
        [
            (
                "DATABASE_URL",
                "postgres://fred_syncd:pw@127.0.0.1:5432/postgres",
            ),
            ("LIVEKIT_API_KEY", "APIkey"),
            ("LIVEKIT_API_SECRET", "secret"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    fn with(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut m = base();
        for (k, v) in pairs {
            m.insert((*k).to_owned(), (*v).to_owned());
        }
        Config::from_map(&m)
    }

    #[test]
    fn defaults() {
        let c = with(&[]).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8787".parse().unwrap());
        assert_eq!(c.max_body, 1 << 20);
        assert!(c.s3.is_none());
        assert!(!c.record.all, "recording is off without S3");
        assert_eq!(c.jobs.stale_after, Duration::from_secs(6 * 3600));
        assert!(c.jobs.reconcile.is_some());
    }

    #[test]
    fn missing_and_bad_values_name_the_variable() {
        let mut m = base();
        m.remove("DATABASE_URL");
        assert_eq!(Config::from_map(&m).unwrap_err().var, "DATABASE_URL");
        for (var, bad) in [
            ("DATABASE_URL", "host=localhost"),
            ("SYNCD_LISTEN", "8787"),
            ("SYNCD_MAX_BODY", "lots"),
            ("SYNCD_STALE_AFTER", "6 hours-ish"),
            ("SYNCD_RECONCILE_AFTER", "0s"),
            ("SYNCD_STALE_CRON", "*/5 * * * *"),
            ("SYNCD_RETENTION_CRON", "0 0 25 * * *"),
            ("RECORDING_RETENTION_DAYS", "-1"),
            ("TRANSCRIPT_RETENTION_DAYS", "soon"),
            ("SYNCD_RECORD", "some"),
            ("LIVEKIT_URL", "livekit.example.com"),
            ("LIVEKIT_EXTRA_KEYS", "novalue"),
            ("SYNCD_LOG_FORMAT", "xml"),
            ("RECORDING_RETENTION_DAYS", "0"),
            ("TRANSCRIPT_RETENTION_DAYS", "0"),
            ("SYNCD_STALE_AFTER", "59s"),
            ("SYNCD_RECONCILE_AFTER", "30s"),
            ("SYNCD_MAX_CONNECTIONS", "0"),
            ("SYNCD_MAX_INFLIGHT_BYTES", "100"),
            ("SYNCD_SHUTDOWN_GRACE", "soon"),
            ("SYNCD_DB_TIMEOUT", "0s"),
            ("SYNCD_READY_MAX_LAG", "x"),
            ("SYNCD_POISON_TRIES", "0"),
        ] {
            let e = with(&[(var, bad)]).unwrap_err();
            assert_eq!(
                e.var, var,
                "{var}={bad} should be rejected naming {var}, got {e}"
            );
        }
    }

    #[test]
    fn s3_turns_recording_on_and_needs_livekit_url() {
        let s3 = [
            ("RECORDING_S3_ACCESS_KEY", "ak"),
            ("RECORDING_S3_SECRET", "sk"),
            (
                "RECORDING_S3_ENDPOINT",
                "https://x.supabase.co/storage/v1/s3",
            ),
        ];
        assert_eq!(with(&s3).unwrap_err().var, "LIVEKIT_URL");
        let mut all = s3.to_vec();
        all.push(("LIVEKIT_URL", "wss://lk.example.com"));
        let c = with(&all).unwrap();
        assert!(c.record.all);
        assert_eq!(c.livekit.url.as_deref(), Some("https://lk.example.com"));
        assert_eq!(c.s3.as_ref().unwrap().bucket, "voice-recordings");
        all.push(("SYNCD_RECORD", "none"));
        assert!(!with(&all).unwrap().record.all);
    }

    #[test]
    fn schedules_and_rotation_keys() {
        let c = with(&[
            ("SYNCD_STALE_CRON", "off"),
            ("LIVEKIT_EXTRA_KEYS", "old:s1, older:s2"),
        ])
        .unwrap();
        assert!(c.jobs.stale.is_none());
        assert_eq!(c.livekit.keys.len(), 3);
        assert_eq!(c.livekit.keys[2].0, "older");
        assert_eq!(c.livekit.keys[2].1.expose_secret(), "s2");
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("s1") && !debug.contains("fred_syncd:pw"),
            "secrets stay out of Debug: {debug}"
        );
    }
}
