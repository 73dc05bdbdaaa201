//! The adapter contracts on DynamoDB and Kinesis (moto_server), each test on its own table or
//! stream, plus the behaviours only these adapters have.

use std::sync::Arc;

use aws_sdk_dynamodb::types::{AttributeValue, KeyType};
use event_processor_core::adapters::dynamodb::{CLIENT_KEY, DynamoDbSchemaStore, EVENT_KEY};
use event_processor_core::adapters::kinesis::KinesisEventStream;
use event_processor_core::config::Config;
use event_processor_core::domain::SchemaVersion;
use event_processor_core::envelope::Envelope;
use event_processor_core::ports::{EventSource, EventStream, SchemaStore, StoreError, StreamError};
use event_processor_core::{App, WarmUp};
use event_processor_tests::aws::{
    CallCounter, counted_store, fresh_app, fresh_store, fresh_stream, sdk_config, unique_name,
};
use event_processor_tests::{deadline, event_name, unique_client};
use serde_json::json;

event_processor_tests::schema_store_contract!(async {
    Arc::new(fresh_store().await) as Arc<dyn SchemaStore>
});

event_processor_tests::event_stream_contract!(async {
    let stream = Arc::new(fresh_stream().await);
    (
        stream.clone() as Arc<dyn EventStream>,
        stream as Arc<dyn EventSource>,
    )
});

#[tokio::test]
async fn setup_is_idempotent_and_creates_the_keys_of_template_yaml() {
    let store = fresh_store().await;

    store.setup().await.expect("a second setup succeeds");

    let client = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    let table = client
        .describe_table()
        .table_name(store.table())
        .send()
        .await
        .unwrap();
    let table = table.table().unwrap();
    let keys: Vec<(&str, &KeyType)> = table
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name(), k.key_type()))
        .collect();
    assert_eq!(
        keys,
        [("client", &KeyType::Hash), ("event", &KeyType::Range)]
    );
    let template =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"))
            .expect("read template.yaml");
    for key in [
        "AttributeName: client\n          KeyType: HASH",
        "AttributeName: event\n          KeyType: RANGE",
    ] {
        assert!(template.contains(key), "template.yaml lacks {key:?}");
    }
}

#[tokio::test]
async fn setup_refuses_a_table_with_other_keys() {
    let table = unique_name("foreign");
    let client = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    client
        .create_table()
        .table_name(&table)
        .attribute_definitions(
            aws_sdk_dynamodb::types::AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            aws_sdk_dynamodb::types::KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();

    let result = DynamoDbSchemaStore::from_config(&sdk_config().await, table)
        .setup()
        .await;

    assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");
}

#[tokio::test]
async fn list_follows_pagination_past_one_megabyte_pages() {
    let store = fresh_store().await;
    let client = unique_client();
    // Seven ~200 KB schemas: DynamoDB (and moto) return at most 1 MB per Query page.
    let padding = "x".repeat(200 * 1024);
    let names = ["E0", "E1", "E2", "E3", "E4", "E5", "E6"];
    for name in names {
        store
            .insert_if_absent(
                &client,
                &event_name(name),
                &json!({"description": padding}),
                deadline(),
            )
            .await
            .unwrap();
    }

    let queries = CallCounter::query();
    let counted = counted_store(store.table(), &queries).await;

    let listed = counted.list(&client, deadline()).await.unwrap();

    assert!(queries.count() >= 2, "{} Query call(s)", queries.count());
    let listed: Vec<&str> = listed.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(listed, names);
}

#[tokio::test]
async fn a_stored_schema_is_json_text_under_the_client_and_event_keys() {
    let store = fresh_store().await;
    let (client, event) = (unique_client(), event_name("Fruits"));
    let schema = json!({"type": "object", "required": ["fruit"]});
    store
        .insert_if_absent(&client, &event, &schema, deadline())
        .await
        .unwrap();

    let item = aws_sdk_dynamodb::Client::new(&sdk_config().await)
        .get_item()
        .table_name(store.table())
        .key(CLIENT_KEY, AttributeValue::S(client.to_string()))
        .key(EVENT_KEY, AttributeValue::S(event.to_string()))
        .send()
        .await
        .unwrap()
        .item
        .expect("the item exists");

    let text = item["schema"].as_s().expect("schema is a string attribute");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(text).unwrap(),
        schema
    );
    assert_eq!(item["version"].as_n().unwrap(), "1");
}

#[tokio::test]
async fn an_item_that_is_not_a_schema_is_reported_corrupt() {
    let store = fresh_store().await;
    let (client, event) = (unique_client(), event_name("Broken"));
    aws_sdk_dynamodb::Client::new(&sdk_config().await)
        .put_item()
        .table_name(store.table())
        .item(CLIENT_KEY, AttributeValue::S(client.to_string()))
        .item(EVENT_KEY, AttributeValue::S(event.to_string()))
        .item("schema", AttributeValue::S("{not json".into()))
        .item("version", AttributeValue::N("1".into()))
        .send()
        .await
        .unwrap();

    let result = store.get(&client, &event, deadline()).await;

    assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");
}

#[tokio::test]
async fn a_missing_table_is_unavailable() {
    let store = DynamoDbSchemaStore::from_config(&sdk_config().await, unique_name("missing"));

    let result = store
        .get(&unique_client(), &event_name("Fruits"), deadline())
        .await;

    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn stream_setup_is_idempotent() {
    let stream = fresh_stream().await;

    stream.setup().await.expect("a second setup succeeds");
}

#[tokio::test]
async fn publishing_to_a_missing_stream_is_unavailable() {
    let stream = KinesisEventStream::from_config(&sdk_config().await, unique_name("missing"));
    let envelope = Envelope::new(
        &unique_client(),
        &event_name("Fruits"),
        SchemaVersion::FIRST,
        &json!({}),
    )
    .unwrap();

    let result = stream.publish(&envelope, deadline()).await;

    assert!(
        matches!(result, Err(StreamError::Unavailable(_))),
        "{result:?}"
    );
}

// ---- warm-up: the connections a Lambda opens during init ------------------------------------

#[tokio::test]
async fn warm_up_reaches_an_existing_table_and_stream() {
    fresh_store()
        .await
        .warm_up()
        .await
        .expect("the table exists");
    fresh_stream()
        .await
        .warm_up()
        .await
        .expect("the stream exists");
}

#[tokio::test]
async fn warm_up_of_a_missing_table_or_stream_is_unavailable() {
    let config = sdk_config().await;
    let store = DynamoDbSchemaStore::from_config(&config, unique_name("missing"));
    let stream = KinesisEventStream::from_config(&config, unique_name("missing"));

    assert!(matches!(
        store.warm_up().await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        stream.warm_up().await,
        Err(StreamError::Unavailable(_))
    ));
}

#[tokio::test]
async fn a_store_only_warm_up_leaves_the_stream_alone() {
    let (_, names) = fresh_app().await;
    // The table exists, the stream does not: only a warm-up that calls Kinesis can fail.
    let config = Config::parse(
        &format!("dynamodb:{}", names.table),
        &format!("kinesis:{}", unique_name("missing")),
    )
    .unwrap();
    let app = App::build(&config).await.unwrap();

    let report = app.warm_up(WarmUp::Store).await;
    report.store.expect("the table exists");
    report.stream.expect("the stream is not called");
    let report = app.warm_up(WarmUp::StoreAndStream).await;
    assert!(report.store.is_ok());
    assert!(
        matches!(report.stream, Err(StreamError::Unavailable(_))),
        "{:?}",
        report.stream
    );
}
