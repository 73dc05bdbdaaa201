//! The SQLite schema store: registrations through the writer thread (decided inside its
//! transaction), reads on the reader connection.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
use tokio::sync::oneshot;

use super::writer::Command;
use super::{CorruptRow, DbError, SqliteDb};
use crate::domain::{ClientId, EventName, SchemaVersion};
use crate::error::cause;
use crate::ports::{Insert, RegisteredEvent, RegisteredSchema, SchemaStore, StoreError};
use crate::retry::Deadline;

fn version(raw: u32) -> Result<SchemaVersion, CorruptRow> {
    SchemaVersion::new(raw).ok_or_else(|| CorruptRow::new("schemas", "version 0"))
}

/// The latest schema of a pair, on any connection (the writer uses it inside its transaction).
pub(super) fn latest_schema(
    conn: &Connection,
    client: &ClientId,
    event: &EventName,
) -> Result<Option<RegisteredSchema>, DbError> {
    let row = conn
        .prepare_cached(
            "SELECT version, schema FROM schemas WHERE client = ?1 AND event = ?2
             ORDER BY version DESC LIMIT 1",
        )?
        .query_row(params![client.as_str(), event.as_str()], |row| {
            Ok((row.get::<_, u32>(0)?, row.get::<_, String>(1)?))
        })
        .optional()?;
    let Some((raw_version, schema)) = row else {
        return Ok(None);
    };
    Ok(Some(RegisteredSchema {
        client: client.clone(),
        event: event.clone(),
        version: version(raw_version)?,
        schema: serde_json::from_str(&schema).map_err(|e| CorruptRow::new("schemas", e))?,
    }))
}

fn store_error(error: DbError) -> StoreError {
    match error {
        DbError::Corrupt(_) => StoreError::Corrupt(cause(error)),
        DbError::Sql(_) | DbError::Task(_) => StoreError::Unavailable(cause(error)),
    }
}

/// SQLite is local and every wait is bounded by its busy timeout, so these calls do not use
/// the request's deadline: abandoning a queued write would answer 503 for a row that is
/// committed a moment later.
#[async_trait]
impl SchemaStore for SqliteDb {
    async fn insert_if_absent(
        &self,
        client: &ClientId,
        event: &EventName,
        schema: &Value,
        _deadline: Deadline,
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
            .map_err(|error| {
                // The writer reports its transaction's failure as a shared cause.
                if matches!(error.downcast_ref::<DbError>(), Some(DbError::Corrupt(_))) {
                    StoreError::Corrupt(error)
                } else {
                    StoreError::Unavailable(error)
                }
            })
    }

    async fn get(
        &self,
        client: &ClientId,
        event: &EventName,
        _deadline: Deadline,
    ) -> Result<Option<RegisteredSchema>, StoreError> {
        let (client, event) = (client.clone(), event.clone());
        self.read(move |conn| latest_schema(conn, &client, &event))
            .await
            .map_err(store_error)
    }

    async fn list(
        &self,
        client: &ClientId,
        _deadline: Deadline,
    ) -> Result<Vec<RegisteredEvent>, StoreError> {
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
                let (event, raw_version) = row?;
                Ok(RegisteredEvent {
                    client: client.clone(),
                    event: EventName::parse(&event).map_err(|e| CorruptRow::new("schemas", e))?,
                    version: version(raw_version)?,
                })
            })
            .collect()
        })
        .await
        .map_err(store_error)
    }
}
