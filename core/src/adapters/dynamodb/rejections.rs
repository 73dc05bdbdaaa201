//! The [`RejectionStore`] on DynamoDB: each rejection one item of its pair's own partition,
//! `rej#{client}#{event}`, whose sort key is the rejection's id. Ids are UUID v7 written in
//! their hyphenated lowercase form, which sorts as the UUIDs do: by the time they were made.
//! Newest first is therefore a Query in descending sort-key order, and `before` is a key
//! condition (`event < :before`), never a scan.
//!
//! An item holds the rejection's fields (`errors` as a list of maps, `data` as the text it
//! was received as, `truncated`), the version it was checked against (`checked_version`) and,
//! once replayed, `replayed_version` — not `version`: `setup`'s backfill reads any item with a
//! `version` and no `registered_at` as a head of the previous release.
//!
//! **How storage is bounded.** Every item carries [`EXPIRES_AT_ATTR`]: when it was kept plus
//! the store's `REJECTIONS_TTL` ([`DynamoDbSchemaStore::with_rejections_ttl`]; by default
//! [`DEFAULT_REJECTIONS_TTL`](crate::ports::DEFAULT_REJECTIONS_TTL)). DynamoDB's TTL deletes
//! it some time after, without charge, and reads skip it from that instant on. A pair thus
//! holds at most what it was sent during one `REJECTIONS_TTL`, and what it can be sent is
//! bounded by the API's throttling (`ThrottlingRateLimit`), the send functions' reserved
//! concurrency and the 5 MiB batch limit.
//!
//! [`MAX_REJECTIONS_PER_PAIR`](crate::ports::MAX_REJECTIONS_PER_PAIR) is *not* enforced here:
//! DynamoDB cannot count a partition cheaply, and trimming one costs more than it saves. On
//! demand, writing an item costs about ten times what storing it for seven days does, while
//! deleting the oldest items costs a Query and a write per item — as much again as keeping
//! them did. A counter item would not even count right: TTL deletions do not decrement it. The
//! bill of a flood of invalid events is its writes, which only the rate limits bound (see
//! docs/aws.md, "Rejected events and idempotency keys").

use std::collections::HashMap;
use std::time::SystemTime;

use async_trait::async_trait;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemError;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use futures::{StreamExt, TryStreamExt};

use super::{
    CLIENT_KEY, DynamoDbSchemaStore, EVENT_KEY, EXPIRES_AT_ATTR, Item, ItemError, corrupt,
    epoch_seconds, expired, number, string_attr, u64_attr, unavailable, updated_if_present,
};
use crate::adapters::aws;
use crate::domain::{ClientId, EventId, EventName, SchemaVersion};
use crate::error::ErrorChain;
use crate::ports::{Rejection, RejectionStore, StoreError};
use crate::retry::{Deadline, LastAttempt, Retry, RetryError, retry};
use crate::schema::ValidationIssue;

const RECEIVED_AT_ATTR: &str = "received_at";
const CHECKED_VERSION_ATTR: &str = "checked_version";
const REQUEST_ID_ATTR: &str = "request_id";
const ERROR_ATTR: &str = "error";
const ERRORS_ATTR: &str = "errors";
const DATA_ATTR: &str = "data";
const TRUNCATED_ATTR: &str = "truncated";
const REPLAYED_VERSION_ATTR: &str = "replayed_version";

/// The fields of one entry of `errors`.
const INSTANCE_PATH: &str = "instance_path";
const SCHEMA_PATH: &str = "schema_path";
const KEYWORD: &str = "keyword";
const MESSAGE: &str = "message";

/// Most items DynamoDB takes in one BatchWriteItem.
pub const MAX_BATCH_WRITE: usize = 25;

/// BatchWriteItem calls of one `keep` in flight at once: a batch of 500 rejections is 20 calls.
const BATCH_WRITES_IN_FLIGHT: usize = 4;

/// The partition of a pair's rejections: `rej#{client}#{event}`.
pub fn rejection_partition(client: &ClientId, event: &EventName) -> String {
    format!("rej#{client}#{event}")
}

/// Why a BatchWriteItem call did not keep all of its items.
#[derive(Debug, thiserror::Error)]
enum BatchWriteFailure {
    #[error("DynamoDB left {0} item(s) of the batch unprocessed")]
    Unprocessed(usize),
    #[error("BatchWriteItem failed")]
    Call(#[source] Box<SdkError<BatchWriteItemError, HttpResponse>>),
}

impl DynamoDbSchemaStore {
    fn rejection_key(client: &ClientId, event: &EventName, id: EventId) -> Item {
        HashMap::from([
            (
                CLIENT_KEY.to_owned(),
                AttributeValue::S(rejection_partition(client, event)),
            ),
            (EVENT_KEY.to_owned(), AttributeValue::S(id.to_string())),
        ])
    }

    /// The item of a rejection, to expire at `expires_at` (epoch seconds).
    fn rejection_item(rejection: &Rejection, expires_at: u64) -> Item {
        let mut item = Self::rejection_key(&rejection.client, &rejection.event, rejection.id);
        let text = |value: &str| AttributeValue::S(value.to_owned());
        let errors = rejection
            .errors
            .iter()
            .map(|issue| {
                AttributeValue::M(HashMap::from([
                    (INSTANCE_PATH.to_owned(), text(&issue.instance_path)),
                    (SCHEMA_PATH.to_owned(), text(&issue.schema_path)),
                    (KEYWORD.to_owned(), text(&issue.keyword)),
                    (MESSAGE.to_owned(), text(&issue.message)),
                ]))
            })
            .collect();
        item.extend([
            (RECEIVED_AT_ATTR.to_owned(), text(&rejection.received_at)),
            (ERROR_ATTR.to_owned(), text(&rejection.error)),
            (ERRORS_ATTR.to_owned(), AttributeValue::L(errors)),
            (DATA_ATTR.to_owned(), text(&rejection.data)),
            (
                TRUNCATED_ATTR.to_owned(),
                AttributeValue::Bool(rejection.truncated),
            ),
            (EXPIRES_AT_ATTR.to_owned(), number(expires_at)),
        ]);
        if let Some(version) = rejection.version {
            item.insert(
                CHECKED_VERSION_ATTR.to_owned(),
                number(version.get().into()),
            );
        }
        if let Some(request_id) = &rejection.request_id {
            item.insert(REQUEST_ID_ATTR.to_owned(), text(request_id));
        }
        if let Some(version) = rejection.replayed {
            item.insert(
                REPLAYED_VERSION_ATTR.to_owned(),
                number(version.get().into()),
            );
        }
        item
    }

    /// Writes one batch of at most [`MAX_BATCH_WRITE`] items, resending what DynamoDB left
    /// unprocessed (it does so under throttling) and transient failures until `deadline`.
    /// A resent Put of an item already written writes the same item again: harmless.
    async fn batch_write(
        &self,
        mut pending: Vec<WriteRequest>,
        deadline: Deadline,
    ) -> Result<(), StoreError> {
        let mut retry = Retry::new(self.retry, deadline);
        loop {
            let call = self
                .client
                .batch_write_item()
                .request_items(&self.table, pending.clone())
                .send();
            let last = match retry.attempt(call).await {
                Ok(Ok(output)) => {
                    let unprocessed = output
                        .unprocessed_items
                        .and_then(|mut tables| tables.remove(&self.table))
                        .unwrap_or_default();
                    if unprocessed.is_empty() {
                        return Ok(());
                    }
                    pending = unprocessed;
                    LastAttempt::Failed(BatchWriteFailure::Unprocessed(pending.len()))
                }
                Ok(Err(error)) if aws::is_transient(&error) => {
                    LastAttempt::Failed(BatchWriteFailure::Call(Box::new(error)))
                }
                Ok(Err(error)) => {
                    return Err(unavailable(BatchWriteFailure::Call(Box::new(error))));
                }
                Err(timed_out) => LastAttempt::TimedOut(timed_out),
            };
            tracing::warn!(
                error = %ErrorChain(&last),
                attempt = retry.attempts(),
                items = pending.len(),
                "BatchWriteItem: retrying the items not kept"
            );
            if !retry.backoff().await {
                return Err(unavailable(RetryError::Exhausted {
                    attempts: retry.attempts(),
                    last,
                }));
            }
        }
    }
}

/// A rejection item of the pair read back.
fn from_rejection_item(
    client: &ClientId,
    event: &EventName,
    item: &Item,
) -> Result<Rejection, ItemError> {
    let id = string_attr(item, EVENT_KEY)?;
    let id = EventId::parse(id).map_err(|e| ItemError::Id(id.chars().take(64).collect(), e))?;
    let optional_version = |name: &'static str| -> Result<Option<SchemaVersion>, ItemError> {
        if !item.contains_key(name) {
            return Ok(None);
        }
        u32::try_from(u64_attr(item, name)?)
            .ok()
            .and_then(SchemaVersion::new)
            .map(Some)
            .ok_or(ItemError::Number(name))
    };
    let errors = match item.get(ERRORS_ATTR) {
        Some(AttributeValue::L(errors)) => errors
            .iter()
            .map(|entry| {
                let AttributeValue::M(entry) = entry else {
                    return Err(ItemError::Type(ERRORS_ATTR));
                };
                Ok(ValidationIssue {
                    instance_path: string_attr(entry, INSTANCE_PATH)?.to_owned(),
                    schema_path: string_attr(entry, SCHEMA_PATH)?.to_owned(),
                    keyword: string_attr(entry, KEYWORD)?.to_owned(),
                    message: string_attr(entry, MESSAGE)?.to_owned(),
                })
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(ItemError::Type(ERRORS_ATTR)),
    };
    let truncated = match item.get(TRUNCATED_ATTR) {
        Some(AttributeValue::Bool(truncated)) => *truncated,
        _ => return Err(ItemError::Type(TRUNCATED_ATTR)),
    };
    let request_id = match item.get(REQUEST_ID_ATTR) {
        None => None,
        Some(_) => Some(string_attr(item, REQUEST_ID_ATTR)?.to_owned()),
    };
    Ok(Rejection {
        id,
        client: client.clone(),
        event: event.clone(),
        version: optional_version(CHECKED_VERSION_ATTR)?,
        received_at: string_attr(item, RECEIVED_AT_ATTR)?.to_owned(),
        request_id,
        error: string_attr(item, ERROR_ATTR)?.to_owned(),
        errors,
        data: string_attr(item, DATA_ATTR)?.to_owned(),
        truncated,
        replayed: optional_version(REPLAYED_VERSION_ATTR)?,
    })
}

#[async_trait]
impl RejectionStore for DynamoDbSchemaStore {
    /// BatchWriteItem calls of at most 25 items (a few in flight at once), each retried until
    /// every item is in or the deadline passes. Not atomic across calls: an `Err` may leave
    /// some of the rejections kept.
    async fn keep(&self, rejections: &[Rejection], deadline: Deadline) -> Result<(), StoreError> {
        let expires_at = epoch_seconds(SystemTime::now() + self.rejections_ttl);
        let requests: Vec<WriteRequest> = rejections
            .iter()
            .map(|rejection| {
                PutRequest::builder()
                    .set_item(Some(Self::rejection_item(rejection, expires_at)))
                    .build()
                    .map(|put| WriteRequest::builder().put_request(put).build())
                    .map_err(unavailable)
            })
            .collect::<Result<_, _>>()?;
        // Owned chunks: a closure over borrowed ones makes the future not `Send` (rustc #100013).
        let chunks: Vec<Vec<WriteRequest>> = requests
            .chunks(MAX_BATCH_WRITE)
            .map(<[WriteRequest]>::to_vec)
            .collect();
        futures::stream::iter(chunks)
            .map(|chunk| self.batch_write(chunk, deadline))
            .buffer_unordered(BATCH_WRITES_IN_FLIGHT)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// Strongly consistent Queries of the pair's partition in descending id order, from
    /// `before` on, following pages until `limit` live rejections are found; expired ones are
    /// filtered out (they sort last: the oldest expire first).
    async fn list(
        &self,
        client: &ClientId,
        event: &EventName,
        limit: usize,
        before: Option<EventId>,
        deadline: Deadline,
    ) -> Result<Vec<Rejection>, StoreError> {
        let partition = &rejection_partition(client, event);
        let mut condition = String::from("#client = :partition");
        let mut values = HashMap::from([
            (
                ":partition".to_owned(),
                AttributeValue::S(partition.clone()),
            ),
            (":now".to_owned(), number(epoch_seconds(SystemTime::now()))),
        ]);
        let mut names = HashMap::from([
            ("#client".to_owned(), CLIENT_KEY.to_owned()),
            ("#expires".to_owned(), EXPIRES_AT_ATTR.to_owned()),
        ]);
        if let Some(before) = before {
            condition.push_str(" AND #event < :before");
            names.insert("#event".to_owned(), EVENT_KEY.to_owned());
            values.insert(":before".to_owned(), AttributeValue::S(before.to_string()));
        }
        let (condition, names, values) = (&condition, &names, &values);
        let mut found = Vec::new();
        let mut start: Option<Item> = None;
        while found.len() < limit {
            let (from, wanted) = (&start, limit - found.len());
            let page = retry(self.retry, deadline, move || async move {
                self.client
                    .query()
                    .table_name(&self.table)
                    .key_condition_expression(condition)
                    .filter_expression("#expires > :now")
                    .set_expression_attribute_names(Some(names.clone()))
                    .set_expression_attribute_values(Some(values.clone()))
                    .scan_index_forward(false)
                    .consistent_read(true)
                    .limit(i32::try_from(wanted).unwrap_or(i32::MAX))
                    .set_exclusive_start_key(from.clone())
                    .send()
                    .await
                    .map_err(aws::failure)
            })
            .await
            .map_err(unavailable)?;
            for item in page.items() {
                found.push(from_rejection_item(client, event, item).map_err(corrupt)?);
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        found.truncate(limit);
        Ok(found)
    }

    /// One strongly consistent GetItem; an expired item is `None`.
    async fn get(
        &self,
        client: &ClientId,
        event: &EventName,
        id: EventId,
        deadline: Deadline,
    ) -> Result<Option<Rejection>, StoreError> {
        let item = self
            .get_item(Self::rejection_key(client, event, id), None, deadline)
            .await?;
        item.filter(|item| !expired(item, SystemTime::now()))
            .map(|item| from_rejection_item(client, event, &item).map_err(corrupt))
            .transpose()
    }

    /// An UpdateItem that sets `replayed_version` only if it is not set (the first replay's
    /// version stays), and only on an existing item: marking a rejection that expired
    /// meanwhile writes nothing.
    async fn mark_replayed(
        &self,
        client: &ClientId,
        event: &EventName,
        id: EventId,
        version: SchemaVersion,
        deadline: Deadline,
    ) -> Result<(), StoreError> {
        let key = &Self::rejection_key(client, event, id);
        let result = retry(self.retry, deadline, move || async move {
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key.clone()))
                .update_expression("SET #replayed = if_not_exists(#replayed, :version)")
                .condition_expression("attribute_exists(#client)")
                .expression_attribute_names("#replayed", REPLAYED_VERSION_ATTR)
                .expression_attribute_names("#client", CLIENT_KEY)
                .expression_attribute_values(":version", number(version.get().into()))
                .send()
                .await
                .map_err(aws::failure)
        })
        .await;
        // A rejection already gone (its TTL passed) has nothing left to mark.
        updated_if_present(result).map(|_| ())
    }
}
