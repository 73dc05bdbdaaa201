//! DynamoDB schema store (feature `aws`): the production [`SchemaStore`], and, in the same
//! table, its [`RejectionStore`](crate::ports::RejectionStore) and
//! [`IdempotencyStore`](crate::ports::IdempotencyStore).
//!
//! Key design, with the keys of `template.yaml` (partition key `client` (S), sort key `event` (S)):
//! - A **head** item per pair, `{client, event}`, holds the latest version: `version` (N),
//!   `schema` (the JSON Schema as JSON text, so any JSON value round-trips exactly, including
//!   numbers DynamoDB's own types would reshape) and `registered_at` (S), plus the pair's own
//!   `compatibility` (S) once one is set. A client's heads are one partition: `list` is a Query
//!   sorted by event name, never a Scan; `get(None)` and `compatibility` are one GetItem.
//! - A **version** item per version lives in a partition of its pair's own, so that `list`
//!   never reads it: `client = "{client}#{event}"`, `event = "v"` + the version zero-padded to
//!   10 digits (the sort key then orders versions numerically), with `schema` and
//!   `registered_at`. Names match `^[A-Za-z0-9_-]{1,64}$`, so a partition key holding `#` is
//!   never a client's. `get(Some(n))` is one GetItem; `history` and `versions` are a Query of
//!   that partition.
//!
//! A registration writes the version item and the head in one `TransactWriteItems`,
//! conditional on the version item being absent and on the head being at the version before
//! (absent, for version 1): of any number of concurrent registrations of one version, in any
//! number of processes, exactly one wins.
//!
//! **Data written by the previous release**: only heads, all at version 1, without
//! `registered_at`, and no version items. Reads fall back to the head where the version
//! partition lacks the version the head holds; the registration of version 2 writes the missing
//! version-1 item in its own transaction; and `setup` backfills the version item of every such
//! head — with the one Scan of this store, an admin operation that no request makes. Such a
//! version reads with `registered_at` = [`LEGACY_REGISTERED_AT`]: its time was never recorded.
//!
//! Every call on a request's path goes through the one retry policy (`retry`), so throttling,
//! server faults and transaction conflicts are retried until the request's deadline and each
//! attempt ends by it.
//!
//! The same table keeps, in partitions of their own, the **rejections** (`rejections.rs`:
//! `rej#{client}#{event}`, sort key the rejection's id) and the **idempotency keys**
//! (`idempotency.rs`: `idem#{client}#{event}`, sort key the key). Both carry
//! [`EXPIRES_AT_ATTR`], the table's TTL attribute (epoch seconds; schema items never have it,
//! so they never expire). DynamoDB deletes expired items lazily (typically within days; moto
//! never), so every read of these items leaves out those whose time has passed. A partition key
//! holding two `#` is neither a client's (names have no `#`) nor a pair's version partition
//! (one `#`), which also lets IAM tell them apart (`dynamodb:LeadingKeys`, template.yaml).

mod idempotency;
mod rejections;

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, CancellationReason, ConditionCheck,
    KeySchemaElement, KeyType, Put, ReturnValuesOnConditionCheckFailure, ScalarAttributeType,
    SseSpecification, TimeToLiveSpecification, TimeToLiveStatus, TransactWriteItem, Update,
};
use serde_json::Value;

use super::aws;
use crate::compat::{Mode, UnknownMode};
use crate::domain::{ClientId, EventName, NameError, SchemaVersion, now_rfc3339};
use crate::error::{ErrorChain, cause};
use crate::ports::{
    DEFAULT_REJECTIONS_TTL, Insert, RegisteredEvent, RegisteredSchema, SchemaStore, StoreError,
    VersionInfo,
};
use crate::retry::{Deadline, Failure, RetryError, RetryPolicy, retry};

/// Partition key: the client (head items) or `{client}#{event}` (version items).
pub const CLIENT_KEY: &str = "client";
/// Sort key: the event name (head items) or `v` + the zero-padded version (version items).
pub const EVENT_KEY: &str = "event";
const SCHEMA_ATTR: &str = "schema";
const VERSION_ATTR: &str = "version";
const REGISTERED_AT_ATTR: &str = "registered_at";
const COMPATIBILITY_ATTR: &str = "compatibility";
/// The table's TTL attribute (`TimeToLiveSpecification` in template.yaml, enabled by `setup`):
/// when a rejection or an idempotency key may be deleted, in seconds since the Unix epoch.
pub const EXPIRES_AT_ATTR: &str = "expires_at";

pub use idempotency::{AnswerTooLarge, MAX_KEPT_BODY, idempotency_partition};
pub use rejections::{MAX_BATCH_WRITE, rejection_partition};

/// What `registered_at` reads as for a version registered by the previous release, which
/// recorded no time: the Unix epoch, unmistakably not a real registration time, earlier than
/// every real one, and the same before and after `setup` backfills the version's item.
pub const LEGACY_REGISTERED_AT: &str = "1970-01-01T00:00:00.000Z";

/// The reason code of a cancelled transaction's item whose condition failed.
const CONDITION_FAILED: &str = "ConditionalCheckFailed";

/// How long `setup` waits for a new table to become ACTIVE, and for its backfill.
const SETUP_TIMEOUT: Duration = Duration::from_secs(300);

/// An item as the SDK holds it.
type Item = HashMap<String, AttributeValue>;

/// Expression attribute names (placeholder, attribute) of the attributes a read projects.
type Projection = &'static [(&'static str, &'static str)];

const LIST_PROJECTION: Projection = &[("#event", EVENT_KEY), ("#version", VERSION_ATTR)];
const VERSIONS_PROJECTION: Projection = &[("#event", EVENT_KEY), ("#at", REGISTERED_AT_ATTR)];
const HEAD_VERSION_PROJECTION: Projection =
    &[("#version", VERSION_ATTR), ("#at", REGISTERED_AT_ATTR)];
const COMPATIBILITY_PROJECTION: Projection = &[("#compatibility", COMPATIBILITY_ATTR)];

/// Why an item read from the table cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ItemError {
    #[error("item has no string attribute `{0}`")]
    Missing(&'static str),
    #[error("attribute `{VERSION_ATTR}` is not a positive integer")]
    Version,
    #[error("sort key {0:?} of a version item is not `v` and ten digits of a version")]
    VersionKey(String),
    #[error("attribute `{SCHEMA_ATTR}` is not JSON text")]
    Schema(#[source] serde_json::Error),
    #[error("attribute `{COMPATIBILITY_ATTR}` is not a compatibility mode")]
    Mode(#[source] UnknownMode),
    #[error("key attribute `{0}` is not a valid name")]
    Name(&'static str, #[source] NameError),
    #[error("the pair's versions are not 1, 2, 3, … without a gap")]
    Gap,
    #[error("version {0} does not follow the pair's latest version")]
    NotNext(SchemaVersion),
    #[error("the pair has no head item")]
    NoHead,
    #[error("attribute `{0}` is missing or not a number of the expected range")]
    Number(&'static str),
    #[error("attribute `{0}` is missing or not of the expected type")]
    Type(&'static str),
    #[error("{0:?} is not a UUID (a rejection's or an event's id)")]
    Id(String, #[source] uuid::Error),
}

/// The table exists with keys other than this store's (`setup` refuses to use it).
#[derive(Debug, thiserror::Error)]
#[error(
    "table {table} exists with a different key schema (expected {CLIENT_KEY} HASH, {EVENT_KEY} RANGE)"
)]
pub struct WrongKeySchema {
    pub table: String,
}

/// The table has TTL enabled on an attribute other than [`EXPIRES_AT_ATTR`] (a table can have
/// one TTL attribute only; `setup` does not take it over).
#[derive(Debug, thiserror::Error)]
#[error("table {table} has TTL on attribute {attribute:?}, not on {EXPIRES_AT_ATTR}")]
pub struct WrongTtlAttribute {
    pub table: String,
    pub attribute: Option<String>,
}

/// The partition key of a pair's version items: `{client}#{event}`.
pub fn version_partition(client: &ClientId, event: &EventName) -> String {
    format!("{client}#{event}")
}

/// The sort key of a version item: `v` and the version in ten digits (`v0000000002`), so that
/// the sort key orders versions numerically (`u32::MAX` has ten digits).
pub fn version_sort_key(version: SchemaVersion) -> String {
    format!("v{:010}", version.get())
}

fn version_of_sort_key(key: &str) -> Result<SchemaVersion, ItemError> {
    key.strip_prefix('v')
        .filter(|digits| digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|digits| digits.parse::<u32>().ok())
        .and_then(SchemaVersion::new)
        .ok_or_else(|| ItemError::VersionKey(key.chars().take(64).collect()))
}

/// The schema store over `table`, with a client built from the process-wide SDK configuration.
pub async fn open(table: &str) -> DynamoDbSchemaStore {
    DynamoDbSchemaStore::from_config(aws::shared_config().await, table)
}

/// Schemas, rejections and idempotency keys in one DynamoDB table.
#[derive(Clone, Debug)]
pub struct DynamoDbSchemaStore {
    client: Client,
    table: String,
    retry: RetryPolicy,
    /// How long a rejection is kept (`REJECTIONS_TTL`).
    rejections_ttl: Duration,
}

fn unavailable(error: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Unavailable(cause(error))
}

fn corrupt(error: ItemError) -> StoreError {
    StoreError::Corrupt(cause(error))
}

/// The outcome of an UpdateItem conditioned on `attribute_exists(#client)`: `true` when the
/// item was updated, `false` when it does not exist (the condition failed), an error otherwise.
fn updated_if_present<T>(
    result: Result<T, RetryError<SdkError<UpdateItemError, HttpResponse>>>,
) -> Result<bool, StoreError> {
    match result {
        Ok(_) => Ok(true),
        Err(error)
            if matches!(
                error.failure().and_then(|e| e.as_service_error()),
                Some(UpdateItemError::ConditionalCheckFailedException(_))
            ) =>
        {
            Ok(false)
        }
        Err(error) => Err(unavailable(error)),
    }
}

/// Whole seconds since the Unix epoch (a TTL attribute's unit); 0 before it.
fn epoch_seconds(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Whether an item's [`EXPIRES_AT_ATTR`] has passed: DynamoDB may not have deleted it yet,
/// but it is gone as far as readers are concerned. An item without it never expires.
fn expired(item: &Item, now: SystemTime) -> bool {
    match item.get(EXPIRES_AT_ATTR) {
        Some(AttributeValue::N(n)) => n.parse::<u64>().is_ok_and(|at| at <= epoch_seconds(now)),
        _ => false,
    }
}

fn number(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn u64_attr(item: &Item, name: &'static str) -> Result<u64, ItemError> {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse().map_err(|_| ItemError::Number(name)),
        _ => Err(ItemError::Number(name)),
    }
}

fn string_attr<'a>(item: &'a Item, name: &'static str) -> Result<&'a str, ItemError> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value),
        _ => Err(ItemError::Missing(name)),
    }
}

fn version_attr(item: &Item) -> Result<SchemaVersion, ItemError> {
    match item.get(VERSION_ATTR) {
        Some(AttributeValue::N(n)) => n
            .parse::<u32>()
            .ok()
            .and_then(SchemaVersion::new)
            .ok_or(ItemError::Version),
        _ => Err(ItemError::Version),
    }
}

fn schema_attr(item: &Item) -> Result<Value, ItemError> {
    serde_json::from_str(string_attr(item, SCHEMA_ATTR)?).map_err(ItemError::Schema)
}

/// A head's `registered_at`; a head written by the previous release has none.
fn head_registered_at(item: &Item) -> Result<String, ItemError> {
    match item.get(REGISTERED_AT_ATTR) {
        None => Ok(LEGACY_REGISTERED_AT.to_owned()),
        Some(_) => string_attr(item, REGISTERED_AT_ATTR).map(str::to_owned),
    }
}

/// The version a head item holds.
fn from_head(
    client: &ClientId,
    event: &EventName,
    item: &Item,
) -> Result<RegisteredSchema, ItemError> {
    Ok(RegisteredSchema {
        client: client.clone(),
        event: event.clone(),
        version: version_attr(item)?,
        schema: schema_attr(item)?,
        registered_at: head_registered_at(item)?,
    })
}

/// A version item.
fn from_version_item(
    client: &ClientId,
    event: &EventName,
    item: &Item,
) -> Result<RegisteredSchema, ItemError> {
    Ok(RegisteredSchema {
        client: client.clone(),
        event: event.clone(),
        version: version_of_sort_key(string_attr(item, EVENT_KEY)?)?,
        schema: schema_attr(item)?,
        registered_at: string_attr(item, REGISTERED_AT_ATTR)?.to_owned(),
    })
}

/// The placeholders and `ProjectionExpression` of `projection`.
fn projection(projection: Projection) -> (HashMap<String, String>, String) {
    let names = projection
        .iter()
        .map(|(placeholder, name)| ((*placeholder).to_owned(), (*name).to_owned()))
        .collect();
    let expression = projection
        .iter()
        .map(|(placeholder, _)| *placeholder)
        .collect::<Vec<_>>()
        .join(", ");
    (names, expression)
}

/// A cancelled transaction is a 400, but worth another attempt when nothing but transient
/// reasons cancelled it (another transaction on one of its items, throttling): it wrote nothing.
fn transaction_failure(
    error: SdkError<TransactWriteItemsError, HttpResponse>,
) -> Failure<SdkError<TransactWriteItemsError, HttpResponse>> {
    if let Some(reasons) = cancellation_reasons(&error) {
        let mut codes = reasons
            .iter()
            .filter_map(CancellationReason::code)
            .filter(|code| *code != "None")
            .peekable();
        if codes.peek().is_some() && codes.all(aws::is_transient_code) {
            return Failure::Transient(error);
        }
    }
    aws::failure(error)
}

/// The per-item reasons of a cancelled transaction, in the order of its items.
fn cancellation_reasons(
    error: &SdkError<TransactWriteItemsError, HttpResponse>,
) -> Option<&[CancellationReason]> {
    match error.as_service_error()? {
        TransactWriteItemsError::TransactionCanceledException(cancelled) => {
            Some(cancelled.cancellation_reasons())
        }
        _ => None,
    }
}

fn condition_failed(reasons: &[CancellationReason], index: usize) -> bool {
    reasons.get(index).and_then(CancellationReason::code) == Some(CONDITION_FAILED)
}

impl DynamoDbSchemaStore {
    /// A store over `table` using an already configured client (tests add interceptors).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            retry: RetryPolicy::default(),
            rejections_ttl: DEFAULT_REJECTIONS_TTL,
        }
    }

    /// Keeps rejections for `ttl` (`REJECTIONS_TTL`) instead of [`DEFAULT_REJECTIONS_TTL`].
    pub fn with_rejections_ttl(mut self, ttl: Duration) -> Self {
        self.rejections_ttl = ttl;
        self
    }

    /// Spaces retries by `policy` instead of the default (tests retry quickly).
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// A store over `table` with a client built from the shared SDK configuration.
    pub fn from_config(config: &SdkConfig, table: impl Into<String>) -> Self {
        Self::new(Client::new(config), table)
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn head_key(client: &ClientId, event: &EventName) -> Item {
        HashMap::from([
            (CLIENT_KEY.to_owned(), AttributeValue::S(client.to_string())),
            (EVENT_KEY.to_owned(), AttributeValue::S(event.to_string())),
        ])
    }

    fn version_key(client: &ClientId, event: &EventName, version: SchemaVersion) -> Item {
        HashMap::from([
            (
                CLIENT_KEY.to_owned(),
                AttributeValue::S(version_partition(client, event)),
            ),
            (
                EVENT_KEY.to_owned(),
                AttributeValue::S(version_sort_key(version)),
            ),
        ])
    }

    /// One strongly consistent GetItem.
    async fn get_item(
        &self,
        key: Item,
        attributes: Option<Projection>,
        deadline: Deadline,
    ) -> Result<Option<Item>, StoreError> {
        let (names, expression) = match attributes.map(projection) {
            Some((names, expression)) => (Some(names), Some(expression)),
            None => (None, None),
        };
        let (key, names, expression) = (&key, &names, &expression);
        let output = retry(self.retry, deadline, move || async move {
            self.client
                .get_item()
                .table_name(&self.table)
                .set_key(Some(key.clone()))
                .set_expression_attribute_names(names.clone())
                .set_projection_expression(expression.clone())
                .consistent_read(true)
                .send()
                .await
                .map_err(aws::failure)
        })
        .await
        .map_err(unavailable)?;
        Ok(output.item)
    }

    /// Every item of one partition in sort-key order: a strongly consistent Query, following
    /// every page (DynamoDB returns at most 1 MB per call).
    async fn query_partition(
        &self,
        partition: &str,
        attributes: Option<Projection>,
        deadline: Deadline,
    ) -> Result<Vec<Item>, StoreError> {
        let mut names = HashMap::from([("#client".to_owned(), CLIENT_KEY.to_owned())]);
        let mut expression = None;
        if let Some((projected, text)) = attributes.map(projection) {
            names.extend(projected);
            expression = Some(text);
        }
        let (names, expression) = (&names, &expression);
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let from = &start;
            let page = retry(self.retry, deadline, move || async move {
                self.client
                    .query()
                    .table_name(&self.table)
                    .key_condition_expression("#client = :client")
                    .set_expression_attribute_names(Some(names.clone()))
                    .expression_attribute_values(":client", AttributeValue::S(partition.to_owned()))
                    .set_projection_expression(expression.clone())
                    .consistent_read(true)
                    .set_exclusive_start_key(from.clone())
                    .send()
                    .await
                    .map_err(aws::failure)
            })
            .await
            .map_err(unavailable)?;
            items.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }

    /// The pair's head item (`attributes` of it, if given).
    async fn head_item(
        &self,
        client: &ClientId,
        event: &EventName,
        attributes: Option<Projection>,
        deadline: Deadline,
    ) -> Result<Option<Item>, StoreError> {
        self.get_item(Self::head_key(client, event), attributes, deadline)
            .await
    }

    /// The version the pair's head holds: its latest.
    async fn head(
        &self,
        client: &ClientId,
        event: &EventName,
        deadline: Deadline,
    ) -> Result<Option<RegisteredSchema>, StoreError> {
        self.head_item(client, event, None, deadline)
            .await?
            .map(|item| from_head(client, event, &item).map_err(corrupt))
            .transpose()
    }

    /// The items of the pair's version partition (`attributes` of them, which must include the
    /// sort key), ascending, checked to be versions 1, 2, 3, … without a gap.
    async fn version_items(
        &self,
        client: &ClientId,
        event: &EventName,
        attributes: Option<Projection>,
        deadline: Deadline,
    ) -> Result<Vec<Item>, StoreError> {
        let partition = version_partition(client, event);
        // A Query reads each item committed, but not a transaction's items all at once: it can
        // see the version-2 item of the transaction that upgrades a pair of the previous
        // release without that transaction's version-1 item. Read again, that gap is gone; a
        // gap that stays is damaged data.
        for _ in 0..2 {
            let items = self
                .query_partition(&partition, attributes, deadline)
                .await?;
            let mut expected = 1u32;
            let mut contiguous = true;
            for item in &items {
                let version = version_of_sort_key(string_attr(item, EVENT_KEY).map_err(corrupt)?)
                    .map_err(corrupt)?;
                contiguous &= version.get() == expected;
                expected = expected.saturating_add(1);
            }
            if contiguous {
                return Ok(items);
            }
        }
        Err(corrupt(ItemError::Gap))
    }

    /// The version item of `version` if present, else `None`.
    async fn version_item(
        &self,
        client: &ClientId,
        event: &EventName,
        version: SchemaVersion,
        deadline: Deadline,
    ) -> Result<Option<RegisteredSchema>, StoreError> {
        self.get_item(Self::version_key(client, event, version), None, deadline)
            .await?
            .map(|item| from_version_item(client, event, &item).map_err(corrupt))
            .transpose()
    }

    /// A conditional Put of a version item: it must not exist yet. A failed condition returns
    /// the existing item with the cancellation, sparing a read.
    fn put_version(
        &self,
        client: &ClientId,
        event: &EventName,
        version: SchemaVersion,
        schema: &str,
        registered_at: &str,
    ) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(Self::version_key(client, event, version)))
            .item(SCHEMA_ATTR, AttributeValue::S(schema.to_owned()))
            .item(
                REGISTERED_AT_ATTR,
                AttributeValue::S(registered_at.to_owned()),
            )
            .condition_expression("attribute_not_exists(#client)")
            .expression_attribute_names("#client", CLIENT_KEY)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(unavailable)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// The items of the transaction registering `version`: its version item, the head moved
    /// to it (an Update, which keeps the pair's `compatibility`), and for version 2 either a
    /// check that version 1 has its item or, for a pair of the previous release (`legacy_head`),
    /// that item written from the head.
    fn registration(
        &self,
        client: &ClientId,
        event: &EventName,
        version: SchemaVersion,
        schema: &str,
        registered_at: &str,
        legacy_head: Option<&Item>,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let head = Update::builder()
            .table_name(&self.table)
            .set_key(Some(Self::head_key(client, event)))
            .update_expression("SET #version = :version, #schema = :schema, #at = :at")
            .expression_attribute_names("#version", VERSION_ATTR)
            .expression_attribute_names("#schema", SCHEMA_ATTR)
            .expression_attribute_names("#at", REGISTERED_AT_ATTR)
            .expression_attribute_values(":version", AttributeValue::N(version.to_string()))
            .expression_attribute_values(":schema", AttributeValue::S(schema.to_owned()))
            .expression_attribute_values(":at", AttributeValue::S(registered_at.to_owned()));
        let head = match version.get().checked_sub(1).and_then(SchemaVersion::new) {
            None => head
                .condition_expression("attribute_not_exists(#client)")
                .expression_attribute_names("#client", CLIENT_KEY),
            Some(previous) => head
                .condition_expression("#version = :previous")
                .expression_attribute_values(":previous", AttributeValue::N(previous.to_string())),
        };
        let mut items = vec![
            self.put_version(client, event, version, schema, registered_at)?,
            TransactWriteItem::builder()
                .update(head.build().map_err(unavailable)?)
                .build(),
        ];
        if version.get() == 2 {
            items.push(match legacy_head {
                Some(head) => self.put_version(
                    client,
                    event,
                    SchemaVersion::FIRST,
                    string_attr(head, SCHEMA_ATTR).map_err(corrupt)?,
                    &head_registered_at(head).map_err(corrupt)?,
                )?,
                None => TransactWriteItem::builder()
                    .condition_check(
                        ConditionCheck::builder()
                            .table_name(&self.table)
                            .set_key(Some(Self::version_key(client, event, SchemaVersion::FIRST)))
                            .condition_expression("attribute_exists(#client)")
                            .expression_attribute_names("#client", CLIENT_KEY)
                            .build()
                            .map_err(unavailable)?,
                    )
                    .build(),
            });
        }
        Ok(items)
    }

    /// Runs one transaction under the retry policy.
    async fn transact(
        &self,
        items: &[TransactWriteItem],
        deadline: Deadline,
    ) -> Result<(), crate::retry::RetryError<SdkError<TransactWriteItemsError, HttpResponse>>> {
        retry(self.retry, deadline, move || async move {
            self.client
                .transact_write_items()
                .set_transact_items(Some(items.to_vec()))
                .send()
                .await
                .map_err(transaction_failure)
        })
        .await
        .map(drop)
    }

    /// Writes the version item of a head that lacks `registered_at` (written by the previous
    /// release) and records the time on the head, in one transaction: conditional on the
    /// version item being absent and the head unchanged, so that a registration in between
    /// wins. `false` if one (or another `setup`) got there first; `Corrupt` for an item that
    /// cannot be read as a head.
    async fn backfill_head(&self, head: &Item, deadline: Deadline) -> Result<bool, StoreError> {
        let read = || -> Result<_, ItemError> {
            let client = string_attr(head, CLIENT_KEY)?;
            let client = ClientId::parse(client).map_err(|e| ItemError::Name(CLIENT_KEY, e))?;
            let event = string_attr(head, EVENT_KEY)?;
            let event = EventName::parse(event).map_err(|e| ItemError::Name(EVENT_KEY, e))?;
            Ok((
                client,
                event,
                version_attr(head)?,
                string_attr(head, SCHEMA_ATTR)?,
            ))
        };
        let (client, event, version, schema) = read().map_err(corrupt)?;
        let mark = Update::builder()
            .table_name(&self.table)
            .set_key(Some(Self::head_key(&client, &event)))
            .update_expression("SET #at = :at")
            .condition_expression("#version = :version AND attribute_not_exists(#at)")
            .expression_attribute_names("#at", REGISTERED_AT_ATTR)
            .expression_attribute_names("#version", VERSION_ATTR)
            .expression_attribute_values(":at", AttributeValue::S(LEGACY_REGISTERED_AT.into()))
            .expression_attribute_values(":version", AttributeValue::N(version.to_string()))
            .build()
            .map_err(unavailable)?;
        let items = [
            self.put_version(&client, &event, version, schema, LEGACY_REGISTERED_AT)?,
            TransactWriteItem::builder().update(mark).build(),
        ];
        match self.transact(&items, deadline).await {
            Ok(()) => Ok(true),
            Err(error) => match error.failure().and_then(cancellation_reasons) {
                Some(reasons) if reasons.iter().any(|r| r.code() == Some(CONDITION_FAILED)) => {
                    Ok(false)
                }
                _ => Err(unavailable(error)),
            },
        }
    }

    /// Enables TTL on [`EXPIRES_AT_ATTR`], idempotently: DynamoDB refuses to enable it again
    /// (and allows one change an hour), so the current setting is read first. A table whose
    /// TTL is on another attribute is refused, not taken over.
    async fn enable_ttl(&self) -> Result<(), StoreError> {
        let described = self
            .client
            .describe_time_to_live()
            .table_name(&self.table)
            .send()
            .await
            .map_err(unavailable)?;
        let description = described.time_to_live_description();
        let attribute = description.and_then(|d| d.attribute_name());
        match description.and_then(|d| d.time_to_live_status()) {
            Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
                if attribute == Some(EXPIRES_AT_ATTR) =>
            {
                return Ok(());
            }
            Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling) => {
                return Err(StoreError::Corrupt(cause(WrongTtlAttribute {
                    table: self.table.clone(),
                    attribute: attribute.map(str::to_owned),
                })));
            }
            _ => {}
        }
        let specification = TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name(EXPIRES_AT_ATTR)
            .build()
            .map_err(unavailable)?;
        self.client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(specification)
            .send()
            .await
            .map_err(unavailable)?;
        tracing::info!(table = %self.table, attribute = EXPIRES_AT_ATTR, "enabled TTL on the DynamoDB table");
        Ok(())
    }

    /// Gives every head written by the previous release the version item it lacks. The one
    /// Scan of this store: `setup` runs it, never a request. Returns how many it wrote.
    async fn backfill(&self) -> Result<usize, StoreError> {
        let deadline = Deadline::after(SETUP_TIMEOUT);
        let mut written = 0;
        let mut start: Option<Item> = None;
        loop {
            let from = &start;
            let page = retry(self.retry, deadline, move || async move {
                // Version items always have `registered_at`: only old heads match.
                self.client
                    .scan()
                    .table_name(&self.table)
                    .filter_expression("attribute_exists(#version) AND attribute_not_exists(#at)")
                    .expression_attribute_names("#version", VERSION_ATTR)
                    .expression_attribute_names("#at", REGISTERED_AT_ATTR)
                    .consistent_read(true)
                    .set_exclusive_start_key(from.clone())
                    .send()
                    .await
                    .map_err(aws::failure)
            })
            .await
            .map_err(unavailable)?;
            for head in page.items() {
                match self.backfill_head(head, deadline).await {
                    Ok(wrote) => written += usize::from(wrote),
                    // Someone's hand-written item: reads report it; `setup` leaves it alone.
                    Err(StoreError::Corrupt(error)) => tracing::warn!(
                        error = %ErrorChain(error.as_ref()),
                        key = ?head.get(CLIENT_KEY),
                        "an item without `registered_at` that is not a head was left as it is"
                    ),
                    Err(error) => return Err(error),
                }
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(written),
            }
        }
    }
}

#[async_trait]
impl SchemaStore for DynamoDbSchemaStore {
    /// One `TransactWriteItems`: a Put of the version item (condition: absent) and an Update
    /// of the head (condition: absent for version 1, else at the version before), plus, for
    /// version 2, a ConditionCheck that version 1 has its item. DynamoDB applies all or
    /// nothing, so exactly one of concurrent registrations of a version wins.
    ///
    /// A cancelled transaction names the item that failed its condition: the version item
    /// (returned with the cancellation) is the winner, `Taken`; a missing version-1 item means
    /// a pair of the previous release, and the transaction is made again with that item
    /// written from the head.
    async fn insert_version(
        &self,
        client: &ClientId,
        event: &EventName,
        version: SchemaVersion,
        schema: &Value,
        deadline: Deadline,
    ) -> Result<Insert, StoreError> {
        let schema = schema.to_string();
        let registered_at = now_rfc3339();
        let mut legacy_head: Option<Item> = None;
        // At most three rounds: as usual; with the version-1 item of a pair of the previous
        // release; as usual again if `setup` backfilled that item in between. Version items
        // are never deleted, so the rounds do not cycle.
        for _ in 0..3 {
            let items = self.registration(
                client,
                event,
                version,
                &schema,
                &registered_at,
                legacy_head.as_ref(),
            )?;
            let error = match self.transact(&items, deadline).await {
                Ok(()) => return Ok(Insert::Inserted),
                Err(error) => error,
            };
            let Some(reasons) = error
                .failure()
                .and_then(cancellation_reasons)
                .filter(|reasons| reasons.iter().any(|r| r.code() == Some(CONDITION_FAILED)))
            else {
                return Err(unavailable(error));
            };
            if condition_failed(reasons, 0) {
                if let Some(winner) = reasons[0].item() {
                    return from_version_item(client, event, winner)
                        .map(Insert::Taken)
                        .map_err(corrupt);
                }
            } else if condition_failed(reasons, 2) {
                if legacy_head.is_some() {
                    // Version 1's item appeared meanwhile (a backfill): no need to write it.
                    legacy_head = None;
                    continue;
                }
                let head = self.head_item(client, event, None, deadline).await?;
                if let Some(head) =
                    head.filter(|h| version_attr(h).ok() == Some(SchemaVersion::FIRST))
                {
                    legacy_head = Some(head);
                    continue;
                }
            }
            // The head was not at the version before: the version is taken (and, for version
            // 1 of a pair of the previous release, held by the head alone), or not the next.
            return match self.get(client, event, Some(version), deadline).await? {
                Some(winner) => Ok(Insert::Taken(winner)),
                None => Err(corrupt(ItemError::NotNext(version))),
            };
        }
        Err(corrupt(ItemError::Gap))
    }

    /// `None`: one strongly consistent GetItem of the head. A version: one of its version
    /// item; only version 1 may lack it (a pair of the previous release), and then the head
    /// holding version 1 is that version.
    async fn get(
        &self,
        client: &ClientId,
        event: &EventName,
        version: Option<SchemaVersion>,
        deadline: Deadline,
    ) -> Result<Option<RegisteredSchema>, StoreError> {
        let Some(version) = version else {
            return self.head(client, event, deadline).await;
        };
        // Twice at most: a head found past version 1 was moved there by a registration that
        // wrote version 1's item, which a second read finds.
        for _ in 0..2 {
            if let Some(found) = self.version_item(client, event, version, deadline).await? {
                return Ok(Some(found));
            }
            if version != SchemaVersion::FIRST {
                return Ok(None);
            }
            match self.head(client, event, deadline).await? {
                Some(head) if head.version == SchemaVersion::FIRST => return Ok(Some(head)),
                Some(_) => continue,
                None => return Ok(None),
            }
        }
        Err(corrupt(ItemError::Gap))
    }

    /// A strongly consistent Query of the pair's version partition; the head alone for a pair
    /// of the previous release that has no version item yet.
    async fn history(
        &self,
        client: &ClientId,
        event: &EventName,
        deadline: Deadline,
    ) -> Result<Vec<RegisteredSchema>, StoreError> {
        let items = self.version_items(client, event, None, deadline).await?;
        if items.is_empty() {
            return Ok(self
                .head(client, event, deadline)
                .await?
                .into_iter()
                .collect());
        }
        items
            .iter()
            .map(|item| from_version_item(client, event, item).map_err(corrupt))
            .collect()
    }

    /// As `history`, projecting the sort key and `registered_at` only.
    async fn versions(
        &self,
        client: &ClientId,
        event: &EventName,
        deadline: Deadline,
    ) -> Result<Vec<VersionInfo>, StoreError> {
        let items = self
            .version_items(client, event, Some(VERSIONS_PROJECTION), deadline)
            .await?;
        if items.is_empty() {
            let head = self
                .head_item(client, event, Some(HEAD_VERSION_PROJECTION), deadline)
                .await?;
            return head
                .map(|head| {
                    Ok(VersionInfo {
                        version: version_attr(&head)?,
                        registered_at: head_registered_at(&head)?,
                    })
                })
                .into_iter()
                .collect::<Result<_, ItemError>>()
                .map_err(corrupt);
        }
        items
            .iter()
            .map(|item| {
                Ok(VersionInfo {
                    version: version_of_sort_key(string_attr(item, EVENT_KEY)?)?,
                    registered_at: string_attr(item, REGISTERED_AT_ATTR)?.to_owned(),
                })
            })
            .collect::<Result<_, ItemError>>()
            .map_err(corrupt)
    }

    /// A strongly consistent Query on the client's partition, which holds its heads only;
    /// DynamoDB returns items in sort-key (event name) order, which for ASCII names is `str`
    /// order.
    async fn list(
        &self,
        client: &ClientId,
        deadline: Deadline,
    ) -> Result<Vec<RegisteredEvent>, StoreError> {
        // Schemas can be large; a listing needs only names and versions.
        let items = self
            .query_partition(client.as_str(), Some(LIST_PROJECTION), deadline)
            .await?;
        items
            .iter()
            .map(|item| {
                let event = string_attr(item, EVENT_KEY)?;
                Ok(RegisteredEvent {
                    client: client.clone(),
                    event: EventName::parse(event).map_err(|e| ItemError::Name(EVENT_KEY, e))?,
                    version: version_attr(item)?,
                })
            })
            .collect::<Result<_, ItemError>>()
            .map_err(corrupt)
    }

    /// A strongly consistent GetItem of the head, projecting `compatibility`.
    async fn compatibility(
        &self,
        client: &ClientId,
        event: &EventName,
        deadline: Deadline,
    ) -> Result<Option<Mode>, StoreError> {
        let head = self
            .head_item(client, event, Some(COMPATIBILITY_PROJECTION), deadline)
            .await?;
        match head.as_ref().and_then(|head| head.get(COMPATIBILITY_ATTR)) {
            None => Ok(None),
            Some(AttributeValue::S(mode)) => mode
                .parse()
                .map(Some)
                .map_err(|e| corrupt(ItemError::Mode(e))),
            Some(_) => Err(corrupt(ItemError::Missing(COMPATIBILITY_ATTR))),
        }
    }

    /// An UpdateItem of the head, conditional on the head existing (it is never deleted, so
    /// a failed condition means the caller did not check the pair was registered).
    async fn set_compatibility(
        &self,
        client: &ClientId,
        event: &EventName,
        mode: Mode,
        deadline: Deadline,
    ) -> Result<(), StoreError> {
        let key = &Self::head_key(client, event);
        let result = retry(self.retry, deadline, move || async move {
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key.clone()))
                .update_expression("SET #compatibility = :mode")
                .condition_expression("attribute_exists(#client)")
                .expression_attribute_names("#compatibility", COMPATIBILITY_ATTR)
                .expression_attribute_names("#client", CLIENT_KEY)
                .expression_attribute_values(":mode", AttributeValue::S(mode.as_str().to_owned()))
                .send()
                .await
                .map_err(aws::failure)
        })
        .await;
        if updated_if_present(result)? {
            Ok(())
        } else {
            Err(corrupt(ItemError::NoHead))
        }
    }

    /// DescribeTable: read-only, and it names this store's table, so the IAM grant
    /// (`dynamodb:DescribeTable` on the table) stays as narrow as the others.
    async fn warm_up(&self) -> Result<(), StoreError> {
        self.client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Creates the table (on-demand, encrypted, keys as in template.yaml) unless it exists,
    /// waits until it is ACTIVE, checks that an existing table has this store's keys, enables
    /// TTL on [`EXPIRES_AT_ATTR`] unless it is on, and backfills the version items of pairs
    /// registered by the previous release (a Scan of the whole table, once per `setup`; a
    /// no-op write-wise once done).
    async fn setup(&self) -> Result<(), StoreError> {
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(unavailable)
        };
        let key = |name: &str, key_type: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(key_type)
                .build()
                .map_err(unavailable)
        };
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .attribute_definitions(attribute(CLIENT_KEY)?)
            .attribute_definitions(attribute(EVENT_KEY)?)
            .key_schema(key(CLIENT_KEY, KeyType::Hash)?)
            .key_schema(key(EVENT_KEY, KeyType::Range)?)
            .billing_mode(BillingMode::PayPerRequest)
            .sse_specification(SseSpecification::builder().enabled(true).build())
            .send()
            .await;
        match created {
            Ok(_) => tracing::info!(table = %self.table, "created the DynamoDB table"),
            Err(error)
                if matches!(
                    error.as_service_error(),
                    Some(CreateTableError::ResourceInUseException(_))
                ) => {}
            Err(error) => return Err(unavailable(error)),
        }
        let table = self
            .client
            .wait_until_table_exists()
            .table_name(&self.table)
            .wait(SETUP_TIMEOUT)
            .await
            .map_err(unavailable)?
            .into_result()
            .map_err(unavailable)?;
        let keys: Vec<(&str, &KeyType)> = table
            .table()
            .map(|t| t.key_schema())
            .unwrap_or_default()
            .iter()
            .map(|k| (k.attribute_name(), k.key_type()))
            .collect();
        if keys != [(CLIENT_KEY, &KeyType::Hash), (EVENT_KEY, &KeyType::Range)] {
            return Err(StoreError::Corrupt(cause(WrongKeySchema {
                table: self.table.clone(),
            })));
        }
        self.enable_ttl().await?;
        let backfilled = self.backfill().await?;
        if backfilled > 0 {
            tracing::info!(table = %self.table, backfilled, "wrote the version items of pairs registered by the previous release");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_sort_keys_order_versions_numerically_and_read_back() {
        let keys: Vec<String> = [1, 2, 10, 100, u32::MAX]
            .into_iter()
            .map(|n| version_sort_key(SchemaVersion::new(n).unwrap()))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert_eq!(keys[0], "v0000000001");
        for (key, n) in keys.iter().zip([1, 2, 10, 100, u32::MAX]) {
            assert_eq!(version_of_sort_key(key).unwrap().get(), n);
        }
    }

    #[test]
    fn a_sort_key_that_is_not_a_version_is_refused() {
        for key in [
            "v1",
            "v0000000000",
            "x0000000001",
            "v4294967296",
            "v00000000a1",
            "",
        ] {
            assert!(version_of_sort_key(key).is_err(), "{key:?}");
        }
    }
}
