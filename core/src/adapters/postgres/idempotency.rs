//! Idempotency keys in `event_processor.idempotency_keys` (layout and reasons: migration 6).
//!
//! Times are the gateway's clock, the one that set the request's lease (`lease_until`), so a
//! lease is compared with the clock that measured it. A record past `expires_at` counts as
//! absent; `begin` deletes a bounded number of them, so the table needs no scheduled job.

use std::time::SystemTime;

use async_trait::async_trait;

use super::{CorruptRow, PgError, PostgresStore, column, corrupt, store_error};
use crate::domain::{ClientId, EventId, EventName, Fingerprint, IdempotencyKey};
use crate::ports::{Begin, IDEMPOTENCY_RETENTION, IdempotencyStore, KeptAnswer, StoreError};
use crate::retry::{Deadline, Failure, retry};

const TABLE: &str = "idempotency_keys";

/// Most expired records one `begin` deletes: more than one `begin` adds, so the table shrinks
/// back after a burst, and few enough that no `begin` waits long on it.
const PURGE_BATCH: i64 = 100;

/// When a record kept from `at` on expires. Saturating: a lease at the end of time is no
/// reason to panic.
fn retained_from(at: SystemTime) -> SystemTime {
    at.checked_add(IDEMPOTENCY_RETENTION).unwrap_or(at)
}

/// A key's record, as `begin` reads it under its row lock.
struct Record {
    fingerprint: Fingerprint,
    event_ids: Vec<EventId>,
    answer: Option<KeptAnswer>,
    lease_until: SystemTime,
    expires_at: SystemTime,
}

impl Record {
    fn read(row: &tokio_postgres::Row) -> Result<Self, CorruptRow> {
        let fingerprint: &[u8] = column(TABLE, row, 0)?;
        let fingerprint = <[u8; 32]>::try_from(fingerprint)
            .map_err(|_| corrupt(TABLE, "a fingerprint that is not 32 bytes"))?;
        let event_ids: Vec<&str> = column(TABLE, row, 1)?;
        let event_ids: Result<Vec<EventId>, _> =
            event_ids.into_iter().map(EventId::parse).collect();
        let status: Option<i32> = column(TABLE, row, 2)?;
        let body: Option<Vec<u8>> = column(TABLE, row, 3)?;
        let answer = match (status, body) {
            (Some(status), Some(body)) => Some(KeptAnswer {
                status: u16::try_from(status)
                    .map_err(|_| corrupt(TABLE, format!("status {status}")))?,
                body,
            }),
            (None, None) => None,
            _ => {
                return Err(corrupt(
                    TABLE,
                    "a status without a body, or a body without one",
                ));
            }
        };
        Ok(Self {
            fingerprint: Fingerprint::from_bytes(fingerprint),
            event_ids: event_ids.map_err(|e| corrupt(TABLE, e))?,
            answer,
            lease_until: column(TABLE, row, 4)?,
            expires_at: column(TABLE, row, 5)?,
        })
    }
}

/// What `begin` does to a record it found.
#[derive(Debug, PartialEq)]
enum Take {
    /// Nothing: the answer is in the record as it is.
    Nothing,
    /// Replace it with this request's (it expired: the key is free again).
    Over,
    /// Hold it until this request's lease, keeping its event ids (resume).
    Lease,
}

/// The memory store's rules, over a record read under its row lock at `now`.
///
/// An attempt that committed but whose reply was lost finds its own record here, held: it is
/// told the key is in progress, as any other request would be, and the client's retry after
/// the lease resumes under the same event ids. (Its ids cannot tell it apart: a replay's lock
/// takes every time the same ids, those of the rejection.)
fn decide(record: Record, fingerprint: Fingerprint, now: SystemTime) -> (Begin, Take) {
    if record.expires_at <= now {
        (Begin::Started, Take::Over)
    } else if record.fingerprint != fingerprint {
        (Begin::Reused, Take::Nothing)
    } else if let Some(answer) = record.answer {
        (Begin::Completed(answer), Take::Nothing)
    } else if record.lease_until > now {
        (Begin::InProgress, Take::Nothing)
    } else {
        let event_ids = record.event_ids;
        (Begin::Resumed { event_ids }, Take::Lease)
    }
}

#[async_trait]
impl IdempotencyStore for PostgresStore {
    /// First deletes up to `PURGE_BATCH` expired records (a statement of its own, so that
    /// its row locks are never held with the key's). Then `INSERT ... ON CONFLICT DO NOTHING`
    /// takes a new key: the primary key decides the race, across processes, and this common
    /// case needs no transaction. A key that exists is read `FOR UPDATE` in a transaction, so
    /// that of concurrent requests finding it free (expired, released, or its lease over)
    /// only the first takes it; the others, once it committed, read its lease and are told
    /// the key is in progress.
    async fn begin(
        &self,
        client: &ClientId,
        event: &EventName,
        key: &IdempotencyKey,
        fingerprint: Fingerprint,
        event_ids: &[EventId],
        lease_until: SystemTime,
        deadline: Deadline,
    ) -> Result<Begin, StoreError> {
        let ids = &event_ids
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>();
        let print = &fingerprint.as_bytes()[..];
        retry(self.retry, deadline, move || async move {
            let now = SystemTime::now();
            let expires_at = retained_from(lease_until.max(now));
            let mut conn = self.pool.get().await?;
            let purge = conn
                .prepare_cached(
                    "DELETE FROM event_processor.idempotency_keys
                     WHERE (client, event, key) IN (
                         SELECT client, event, key FROM event_processor.idempotency_keys
                         WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2
                         FOR UPDATE SKIP LOCKED
                     )",
                )
                .await?;
            conn.execute(&purge, &[&now, &PURGE_BATCH]).await?;
            let insert = conn
                .prepare_cached(
                    "INSERT INTO event_processor.idempotency_keys
                         (client, event, key, fingerprint, event_ids, lease_until, expires_at)
                     VALUES ($1, $2, $3, $4, $5::text[]::uuid[], $6, $7)
                     ON CONFLICT (client, event, key) DO NOTHING
                     RETURNING 1",
                )
                .await?;
            let lock = conn
                .prepare_cached(
                    "SELECT fingerprint, event_ids::text[], status, body, lease_until, expires_at
                     FROM event_processor.idempotency_keys
                     WHERE client = $1 AND event = $2 AND key = $3
                     FOR UPDATE",
                )
                .await?;
            let (client, event, key) = (client.as_str(), event.as_str(), key.as_str());
            let fresh: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
                &client,
                &event,
                &key,
                &print,
                ids,
                &lease_until,
                &expires_at,
            ];
            if conn.query_opt(&insert, &fresh).await?.is_some() {
                return Ok(Begin::Started);
            }
            let tx = conn.transaction().await?;
            // Gone since the insert found it: only an expired record is deleted, and the
            // next attempt then inserts.
            let Some(row) = tx.query_opt(&lock, &[&client, &event, &key]).await? else {
                return Err(Failure::Transient(PgError::Vanished));
            };
            let (begun, take) = decide(Record::read(&row)?, fingerprint, now);
            match take {
                Take::Nothing => {}
                Take::Over => {
                    tx.execute(
                        "UPDATE event_processor.idempotency_keys
                         SET fingerprint = $4, event_ids = $5::text[]::uuid[], status = NULL,
                             body = NULL, lease_until = $6, expires_at = $7
                         WHERE client = $1 AND event = $2 AND key = $3",
                        &fresh,
                    )
                    .await?;
                }
                Take::Lease => {
                    tx.execute(
                        "UPDATE event_processor.idempotency_keys
                         SET lease_until = $4, expires_at = $5
                         WHERE client = $1 AND event = $2 AND key = $3",
                        &[&client, &event, &key, &lease_until, &expires_at],
                    )
                    .await?;
                }
            }
            tx.commit().await?;
            Ok(begun)
        })
        .await
        .map_err(store_error)
    }

    /// Repeating it after a lost reply keeps the same answer again.
    async fn complete(
        &self,
        client: &ClientId,
        event: &EventName,
        key: &IdempotencyKey,
        answer: &KeptAnswer,
        deadline: Deadline,
    ) -> Result<(), StoreError> {
        let status = i32::from(answer.status);
        let body = &answer.body;
        retry(self.retry, deadline, move || async move {
            let expires_at = retained_from(SystemTime::now());
            let conn = self.pool.get().await?;
            let statement = conn
                .prepare_cached(
                    "UPDATE event_processor.idempotency_keys
                     SET status = $4, body = $5, expires_at = $6
                     WHERE client = $1 AND event = $2 AND key = $3",
                )
                .await?;
            conn.execute(
                &statement,
                &[
                    &client.as_str(),
                    &event.as_str(),
                    &key.as_str(),
                    &status,
                    body,
                    &expires_at,
                ],
            )
            .await?;
            Ok(())
        })
        .await
        .map_err(store_error)
    }

    /// Ends the lease at once (the epoch is before any `now`); the event ids stay.
    async fn release(
        &self,
        client: &ClientId,
        event: &EventName,
        key: &IdempotencyKey,
        deadline: Deadline,
    ) -> Result<(), StoreError> {
        retry(self.retry, deadline, move || async move {
            let conn = self.pool.get().await?;
            let statement = conn
                .prepare_cached(
                    "UPDATE event_processor.idempotency_keys SET lease_until = $4
                     WHERE client = $1 AND event = $2 AND key = $3",
                )
                .await?;
            conn.execute(
                &statement,
                &[
                    &client.as_str(),
                    &event.as_str(),
                    &key.as_str(),
                    &SystemTime::UNIX_EPOCH,
                ],
            )
            .await?;
            Ok(())
        })
        .await
        .map_err(store_error)
    }
}
