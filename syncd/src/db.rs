//! Postgres access: a small pool, TLS when `sslmode=require`, and only unnamed statements
//! (`query_typed`), so it also works through a transaction-mode pooler (Supabase port 6543).
//!
//! Every call goes through [`Db::query`]: one pooled connection for one statement, under a
//! client-side timeout, so no connection is ever held across an HTTP call and a backend that
//! stops answering costs at most `SYNCD_DB_TIMEOUT`.

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::Row;
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};

/// The oldest fred schema this syncd works with (`fred.version()` exists from 0.2.0 on).
pub const NEEDS_SCHEMA: &str = "0.2.0";

/// The default client-side timeout of one database call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The pool could not open a connection (refused, authentication, unknown database…).
    #[error("cannot connect to Postgres: {}", cause(.0))]
    Connect(tokio_postgres::Error),
    #[error("database unreachable: {0}")]
    Unreachable(String),
    /// Postgres did not answer within the client-side timeout.
    #[error("Postgres did not answer within {0:?} (SYNCD_DB_TIMEOUT)")]
    Timeout(Duration),
    #[error("{}", cause(.0))]
    Sql(#[from] tokio_postgres::Error),
    #[error("bad DATABASE_URL: {0}")]
    Config(String),
    #[error("the fred extension or SQL install is missing from this database")]
    NotInstalled,
    #[error(
        "fred schema {found} is older than {needs}, which this syncd needs: run ALTER EXTENSION fred UPDATE, or apply the new migrations"
    )]
    SchemaTooOld { found: String, needs: &'static str },
}

/// A Postgres error with its cause: `SQLSTATE 23514: message (detail: …) (hint: …)`, or for
/// errors without a SQLSTATE the whole chain of sources.
pub fn cause(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("SQLSTATE {}: {}", db.code().code(), db.message());
        if let Some(d) = db.detail() {
            s.push_str(&format!(" (detail: {d})"));
        }
        if let Some(h) = db.hint() {
            s.push_str(&format!(" (hint: {h})"));
        }
        return s;
    }
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// How the drainer treats a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The database, not the event: retry with backoff for as long as it takes. Connection
    /// loss, overload, lock and serialization failures, timeouts seen by the client, and
    /// errors an operator must fix (privileges, missing objects: classes 42, 3D, 3F, 28).
    Transient,
    /// Possibly one event's fault: split the batch until it stands alone, then quarantine it
    /// (at once for class 22 and 54, after a few tries otherwise). A statement timeout
    /// (57014) is here, so a batch that hits it is halved.
    Isolate,
}

/// The class of a SQLSTATE.
pub fn classify(code: &str) -> Class {
    const TRANSIENT_CLASSES: [&str; 8] = ["08", "53", "57P", "42", "3D", "3F", "28", "25"];
    const TRANSIENT_CODES: [&str; 4] = ["40001", "40P01", "55P03", "55006"];
    if TRANSIENT_CLASSES.iter().any(|c| code.starts_with(c)) || TRANSIENT_CODES.contains(&code) {
        Class::Transient
    } else {
        Class::Isolate
    }
}

impl DbError {
    pub fn sqlstate(&self) -> Option<&SqlState> {
        match self {
            DbError::Sql(e) => e.code(),
            _ => None,
        }
    }

    /// True when the event itself is bad beyond doubt (class 22, 54): quarantine at once.
    pub fn is_poison(&self) -> bool {
        self.sqlstate()
            .is_some_and(|s| s.code().starts_with("22") || s.code().starts_with("54"))
    }

    pub fn class(&self) -> Class {
        match self {
            DbError::Sql(e) => match e.code() {
                None => Class::Transient, // connection lost or closed
                Some(c) => classify(c.code()),
            },
            _ => Class::Transient,
        }
    }
}

#[derive(Clone)]
pub struct Db {
    pool: Pool,
    timeout: Duration,
}

impl Db {
    /// A pool with the default client-side timeout.
    pub fn new(url: &str) -> Result<Db, DbError> {
        Db::with_timeout(url, DEFAULT_TIMEOUT)
    }

    pub fn with_timeout(url: &str, timeout: Duration) -> Result<Db, DbError> {
        Db::with_pool_size(url, timeout, 4)
    }

    /// A pool of at most `size` connections.
    pub fn with_pool_size(url: &str, timeout: Duration, size: usize) -> Result<Db, DbError> {
        let mut cfg =
            tokio_postgres::Config::from_str(url).map_err(|e| DbError::Config(e.to_string()))?;
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(timeout);
        }
        cfg.keepalives_idle(Duration::from_secs(30));
        let mgr_cfg = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let mgr = if cfg.get_ssl_mode() == SslMode::Require {
            Manager::from_config(cfg, tls::connector(), mgr_cfg)
        } else {
            Manager::from_config(cfg, tokio_postgres::NoTls, mgr_cfg)
        };
        let pool = Pool::builder(mgr)
            .max_size(size.max(1))
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| DbError::Config(e.to_string()))?;
        Ok(Db { pool, timeout })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, DbError> {
        match tokio::time::timeout(self.timeout, self.pool.get()).await {
            Err(_) => Err(DbError::Timeout(self.timeout)),
            Ok(Ok(c)) => Ok(c),
            Ok(Err(PoolError::Backend(e))) => Err(DbError::Connect(e)),
            Ok(Err(PoolError::Timeout(_))) => Err(DbError::Timeout(self.timeout)),
            Ok(Err(e)) => Err(DbError::Unreachable(e.to_string())),
        }
    }

    /// Runs one statement on a pooled connection, under the client-side timeout. A connection
    /// whose statement timed out is taken out of the pool, never reused.
    pub async fn query(
        &self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Vec<Row>, DbError> {
        let client = self.client().await?;
        match tokio::time::timeout(self.timeout, client.query_typed(sql, params)).await {
            Ok(rows) => Ok(rows?),
            Err(_) => {
                drop(deadpool_postgres::Object::take(client));
                Err(DbError::Timeout(self.timeout))
            }
        }
    }

    /// The first column of the first row.
    pub async fn scalar<T>(
        &self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Option<T>, DbError>
    where
        T: for<'a> tokio_postgres::types::FromSql<'a>,
    {
        let rows = self.query(sql, params).await?;
        Ok(rows.first().map(|r| r.get::<_, T>(0)))
    }

    /// The installed fred schema version: `fred.version()`, or "0.1.0" where it does not exist
    /// yet. `NotInstalled` when there is no fred at all.
    pub async fn schema_version(&self) -> Result<String, DbError> {
        let present: Option<(bool, bool)> = self
            .query(
                "select to_regprocedure('fred.apply_livekit_events(jsonb)') is not null, to_regprocedure('fred.version()') is not null",
                &[],
            )
            .await?
            .first()
            .map(|r| (r.get(0), r.get(1)));
        match present {
            Some((true, true)) => Ok(self
                .scalar::<String>("select fred.version()", &[])
                .await?
                .unwrap_or_default()),
            Some((true, false)) => Ok("0.1.0".to_owned()),
            _ => Err(DbError::NotInstalled),
        }
    }

    /// Postgres answers, fred is installed, and its schema is new enough; returns its version.
    pub async fn check(&self) -> Result<String, DbError> {
        let found = self.schema_version().await?;
        if version_tuple(&found) < version_tuple(NEEDS_SCHEMA) {
            return Err(DbError::SchemaTooOld {
                found,
                needs: NEEDS_SCHEMA,
            });
        }
        Ok(found)
    }
}

/// "0.10.2" → (0, 10, 2); missing or non-numeric parts count as 0.
fn version_tuple(v: &str) -> (u32, u32, u32) {
    let mut it = v
        .split(['.', '-', '+'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
    )
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn versions_compare_as_numbers() {
        assert!(version_tuple("0.1.0") < version_tuple(NEEDS_SCHEMA));
        assert!(version_tuple("0.10.0") > version_tuple("0.2.0"));
        assert_eq!(version_tuple("0.2.0"), (0, 2, 0));
    }

    #[test]
    fn classes() {
        for code in [
            "08006", "53300", "57P01", "40001", "40P01", "55P03", "42501", "42883", "28P01",
        ] {
            assert_eq!(classify(code), Class::Transient, "{code}");
        }
        for code in [
            "22023", "23514", "23505", "54000", "P0001", "57014", "XX000",
        ] {
            assert_eq!(classify(code), Class::Isolate, "{code}");
        }
    }
}

/// `sslmode=require` as libpq means it: encrypted, certificate not verified.
mod tls {
    use super::Arc;
    use rustls::DigitallySignedStruct;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::WebPkiSupportedAlgorithms;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

    #[derive(Debug)]
    struct Unverified(WebPkiSupportedAlgorithms);

    impl ServerCertVerifier for Unverified {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(m, c, d, &self.0)
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(m, c, d, &self.0)
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.supported_schemes()
        }
    }

    pub fn connector() -> tokio_postgres_rustls::MakeRustlsConnect {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let algs = provider.signature_verification_algorithms;
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(algs)))
            .with_no_client_auth();
        tokio_postgres_rustls::MakeRustlsConnect::new(config)
    }
}
