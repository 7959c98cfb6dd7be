//! Postgres access: a small pool, TLS when `sslmode=require`, and only unnamed statements
//! (`query_typed`), so it also works through a transaction-mode pooler (Supabase port 6543).

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::str::FromStr;
use std::sync::Arc;
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database unreachable: {0}")]
    Unreachable(String),
    #[error("{0}")]
    Sql(#[from] tokio_postgres::Error),
    #[error("bad DATABASE_URL: {0}")]
    Config(String),
    #[error("the fred extension or SQL install is missing from this database")]
    NotInstalled,
}

/// How the drainer treats a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Retry with backoff for as long as it takes.
    Transient,
    /// The event itself is bad: set it aside.
    Poison,
    /// Anything else: retry with capped backoff, counted and logged.
    Other,
}

impl DbError {
    pub fn sqlstate(&self) -> Option<&SqlState> {
        match self {
            DbError::Sql(e) => e.code(),
            _ => None,
        }
    }

    pub fn class(&self) -> Class {
        let code = match self {
            DbError::Unreachable(_) => return Class::Transient,
            DbError::Config(_) | DbError::NotInstalled => return Class::Other,
            DbError::Sql(e) => match e.code() {
                None => return Class::Transient, // connection lost or closed
                Some(c) => c.code(),
            },
        };
        if code.starts_with("08")
            || code.starts_with("53")
            || ["40001", "40P01", "57014", "57P01", "57P02", "57P03"].contains(&code)
        {
            Class::Transient
        } else if code.starts_with("22") || code == "54000" {
            Class::Poison
        } else {
            Class::Other
        }
    }
}

#[derive(Clone)]
pub struct Db {
    pool: Pool,
}

impl Db {
    pub fn new(url: &str) -> Result<Db, DbError> {
        let cfg =
            tokio_postgres::Config::from_str(url).map_err(|e| DbError::Config(e.to_string()))?;
        let mgr_cfg = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let mgr = if cfg.get_ssl_mode() == SslMode::Require {
            Manager::from_config(cfg, tls::connector(), mgr_cfg)
        } else {
            Manager::from_config(cfg, tokio_postgres::NoTls, mgr_cfg)
        };
        let pool = Pool::builder(mgr)
            .max_size(4)
            .wait_timeout(Some(std::time::Duration::from_secs(10)))
            .create_timeout(Some(std::time::Duration::from_secs(5)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| DbError::Config(e.to_string()))?;
        Ok(Db { pool })
    }

    pub async fn client(&self) -> Result<deadpool_postgres::Object, DbError> {
        self.pool
            .get()
            .await
            .map_err(|e| DbError::Unreachable(e.to_string()))
    }

    /// True when Postgres answers and the fred contract is installed.
    pub async fn check(&self) -> Result<(), DbError> {
        let c = self.client().await?;
        let rows = c
            .query_typed(
                "select to_regprocedure('fred.apply_livekit_events(jsonb)') is not null",
                &[],
            )
            .await?;
        match rows.first().map(|r| r.get::<_, bool>(0)) {
            Some(true) => Ok(()),
            _ => Err(DbError::NotInstalled),
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
