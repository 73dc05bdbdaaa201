//! The Kafka stream beyond the contract: a broker that stops mid-stream, topic preparation,
//! and subscriptions, on librdkafka's mock cluster and on a tansu broker process.

use std::collections::BTreeSet;
use std::sync::Arc;

use event_processor_core::App;
use event_processor_core::adapters::kafka::{KafkaOptions, KafkaStream, topic_name};
use event_processor_core::adapters::memory::MemorySchemaStore;
use event_processor_core::domain::SchemaVersion;
use event_processor_core::envelope::Envelope;
use event_processor_core::ports::{EventSource, EventStream, StartAt, StreamError};
use event_processor_tests::api::{LoadOutcome, Reply, post_json, send_in_rounds};
use event_processor_tests::contract::read_events;
use event_processor_tests::kafka::{
    MockKafka, Tansu, impatient, partition_count, records_with_ids, tansu_brokers,
};
use event_processor_tests::{deadline, event_name, unique_client};
use http::StatusCode;
use serde_json::json;

/// The gateway on a memory store and `stream`.
fn gateway(stream: Arc<dyn EventStream>) -> axum::Router {
    App::new(Arc::new(MemorySchemaStore::new()), stream).router()
}

fn assert_503(reply: &Reply) {
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        reply.body
    );
    assert!(reply.headers.contains_key(http::header::RETRY_AFTER));
}

/// Sends events while the broker runs, stops it, checks that sends fail with 503, restarts
/// it, and checks that every acknowledged event is in the topic and that sends work again.
async fn broker_stopping_mid_stream(
    brokers: &str,
    stream: Arc<dyn EventStream>,
    stop: impl Fn(),
    restart: impl Fn(),
) {
    let app = gateway(stream);
    let (client, event) = (unique_client(), event_name("Fruits"));
    let base = format!("/{client}/{event}");
    let registered = post_json(&app, &format!("{base}/register_event"), &json!({})).await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{:?}",
        registered.body
    );
    let mut acknowledged = BTreeSet::new();
    for i in 0..5 {
        let sent = post_json(&app, &format!("{base}/send_event"), &json!({"i": i})).await;
        assert_eq!(sent.status, StatusCode::OK, "{:?}", sent.body);
        acknowledged.insert(sent.body["id"].as_str().unwrap().to_owned());
    }

    stop();
    for i in 5..8 {
        assert_503(&post_json(&app, &format!("{base}/send_event"), &json!({"i": i})).await);
    }
    assert_503(
        &post_json(
            &app,
            &format!("{base}/send_events"),
            &json!([{"i": 8}, {"i": 9}]),
        )
        .await,
    );
    restart();

    // The producer reconnects with backoff: each try is bounded by the delivery timeout.
    let mut recovered = None;
    for _ in 0..20 {
        let sent = post_json(&app, &format!("{base}/send_event"), &json!({"i": 10})).await;
        if sent.status == StatusCode::OK {
            recovered = Some(sent.body["id"].as_str().unwrap().to_owned());
            break;
        }
        assert_503(&sent);
    }
    acknowledged.insert(recovered.expect("sends succeed again once the broker is back"));
    let records = records_with_ids(brokers, &client, &event, &acknowledged).await;
    assert!(records.len() >= 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_broker_down_mid_stream_gives_503s_and_keeps_every_acknowledged_event() {
    let mock = MockKafka::start();
    let (stream, _) = mock.adapter(impatient());
    broker_stopping_mid_stream(
        &mock.brokers,
        stream,
        || mock.broker_down(),
        || mock.broker_up(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tansu_stopped_mid_stream_gives_503s_and_keeps_every_acknowledged_event() {
    let tansu = Tansu::start();
    let stream = Arc::new(KafkaStream::connect(&tansu.brokers, impatient()).unwrap());
    broker_stopping_mid_stream(&tansu.brokers, stream, || tansu.pause(), || tansu.resume()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preparing_creates_the_topic_through_the_admin_api_and_an_existing_topic_is_success() {
    let brokers = tansu_brokers();
    let stream = KafkaStream::connect(&brokers, KafkaOptions::default()).unwrap();
    let (client, event) = (unique_client(), event_name("Fruits"));

    stream.prepare(&client, &event, deadline()).await.unwrap();
    stream.prepare(&client, &event, deadline()).await.unwrap();

    let topic = topic_name(&client, &event);
    let partitions = tokio::task::spawn_blocking(move || partition_count(&brokers, &topic))
        .await
        .unwrap();
    assert_eq!(partitions, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_opened_before_registration_reads_the_pair_once_its_topic_exists() {
    let brokers = tansu_brokers();
    let stream = KafkaStream::connect(&brokers, KafkaOptions::default()).unwrap();
    let source = &stream;
    let (client, event) = (unique_client(), event_name("Early"));
    let mut subscription = source
        .subscribe(&client, &event, StartAt::End)
        .await
        .unwrap();
    assert!(subscription.next_batch().await.unwrap().is_empty());

    stream.prepare(&client, &event, deadline()).await.unwrap();
    let sent = Envelope::new(
        &client,
        &event,
        SchemaVersion::FIRST,
        &json!({"early": true}),
    )
    .unwrap();
    stream.publish(&sent, deadline()).await.unwrap();

    assert_eq!(
        read_events(subscription.as_mut(), 1).await,
        vec![sent.to_cloud_event().unwrap()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_fails_publish_and_prepare_as_unavailable() {
    // Port 1 on loopback: nothing listens, connections are refused.
    let stream = KafkaStream::connect("127.0.0.1:1", impatient()).unwrap();
    let (client, event) = (unique_client(), event_name("Fruits"));
    let envelope = Envelope::new(&client, &event, SchemaVersion::FIRST, &json!({})).unwrap();

    let published = stream.publish(&envelope, deadline()).await;
    let prepared = KafkaStream::connect(
        "127.0.0.1:1",
        KafkaOptions {
            request_timeout: std::time::Duration::from_secs(2),
            ..impatient()
        },
    )
    .unwrap()
    .prepare(&client, &event, deadline())
    .await;

    assert!(
        matches!(published, Err(StreamError::Unavailable(_))),
        "{published:?}"
    );
    assert!(
        matches!(prepared, Err(StreamError::Unavailable(_))),
        "{prepared:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_concurrent_load_with_produce_requests_failing_no_acknowledged_event_is_lost() {
    use rdkafka::types::RDKafkaRespErr::*;
    // Given the mock broker, and a gateway on it,
    let mock = MockKafka::start();
    let (stream, _) = mock.adapter(impatient());
    let app = gateway(stream);
    let (client, event) = (unique_client(), event_name("Chaos"));
    let base = format!("/{client}/{event}");
    post_json(&app, &format!("{base}/register_event"), &json!({})).await;

    // when 200 events are sent 50 at a time while Produce requests fail (dropped connections,
    // timeouts, leader changes, missing replicas) before each round,
    let faults = [
        RD_KAFKA_RESP_ERR__TRANSPORT,
        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        RD_KAFKA_RESP_ERR__TRANSPORT,
    ];
    let LoadOutcome {
        acknowledged,
        refused,
    } = send_in_rounds(&app, &format!("{base}/send_event"), 4, 50, |_| {
        mock.fail_produce_requests(&faults)
    })
    .await;

    // then the faults really met the gateway's Produce requests,
    let injected = faults.len() * 4;
    let consumed = injected
        - mock
            .unconsumed_produce_errors(&topic_name(&client, &event))
            .await;
    // and every acknowledged event is in the topic.
    assert!(!acknowledged.is_empty());
    let records = records_with_ids(&mock.brokers, &client, &event, &acknowledged).await;
    let found: BTreeSet<String> = records
        .iter()
        .filter_map(|r| r.headers.get("ce_id").cloned())
        .collect();
    eprintln!(
        "faults: {injected} Produce errors injected, {consumed} met the gateway's requests; acknowledged {}, refused {refused}, found {} distinct in {} records, lost {}",
        acknowledged.len(),
        found.len(),
        records.len(),
        acknowledged.difference(&found).count()
    );
    assert!(
        consumed >= faults.len(),
        "the faults must have bitten: {consumed} of {injected} met a Produce request"
    );
    assert!(acknowledged.is_subset(&found));
}
