//! Idempotency keys on DynamoDB (moto): the `IdempotencyStore` contract, and what only this
//! adapter does — races between processes, an expired record that DynamoDB has not deleted
//! yet, answers kept as Binary, answers too large for an item, and `Idempotency-Key` through
//! the API over this store.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use axum::body::Body;
use event_processor_core::Processor;
use event_processor_core::adapters::dynamodb::{
    DynamoDbSchemaStore, EXPIRES_AT_ATTR, MAX_KEPT_BODY, idempotency_partition,
};
use event_processor_core::adapters::memory::MemoryEventStream;
use event_processor_core::domain::{ClientId, EventId, EventName, Fingerprint, IdempotencyKey};
use event_processor_core::http::Api;
use event_processor_core::ports::{Begin, IdempotencyStore, KeptAnswer, SchemaStore};
use event_processor_tests::api::send;
use event_processor_tests::aws::{CallCounter, counted_store, fresh_store, raw_item, sdk_config};
use event_processor_tests::{deadline, event_name, unique_client};
use http::{Request, StatusCode};
use serde_json::json;

event_processor_tests::idempotency_store_contract!(async {
    Arc::new(fresh_store().await) as Arc<dyn IdempotencyStore>
});

fn key(raw: &str) -> IdempotencyKey {
    IdempotencyKey::parse(raw.as_bytes()).unwrap()
}

fn lease() -> SystemTime {
    SystemTime::now() + Duration::from_secs(30)
}

fn pair() -> (ClientId, EventName) {
    (unique_client(), event_name("Fruits"))
}

/// `begin` of key `k` with a fresh event id.
async fn begin(store: &dyn IdempotencyStore, client: &ClientId, event: &EventName) -> Begin {
    store
        .begin(
            client,
            event,
            &key("k"),
            Fingerprint::of("send_event", b"{}", None),
            &[EventId::new()],
            lease(),
            deadline(),
        )
        .await
        .unwrap()
}

/// Twenty `begin`s of one key at once, spread over `stores`.
async fn race(
    stores: &[Arc<dyn IdempotencyStore>],
    client: &ClientId,
    event: &EventName,
) -> Vec<Begin> {
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (store, client, event) = (
                stores[i % stores.len()].clone(),
                client.clone(),
                event.clone(),
            );
            tokio::spawn(async move { begin(store.as_ref(), &client, &event).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    outcomes
}

/// Two stores on one table, each with its own SDK client: two processes' worth.
async fn two_processes() -> Vec<Arc<dyn IdempotencyStore>> {
    let table = fresh_store().await.table().to_owned();
    vec![
        Arc::new(DynamoDbSchemaStore::from_config(
            &sdk_config().await,
            &table,
        )),
        Arc::new(DynamoDbSchemaStore::from_config(
            &sdk_config().await,
            &table,
        )),
    ]
}

#[tokio::test]
async fn twenty_begins_of_one_key_from_two_processes_have_exactly_one_winner() {
    let stores = two_processes().await;
    let (client, event) = pair();

    let outcomes = race(&stores, &client, &event).await;

    let started = outcomes.iter().filter(|o| **o == Begin::Started).count();
    let in_progress = outcomes.iter().filter(|o| **o == Begin::InProgress).count();
    assert_eq!((started, in_progress), (1, 19), "{outcomes:?}");
}

#[tokio::test]
async fn twenty_retries_of_a_released_key_resume_exactly_once_with_the_first_event_ids() {
    let stores = two_processes().await;
    let (client, event) = pair();
    let first_ids = vec![EventId::new(), EventId::new()];
    stores[0]
        .begin(
            &client,
            &event,
            &key("k"),
            Fingerprint::of("send_event", b"{}", None),
            &first_ids,
            lease(),
            deadline(),
        )
        .await
        .unwrap();
    stores[0]
        .release(&client, &event, &key("k"), deadline())
        .await
        .unwrap();

    let outcomes = race(&stores, &client, &event).await;

    let resumed: Vec<&Begin> = outcomes
        .iter()
        .filter(|o| matches!(o, Begin::Resumed { .. }))
        .collect();
    assert_eq!(
        resumed,
        [&Begin::Resumed {
            event_ids: first_ids
        }],
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes.iter().filter(|o| **o == Begin::InProgress).count(),
        19
    );
}

#[tokio::test]
async fn a_held_key_is_answered_from_the_failed_put_itself_without_a_read() {
    let table = fresh_store().await.table().to_owned();
    let reads = CallCounter::get_item();
    let store = counted_store(&table, &reads).await;
    let (client, event) = pair();

    let first = begin(&store, &client, &event).await;
    let second = begin(&store, &client, &event).await;

    assert_eq!((first, second), (Begin::Started, Begin::InProgress));
    assert_eq!(
        reads.count(),
        0,
        "the item came back with the failed condition"
    );
}

#[tokio::test]
async fn an_expired_record_dynamodb_has_not_deleted_yet_is_a_fresh_start() {
    let store = fresh_store().await;
    let (client, event) = pair();
    let past = SystemTime::now() - Duration::from_secs(60);
    let epoch = |at: SystemTime| at.duration_since(UNIX_EPOCH).unwrap().as_secs().to_string();
    // A completed record of another request, past its retention.
    aws_sdk_dynamodb::Client::new(&sdk_config().await)
        .put_item()
        .table_name(store.table())
        .item(
            "client",
            AttributeValue::S(idempotency_partition(&client, &event)),
        )
        .item("event", AttributeValue::S("k".to_owned()))
        .item(
            "fingerprint",
            AttributeValue::B(Blob::new(
                Fingerprint::of("send_event", b"another request", None)
                    .as_bytes()
                    .to_vec(),
            )),
        )
        .item(
            "event_ids",
            AttributeValue::L(vec![AttributeValue::S(EventId::new().to_string())]),
        )
        .item("lease_until", AttributeValue::N("0".to_owned()))
        .item("claim", AttributeValue::S("old".to_owned()))
        .item("status", AttributeValue::N("200".to_owned()))
        .item("body", AttributeValue::B(Blob::new(b"{}".to_vec())))
        .item(EXPIRES_AT_ATTR, AttributeValue::N(epoch(past)))
        .send()
        .await
        .unwrap();

    let first = begin(&store, &client, &event).await;
    let second = begin(&store, &client, &event).await;

    assert_eq!((first, second), (Begin::Started, Begin::InProgress));
}

#[tokio::test]
async fn a_kept_answer_is_binary_and_comes_back_byte_for_byte() {
    let store = fresh_store().await;
    let (client, event) = pair();
    begin(&store, &client, &event).await;
    // Not even UTF-8: the body is kept as bytes, never as text.
    let answer = KeptAnswer {
        status: 207,
        body: (0..=255u8).collect(),
    };

    store
        .complete(&client, &event, &key("k"), &answer, deadline())
        .await
        .unwrap();

    assert_eq!(
        begin(&store, &client, &event).await,
        Begin::Completed(answer.clone())
    );
    let item = raw_item(store.table(), &idempotency_partition(&client, &event), "k")
        .await
        .expect("the key's item");
    assert_eq!(
        item["body"].as_b().unwrap().as_ref(),
        answer.body.as_slice()
    );
    let expires: u64 = item[EXPIRES_AT_ATTR].as_n().unwrap().parse().unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        (now + 24 * 3600 - 5..=now + 24 * 3600).contains(&expires),
        "kept 24 hours from completion: {expires} at {now}"
    );
}

#[tokio::test]
async fn an_answer_too_large_for_an_item_is_not_kept_and_the_key_is_let_go() {
    let store = fresh_store().await;
    let (client, event) = pair();
    let first_ids = vec![EventId::new()];
    store
        .begin(
            &client,
            &event,
            &key("k"),
            Fingerprint::of("send_event", b"{}", None),
            &first_ids,
            lease(),
            deadline(),
        )
        .await
        .unwrap();
    let answer = KeptAnswer {
        status: 207,
        body: vec![b'x'; MAX_KEPT_BODY + 1],
    };

    let kept = store
        .complete(&client, &event, &key("k"), &answer, deadline())
        .await;

    assert!(kept.is_err(), "the caller is told it was not kept");
    assert_eq!(
        begin(&store, &client, &event).await,
        Begin::Resumed {
            event_ids: first_ids
        },
        "the retry runs again at once, under the same event ids"
    );
}

#[tokio::test]
async fn completing_or_releasing_a_key_that_is_gone_writes_nothing() {
    let store = fresh_store().await;
    let (client, event) = pair();

    store
        .complete(
            &client,
            &event,
            &key("k"),
            &KeptAnswer {
                status: 200,
                body: b"{}".to_vec(),
            },
            deadline(),
        )
        .await
        .unwrap();
    store
        .release(&client, &event, &key("k"), deadline())
        .await
        .unwrap();

    assert!(
        raw_item(store.table(), &idempotency_partition(&client, &event), "k")
            .await
            .is_none()
    );
}

#[tokio::test]
async fn a_send_retried_with_its_idempotency_key_gets_the_kept_answer_and_publishes_once() {
    let store = Arc::new(fresh_store().await);
    let stream = MemoryEventStream::new();
    let processor = Processor::new(store.clone(), Arc::new(stream.clone()))
        .with_rejections(store.clone())
        .with_idempotency(store.clone());
    let router = Api::new(processor).router();
    let (client, event) = pair();
    store
        .insert_version(
            &client,
            &event,
            event_processor_core::domain::SchemaVersion::FIRST,
            &json!({"type": "object"}),
            deadline(),
        )
        .await
        .unwrap();
    let request = || {
        Request::post(format!("/{client}/{event}/send_event"))
            .header("content-type", "application/json")
            .header("idempotency-key", "order-42")
            .body(Body::from(r#"{"fruit": "kelp"}"#))
            .unwrap()
    };

    let first = send(&router, request()).await;
    let again = send(&router, request()).await;

    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body, first.body);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(stream.events(&client, &event).len(), 1, "published once");
    assert!(
        raw_item(
            store.table(),
            &idempotency_partition(&client, &event),
            "order-42"
        )
        .await
        .is_some(),
        "kept in DynamoDB"
    );
}
