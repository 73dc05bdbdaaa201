//! The embedded default: one SQLite file holds the schemas and the event log.
//!
//! Writes go through one dedicated writer thread that drains every queued command into a
//! single `BEGIN IMMEDIATE` transaction (group commit): concurrent sends share one fsync
//! instead of paying one each, and no blocking I/O ever runs on the async runtime. A command
//! is answered only after its transaction committed (`synchronous=FULL`), so a 200 means the
//! event is on disk. Reads use a separate connection on `spawn_blocking`; WAL mode lets them,
//! and other processes (`listen`), read while the writer writes.
//!
//! The event log is append-only with a gap-free offset per (client, event), computed inside
//! the write transaction, which SQLite's write lock serializes across processes too.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::domain::{ClientId, EventName, SchemaVersion};
use crate::envelope::{CloudEvent, DATA_CONTENT_TYPE, Envelope, SPEC_VERSION};
use crate::ports::{
    Cause, EventSource, EventStream, Insert, RegisteredEvent, RegisteredSchema, SchemaStore,
    StartAt, StoreError, StreamError, Subscription, cause,
};

/// Most commands committed in one transaction; bounds the latency one commit can add.
const MAX_GROUP: usize = 1024;
/// How long a connection waits for another process's write lock before giving up (→ 503).
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a subscription polls the file for new events, and how long one poll waits.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
const POLL_WAIT: Duration = Duration::from_millis(500);
/// Most events one subscription poll returns.
const POLL_LIMIT: i64 = 1000;

const MIGRATION: &str = "
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
";

/// Open handles by absolute path, so one process has one writer thread per file.
static OPEN: LazyLock<Mutex<HashMap<PathBuf, Weak<SqliteDb>>>> = LazyLock::new(Default::default);

/// A SQLite database holding schemas and events; implements both ports and [`EventSource`].
pub struct SqliteDb {
    path: PathBuf,
    writer: Mutex<mpsc::Sender<Command>>,
    reader: Arc<Mutex<Connection>>,
    commits: Arc<AtomicU64>,
}

impl std::fmt::Debug for SqliteDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteDb")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// One event row as the writer inserts it.
struct Row {
    client: ClientId,
    event: EventName,
    id: String,
    time: String,
    dataschema: String,
    data: String,
}

enum Command {
    Append {
        rows: Vec<Row>,
        reply: oneshot::Sender<Result<(), Cause>>,
    },
    Register {
        client: ClientId,
        event: EventName,
        schema: String,
        reply: oneshot::Sender<Result<Insert, Cause>>,
    },
}

impl Command {
    fn fail(self, error: Cause) {
        // A caller that went away no longer needs its answer.
        match self {
            Command::Append { reply, .. } => drop(reply.send(Err(error))),
            Command::Register { reply, .. } => drop(reply.send(Err(error))),
        }
    }
}

/// The writer thread is gone (it only exits when the handle is dropped, or on a panic).
#[derive(Debug, thiserror::Error)]
#[error("the SQLite writer thread has stopped")]
struct WriterStopped;

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
    /// Opens (creating and migrating if needed) the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> rusqlite::Result<Arc<Self>> {
        Self::open_with_busy_timeout(path, DEFAULT_BUSY_TIMEOUT)
    }

    /// [`SqliteDb::open`] with another wait for a lock held by another process (fault tests
    /// use a short one so that a held lock turns into 503s quickly).
    pub fn open_with_busy_timeout(
        path: impl AsRef<Path>,
        busy_timeout: Duration,
    ) -> rusqlite::Result<Arc<Self>> {
        let path = path.as_ref().to_path_buf();
        let write_conn = open_connection(&path, busy_timeout)?;
        write_conn.execute_batch(MIGRATION)?;
        let reader = open_connection(&path, busy_timeout)?;
        let (sender, receiver) = mpsc::channel();
        let commits = Arc::new(AtomicU64::new(0));
        let counter = commits.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(write_conn, receiver, &counter))
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        Ok(Arc::new(Self {
            path,
            writer: Mutex::new(sender),
            reader: Arc::new(Mutex::new(reader)),
            commits,
        }))
    }

    /// Like [`SqliteDb::open`], but returns the handle this process already has for the same
    /// file, if any: two writer threads on one file would only contend for its lock.
    pub fn open_shared(path: impl AsRef<Path>) -> rusqlite::Result<Arc<Self>> {
        let key = std::path::absolute(path.as_ref())
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(db) = open.get(&key).and_then(Weak::upgrade) {
            return Ok(db);
        }
        let db = Self::open(&key)?;
        open.retain(|_, weak| weak.strong_count() > 0);
        open.insert(key, Arc::downgrade(&db));
        Ok(db)
    }

    /// Write transactions committed by this handle so far (events per commit shows the
    /// group commit at work).
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    fn send(&self, command: Command) -> Result<(), Cause> {
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        writer.send(command).map_err(|_| cause(WriterStopped))
    }

    /// Runs a read on the reader connection without blocking the async runtime.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, Cause> {
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || {
            let conn = reader.lock().unwrap_or_else(|e| e.into_inner());
            f(&conn)
        })
        .await
        .map_err(cause)?
        .map_err(cause)
    }

    async fn append(&self, rows: Vec<Row>) -> Result<(), StreamError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Append { rows, reply })
            .map_err(StreamError::Unavailable)?;
        answer
            .await
            .map_err(|e| StreamError::Unavailable(cause(e)))?
            .map_err(StreamError::Unavailable)
    }
}

fn writer_loop(mut conn: Connection, commands: mpsc::Receiver<Command>, commits: &AtomicU64) {
    // Blocks until there is work; ends when every handle (sender) is dropped.
    while let Ok(first) = commands.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match commands.try_recv() {
                Ok(command) => group.push(command),
                Err(_) => break,
            }
        }
        if commit_group(&mut conn, group) {
            commits.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Executes a group of commands in one transaction and answers each after the commit.
/// If anything fails, the whole transaction is rolled back and every command in it fails:
/// nothing is half-written and nothing unacknowledged is reported as written.
/// Returns whether the group committed.
fn commit_group(conn: &mut Connection, group: Vec<Command>) -> bool {
    let outcome = (|| -> rusqlite::Result<Vec<Option<Insert>>> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut outcomes = Vec::with_capacity(group.len());
        for command in &group {
            outcomes.push(match command {
                Command::Append { rows, .. } => {
                    append_rows(&tx, rows)?;
                    None
                }
                Command::Register {
                    client,
                    event,
                    schema,
                    ..
                } => Some(insert_if_absent(&tx, client, event, schema)?),
            });
        }
        tx.commit()?;
        Ok(outcomes)
    })();
    match outcome {
        Ok(outcomes) => {
            for (command, outcome) in group.into_iter().zip(outcomes) {
                match (command, outcome) {
                    (Command::Append { reply, .. }, _) => drop(reply.send(Ok(()))),
                    (Command::Register { reply, .. }, Some(insert)) => drop(reply.send(Ok(insert))),
                    (Command::Register { reply, .. }, None) => {
                        drop(reply.send(Err(cause(WriterStopped))))
                    }
                }
            }
            true
        }
        Err(error) => {
            tracing::error!(%error, commands = group.len(), "SQLite group commit failed; rolled back");
            let error: Cause = cause(error);
            for command in group {
                command.fail(error.clone());
            }
            false
        }
    }
}

fn append_rows(conn: &Connection, rows: &[Row]) -> rusqlite::Result<()> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO events (client, event, offset, id, time, dataschema, data)
         VALUES (?1, ?2,
                 (SELECT COALESCE(MAX(offset) + 1, 0) FROM events WHERE client = ?1 AND event = ?2),
                 ?3, ?4, ?5, ?6)",
    )?;
    for row in rows {
        insert.execute(params![
            row.client.as_str(),
            row.event.as_str(),
            row.id,
            row.time,
            row.dataschema,
            row.data
        ])?;
    }
    Ok(())
}

fn insert_if_absent(
    conn: &Connection,
    client: &ClientId,
    event: &EventName,
    schema: &str,
) -> rusqlite::Result<Insert> {
    // Inside BEGIN IMMEDIATE: no other connection, in any process, can write between the
    // read and the insert, so exactly one registration of a pair wins.
    if let Some(existing) = latest_schema(conn, client, event)? {
        return Ok(Insert::Existing(existing));
    }
    conn.prepare_cached(
        "INSERT INTO schemas (client, event, version, schema) VALUES (?1, ?2, 1, ?3)",
    )?
    .execute(params![client.as_str(), event.as_str(), schema])?;
    Ok(Insert::Inserted(SchemaVersion::FIRST))
}

/// A row that this code did not write correctly (hand-edited file, other tool).
#[derive(Debug, thiserror::Error)]
#[error("unreadable row in SQLite table {table}: {detail}")]
struct CorruptRow {
    table: &'static str,
    detail: String,
}

fn corrupt(table: &'static str, detail: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(CorruptRow {
        table,
        detail: detail.to_string(),
    }))
}

fn latest_schema(
    conn: &Connection,
    client: &ClientId,
    event: &EventName,
) -> rusqlite::Result<Option<RegisteredSchema>> {
    let row = conn
        .prepare_cached(
            "SELECT version, schema FROM schemas WHERE client = ?1 AND event = ?2
             ORDER BY version DESC LIMIT 1",
        )?
        .query_row(params![client.as_str(), event.as_str()], |row| {
            Ok((row.get::<_, u32>(0)?, row.get::<_, String>(1)?))
        })
        .optional()?;
    let Some((version, schema)) = row else {
        return Ok(None);
    };
    Ok(Some(RegisteredSchema {
        client: client.clone(),
        event: event.clone(),
        version: SchemaVersion::new(version).ok_or_else(|| corrupt("schemas", "version 0"))?,
        schema: serde_json::from_str(&schema).map_err(|e| corrupt("schemas", e))?,
    }))
}

fn is_corrupt(error: &Cause) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error.as_ref());
    while let Some(e) = source {
        if e.is::<CorruptRow>() {
            return true;
        }
        source = e.source();
    }
    false
}

fn store_error(error: Cause) -> StoreError {
    if is_corrupt(&error) {
        StoreError::Corrupt(error)
    } else {
        StoreError::Unavailable(error)
    }
}

#[async_trait]
impl SchemaStore for SqliteDb {
    async fn insert_if_absent(
        &self,
        client: &ClientId,
        event: &EventName,
        schema: &Value,
    ) -> Result<Insert, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Register {
            client: client.clone(),
            event: event.clone(),
            schema: schema.to_string(),
            reply,
        })
        .map_err(StoreError::Unavailable)?;
        answer
            .await
            .map_err(|e| StoreError::Unavailable(cause(e)))?
            .map_err(store_error)
    }

    async fn get(
        &self,
        client: &ClientId,
        event: &EventName,
    ) -> Result<Option<RegisteredSchema>, StoreError> {
        let (client, event) = (client.clone(), event.clone());
        self.read(move |conn| latest_schema(conn, &client, &event))
            .await
            .map_err(store_error)
    }

    async fn list(&self, client: &ClientId) -> Result<Vec<RegisteredEvent>, StoreError> {
        let client = client.clone();
        self.read(move |conn| {
            let mut query = conn.prepare_cached(
                "SELECT event, MAX(version) FROM schemas WHERE client = ?1
                 GROUP BY event ORDER BY event",
            )?;
            let rows = query.query_map(params![client.as_str()], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, u32>(1)?))
            })?;
            rows.map(|row| {
                let (event, version) = row?;
                Ok(RegisteredEvent {
                    client: client.clone(),
                    event: EventName::parse(&event).map_err(|e| corrupt("schemas", e))?,
                    version: SchemaVersion::new(version)
                        .ok_or_else(|| corrupt("schemas", "version 0"))?,
                })
            })
            .collect()
        })
        .await
        .map_err(store_error)
    }

    async fn setup(&self) -> Result<(), StoreError> {
        // Migrated on open; nothing else to create.
        Ok(())
    }
}

fn row_of(envelope: &Envelope) -> Row {
    let ce = &envelope.cloud_event;
    Row {
        client: envelope.client.clone(),
        event: envelope.event.clone(),
        id: ce.id.clone(),
        time: ce.time.clone(),
        dataschema: ce.dataschema.clone(),
        data: ce.data.to_string(),
    }
}

#[async_trait]
impl EventStream for SqliteDb {
    async fn publish(&self, event: &Envelope) -> Result<(), StreamError> {
        self.append(vec![row_of(event)]).await
    }

    /// All events in one transaction: all are committed, or none is.
    async fn publish_batch(&self, events: &[Envelope]) -> Vec<Result<(), StreamError>> {
        let result = self.append(events.iter().map(row_of).collect()).await;
        vec![result; events.len()]
    }
}

#[async_trait]
impl EventSource for SqliteDb {
    async fn subscribe(
        &self,
        client: &ClientId,
        event: &EventName,
        start: StartAt,
    ) -> Result<Box<dyn Subscription>, StreamError> {
        let (c, e) = (client.clone(), event.clone());
        let next = match start {
            StartAt::Beginning => 0,
            StartAt::End => self
                .read(move |conn| {
                    conn.query_row(
                        "SELECT COALESCE(MAX(offset) + 1, 0) FROM events WHERE client = ?1 AND event = ?2",
                        params![c.as_str(), e.as_str()],
                        |row| row.get::<_, i64>(0),
                    )
                })
                .await
                .map_err(StreamError::Unavailable)?,
        };
        Ok(Box::new(SqliteSubscription {
            reader: self.reader.clone(),
            client: client.clone(),
            event: event.clone(),
            next,
        }))
    }
}

struct SqliteSubscription {
    reader: Arc<Mutex<Connection>>,
    client: ClientId,
    event: EventName,
    next: i64,
}

impl SqliteSubscription {
    async fn poll(&mut self) -> Result<Vec<CloudEvent>, StreamError> {
        let reader = self.reader.clone();
        let (client, event, next) = (self.client.clone(), self.event.clone(), self.next);
        let rows = tokio::task::spawn_blocking(move || {
            let conn = reader.lock().unwrap_or_else(|e| e.into_inner());
            let mut query = conn.prepare_cached(
                "SELECT offset, id, time, dataschema, data FROM events
                 WHERE client = ?1 AND event = ?2 AND offset >= ?3 ORDER BY offset LIMIT ?4",
            )?;
            let rows = query.query_map(
                params![client.as_str(), event.as_str(), next, POLL_LIMIT],
                |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, String>(3)?,
                        row.get::<_, String>(4)?,
                    ))
                },
            )?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })
        .await
        .map_err(|e| StreamError::Unavailable(cause(e)))?
        .map_err(|e| StreamError::Unavailable(cause(e)))?;

        let mut events = Vec::with_capacity(rows.len());
        for (offset, id, time, dataschema, data) in rows {
            events.push(CloudEvent {
                specversion: SPEC_VERSION.to_owned(),
                id,
                source: format!("/{}", self.client),
                event_type: self.event.to_string(),
                time,
                dataschema,
                datacontenttype: DATA_CONTENT_TYPE.to_owned(),
                data: serde_json::from_str(&data).map_err(|e| StreamError::Corrupt(cause(e)))?,
            });
            self.next = offset + 1;
        }
        Ok(events)
    }
}

#[async_trait]
impl Subscription for SqliteSubscription {
    async fn next_batch(&mut self) -> Result<Vec<CloudEvent>, StreamError> {
        // Another process may be the writer, so poll the file rather than wait on a signal.
        let deadline = tokio::time::Instant::now() + POLL_WAIT;
        loop {
            let events = self.poll().await?;
            if !events.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(events);
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}
