//! The whole HTTP API on DynamoDB + Kinesis (moto), end to end: what a client sends is what a
//! downstream consumer reads from the stream, with every CloudEvents attribute of API.md.

use std::sync::Arc;

use event_processor_core::Processor;
use event_processor_core::adapters::kinesis::KinesisEventStream;
use event_processor_core::domain::{ClientId, EventId};
use event_processor_core::http::Api;
use event_processor_core::ports::{EventSource, StartAt};
use event_processor_tests::api::{get, post_json};
use event_processor_tests::aws::{
    CallCounter, Names, counted_store, fresh_app, raw_records, sdk_config,
};
use event_processor_tests::contract::read_events;
use event_processor_tests::{event_name, unique_client};
use futures::StreamExt;
use http::StatusCode;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[tokio::test]
async fn a_sent_event_reaches_kinesis_as_a_structured_cloudevent_keyed_by_its_id() {
    let (app, names) = fresh_app().await;
    let router = app.router();
    let client = unique_client();
    let schema = json!({"type": "object", "required": ["fruit"]});
    let registered = post_json(
        &router,
        &format!("/{client}/Fruits/register_event"),
        &schema,
    )
    .await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{:?}",
        registered.body
    );
    let event = json!({"fruit": "pineapple", "n": [1, 2.5, null], "ü": "果物"});

    let sent = post_json(&router, &format!("/{client}/Fruits/send_event"), &event).await;

    assert_eq!(sent.status, StatusCode::OK, "{:?}", sent.body);
    let id = sent.body["id"].as_str().expect("an event id");
    let records = raw_records(&names.stream).await;
    assert_eq!(records.len(), 1, "{records:?}");
    let record = &records[0];
    assert_eq!(record.partition_key, id);
    let ce = &record.data;
    assert_eq!(ce["specversion"], "1.0");
    assert_eq!(ce["id"], id);
    assert_eq!(ce["source"], format!("/{client}"));
    assert_eq!(ce["type"], "Fruits");
    assert_eq!(
        ce["dataschema"],
        format!("/{client}/Fruits/schema?version=1")
    );
    assert_eq!(ce["datacontenttype"], "application/json");
    assert_eq!(ce["data"], event);
    let time = OffsetDateTime::parse(ce["time"].as_str().expect("time"), &Rfc3339)
        .expect("time is RFC 3339");
    assert_eq!(time.offset(), time::UtcOffset::UTC);
    let uuid = EventId::parse(id).expect("the id is a UUID").as_uuid();
    assert_eq!(uuid.get_version_num(), 7, "ids are UUID v7");
    assert_eq!(
        ce.as_object().unwrap().len(),
        8,
        "no attribute beyond API.md's: {ce}"
    );
}

#[tokio::test]
async fn registered_schemas_are_read_back_and_listed_through_the_api() {
    let (app, _) = fresh_app().await;
    let router = app.router();
    let client = unique_client();
    let fruits = json!({"type": "object", "required": ["fruit"]});
    let colors = json!({"type": "object", "required": ["color"]});
    for (event, schema) in [("Fruits", &fruits), ("Colors", &colors)] {
        let reply = post_json(
            &router,
            &format!("/{client}/{event}/register_event"),
            schema,
        )
        .await;
        assert_eq!(reply.status, StatusCode::CREATED);
    }

    let schema = get(&router, &format!("/{client}/Fruits/schema")).await;
    let listed = get(&router, &format!("/{client}/list_events")).await;

    assert_eq!(schema.status, StatusCode::OK);
    assert_eq!(schema.body["schema"], fruits);
    assert_eq!(schema.body["version"], 1);
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(
        listed.body["events"],
        json!([
            {"client": client.as_str(), "event": "Colors", "version": 1},
            {"client": client.as_str(), "event": "Fruits", "version": 1},
        ])
    );
}

#[tokio::test]
async fn a_listener_subscribed_from_the_end_receives_the_sent_event() {
    let (app, names) = fresh_app().await;
    let router = app.router();
    let client = unique_client();
    let registered = post_json(
        &router,
        &format!("/{client}/Fruits/register_event"),
        &json!({}),
    )
    .await;
    assert_eq!(registered.status, StatusCode::CREATED);
    let listener = KinesisEventStream::from_config(&sdk_config().await, &names.stream);
    let mut subscription = listener
        .subscribe(&client, &event_name("Fruits"), StartAt::End)
        .await
        .unwrap();

    let sent = post_json(
        &router,
        &format!("/{client}/Fruits/send_event"),
        &json!({"fruit": "kiwi"}),
    )
    .await;

    assert_eq!(sent.status, StatusCode::OK);
    let received = read_events(subscription.as_mut(), 1).await;
    assert_eq!(received[0].id, sent.body["id"].as_str().unwrap());
    assert_eq!(received[0].data, json!({"fruit": "kiwi"}));
}

#[tokio::test]
async fn a_thousand_sends_to_one_event_read_the_schema_store_once() {
    // Given a pair registered by one function (register-event) ...
    let (register, names) = fresh_app().await;
    let client = unique_client();
    let registered = post_json(
        &register.router(),
        &format!("/{client}/Fruits/register_event"),
        &json!({"type": "object", "required": ["fruit"]}),
    )
    .await;
    assert_eq!(registered.status, StatusCode::CREATED);
    // ... and another function's cold start (send-event), whose GetItem calls are counted.
    let get_items = CallCounter::get_item();
    let store = counted_store(&names.table, &get_items).await;
    let stream = KinesisEventStream::from_config(&sdk_config().await, &names.stream);
    let send = Api::new(Processor::new(Arc::new(store), Arc::new(stream))).router();
    let uri = format!("/{client}/Fruits/send_event");

    let statuses: Vec<StatusCode> = futures::stream::iter(0..1000)
        .map(|i| {
            let (send, uri) = (send.clone(), uri.clone());
            async move {
                post_json(&send, &uri, &json!({"fruit": format!("fruit {i}")}))
                    .await
                    .status
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;

    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(get_items.count(), 1, "GetItem calls for 1,000 sends");
}

/// A fresh app on which `{client}/Blob` is registered with a schema that accepts anything.
async fn app_with_blob() -> (axum::Router, Names, ClientId) {
    let (app, names) = fresh_app().await;
    let router = app.router();
    let client = unique_client();
    let registered = post_json(
        &router,
        &format!("/{client}/Blob/register_event"),
        &json!({}),
    )
    .await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{:?}",
        registered.body
    );
    (router, names, client)
}

#[tokio::test]
async fn an_event_under_the_body_limit_but_over_a_kinesis_record_once_enveloped_is_413_not_503() {
    let (router, names, client) = app_with_blob().await;
    // 1 MiB minus a little fits the HTTP limit; the CloudEvents envelope pushes it past 1 MiB.
    let event = json!("x".repeat(1024 * 1024 - 64));

    let sent = post_json(&router, &format!("/{client}/Blob/send_event"), &event).await;

    assert_eq!(
        sent.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{:?}",
        sent.body
    );
    assert_eq!(sent.body["error"], "payload_too_large");
    assert!(raw_records(&names.stream).await.is_empty());
}

#[tokio::test]
async fn a_batch_item_too_large_for_a_kinesis_record_is_413_and_the_others_are_published() {
    let (router, names, client) = app_with_blob().await;
    // The first item fits the batch's 5 MiB but not one 1 MiB record once enveloped.
    let items = json!(["x".repeat(1024 * 1024 - 64), {"small": true}]);

    let sent = post_json(&router, &format!("/{client}/Blob/send_events"), &items).await;

    assert_eq!(sent.status, StatusCode::MULTI_STATUS, "{:?}", sent.body);
    assert_eq!(sent.body["results"][0]["status"], 413);
    assert_eq!(sent.body["results"][1]["status"], 200);
    let records = raw_records(&names.stream).await;
    assert_eq!(records.len(), 1, "only the small item is published");
    assert_eq!(records[0].data["id"], sent.body["results"][1]["id"]);
}
