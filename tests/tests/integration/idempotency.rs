//! Idempotency keys at the edges the backend-generic suite (event_processor_tests::lifecycle)
//! cannot reach: a key held by a request still running, a request that stopped without
//! finishing, and a publish whose answer was lost. On the memory adapters, with a stream that
//! loses answers on purpose.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use axum::body::Body;
use event_processor_core::Processor;
use event_processor_core::adapters::memory::{MemoryEventStream, MemorySchemaStore};
use event_processor_core::domain::{EventId, Fingerprint, IdempotencyKey};
use event_processor_core::envelope::Envelope;
use event_processor_core::http::Api;
use event_processor_core::ports::{Begin, EventStream, IdempotencyStore, StreamError, cause};
use event_processor_core::retry::Deadline;
use event_processor_tests::api::{self, Reply, assert_failure};
use event_processor_tests::{deadline, event_name, unique_client};
use http::{Method, Request, StatusCode};
use serde_json::json;

/// A stream that stores every event but loses the answer of the first `lose` publishes: the
/// outcome a client sees is "unknown", the event is in the stream.
struct LosesAnswers {
    inner: MemoryEventStream,
    lose: AtomicUsize,
}

#[derive(Debug, thiserror::Error)]
#[error("the connection closed after the request was written")]
struct AnswerLost;

#[async_trait]
impl EventStream for LosesAnswers {
    async fn publish(&self, event: &Envelope, deadline: Deadline) -> Result<(), StreamError> {
        self.inner.publish(event, deadline).await?;
        let lost = self
            .lose
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if lost {
            return Err(StreamError::Unconfirmed(cause(AnswerLost)));
        }
        Ok(())
    }
}

struct Fixture {
    router: axum::Router,
    store: Arc<MemorySchemaStore>,
    stream: MemoryEventStream,
}

fn fixture(lose: usize) -> Fixture {
    let store = Arc::new(MemorySchemaStore::new());
    let stream = MemoryEventStream::new();
    let flaky = LosesAnswers {
        inner: stream.clone(),
        lose: AtomicUsize::new(lose),
    };
    let processor = Processor::new(store.clone(), Arc::new(flaky))
        .with_rejections(store.clone())
        .with_idempotency(store.clone());
    Fixture {
        router: Api::new(processor).router(),
        store,
        stream,
    }
}

async fn send(f: &Fixture, uri: &str, body: &str, key: &str) -> Reply {
    let request = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header("idempotency-key", key)
        .body(Body::from(body.to_owned()))
        .unwrap();
    api::send(&f.router, request).await
}

async fn register(f: &Fixture, client: &str) {
    let reply = api::post_json(
        &f.router,
        &format!("/{client}/Fruits/register_event"),
        &json!({"required": ["fruit"]}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED);
}

#[tokio::test]
async fn a_lost_answer_is_503_publish_unconfirmed_and_the_retry_reuses_the_event_id() {
    let f = fixture(1);
    let client = unique_client();
    register(&f, client.as_str()).await;
    let uri = format!("/{client}/Fruits/send_event");
    let body = r#"{"fruit": "kiwi"}"#;

    let first = send(&f, &uri, body, "retry-me").await;
    assert_failure(
        &first,
        StatusCode::SERVICE_UNAVAILABLE,
        "publish_unconfirmed",
    );
    assert!(first.headers.contains_key(http::header::RETRY_AFTER));
    let retry = send(&f, &uri, body, "retry-me").await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.body);

    // The event reached the stream twice, under one id: a consumer drops the duplicate.
    let events = f.stream.events(&client, &event_name("Fruits"));
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].id, events[1].id);
    assert_eq!(retry.body["id"], events[0].id.as_str());
}

#[tokio::test]
async fn a_lost_answer_in_a_batch_names_the_ids_and_the_retry_reuses_them() {
    let f = fixture(2);
    let client = unique_client();
    register(&f, client.as_str()).await;
    let uri = format!("/{client}/Fruits/send_events");
    let body = r#"[{"fruit": "kiwi"}, {"fruit": "fig"}]"#;

    let first = send(&f, &uri, body, "batch").await;
    assert_failure(
        &first,
        StatusCode::SERVICE_UNAVAILABLE,
        "publish_unconfirmed",
    );
    let unconfirmed: Vec<&str> = first.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["error"], "publish_unconfirmed");
            r["id"].as_str().unwrap()
        })
        .collect();
    let retry = send(&f, &uri, body, "batch").await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.body);
    let retried: Vec<&str> = retry.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(retried, unconfirmed, "item i keeps its id");
}

fn key(raw: &str) -> IdempotencyKey {
    IdempotencyKey::parse(raw.as_bytes()).unwrap()
}

#[tokio::test]
async fn a_key_held_by_a_running_request_is_409_with_retry_after() {
    let f = fixture(0);
    let client = unique_client();
    register(&f, client.as_str()).await;
    let body = r#"{"fruit": "kiwi"}"#;
    let begun = f
        .store
        .begin(
            &client,
            &event_name("Fruits"),
            &key("busy"),
            Fingerprint::of("/{client}/{event}/send_event", body.as_bytes(), None),
            &[EventId::new()],
            SystemTime::now() + Duration::from_secs(60),
            deadline(),
        )
        .await
        .unwrap();
    assert_eq!(begun, Begin::Started);

    let reply = send(&f, &format!("/{client}/Fruits/send_event"), body, "busy").await;

    assert_failure(&reply, StatusCode::CONFLICT, "request_in_progress");
    assert!(reply.headers.contains_key(http::header::RETRY_AFTER));
    assert!(f.stream.events(&client, &event_name("Fruits")).is_empty());
}

#[tokio::test]
async fn a_request_that_stopped_without_finishing_does_not_hold_its_key_past_its_deadline() {
    let f = fixture(0);
    let client = unique_client();
    register(&f, client.as_str()).await;
    let body = r#"{"fruit": "kiwi"}"#;
    let first_attempt = EventId::new();
    // An instance took the key and stopped: its lease (its request's deadline) is over.
    f.store
        .begin(
            &client,
            &event_name("Fruits"),
            &key("crashed"),
            Fingerprint::of("/{client}/{event}/send_event", body.as_bytes(), None),
            &[first_attempt],
            SystemTime::now() - Duration::from_secs(1),
            deadline(),
        )
        .await
        .unwrap();

    let reply = send(&f, &format!("/{client}/Fruits/send_event"), body, "crashed").await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.body["id"],
        first_attempt.to_string(),
        "the first attempt's id"
    );
}
