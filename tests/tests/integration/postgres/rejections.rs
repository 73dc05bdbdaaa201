//! Rejected events on PostgreSQL beyond the contract: expiry after the TTL, the per-pair cap,
//! text PostgreSQL's own text types refuse, a store cut off, and the HTTP routes over it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use event_processor_core::adapters::memory::MemoryEventStream;
use event_processor_core::domain::{ClientId, EventId, EventName};
use event_processor_core::http::Api;
use event_processor_core::ports::{MAX_REJECTIONS_PER_PAIR, Rejection, RejectionStore, StoreError};
use event_processor_core::processor::Processor;
use event_processor_core::retry::Deadline;
use event_processor_core::schema::ValidationIssue;
use event_processor_tests::api::{call, get, post_json};
use event_processor_tests::contract::rejections::rejection;
use event_processor_tests::postgres::{Proxy, admin, server_addr, store_at, url, url_via};
use event_processor_tests::{deadline, event_name, unique_client};
use http::{Method, StatusCode};
use serde_json::json;

/// The store as the gateway holds it: only through the port (`get` and `list` are also the
/// schema store's).
async fn rejections(ttl: Option<Duration>) -> Arc<dyn RejectionStore> {
    let store = store_at(&url()).await;
    Arc::new(match ttl {
        Some(ttl) => store.with_rejections_ttl(ttl),
        None => store,
    })
}

fn pair() -> (ClientId, EventName) {
    (unique_client(), event_name("Fruits"))
}

/// A UUID v7 of the instant `at` (its random bits from a fresh id), as the processor would
/// have given a rejection received then.
fn id_at(at: SystemTime) -> EventId {
    let millis = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let fresh = EventId::new().to_string();
    let hex = format!("{millis:012x}");
    EventId::parse(&format!("{}-{}{}", &hex[..8], &hex[8..], &fresh[13..])).unwrap()
}

/// How many rows of the pair the table holds, expired or not.
async fn rows_of(client: &ClientId, event: &EventName) -> i64 {
    admin()
        .await
        .query_one(
            "SELECT count(*) FROM event_processor.rejections WHERE client = $1 AND event = $2",
            &[&client.as_str(), &event.as_str()],
        )
        .await
        .unwrap()
        .get(0)
}

async fn listed_ids(
    store: &dyn RejectionStore,
    client: &ClientId,
    event: &EventName,
) -> Vec<EventId> {
    store
        .list(client, event, 100_000, None, deadline())
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_older_than_the_ttl_is_never_read_and_the_next_keep_deletes_it() {
    // Given a rejection received two hours ago, kept by a gateway keeping them for a week.
    let (client, event) = pair();
    let mut old = rejection(&client, &event, r#"{"fruit": 7}"#);
    old.id = id_at(SystemTime::now() - Duration::from_secs(2 * 60 * 60));
    let week = rejections(None).await;
    week.keep(std::slice::from_ref(&old), deadline())
        .await
        .unwrap();
    assert_eq!(listed_ids(week.as_ref(), &client, &event).await, [old.id]);

    // When a gateway keeping them for an hour reads the pair, then keeps a new rejection.
    let hour = rejections(Some(Duration::from_secs(60 * 60))).await;
    let listed = listed_ids(hour.as_ref(), &client, &event).await;
    let got = hour.get(&client, &event, old.id, deadline()).await.unwrap();
    let rows_before_keep = rows_of(&client, &event).await;
    let new = rejection(&client, &event, r#"{"fruit": 8}"#);
    hour.keep(std::slice::from_ref(&new), deadline())
        .await
        .unwrap();

    // Then the expired one was never read, stayed only until that keep, which deleted it.
    assert_eq!((listed, got), (vec![], None));
    assert_eq!(rows_before_keep, 1);
    assert_eq!(rows_of(&client, &event).await, 1);
    assert_eq!(listed_ids(week.as_ref(), &client, &event).await, [new.id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_keeps_only_its_newest_rejections_however_many_arrive() {
    // Given a pair with one more rejection than the cap, kept in one go, and another pair.
    let store = rejections(None).await;
    let (client, event) = pair();
    let flood: Vec<Rejection> = (0..MAX_REJECTIONS_PER_PAIR + 1)
        .map(|i| rejection(&client, &event, &format!("{{\"i\": {i}}}")))
        .collect();
    let other = rejection(&client, &event_name("Colors"), "{}");
    store
        .keep(&[flood.clone(), vec![other.clone()]].concat(), deadline())
        .await
        .unwrap();

    // When two more arrive, one request each.
    let later: Vec<Rejection> = (0..2)
        .map(|i| rejection(&client, &event, &format!("{{\"later\": {i}}}")))
        .collect();
    for rejection in &later {
        store
            .keep(std::slice::from_ref(rejection), deadline())
            .await
            .unwrap();
    }

    // Then the table holds the newest MAX_REJECTIONS_PER_PAIR of the pair, not one more; the
    // oldest three are gone; the other pair kept its own.
    let cap = i64::try_from(MAX_REJECTIONS_PER_PAIR).unwrap();
    assert_eq!(rows_of(&client, &event).await, cap);
    let listed = listed_ids(store.as_ref(), &client, &event).await;
    let mut expected: Vec<EventId> = flood[3..].iter().chain(&later).map(|r| r.id).collect();
    expected.reverse();
    assert_eq!(listed, expected);
    let colors = listed_ids(store.as_ref(), &client, &event_name("Colors")).await;
    assert_eq!(colors, [other.id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_and_errors_holding_u0000_read_back_exactly() {
    // PostgreSQL's text and jsonb refuse U+0000; an event's text may hold it anywhere.
    let store = rejections(None).await;
    let (client, event) = pair();
    let mut kept = rejection(
        &client,
        &event,
        "\u{0}{\"fruit\": \"\u{0}\", \"\\u0000\": 7}\u{0}é😀\u{ffff}\u{1}\r\n",
    );
    kept.errors = vec![ValidationIssue {
        instance_path: "/\u{0}".to_owned(),
        schema_path: "/properties/\u{0}/type".to_owned(),
        keyword: "type".to_owned(),
        message: "\"\u{0}\" is not of type \"integer\"; \\u0000 stays six characters".to_owned(),
    }];

    store
        .keep(std::slice::from_ref(&kept), deadline())
        .await
        .unwrap();

    let listed = store.list(&client, &event, 10, None, deadline()).await;
    let got = store.get(&client, &event, kept.id, deadline()).await;
    assert_eq!(listed.unwrap(), [kept.clone()]);
    assert_eq!(got.unwrap(), Some(kept));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeping_on_a_store_cut_off_fails_within_its_deadline() {
    let proxy = Proxy::start(server_addr()).await;
    let store: Arc<dyn RejectionStore> = Arc::new(store_at(&url_via(proxy.addr)).await);
    let (client, event) = pair();
    proxy.cut();

    let started = tokio::time::Instant::now();
    let kept = store
        .keep(
            &[rejection(&client, &event, "{}")],
            Deadline::after(Duration::from_secs(1)),
        )
        .await;

    assert!(matches!(kept, Err(StoreError::Unavailable(_))), "{kept:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_refused_on_postgresql_is_listed_as_sent_and_replayed_once_fixed() {
    // Given the HTTP API over one PostgreSQL store for schemas, rejections and keys, as the
    // gateway wires it, and a pair that wants a string.
    let store = Arc::new(store_at(&url()).await);
    let processor = Processor::new(store.clone(), Arc::new(MemoryEventStream::new()))
        .with_rejections(store.clone())
        .with_idempotency(store);
    let app = Api::new(processor).router();
    let client = unique_client();
    let schema = json!({"properties": {"fruit": {"type": "string"}}});
    post_json(&app, &format!("/{client}/Fruits/register_event"), &schema).await;

    // When a body with a raw U+0000 (not JSON) and an event of the wrong type are refused,
    // then the schema is fixed and the second one is replayed.
    let send = format!("/{client}/Fruits/send_event");
    let raw = "{\"fruit\": \"\u{0}\"}".to_owned();
    let not_json = call(
        &app,
        Method::POST,
        &send,
        Some(("application/json", raw.clone())),
    )
    .await;
    let event = json!({"fruit": 7, "note": "\u{0}"});
    let invalid = post_json(&app, &send, &event).await;
    let listed = get(&app, &format!("/{client}/Fruits/rejected")).await;
    let id = listed.body["rejected"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let fixed = json!({"properties": {"fruit": {"type": ["string", "integer"]}}});
    post_json(&app, &format!("/{client}/Fruits/register_event"), &fixed).await;
    let replay = format!("/{client}/Fruits/rejected/{id}/replay");
    let first = post_json(&app, &replay, &json!({})).await;
    let again = post_json(&app, &replay, &json!({})).await;

    // Then both are listed, newest first, each with the event exactly as sent, and the replay
    // publishes the fixed one under its id, once.
    assert_eq!(
        not_json.status,
        StatusCode::BAD_REQUEST,
        "{:?}",
        not_json.body
    );
    assert_eq!(
        invalid.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        invalid.body
    );
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
    let rejected = &listed.body["rejected"];
    assert_eq!(rejected[0]["error"], "validation_failed");
    assert_eq!(rejected[0]["data"], event.to_string());
    assert_eq!(rejected[1]["error"], "invalid_json");
    assert_eq!(rejected[1]["data"], raw.as_str());
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    assert_eq!(first.body["id"], id.as_str());
    assert_eq!((again.status, &again.body), (first.status, &first.body));
}
