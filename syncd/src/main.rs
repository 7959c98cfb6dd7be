use clap::{Parser, Subcommand};
use std::process::ExitCode;
use syncd::config::Config;
use syncd::db::DbError;

/// fred's daemon: LiveKit webhooks → durable spool → Postgres.
///
/// Configuration comes from the environment and an optional .env file (see .env.example).
#[derive(Parser)]
#[command(name = "syncd", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (the default).
    Serve,
    /// Validate the configuration and the connections, then exit.
    Check,
    /// Print a presigned GET URL for a session's recording (at most 7 days).
    RecordingUrl {
        /// The session id (uuid).
        session_id: String,
        /// How long the URL stays valid, like 15m, 1h or 7d.
        #[arg(long, default_value = "1h")]
        expires: String,
    },
    /// Run one scheduled job once, now, and exit: reconcile, stale or retention.
    RunJob {
        /// reconcile | stale | retention
        job: String,
    },
    /// Inspect or replay events set aside as poison.
    Quarantine {
        #[command(subcommand)]
        action: QuarantineAction,
    },
}

#[derive(Subcommand)]
enum QuarantineAction {
    /// Print quarantined events as JSON lines.
    List,
    /// Move quarantined events back to the queue: one by key, or all.
    Replay {
        /// The event id (or sha256:… key) to replay.
        key: Option<String>,
        /// Replay every quarantined event.
        #[arg(long, conflicts_with = "key")]
        all: bool,
    },
}

fn init_logging(json: bool) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("syncd: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_json);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Check => check(config).await,
        Command::Quarantine { action } => quarantine(config, action).await,
        Command::RunJob { job } => run_job(config, &job).await,
        Command::RecordingUrl {
            session_id,
            expires,
        } => recording_url(config, &session_id, &expires).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("syncd: {e}");
            ExitCode::FAILURE
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Refuses a fred schema older than this syncd needs; a database that does not answer yet is
/// only a warning (webhooks are spooled until it does).
async fn require_schema(db: &syncd::db::Db) -> Result<Option<String>, BoxError> {
    match db.check().await {
        Ok(v) => Ok(Some(v)),
        Err(e @ (DbError::SchemaTooOld { .. } | DbError::NotInstalled)) => Err(e.into()),
        Err(e) => {
            tracing::warn!(error = %e, "Postgres is not ready; webhooks are spooled until it is");
            Ok(None)
        }
    }
}

async fn serve(config: Config) -> Result<(), BoxError> {
    if let Some(n) = syncd::server::raise_nofile_limit() {
        tracing::info!(open_files = n, "open-files limit");
    }
    let db = config.db()?;
    if let Some(v) = require_schema(&db).await? {
        tracing::info!(schema = %v, "fred schema");
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("SYNCD_LISTEN {}: {e}", config.listen))?;
    let running = syncd::app::start(&config, listener).await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => tracing::info!(grace = ?config.limits.shutdown_grace, "SIGTERM: stopping"),
        _ = tokio::signal::ctrl_c() => tracing::info!(grace = ?config.limits.shutdown_grace, "interrupt: stopping"),
    }
    running.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

async fn check(config: Config) -> Result<(), BoxError> {
    let spool = syncd::spool::Spool::open(&config.spool_dir)?;
    spool.probe().await?;
    println!("spool: ok ({})", spool.path().display());
    let db = config.db()?;
    let version = db.check().await.map_err(|e| format!("database: {e}"))?;
    println!("database: ok");
    println!(
        "fred schema: {version} (this syncd needs {})",
        syncd::db::NEEDS_SCHEMA
    );
    println!(
        "recording: {}",
        if config.record.all { "on" } else { "off" }
    );
    Ok(())
}

async fn quarantine(config: Config, action: QuarantineAction) -> Result<(), BoxError> {
    let spool = syncd::spool::Spool::open(&config.spool_dir)?;
    match action {
        QuarantineAction::List => {
            for q in spool.list_quarantine().await? {
                println!("{}", serde_json::to_string(&q)?);
            }
        }
        QuarantineAction::Replay { key, all } => {
            if key.is_none() && !all {
                return Err("name a key to replay, or pass --all".into());
            }
            let n = spool.replay(key).await?;
            println!("replayed {n}");
        }
    }
    Ok(())
}

async fn recording_url(config: Config, session_id: &str, expires: &str) -> Result<(), BoxError> {
    let expires =
        humantime::parse_duration(expires).map_err(|e| format!("--expires {expires:?}: {e}"))?;
    let s3_config = config.s3.as_ref().ok_or(
        "RECORDING_S3_ACCESS_KEY, RECORDING_S3_SECRET and RECORDING_S3_ENDPOINT must be set",
    )?;
    let s3 = syncd::s3::S3::new(s3_config);
    let db = config.db()?;
    let rows = db
        .query(
            "select bucket, key, status from fred.recording_location($1::text::uuid)",
            &[(&session_id, tokio_postgres::types::Type::TEXT)],
        )
        .await
        .map_err(|e| format!("session {session_id}: {e}"))?;
    let row = rows
        .first()
        .ok_or_else(|| format!("no session {session_id}"))?;
    let (bucket, key, status): (Option<String>, Option<String>, Option<String>) =
        (row.get(0), row.get(1), row.get(2));
    let key =
        key.ok_or_else(|| format!("session {session_id} has no recording (status {status:?})"))?;
    let bucket = bucket.unwrap_or_else(|| s3.bucket.clone());
    println!("{}", s3.presign_get(&bucket, &key, expires).await?);
    Ok(())
}

async fn run_job(config: Config, name: &str) -> Result<(), BoxError> {
    let job = syncd::jobs::Job::parse(name)
        .ok_or_else(|| format!("unknown job {name:?}: use reconcile, stale or retention"))?;
    let db = config.db()?;
    require_schema(&db).await?;
    let metrics = syncd::metrics::Metrics::new();
    let ctx = syncd::jobs::Context::new(&config, db, metrics, syncd::recording::instance_name());
    match syncd::jobs::run_tick(&ctx, job, chrono::Utc::now()).await? {
        Some(changed) => println!("{{\"job\": \"{}\", \"changed\": {changed}}}", job.name()),
        None => println!("{{\"job\": \"{}\", \"skipped\": true}}", job.name()),
    }
    Ok(())
}
