//! Rejected events in `event_processor.rejections` (layout and reasons: migration 5).
//!
//! A rejection expires when its id is older than the store's `REJECTIONS_TTL`: ids are UUID v7,
//! so "older than" is "below the smallest id of that instant", a range of the primary key.
//! Reads skip expired rows; each `keep` deletes its pair's expired rows and those beyond the
//! newest [`MAX_REJECTIONS_PER_PAIR`], in the transaction that adds the new ones.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::Deserialize;
use uuid::Uuid;

use super::{CorruptRow, PgError, PostgresStore, column, corrupt, param, store_error, version_of};
use crate::domain::{ClientId, EventId, EventName, SchemaVersion};
use crate::error::cause;
use crate::ports::{MAX_REJECTIONS_PER_PAIR, Rejection, RejectionStore, StoreError};
use crate::retry::{Deadline, Failure, retry};
use crate::schema::ValidationIssue;

const TABLE: &str = "rejections";

/// The columns `rejection` reads, in its order.
macro_rules! rejection_columns {
    () => {
        concat!(
            "id::text, version, ",
            rfc3339!("received_at"),
            ", request_id, error, errors::text, data, truncated, replayed"
        )
    };
}

/// One pair's share of a `keep`, as the statement's array parameters: one element per
/// rejection, in id order.
#[derive(Default)]
struct Batch<'a> {
    ids: Vec<String>,
    versions: Vec<Option<i64>>,
    received_at: Vec<&'a str>,
    request_ids: Vec<Option<&'a str>>,
    error: Vec<&'a str>,
    /// `errors` as JSON text.
    errors: Vec<String>,
    data: Vec<&'a [u8]>,
    truncated: Vec<bool>,
    replayed: Vec<Option<i64>>,
}

impl<'a> Batch<'a> {
    fn push(&mut self, rejection: &'a Rejection) -> Result<(), serde_json::Error> {
        self.ids.push(rejection.id.to_string());
        self.versions.push(rejection.version.map(param));
        self.received_at.push(&rejection.received_at);
        self.request_ids.push(rejection.request_id.as_deref());
        self.error.push(&rejection.error);
        self.errors.push(serde_json::to_string(&rejection.errors)?);
        self.data.push(rejection.data.as_bytes());
        self.truncated.push(rejection.truncated);
        self.replayed.push(rejection.replayed.map(param));
        Ok(())
    }

    fn len(&self) -> i64 {
        // A slice never holds more than isize::MAX elements.
        i64::try_from(self.ids.len()).unwrap_or(i64::MAX)
    }
}

/// `ValidationIssue` as `keep` serialized it into `errors`.
#[derive(Deserialize)]
struct StoredIssue {
    instance_path: String,
    schema_path: String,
    keyword: String,
    message: String,
}

impl From<StoredIssue> for ValidationIssue {
    fn from(issue: StoredIssue) -> Self {
        Self {
            instance_path: issue.instance_path,
            schema_path: issue.schema_path,
            keyword: issue.keyword,
            message: issue.message,
        }
    }
}

/// The smallest UUID v7 of the instant `ttl` ago, as text: the id of every rejection received
/// since then is at least this, the id of every older one is below it.
fn oldest_live_id(ttl: Duration) -> String {
    let since = SystemTime::now()
        .checked_sub(ttl)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let millis = since
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        });
    uuid::Builder::from_unix_timestamp_millis(millis, &[0; 10])
        .into_uuid()
        .to_string()
}

/// A `rejections` row read as `rejection_columns!` lists them.
fn rejection(
    client: &ClientId,
    event: &EventName,
    row: &tokio_postgres::Row,
) -> Result<Rejection, CorruptRow> {
    let id: &str = column(TABLE, row, 0)?;
    let version: Option<i64> = column(TABLE, row, 1)?;
    let errors: &str = column(TABLE, row, 5)?;
    let errors: Vec<StoredIssue> = serde_json::from_str(errors).map_err(|e| corrupt(TABLE, e))?;
    let data: Vec<u8> = column(TABLE, row, 6)?;
    let replayed: Option<i64> = column(TABLE, row, 8)?;
    Ok(Rejection {
        id: EventId::parse(id).map_err(|e| corrupt(TABLE, e))?,
        client: client.clone(),
        event: event.clone(),
        version: version.map(|v| version_of(TABLE, v)).transpose()?,
        received_at: column(TABLE, row, 2)?,
        request_id: column(TABLE, row, 3)?,
        error: column(TABLE, row, 4)?,
        errors: errors.into_iter().map(ValidationIssue::from).collect(),
        data: String::from_utf8(data).map_err(|e| corrupt(TABLE, e))?,
        truncated: column(TABLE, row, 7)?,
        replayed: replayed.map(|v| version_of(TABLE, v)).transpose()?,
    })
}

#[async_trait]
impl RejectionStore for PostgresStore {
    /// One transaction for all of them. Per pair (pairs in one order, so that concurrent keeps
    /// cannot deadlock): count them into `rejection_pairs`, which locks the pair's row and
    /// numbers them (`seq`, in id order); insert them; delete the pair's expired rows and those
    /// kept more than [`MAX_REJECTIONS_PER_PAIR`] rejections ago. "Newest" is thus the order
    /// they were kept in, which is id order except between keeps that raced each other.
    /// Repeating it after a lost reply inserts nothing twice (`ON CONFLICT DO NOTHING` on the
    /// id); the pair's count then skips a few numbers, which is harmless.
    async fn keep(&self, rejections: &[Rejection], deadline: Deadline) -> Result<(), StoreError> {
        if rejections.is_empty() {
            return Ok(());
        }
        let mut pairs: BTreeMap<(&ClientId, &EventName), Vec<&Rejection>> = BTreeMap::new();
        for rejection in rejections {
            pairs
                .entry((&rejection.client, &rejection.event))
                .or_default()
                .push(rejection);
        }
        let mut batches = Vec::with_capacity(pairs.len());
        for ((client, event), mut kept) in pairs {
            kept.sort_by_key(|rejection| rejection.id);
            let mut batch = Batch::default();
            for rejection in kept {
                // Strings only: serializing them cannot fail.
                batch
                    .push(rejection)
                    .map_err(|e| StoreError::Corrupt(cause(e)))?;
            }
            batches.push((client, event, batch));
        }
        let batches = &batches;
        let oldest_live = &oldest_live_id(self.rejections_ttl);
        let cap = i64::try_from(MAX_REJECTIONS_PER_PAIR).unwrap_or(i64::MAX);
        retry(self.retry, deadline, move || async move {
            let mut conn = self.pool.get().await?;
            let count = conn
                .prepare_cached(
                    "INSERT INTO event_processor.rejection_pairs AS pair (client, event, kept)
                     VALUES ($1, $2, $3)
                     ON CONFLICT (client, event) DO UPDATE SET kept = pair.kept + excluded.kept
                     RETURNING kept",
                )
                .await?;
            let insert = conn
                .prepare_cached(
                    "INSERT INTO event_processor.rejections
                         (client, event, id, seq, version, received_at, request_id, error,
                          errors, data, truncated, replayed)
                     SELECT $1::text, $2::text, id::uuid, $3::int8 + ordinality, version,
                            received_at::timestamptz, request_id, error, errors::json, data,
                            truncated, replayed
                     FROM unnest($4::text[], $5::int8[], $6::text[], $7::text[], $8::text[],
                                 $9::text[], $10::bytea[], $11::bool[], $12::int8[])
                          WITH ORDINALITY AS kept(id, version, received_at, request_id, error,
                                                  errors, data, truncated, replayed, ordinality)
                     ON CONFLICT (client, event, id) DO NOTHING",
                )
                .await?;
            let purge = conn
                .prepare_cached(
                    "DELETE FROM event_processor.rejections
                     WHERE client = $1 AND event = $2
                       AND (id < $3::text::uuid OR seq <= $4::int8)",
                )
                .await?;
            let tx = conn.transaction().await?;
            for (client, event, batch) in batches {
                let (client, event) = (client.as_str(), event.as_str());
                let newest: i64 = tx
                    .query_one(&count, &[&client, &event, &batch.len()])
                    .await?
                    .try_get(0)?;
                tx.execute(
                    &insert,
                    &[
                        &client,
                        &event,
                        &(newest - batch.len()),
                        &batch.ids,
                        &batch.versions,
                        &batch.received_at,
                        &batch.request_ids,
                        &batch.error,
                        &batch.errors,
                        &batch.data,
                        &batch.truncated,
                        &batch.replayed,
                    ],
                )
                .await?;
                tx.execute(&purge, &[&client, &event, oldest_live, &(newest - cap)])
                    .await?;
            }
            tx.commit().await?;
            Ok::<_, Failure<PgError>>(())
        })
        .await
        .map_err(store_error)
    }

    async fn list(
        &self,
        client: &ClientId,
        event: &EventName,
        limit: usize,
        before: Option<EventId>,
        deadline: Deadline,
    ) -> Result<Vec<Rejection>, StoreError> {
        let oldest_live = &oldest_live_id(self.rejections_ttl);
        // No id is above the largest UUID: "before" it is every one.
        let before = &before.map_or(Uuid::max(), |id| id.as_uuid()).to_string();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        retry(self.retry, deadline, move || async move {
            let conn = self.pool.get().await?;
            let statement = conn
                .prepare_cached(concat!(
                    "SELECT ",
                    rejection_columns!(),
                    " FROM event_processor.rejections
                      WHERE client = $1 AND event = $2
                        AND id >= $3::text::uuid AND id < $4::text::uuid
                      ORDER BY id DESC LIMIT $5"
                ))
                .await?;
            let rows = conn
                .query(
                    &statement,
                    &[
                        &client.as_str(),
                        &event.as_str(),
                        oldest_live,
                        before,
                        &limit,
                    ],
                )
                .await?;
            let page: Result<Vec<_>, _> = rows
                .iter()
                .map(|row| rejection(client, event, row))
                .collect();
            Ok(page?)
        })
        .await
        .map_err(store_error)
    }

    async fn get(
        &self,
        client: &ClientId,
        event: &EventName,
        id: EventId,
        deadline: Deadline,
    ) -> Result<Option<Rejection>, StoreError> {
        let oldest_live = &oldest_live_id(self.rejections_ttl);
        let id = &id.to_string();
        retry(self.retry, deadline, move || async move {
            let conn = self.pool.get().await?;
            let statement = conn
                .prepare_cached(concat!(
                    "SELECT ",
                    rejection_columns!(),
                    " FROM event_processor.rejections
                      WHERE client = $1 AND event = $2 AND id = $3::text::uuid
                        AND id >= $4::text::uuid"
                ))
                .await?;
            let row = conn
                .query_opt(
                    &statement,
                    &[&client.as_str(), &event.as_str(), id, oldest_live],
                )
                .await?;
            Ok(row.map(|row| rejection(client, event, &row)).transpose()?)
        })
        .await
        .map_err(store_error)
    }

    /// `coalesce`: the first replay's version stays, so repeating the call changes nothing.
    async fn mark_replayed(
        &self,
        client: &ClientId,
        event: &EventName,
        id: EventId,
        version: SchemaVersion,
        deadline: Deadline,
    ) -> Result<(), StoreError> {
        let id = &id.to_string();
        retry(self.retry, deadline, move || async move {
            let conn = self.pool.get().await?;
            let statement = conn
                .prepare_cached(
                    "UPDATE event_processor.rejections SET replayed = coalesce(replayed, $4::int8)
                     WHERE client = $1 AND event = $2 AND id = $3::text::uuid",
                )
                .await?;
            conn.execute(
                &statement,
                &[&client.as_str(), &event.as_str(), id, &param(version)],
            )
            .await?;
            Ok(())
        })
        .await
        .map_err(store_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_received_within_the_ttl_are_live_and_older_ones_are_not() {
        let ttl = Duration::from_secs(60);
        // The smallest (random bits 0x00) or largest (0xff) id of the millisecond `ago` ago.
        let id_at = |ago: Duration, random: u8| {
            let at = SystemTime::now() - ago;
            let millis = at
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_millis();
            uuid::Builder::from_unix_timestamp_millis(millis as u64, &[random; 10]).into_uuid()
        };

        let oldest_live: Uuid = oldest_live_id(ttl).parse().unwrap();

        assert!(id_at(Duration::from_secs(59), 0x00) >= oldest_live);
        assert!(id_at(Duration::from_secs(61), 0xff) < oldest_live);
        assert!(EventId::new().as_uuid() >= oldest_live);
        assert_eq!(oldest_live.get_version_num(), 7);
    }

    #[test]
    fn a_ttl_longer_than_the_clock_keeps_everything() {
        let oldest_live: Uuid = oldest_live_id(Duration::MAX).parse().unwrap();

        assert!(oldest_live <= Uuid::now_v7());
    }
}
