//! The whole HTTP API end to end on the local stack: PostgreSQL schemas and Kafka events (the
//! tansu broker `scripts/test` starts), configured exactly as `serve` is, with records read
//! back by a plain Kafka consumer.

use event_processor_core::App;
use event_processor_core::app::open_source;
use event_processor_core::config::{Config, StreamConfig};
use event_processor_core::domain::{ClientId, EventName};
use event_processor_core::ports::StartAt;
use event_processor_tests::api::{get, post_form, post_json};
use event_processor_tests::contract::read_events;
use event_processor_tests::kafka::{Record, read_records, tansu_brokers};
use event_processor_tests::postgres::url;
use event_processor_tests::{event_name, unique_client};
use http::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn event_stream() -> String {
    format!("kafka://{}", tansu_brokers())
}

async fn app() -> axum::Router {
    let config = Config::parse(&url(), &event_stream()).expect("the documented forms parse");
    App::build(&config)
        .await
        .expect("open PostgreSQL and Kafka")
        .router()
}

/// Registers `{client}/{event}` with the demo's schema (as the original clients do, in a form).
async fn registered(app: &axum::Router) -> (ClientId, EventName) {
    let (client, event) = (unique_client(), event_name("Fruits"));
    let reply = post_form(
        app,
        &format!("/{client}/{event}/register_event"),
        &[("event_schema", r#"{"type":"object","required":["fruit"]}"#)],
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    (client, event)
}

async fn records(client: &ClientId, event: &EventName, count: usize) -> Vec<Record> {
    let topic = format!("{client}.{event}");
    let brokers = tansu_brokers();
    tokio::task::spawn_blocking(move || read_records(&brokers, &topic, count))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sent_event_is_a_binary_mode_cloudevent_in_the_pairs_topic() {
    let app = app().await;
    let (client, event) = registered(&app).await;
    let data = json!({"fruit": "pineapple", "ripe": true});

    let sent = post_json(&app, &format!("/{client}/{event}/send_event"), &data).await;

    assert_eq!(sent.status, StatusCode::OK, "{:?}", sent.body);
    let id = sent.body["id"].as_str().unwrap().to_owned();
    let record = records(&client, &event, 1).await.remove(0);
    assert_eq!(record.value, data);
    assert_eq!(record.key.as_deref(), Some(id.as_bytes()));
    let h = &record.headers;
    assert_eq!(h["ce_specversion"], "1.0");
    assert_eq!(h["ce_id"], id);
    assert_eq!(h["ce_source"], format!("/{client}"));
    assert_eq!(h["ce_type"], event.as_str());
    assert_eq!(
        h["ce_dataschema"],
        format!("/{client}/{event}/schema?version=1")
    );
    assert_eq!(h["content-type"], "application/json");
    let time = OffsetDateTime::parse(&h["ce_time"], &Rfc3339).expect("RFC 3339");
    assert_eq!(time.offset(), time::UtcOffset::UTC);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_publishes_its_valid_events_in_input_order_and_reports_each_entry() {
    let app = app().await;
    let (client, event) = registered(&app).await;
    let batch = json!([{"fruit": "kiwi"}, {"color": "red"}, {"fruit": "mango"}]);

    let reply = post_json(&app, &format!("/{client}/{event}/send_events"), &batch).await;

    assert_eq!(reply.status, StatusCode::MULTI_STATUS, "{:?}", reply.body);
    assert_eq!(
        (
            reply.body["accepted"].clone(),
            reply.body["rejected"].clone()
        ),
        (json!(2), json!(1))
    );
    let results = reply.body["results"].as_array().unwrap();
    assert_eq!(results[1]["status"], 422);
    let published = records(&client, &event, 2).await;
    let values: Vec<&Value> = published.iter().map(|r| &r.value).collect();
    assert_eq!(
        values,
        [&json!({"fruit": "kiwi"}), &json!({"fruit": "mango"})]
    );
    let ids: Vec<&str> = published
        .iter()
        .map(|r| r.headers["ce_id"].as_str())
        .collect();
    assert_eq!(
        ids,
        [
            results[0]["id"].as_str().unwrap(),
            results[2]["id"].as_str().unwrap()
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_schema_and_listing_answer_from_postgres() {
    let app = app().await;
    let (client, event) = registered(&app).await;
    let schema = json!({"type": "object", "required": ["fruit"]});
    let register = format!("/{client}/{event}/register_event");
    post_json(
        &app,
        &format!("/{client}/Apples/register_event"),
        &json!({}),
    )
    .await;

    let identical = post_json(&app, &register, &schema).await;
    let different = post_json(&app, &register, &json!({"type": "array"})).await;
    let fetched = get(&app, &format!("/{client}/{event}/schema")).await;
    let listed = get(&app, &format!("/{client}/list_events")).await;

    assert_eq!(identical.status, StatusCode::OK, "{:?}", identical.body);
    assert_eq!(identical.body["version"], 1);
    assert_eq!(
        different.status,
        StatusCode::CONFLICT,
        "{:?}",
        different.body
    );
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(
        (
            fetched.body["schema"].clone(),
            fetched.body["version"].clone()
        ),
        (schema, json!(1))
    );
    assert_eq!(listed.status, StatusCode::OK);
    let names: Vec<&str> = listed.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Apples", "Fruits"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_events_are_not_published() {
    let app = app().await;
    let (client, event) = registered(&app).await;

    let invalid = post_json(
        &app,
        &format!("/{client}/{event}/send_event"),
        &json!({"color": "red"}),
    )
    .await;
    let unregistered = post_json(
        &app,
        &format!("/{client}/Nope/send_event"),
        &json!({"fruit": "kiwi"}),
    )
    .await;
    let valid = post_json(
        &app,
        &format!("/{client}/{event}/send_event"),
        &json!({"fruit": "kiwi"}),
    )
    .await;

    assert_eq!(
        invalid.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        invalid.body
    );
    assert_eq!(
        unregistered.status,
        StatusCode::NOT_FOUND,
        "{:?}",
        unregistered.body
    );
    assert_eq!(valid.status, StatusCode::OK, "{:?}", valid.body);
    // The topic starts with the valid event: nothing rejected went before it.
    let first = records(&client, &event, 1).await.remove(0);
    assert_eq!(first.headers["ce_id"], valid.body["id"].as_str().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_reads_back_what_the_gateway_published() {
    let app = app().await;
    let (client, event) = registered(&app).await;
    let source = open_source(&StreamConfig::parse(&event_stream()).unwrap())
        .await
        .unwrap();
    let mut subscription = source
        .subscribe(&client, &event, StartAt::Beginning)
        .await
        .unwrap();

    let sent = post_json(
        &app,
        &format!("/{client}/{event}/send_event"),
        &json!({"fruit": "lime"}),
    )
    .await;

    let got = read_events(subscription.as_mut(), 1).await;
    assert_eq!(got[0].id, sent.body["id"].as_str().unwrap());
    assert_eq!(got[0].data, json!({"fruit": "lime"}));
    assert_eq!(
        got[0].dataschema,
        format!("/{client}/{event}/schema?version=1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_under_the_body_limit_but_over_a_kafka_record_is_413_not_503() {
    let app = app().await;
    let (client, event) = registered(&app).await;
    // Under the 1 MiB body limit, over the producer's 1,000,000-byte message limit.
    let big = json!({"fruit": "x".repeat(1_020_000)});

    let sent = post_json(&app, &format!("/{client}/{event}/send_event"), &big).await;
    let valid = post_json(
        &app,
        &format!("/{client}/{event}/send_event"),
        &json!({"fruit": "kiwi"}),
    )
    .await;

    assert_eq!(
        sent.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{:?}",
        sent.body
    );
    assert_eq!(sent.body["error"], "payload_too_large");
    assert_eq!(valid.status, StatusCode::OK, "{:?}", valid.body);
    // The topic starts with the small event: the large one was never published.
    let first = records(&client, &event, 1).await.remove(0);
    assert_eq!(first.headers["ce_id"], valid.body["id"].as_str().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_item_too_large_for_a_kafka_record_is_413_and_the_others_are_published() {
    let app = app().await;
    let (client, event) = registered(&app).await;
    // The first item fits the batch's 5 MiB but not the producer's 1,000,000-byte message.
    let items = json!([{"fruit": "x".repeat(1_020_000)}, {"fruit": "kiwi"}]);

    let sent = post_json(&app, &format!("/{client}/{event}/send_events"), &items).await;

    assert_eq!(sent.status, StatusCode::MULTI_STATUS, "{:?}", sent.body);
    assert_eq!(sent.body["results"][0]["status"], 413);
    assert_eq!(sent.body["results"][1]["status"], 200);
    // The topic starts with the small item: the large one was never published.
    let first = records(&client, &event, 1).await.remove(0);
    assert_eq!(
        first.headers["ce_id"],
        sent.body["results"][1]["id"].as_str().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_only_too_large_items_is_413_and_they_are_kept_as_rejections() {
    let app = app().await;
    let (client, event) = registered(&app).await;
    let large = || json!({"fruit": "x".repeat(1_020_000)});

    let sent = post_json(
        &app,
        &format!("/{client}/{event}/send_events"),
        &json!([large(), large()]),
    )
    .await;

    // It was answered 422 "no event satisfies the registered schema" before: every item is valid.
    assert_eq!(
        sent.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{:?}",
        sent.body
    );
    assert_eq!(sent.body["error"], "payload_too_large");
    assert_eq!(sent.body["accepted"], 0);
    for result in sent.body["results"].as_array().unwrap() {
        assert_eq!(result["status"], 413);
        assert_eq!(result["error"], "payload_too_large");
    }
    let kept = get(&app, &format!("/{client}/{event}/rejected")).await;
    let kept = kept.body["rejected"].as_array().unwrap().clone();
    assert_eq!(kept.len(), 2);
    assert!(
        kept.iter()
            .all(|r| r["error"] == "payload_too_large" && r["truncated"] == true)
    );

    // Too large and invalid together: nothing can be published as it is, 422.
    let mixed = post_json(
        &app,
        &format!("/{client}/{event}/send_events"),
        &json!([large(), {"color": "red"}]),
    )
    .await;
    assert_eq!(
        mixed.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        mixed.body
    );
    assert_eq!(mixed.body["results"][0]["status"], 413);
    assert_eq!(mixed.body["results"][1]["status"], 422);
}
