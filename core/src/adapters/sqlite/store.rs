//! The SQLite schema store: registrations and mode changes through the writer thread (decided
//! inside its transaction), reads on the reader connection.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::Value;
use tokio::sync::oneshot;

use super::writer::Command;
use super::{CorruptRow, DbError, SqliteDb};
use crate::compat::Mode;
use crate::domain::{ClientId, EventName, SchemaVersion};
use crate::error::{Cause, cause};
use crate::ports::{
    Insert, RegisteredEvent, RegisteredSchema, SchemaStore, StoreError, VersionInfo,
};
use crate::retry::Deadline;

fn version(raw: u32) -> Result<SchemaVersion, CorruptRow> {
    SchemaVersion::new(raw).ok_or_else(|| CorruptRow::new("schemas", "version 0"))
}

/// Columns `version, schema, registered_at` of a `schemas` row.
fn registered(
    client: &ClientId,
    event: &EventName,
    row: &Row<'_>,
) -> Result<RegisteredSchema, DbError> {
    let schema: String = row.get(1)?;
    Ok(RegisteredSchema {
        client: client.clone(),
        event: event.clone(),
        version: version(row.get(0)?)?,
        schema: serde_json::from_str(&schema).map_err(|e| CorruptRow::new("schemas", e))?,
        registered_at: row.get(2)?,
    })
}

/// A version of a pair (`None`: the latest), on any connection (the writer uses it inside its
/// transaction).
pub(super) fn schema_version(
    conn: &Connection,
    client: &ClientId,
    event: &EventName,
    wanted: Option<SchemaVersion>,
) -> Result<Option<RegisteredSchema>, DbError> {
    let mut query = match wanted {
        None => conn.prepare_cached(
            "SELECT version, schema, registered_at FROM schemas WHERE client = ?1 AND event = ?2
             ORDER BY version DESC LIMIT 1",
        )?,
        Some(_) => conn.prepare_cached(
            "SELECT version, schema, registered_at FROM schemas
             WHERE client = ?1 AND event = ?2 AND version = ?3",
        )?,
    };
    let mut rows = match wanted {
        None => query.query(params![client.as_str(), event.as_str()])?,
        Some(v) => query.query(params![client.as_str(), event.as_str(), v.get()])?,
    };
    rows.next()?
        .map(|row| registered(client, event, row))
        .transpose()
}

pub(super) fn store_error(error: DbError) -> StoreError {
    match error {
        DbError::Corrupt(_) => StoreError::Corrupt(cause(error)),
        DbError::Sql(_) | DbError::Task(_) => StoreError::Unavailable(cause(error)),
    }
}

/// The writer reports its transaction's failure as a shared cause.
fn written(error: Cause) -> StoreError {
    if matches!(error.downcast_ref::<DbError>(), Some(DbError::Corrupt(_))) {
        StoreError::Corrupt(error)
    } else {
        StoreError::Unavailable(error)
    }
}

impl SqliteDb {
    /// Queues a command for the writer and waits for its answer.
    pub(super) async fn write<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, Cause>>) -> Command,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(command(reply)).map_err(StoreError::Unavailable)?;
        answer
            .await
            .map_err(|e| StoreError::Unavailable(cause(e)))?
            .map_err(written)
    }
}

/// SQLite is local and every wait is bounded by its busy timeout, so these calls do not use
/// the request's deadline: abandoning a queued write would answer 503 for a row that is
/// committed a moment later.
#[async_trait]
impl SchemaStore for SqliteDb {
    async fn insert_version(
        &self,
        client: &ClientId,
        event: &EventName,
        version: SchemaVersion,
        schema: &Value,
        _deadline: Deadline,
    ) -> Result<Insert, StoreError> {
        self.write(|reply| Command::Register {
            client: client.clone(),
            event: event.clone(),
            version,
            schema: schema.to_string(),
            reply,
        })
        .await
    }

    async fn get(
        &self,
        client: &ClientId,
        event: &EventName,
        version: Option<SchemaVersion>,
        _deadline: Deadline,
    ) -> Result<Option<RegisteredSchema>, StoreError> {
        let (client, event) = (client.clone(), event.clone());
        self.read(move |conn| schema_version(conn, &client, &event, version))
            .await
            .map_err(store_error)
    }

    async fn history(
        &self,
        client: &ClientId,
        event: &EventName,
        _deadline: Deadline,
    ) -> Result<Vec<RegisteredSchema>, StoreError> {
        let (client, event) = (client.clone(), event.clone());
        self.read(move |conn| {
            let mut query = conn.prepare_cached(
                "SELECT version, schema, registered_at FROM schemas
                 WHERE client = ?1 AND event = ?2 ORDER BY version",
            )?;
            let mut rows = query.query(params![client.as_str(), event.as_str()])?;
            let mut history = Vec::new();
            while let Some(row) = rows.next()? {
                history.push(registered(&client, &event, row)?);
            }
            Ok(history)
        })
        .await
        .map_err(store_error)
    }

    async fn versions(
        &self,
        client: &ClientId,
        event: &EventName,
        _deadline: Deadline,
    ) -> Result<Vec<VersionInfo>, StoreError> {
        let (client, event) = (client.clone(), event.clone());
        self.read(move |conn| {
            let mut query = conn.prepare_cached(
                "SELECT version, registered_at FROM schemas
                 WHERE client = ?1 AND event = ?2 ORDER BY version",
            )?;
            let mut rows = query.query(params![client.as_str(), event.as_str()])?;
            let mut versions = Vec::new();
            while let Some(row) = rows.next()? {
                versions.push(VersionInfo {
                    version: version(row.get(0)?)?,
                    registered_at: row.get(1)?,
                });
            }
            Ok(versions)
        })
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
            let mut rows = query.query(params![client.as_str()])?;
            let mut events = Vec::new();
            while let Some(row) = rows.next()? {
                let event: String = row.get(0)?;
                events.push(RegisteredEvent {
                    client: client.clone(),
                    event: EventName::parse(&event).map_err(|e| CorruptRow::new("schemas", e))?,
                    version: version(row.get(1)?)?,
                });
            }
            Ok(events)
        })
        .await
        .map_err(store_error)
    }

    async fn compatibility(
        &self,
        client: &ClientId,
        event: &EventName,
        _deadline: Deadline,
    ) -> Result<Option<Mode>, StoreError> {
        let (client, event) = (client.clone(), event.clone());
        self.read(move |conn| {
            let mode: Option<String> = conn
                .prepare_cached("SELECT mode FROM compatibility WHERE client = ?1 AND event = ?2")?
                .query_row(params![client.as_str(), event.as_str()], |row| row.get(0))
                .optional()?;
            Ok(mode
                .map(|m| m.parse().map_err(|e| CorruptRow::new("compatibility", e)))
                .transpose()?)
        })
        .await
        .map_err(store_error)
    }

    async fn set_compatibility(
        &self,
        client: &ClientId,
        event: &EventName,
        mode: Mode,
        _deadline: Deadline,
    ) -> Result<(), StoreError> {
        self.write(|reply| Command::SetCompatibility {
            client: client.clone(),
            event: event.clone(),
            mode,
            reply,
        })
        .await
    }
}
