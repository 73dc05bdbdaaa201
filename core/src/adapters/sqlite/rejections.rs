//! The SQLite rejection store (API.md, "Rejected events"): one request's rejections are kept
//! by one command of the writer thread, in one transaction that also purges what their pairs
//! hold past retention; reads run on the reader connection and never show an expired row.
//!
//! A rejection's age comes from its id: a UUID v7 made when the event was received, stored as
//! lowercase hyphenated text, which sorts as its timestamp does. A pair's rows older than the
//! TTL are then a range of the primary key (`id < cutoff`), so hiding and purging them costs
//! an index seek and no extra column.
//!
//! Storage is bounded per pair: each `keep` deletes the pair's rows older than the TTL and
//! those beyond its newest [`MAX_REJECTIONS_PER_PAIR`] (numbered as they are kept, so both are
//! range deletes), so a flood of invalid events replaces old rejections instead of growing
//! the file. A pair that stops receiving them keeps at most that many rows, hidden from reads
//! once expired.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rusqlite::{Connection, Row, params};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::store::store_error;
use super::writer::Command;
use super::{CorruptRow, DbError, SqliteDb};
use crate::domain::{ClientId, EventId, EventName, SchemaVersion};
use crate::ports::{MAX_REJECTIONS_PER_PAIR, Rejection, RejectionStore, StoreError};
use crate::retry::Deadline;
use crate::schema::ValidationIssue;

/// A rejection as the writer inserts it, encoded by the caller so that the writer thread,
/// which every write of the process waits on, only executes statements.
pub(super) struct KeptRow {
    client: ClientId,
    event: EventName,
    id: String,
    version: Option<u32>,
    received_at: String,
    request_id: Option<String>,
    error: String,
    /// The `ValidationIssue`s as a JSON array.
    errors: String,
    data: String,
    truncated: bool,
}

impl KeptRow {
    fn new(rejection: &Rejection) -> Self {
        Self {
            client: rejection.client.clone(),
            event: rejection.event.clone(),
            id: rejection.id.to_string(),
            version: rejection.version.map(SchemaVersion::get),
            received_at: rejection.received_at.clone(),
            request_id: rejection.request_id.clone(),
            error: rejection.error.clone(),
            errors: encode_issues(&rejection.errors),
            data: rejection.data.clone(),
            truncated: rejection.truncated,
        }
    }
}

/// `ValidationIssue` has no `Deserialize` (the core only writes it); this is its stored shape.
#[derive(Deserialize)]
struct StoredIssue {
    instance_path: String,
    schema_path: String,
    keyword: String,
    message: String,
}

/// Built as a `Value` rather than serialized, so that encoding cannot fail.
fn encode_issues(issues: &[ValidationIssue]) -> String {
    Value::Array(
        issues
            .iter()
            .map(|issue| {
                json!({
                    "instance_path": issue.instance_path,
                    "schema_path": issue.schema_path,
                    "keyword": issue.keyword,
                    "message": issue.message,
                })
            })
            .collect(),
    )
    .to_string()
}

fn corrupt(detail: impl std::fmt::Display) -> CorruptRow {
    CorruptRow::new("rejections", detail)
}

fn decode_issues(raw: &str) -> Result<Vec<ValidationIssue>, CorruptRow> {
    let stored: Vec<StoredIssue> = serde_json::from_str(raw).map_err(corrupt)?;
    Ok(stored
        .into_iter()
        .map(|issue| ValidationIssue {
            instance_path: issue.instance_path,
            schema_path: issue.schema_path,
            keyword: issue.keyword,
            message: issue.message,
        })
        .collect())
}

/// The smallest id of the oldest millisecond still kept at `now`: every id of that
/// millisecond or later sorts at or after it, every earlier one before it.
fn cutoff(ttl: Duration, now: SystemTime) -> String {
    let oldest = now.checked_sub(ttl).unwrap_or(UNIX_EPOCH);
    let ms = oldest
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis());
    // A v7 UUID's first 48 bits are its Unix time in milliseconds; the rest are zero here.
    let ms = ms.min((1 << 48) - 1);
    Uuid::from_u128(ms << 80).hyphenated().to_string()
}

/// Inserts one request's rejections and purges their pairs (inside the writer's transaction).
/// Per pair: count the rows into `rejection_pairs`, which numbers them (`seq`, in the order
/// given); insert them; delete the pair's expired rows and those kept more than
/// [`MAX_REJECTIONS_PER_PAIR`] rejections ago — both range deletes of an index, whatever the
/// pair holds. "Newest" is thus the order they were kept in (id order within a process).
/// An id already kept (a retried `keep` whose answer was lost) keeps its first row, and with
/// it any replay mark; its number is skipped, which is harmless.
pub(super) fn keep(conn: &Connection, rows: &[KeptRow], ttl: Duration) -> rusqlite::Result<()> {
    let mut pairs: BTreeMap<(&ClientId, &EventName), Vec<&KeptRow>> = BTreeMap::new();
    for row in rows {
        pairs
            .entry((&row.client, &row.event))
            .or_default()
            .push(row);
    }
    let mut count = conn.prepare_cached(
        "INSERT INTO rejection_pairs AS pair (client, event, kept) VALUES (?1, ?2, ?3)
         ON CONFLICT (client, event) DO UPDATE SET kept = pair.kept + excluded.kept
         RETURNING kept",
    )?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO rejections
             (client, event, id, version, received_at, request_id, error, errors, data,
              truncated, seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (client, event, id) DO NOTHING",
    )?;
    let mut expired =
        conn.prepare_cached("DELETE FROM rejections WHERE client = ?1 AND event = ?2 AND id < ?3")?;
    let mut beyond_cap = conn
        .prepare_cached("DELETE FROM rejections WHERE client = ?1 AND event = ?2 AND seq <= ?3")?;
    let cutoff = cutoff(ttl, SystemTime::now());
    let cap = i64::try_from(MAX_REJECTIONS_PER_PAIR).unwrap_or(i64::MAX);
    for ((client, event), rows) in pairs {
        let added = i64::try_from(rows.len()).unwrap_or(i64::MAX);
        let kept: i64 = count
            .query_row(params![client.as_str(), event.as_str(), added], |row| {
                row.get(0)
            })?;
        for (seq, row) in (kept - added + 1..).zip(rows) {
            insert.execute(params![
                client.as_str(),
                event.as_str(),
                row.id,
                row.version,
                row.received_at,
                row.request_id,
                row.error,
                row.errors,
                row.data.as_bytes(),
                row.truncated,
                seq,
            ])?;
        }
        expired.execute(params![client.as_str(), event.as_str(), cutoff])?;
        beyond_cap.execute(params![client.as_str(), event.as_str(), kept - cap])?;
    }
    Ok(())
}

pub(super) fn mark_replayed(
    conn: &Connection,
    client: &ClientId,
    event: &EventName,
    id: EventId,
    version: SchemaVersion,
) -> rusqlite::Result<()> {
    // Only the first replay's version is recorded: a later call changes nothing.
    conn.prepare_cached(
        "UPDATE rejections SET replayed = ?4
         WHERE client = ?1 AND event = ?2 AND id = ?3 AND replayed IS NULL",
    )?
    .execute(params![
        client.as_str(),
        event.as_str(),
        id.to_string(),
        version.get()
    ])?;
    Ok(())
}

/// The columns [`rejection`] reads, in its order.
macro_rules! columns {
    () => {
        "id, version, received_at, request_id, error, errors, data, truncated, replayed"
    };
}

fn version(raw: Option<u32>) -> Result<Option<SchemaVersion>, CorruptRow> {
    raw.map(|v| SchemaVersion::new(v).ok_or_else(|| corrupt("version 0")))
        .transpose()
}

/// A row of [`columns!`] as a rejection of the pair.
fn rejection(client: &ClientId, event: &EventName, row: &Row<'_>) -> Result<Rejection, DbError> {
    let id: String = row.get(0)?;
    let errors: String = row.get(5)?;
    let data = row.get_ref(6)?.as_bytes().map_err(corrupt)?;
    Ok(Rejection {
        id: EventId::parse(&id).map_err(corrupt)?,
        client: client.clone(),
        event: event.clone(),
        version: version(row.get(1)?)?,
        received_at: row.get(2)?,
        request_id: row.get(3)?,
        error: row.get(4)?,
        errors: decode_issues(&errors)?,
        data: std::str::from_utf8(data).map_err(corrupt)?.to_owned(),
        truncated: row.get(7)?,
        replayed: version(row.get(8)?)?,
    })
}

/// SQLite is local and every wait is bounded by its busy timeout, so, like the schema store,
/// these calls do not use the request's deadline.
#[async_trait]
impl RejectionStore for SqliteDb {
    async fn keep(&self, rejections: &[Rejection], _deadline: Deadline) -> Result<(), StoreError> {
        if rejections.is_empty() {
            return Ok(());
        }
        let rows = rejections.iter().map(KeptRow::new).collect();
        let ttl = self.rejections_ttl();
        self.write(|reply| Command::Keep { rows, ttl, reply }).await
    }

    async fn list(
        &self,
        client: &ClientId,
        event: &EventName,
        limit: usize,
        before: Option<EventId>,
        _deadline: Deadline,
    ) -> Result<Vec<Rejection>, StoreError> {
        let (client, event) = (client.clone(), event.clone());
        let cutoff = cutoff(self.rejections_ttl(), SystemTime::now());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |conn| {
            let mut query = match before {
                None => conn.prepare_cached(concat!(
                    "SELECT ",
                    columns!(),
                    " FROM rejections WHERE client = ?1 AND event = ?2 AND id >= ?3
                     ORDER BY id DESC LIMIT ?4"
                ))?,
                Some(_) => conn.prepare_cached(concat!(
                    "SELECT ",
                    columns!(),
                    " FROM rejections WHERE client = ?1 AND event = ?2 AND id >= ?3 AND id < ?5
                     ORDER BY id DESC LIMIT ?4"
                ))?,
            };
            let (client_name, event_name) = (client.as_str(), event.as_str());
            let mut rows = match before {
                None => query.query(params![client_name, event_name, cutoff, limit])?,
                Some(before) => query.query(params![
                    client_name,
                    event_name,
                    cutoff,
                    limit,
                    before.to_string()
                ])?,
            };
            let mut listed = Vec::new();
            while let Some(row) = rows.next()? {
                listed.push(rejection(&client, &event, row)?);
            }
            Ok(listed)
        })
        .await
        .map_err(store_error)
    }

    async fn get(
        &self,
        client: &ClientId,
        event: &EventName,
        id: EventId,
        _deadline: Deadline,
    ) -> Result<Option<Rejection>, StoreError> {
        let (client, event) = (client.clone(), event.clone());
        let cutoff = cutoff(self.rejections_ttl(), SystemTime::now());
        self.read(move |conn| {
            let mut query = conn.prepare_cached(concat!(
                "SELECT ",
                columns!(),
                " FROM rejections WHERE client = ?1 AND event = ?2 AND id = ?3 AND id >= ?4"
            ))?;
            let mut rows = query.query(params![
                client.as_str(),
                event.as_str(),
                id.to_string(),
                cutoff
            ])?;
            rows.next()?
                .map(|row| rejection(&client, &event, row))
                .transpose()
        })
        .await
        .map_err(store_error)
    }

    async fn mark_replayed(
        &self,
        client: &ClientId,
        event: &EventName,
        id: EventId,
        version: SchemaVersion,
        _deadline: Deadline,
    ) -> Result<(), StoreError> {
        self.write(|reply| Command::MarkReplayed {
            client: client.clone(),
            event: event.clone(),
            id,
            version,
            reply,
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cutoff_sorts_between_ids_of_the_millisecond_before_and_of_its_own() {
        let now = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let ttl = Duration::from_millis(23);
        let at = |ms: u64| {
            let ts = uuid::Timestamp::from_unix(
                uuid::NoContext,
                ms / 1000,
                (ms % 1000) as u32 * 1_000_000,
            );
            Uuid::new_v7(ts).hyphenated().to_string()
        };

        let cutoff = cutoff(ttl, now);

        assert!(at(1_700_000_000_099) < cutoff);
        assert!(at(1_700_000_000_100) >= cutoff);
        assert!(at(1_700_000_000_101) > cutoff);
    }

    #[test]
    fn a_ttl_longer_than_the_epoch_keeps_everything() {
        let cutoff = cutoff(Duration::MAX, SystemTime::now());

        assert_eq!(cutoff, Uuid::nil().hyphenated().to_string());
    }

    #[test]
    fn issues_round_trip_through_their_stored_json() {
        let issues = vec![ValidationIssue {
            instance_path: "/a\u{0}b".to_owned(),
            schema_path: "/properties/a/type".to_owned(),
            keyword: "type".to_owned(),
            message: "\"\u{1F600}\" is not of type \"integer\"".to_owned(),
        }];

        assert_eq!(decode_issues(&encode_issues(&issues)).unwrap(), issues);
    }
}
