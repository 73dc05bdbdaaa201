//! The SQLite idempotency keys (API.md, "Idempotency"). Every change goes through the writer
//! thread, whose `BEGIN IMMEDIATE` transaction holds the file's write lock from the key's read
//! to its write: of any number of concurrent `begin`s for one key, from any number of
//! processes on the file, exactly one finds it free.
//!
//! A record expires [`IDEMPOTENCY_RETENTION`] after its request completed (or after its lease
//! ran out); an expired record is treated as absent at once, and `begin` deletes a bounded
//! batch of expired records in its transaction, so the table holds what the last day's keys
//! need without any sweeper.

use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use super::writer::Command;
use super::{CorruptRow, DbError, SqliteDb};
use crate::domain::{ClientId, EventId, EventName, Fingerprint, IdempotencyKey};
use crate::ports::{Begin, IDEMPOTENCY_RETENTION, IdempotencyStore, KeptAnswer, StoreError};
use crate::retry::Deadline;

/// Most expired records one `begin` deletes: it adds at most one, so expired records are
/// removed faster than keys arrive, and no `begin` pays for a whole day's backlog at once.
const PURGE_BATCH: i64 = 100;

/// A key in its pair's scope: the primary key of a record.
pub(super) struct Slot {
    client: ClientId,
    event: EventName,
    key: IdempotencyKey,
}

impl Slot {
    fn new(client: &ClientId, event: &EventName, key: &IdempotencyKey) -> Self {
        Self {
            client: client.clone(),
            event: event.clone(),
            key: key.clone(),
        }
    }
}

fn corrupt(detail: impl std::fmt::Display) -> CorruptRow {
    CorruptRow::new("idempotency", detail)
}

/// Unix milliseconds, the stored form of times (`SystemTime` before 1970 is 0).
fn unix_ms(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |since| {
        i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
    })
}

/// The retention added to `from`, without overflow.
fn retained_until(from: i64) -> i64 {
    from.saturating_add(i64::try_from(IDEMPOTENCY_RETENTION.as_millis()).unwrap_or(i64::MAX))
}

/// A JSON array of the ids, built as a `Value` so that encoding cannot fail.
fn encode_ids(ids: &[EventId]) -> String {
    Value::Array(ids.iter().map(|id| Value::String(id.to_string())).collect()).to_string()
}

fn decode_ids(raw: &str) -> Result<Vec<EventId>, CorruptRow> {
    let ids: Vec<String> = serde_json::from_str(raw).map_err(corrupt)?;
    ids.iter()
        .map(|id| EventId::parse(id).map_err(corrupt))
        .collect()
}

/// A live record as `begin` reads it.
struct Record {
    fingerprint: Fingerprint,
    event_ids: String,
    answer: Option<KeptAnswer>,
    lease_until: i64,
}

fn answer(status: Option<i64>, body: Option<Vec<u8>>) -> Result<Option<KeptAnswer>, CorruptRow> {
    match (status, body) {
        (None, _) => Ok(None),
        (Some(status), Some(body)) => Ok(Some(KeptAnswer {
            status: u16::try_from(status).map_err(corrupt)?,
            body,
        })),
        (Some(_), None) => Err(corrupt("a status without a body")),
    }
}

/// Looks the key up and takes it if it is free (inside the writer's transaction). Every read
/// and check comes before the first write, so a corrupt record fails this command alone.
pub(super) fn begin(
    conn: &Connection,
    slot: &Slot,
    fingerprint: &Fingerprint,
    event_ids: &str,
    lease_until: SystemTime,
) -> Result<Begin, DbError> {
    let now = unix_ms(SystemTime::now());
    let lease_until = unix_ms(lease_until);
    let expires_at = retained_until(lease_until.max(now));
    let found = conn
        .prepare_cached(
            "SELECT fingerprint, event_ids, status, body, lease_until FROM idempotency
             WHERE client = ?1 AND event = ?2 AND key = ?3 AND expires_at > ?4",
        )?
        .query_row(
            params![
                slot.client.as_str(),
                slot.event.as_str(),
                slot.key.as_str(),
                now
            ],
            |row| {
                Ok((
                    row.get::<_, Vec<u8>>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, Option<i64>>(2)?,
                    row.get::<_, Option<Vec<u8>>>(3)?,
                    row.get::<_, i64>(4)?,
                ))
            },
        )
        .optional()?;
    let record = found
        .map(|(print, event_ids, status, body, lease_until)| {
            let print: [u8; 32] = print
                .try_into()
                .map_err(|_| corrupt("a fingerprint that is not 32 bytes"))?;
            Ok::<_, CorruptRow>(Record {
                fingerprint: Fingerprint::from_bytes(print),
                event_ids,
                answer: answer(status, body)?,
                lease_until,
            })
        })
        .transpose()?;

    let begun = match record {
        None => {
            conn.prepare_cached(
                "INSERT INTO idempotency
                     (client, event, key, fingerprint, event_ids, status, body, lease_until,
                      expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, NULL, NULL, ?6, ?7)
                 ON CONFLICT (client, event, key) DO UPDATE SET
                     fingerprint = excluded.fingerprint, event_ids = excluded.event_ids,
                     status = NULL, body = NULL, lease_until = excluded.lease_until,
                     expires_at = excluded.expires_at",
            )?
            .execute(params![
                slot.client.as_str(),
                slot.event.as_str(),
                slot.key.as_str(),
                fingerprint.as_bytes(),
                event_ids,
                lease_until,
                expires_at
            ])?;
            Begin::Started
        }
        Some(record) if record.fingerprint != *fingerprint => Begin::Reused,
        Some(Record {
            answer: Some(answer),
            ..
        }) => Begin::Completed(answer),
        Some(record) if record.lease_until > now => Begin::InProgress,
        Some(record) => {
            let event_ids = decode_ids(&record.event_ids)?;
            conn.prepare_cached(
                "UPDATE idempotency SET lease_until = ?4, expires_at = ?5
                 WHERE client = ?1 AND event = ?2 AND key = ?3",
            )?
            .execute(params![
                slot.client.as_str(),
                slot.event.as_str(),
                slot.key.as_str(),
                lease_until,
                expires_at
            ])?;
            Begin::Resumed { event_ids }
        }
    };
    conn.prepare_cached(
        "DELETE FROM idempotency WHERE (client, event, key) IN (
             SELECT client, event, key FROM idempotency WHERE expires_at <= ?1 LIMIT ?2)",
    )?
    .execute(params![now, PURGE_BATCH])?;
    Ok(begun)
}

pub(super) fn complete(
    conn: &Connection,
    slot: &Slot,
    answer: &KeptAnswer,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE idempotency SET status = ?4, body = ?5, expires_at = ?6
         WHERE client = ?1 AND event = ?2 AND key = ?3",
    )?
    .execute(params![
        slot.client.as_str(),
        slot.event.as_str(),
        slot.key.as_str(),
        answer.status,
        answer.body,
        retained_until(unix_ms(SystemTime::now()))
    ])?;
    Ok(())
}

pub(super) fn release(conn: &Connection, slot: &Slot) -> rusqlite::Result<()> {
    // A lease that ended at the epoch: the next `begin` resumes at once.
    conn.prepare_cached(
        "UPDATE idempotency SET lease_until = 0 WHERE client = ?1 AND event = ?2 AND key = ?3",
    )?
    .execute(params![
        slot.client.as_str(),
        slot.event.as_str(),
        slot.key.as_str()
    ])?;
    Ok(())
}

/// SQLite is local and every wait is bounded by its busy timeout, so, like the schema store,
/// these calls do not use the request's deadline.
#[async_trait]
impl IdempotencyStore for SqliteDb {
    async fn begin(
        &self,
        client: &ClientId,
        event: &EventName,
        key: &IdempotencyKey,
        fingerprint: Fingerprint,
        event_ids: &[EventId],
        lease_until: SystemTime,
        _deadline: Deadline,
    ) -> Result<Begin, StoreError> {
        self.write(|reply| Command::Begin {
            slot: Slot::new(client, event, key),
            fingerprint,
            event_ids: encode_ids(event_ids),
            lease_until,
            reply,
        })
        .await
    }

    async fn complete(
        &self,
        client: &ClientId,
        event: &EventName,
        key: &IdempotencyKey,
        answer: &KeptAnswer,
        _deadline: Deadline,
    ) -> Result<(), StoreError> {
        self.write(|reply| Command::Complete {
            slot: Slot::new(client, event, key),
            answer: answer.clone(),
            reply,
        })
        .await
    }

    async fn release(
        &self,
        client: &ClientId,
        event: &EventName,
        key: &IdempotencyKey,
        _deadline: Deadline,
    ) -> Result<(), StoreError> {
        self.write(|reply| Command::Release {
            slot: Slot::new(client, event, key),
            reply,
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_round_trip_through_their_stored_json() {
        let ids = vec![EventId::new(), EventId::new()];

        assert_eq!(decode_ids(&encode_ids(&ids)).unwrap(), ids);
        assert_eq!(decode_ids(&encode_ids(&[])).unwrap(), Vec::new());
    }

    #[test]
    fn times_far_out_of_range_saturate_instead_of_overflowing() {
        assert_eq!(unix_ms(UNIX_EPOCH - std::time::Duration::from_secs(1)), 0);
        assert_eq!(retained_until(i64::MAX - 1), i64::MAX);
    }
}
