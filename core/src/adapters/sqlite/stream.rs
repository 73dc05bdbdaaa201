//! The SQLite event log: appended through the writer thread (acknowledged at commit), read by
//! polling the file, so that a `listen` in another process follows a `serve` writing it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, params};
use tokio::sync::oneshot;

use super::writer::{Command, Row};
use super::{CorruptRow, DbError, SqliteDb, read_on};
use crate::domain::{ClientId, EventName};
use crate::envelope::{CloudEvent, DATA_CONTENT_TYPE, Envelope, SPEC_VERSION};
use crate::error::cause;
use crate::ports::{EventSource, EventStream, StartAt, StreamError, Subscription};
use crate::retry::Deadline;

/// How often a subscription polls the file for new events, and how long one poll waits.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
const POLL_WAIT: Duration = Duration::from_millis(500);
/// Most events one subscription poll returns.
const POLL_LIMIT: i64 = 1000;

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

impl SqliteDb {
    /// Appends rows in one command of the writer: all are committed, or none is.
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

/// Like the schema store, appends do not use the request's deadline: a queued write is
/// committed even if its caller stopped waiting, so it is always waited for (bounded by the
/// busy timeout).
#[async_trait]
impl EventStream for SqliteDb {
    async fn publish(&self, event: &Envelope, _deadline: Deadline) -> Result<(), StreamError> {
        self.append(vec![row_of(event)]).await
    }

    /// All events in one transaction: all are committed, or none is.
    async fn publish_batch(
        &self,
        events: &[Envelope],
        _deadline: Deadline,
    ) -> Vec<Result<(), StreamError>> {
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
