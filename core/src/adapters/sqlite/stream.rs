//! The SQLite event log: appended through the writer thread (acknowledged at commit), read by
//! polling the file, so that a `listen` in another process follows a `serve` writing it.
//!
//! An append waits for the writer's answer until the request's deadline. A failure is
//! `StreamError::Unavailable` (→ 503 `service_unavailable`) when nothing can have been written:
//! the writer is gone, or it rolled the transaction back (e.g. another process held the write
//! lock past the busy timeout). Once the command is queued, though, the writer commits it
//! whether or not anyone still waits: a caller whose deadline comes first gets
//! `StreamError::Unconfirmed` (→ 503 `publish_unconfirmed`), as the events may yet be committed.
//!
//! Event ids are unique in the log, and a retry after an unconfirmed append publishes under
//! the same ids: an append refused because an id is already in the log for the same pair
//! counts those events as published (the earlier append committed after all) and writes only
//! the others.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, params};
use tokio::sync::oneshot;

use super::writer::{Command, Row};
use super::{CorruptRow, DbError, SqliteDb, read_on};
use crate::domain::{ClientId, EventName};
use crate::envelope::{CloudEvent, DATA_CONTENT_TYPE, Envelope, SPEC_VERSION};
use crate::error::{Cause, cause};
use crate::ports::{EventSource, EventStream, StartAt, StreamError, Subscription};
use crate::retry::Deadline;

/// How often a subscription polls the file for new events, and how long one poll waits.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
const POLL_WAIT: Duration = Duration::from_millis(500);
/// Most events one subscription poll returns.
const POLL_LIMIT: i64 = 1000;
/// Most appends of one publish that meet an id already in the log or the transaction.
const MAX_DUPLICATE_ROUNDS: u32 = 3;

fn row_of(envelope: &Envelope) -> Row {
    let ce = &envelope.cloud_event;
    Row {
        client: envelope.client.clone(),
        event: envelope.event.clone(),
        id: ce.id.clone(),
        time: ce.time.clone(),
        dataschema: ce.dataschema.clone(),
        data: envelope.data_json().to_owned(),
    }
}

fn unavailable(error: DbError) -> StreamError {
    StreamError::Unavailable(cause(error))
}

/// The request's deadline came before the writer answered a queued append.
#[derive(Debug, thiserror::Error)]
#[error(
    "the SQLite writer did not answer within the request's deadline; the append is still queued or in its transaction"
)]
struct AnswerNotAwaited;

/// The request's deadline had passed before the append could be queued.
#[derive(Debug, thiserror::Error)]
#[error("the request's deadline passed before the append was queued")]
struct DeadlinePassed;

/// The writer dropped a queued append without answering: its thread stopped (a panic rolls
/// its transaction back; commands it never took are dropped with its queue).
#[derive(Debug, thiserror::Error)]
#[error("the SQLite writer stopped without answering")]
struct WriterGone;

/// How an append that was not committed failed.
enum AppendFailure {
    /// Queued, and nothing was written: the writer rolled its transaction back (its error),
    /// or stopped without taking it.
    RolledBack(Cause),
    /// Queued, and not answered in time: it may still commit.
    Unanswered,
    /// Never queued: the deadline had passed, or the writer is gone.
    NotQueued(Cause),
}

impl From<AppendFailure> for StreamError {
    fn from(failure: AppendFailure) -> Self {
        match failure {
            AppendFailure::RolledBack(error) | AppendFailure::NotQueued(error) => {
                StreamError::Unavailable(error)
            }
            AppendFailure::Unanswered => StreamError::Unconfirmed(cause(AnswerNotAwaited)),
        }
    }
}

/// Whether the writer's error is the log's unique index on `id`: an event with one of the
/// ids is in the log already.
fn is_duplicate_id(error: &Cause) -> bool {
    match error.downcast_ref::<DbError>() {
        Some(DbError::Sql(rusqlite::Error::SqliteFailure(failure, Some(message)))) => {
            failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                && message.contains("events.id")
        }
        _ => false,
    }
}

impl SqliteDb {
    /// Appends the events in one command of the writer: all are committed, or none is.
    async fn append(&self, events: &[Envelope], deadline: Deadline) -> Result<(), StreamError> {
        let mut rows: Vec<Row> = events.iter().map(row_of).collect();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let error = match self.append_rows(rows, deadline).await {
                Ok(()) => return Ok(()),
                Err(AppendFailure::RolledBack(error)) if is_duplicate_id(&error) => error,
                Err(failure) => return Err(failure.into()),
            };
            // An id is in the log, or twice in the writer's transaction: an earlier append
            // under the same ids (the first attempt of a retried request, answered
            // `publish_unconfirmed`) committed after all, or is committing now. The events in
            // the log are published; the others, rolled back with them, are written again.
            // Unreadable, it leaves the outcome as unknown as that earlier append's.
            let present = self
                .present(events)
                .await
                .map_err(|e| StreamError::Unconfirmed(cause(e)))?;
            rows = events
                .iter()
                .zip(&present)
                .filter(|(_, present)| !**present)
                .map(|(event, _)| row_of(event))
                .collect();
            if rows.is_empty() {
                return Ok(());
            }
            if attempts == MAX_DUPLICATE_ROUNDS {
                // That earlier append is still somewhere between queued and committed.
                return Err(StreamError::Unconfirmed(error));
            }
        }
    }

    /// Queues rows for the writer and waits for its answer until `deadline`.
    async fn append_rows(&self, rows: Vec<Row>, deadline: Deadline) -> Result<(), AppendFailure> {
        if deadline.has_passed() {
            return Err(AppendFailure::NotQueued(cause(DeadlinePassed)));
        }
        let (reply, answer) = oneshot::channel();
        self.send(Command::Append { rows, reply })
            .map_err(AppendFailure::NotQueued)?;
        match tokio::time::timeout(deadline.remaining(), answer).await {
            Ok(Ok(Ok(()))) => Ok(()),
            // The writer answers an error only after rolling the whole group back.
            Ok(Ok(Err(error))) => Err(AppendFailure::RolledBack(error)),
            Ok(Err(_)) => Err(AppendFailure::RolledBack(cause(WriterGone))),
            // Queued (perhaps already in the writer's transaction, waiting for the file's
            // write lock): the writer commits it whether or not this caller still waits.
            Err(_) => Err(AppendFailure::Unanswered),
        }
    }

    /// For each event, whether the log holds an event of its pair with its id.
    async fn present(&self, events: &[Envelope]) -> Result<Vec<bool>, DbError> {
        let keys: Vec<(ClientId, EventName, String)> = events
            .iter()
            .map(|e| (e.client.clone(), e.event.clone(), e.cloud_event.id.clone()))
            .collect();
        self.read(move |conn| {
            let mut query = conn.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM events WHERE id = ?1 AND client = ?2 AND event = ?3)",
            )?;
            let mut present = Vec::with_capacity(keys.len());
            for (client, event, id) in &keys {
                present.push(
                    query.query_row(params![id, client.as_str(), event.as_str()], |row| {
                        row.get::<_, bool>(0)
                    })?,
                );
            }
            Ok(present)
        })
        .await
    }
}

/// Appends wait for the writer until the request's deadline; see the module's documentation
/// for what a failure means.
#[async_trait]
impl EventStream for SqliteDb {
    async fn publish(&self, event: &Envelope, deadline: Deadline) -> Result<(), StreamError> {
        self.append(std::slice::from_ref(event), deadline).await
    }

    /// All events in one transaction: all are committed, or none is.
    async fn publish_batch(
        &self,
        events: &[Envelope],
        deadline: Deadline,
    ) -> Vec<Result<(), StreamError>> {
        let result = self.append(events, deadline).await;
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
                    Ok(conn.query_row(
                        "SELECT COALESCE(MAX(offset) + 1, 0) FROM events WHERE client = ?1 AND event = ?2",
                        params![c.as_str(), e.as_str()],
                        |row| row.get::<_, i64>(0),
                    )?)
                })
                .await
                .map_err(unavailable)?,
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

/// One row of the log as read back: (offset, id, time, dataschema, data).
type LogRow = (i64, String, String, String, String);

impl SqliteSubscription {
    async fn poll(&mut self) -> Result<Vec<CloudEvent>, StreamError> {
        let (client, event, next) = (self.client.clone(), self.event.clone(), self.next);
        let rows: Vec<LogRow> = read_on(self.reader.clone(), move |conn| {
            let mut query = conn.prepare_cached(
                "SELECT offset, id, time, dataschema, data FROM events
                 WHERE client = ?1 AND event = ?2 AND offset >= ?3 ORDER BY offset LIMIT ?4",
            )?;
            let rows = query.query_map(
                params![client.as_str(), event.as_str(), next, POLL_LIMIT],
                |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                    ))
                },
            )?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
        .map_err(unavailable)?;

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
                data: serde_json::from_str(&data)
                    .map_err(|e| StreamError::Corrupt(cause(CorruptRow::new("events", e))))?,
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
