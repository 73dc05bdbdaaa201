//! An honest 503 on Kinesis: a failure after a request may have reached the stream is
//! `Unconfirmed` (503 `publish_unconfirmed`), one where nothing can have been stored is
//! `Unavailable` (503 `service_unavailable`). The faults are real TCP faults between the SDK
//! and moto (`FaultProxy`), and what moto stored is read back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use event_processor_core::Processor;
use event_processor_core::adapters::kinesis::KinesisEventStream;
use event_processor_core::adapters::memory::MemorySchemaStore;
use event_processor_core::domain::SchemaVersion;
use event_processor_core::envelope::Envelope;
use event_processor_core::http::Api;
use event_processor_core::ports::{EventStream, SchemaStore, StreamError};
use event_processor_core::retry::{Deadline, RetryPolicy};
use event_processor_tests::api::assert_failure;
use event_processor_tests::aws::{endpoint, fresh_stream, raw_records, sdk_config};
use event_processor_tests::fault_proxy::{Fault, FaultProxy, refusing_addr};
use event_processor_tests::idempotency::post_json_with_key;
use event_processor_tests::{deadline, event_name, unique_client};
use http::StatusCode;
use serde_json::{Value, json};

const JSON_1_1: &str = "application/x-amz-json-1.1";

/// Kinesis' answer to a throttled call: a 400 that stored nothing.
const THROTTLED: Fault = Fault::Answer {
    content_type: JSON_1_1,
    reply: |_| {
        let body = json!({"__type": "ProvisionedThroughputExceededException",
                          "message": "Rate exceeded for shard (injected)"});
        (400, body.to_string())
    },
};

/// A PutRecords answer refusing every record as throttled (Kinesis documents such records
/// as not added to the stream).
const EVERY_RECORD_THROTTLED: Fault = Fault::Answer {
    content_type: JSON_1_1,
    reply: |body| {
        let request: Value = serde_json::from_slice(body).expect("a PutRecords request");
        let count = request["Records"].as_array().expect("records").len();
        let refused = json!({"ErrorCode": "ProvisionedThroughputExceededException",
                             "ErrorMessage": "Rate exceeded for shard (injected)"});
        let body = json!({"FailedRecordCount": count, "Records": vec![refused; count]});
        (200, body.to_string())
    },
};

fn moto_addr() -> SocketAddr {
    let url = endpoint();
    let authority = url.trim_start_matches("http://").trim_end_matches('/');
    authority.parse().expect("moto listens on IP:PORT")
}

/// Short backoffs and, for answers held back, a short attempt timeout.
fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        first_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
        attempt_timeout: Duration::from_millis(500),
    }
}

/// The adapter talking to Kinesis at `endpoint_url`.
async fn stream_at(endpoint_url: &str, stream: &str) -> KinesisEventStream {
    let config =
        aws_sdk_kinesis::config::Builder::from(&sdk_config().await).endpoint_url(endpoint_url);
    KinesisEventStream::from_client_config(config, stream).with_retry_policy(quick_retries())
}

/// A moto stream, and the adapter reaching it through a proxy that plays `script`, then
/// `standing`.
async fn through_proxy(
    script: Vec<Fault>,
    standing: Fault,
) -> (KinesisEventStream, FaultProxy, String) {
    let moto_stream = fresh_stream().await;
    let name = moto_stream.stream_name().to_owned();
    let proxy = FaultProxy::start(moto_addr(), script, standing).await;
    (stream_at(&proxy.url(), &name).await, proxy, name)
}

fn event(i: usize) -> Envelope {
    Envelope::new(
        &unique_client(),
        &event_name("Fruits"),
        SchemaVersion::FIRST,
        &json!({"i": i}),
    )
    .unwrap()
}

/// The ids of every record moto holds in `stream`, in order.
async fn stored_ids(stream: &str) -> Vec<String> {
    raw_records(stream)
        .await
        .iter()
        .map(|r| r.data["id"].as_str().expect("a CloudEvent id").to_owned())
        .collect()
}

fn within(budget: Duration) -> Deadline {
    Deadline::after(budget)
}

#[tokio::test]
async fn a_put_record_whose_answer_is_lost_is_unconfirmed_and_the_record_is_in_the_stream() {
    // Given a connection that carries every request to moto and loses every answer,
    let (stream, proxy, name) = through_proxy(vec![], Fault::DropAnswer).await;
    let sent = event(0);

    // when an event is published,
    let result = stream
        .publish(&sent, within(Duration::from_millis(600)))
        .await;

    // then the outcome is unknown, and rightly so: moto stored the record (once per attempt).
    assert!(
        matches!(result, Err(StreamError::Unconfirmed(_))),
        "{result:?}"
    );
    let ids = stored_ids(&name).await;
    assert!(proxy.requests() >= 1);
    assert_eq!(ids.len(), proxy.requests(), "one record per attempt");
    assert!(ids.iter().all(|id| *id == sent.id.to_string()), "{ids:?}");
}

#[tokio::test]
async fn a_put_record_cut_off_at_the_attempt_timeout_after_it_was_sent_is_unconfirmed() {
    // Given a connection that carries requests to moto and holds every answer back,
    let (stream, proxy, name) = through_proxy(vec![], Fault::HoldAnswer).await;
    let sent = event(0);

    // when an event is published (each attempt is cut off after 500 ms),
    let result = stream
        .publish(&sent, within(Duration::from_millis(1200)))
        .await;

    // then it is unconfirmed, and moto did store it.
    assert!(
        matches!(result, Err(StreamError::Unconfirmed(_))),
        "{result:?}"
    );
    assert!(
        proxy.requests() >= 2,
        "the attempt timeout cut attempts off"
    );
    let ids = stored_ids(&name).await;
    assert!(!ids.is_empty());
    assert!(ids.iter().all(|id| *id == sent.id.to_string()), "{ids:?}");
}

#[tokio::test]
async fn a_lost_answer_followed_by_throttling_is_still_unconfirmed() {
    // Given a connection that loses the first answer, and Kinesis throttling every call after,
    let (stream, proxy, name) = through_proxy(vec![Fault::DropAnswer], THROTTLED).await;
    let sent = event(0);

    // when an event is published,
    let result = stream.publish(&sent, within(Duration::from_secs(1))).await;

    // then the last attempt was a clean refusal, but the first stored the record.
    assert!(
        matches!(result, Err(StreamError::Unconfirmed(_))),
        "{result:?}"
    );
    assert!(proxy.requests() > 2, "it was retried");
    assert_eq!(stored_ids(&name).await, vec![sent.id.to_string()]);
}

#[tokio::test]
async fn a_put_record_throttled_until_the_deadline_is_unavailable_and_stores_nothing() {
    let (stream, proxy, name) = through_proxy(vec![], THROTTLED).await;

    let result = stream
        .publish(&event(0), within(Duration::from_millis(300)))
        .await;

    assert!(
        matches!(result, Err(StreamError::Unavailable(_))),
        "{result:?}"
    );
    assert!(proxy.requests() > 1, "it was retried");
    assert!(stored_ids(&name).await.is_empty());
}

#[tokio::test]
async fn a_put_record_to_a_port_nobody_listens_on_is_unavailable() {
    // Nothing listens: every connection is refused, so no request is ever written.
    let stream = stream_at(&format!("http://{}", refusing_addr().await), "events").await;

    let result = stream
        .publish(&event(0), within(Duration::from_millis(300)))
        .await;

    assert!(
        matches!(result, Err(StreamError::Unavailable(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_put_record_to_a_host_that_does_not_resolve_is_unavailable() {
    // The connection fails in DNS, before any connection exists (`.invalid` never resolves).
    let stream = stream_at("http://kinesis.endpoint.invalid:4566", "events").await;

    let result = stream
        .publish(&event(0), within(Duration::from_millis(1500)))
        .await;

    assert!(
        matches!(result, Err(StreamError::Unavailable(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_connection_closed_once_the_request_arrived_is_unconfirmed_as_the_client_cannot_tell() {
    // Given a proxy that closes each connection once the request is in, forwarding nothing:
    // from the client's side this is the same as an answer lost after the request was served.
    let (stream, proxy, name) = through_proxy(vec![], Fault::DropRequest).await;

    let result = stream
        .publish(&event(0), within(Duration::from_millis(300)))
        .await;

    assert!(
        matches!(result, Err(StreamError::Unconfirmed(_))),
        "{result:?}"
    );
    assert!(proxy.requests() >= 1);
    assert!(
        stored_ids(&name).await.is_empty(),
        "nothing was stored, but nobody could know"
    );
}

#[tokio::test]
async fn a_batch_whose_answer_is_lost_and_then_refused_record_by_record_is_unconfirmed() {
    // Given a PutRecords answer lost after moto stored the batch, then every record refused,
    let (stream, proxy, name) =
        through_proxy(vec![Fault::DropAnswer], EVERY_RECORD_THROTTLED).await;
    let batch: Vec<Envelope> = (0..3).map(event).collect();

    // when the batch is published,
    let results = stream
        .publish_batch(&batch, within(Duration::from_secs(1)))
        .await;

    // then every item is unconfirmed (the last answer refused each, the first stored each).
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Err(StreamError::Unconfirmed(_)))),
        "{results:?}"
    );
    assert!(proxy.requests() > 2, "it was retried");
    let mut stored = stored_ids(&name).await;
    stored.sort();
    let mut sent: Vec<String> = batch.iter().map(|e| e.id.to_string()).collect();
    sent.sort();
    assert_eq!(stored, sent);
}

#[tokio::test]
async fn a_batch_refused_record_by_record_until_the_deadline_is_unavailable() {
    let (stream, proxy, name) = through_proxy(vec![], EVERY_RECORD_THROTTLED).await;
    let batch: Vec<Envelope> = (0..3).map(event).collect();

    let results = stream
        .publish_batch(&batch, within(Duration::from_millis(300)))
        .await;

    assert!(
        results
            .iter()
            .all(|r| matches!(r, Err(StreamError::Unavailable(_)))),
        "{results:?}"
    );
    assert!(proxy.requests() > 1, "it was retried");
    assert!(stored_ids(&name).await.is_empty());
}

#[tokio::test]
async fn an_ambiguous_send_is_503_publish_unconfirmed_and_its_retry_with_the_key_stores_the_same_id()
 {
    // Given a gateway whose Kinesis connection loses the first answer (after moto stored the
    // record) and is throttled after that, each request having a second,
    let (stream, proxy, name) = through_proxy(vec![Fault::DropAnswer], THROTTLED).await;
    let store = MemorySchemaStore::new();
    let client = unique_client();
    store
        .insert_version(
            &client,
            &event_name("Fruits"),
            SchemaVersion::FIRST,
            &json!({"type": "object"}),
            deadline(),
        )
        .await
        .unwrap();
    let router = Api::new(Processor::new(Arc::new(store), Arc::new(stream)))
        .request_budget(Duration::from_secs(1))
        .router();
    let uri = format!("/{client}/Fruits/send_event");
    let body = json!({"fruit": "kiwi"});

    // when an event is sent with an Idempotency-Key,
    let first = post_json_with_key(&router, &uri, "order-1", &body).await;

    // then the answer says the outcome is unknown, with Retry-After,
    assert_failure(
        &first,
        StatusCode::SERVICE_UNAVAILABLE,
        "publish_unconfirmed",
    );
    assert!(first.headers.contains_key(http::header::RETRY_AFTER));
    let stored = stored_ids(&name).await;
    assert_eq!(stored.len(), 1, "the first attempt stored the record");

    // and once Kinesis answers again, the retry with the same key is acknowledged under the
    // same id,
    proxy.set_standing(Fault::Forward);
    let retry = post_json_with_key(&router, &uri, "order-1", &body).await;
    assert_eq!(retry.status, StatusCode::OK, "{:?}", retry.body);
    let id = retry.body["id"].as_str().unwrap().to_owned();

    // so the stream holds the event twice, both times as that id: consumers drop one.
    assert_eq!(stored_ids(&name).await, vec![id.clone(), id]);
}
