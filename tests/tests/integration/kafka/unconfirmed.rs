//! An honest 503 on Kafka, on librdkafka's mock cluster: a record sent whose acknowledgement
//! never came (or was not waited for) is `Unconfirmed` (503 `publish_unconfirmed`); one
//! never sent is `Unavailable` (503 `service_unavailable`). What the broker stored is read
//! back.

use std::sync::Arc;
use std::time::Duration;

use event_processor_core::Processor;
use event_processor_core::adapters::kafka::{KafkaOptions, KafkaStream, topic_name};
use event_processor_core::adapters::memory::MemorySchemaStore;
use event_processor_core::domain::{ClientId, EventName, SchemaVersion};
use event_processor_core::envelope::Envelope;
use event_processor_core::http::Api;
use event_processor_core::ports::{EventStream, SchemaStore, StreamError};
use event_processor_core::retry::Deadline;
use event_processor_tests::api::assert_failure;
use event_processor_tests::idempotency::post_json_with_key;
use event_processor_tests::kafka::{Record, read_records_until};
use event_processor_tests::kafka_faults::FaultyKafka;
use event_processor_tests::{deadline, event_name, unique_client};
use http::StatusCode;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::json;

/// A delivery timeout (`message.timeout.ms`) of one second, so failures come quickly.
fn one_second() -> KafkaOptions {
    KafkaOptions {
        delivery_timeout: Duration::from_secs(1),
        ..KafkaOptions::default()
    }
}

/// A round trip three times longer than [`one_second`]'s delivery timeout.
const SLOW: Duration = Duration::from_secs(3);

/// A fresh pair whose topic exists on `kafka`.
fn pair(kafka: &FaultyKafka) -> (ClientId, EventName) {
    let (client, event) = (unique_client(), event_name("Fruits"));
    kafka.create_topic(&topic_name(&client, &event));
    (client, event)
}

fn envelope(client: &ClientId, event: &EventName, i: usize) -> Envelope {
    Envelope::new(client, event, SchemaVersion::FIRST, &json!({"i": i})).unwrap()
}

/// Reads the pair's topic until `done` holds (the test fails after 30 s).
async fn records_until(
    kafka: &FaultyKafka,
    client: &ClientId,
    event: &EventName,
    done: impl Fn(&[Record]) -> bool + Send + 'static,
) -> Vec<Record> {
    let (brokers, topic) = (kafka.brokers.clone(), topic_name(client, event));
    tokio::task::spawn_blocking(move || read_records_until(&brokers, &topic, done))
        .await
        .unwrap()
}

/// How many records carry `ce_id: id`.
fn with_id(records: &[Record], id: &str) -> usize {
    records
        .iter()
        .filter(|r| r.headers.get("ce_id").map(String::as_str) == Some(id))
        .count()
}

/// The end offset of the pair's (one-partition) topic: how many records it holds.
async fn stored_count(kafka: &FaultyKafka, client: &ClientId, event: &EventName) -> i64 {
    let (brokers, topic) = (kafka.brokers.clone(), topic_name(client, event));
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()
            .expect("create a consumer");
        consumer
            .fetch_watermarks(&topic, 0, Duration::from_secs(10))
            .expect("the topic's watermarks")
            .1
    })
    .await
    .unwrap()
}

/// Publishes until the producer is acknowledged: its first connection (metadata, producer
/// id) may take longer than one delivery timeout, and after a fault it reconnects with
/// backoff.
async fn until_acknowledged(stream: &KafkaStream, client: &ClientId, event: &EventName) {
    for i in 0..30 {
        if stream
            .publish(&envelope(client, event, 1000 + i), deadline())
            .await
            .is_ok()
        {
            return;
        }
    }
    panic!("the producer never recovered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_produce_answered_slower_than_the_message_timeout_is_unconfirmed_and_in_the_topic() {
    // Given a producer connected to the broker,
    let kafka = FaultyKafka::start();
    let (client, event) = pair(&kafka);
    let stream = KafkaStream::connect(&kafka.brokers, one_second()).unwrap();
    until_acknowledged(&stream, &client, &event).await;

    // when the broker's round trip becomes slower than the delivery timeout,
    kafka.round_trip(SLOW);
    let sent = envelope(&client, &event, 1);
    let result = stream.publish(&sent, deadline()).await;

    // then the publish is unconfirmed, and rightly so: the broker stored the record.
    assert!(
        matches!(result, Err(StreamError::Unconfirmed(_))),
        "{result:?}"
    );
    kafka.round_trip(Duration::ZERO);
    let id = sent.id.to_string();
    let records = records_until(&kafka, &client, &event, move |records| {
        with_id(records, &id) > 0
    })
    .await;
    assert_eq!(with_id(&records, &sent.id.to_string()), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_down_before_anything_is_sent_is_unavailable_and_stores_nothing() {
    // Given a broker that is down before the producer ever reached it,
    let kafka = FaultyKafka::start();
    let (client, event) = pair(&kafka);
    kafka.broker_down();
    let stream = KafkaStream::connect(&kafka.brokers, one_second()).unwrap();

    // when an event is published,
    let result = stream
        .publish(&envelope(&client, &event, 0), deadline())
        .await;

    // then it is unavailable: the record never left the producer's queue.
    assert!(
        matches!(result, Err(StreamError::Unavailable(_))),
        "{result:?}"
    );
    kafka.broker_up();
    assert_eq!(stored_count(&kafka, &client, &event).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_the_deadline_stopped_waiting_for_is_unconfirmed_and_may_still_be_delivered() {
    // Given a broker that is down, and a delivery timeout longer than the request's deadline,
    let kafka = FaultyKafka::start();
    let (client, event) = pair(&kafka);
    kafka.broker_down();
    let stream = KafkaStream::connect(
        &kafka.brokers,
        KafkaOptions {
            delivery_timeout: Duration::from_secs(30),
            ..KafkaOptions::default()
        },
    )
    .unwrap();
    let sent = envelope(&client, &event, 0);

    // when the deadline comes before the delivery report,
    let result = stream
        .publish(&sent, Deadline::after(Duration::from_secs(1)))
        .await;

    // then it is unconfirmed: librdkafka still holds the record, and delivers it once the
    // broker is back.
    assert!(
        matches!(result, Err(StreamError::Unconfirmed(_))),
        "{result:?}"
    );
    kafka.broker_up();
    let id = sent.id.to_string();
    let records = records_until(&kafka, &client, &event, move |records| {
        with_id(records, &id) > 0
    })
    .await;
    assert_eq!(with_id(&records, &sent.id.to_string()), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ambiguous_send_is_503_publish_unconfirmed_and_its_retry_with_the_key_stores_the_same_id()
 {
    // Given a gateway on a producer connected to the broker,
    let kafka = FaultyKafka::start();
    let (client, event) = pair(&kafka);
    let stream = Arc::new(KafkaStream::connect(&kafka.brokers, one_second()).unwrap());
    let store = MemorySchemaStore::new();
    store
        .insert_version(
            &client,
            &event,
            SchemaVersion::FIRST,
            &json!({"type": "object"}),
            deadline(),
        )
        .await
        .unwrap();
    let router = Api::new(Processor::new(Arc::new(store), stream.clone())).router();
    until_acknowledged(&stream, &client, &event).await;
    let uri = format!("/{client}/{event}/send_event");
    let body = json!({"fruit": "kiwi"});

    // when an event is sent with an Idempotency-Key while the broker answers too slowly,
    kafka.round_trip(SLOW);
    let first = post_json_with_key(&router, &uri, "order-1", &body).await;

    // then the answer says the outcome is unknown, with Retry-After;
    assert_failure(
        &first,
        StatusCode::SERVICE_UNAVAILABLE,
        "publish_unconfirmed",
    );
    assert!(first.headers.contains_key(http::header::RETRY_AFTER));

    // once the broker answers in time again, the retry with the same key is acknowledged,
    kafka.round_trip(Duration::ZERO);
    until_acknowledged(&stream, &client, &event).await;
    let retry = post_json_with_key(&router, &uri, "order-1", &body).await;
    assert_eq!(retry.status, StatusCode::OK, "{:?}", retry.body);
    let id = retry.body["id"].as_str().unwrap().to_owned();

    // and the topic holds the event twice, both times as that id: consumers drop one.
    let wanted = id.clone();
    let records = records_until(&kafka, &client, &event, move |records| {
        with_id(records, &wanted) >= 2
    })
    .await;
    assert_eq!(with_id(&records, &id), 2);
}
