//! DynamoDB schema store (feature `aws`): the production [`SchemaStore`].
//!
//! Key design, the same as `template.yaml`: partition key `client` (S), sort key `event` (S),
//! one item per registered pair with `schema` (the JSON Schema as JSON text, so any JSON value
//! round-trips exactly, including numbers DynamoDB's own types would reshape) and `version` (N).
//! A client's events are one partition: `list` is a Query sorted by the sort key, never a Scan.
//!
//! Every call on a request's path goes through the one retry policy (`retry`), so throttling
//! and server faults are retried until the request's deadline and each attempt ends by it.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, SseSpecification,
};
use serde_json::Value;

use super::aws;
use crate::domain::{ClientId, EventName, NameError, SchemaVersion};
use crate::error::cause;
use crate::ports::{Insert, RegisteredEvent, RegisteredSchema, SchemaStore, StoreError};
use crate::retry::{Deadline, RetryPolicy, retry};

/// Partition key: the client.
pub const CLIENT_KEY: &str = "client";
/// Sort key: the event name.
pub const EVENT_KEY: &str = "event";
const SCHEMA_ATTR: &str = "schema";
const VERSION_ATTR: &str = "version";

/// How long `setup` waits for a new table to become ACTIVE.
const SETUP_TIMEOUT: Duration = Duration::from_secs(300);

/// Why an item read from the table cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ItemError {
    #[error("item has no string attribute `{0}`")]
    Missing(&'static str),
    #[error("attribute `{VERSION_ATTR}` is not a positive integer")]
    Version,
    #[error("attribute `{SCHEMA_ATTR}` is not JSON text")]
    Schema(#[source] serde_json::Error),
    #[error("key attribute `{EVENT_KEY}` is not a valid event name")]
    Name(#[source] NameError),
    #[error("the registration lost its race, but the winning item could not be read back")]
    Vanished,
}

/// The table exists with keys other than this store's (`setup` refuses to use it).
#[derive(Debug, thiserror::Error)]
#[error(
    "table {table} exists with a different key schema (expected {CLIENT_KEY} HASH, {EVENT_KEY} RANGE)"
)]
pub struct WrongKeySchema {
    pub table: String,
}

/// The schema store over `table`, with a client built from the process-wide SDK configuration.
pub async fn open(table: &str) -> DynamoDbSchemaStore {
    DynamoDbSchemaStore::from_config(aws::shared_config().await, table)
}

/// Schemas in one DynamoDB table.
#[derive(Clone, Debug)]
pub struct DynamoDbSchemaStore {
    client: Client,
    table: String,
    retry: RetryPolicy,
}

impl DynamoDbSchemaStore {
    /// A store over `table` using an already configured client (tests add interceptors).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            retry: RetryPolicy::default(),
        }
    }

    /// A store over `table` with a client built from the shared SDK configuration.
    pub fn from_config(config: &SdkConfig, table: impl Into<String>) -> Self {
        Self::new(Client::new(config), table)
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn key(client: &ClientId, event: &EventName) -> HashMap<String, AttributeValue> {
        HashMap::from([
            (CLIENT_KEY.to_owned(), AttributeValue::S(client.to_string())),
            (EVENT_KEY.to_owned(), AttributeValue::S(event.to_string())),
        ])
    }
}

fn unavailable(error: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Unavailable(cause(error))
}

fn corrupt(error: ItemError) -> StoreError {
    StoreError::Corrupt(cause(error))
}

fn string_attr<'a>(
    item: &'a HashMap<String, AttributeValue>,
    name: &'static str,
) -> Result<&'a str, ItemError> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value),
        _ => Err(ItemError::Missing(name)),
    }
}

fn version_attr(item: &HashMap<String, AttributeValue>) -> Result<SchemaVersion, ItemError> {
    match item.get(VERSION_ATTR) {
        Some(AttributeValue::N(n)) => n
            .parse::<u32>()
            .ok()
            .and_then(SchemaVersion::new)
            .ok_or(ItemError::Version),
        _ => Err(ItemError::Version),
    }
}

fn registered(
    client: &ClientId,
    event: &EventName,
    item: &HashMap<String, AttributeValue>,
) -> Result<RegisteredSchema, StoreError> {
    let schema = string_attr(item, SCHEMA_ATTR).map_err(corrupt)?;
    Ok(RegisteredSchema {
        client: client.clone(),
        event: event.clone(),
        version: version_attr(item).map_err(corrupt)?,
        schema: serde_json::from_str(schema)
            .map_err(ItemError::Schema)
            .map_err(corrupt)?,
    })
}

#[async_trait]
impl SchemaStore for DynamoDbSchemaStore {
    /// A conditional PutItem (`attribute_not_exists` on the partition key): DynamoDB
    /// serialises writes to one item, so exactly one concurrent registration wins. A loser gets
    /// the winner's item back with the condition failure (or reads it, strongly consistent).
    async fn insert_if_absent(
        &self,
        client: &ClientId,
        event: &EventName,
        schema: &Value,
        deadline: Deadline,
    ) -> Result<Insert, StoreError> {
        let version = SchemaVersion::FIRST;
        let schema = &schema.to_string();
        let result = retry(self.retry, deadline, move || async move {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(Self::key(client, event)))
                .item(SCHEMA_ATTR, AttributeValue::S(schema.clone()))
                .item(VERSION_ATTR, AttributeValue::N(version.to_string()))
                .condition_expression("attribute_not_exists(#client)")
                .expression_attribute_names("#client", CLIENT_KEY)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await
                .map_err(aws::failure)
        })
        .await;
        let error = match result {
            Ok(_) => return Ok(Insert::Inserted(version)),
            Err(error) => error,
        };
        // A lost race (or a retry after a lost reply, which then finds its own item).
        let Some(PutItemError::ConditionalCheckFailedException(failed)) =
            error.failure().and_then(|e| e.as_service_error())
        else {
            return Err(unavailable(error));
        };
        let existing = match failed.item() {
            Some(item) => registered(client, event, item)?,
            None => self
                .get(client, event, deadline)
                .await?
                .ok_or_else(|| corrupt(ItemError::Vanished))?,
        };
        Ok(Insert::Existing(existing))
    }

    /// A strongly consistent GetItem.
    async fn get(
        &self,
        client: &ClientId,
        event: &EventName,
        deadline: Deadline,
    ) -> Result<Option<RegisteredSchema>, StoreError> {
        let output = retry(self.retry, deadline, move || async move {
            self.client
                .get_item()
                .table_name(&self.table)
                .set_key(Some(Self::key(client, event)))
                .consistent_read(true)
                .send()
                .await
                .map_err(aws::failure)
        })
        .await
        .map_err(unavailable)?;
        output
            .item()
            .map(|item| registered(client, event, item))
            .transpose()
    }

    /// A strongly consistent Query on the client's partition, following every page; DynamoDB
    /// returns items in sort-key (event name) order, which for ASCII names is `str` order.
    async fn list(
        &self,
        client: &ClientId,
        deadline: Deadline,
    ) -> Result<Vec<RegisteredEvent>, StoreError> {
        let mut events = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let from = &start;
            let page = retry(self.retry, deadline, move || async move {
                self.client
                    .query()
                    .table_name(&self.table)
                    .key_condition_expression("#client = :client")
                    .expression_attribute_names("#client", CLIENT_KEY)
                    .expression_attribute_names("#event", EVENT_KEY)
                    .expression_attribute_names("#version", VERSION_ATTR)
                    .expression_attribute_values(":client", AttributeValue::S(client.to_string()))
                    // Schemas can be large; a listing needs only names and versions.
                    .projection_expression("#event, #version")
                    .consistent_read(true)
                    .set_exclusive_start_key(from.clone())
                    .send()
                    .await
                    .map_err(aws::failure)
            })
            .await
            .map_err(unavailable)?;
            for item in page.items() {
                let event = string_attr(item, EVENT_KEY).map_err(corrupt)?;
                events.push(RegisteredEvent {
                    client: client.clone(),
                    event: EventName::parse(event)
                        .map_err(ItemError::Name)
                        .map_err(corrupt)?,
                    version: version_attr(item).map_err(corrupt)?,
                });
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(events),
            }
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
    /// waits until it is ACTIVE, and checks that an existing table has this store's keys.
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
        Ok(())
    }
}
