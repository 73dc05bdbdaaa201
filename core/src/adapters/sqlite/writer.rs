//! The writer thread: the only connection of a process that writes to the file. It drains
//! every queued command into one `BEGIN IMMEDIATE` transaction (group commit) and answers each
//! command only after that transaction committed; if it fails, every command in it fails
//! (a row one command cannot read fails that command alone: see [`commit_group`]).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, SystemTime};

use rusqlite::{Connection, TransactionBehavior, params};
use tokio::sync::oneshot;

use super::DbError;
use super::idempotency::{self, Slot};
use super::rejections::{self, KeptRow};
use super::store::schema_version;
use crate::compat::Mode;
use crate::domain::{ClientId, EventId, EventName, Fingerprint, SchemaVersion};
use crate::error::{Cause, cause};
use crate::ports::{Begin, Insert, KeptAnswer};

/// Most commands committed in one transaction; bounds the latency one commit can add.
const MAX_GROUP: usize = 1024;

/// One event row as the writer inserts it.
pub(super) struct Row {
    pub client: ClientId,
    pub event: EventName,
    pub id: String,
    pub time: String,
    pub dataschema: String,
    pub data: String,
}

pub(super) enum Command {
    Append {
        rows: Vec<Row>,
        reply: oneshot::Sender<Result<(), Cause>>,
    },
    Register {
        client: ClientId,
        event: EventName,
        version: SchemaVersion,
        schema: String,
        reply: oneshot::Sender<Result<Insert, Cause>>,
    },
    SetCompatibility {
        client: ClientId,
        event: EventName,
        mode: Mode,
        reply: oneshot::Sender<Result<(), Cause>>,
    },
    /// One request's rejections, and the purge of their pairs past retention.
    Keep {
        rows: Vec<KeptRow>,
        ttl: Duration,
        reply: oneshot::Sender<Result<(), Cause>>,
    },
    MarkReplayed {
        client: ClientId,
        event: EventName,
        id: EventId,
        version: SchemaVersion,
        reply: oneshot::Sender<Result<(), Cause>>,
    },
    Begin {
        slot: Slot,
        fingerprint: Fingerprint,
        /// The event ids as `idempotency::encode_ids` writes them.
        event_ids: String,
        lease_until: SystemTime,
        reply: oneshot::Sender<Result<Begin, Cause>>,
    },
    Complete {
        slot: Slot,
        answer: KeptAnswer,
        reply: oneshot::Sender<Result<(), Cause>>,
    },
    Release {
        slot: Slot,
        reply: oneshot::Sender<Result<(), Cause>>,
    },
}

impl Command {
    fn fail(self, error: Cause) {
        // A caller that went away no longer needs its answer.
        match self {
            Command::Register { reply, .. } => drop(reply.send(Err(error))),
            Command::Begin { reply, .. } => drop(reply.send(Err(error))),
            Command::Append { reply, .. }
            | Command::SetCompatibility { reply, .. }
            | Command::Keep { reply, .. }
            | Command::MarkReplayed { reply, .. }
            | Command::Complete { reply, .. }
            | Command::Release { reply, .. } => drop(reply.send(Err(error))),
        }
    }

    /// Answers the command with what it came to, once its transaction committed.
    fn answer(self, done: Result<Done, Cause>) {
        match (self, done) {
            (command, Err(error)) => command.fail(error),
            (Command::Register { reply, .. }, Ok(Done::Registered(insert))) => {
                drop(reply.send(Ok(insert)))
            }
            (Command::Begin { reply, .. }, Ok(Done::Begun(begun))) => drop(reply.send(Ok(begun))),
            (
                Command::Append { reply, .. }
                | Command::SetCompatibility { reply, .. }
                | Command::Keep { reply, .. }
                | Command::MarkReplayed { reply, .. }
                | Command::Complete { reply, .. }
                | Command::Release { reply, .. },
                Ok(Done::Written),
            ) => drop(reply.send(Ok(()))),
            // `execute` gives every command its own kind of outcome; should that ever break,
            // the caller gets an error rather than a wrong answer.
            (command, Ok(_)) => command.fail(cause(OutcomeMismatch)),
        }
    }
}

/// A command's outcome was of another kind than the command (a bug of this module).
#[derive(Debug, thiserror::Error)]
#[error("the SQLite writer produced an outcome of the wrong kind for a command")]
struct OutcomeMismatch;

/// The writer thread is gone (it only exits when the handle is dropped, or on a panic).
#[derive(Debug, thiserror::Error)]
#[error("the SQLite writer thread has stopped")]
pub(super) struct WriterStopped;

/// What the writer reports to its handle, and what the checkpointer asks of it.
pub(super) struct Counters {
    /// Transactions committed.
    pub commits: Arc<AtomicU64>,
    /// Checkpoints completed (the checkpointer's and the writer's RESTARTs).
    pub checkpoints: Arc<AtomicU64>,
    /// Set by the checkpointer when the WAL should start over: the writer runs the RESTART
    /// checkpoint between two groups (see `checkpoint`).
    pub restart: Arc<AtomicBool>,
    /// Commands sent and not answered yet (the handle counts them in, the writer out).
    pub pending: Arc<AtomicUsize>,
}

/// The writer thread's body: blocks until there is work; ends when every handle is dropped.
pub(super) fn run(
    mut conn: Connection,
    busy_timeout: Duration,
    commands: mpsc::Receiver<Command>,
    counters: &Counters,
) {
    while let Ok(first) = commands.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match commands.try_recv() {
                Ok(command) => group.push(command),
                Err(_) => break,
            }
        }
        let (committed, answers) = commit_group(&mut conn, group);
        if committed {
            counters.commits.fetch_add(1, Ordering::Relaxed);
        }
        // Counted out before they are answered: a caller that has its answer never sees its
        // own command still pending.
        counters.pending.fetch_sub(answers.len(), Ordering::SeqCst);
        for (command, done) in answers {
            command.answer(done);
        }
        // After the answers: the group just committed does not wait for it; the sends queued
        // meanwhile wait for the frames the checkpointer's last PASSIVE left, and no longer.
        if counters.restart.swap(false, Ordering::Relaxed) && restart_wal(&conn, busy_timeout) {
            counters.checkpoints.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A RESTART checkpoint that never waits for a lock: a reader still on the WAL (or another
/// process's writer) makes it give up at once, and the checkpointer asks again after its next
/// PASSIVE, rather than every queued send waiting out the busy handler's sleeps.
/// (`the_wal_of_a_database_written_without_pause_stays_bounded` keeps the WAL bounded with a
/// reader reading back to back all along.)
fn restart_wal(conn: &Connection, busy_timeout: Duration) -> bool {
    if conn.busy_timeout(Duration::ZERO).is_err() {
        return false;
    }
    let restarted = super::checkpoint::checkpoint(conn, "RESTART").is_some();
    if let Err(error) = conn.busy_timeout(busy_timeout) {
        // SQLite fails this only for a connection that is no longer usable. Were it to, the
        // writer would meet every lock at once (its group failing with a 503) instead of
        // waiting for it: say so.
        tracing::error!(%error, "restoring the SQLite writer's busy timeout failed");
    }
    restarted
}

/// A command and what it came to, to be answered.
type Answer = (Command, Result<Done, Cause>);

/// What one command of a committed group came to.
enum Done {
    Written,
    Registered(Insert),
    Begun(Begin),
}

/// Executes a group of commands in one transaction; returns whether it committed, and each
/// command with what it came to, to be answered once the transaction is over.
/// If a statement fails, the whole transaction is rolled back and every command in it fails:
/// nothing is half-written and nothing unacknowledged is reported as written. A row this code
/// cannot read (`DbError::Corrupt`) fails only the command that read it: commands read before
/// they write, so that command wrote nothing, and the others' writes are sound.
fn commit_group(conn: &mut Connection, group: Vec<Command>) -> (bool, Vec<Answer>) {
    let outcome = (|| -> Result<Vec<Result<Done, Cause>>, DbError> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut done = Vec::with_capacity(group.len());
        for command in &group {
            done.push(match execute(&tx, command) {
                Ok(done) => Ok(done),
                Err(error @ DbError::Corrupt(_)) => Err(cause(error)),
                Err(error) => return Err(error),
            });
        }
        tx.commit()?;
        Ok(done)
    })();
    match outcome {
        Ok(done) => (true, group.into_iter().zip(done).collect()),
        Err(error) => {
            tracing::error!(%error, commands = group.len(), "SQLite group commit failed; rolled back");
            let error: Cause = cause(error);
            let failed = group
                .into_iter()
                .map(|command| (command, Err(error.clone())))
                .collect();
            (false, failed)
        }
    }
}

/// One command's statements, inside the group's transaction.
fn execute(tx: &Connection, command: &Command) -> Result<Done, DbError> {
    Ok(match command {
        Command::Append { rows, .. } => {
            append_rows(tx, rows)?;
            Done::Written
        }
        Command::Register {
            client,
            event,
            version,
            schema,
            ..
        } => Done::Registered(insert_version(tx, client, event, *version, schema)?),
        Command::SetCompatibility {
            client,
            event,
            mode,
            ..
        } => {
            set_compatibility(tx, client, event, *mode)?;
            Done::Written
        }
        Command::Keep { rows, ttl, .. } => {
            rejections::keep(tx, rows, *ttl)?;
            Done::Written
        }
        Command::MarkReplayed {
            client,
            event,
            id,
            version,
            ..
        } => {
            rejections::mark_replayed(tx, client, event, *id, *version)?;
            Done::Written
        }
        Command::Begin {
            slot,
            fingerprint,
            event_ids,
            lease_until,
            ..
        } => Done::Begun(idempotency::begin(
            tx,
            slot,
            fingerprint,
            event_ids,
            *lease_until,
        )?),
        Command::Complete { slot, answer, .. } => {
            idempotency::complete(tx, slot, answer)?;
            Done::Written
        }
        Command::Release { slot, .. } => {
            idempotency::release(tx, slot)?;
            Done::Written
        }
    })
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

fn insert_version(
    conn: &Connection,
    client: &ClientId,
    event: &EventName,
    version: SchemaVersion,
    schema: &str,
) -> Result<Insert, DbError> {
    // Inside BEGIN IMMEDIATE: no other connection, in any process, can write between the
    // read and the insert, so exactly one registration of a version wins.
    if let Some(existing) = schema_version(conn, client, event, Some(version))? {
        return Ok(Insert::Taken(existing));
    }
    conn.prepare_cached(
        "INSERT INTO schemas (client, event, version, schema) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        client.as_str(),
        event.as_str(),
        version.get(),
        schema
    ])?;
    Ok(Insert::Inserted)
}

fn set_compatibility(
    conn: &Connection,
    client: &ClientId,
    event: &EventName,
    mode: Mode,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO compatibility (client, event, mode) VALUES (?1, ?2, ?3)
         ON CONFLICT (client, event) DO UPDATE SET mode = excluded.mode",
    )?
    .execute(params![client.as_str(), event.as_str(), mode.as_str()])?;
    Ok(())
}
