//! The durable spool: every accepted webhook is committed (fsync'd) here before its 2xx.
//!
//! SQLite in WAL mode with `synchronous=FULL`. One writer thread commits whatever requests are
//! waiting as one transaction (group commit: one fsync for many events), then answers them all.
//! The spool knows nothing of the database: the drainer reads it and reports back.
//!
//! The queue is partitioned into lanes by room (see [`room_key`]): each queued event keeps a
//! hash of its room and the lane it belongs to (`hash % lanes`), so each drain lane reads its
//! own rooms in arrival order through the `(lane, seq)` index.

use rusqlite::{Connection, OptionalExtension, params};
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    Stored,
    Duplicate,
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool writer has stopped")]
    Closed,
    #[error("spool I/O: {0}")]
    Io(String),
}

impl From<rusqlite::Error> for SpoolError {
    fn from(e: rusqlite::Error) -> Self {
        SpoolError::Io(e.to_string())
    }
}

/// An event waiting to be applied.
#[derive(Debug, Clone)]
pub struct Pending {
    pub seq: i64,
    pub key: String,
    pub body: Vec<u8>,
    /// Failed tries of this event on its own (see the drainer).
    pub attempts: i64,
}

/// What one maintenance pass removed and how big the spool is afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Maintained {
    pub seen_pruned: usize,
    pub claims_pruned: usize,
    /// Bytes of the database file plus its WAL after the pass.
    pub bytes_on_disk: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Quarantined {
    pub key: String,
    pub reason: String,
    pub sqlstate: Option<String>,
    pub quarantined_at: i64,
    pub body: String,
}

enum Op {
    Put {
        key: String,
        body: Vec<u8>,
        /// The room's hash ([`room_key`]); the lane is this modulo the lane count.
        room: i64,
        quarantine: Option<&'static str>,
        reply: oneshot::Sender<Result<Put, SpoolError>>,
    },
    Probe {
        reply: oneshot::Sender<Result<Put, SpoolError>>,
    },
    /// Drained events: removed, their ids remembered. Through the writer, so the drainer never
    /// waits on SQLite's lock while webhooks are being committed.
    Complete {
        done: Vec<(i64, String)>,
        reply: oneshot::Sender<Result<Put, SpoolError>>,
    },
    /// The lane count changed: puts after this use it, and queued events are moved to their
    /// lane under it.
    Relane {
        reply: oneshot::Sender<Result<Put, SpoolError>>,
    },
    /// Forget ids drained (and claims made) before `before`, then give space back.
    Maintain {
        before: i64,
        reply: oneshot::Sender<Result<(usize, usize), SpoolError>>,
    },
}

#[derive(Clone)]
pub struct Spool {
    tx: mpsc::Sender<Op>,
    /// The drainer's connection (reads, and removal of drained events).
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
    /// How many drain lanes the queue is partitioned into (1 until the drainer says).
    lanes: Arc<AtomicU64>,
}

/// A stable 63-bit hash of the event's room, so all events of one room share a lane: the
/// room's name (`room.name`, else `egressInfo.roomName` / `ingressInfo.roomName`), else its
/// sid; an event with neither is spread by its id. syncd's own `syncd_*` events carry `room`.
pub fn room_key(key: &str, body: &[u8]) -> i64 {
    #[derive(serde::Deserialize, Default)]
    struct Room<'a> {
        #[serde(borrow, default)]
        name: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        sid: Option<Cow<'a, str>>,
    }
    #[derive(serde::Deserialize, Default)]
    struct Info<'a> {
        #[serde(borrow, default, rename = "roomName", alias = "room_name")]
        room_name: Option<Cow<'a, str>>,
        #[serde(borrow, default, rename = "roomId", alias = "room_id")]
        room_id: Option<Cow<'a, str>>,
    }
    #[derive(serde::Deserialize, Default)]
    struct Head<'a> {
        #[serde(borrow, default)]
        room: Option<Room<'a>>,
        #[serde(borrow, default, rename = "egressInfo", alias = "egress_info")]
        egress: Option<Info<'a>>,
        #[serde(borrow, default, rename = "ingressInfo", alias = "ingress_info")]
        ingress: Option<Info<'a>>,
    }
    let head: Head = serde_json::from_slice(body).unwrap_or_default();
    let nonempty =
        |s: &Option<Cow<'_, str>>| s.as_deref().filter(|s| !s.is_empty()).map(str::to_owned);
    let room = head.room.unwrap_or_default();
    let egress = head.egress.unwrap_or_default();
    let ingress = head.ingress.unwrap_or_default();
    let name = nonempty(&room.name)
        .or_else(|| nonempty(&egress.room_name))
        .or_else(|| nonempty(&ingress.room_name))
        .map(|n| format!("name:{n}"))
        .or_else(|| {
            nonempty(&room.sid)
                .or_else(|| nonempty(&egress.room_id))
                .or_else(|| nonempty(&ingress.room_id))
                .map(|s| format!("sid:{s}"))
        })
        .unwrap_or_else(|| format!("id:{key}"));
    // FNV-1a: stable across builds and restarts (the hash is stored with the event).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h & i64::MAX as u64) as i64
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

const SCHEMA: &str = "
create table if not exists events (
  seq integer primary key autoincrement,
  event_id text not null unique,
  body blob not null,
  received_at integer not null,
  attempts integer not null default 0,
  room integer not null default 0,
  lane integer not null default 0
);
create table if not exists quarantine (
  event_id text primary key,
  body blob not null,
  reason text not null,
  sqlstate text,
  quarantined_at integer not null
);
-- Recently drained ids: a redelivery within the window is answered as a duplicate here.
create table if not exists seen (event_id text primary key, drained_at integer not null);
create index if not exists seen_drained_at on seen (drained_at);
create table if not exists probe (id integer primary key, at integer not null);
-- Room instances this node has started (or is starting) a recording for.
create table if not exists claims (room_sid text primary key, claimed_at integer not null);
";

/// The WAL is truncated back to this size after a checkpoint (SQLite's `journal_size_limit`).
const JOURNAL_SIZE_LIMIT: i64 = 16 << 20;

fn open(path: &Path) -> Result<Connection, SpoolError> {
    let c = Connection::open(path)?;
    c.busy_timeout(std::time::Duration::from_secs(10))?;
    // Must precede the first table to take effect without a VACUUM; see `enable_incremental_vacuum`.
    c.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "FULL")?;
    c.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)?;
    Ok(c)
}

/// A spool created before incremental vacuum was on gets it with one full VACUUM.
fn enable_incremental_vacuum(c: &Connection) -> Result<(), rusqlite::Error> {
    let mode: i64 = c.query_row("pragma auto_vacuum", [], |r| r.get(0))?;
    if mode != 2 {
        c.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        c.execute_batch("vacuum")?;
    }
    Ok(())
}

impl Spool {
    /// Opens (or creates) the spool under `dir` and starts its writer thread.
    pub fn open(dir: &Path) -> Result<Spool, SpoolError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| SpoolError::Io(format!("{}: {e}", dir.display())))?;
        let path = dir.join("spool.sqlite3");
        let writer = open(&path)?;
        writer.execute_batch(SCHEMA)?;
        add_lane_columns(&writer)?;
        enable_incremental_vacuum(&writer)?;
        let conn = open(&path)?;
        let (tx, rx) = mpsc::channel::<Op>();
        let lanes = Arc::new(AtomicU64::new(1));
        let writer_lanes = lanes.clone();
        std::thread::Builder::new()
            .name("spool-writer".into())
            .spawn(move || write_loop(writer, rx, writer_lanes))
            .map_err(|e| SpoolError::Io(e.to_string()))?;
        Ok(Spool {
            tx,
            conn: Arc::new(Mutex::new(conn)),
            path,
            lanes,
        })
    }

    /// Partitions the queue into `n` lanes (at least 1): new events get their lane under `n`,
    /// and every queued event is moved to its lane under `n`.
    pub async fn set_lanes(&self, n: usize) -> Result<(), SpoolError> {
        self.lanes.store(n.max(1) as u64, Ordering::SeqCst);
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Op::Relane { reply })
            .map_err(|_| SpoolError::Closed)?;
        rx.await.map_err(|_| SpoolError::Closed)?.map(|_| ())
    }

    pub fn lanes(&self) -> usize {
        self.lanes.load(Ordering::SeqCst) as usize
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Durably stores a body under `key`; resolves once it is on disk.
    pub async fn put(
        &self,
        key: String,
        body: Vec<u8>,
        quarantine: Option<&'static str>,
    ) -> Result<Put, SpoolError> {
        let (reply, rx) = oneshot::channel();
        // Parsed here, on the caller's task, not on the single writer thread.
        let room = if quarantine.is_none() {
            room_key(&key, &body)
        } else {
            0
        };
        self.tx
            .send(Op::Put {
                key,
                body,
                room,
                quarantine,
                reply,
            })
            .map_err(|_| SpoolError::Closed)?;
        rx.await.map_err(|_| SpoolError::Closed)?
    }

    /// A real write through the writer, for /readyz.
    pub async fn probe(&self) -> Result<(), SpoolError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Op::Probe { reply })
            .map_err(|_| SpoolError::Closed)?;
        rx.await.map_err(|_| SpoolError::Closed)?.map(|_| ())
    }

    async fn with_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, SpoolError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = conn.lock().map_err(|_| SpoolError::Closed)?;
            f(&mut c).map_err(SpoolError::from)
        })
        .await
        .map_err(|_| SpoolError::Closed)?
    }

    /// The oldest waiting events of one lane, in order of arrival.
    pub async fn next_lane_batch(
        &self,
        lane: usize,
        limit: usize,
    ) -> Result<Vec<Pending>, SpoolError> {
        self.with_conn(move |c| {
            let mut st = c.prepare_cached(
                "select seq, event_id, body, attempts from events where lane = ?1 order by seq limit ?2",
            )?;
            let rows = st.query_map([lane as i64, limit as i64], |r| {
                Ok(Pending {
                    seq: r.get(0)?,
                    key: r.get(1)?,
                    body: r.get(2)?,
                    attempts: r.get(3)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// The oldest waiting events, in order of arrival, whatever their lane.
    pub async fn next_batch(&self, limit: usize) -> Result<Vec<Pending>, SpoolError> {
        self.with_conn(move |c| {
            let mut st = c.prepare_cached(
                "select seq, event_id, body, attempts from events order by seq limit ?1",
            )?;
            let rows = st.query_map([limit as i64], |r| {
                Ok(Pending {
                    seq: r.get(0)?,
                    key: r.get(1)?,
                    body: r.get(2)?,
                    attempts: r.get(3)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// Removes applied events, remembering their ids for duplicate detection.
    pub async fn complete(&self, done: Vec<(i64, String)>) -> Result<(), SpoolError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Op::Complete { done, reply })
            .map_err(|_| SpoolError::Closed)?;
        rx.await.map_err(|_| SpoolError::Closed)?.map(|_| ())
    }

    /// Sets a poison event aside, with the reason Postgres gave.
    pub async fn quarantine(
        &self,
        seq: i64,
        reason: String,
        sqlstate: Option<String>,
    ) -> Result<(), SpoolError> {
        self.with_conn(move |c| {
            let tx = c.transaction()?;
            tx.execute(
                "insert or replace into quarantine (event_id, body, reason, sqlstate, quarantined_at)
                 select event_id, body, ?2, ?3, ?4 from events where seq = ?1",
                params![seq, reason, sqlstate, now()],
            )?;
            tx.execute("delete from events where seq = ?1", [seq])?;
            tx.commit()
        })
        .await
    }

    pub async fn record_attempt(&self, seqs: Vec<i64>) -> Result<(), SpoolError> {
        self.with_conn(move |c| {
            let mut st =
                c.prepare_cached("update events set attempts = attempts + 1 where seq = ?1")?;
            for s in &seqs {
                st.execute([s])?;
            }
            Ok(())
        })
        .await
    }

    pub async fn depth(&self) -> Result<i64, SpoolError> {
        self.with_conn(|c| c.query_row("select count(*) from events", [], |r| r.get(0)))
            .await
    }

    pub async fn quarantine_depth(&self) -> Result<i64, SpoolError> {
        self.with_conn(|c| c.query_row("select count(*) from quarantine", [], |r| r.get(0)))
            .await
    }

    pub async fn list_quarantine(&self) -> Result<Vec<Quarantined>, SpoolError> {
        self.with_conn(|c| {
            let mut st = c.prepare(
                "select event_id, reason, sqlstate, quarantined_at, body from quarantine order by quarantined_at, event_id",
            )?;
            let rows = st.query_map([], |r| {
                let body: Vec<u8> = r.get(4)?;
                Ok(Quarantined {
                    key: r.get(0)?,
                    reason: r.get(1)?,
                    sqlstate: r.get(2)?,
                    quarantined_at: r.get(3)?,
                    body: String::from_utf8_lossy(&body).into_owned(),
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// Moves quarantined events (one key, or all) back to the queue; returns how many.
    pub async fn replay(&self, key: Option<String>) -> Result<usize, SpoolError> {
        let lanes = self.lanes.clone();
        self.with_conn(move |c| {
            let tx = c.transaction()?;
            let filter = "(?1 is null or event_id = ?1)";
            let back: Vec<(String, Vec<u8>)> = tx
                .prepare(&format!(
                    "select event_id, body from quarantine where {filter} order by quarantined_at, event_id"
                ))?
                .query_map(params![key], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            {
                let mut insert = tx.prepare(
                    "insert or ignore into events (event_id, body, received_at, room, lane)
                     values (?1, ?2, ?3, ?4, ?4 % ?5)",
                )?;
                let n = lanes.load(Ordering::SeqCst).max(1) as i64;
                for (id, body) in &back {
                    insert.execute(params![id, body, now(), room_key(id, body), n])?;
                }
            }
            let n = tx.execute(&format!("delete from quarantine where {filter}"), params![key])?;
            tx.commit()?;
            Ok(n)
        })
        .await
    }

    /// How long the oldest queued event has waited, in seconds (0 when the queue is empty).
    pub async fn oldest_age(&self) -> Result<i64, SpoolError> {
        self.with_conn(|c| {
            c.query_row(
                "select received_at from events order by seq limit 1",
                [],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|t| t.map_or(0, |t| (now() - t).max(0)))
        })
        .await
    }

    /// Forgets drained ids and recording claims older than `keep`, then gives the space back:
    /// an incremental vacuum and a WAL checkpoint that truncates the WAL file. Postgres's
    /// ledger stays the final word on duplicates.
    pub async fn maintain(&self, keep: std::time::Duration) -> Result<Maintained, SpoolError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Op::Maintain {
                before: now() - keep.as_secs() as i64,
                reply,
            })
            .map_err(|_| SpoolError::Closed)?;
        let (seen_pruned, claims_pruned) = rx.await.map_err(|_| SpoolError::Closed)??;
        // The drainer's connection may hold the WAL open: checkpoint from it too.
        self.with_conn(|c| c.query_row("pragma wal_checkpoint(TRUNCATE)", [], |_| Ok(())))
            .await?;
        Ok(Maintained {
            seen_pruned,
            claims_pruned,
            bytes_on_disk: self.bytes_on_disk(),
        })
    }

    /// The size of the database file and its WAL.
    pub fn bytes_on_disk(&self) -> u64 {
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        size(&self.path) + size(Path::new(&wal))
    }

    /// Forgets drained ids older than `secs`.
    pub async fn prune_seen(&self, secs: i64) -> Result<usize, SpoolError> {
        self.with_conn(move |c| c.execute("delete from seen where drained_at < ?1", [now() - secs]))
            .await
    }

    /// True when this node is the first to claim the recording start for the room.
    pub async fn claim(&self, room_sid: String) -> Result<bool, SpoolError> {
        self.with_conn(move |c| {
            c.execute(
                "insert or ignore into claims (room_sid, claimed_at) values (?1, ?2)",
                params![room_sid, now()],
            )
            .map(|n| n == 1)
        })
        .await
    }

    pub async fn seen(&self, key: String) -> Result<bool, SpoolError> {
        self.with_conn(move |c| {
            c.query_row("select 1 from seen where event_id = ?1", [key], |_| Ok(()))
                .optional()
                .map(|r| r.is_some())
        })
        .await
    }
}

/// A spool made before lanes gets the columns; its queued events start in lane 0 and are
/// placed when the drainer sets the lane count (their room hash is computed then).
fn add_lane_columns(c: &Connection) -> Result<(), rusqlite::Error> {
    let has_lane: bool = c.query_row(
        "select exists (select 1 from pragma_table_info('events') where name = 'lane')",
        [],
        |r| r.get(0),
    )?;
    if !has_lane {
        c.execute_batch(
            "alter table events add column room integer not null default 0;
             alter table events add column lane integer not null default 0;",
        )?;
        let old: Vec<(i64, String, Vec<u8>)> = c
            .prepare("select seq, event_id, body from events")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        let mut st = c.prepare("update events set room = ?2 where seq = ?1")?;
        for (seq, id, body) in old {
            st.execute(params![seq, room_key(&id, &body)])?;
        }
    }
    c.execute_batch("create index if not exists events_lane on events (lane, seq)")
}

fn write_loop(mut conn: Connection, rx: mpsc::Receiver<Op>, lanes: Arc<AtomicU64>) {
    while let Ok(first) = rx.recv() {
        if let Op::Maintain { before, reply } = first {
            let _ = reply.send(maintain(&conn, before).map_err(SpoolError::from));
            continue;
        }
        let mut ops = vec![first];
        let mut later = None;
        while ops.len() < 1024 {
            match rx.try_recv() {
                Ok(op @ Op::Maintain { .. }) => {
                    later = Some(op);
                    break;
                }
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        match commit(&mut conn, &ops, lanes.load(Ordering::SeqCst).max(1) as i64) {
            Ok(results) => {
                for (op, r) in ops.into_iter().zip(results) {
                    reply(op, Ok(r));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, events = ops.len(), "spool commit failed");
                for op in ops {
                    reply(op, Err(SpoolError::Io(e.to_string())));
                }
            }
        }
        if let Some(Op::Maintain { before, reply }) = later {
            let _ = reply.send(maintain(&conn, before).map_err(SpoolError::from));
        }
    }
}

fn maintain(conn: &Connection, before: i64) -> Result<(usize, usize), rusqlite::Error> {
    let seen = conn.execute("delete from seen where drained_at < ?1", [before])?;
    let claims = conn.execute("delete from claims where claimed_at < ?1", [before])?;
    // Each step of the pragma frees one page: step it to the end, or one page is all it does.
    let mut vacuum = conn.prepare("pragma incremental_vacuum")?;
    let mut rows = vacuum.query([])?;
    while rows.next()?.is_some() {}
    drop(rows);
    conn.query_row("pragma wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok((seen, claims))
}

fn reply(op: Op, r: Result<Put, SpoolError>) {
    let tx = match op {
        Op::Put { reply, .. }
        | Op::Probe { reply }
        | Op::Complete { reply, .. }
        | Op::Relane { reply } => reply,
        Op::Maintain { .. } => return,
    };
    let _ = tx.send(r);
}

/// One transaction, one fsync, for every waiting request.
fn commit(conn: &mut Connection, ops: &[Op], lanes: i64) -> Result<Vec<Put>, rusqlite::Error> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut out = Vec::with_capacity(ops.len());
    {
        let mut known = tx.prepare_cached(
            "select exists (select 1 from events where event_id = ?1)
                 or exists (select 1 from quarantine where event_id = ?1)
                 or exists (select 1 from seen where event_id = ?1)",
        )?;
        let mut insert = tx.prepare_cached(
            "insert into events (event_id, body, received_at, room, lane) values (?1, ?2, ?3, ?4, ?4 % ?5)",
        )?;
        let mut quarantine = tx.prepare_cached(
            "insert into quarantine (event_id, body, reason, quarantined_at) values (?1, ?2, ?3, ?4)",
        )?;
        let t = now();
        for op in ops {
            match op {
                Op::Put {
                    key,
                    body,
                    room,
                    quarantine: q,
                    ..
                } => {
                    if known.query_row([key], |r| r.get::<_, bool>(0))? {
                        out.push(Put::Duplicate);
                        continue;
                    }
                    match q {
                        None => insert.execute(params![key, body, t, room, lanes])?,
                        Some(why) => quarantine.execute(params![key, body, why, t])?,
                    };
                    out.push(Put::Stored);
                }
                Op::Probe { .. } => {
                    tx.execute("insert or replace into probe (id, at) values (1, ?1)", [t])?;
                    out.push(Put::Stored);
                }
                Op::Maintain { .. } => out.push(Put::Stored),
                Op::Relane { .. } => {
                    tx.execute(
                        "update events set lane = room % ?1 where lane <> room % ?1",
                        [lanes],
                    )?;
                    out.push(Put::Stored);
                }
                Op::Complete { done, .. } => {
                    let mut del = tx.prepare_cached("delete from events where seq = ?1")?;
                    let mut seen = tx.prepare_cached(
                        "insert or replace into seen (event_id, drained_at) values (?1, ?2)",
                    )?;
                    for (seq, key) in done {
                        del.execute([seq])?;
                        seen.execute(params![key, t])?;
                    }
                    out.push(Put::Stored);
                }
            }
        }
    }
    tx.commit()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stores_once_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path()).unwrap();
        assert_eq!(
            s.put("EV_1".into(), b"{}".to_vec(), None).await.unwrap(),
            Put::Stored
        );
        assert_eq!(
            s.put("EV_1".into(), b"{}".to_vec(), None).await.unwrap(),
            Put::Duplicate
        );
        assert_eq!(
            s.put("sha256:x".into(), b"?".to_vec(), Some("not a JSON object"))
                .await
                .unwrap(),
            Put::Stored
        );
        assert_eq!(
            s.put("sha256:x".into(), b"?".to_vec(), Some("not a JSON object"))
                .await
                .unwrap(),
            Put::Duplicate
        );
        drop(s);
        let s = Spool::open(dir.path()).unwrap();
        let batch = s.next_batch(10).await.unwrap();
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].key, "EV_1");
        assert_eq!(s.quarantine_depth().await.unwrap(), 1);
        s.complete(vec![(batch[0].seq, batch[0].key.clone())])
            .await
            .unwrap();
        assert_eq!(s.depth().await.unwrap(), 0);
        assert_eq!(
            s.put("EV_1".into(), b"{}".to_vec(), None).await.unwrap(),
            Put::Duplicate,
            "a drained id is remembered"
        );
        assert_eq!(s.replay(None).await.unwrap(), 1);
        assert_eq!(s.depth().await.unwrap(), 1);
        assert_eq!(s.quarantine_depth().await.unwrap(), 0);
    }

    #[test]
    fn a_room_keeps_its_key_whatever_the_event() {
        let k = |body: &str| room_key("EV_x", body.as_bytes());
        let room = k(r#"{"event":"participant_joined","room":{"sid":"RM_1","name":"r1"}}"#);
        assert_eq!(
            room,
            k(r#"{"event":"egress_ended","egressInfo":{"roomId":"RM_1","roomName":"r1"}}"#)
        );
        assert_eq!(
            room,
            k(r#"{"event":"ingress_started","ingressInfo":{"roomName":"r1"}}"#)
        );
        assert_eq!(
            room,
            k(
                r#"{"event":"syncd_recording_disabled","id":"SY_disabled_RM_1","room":{"sid":"RM_1","name":"r1"}}"#
            )
        );
        assert_eq!(
            room,
            k(r#"{"room":{"name":"r\u0031"}}"#),
            "escapes are decoded"
        );
        assert_ne!(room, k(r#"{"room":{"sid":"RM_1","name":"r2"}}"#));
        assert_eq!(
            k(r#"{"room":{"sid":"RM_9"}}"#),
            k(r#"{"egressInfo":{"roomId":"RM_9"}}"#),
            "no name: the sid"
        );
        assert_ne!(
            room_key("EV_a", b"{}"),
            room_key("EV_b", b"{}"),
            "no room: the id"
        );
        assert!(room >= 0);
    }

    #[tokio::test]
    async fn lanes_partition_by_room_in_arrival_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path()).unwrap();
        let body = |room: usize| format!(r#"{{"room":{{"name":"room{room}"}}}}"#).into_bytes();
        for i in 0..40 {
            s.put(format!("EV_{i:02}"), body(i % 5), None)
                .await
                .unwrap();
        }
        let mut seen = Vec::new();
        for lanes in [3usize, 2] {
            s.set_lanes(lanes).await.unwrap();
            seen.clear();
            for lane in 0..lanes {
                let batch = s.next_lane_batch(lane, 100).await.unwrap();
                let seqs: Vec<i64> = batch.iter().map(|p| p.seq).collect();
                assert!(seqs.windows(2).all(|w| w[0] < w[1]), "arrival order");
                for p in batch {
                    let room = room_key(&p.key, &p.body) as u64 % lanes as u64;
                    assert_eq!(room, lane as u64, "every room in its lane");
                    seen.push(p.key);
                }
            }
            seen.sort();
            assert_eq!(seen.len(), 40, "each event in exactly one lane");
            seen.dedup();
            assert_eq!(seen.len(), 40);
        }
        // Put after the lane count changed, and replayed from quarantine: placed too.
        s.put("EV_new".into(), body(1), None).await.unwrap();
        s.quarantine(
            s.next_lane_batch((room_key("EV_new", &body(1)) % 2) as usize, 100)
                .await
                .unwrap()
                .last()
                .unwrap()
                .seq,
            "test".into(),
            None,
        )
        .await
        .unwrap();
        assert_eq!(s.replay(None).await.unwrap(), 1);
        let mut n = 0;
        for lane in 0..2 {
            n += s.next_lane_batch(lane, 100).await.unwrap().len();
        }
        assert_eq!(n, 41);
    }

    #[tokio::test]
    async fn maintain_gives_every_free_page_back() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path()).unwrap();
        let pad = "p".repeat(16 << 10);
        for i in 0..300 {
            let body = format!(r#"{{"room":{{"name":"r{i}"}},"m":"{pad}"}}"#);
            s.put(format!("EV_{i}"), body.into_bytes(), None)
                .await
                .unwrap();
        }
        let grown = s.bytes_on_disk();
        assert!(grown > 4 << 20, "{grown}");
        let done = s.next_batch(1000).await.unwrap();
        s.complete(done.iter().map(|p| (p.seq, p.key.clone())).collect())
            .await
            .unwrap();
        let m = s
            .maintain(std::time::Duration::from_secs(3600))
            .await
            .unwrap();
        assert!(
            m.bytes_on_disk < 1 << 20,
            "file and WAL back under 1 MB: {m:?} (grown to {grown})"
        );
    }

    #[tokio::test]
    async fn keeps_arrival_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path()).unwrap();
        for i in 0..50 {
            s.put(format!("EV_{i:02}"), vec![], None).await.unwrap();
        }
        let keys: Vec<String> = s
            .next_batch(100)
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.key)
            .collect();
        let want: Vec<String> = (0..50).map(|i| format!("EV_{i:02}")).collect();
        assert_eq!(keys, want);
    }
}
