//! The adapter contracts on DynamoDB and Kinesis (moto_server), each test on its own table or
//! stream, plus the behaviours only these adapters have.

use std::sync::Arc;

use aws_sdk_dynamodb::types::{AttributeValue, KeyType};
use event_processor_core::adapters::dynamodb::{CLIENT_KEY, DynamoDbSchemaStore, EVENT_KEY};
use event_processor_core::adapters::kinesis::KinesisEventStream;
use event_processor_core::compat::Mode;
use event_processor_core::config::Config;
use event_processor_core::domain::SchemaVersion;
use event_processor_core::envelope::Envelope;
use event_processor_core::ports::{
    EventSource, EventStream, Insert, SchemaStore, StoreError, StreamError,
};
use event_processor_core::{App, WarmUp};
use event_processor_tests::aws::{
    CallCounter, RawItem, counted_store, fresh_app, fresh_store, fresh_stream, raw_item, raw_table,
    sdk_config, unique_name,
};
use event_processor_tests::{deadline, event_name, unique_client};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn v(n: u32) -> SchemaVersion {
    SchemaVersion::new(n).expect("versions start at 1")
}

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
            .insert_version(
                &client,
                &event_name(name),
                SchemaVersion::FIRST,
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
async fn the_head_holds_the_latest_version_and_each_version_is_an_item_of_the_pair_s_own_partition()
{
    let store = fresh_store().await;
    let (client, event) = (unique_client(), event_name("Fruits"));
    let first = json!({"type": "object", "required": ["fruit"]});
    let second = json!({"type": "object"});
    for (version, schema) in [(1, &first), (2, &second)] {
        let insert = store
            .insert_version(&client, &event, v(version), schema, deadline())
            .await
            .unwrap();
        assert_eq!(insert, Insert::Inserted);
    }

    let head = raw_item(store.table(), client.as_str(), event.as_str())
        .await
        .expect("the head exists");
    let partition = format!("{client}#{event}");
    let one = raw_item(store.table(), &partition, "v0000000001")
        .await
        .expect("version 1's item exists");
    let two = raw_item(store.table(), &partition, "v0000000002")
        .await
        .expect("version 2's item exists");

    let text = |item: &RawItem, name: &str| item[name].as_s().expect("a string").clone();
    let json = |item: &RawItem| serde_json::from_str::<Value>(&text(item, "schema")).unwrap();
    assert_eq!(head["version"].as_n().unwrap(), "2");
    assert_eq!(json(&head), second);
    assert_eq!(text(&head, "registered_at"), text(&two, "registered_at"));
    assert_eq!(json(&one), first);
    assert_eq!(json(&two), second);
    for item in [&one, &two] {
        assert!(!item.contains_key("version"), "the sort key is the version");
        OffsetDateTime::parse(&text(item, "registered_at"), &Rfc3339).expect("RFC 3339");
    }
    assert_eq!(
        raw_table(store.table()).await.len(),
        3,
        "one head and two versions"
    );
}

#[tokio::test]
async fn two_stores_racing_twenty_registrations_of_version_2_have_exactly_one_winner() {
    let table = fresh_store().await.table().to_owned();
    // Two processes' worth of stores: each with its own SDK client and connections.
    let stores: Vec<Arc<dyn SchemaStore>> = vec![
        Arc::new(DynamoDbSchemaStore::from_config(
            &sdk_config().await,
            &table,
        )),
        Arc::new(DynamoDbSchemaStore::from_config(
            &sdk_config().await,
            &table,
        )),
    ];
    let (client, event) = (unique_client(), event_name("Fruits"));
    stores[0]
        .insert_version(&client, &event, v(1), &json!({}), deadline())
        .await
        .unwrap();

    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (store, client, event) = (stores[i % 2].clone(), client.clone(), event.clone());
            tokio::spawn(async move {
                let schema = json!({"title": format!("contender {i}")});
                let insert = store
                    .insert_version(&client, &event, v(2), &schema, deadline())
                    .await
                    .unwrap();
                (schema, insert)
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut taken = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (schema, Insert::Inserted) => winners.push(schema),
            (_, Insert::Taken(winner)) => taken.push(winner.schema),
        }
    }

    assert_eq!(winners.len(), 1, "exactly one registration wins version 2");
    assert!(
        taken.iter().all(|schema| *schema == winners[0]),
        "every loser is shown the winner"
    );
    let history = stores[1]
        .history(&client, &event, deadline())
        .await
        .unwrap();
    let versions: Vec<(u32, &Value)> = history
        .iter()
        .map(|h| (h.version.get(), &h.schema))
        .collect();
    assert_eq!(versions, [(1, &json!({})), (2, &winners[0])]);
    assert_eq!(
        raw_table(&table).await.len(),
        3,
        "one head and two versions"
    );
}

#[tokio::test]
async fn a_version_that_does_not_follow_the_latest_is_refused_and_writes_nothing() {
    let store = fresh_store().await;
    let (client, event) = (unique_client(), event_name("Fruits"));
    store
        .insert_version(&client, &event, v(1), &json!({}), deadline())
        .await
        .unwrap();

    let result = store
        .insert_version(&client, &event, v(3), &json!({"title": "3"}), deadline())
        .await;

    assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");
    let versions = store.versions(&client, &event, deadline()).await.unwrap();
    assert_eq!(versions.len(), 1);
}

#[tokio::test]
async fn a_mode_set_on_a_pair_survives_its_next_registration() {
    let store = fresh_store().await;
    let (client, event) = (unique_client(), event_name("Fruits"));
    store
        .insert_version(&client, &event, v(1), &json!({}), deadline())
        .await
        .unwrap();
    store
        .set_compatibility(&client, &event, Mode::Forward, deadline())
        .await
        .unwrap();

    store
        .insert_version(&client, &event, v(2), &json!({"title": "2"}), deadline())
        .await
        .unwrap();

    assert_eq!(
        store
            .compatibility(&client, &event, deadline())
            .await
            .unwrap(),
        Some(Mode::Forward)
    );
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

    let result = store.get(&client, &event, None, deadline()).await;

    assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");
}

#[tokio::test]
async fn a_missing_table_is_unavailable() {
    let store = DynamoDbSchemaStore::from_config(&sdk_config().await, unique_name("missing"));

    let result = store
        .get(&unique_client(), &event_name("Fruits"), None, deadline())
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
