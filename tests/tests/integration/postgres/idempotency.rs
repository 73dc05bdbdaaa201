//! Idempotency keys on PostgreSQL beyond the contract: the race between gateways, expiry and
//! the purge that needs no job, answers of any bytes, and the HTTP routes over it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use event_processor_core::adapters::memory::MemoryEventStream;
use event_processor_core::domain::{ClientId, EventId, EventName, Fingerprint, IdempotencyKey};
use event_processor_core::http::Api;
use event_processor_core::ports::{Begin, IdempotencyStore, KeptAnswer};
use event_processor_core::processor::Processor;
use event_processor_tests::api::{post_json, send};
use event_processor_tests::postgres::{FreshDatabase, admin, store_at, url};
use event_processor_tests::{deadline, event_name, unique_client};
use http::{Request, StatusCode};
use serde_json::json;

fn key(raw: &str) -> IdempotencyKey {
    IdempotencyKey::parse(raw.as_bytes()).unwrap()
}

fn lease() -> SystemTime {
    SystemTime::now() + Duration::from_secs(30)
}

fn pair() -> (ClientId, EventName) {
    (unique_client(), event_name("Fruits"))
}

/// `count` concurrent begins of one key with one fingerprint, spread over `gateways`, each
/// with ids of its own; what each got, with the ids it offered.
async fn race(
    gateways: &[Arc<dyn IdempotencyStore>],
    (client, event): &(ClientId, EventName),
    count: usize,
) -> Vec<(Begin, Vec<EventId>)> {
    let tasks: Vec<_> = (0..count)
        .map(|i| {
            let store = gateways[i % gateways.len()].clone();
            let (client, event) = (client.clone(), event.clone());
            tokio::spawn(async move {
                let ids = vec![EventId::new()];
                let print = Fingerprint::of("send_event", b"{}", None);
                let begun = store
                    .begin(&client, &event, &key("k"), print, &ids, lease(), deadline())
                    .await
                    .unwrap();
                (begun, ids)
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_requests_through_two_gateways_have_one_winner_then_one_resumes() {
    // Given two gateways, each with its own pool, on one database.
    let gateways: [Arc<dyn IdempotencyStore>; 2] = [
        Arc::new(store_at(&url()).await),
        Arc::new(store_at(&url()).await),
    ];
    let pair = pair();

    // When 20 requests with one key race through both, and after the winner let the key go
    // (a 503), 20 retries race again.
    let first = race(&gateways, &pair, 20).await;
    let winner_ids = first
        .iter()
        .find(|(begun, _)| *begun == Begin::Started)
        .map(|(_, ids)| ids.clone());
    gateways[0]
        .release(&pair.0, &pair.1, &key("k"), deadline())
        .await
        .unwrap();
    let retries = race(&gateways, &pair, 20).await;

    // Then exactly one request ran each time, the retry under the first winner's event ids.
    let count = |outcomes: &[(Begin, Vec<EventId>)], wanted: &Begin| {
        outcomes.iter().filter(|(begun, _)| begun == wanted).count()
    };
    assert_eq!(count(&first, &Begin::Started), 1, "{first:?}");
    assert_eq!(count(&first, &Begin::InProgress), 19, "{first:?}");
    let resumed = Begin::Resumed {
        event_ids: winner_ids.expect("a winner"),
    };
    assert_eq!(count(&retries, &resumed), 1, "{retries:?}");
    assert_eq!(count(&retries, &Begin::InProgress), 19, "{retries:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_whose_retention_ran_out_is_free_for_another_request() {
    // Given a key that answered, and whose record then expired.
    let store: Arc<dyn IdempotencyStore> = Arc::new(store_at(&url()).await);
    let (client, event) = pair();
    let first = Fingerprint::of("send_event", b"{}", None);
    store
        .begin(&client, &event, &key("k"), first, &[], lease(), deadline())
        .await
        .unwrap();
    let answer = KeptAnswer {
        status: 200,
        body: b"{}".to_vec(),
    };
    store
        .complete(&client, &event, &key("k"), &answer, deadline())
        .await
        .unwrap();
    admin()
        .await
        .execute(
            "UPDATE event_processor.idempotency_keys SET expires_at = now() - interval '1 second'
             WHERE client = $1 AND event = $2",
            &[&client.as_str(), &event.as_str()],
        )
        .await
        .unwrap();

    // When another request uses the key.
    let other = Fingerprint::of("send_event", b"[]", None);
    let ids = [EventId::new()];
    let begun = store
        .begin(&client, &event, &key("k"), other, &ids, lease(), deadline())
        .await;
    let concurrent = store
        .begin(&client, &event, &key("k"), other, &[], lease(), deadline())
        .await;

    // Then it runs as the key's first request, not as a reuse, and holds the key.
    assert_eq!(begun.unwrap(), Begin::Started);
    assert_eq!(concurrent.unwrap(), Begin::InProgress);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_deletes_a_bounded_number_of_expired_keys() {
    // Given a database of its own (no other test's requests purge it) with 150 expired keys.
    let db = FreshDatabase::create().await;
    let store: Arc<dyn IdempotencyStore> = Arc::new(store_at(db.url()).await);
    let admin = db.connect().await;
    admin
        .batch_execute(
            "INSERT INTO event_processor.idempotency_keys
                 (client, event, key, fingerprint, event_ids, status, body, lease_until,
                  expires_at)
             SELECT 'Old', 'Fruits', 'k' || n, decode(repeat('00', 32), 'hex'), '{}', 200,
                    '\\x7b7d', now() - interval '25 hours', now() - interval '1 hour'
             FROM generate_series(1, 150) AS n",
        )
        .await
        .unwrap();
    let expired = "SELECT count(*) FROM event_processor.idempotency_keys WHERE client = 'Old'";

    // When two requests with keys begin.
    let (client, event) = pair();
    let mut left = Vec::new();
    for name in ["a", "b"] {
        store
            .begin(
                &client,
                &event,
                &key(name),
                Fingerprint::of("send_event", b"{}", None),
                &[],
                lease(),
                deadline(),
            )
            .await
            .unwrap();
        left.push(
            admin
                .query_one(expired, &[])
                .await
                .unwrap()
                .get::<_, i64>(0),
        );
    }

    // Then each deleted at most a hundred, and together all of them; their own keys stay.
    assert_eq!(left, [50, 0]);
    let own: i64 = admin
        .query_one(
            "SELECT count(*) FROM event_processor.idempotency_keys WHERE client = $1",
            &[&client.as_str()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(own, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_repeated_with_its_key_on_postgresql_is_answered_again_and_published_once() {
    // Given the HTTP API over one PostgreSQL store for schemas, rejections and keys, as the
    // gateway wires it, and a registered pair.
    let store = Arc::new(store_at(&url()).await);
    let stream = MemoryEventStream::new();
    let processor = Processor::new(store.clone(), Arc::new(stream.clone()))
        .with_rejections(store.clone())
        .with_idempotency(store);
    let app = Api::new(processor).router();
    let (client, event) = pair();
    post_json(
        &app,
        &format!("/{client}/{event}/register_event"),
        &json!({}),
    )
    .await;
    let request = || {
        Request::post(format!("/{client}/{event}/send_event"))
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", "order-42")
            .body(Body::from(r#"{"fruit": "apple"}"#))
            .unwrap()
    };

    // When the same request is sent twice.
    let first = send(&app, request()).await;
    let second = send(&app, request()).await;

    // Then the second gets the first's answer, marked as replayed, and one event was published.
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    assert_eq!((second.status, &second.body), (first.status, &first.body));
    assert_eq!(
        second
            .headers
            .get("Idempotent-Replayed")
            .map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    assert_eq!(stream.events(&client, &event).len(), 1);
}
