//! AWS test support: clients on the `moto_server` that `scripts/test` starts
//! (`scripts/services/10-moto.sh`), fresh tables and streams, a raw Kinesis reader, a GetItem
//! counter, and the API Gateway events of `events/`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_config::SdkConfig;
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_kinesis::types::ShardIteratorType;
use event_processor_core::App;
use event_processor_core::adapters::dynamodb::DynamoDbSchemaStore;
use event_processor_core::adapters::kinesis::KinesisEventStream;
use event_processor_core::config::Config;
use event_processor_core::ports::{EventStream, SchemaStore};
use serde_json::Value;

use crate::api::Reply;

/// The variable `scripts/services/10-moto.sh` exports.
pub const ENDPOINT_VAR: &str = "AWS_ENDPOINT_URL";

/// moto's URL. Panics (the test fails, it is never skipped) when the test command did not
/// start moto: without it the SDK would talk to real AWS or wait on instance metadata.
pub fn endpoint() -> String {
    std::env::var(ENDPOINT_VAR).unwrap_or_else(|_| {
        panic!("{ENDPOINT_VAR} is not set: run the tests through scripts/test, which starts moto_server")
    })
}

/// A fresh SDK configuration from the environment, checked to point at moto.
pub async fn sdk_config() -> SdkConfig {
    endpoint();
    event_processor_core::adapters::aws::load().await
}

/// A table or stream name no other test uses.
pub fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        event_processor_core::domain::EventId::new()
            .as_uuid()
            .simple()
    )
}

/// A schema store on its own, newly created table.
pub async fn fresh_store() -> DynamoDbSchemaStore {
    let store = DynamoDbSchemaStore::from_config(&sdk_config().await, unique_name("schemas"));
    store.setup().await.expect("create the table");
    store
}

/// An event stream on its own, newly created stream.
pub async fn fresh_stream() -> KinesisEventStream {
    let stream = KinesisEventStream::from_config(&sdk_config().await, unique_name("events"));
    stream.setup().await.expect("create the stream");
    stream
}

/// The backends of one test app: its own table and stream, named as `SCHEMA_STORE` /
/// `EVENT_STREAM` would name them.
#[derive(Debug, Clone)]
pub struct Names {
    pub table: String,
    pub stream: String,
}

impl Names {
    pub fn fresh() -> Self {
        Self {
            table: unique_name("schemas"),
            stream: unique_name("events"),
        }
    }

    pub fn config(&self) -> Config {
        Config::parse(
            &format!("dynamodb:{}", self.table),
            &format!("kinesis:{}", self.stream),
        )
        .expect("valid backend names")
    }
}

/// An app built as a Lambda builds it (`SCHEMA_STORE=dynamodb:…`, `EVENT_STREAM=kinesis:…`),
/// on a new table and stream created by `setup`.
pub async fn fresh_app() -> (App, Names) {
    endpoint();
    let names = Names::fresh();
    let app = App::build(&names.config()).await.expect("build the app");
    app.setup().await.expect("create the table and the stream");
    (app, names)
}

/// As [`fresh_app`], deployed with `Auth=jwt` as template.yaml sets it: `AUTH=jwt` without
/// `AUTH_JWKS`, so the functions trust API Gateway's JWT authorizer and apply the scope rule
/// to the claims it passes on.
pub async fn fresh_secured_app() -> (App, Names) {
    endpoint();
    let names = Names::fresh();
    let mut config = names.config();
    config.auth = event_processor_core::config::AuthConfig::Jwt {
        jwks: None,
        issuer: "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_EXAMPLE".to_owned(),
        audience: "5example0client0id".to_owned(),
        scope_prefix: String::new(),
    };
    let app = App::build(&config).await.expect("build the app");
    app.setup().await.expect("create the table and the stream");
    (app, names)
}

/// A record as Kinesis holds it.
#[derive(Debug, Clone)]
pub struct RawRecord {
    pub partition_key: String,
    pub data: Value,
}

/// Every record of `stream`, read from every shard with GetRecords from TRIM_HORIZON.
pub async fn raw_records(stream: &str) -> Vec<RawRecord> {
    let client = aws_sdk_kinesis::Client::new(&sdk_config().await);
    let shards = client
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .expect("list shards");
    let mut records = Vec::new();
    for shard in shards.shards() {
        let mut iterator = client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("get a shard iterator")
            .shard_iterator()
            .map(str::to_owned);
        while let Some(current) = iterator {
            let output = client
                .get_records()
                .shard_iterator(current)
                .send()
                .await
                .expect("get records");
            for record in output.records() {
                records.push(RawRecord {
                    partition_key: record.partition_key().to_owned(),
                    data: serde_json::from_slice(record.data().as_ref())
                        .expect("record data is JSON"),
                });
            }
            iterator = if output.records().is_empty() {
                None
            } else {
                output.next_shard_iterator().map(str::to_owned)
            };
        }
    }
    records
}

/// Counts the DynamoDB calls of one operation a client sends (by their `X-Amz-Target`).
#[derive(Debug, Clone)]
pub struct CallCounter {
    target: &'static str,
    calls: Arc<AtomicUsize>,
}

impl CallCounter {
    pub fn get_item() -> Self {
        Self::new("DynamoDB_20120810.GetItem")
    }

    pub fn query() -> Self {
        Self::new("DynamoDB_20120810.Query")
    }

    fn new(target: &'static str) -> Self {
        Self {
            target,
            calls: Arc::default(),
        }
    }

    pub fn count(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if context.request().headers().get("x-amz-target") == Some(self.target) {
            self.calls.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// A schema store on `table` whose calls of `counter`'s operation are counted.
pub async fn counted_store(table: &str, counter: &CallCounter) -> DynamoDbSchemaStore {
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk_config().await)
        .interceptor(counter.clone())
        .build();
    DynamoDbSchemaStore::new(aws_sdk_dynamodb::Client::from_conf(config), table)
}

/// `events/<function>/<case>.json`, as API Gateway would deliver it.
pub fn event_file(function: &str, case: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(function)
        .join(format!("{case}.json"))
}

/// Every case of `events/<function>/`, by name.
pub fn event_cases(function: &str) -> Vec<String> {
    let dir = event_file(function, "x").with_file_name("");
    let mut cases: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            (path.extension()? == "json").then(|| path.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect();
    cases.sort();
    cases
}

/// Feeds an API Gateway HTTP API (payload 2.0) event through `router` the way the Lambda
/// runtime does: lambda_http turns the JSON into a request, the router answers it. For a
/// function's own path, `router` is `event_processor_lambda::handler(&app, routes)`.
pub async fn invoke(router: &axum::Router, function: &str, case: &str) -> Reply {
    let path = event_file(function, case);
    let json =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let request = lambda_http::request::from_str(&json)
        .unwrap_or_else(|e| panic!("{} is not an API Gateway event: {e}", path.display()));
    crate::api::send(router, request.map(axum::body::Body::new)).await
}

/// The JSON body of an event file (what the client sent), for comparing with what was stored.
pub fn event_body(function: &str, case: &str) -> HashMap<String, Value> {
    let path = event_file(function, case);
    let event: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("read"))
        .expect("event file is JSON");
    let body = event["body"].as_str().expect("the event has a text body");
    serde_json::from_str(body).expect("the body is a JSON object")
}

/// An item as the SDK holds it.
pub type RawItem = HashMap<String, aws_sdk_dynamodb::types::AttributeValue>;

/// Registers `client`/`event` in `table` exactly as the previous release did (commit 34f52a3,
/// `insert_if_absent`): one conditional PutItem of the head, with `schema` as the JSON text a
/// client sent, `version` 1, no `registered_at`, no version item.
pub async fn put_previous_release_item(table: &str, client: &str, event: &str, schema: &str) {
    use aws_sdk_dynamodb::types::AttributeValue;
    aws_sdk_dynamodb::Client::new(&sdk_config().await)
        .put_item()
        .table_name(table)
        .item("client", AttributeValue::S(client.to_owned()))
        .item("event", AttributeValue::S(event.to_owned()))
        .item("schema", AttributeValue::S(schema.to_owned()))
        .item("version", AttributeValue::N("1".to_owned()))
        .condition_expression("attribute_not_exists(#client)")
        .expression_attribute_names("#client", "client")
        .send()
        .await
        .expect("write an item as the previous release did");
}

/// The item of `table` under `client` (partition key) and `event` (sort key), read directly.
pub async fn raw_item(table: &str, client: &str, event: &str) -> Option<RawItem> {
    use aws_sdk_dynamodb::types::AttributeValue;
    aws_sdk_dynamodb::Client::new(&sdk_config().await)
        .get_item()
        .table_name(table)
        .key("client", AttributeValue::S(client.to_owned()))
        .key("event", AttributeValue::S(event.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .expect("get an item")
        .item
}

/// Every item of `table` (a test table is small), sorted by key.
pub async fn raw_table(table: &str) -> Vec<RawItem> {
    let mut items = aws_sdk_dynamodb::Client::new(&sdk_config().await)
        .scan()
        .table_name(table)
        .consistent_read(true)
        .send()
        .await
        .expect("scan the table")
        .items
        .unwrap_or_default();
    let key = |item: &RawItem| {
        let text = |name: &str| {
            item.get(name)
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default()
        };
        (text("client"), text("event"))
    };
    items.sort_by_key(key);
    items
}
