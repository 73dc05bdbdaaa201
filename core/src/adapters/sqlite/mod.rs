//! The embedded default (feature `sqlite`): one SQLite file holds the schemas and the event log.
//!
//! Writes go through one dedicated writer thread ([`writer`]) that drains every queued command
//! into a single `BEGIN IMMEDIATE` transaction (group commit): concurrent sends share one fsync
//! instead of paying one each, and no blocking I/O ever runs on the async runtime. A command is
//! answered only after its transaction committed (`synchronous=FULL`), so a 200 means the
//! event is on disk. Reads use a separate connection on `spawn_blocking`; WAL mode lets them,
//! and other processes (`listen`), read while the writer writes.
//!
//! The event log is append-only with a gap-free offset per (client, event), computed inside
//! the write transaction, which SQLite's write lock serializes across processes too.
//!
//! [`store`] implements the schema store, [`stream`] the event stream and source,
//! [`rejections`] the rejection store and [`idempotency`] the idempotency keys, all on one
//! [`SqliteDb`] per file.

mod checkpoint;
pub use checkpoint::RESTART_FRAMES;
mod idempotency;
mod rejections;
mod store;
mod stream;
mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak, mpsc};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::error::{Cause, cause};
use crate::ports::DEFAULT_REJECTIONS_TTL;
use writer::{Command, WriterStopped};

/// Benchmark switch, not a setting: when set, SQLite checkpoints inside commits as it does by
/// default (no checkpointer thread), so that `scripts/load` can show what the checkpointer
/// changes in one run.
pub const INLINE_CHECKPOINTS_VAR: &str = "EVENT_PROCESSOR_BENCH_INLINE_CHECKPOINTS";

/// How long a connection waits for another process's write lock before giving up (→ 503).
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The migrations, in order: step `i` brings a file from `PRAGMA user_version` `i` to `i + 1`.
/// A step is never edited once released: add a new one. A file written by the first release is
/// at 0 and already has step 1's tables (created `IF NOT EXISTS`), so that step changes nothing
/// there.
const MIGRATIONS: &[&str] = &[
    // 1: every version of every pair's schema, and the event log.
    "
CREATE TABLE IF NOT EXISTS schemas (
    client        TEXT    NOT NULL,
    event         TEXT    NOT NULL,
    version       INTEGER NOT NULL CHECK (version >= 1),
    schema        TEXT    NOT NULL,
    registered_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (client, event, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    client     TEXT    NOT NULL,
    event      TEXT    NOT NULL,
    offset     INTEGER NOT NULL CHECK (offset >= 0),
    id         TEXT    NOT NULL UNIQUE,
    time       TEXT    NOT NULL,
    dataschema TEXT    NOT NULL,
    data       TEXT    NOT NULL,
    PRIMARY KEY (client, event, offset)
) WITHOUT ROWID;
",
    // 2: each pair's own compatibility mode (pairs without a row use DEFAULT_COMPATIBILITY).
    "
CREATE TABLE IF NOT EXISTS compatibility (
    client TEXT NOT NULL,
    event  TEXT NOT NULL,
    mode   TEXT NOT NULL,
    PRIMARY KEY (client, event)
) WITHOUT ROWID;
",
    // 3: rejected events and idempotency keys (see `rejections` and `idempotency`).
    // `id` is a UUID v7 as lowercase hyphenated text, which sorts as its time does: a pair's
    // rows past their retention are a range of the key. `data` is the event's UTF-8 bytes as
    // a BLOB, so that no text function or tool can stop at a U+0000 in it. Times of the keys
    // are Unix milliseconds.
    "
CREATE TABLE rejections (
    client      TEXT    NOT NULL,
    event       TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    version     INTEGER CHECK (version >= 1),
    received_at TEXT    NOT NULL,
    request_id  TEXT,
    error       TEXT    NOT NULL,
    errors      TEXT    NOT NULL,
    data        BLOB    NOT NULL,
    truncated   INTEGER NOT NULL CHECK (truncated IN (0, 1)),
    replayed    INTEGER CHECK (replayed >= 1),
    PRIMARY KEY (client, event, id)
) WITHOUT ROWID;
CREATE TABLE idempotency (
    client      TEXT    NOT NULL,
    event       TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    fingerprint BLOB    NOT NULL,
    event_ids   TEXT    NOT NULL,
    status      INTEGER,
    body        BLOB,
    lease_until INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (client, event, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_expiry ON idempotency (expires_at);
",
    // 4: rejections numbered per pair in the order they were kept (`seq`, counted in
    // `rejection_pairs`), so that trimming a pair to its newest MAX_REJECTIONS_PER_PAIR is a
    // range delete of the index instead of a walk over the 10,000 newest rows on every keep.
    // Rows kept before this step are numbered in id order.
    "
CREATE TABLE rejection_pairs (
    client TEXT    NOT NULL,
    event  TEXT    NOT NULL,
    kept   INTEGER NOT NULL,
    PRIMARY KEY (client, event)
) WITHOUT ROWID;
ALTER TABLE rejections ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
UPDATE rejections SET seq = numbered.n
FROM (SELECT client, event, id,
             ROW_NUMBER() OVER (PARTITION BY client, event ORDER BY id) AS n
      FROM rejections) AS numbered
WHERE rejections.client = numbered.client
  AND rejections.event = numbered.event
  AND rejections.id = numbered.id;
INSERT INTO rejection_pairs (client, event, kept)
SELECT client, event, MAX(seq) FROM rejections GROUP BY client, event;
CREATE INDEX rejections_seq ON rejections (client, event, seq);
",
];

/// Applies the migrations this file has not seen, in one transaction (another process opening
/// the same file waits for it).
fn migrate(conn: &mut Connection) -> Result<(), MigrateError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let applied: usize = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if applied > MIGRATIONS.len() {
        return Err(MigrateError::Newer {
            file: applied,
            known: MIGRATIONS.len(),
        });
    }
    for step in &MIGRATIONS[applied..] {
        tx.execute_batch(step)?;
    }
    tx.pragma_update(None, "user_version", MIGRATIONS.len())?;
    tx.commit()?;
    Ok(())
}

/// Why a file could not be migrated.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
    #[error("the file is at schema version {file}, newer than this release knows ({known})")]
    Newer { file: usize, known: usize },
}

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("could not resolve the SQLite path {}", .path.display())]
    Path {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not open the SQLite database {}", .path.display())]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("could not migrate the SQLite database {}", .path.display())]
    Migrate {
        path: PathBuf,
        #[source]
        source: MigrateError,
    },
    #[error("could not start the SQLite writer thread")]
    Writer(#[source] std::io::Error),
}

/// A failure of a read or write transaction.
#[derive(Debug, thiserror::Error)]
enum DbError {
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
    #[error(transparent)]
    Corrupt(#[from] CorruptRow),
    /// The blocking task did not run to its end (it panicked, or the runtime is stopping).
    #[error("the SQLite read task did not complete")]
    Task(#[from] tokio::task::JoinError),
}

/// A row that this code did not write correctly (hand-edited file, other tool).
#[derive(Debug, thiserror::Error)]
#[error("unreadable row in SQLite table {table}: {detail}")]
struct CorruptRow {
    table: &'static str,
    detail: String,
}

impl CorruptRow {
    fn new(table: &'static str, detail: impl std::fmt::Display) -> Self {
        Self {
            table,
            detail: detail.to_string(),
        }
    }
}

/// Open handles by absolute path, so one process has one writer thread per file.
static OPEN: LazyLock<Mutex<HashMap<PathBuf, Weak<SqliteDb>>>> = LazyLock::new(Default::default);

/// Opens the database at `path` (creating and migrating it if needed), or returns the handle
/// this process already has for that file: two writer threads on one file would only contend
/// for its lock, and `SCHEMA_STORE` and `EVENT_STREAM` usually name the same file.
pub fn open(path: &Path) -> Result<Arc<SqliteDb>, OpenError> {
    let key = std::path::absolute(path).map_err(|source| OpenError::Path {
        path: path.to_owned(),
        source,
    })?;
    let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(db) = open.get(&key).and_then(Weak::upgrade) {
        return Ok(db);
    }
    let db = SqliteDb::open(&key)?;
    open.retain(|_, weak| weak.strong_count() > 0);
    open.insert(key, Arc::downgrade(&db));
    Ok(db)
}

/// A SQLite database holding schemas, events, rejections and idempotency keys; implements
/// `SchemaStore`, `EventStream`, `EventSource`, `RejectionStore` and `IdempotencyStore`.
pub struct SqliteDb {
    path: PathBuf,
    writer: Mutex<mpsc::Sender<Command>>,
    reader: Arc<Mutex<Connection>>,
    commits: Arc<AtomicU64>,
    checkpoints: Arc<AtomicU64>,
    pending: Arc<AtomicUsize>,
    /// How long rejections are kept, in milliseconds (the precision of their ids' time).
    rejections_ttl_ms: AtomicU64,
}

impl std::fmt::Debug for SqliteDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteDb")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn open_connection(path: &Path, busy_timeout: Duration) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(busy_timeout)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a commit is durable when it returns, which is what a 200 promises.
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

impl SqliteDb {
    /// Opens a handle of its own on the database at `path`, creating and migrating it if
    /// needed. [`open`] shares one handle per file; tests use this to act as two processes.
    pub fn open(path: impl AsRef<Path>) -> Result<Arc<Self>, OpenError> {
        Self::open_with_busy_timeout(path, DEFAULT_BUSY_TIMEOUT)
    }

    /// [`SqliteDb::open`] with another wait for a lock held by another process (fault tests
    /// use a short one so that a held lock turns into 503s quickly).
    pub fn open_with_busy_timeout(
        path: impl AsRef<Path>,
        busy_timeout: Duration,
    ) -> Result<Arc<Self>, OpenError> {
        let path = path.as_ref().to_path_buf();
        let sqlite = |source| OpenError::Sqlite {
            path: path.clone(),
            source,
        };
        let mut write_conn = open_connection(&path, busy_timeout).map_err(sqlite)?;
        migrate(&mut write_conn).map_err(|source| OpenError::Migrate {
            path: path.clone(),
            source,
        })?;
        // Checkpoints happen on the checkpointer's thread, never inside a commit. (The
        // benchmark switch below restores SQLite's own checkpoints inside commits, to measure
        // what the checkpointer saves; see BENCHMARKS.md.)
        let inline_checkpoints = std::env::var_os(INLINE_CHECKPOINTS_VAR).is_some();
        if !inline_checkpoints {
            write_conn
                .pragma_update(None, "wal_autocheckpoint", 0)
                .map_err(sqlite)?;
        }
        let checkpoint_conn = open_connection(&path, busy_timeout).map_err(sqlite)?;
        // SQLite applies the limit on the connection that next writes after the WAL was reset:
        // the writer after its RESTART, the checkpointer for its TRUNCATE.
        for conn in [&write_conn, &checkpoint_conn] {
            conn.pragma_update(None, "journal_size_limit", checkpoint::JOURNAL_SIZE_LIMIT)
                .map_err(sqlite)?;
        }
        let reader = open_connection(&path, busy_timeout).map_err(sqlite)?;
        let (sender, receiver) = mpsc::channel();
        let commits = Arc::new(AtomicU64::new(0));
        let checkpoints = Arc::new(AtomicU64::new(0));
        let restart = Arc::new(AtomicBool::new(false));
        let pending = Arc::new(AtomicUsize::new(0));
        let counters = writer::Counters {
            commits: commits.clone(),
            checkpoints: checkpoints.clone(),
            restart: restart.clone(),
            pending: pending.clone(),
        };
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer::run(write_conn, busy_timeout, receiver, &counters))
            .map_err(OpenError::Writer)?;
        let (watched, counted, asks) = (
            Arc::downgrade(&commits),
            Arc::downgrade(&checkpoints),
            Arc::downgrade(&restart),
        );
        if !inline_checkpoints {
            std::thread::Builder::new()
                .name("sqlite-checkpoint".into())
                .spawn(move || checkpoint::run(checkpoint_conn, watched, counted, asks))
                .map_err(OpenError::Writer)?;
        }
        Ok(Arc::new(Self {
            path,
            writer: Mutex::new(sender),
            reader: Arc::new(Mutex::new(reader)),
            commits,
            checkpoints,
            pending,
            rejections_ttl_ms: AtomicU64::new(millis(DEFAULT_REJECTIONS_TTL)),
        }))
    }

    /// Keeps rejections for `ttl` (`REJECTIONS_TTL`) instead of [`DEFAULT_REJECTIONS_TTL`]:
    /// older ones are no longer read, and are purged by the next `keep` of their pair.
    /// [`open`] shares one handle per file in a process, so this sets it for every user of
    /// that handle.
    pub fn with_rejections_ttl(self: Arc<Self>, ttl: Duration) -> Arc<Self> {
        self.rejections_ttl_ms.store(millis(ttl), Ordering::Relaxed);
        self
    }

    fn rejections_ttl(&self) -> Duration {
        Duration::from_millis(self.rejections_ttl_ms.load(Ordering::Relaxed))
    }

    /// Write transactions committed by this handle so far (events per commit shows the
    /// group commit at work).
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// WAL checkpoints completed for this handle so far (its checkpointer's, and the RESTARTs
    /// its writer runs when the checkpointer asks).
    pub fn checkpoints(&self) -> u64 {
        self.checkpoints.load(Ordering::Relaxed)
    }

    /// Commands queued for the writer or in its current transaction, not yet answered.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    /// Queues a command for the writer thread.
    fn send(&self, command: Command) -> Result<(), Cause> {
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        self.pending.fetch_add(1, Ordering::SeqCst);
        writer.send(command).map_err(|_| {
            self.pending.fetch_sub(1, Ordering::SeqCst);
            cause(WriterStopped)
        })
    }

    /// Runs a read on the reader connection without blocking the async runtime.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T, DbError> {
        read_on(self.reader.clone(), f).await
    }
}

/// `duration` in whole milliseconds; beyond `u64` (584 million years) it saturates.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Runs `f` on `reader` on the blocking pool.
async fn read_on<T: Send + 'static>(
    reader: Arc<Mutex<Connection>>,
    f: impl FnOnce(&Connection) -> Result<T, DbError> + Send + 'static,
) -> Result<T, DbError> {
    tokio::task::spawn_blocking(move || {
        let conn = reader.lock().unwrap_or_else(|e| e.into_inner());
        f(&conn)
    })
    .await?
}
