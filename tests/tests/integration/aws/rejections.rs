//! Rejections on DynamoDB (moto): the `RejectionStore` contract, and what only this adapter
//! does — items in their own partition with a TTL, expired items hidden from reads, batches
//! split into BatchWriteItem calls of 25 with unprocessed items resent, TTL enabled by
//! `setup`, and the API's rejected/replay path over it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::{AttributeValue, TimeToLiveStatus};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use event_processor_core::Processor;
use event_processor_core::adapters::dynamodb::{
    DynamoDbSchemaStore, EXPIRES_AT_ATTR, MAX_BATCH_WRITE, rejection_partition,
};
use event_processor_core::domain::SchemaVersion;
use event_processor_core::http::Api;
use event_processor_core::ports::{
    DEFAULT_REJECTIONS_TTL, IdempotencyStore, Rejection, RejectionStore, SchemaStore, StoreError,
};
use event_processor_core::retry::RetryPolicy;
use event_processor_tests::api::{get, post_json};
use event_processor_tests::aws::{
    endpoint, fresh_store, fresh_stream, raw_item, raw_records, raw_table, sdk_config, unique_name,
};
use event_processor_tests::contract::rejections::rejection;
use event_processor_tests::{deadline, event_name, unique_client};
use serde_json::{Value, json};

event_processor_tests::rejection_store_contract!(async {
    Arc::new(fresh_store().await) as Arc<dyn RejectionStore>
});

fn epoch_seconds(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test]
async fn a_rejection_is_an_item_of_its_pair_s_partition_that_expires_after_the_ttl() {
    let store = fresh_store().await;
    let (client, event) = (unique_client(), event_name("Fruits"));
    let kept = rejection(&client, &event, r#"{"fruit": 7}"#);
    let before = epoch_seconds(SystemTime::now());

    store
        .keep(std::slice::from_ref(&kept), deadline())
        .await
        .unwrap();

    let partition = rejection_partition(&client, &event);
    assert_eq!(partition, format!("rej#{client}#{event}"));
    let item = raw_item(store.table(), &partition, &kept.id.to_string())
        .await
        .expect("the rejection's item");
    let expires: u64 = item[EXPIRES_AT_ATTR].as_n().unwrap().parse().unwrap();
    let ttl = DEFAULT_REJECTIONS_TTL.as_secs();
    assert!(
        (before + ttl..=before + ttl + 5).contains(&expires),
        "expires_at {expires}, kept at {before}"
    );
    assert!(
        !item.contains_key("version"),
        "`version` marks the schema heads that setup backfills"
    );
    assert_eq!(item["data"].as_s().unwrap(), r#"{"fruit": 7}"#);
}

#[tokio::test]
async fn expired_rejections_are_neither_listed_nor_read_though_dynamodb_still_holds_them() {
    let store = fresh_store().await;
    let expiring = store.clone().with_rejections_ttl(Duration::ZERO);
    let (client, event) = (unique_client(), event_name("Fruits"));
    let old = rejection(&client, &event, "1");
    let live = rejection(&client, &event, "2");
    let newest_expired = rejection(&client, &event, "3");
    expiring
        .keep(std::slice::from_ref(&old), deadline())
        .await
        .unwrap();
    store
        .keep(std::slice::from_ref(&live), deadline())
        .await
        .unwrap();
    expiring
        .keep(std::slice::from_ref(&newest_expired), deadline())
        .await
        .unwrap();

    let listed = RejectionStore::list(&store, &client, &event, 10, None, deadline())
        .await
        .unwrap();
    let read = RejectionStore::get(&store, &client, &event, old.id, deadline())
        .await
        .unwrap();

    assert_eq!(listed, vec![live]);
    assert_eq!(read, None);
    let partition = rejection_partition(&client, &event);
    assert!(
        raw_item(store.table(), &partition, &old.id.to_string())
            .await
            .is_some(),
        "moto never deletes expired items (DynamoDB deletes them lazily)"
    );
}

#[tokio::test]
async fn a_page_skips_expired_rejections_and_still_fills_up() {
    let store = fresh_store().await;
    let expiring = store.clone().with_rejections_ttl(Duration::ZERO);
    let (client, event) = (unique_client(), event_name("Fruits"));
    // Newest first: live, 3 expired, live, 3 expired, live.
    let mut live = Vec::new();
    for round in 0..3 {
        let kept = rejection(&client, &event, &format!("live {round}"));
        store
            .keep(std::slice::from_ref(&kept), deadline())
            .await
            .unwrap();
        live.push(kept.id);
        if round < 2 {
            let expired: Vec<Rejection> = (0..3)
                .map(|i| rejection(&client, &event, &format!("expired {round}.{i}")))
                .collect();
            expiring.keep(&expired, deadline()).await.unwrap();
        }
    }

    let page = RejectionStore::list(&store, &client, &event, 2, None, deadline())
        .await
        .unwrap();
    let rest = RejectionStore::list(&store, &client, &event, 2, Some(page[1].id), deadline())
        .await
        .unwrap();

    let ids = |page: &[Rejection]| page.iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids(&page), [live[2], live[1]]);
    assert_eq!(ids(&rest), [live[0]]);
}

// ---- batches: calls of at most 25 items, unprocessed items resent ----------------------------

const BATCH_WRITE_ITEM: &str = "DynamoDB_20120810.BatchWriteItem";
const JSON_1_0: &str = "application/x-amz-json-1.0";

/// A proxy in front of moto that sees every BatchWriteItem call and, when asked, keeps half of
/// the first call's items from moto and reports them unprocessed, as DynamoDB does under
/// throttling.
struct Proxy {
    moto: String,
    http: reqwest::Client,
    drop_half_of_first_call: bool,
    /// The number of items of each BatchWriteItem call forwarded to moto.
    calls: Mutex<Vec<usize>>,
}

impl Proxy {
    async fn start(drop_half_of_first_call: bool) -> (Arc<Self>, String) {
        let proxy = Arc::new(Self {
            moto: endpoint(),
            http: reqwest::Client::new(),
            drop_half_of_first_call,
            calls: Mutex::default(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(proxy.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (proxy, url)
    }

    fn calls(&self) -> Vec<usize> {
        self.calls.lock().unwrap().clone()
    }

    async fn forward(&self, uri: &Uri, headers: &HeaderMap, body: Vec<u8>) -> (StatusCode, Bytes) {
        let mut request = self.http.post(format!("{}{}", self.moto, uri.path()));
        for (name, value) in headers {
            if name != "host" && name != "content-length" {
                request = request.header(name.as_str(), value.as_bytes());
            }
        }
        let response = request.body(body).send().await.expect("moto answers");
        let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
        (status, response.bytes().await.expect("moto's body"))
    }
}

async fn handle(
    State(proxy): State<Arc<Proxy>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if target != BATCH_WRITE_ITEM {
        let (status, body) = proxy.forward(&uri, &headers, body.to_vec()).await;
        return (status, [("content-type", JSON_1_0)], body).into_response();
    }
    let mut request: Value = serde_json::from_slice(&body).unwrap();
    let (table, items) = {
        let tables = request["RequestItems"].as_object().unwrap();
        let (table, items) = tables.iter().next().unwrap();
        (table.clone(), items.as_array().unwrap().clone())
    };
    let first = {
        let mut calls = proxy.calls.lock().unwrap();
        let first = calls.is_empty();
        let forwarded = if first && proxy.drop_half_of_first_call {
            items.len().div_ceil(2)
        } else {
            items.len()
        };
        calls.push(forwarded);
        first
    };
    let unprocessed: Vec<Value> = if first && proxy.drop_half_of_first_call {
        let (even, odd): (Vec<_>, Vec<_>) =
            items.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
        request["RequestItems"][&table] = Value::Array(even.into_iter().map(|(_, v)| v).collect());
        odd.into_iter().map(|(_, v)| v).collect()
    } else {
        Vec::new()
    };
    let (status, moto) = proxy
        .forward(&uri, &headers, serde_json::to_vec(&request).unwrap())
        .await;
    if !status.is_success() || unprocessed.is_empty() {
        return (status, [("content-type", JSON_1_0)], moto).into_response();
    }
    let reply = json!({"UnprocessedItems": {table: unprocessed}});
    (
        StatusCode::OK,
        [("content-type", JSON_1_0)],
        reply.to_string(),
    )
        .into_response()
}

/// A store on `table` whose calls go through the proxy at `url`, retrying quickly.
async fn store_via(url: &str, table: &str) -> DynamoDbSchemaStore {
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk_config().await)
        .endpoint_url(url)
        .build();
    DynamoDbSchemaStore::new(aws_sdk_dynamodb::Client::from_conf(config), table).with_retry_policy(
        RetryPolicy {
            first_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(50),
            ..RetryPolicy::default()
        },
    )
}

#[tokio::test]
async fn a_batch_of_more_than_25_rejections_is_kept_whole_in_calls_of_at_most_25() {
    let table = fresh_store().await.table().to_owned();
    let (proxy, url) = Proxy::start(false).await;
    let store = store_via(&url, &table).await;
    let (client, event) = (unique_client(), event_name("Fruits"));
    let batch: Vec<Rejection> = (0..60)
        .map(|i| rejection(&client, &event, &format!("{{\"i\": {i}}}")))
        .collect();

    store.keep(&batch, deadline()).await.unwrap();

    let mut calls = proxy.calls();
    calls.sort_unstable();
    assert_eq!(calls, [10, MAX_BATCH_WRITE, MAX_BATCH_WRITE]);
    let listed = RejectionStore::list(&store, &client, &event, 100, None, deadline())
        .await
        .unwrap();
    let mut expected = batch.clone();
    expected.sort_by_key(|r| std::cmp::Reverse(r.id));
    assert_eq!(listed, expected);
}

#[tokio::test]
async fn items_dynamodb_left_unprocessed_are_sent_again_until_all_are_kept() {
    let table = fresh_store().await.table().to_owned();
    let (proxy, url) = Proxy::start(true).await;
    let store = store_via(&url, &table).await;
    let (client, event) = (unique_client(), event_name("Fruits"));
    let batch: Vec<Rejection> = (0..MAX_BATCH_WRITE)
        .map(|i| rejection(&client, &event, &format!("{{\"i\": {i}}}")))
        .collect();

    store.keep(&batch, deadline()).await.unwrap();

    assert_eq!(proxy.calls(), [13, 12], "half held back, then resent");
    let listed = RejectionStore::list(&store, &client, &event, 100, None, deadline())
        .await
        .unwrap();
    assert_eq!(listed.len(), batch.len());
}

// ---- setup: TTL -------------------------------------------------------------------------------

#[tokio::test]
async fn setup_enables_ttl_on_expires_at_idempotently_as_template_yaml_does() {
    let store = fresh_store().await;

    store.setup().await.expect("a second setup succeeds");

    let described = aws_sdk_dynamodb::Client::new(&sdk_config().await)
        .describe_time_to_live()
        .table_name(store.table())
        .send()
        .await
        .unwrap();
    let ttl = described.time_to_live_description().expect("a TTL setting");
    assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));
    assert_eq!(ttl.attribute_name(), Some(EXPIRES_AT_ATTR));
    let template =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"))
            .expect("read template.yaml");
    assert!(
        template.contains(&format!(
            "TimeToLiveSpecification:\n        AttributeName: {EXPIRES_AT_ATTR}\n        Enabled: true\n"
        )),
        "template.yaml enables TTL on {EXPIRES_AT_ATTR}"
    );
}

#[tokio::test]
async fn setup_refuses_a_table_whose_ttl_is_on_another_attribute() {
    let store = fresh_store().await;
    let table = unique_name("other-ttl");
    let other = DynamoDbSchemaStore::from_config(&sdk_config().await, &table);
    // A table with this store's keys, its TTL taken by another attribute before setup.
    let client = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    let described = client
        .describe_table()
        .table_name(store.table())
        .send()
        .await
        .unwrap();
    let source = described.table().unwrap();
    client
        .create_table()
        .table_name(&table)
        .set_attribute_definitions(Some(source.attribute_definitions().to_vec()))
        .set_key_schema(Some(source.key_schema().to_vec()))
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    client
        .update_time_to_live()
        .table_name(&table)
        .time_to_live_specification(
            aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("ttl")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    let result = other.setup().await;

    assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");
}

#[tokio::test]
async fn rejections_and_keys_are_not_schemas_to_list_events_nor_to_setup() {
    let store = fresh_store().await;
    let (client, event) = (unique_client(), event_name("Fruits"));
    store
        .insert_version(
            &client,
            &event,
            SchemaVersion::FIRST,
            &json!({}),
            deadline(),
        )
        .await
        .unwrap();
    store
        .keep(&[rejection(&client, &event, "{}")], deadline())
        .await
        .unwrap();
    store
        .begin(
            &client,
            &event,
            &event_processor_core::domain::IdempotencyKey::parse(b"k").unwrap(),
            event_processor_core::domain::Fingerprint::of("send_event", b"{}", None),
            &[event_processor_core::domain::EventId::new()],
            SystemTime::now() + Duration::from_secs(30),
            deadline(),
        )
        .await
        .unwrap();
    let before = raw_table(store.table()).await;

    store
        .setup()
        .await
        .expect("setup's backfill leaves them alone");

    let listed = SchemaStore::list(&store, &client, deadline())
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].event, event);
    assert_eq!(raw_table(store.table()).await, before);
    assert_eq!(before.len(), 4, "head, version 1, a rejection, a key");
}

// ---- the API over this store: rejected and replay ----------------------------------------------

#[tokio::test]
async fn a_rejection_kept_in_dynamodb_is_listed_and_replayed_once_under_its_id() {
    let store = Arc::new(fresh_store().await);
    let stream = fresh_stream().await;
    let stream_name = stream.stream_name().to_owned();
    let processor = Processor::new(store.clone(), Arc::new(stream))
        .with_rejections(store.clone())
        .with_idempotency(store.clone());
    let router = Api::new(processor).router();
    let client = unique_client();
    let base = format!("/{client}/Fruits");
    let schema = json!({"type": "object", "properties": {"fruit": {"type": "string"}}});
    assert_eq!(
        post_json(&router, &format!("{base}/register_event"), &schema)
            .await
            .status,
        StatusCode::CREATED
    );
    let refused = post_json(&router, &format!("{base}/send_event"), &json!({"fruit": 7})).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);

    let listed = get(&router, &format!("{base}/rejected")).await;
    let id = listed.body["rejected"][0]["id"]
        .as_str()
        .expect("the rejection is listed")
        .to_owned();
    let items = raw_table(store.table()).await;
    let partition = format!("rej#{client}#Fruits");
    assert!(
        items
            .iter()
            .any(|item| item["client"].as_s().unwrap() == &partition),
        "kept in DynamoDB"
    );
    let relaxed = json!({"type": "object"});
    assert_eq!(
        post_json(&router, &format!("{base}/register_event"), &relaxed)
            .await
            .status,
        StatusCode::CREATED
    );
    let first = post_json(
        &router,
        &format!("{base}/rejected/{id}/replay"),
        &json!(null),
    )
    .await;
    let again = post_json(
        &router,
        &format!("{base}/rejected/{id}/replay"),
        &json!(null),
    )
    .await;

    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    assert_eq!(again.body, first.body);
    assert_eq!(first.body["version"], 2);
    let records = raw_records(&stream_name).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].data["id"], id.as_str());
    let item = raw_item(store.table(), &partition, &id).await.unwrap();
    assert_eq!(
        item.get("replayed_version"),
        Some(&AttributeValue::N("2".to_owned()))
    );
}
