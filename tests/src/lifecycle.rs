//! Rejected events and idempotency keys through the HTTP router, on a real backend (API.md,
//! "Rejected events" and "Idempotency"): the same suite for every schema store backend, each
//! with the stream it is deployed with. A backend's test module instantiates it with
//! [`lifecycle_suite!`](crate::lifecycle_suite) and a constructor of a [`Backend`].
//!
//! What was published is read back from the stream itself: every suite ends its reading with
//! a sentinel event it sends last, so "exactly one record" is checked without waiting for
//! records that might still arrive.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use event_processor_core::domain::{ClientId, EventName};
use event_processor_core::envelope::CloudEvent;
use event_processor_core::ports::{EventSource, StartAt};
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::api::{self, Reply, assert_failure};
use crate::contract::read_events;
use crate::unique_client;

/// A router over a backend's stores and stream, and the stream's read side.
pub struct Backend {
    pub router: Router,
    pub source: Arc<dyn EventSource>,
}

const EVENT: &str = "Fruits";
const SENTINEL: &str = "sentinel";

fn fruits_schema() -> Value {
    json!({"type": "object", "required": ["fruit"], "properties": {"fruit": {"type": "string"}}})
}

/// A pair registered with [`fruits_schema`].
async fn registered(backend: &Backend) -> ClientId {
    let client = unique_client();
    let reply = api::post_json(
        &backend.router,
        &format!("/{client}/{EVENT}/register_event"),
        &fruits_schema(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    client
}

fn uri(client: &ClientId, route: &str) -> String {
    format!("/{client}/{EVENT}/{route}")
}

/// A raw POST with headers, and the answer's status, headers and exact body bytes.
async fn post_raw(
    router: &Router,
    uri: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, http::HeaderMap, Vec<u8>) {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(http::header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes().to_vec();
    (parts.status, parts.headers, bytes)
}

/// A POST with an `Idempotency-Key`, through the checks every answer gets.
async fn post_with_key(router: &Router, uri: &str, body: &str, key: &str) -> Reply {
    let request = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header("idempotency-key", key)
        .body(Body::from(body.to_owned()))
        .unwrap();
    api::send(router, request).await
}

/// Every event published to the pair, in order, up to the sentinel this sends last.
async fn published(backend: &Backend, client: &ClientId) -> Vec<CloudEvent> {
    let event = EventName::parse(EVENT).unwrap();
    let mut subscription = backend
        .source
        .subscribe(client, &event, StartAt::Beginning)
        .await
        .expect("subscribe");
    let reply = api::post_json(
        &backend.router,
        &uri(client, "send_event"),
        &json!({"fruit": SENTINEL}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let mut events = Vec::new();
    loop {
        for event in read_events(subscription.as_mut(), 1).await {
            if event.data["fruit"] == SENTINEL {
                return events;
            }
            events.push(event);
        }
    }
}

async fn rejected(backend: &Backend, client: &ClientId, query: &str) -> Reply {
    let reply = api::get(
        &backend.router,
        &format!("{}{query}", uri(client, "rejected")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply
}

async fn replay(backend: &Backend, client: &ClientId, id: &str) -> Reply {
    let request = Request::builder()
        .method(Method::POST)
        .uri(uri(client, &format!("rejected/{id}/replay")))
        .body(Body::empty())
        .unwrap();
    api::send(&backend.router, request).await
}

/// Registers the next version of the pair: `fruit` may also be a number (BACKWARD compatible).
async fn accept_numbers(backend: &Backend, client: &ClientId) {
    let schema = json!({
        "type": "object",
        "required": ["fruit"],
        "properties": {"fruit": {"type": ["string", "number"]}}
    });
    let reply = api::post_json(&backend.router, &uri(client, "register_event"), &schema).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
}

pub async fn an_invalid_event_is_kept_as_a_rejection_with_every_field(backend: Backend) {
    let client = registered(&backend).await;
    let body = r#"{"fruit": 7}"#;
    let request = Request::builder()
        .method(Method::POST)
        .uri(uri(&client, "send_event"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .header("x-request-id", "req-42")
        .body(Body::from(body))
        .unwrap();
    let answer = api::send(&backend.router, request).await;
    assert_failure(
        &answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );

    let page = rejected(&backend, &client, "").await;
    let list = page.body["rejected"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{}", page.body);
    let rejection = &list[0];
    assert_eq!(rejection["client"], client.as_str());
    assert_eq!(rejection["event"], EVENT);
    assert_eq!(rejection["version"], 1);
    assert_eq!(rejection["request_id"], "req-42");
    assert_eq!(rejection["error"], "validation_failed");
    assert_eq!(rejection["errors"], answer.body["errors"]);
    assert_eq!(rejection["data"], body, "the event as received, as text");
    assert_eq!(rejection["truncated"], false);
    assert!(rejection["received_at"].as_str().unwrap().ends_with('Z'));
    let id = rejection["id"].as_str().unwrap();
    assert_eq!(uuid_version(id), Some('7'), "{id}");
    assert_eq!(page.body["next"], Value::Null);
    assert!(published(&backend, &client).await.is_empty());
}

fn uuid_version(id: &str) -> Option<char> {
    id.chars().nth(14)
}

pub async fn invalid_json_is_kept_for_a_registered_pair_only(backend: Backend) {
    let client = registered(&backend).await;
    let (status, _, _) = post_raw(&backend.router, &uri(&client, "send_event"), "{oops", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = post_raw(&backend.router, &uri(&client, "send_events"), "[1,", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let page = rejected(&backend, &client, "").await;
    let list = page.body["rejected"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{}", page.body);
    // Newest first.
    assert_eq!(list[0]["data"], "[1,");
    assert_eq!(list[1]["data"], "{oops");
    for rejection in list {
        assert_eq!(rejection["error"], "invalid_json");
        assert_eq!(rejection["version"], Value::Null);
    }

    let stranger = unique_client();
    let (status, _, _) =
        post_raw(&backend.router, &uri(&stranger, "send_event"), "{oops", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Nothing was kept for a pair that does not exist, and it has no rejections to list.
    let page = api::get(&backend.router, &uri(&stranger, "rejected")).await;
    assert_failure(&page, StatusCode::NOT_FOUND, "event_not_registered");
}

pub async fn each_refused_item_of_a_batch_is_kept_as_sent(backend: Backend) {
    let client = registered(&backend).await;
    // Spacing, key order and a number no float can hold: the text kept is the client's own.
    let batch =
        r#"[{"fruit": "kiwi"}, {"fruit": 12345678901234567890123},  {"color" : "red", "a": 1}]"#;
    let (status, _, _) = post_raw(&backend.router, &uri(&client, "send_events"), batch, &[]).await;
    assert_eq!(status, StatusCode::MULTI_STATUS);

    let page = rejected(&backend, &client, "").await;
    let mut data: Vec<&str> = page.body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["data"].as_str().unwrap())
        .collect();
    data.sort();
    assert_eq!(
        data,
        [
            r#"{"color" : "red", "a": 1}"#,
            r#"{"fruit": 12345678901234567890123}"#
        ],
        "{}",
        page.body
    );
    assert_eq!(published(&backend, &client).await.len(), 1);
}

pub async fn rejections_are_listed_newest_first_and_paged(backend: Backend) {
    let client = registered(&backend).await;
    for n in 0..5 {
        let reply = api::post_json(
            &backend.router,
            &uri(&client, "send_event"),
            &json!({"fruit": n}),
        )
        .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let mut seen = Vec::new();
    let mut query = "?limit=2".to_owned();
    loop {
        let page = rejected(&backend, &client, &query).await;
        let list = page.body["rejected"].as_array().unwrap().clone();
        assert!(list.len() <= 2, "{}", page.body);
        seen.extend(list.iter().map(|r| r["data"].as_str().unwrap().to_owned()));
        match page.body["next"].as_str() {
            Some(next) => query = format!("?limit=2&before={next}"),
            None => break,
        }
    }
    let expected: Vec<String> = (0..5)
        .rev()
        .map(|n| format!(r#"{{"fruit":{n}}}"#))
        .collect();
    assert_eq!(seen, expected);

    for bad in [
        "?limit=0",
        "?limit=1001",
        "?limit=x",
        "?before=nope",
        "?limit=1&limit=2",
    ] {
        let reply = api::get(
            &backend.router,
            &format!("{}{bad}", uri(&client, "rejected")),
        )
        .await;
        assert_failure(&reply, StatusCode::BAD_REQUEST, "invalid_query");
    }
}

/// The id of the pair's only rejection.
async fn only_rejection(backend: &Backend, client: &ClientId) -> String {
    let page = rejected(backend, client, "").await;
    let list = page.body["rejected"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{}", page.body);
    list[0]["id"].as_str().unwrap().to_owned()
}

pub async fn a_rejection_is_replayed_once_under_its_own_id(backend: Backend) {
    let client = registered(&backend).await;
    let reply = api::post_json(
        &backend.router,
        &uri(&client, "send_event"),
        &json!({"fruit": 7}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let id = only_rejection(&backend, &client).await;

    let still = replay(&backend, &client, &id).await;
    assert_failure(
        &still,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );

    accept_numbers(&backend, &client).await;
    let first = replay(&backend, &client, &id).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.body["id"], id.as_str());
    assert_eq!(first.body["version"], 2);
    let again = replay(&backend, &client, &id).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body, first.body, "the same answer");

    let events = published(&backend, &client).await;
    assert_eq!(events.len(), 1, "published once: {events:?}");
    assert_eq!(events[0].id, id);
    assert_eq!(events[0].data, json!({"fruit": 7}));
    assert_eq!(
        events[0].dataschema,
        format!("/{client}/{EVENT}/schema?version=2")
    );
}

pub async fn concurrent_replays_publish_exactly_once(backend: Backend) {
    let client = registered(&backend).await;
    api::post_json(
        &backend.router,
        &uri(&client, "send_event"),
        &json!({"fruit": 7}),
    )
    .await;
    let id = only_rejection(&backend, &client).await;
    accept_numbers(&backend, &client).await;

    let replays = (0..10).map(|_| {
        let router = backend.router.clone();
        let uri = uri(&client, &format!("rejected/{id}/replay"));
        tokio::spawn(async move {
            let request = Request::builder()
                .method(Method::POST)
                .uri(uri)
                .body(Body::empty())
                .unwrap();
            api::send(&router, request).await
        })
    });
    let answers = futures_join(replays).await;
    let ok = answers
        .iter()
        .filter(|a| a.status == StatusCode::OK)
        .count();
    for answer in &answers {
        match answer.status {
            StatusCode::OK => assert_eq!(answer.body["id"], id.as_str()),
            _ => assert_failure(answer, StatusCode::CONFLICT, "request_in_progress"),
        }
    }
    assert!(ok >= 1, "at least the winner answers 200");
    let events = published(&backend, &client).await;
    assert_eq!(events.len(), 1, "exactly one record: {events:?}");
    assert_eq!(events[0].id, id);
}

async fn futures_join<T: Send + 'static>(
    tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut results = Vec::new();
    for task in tasks.collect::<Vec<_>>() {
        results.push(task.await.expect("task"));
    }
    results
}

pub async fn a_truncated_rejection_is_not_replayable_and_unknown_ids_are_404(backend: Backend) {
    let client = registered(&backend).await;
    let big = json!({"fruit": 1, "pad": "x".repeat(70 * 1024)});
    let reply = api::post_json(&backend.router, &uri(&client, "send_event"), &big).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let page = rejected(&backend, &client, "").await;
    let rejection = &page.body["rejected"][0];
    assert_eq!(rejection["truncated"], true);
    assert_eq!(rejection["data"].as_str().unwrap().len(), 64 * 1024);
    let id = rejection["id"].as_str().unwrap().to_owned();
    accept_numbers(&backend, &client).await;

    assert_failure(
        &replay(&backend, &client, &id).await,
        StatusCode::CONFLICT,
        "not_replayable",
    );
    let unknown = event_processor_core::domain::EventId::new().to_string();
    assert_failure(
        &replay(&backend, &client, &unknown).await,
        StatusCode::NOT_FOUND,
        "rejection_not_found",
    );
    // Another pair's rejection is unknown here.
    let other = unique_client();
    assert_failure(
        &replay(&backend, &other, &id).await,
        StatusCode::NOT_FOUND,
        "rejection_not_found",
    );
    assert_failure(
        &replay(&backend, &client, "not-a-uuid").await,
        StatusCode::BAD_REQUEST,
        "invalid_rejection_id",
    );
    assert!(published(&backend, &client).await.is_empty());
}

pub async fn the_same_key_twice_publishes_once_and_replays_the_answer(backend: Backend) {
    let client = registered(&backend).await;
    let send = uri(&client, "send_event");
    let body = r#"{"fruit": "kiwi"}"#;
    let key = [("idempotency-key", "order-42")];

    let (status, headers, first) = post_raw(&backend.router, &send, body, &key).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get("idempotent-replayed").is_none());
    let (status, headers, second) = post_raw(&backend.router, &send, body, &key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(second, first, "byte-identical body");
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(headers[http::header::CONTENT_TYPE], "application/json");

    let answer: Value = serde_json::from_slice(&first).unwrap();
    let events = published(&backend, &client).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].id, answer["id"].as_str().unwrap());

    // Another body, or another version, under the key: refused.
    let reused = post_with_key(&backend.router, &send, r#"{"fruit": "fig"}"#, "order-42").await;
    assert_failure(
        &reused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    );
    let versioned = post_with_key(
        &backend.router,
        &format!("{send}?version=1"),
        body,
        "order-42",
    )
    .await;
    assert_failure(
        &versioned,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    );
}

pub async fn final_refusals_are_kept_for_the_key_too(backend: Backend) {
    let client = registered(&backend).await;
    let send = uri(&client, "send_event");
    let key = [("idempotency-key", "bad-1")];
    let (status, _, first) = post_raw(&backend.router, &send, r#"{"fruit": 1}"#, &key).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, headers, second) = post_raw(&backend.router, &send, r#"{"fruit": 1}"#, &key).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(second, first);
    assert_eq!(headers["idempotent-replayed"], "true");
    let kept = rejected(&backend, &client, "").await;
    assert_eq!(
        kept.body["rejected"].as_array().unwrap().len(),
        1,
        "one rejection, not two"
    );

    let batch = uri(&client, "send_events");
    let body = r#"[{"fruit": "kiwi"}, {"fruit": 2}]"#;
    let key = [("idempotency-key", "batch-1")];
    let (status, _, first) = post_raw(&backend.router, &batch, body, &key).await;
    assert_eq!(status, StatusCode::MULTI_STATUS);
    let (status, headers, second) = post_raw(&backend.router, &batch, body, &key).await;
    assert_eq!(status, StatusCode::MULTI_STATUS);
    assert_eq!(second, first);
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(published(&backend, &client).await.len(), 1);
}

pub async fn malformed_keys_are_400(backend: Backend) {
    let client = registered(&backend).await;
    let long = "k".repeat(256);
    for key in ["", " ", "two words", long.as_str()] {
        let reply = post_with_key(
            &backend.router,
            &uri(&client, "send_event"),
            r#"{"fruit": "kiwi"}"#,
            key,
        )
        .await;
        assert_failure(&reply, StatusCode::BAD_REQUEST, "invalid_idempotency_key");
    }
    // Not ASCII: a header value of raw UTF-8 bytes.
    let request = Request::builder()
        .method(Method::POST)
        .uri(uri(&client, "send_events"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(
            "idempotency-key",
            http::HeaderValue::from_bytes("clé".as_bytes()).unwrap(),
        )
        .body(Body::from(r#"[{"fruit": "kiwi"}]"#))
        .unwrap();
    let reply = api::send(&backend.router, request).await;
    assert_failure(&reply, StatusCode::BAD_REQUEST, "invalid_idempotency_key");
    assert!(published(&backend, &client).await.is_empty());
}

pub async fn concurrent_requests_with_one_key_publish_once(backend: Backend) {
    let client = registered(&backend).await;
    let tasks = (0..20).map(|_| {
        let router = backend.router.clone();
        let send = uri(&client, "send_event");
        tokio::spawn(async move {
            post_with_key(&router, &send, r#"{"fruit": "kiwi"}"#, "same-key").await
        })
    });
    let answers = futures_join(tasks).await;
    let mut ids = std::collections::BTreeSet::new();
    for answer in &answers {
        match answer.status {
            StatusCode::OK => {
                ids.insert(answer.body["id"].as_str().unwrap().to_owned());
            }
            _ => {
                assert_failure(answer, StatusCode::CONFLICT, "request_in_progress");
            }
        }
    }
    assert_eq!(ids.len(), 1, "one id across every 200: {ids:?}");
    let events = published(&backend, &client).await;
    assert_eq!(events.len(), 1, "exactly one record: {events:?}");
    assert_eq!(Some(&events[0].id), ids.first());
}

pub async fn keys_are_scoped_to_their_pair(backend: Backend) {
    let (a, b) = (registered(&backend).await, registered(&backend).await);
    let body = r#"{"fruit": "kiwi"}"#;
    let first = post_with_key(&backend.router, &uri(&a, "send_event"), body, "k").await;
    let second = post_with_key(&backend.router, &uri(&b, "send_event"), body, "k").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(second.status, StatusCode::OK);
    assert!(second.headers.get("idempotent-replayed").is_none());
    assert_ne!(first.body["id"], second.body["id"]);
}

/// Instantiates the suite: `$make` evaluates to a future of a [`Backend`].
#[macro_export]
macro_rules! lifecycle_suite {
    ($make:expr) => {
        $crate::lifecycle_suite!(@tests $make;
            an_invalid_event_is_kept_as_a_rejection_with_every_field,
            invalid_json_is_kept_for_a_registered_pair_only,
            each_refused_item_of_a_batch_is_kept_as_sent,
            rejections_are_listed_newest_first_and_paged,
            a_rejection_is_replayed_once_under_its_own_id,
            concurrent_replays_publish_exactly_once,
            a_truncated_rejection_is_not_replayable_and_unknown_ids_are_404,
            the_same_key_twice_publishes_once_and_replays_the_answer,
            final_refusals_are_kept_for_the_key_too,
            malformed_keys_are_400,
            concurrent_requests_with_one_key_publish_once,
            keys_are_scoped_to_their_pair,
        );
    };
    (@tests $make:expr; $($name:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::lifecycle::$name($make.await).await;
            }
        )*
    };
}
