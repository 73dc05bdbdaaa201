//! The HTTP layer, driven in-process with `oneshot` on the memory adapters: one test per
//! behaviour of API.md, with JSON and form bodies. Every response must be JSON (the shared
//! request helper checks it on every call).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use event_processor_core::Processor;
use event_processor_core::adapters::memory::{MemoryEventStream, MemorySchemaStore};
use event_processor_core::domain::{ClientId, EventName};
use event_processor_core::http::Api;
use event_processor_tests::api::{self, Reply, assert_failure};
use futures::StreamExt;
use serde_json::{Value, json};

const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";

pub(crate) struct Gateway {
    pub router: Router,
    pub stream: MemoryEventStream,
    pub store: Arc<MemorySchemaStore>,
}

pub(crate) fn gateway() -> Gateway {
    let store = Arc::new(MemorySchemaStore::new());
    let stream = MemoryEventStream::new();
    let processor = Processor::new(store.clone(), Arc::new(stream.clone()));
    Gateway {
        router: Api::new(processor).router(),
        stream,
        store,
    }
}

impl Gateway {
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        content_type: Option<&str>,
        body: impl Into<Body>,
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        api::send(&self.router, request.body(body.into()).unwrap()).await
    }

    pub async fn post_json(&self, uri: &str, body: &Value) -> Reply {
        api::post_json(&self.router, uri, body).await
    }

    pub async fn post_form(&self, uri: &str, field: &str, json_text: &str) -> Reply {
        api::post_form(&self.router, uri, &[(field, json_text)]).await
    }

    pub async fn get(&self, uri: &str) -> Reply {
        api::get(&self.router, uri).await
    }

    pub async fn register(&self, client: &str, event: &str, schema: &Value) -> Reply {
        self.post_json(&format!("/{client}/{event}/register_event"), schema)
            .await
    }

    pub fn published(&self, client: &str, event: &str) -> Vec<Value> {
        let (client, event) = (
            ClientId::parse(client).unwrap(),
            EventName::parse(event).unwrap(),
        );
        self.stream
            .events(&client, &event)
            .into_iter()
            .map(|e| e.data)
            .collect()
    }
}

pub(crate) fn person_schema() -> Value {
    json!({
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": false
    })
}

// ---- 201 / 200: registration -------------------------------------------------------------

#[tokio::test]
async fn registering_a_new_pair_with_a_json_body_is_201_version_1() {
    let gw = gateway();
    let reply = gw.register("SpongeBob", "Fruits", &person_schema()).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(
        reply.body,
        json!({"code": "SUCCEEDED", "msg": "event registered", "client": "SpongeBob", "event": "Fruits", "version": 1})
    );
}

#[tokio::test]
async fn registering_a_new_pair_with_a_form_body_is_201() {
    let gw = gateway();
    let reply = gw
        .post_form(
            "/SpongeBob/Fruits/register_event",
            "event_schema",
            &person_schema().to_string(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.body["version"], 1);
}

#[tokio::test]
async fn registering_the_identical_schema_again_is_200_with_the_same_body() {
    let gw = gateway();
    gw.register("SpongeBob", "Fruits", &person_schema()).await;
    // Same JSON value, different key order and whitespace, sent as a form.
    let reordered = r#"{ "additionalProperties": false, "required": ["name","age"],
        "properties": {"age": {"type": "integer"}, "name": {"type": "string"}}, "type": "object" }"#;
    let reply = gw
        .post_form(
            "/SpongeBob/Fruits/register_event",
            "event_schema",
            reordered,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["msg"], "event registered");
    assert_eq!(reply.body["version"], 1);
}

#[tokio::test]
async fn registering_an_incompatible_schema_for_a_registered_pair_is_409() {
    let gw = gateway();
    gw.register("SpongeBob", "Fruits", &person_schema()).await;
    let reply = gw
        .register("SpongeBob", "Fruits", &json!({"type": "array"}))
        .await;
    assert_failure(&reply, StatusCode::CONFLICT, "schema_incompatible");
}

#[tokio::test]
async fn an_invalid_schema_is_400_with_the_reasons() {
    let gw = gateway();
    let reply = gw
        .register("SpongeBob", "Fruits", &json!({"type": "random_type"}))
        .await;
    assert_failure(&reply, StatusCode::BAD_REQUEST, "invalid_schema");
    assert_eq!(reply.body["errors"][0]["instance_path"], "/type");
    assert!(gw.get("/SpongeBob/Fruits/schema").await.status == StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_invalid_schema_in_a_form_is_400() {
    let gw = gateway();
    let reply = gw
        .post_form(
            "/SpongeBob/Fruits/register_event",
            "event_schema",
            r#"{"type":"random_type"}"#,
        )
        .await;
    assert_failure(&reply, StatusCode::BAD_REQUEST, "invalid_schema");
}

#[tokio::test]
async fn a_schema_with_an_unresolvable_ref_is_400() {
    let gw = gateway();
    for schema in [
        json!({"$ref": "#/$defs/missing"}),
        json!({"$ref": "http://169.254.169.254/latest"}),
    ] {
        let reply = gw.register("SpongeBob", "Fruits", &schema).await;
        assert_failure(&reply, StatusCode::BAD_REQUEST, "invalid_schema");
    }
}

// ---- 200: send, get, list ----------------------------------------------------------------

#[tokio::test]
async fn a_valid_json_event_is_200_with_its_id_and_published() {
    let gw = gateway();
    gw.register("SpongeBob", "People", &person_schema()).await;
    let reply = gw
        .post_json(
            "/SpongeBob/People/send_event",
            &json!({"name": "Bob", "age": 3}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["msg"], "event sent");
    let id = reply.body["id"].as_str().unwrap();
    let id = event_processor_core::domain::EventId::parse(id).expect("a UUID");
    assert_eq!(id.as_uuid().get_version_num(), 7);
    assert_eq!(
        gw.published("SpongeBob", "People"),
        vec![json!({"name": "Bob", "age": 3})]
    );
}

#[tokio::test]
async fn a_valid_form_event_is_200_and_published() {
    let gw = gateway();
    gw.register("SpongeBob", "People", &person_schema()).await;
    let reply = gw
        .post_form(
            "/SpongeBob/People/send_event",
            "event",
            r#"{"name":"Bob","age":3}"#,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(gw.published("SpongeBob", "People").len(), 1);
}

#[tokio::test]
async fn the_registered_schema_is_recovered_with_its_version() {
    let gw = gateway();
    gw.register("SpongeBob", "People", &person_schema()).await;
    let reply = gw.get("/SpongeBob/People/schema").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["msg"], "schema recovered");
    assert_eq!(reply.body["schema"], person_schema());
    assert_eq!(reply.body["version"], 1);
}

#[tokio::test]
async fn listing_shows_only_that_clients_events_sorted_by_name() {
    let gw = gateway();
    gw.register("a", "Zebra", &json!({})).await;
    gw.register("a", "Apple", &json!({})).await;
    gw.register("b", "Banana", &json!({})).await;
    let reply = gw.get("/a/list_events").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body["events"],
        json!([{"client": "a", "event": "Apple", "version": 1}, {"client": "a", "event": "Zebra", "version": 1}])
    );
}

#[tokio::test]
async fn an_unknown_client_lists_no_events() {
    let gw = gateway();
    let reply = gw.get("/nobody/list_events").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["events"], json!([]));
}

// ---- 400 ---------------------------------------------------------------------------------

#[tokio::test]
async fn malformed_names_are_400() {
    let gw = gateway();
    let long = "x".repeat(65);
    for path in [
        "/Sponge.Bob/Fruits/send_event".to_owned(),
        "/SpongeBob/%2e%2e/send_event".to_owned(),
        "/SpongeBob/Fr%C3%BCits/send_event".to_owned(),
        "/SpongeBob/a%00b/send_event".to_owned(),
        "/SpongeBob/a%20b/send_event".to_owned(),
        format!("/{long}/Fruits/send_event"),
        format!("/SpongeBob/{long}/send_event"),
    ] {
        let reply = gw.call(Method::POST, &path, Some(JSON), "{}").await;
        assert_failure(&reply, StatusCode::BAD_REQUEST, "invalid_name");
    }
    let reply = gw.get("/Sponge.Bob/list_events").await;
    assert_failure(&reply, StatusCode::BAD_REQUEST, "invalid_name");
}

#[tokio::test]
async fn a_path_that_is_not_utf8_is_400() {
    let gw = gateway();
    let reply = gw
        .call(Method::POST, "/SpongeBob/%FF/send_event", Some(JSON), "{}")
        .await;
    assert_failure(&reply, StatusCode::BAD_REQUEST, "invalid_path");
}

#[tokio::test]
async fn a_body_that_is_not_json_is_400() {
    let gw = gateway();
    gw.register("SpongeBob", "People", &person_schema()).await;
    for body in [
        "",
        "{",
        r#"{"name": "Bob"} trailing"#,
        "\u{feff}{}",
        "nul\0",
    ] {
        let reply = gw
            .call(
                Method::POST,
                "/SpongeBob/People/send_event",
                Some(JSON),
                body,
            )
            .await;
        assert_failure(&reply, StatusCode::BAD_REQUEST, "invalid_json");
    }
    let invalid_utf8 = vec![b'"', 0xff, 0xfe, b'"'];
    let reply = gw
        .call(
            Method::POST,
            "/SpongeBob/People/send_event",
            Some(JSON),
            invalid_utf8,
        )
        .await;
    assert_failure(&reply, StatusCode::BAD_REQUEST, "invalid_json");
    let reply = gw
        .call(
            Method::POST,
            "/SpongeBob/People/register_event",
            Some(JSON),
            "not json",
        )
        .await;
    assert_failure(&reply, StatusCode::BAD_REQUEST, "invalid_json");
}

#[tokio::test]
async fn a_form_field_that_is_not_json_is_400() {
    let gw = gateway();
    gw.register("SpongeBob", "People", &person_schema()).await;
    let reply = gw
        .post_form("/SpongeBob/People/send_event", "event", "{not json")
        .await;
    assert_failure(&reply, StatusCode::BAD_REQUEST, "invalid_json");
}

#[tokio::test]
async fn a_missing_form_field_is_400_naming_it() {
    let gw = gateway();
    gw.register("SpongeBob", "People", &person_schema()).await;
    let reply = gw
        .post_form("/SpongeBob/People/send_event", "evnt", "{}")
        .await;
    assert_failure(&reply, StatusCode::BAD_REQUEST, "missing_form_field");
    assert!(reply.body["msg"].as_str().unwrap().contains("`event`"));
    let reply = gw
        .post_form("/SpongeBob/People/register_event", "schema", "{}")
        .await;
    assert_failure(&reply, StatusCode::BAD_REQUEST, "missing_form_field");
    assert!(
        reply.body["msg"]
            .as_str()
            .unwrap()
            .contains("`event_schema`")
    );
}

#[tokio::test]
async fn a_form_field_given_twice_is_400() {
    let gw = gateway();
    let reply = gw
        .call(
            Method::POST,
            "/SpongeBob/People/send_event",
            Some(FORM),
            "event=%7B%7D&event=%5B%5D",
        )
        .await;
    assert_failure(&reply, StatusCode::BAD_REQUEST, "duplicate_form_field");
}

#[tokio::test]
async fn a_form_whose_percent_encoding_is_not_utf8_is_400() {
    let gw = gateway();
    let reply = gw
        .call(
            Method::POST,
            "/SpongeBob/People/send_event",
            Some(FORM),
            "event=%22%FF%22",
        )
        .await;
    assert_failure(&reply, StatusCode::BAD_REQUEST, "invalid_form");
}

// ---- 404 / 405 ---------------------------------------------------------------------------

#[tokio::test]
async fn sending_to_an_unregistered_pair_is_404() {
    let gw = gateway();
    let reply = gw.post_json("/SpongeBob/Nope/send_event", &json!({})).await;
    assert_failure(&reply, StatusCode::NOT_FOUND, "event_not_registered");
    let reply = gw
        .post_form("/SpongeBob/Nope/send_event", "event", "{}")
        .await;
    assert_failure(&reply, StatusCode::NOT_FOUND, "event_not_registered");
}

#[tokio::test]
async fn the_schema_of_an_unregistered_pair_is_404() {
    let gw = gateway();
    let reply = gw.get("/SpongeBob/Nope/schema").await;
    assert_failure(&reply, StatusCode::NOT_FOUND, "event_not_registered");
}

#[tokio::test]
async fn an_unknown_route_is_404() {
    let gw = gateway();
    for path in [
        "/",
        "/SpongeBob",
        "/a/b/c/d",
        "/SpongeBob/Fruits/send_eventz",
    ] {
        let reply = gw.get(path).await;
        assert_failure(&reply, StatusCode::NOT_FOUND, "not_found");
    }
}

#[tokio::test]
async fn a_wrong_method_on_a_known_route_is_405_with_the_allowed_methods() {
    let gw = gateway();
    for (method, path, allowed) in [
        (Method::GET, "/SpongeBob/Fruits/send_event", "POST"),
        (Method::PUT, "/SpongeBob/Fruits/register_event", "POST"),
        (Method::DELETE, "/SpongeBob/Fruits/schema", "GET,HEAD"),
        (Method::POST, "/SpongeBob/list_events", "GET,HEAD"),
    ] {
        let reply = gw.call(method, path, Some(JSON), "{}").await;
        assert_failure(&reply, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
        assert_eq!(reply.headers[header::ALLOW], allowed, "{path}");
    }
}

// ---- 413 ---------------------------------------------------------------------------------

#[tokio::test]
async fn an_event_over_1_mib_is_413_as_json_or_form() {
    let gw = gateway();
    gw.register("SpongeBob", "Any", &json!({})).await;
    let big = json!({"blob": "x".repeat(1024 * 1024)});
    let reply = gw.post_json("/SpongeBob/Any/send_event", &big).await;
    assert_failure(&reply, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let reply = gw
        .post_form("/SpongeBob/Any/send_event", "event", &big.to_string())
        .await;
    assert_failure(&reply, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert!(gw.published("SpongeBob", "Any").is_empty());
}

#[tokio::test]
async fn an_event_just_under_1_mib_is_accepted() {
    let gw = gateway();
    gw.register("SpongeBob", "Any", &json!({})).await;
    let fits = json!({"blob": "x".repeat(1024 * 1024 - 100)});
    let reply = gw.post_json("/SpongeBob/Any/send_event", &fits).await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn a_schema_over_256_kib_is_413() {
    let gw = gateway();
    let big = json!({"description": "x".repeat(256 * 1024)});
    let reply = gw.register("SpongeBob", "Any", &big).await;
    assert_failure(&reply, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
}

/// A request body that counts the bytes the server pulled from it, and after `chunk` sends
/// nothing more (the rest of a slow upload that never arrives).
fn slow_body(chunk: &'static [u8]) -> (Body, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let read = Arc::new(AtomicUsize::new(0));
    let counter = read.clone();
    let first = futures::stream::once(async move {
        counter.fetch_add(chunk.len(), Ordering::SeqCst);
        Ok::<_, std::io::Error>(bytes::Bytes::from_static(chunk))
    });
    (
        Body::from_stream(first.chain(futures::stream::pending())),
        read,
    )
}

#[tokio::test]
async fn a_declared_content_length_over_the_limit_is_413_without_reading_the_body() {
    let gw = gateway();
    gw.register("SpongeBob", "Any", &json!({})).await;
    let (body, read) = slow_body(b"{\"blob\": \"");
    let request = Request::post("/SpongeBob/Any/send_event")
        .header(header::CONTENT_TYPE, JSON)
        .header(header::CONTENT_LENGTH, "10000000000")
        .body(body)
        .unwrap();

    // The body never completes: only an answer given without reading it can arrive. The
    // timeout only turns a hang into a failure.
    let reply = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        api::send(&gw.router, request),
    )
    .await
    .expect("answered while the body was still being sent");

    assert_failure(&reply, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert_eq!(
        read.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no byte was read"
    );
}

// Paused clock: the drain's time limit passes without waiting for it.
#[tokio::test(start_paused = true)]
async fn a_streamed_body_is_cut_off_at_the_limit_and_answered_once_the_drain_gives_up() {
    let gw = gateway();
    gw.register("SpongeBob", "Any", &json!({})).await;
    // No Content-Length: the size shows only while reading, and reading stops at the limit.
    let chunks = futures::stream::iter(
        (0..3).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 512 * 1024]))),
    )
    .chain(futures::stream::pending());
    let request = Request::post("/SpongeBob/Any/send_event")
        .header(header::CONTENT_TYPE, JSON)
        .body(Body::from_stream(chunks))
        .unwrap();

    // The rest is read and dropped for a while (clients that write before reading get the
    // answer), but a body that never ends does not hold the request beyond the drain's limit.
    let reply = tokio::time::timeout(
        event_processor_core::http::DRAIN_TIME + std::time::Duration::from_secs(1),
        api::send(&gw.router, request),
    )
    .await
    .expect("answered once the drain gave up, without waiting for the rest");

    assert_failure(&reply, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
}

// ---- 415 ---------------------------------------------------------------------------------

#[tokio::test]
async fn a_content_type_other_than_json_or_form_is_415() {
    let gw = gateway();
    gw.register("SpongeBob", "Any", &json!({})).await;
    for content_type in [
        Some("text/plain"),
        Some("multipart/form-data; boundary=x"),
        Some("application/xml"),
        Some("application/json; charset=latin1"),
        Some("not a mime type"),
        None,
    ] {
        let reply = gw
            .call(
                Method::POST,
                "/SpongeBob/Any/send_event",
                content_type,
                "{}",
            )
            .await;
        assert_failure(
            &reply,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        );
    }
    assert!(gw.published("SpongeBob", "Any").is_empty());
}

#[tokio::test]
async fn json_with_a_utf8_charset_parameter_is_accepted() {
    let gw = gateway();
    gw.register("SpongeBob", "Any", &json!({})).await;
    let reply = gw
        .call(
            Method::POST,
            "/SpongeBob/Any/send_event",
            Some("application/json; charset=UTF-8"),
            "{}",
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
}

// ---- 422 ---------------------------------------------------------------------------------

#[tokio::test]
async fn an_event_that_breaks_the_schema_is_422_with_json_pointers() {
    let gw = gateway();
    gw.register("SpongeBob", "People", &person_schema()).await;
    let reply = gw
        .post_json(
            "/SpongeBob/People/send_event",
            &json!({"name": 7, "extra": 1}),
        )
        .await;
    assert_failure(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let errors = reply.body["errors"].as_array().unwrap();
    let type_error = errors
        .iter()
        .find(|e| e["keyword"] == "type")
        .expect("a type error");
    assert_eq!(type_error["instance_path"], "/name");
    assert_eq!(type_error["schema_path"], "/properties/name/type");
    assert!(type_error["message"].is_string());
    assert!(errors.iter().any(|e| e["keyword"] == "required"));
    assert!(
        errors
            .iter()
            .any(|e| e["keyword"] == "additionalProperties")
    );
    assert!(gw.published("SpongeBob", "People").is_empty());
}

#[tokio::test]
async fn an_invalid_form_event_is_422() {
    let gw = gateway();
    gw.register("SpongeBob", "People", &person_schema()).await;
    let reply = gw
        .post_form("/SpongeBob/People/send_event", "event", r#"{"name":"Bob"}"#)
        .await;
    assert_failure(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
}

#[tokio::test]
async fn validation_details_are_capped_at_20() {
    let gw = gateway();
    gw.register(
        "SpongeBob",
        "Strings",
        &json!({"type": "array", "items": {"type": "string"}}),
    )
    .await;
    let reply = gw
        .post_json(
            "/SpongeBob/Strings/send_event",
            &json!((0..100).collect::<Vec<_>>()),
        )
        .await;
    assert_failure(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert_eq!(reply.body["errors"].as_array().unwrap().len(), 20);
}

// ---- 503 ---------------------------------------------------------------------------------

#[tokio::test]
async fn a_stream_outage_is_503_with_retry_after_and_no_internals() {
    let gw = gateway();
    gw.register("SpongeBob", "People", &person_schema()).await;
    gw.stream.set_unavailable(true);
    let reply = gw
        .post_json(
            "/SpongeBob/People/send_event",
            &json!({"name": "Bob", "age": 3}),
        )
        .await;
    assert_failure(
        &reply,
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
    );
    assert_eq!(reply.headers.get(header::RETRY_AFTER).unwrap(), "1");
    assert!(
        !reply.body.to_string().contains("memory adapter"),
        "{}",
        reply.body
    );
    assert!(gw.published("SpongeBob", "People").is_empty());
}

#[tokio::test]
async fn a_schema_store_outage_is_503_with_retry_after() {
    let gw = gateway();
    gw.store.set_unavailable(true);
    let reply = gw.register("SpongeBob", "People", &person_schema()).await;
    assert_failure(
        &reply,
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
    );
    assert!(reply.headers.contains_key(header::RETRY_AFTER));
    let reply = gw
        .post_json("/SpongeBob/People/send_event", &json!({}))
        .await;
    assert_failure(
        &reply,
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
    );
    let reply = gw.get("/SpongeBob/list_events").await;
    assert_failure(
        &reply,
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
    );
}

// ---- cross-cutting -----------------------------------------------------------------------

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let gw = gateway();
    let first = gw.get("/nobody/list_events").await;
    let second = gw.get("/nobody/list_events").await;
    let id = |reply: &Reply| reply.headers["x-request-id"].to_str().unwrap().to_owned();
    assert!(!id(&first).is_empty());
    assert_ne!(id(&first), id(&second), "each request gets its own id");
}

#[tokio::test]
async fn a_request_id_given_by_the_client_is_kept() {
    let gw = gateway();
    let request = Request::get("/nobody/list_events")
        .header("x-request-id", "client-chosen-42")
        .body(Body::empty())
        .unwrap();
    let reply = api::send(&gw.router, request).await;
    assert_eq!(reply.headers["x-request-id"], "client-chosen-42");
}

/// A stream whose every publish panics: a bug in a port.
struct Panics;

#[async_trait::async_trait]
impl event_processor_core::ports::EventStream for Panics {
    async fn publish(
        &self,
        _: &event_processor_core::envelope::Envelope,
        _: event_processor_core::retry::Deadline,
    ) -> Result<(), event_processor_core::ports::StreamError> {
        panic!("a bug in the stream adapter")
    }
}

#[tokio::test]
async fn a_panic_in_a_request_is_a_json_500_that_carries_its_request_id() {
    let store = Arc::new(MemorySchemaStore::new());
    let router = Api::new(Processor::new(store, Arc::new(Panics))).router();
    let registered = api::post_json(
        &router,
        "/SpongeBob/Fruits/register_event",
        &json!({"required": ["fruit"]}),
    )
    .await;
    assert_eq!(registered.status, StatusCode::CREATED);
    let send = |id: Option<&str>| {
        let mut request =
            Request::post("/SpongeBob/Fruits/send_event").header(header::CONTENT_TYPE, JSON);
        if let Some(id) = id {
            request = request.header("x-request-id", id);
        }
        request.body(Body::from(r#"{"fruit":"kiwi"}"#)).unwrap()
    };

    let reply = api::send(&router, send(Some("the-panicking-one"))).await;
    assert_failure(&reply, StatusCode::INTERNAL_SERVER_ERROR, "internal_error");
    assert_eq!(
        reply.body["msg"], "internal error",
        "no internals in the body"
    );
    assert_eq!(reply.headers["x-request-id"], "the-panicking-one");

    let reply = api::send(&router, send(None)).await;
    assert_failure(&reply, StatusCode::INTERNAL_SERVER_ERROR, "internal_error");
    let made = reply.headers["x-request-id"].to_str().unwrap();
    assert!(
        made.len() == 36 && made.matches('-').count() == 4,
        "a made id (a UUID): {made}"
    );
}

// ---- batch: send_events ------------------------------------------------------------------

async fn batch(gw: &Gateway, items: Value) -> Reply {
    gw.post_json("/SpongeBob/People/send_events", &items).await
}

#[tokio::test]
async fn a_batch_of_valid_events_is_200_and_published_in_order() {
    let gw = gateway();
    gw.register("SpongeBob", "People", &person_schema()).await;
    let items: Vec<Value> = (0..10)
        .map(|i| json!({"name": format!("n{i}"), "age": i}))
        .collect();

    let reply = batch(&gw, json!(items)).await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["code"], "SUCCEEDED");
    assert_eq!(
        (
            reply.body["accepted"].clone(),
            reply.body["rejected"].clone()
        ),
        (json!(10), json!(0))
    );
    let results = reply.body["results"].as_array().unwrap();
    assert!(
        results
            .iter()
            .enumerate()
            .all(|(i, r)| r["index"] == i && r["status"] == 200 && r["id"].is_string())
    );
    assert_eq!(gw.published("SpongeBob", "People"), items);
}

#[tokio::test]
async fn a_batch_with_some_invalid_events_is_207_with_per_item_results() {
    let gw = gateway();
    gw.register("SpongeBob", "People", &person_schema()).await;
    let items = json!([{"name": "a", "age": 1}, {"name": "b"}, {"name": "c", "age": 3}]);

    let reply = batch(&gw, items).await;

    assert_failure(&reply, StatusCode::MULTI_STATUS, "partially_accepted");
    assert_eq!(
        (
            reply.body["accepted"].clone(),
            reply.body["rejected"].clone()
        ),
        (json!(2), json!(1))
    );
    let results = &reply.body["results"];
    assert_eq!(results[0]["status"], 200);
    assert_eq!(results[1]["status"], 422);
    assert_eq!(results[1]["errors"][0]["keyword"], "required");
    assert_eq!(results[2]["status"], 200);
    assert_eq!(
        gw.published("SpongeBob", "People"),
        vec![
            json!({"name": "a", "age": 1}),
            json!({"name": "c", "age": 3})
        ]
    );
}

#[tokio::test]
async fn a_batch_with_no_valid_event_is_422_and_publishes_nothing() {
    let gw = gateway();
    gw.register("SpongeBob", "People", &person_schema()).await;
    let reply = batch(&gw, json!([{"name": 1}, 7])).await;
    assert_failure(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert_eq!(reply.body["results"][1]["status"], 422);
    assert!(gw.published("SpongeBob", "People").is_empty());
}

#[tokio::test]
async fn a_batch_while_the_stream_is_down_is_503_with_retry_after() {
    let gw = gateway();
    gw.register("SpongeBob", "People", &person_schema()).await;
    gw.stream.set_unavailable(true);
    let reply = batch(&gw, json!([{"name": "a", "age": 1}, {"name": "b"}])).await;
    assert_failure(
        &reply,
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
    );
    assert_eq!(reply.body["results"][0]["status"], 503);
    assert_eq!(reply.body["results"][1]["status"], 422);
    assert!(reply.headers.contains_key(header::RETRY_AFTER));
    assert!(gw.published("SpongeBob", "People").is_empty());
}

#[tokio::test]
async fn a_batch_that_is_not_an_array_of_1_to_500_events_is_400() {
    let gw = gateway();
    gw.register("SpongeBob", "People", &person_schema()).await;
    let too_many: Vec<Value> = (0..501).map(|_| json!({})).collect();
    for items in [json!([]), json!({"name": "a"}), json!(too_many)] {
        let reply = batch(&gw, items).await;
        assert_failure(&reply, StatusCode::BAD_REQUEST, "invalid_batch");
    }
}

#[tokio::test]
async fn a_batch_over_5_mib_is_413() {
    let gw = gateway();
    gw.register("SpongeBob", "Any", &json!({})).await;
    let blob = "x".repeat(1024 * 1024);
    let items = json!([blob, blob, blob, blob, blob, blob]);
    let reply = gw.post_json("/SpongeBob/Any/send_events", &items).await;
    assert_failure(&reply, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
}

#[tokio::test]
async fn a_form_encoded_batch_is_415() {
    let gw = gateway();
    gw.register("SpongeBob", "People", &person_schema()).await;
    let reply = gw
        .post_form("/SpongeBob/People/send_events", "event", "[]")
        .await;
    assert_failure(
        &reply,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
}

#[tokio::test]
async fn a_batch_for_an_unregistered_pair_is_404() {
    let gw = gateway();
    let reply = batch(&gw, json!([{}])).await;
    assert_failure(&reply, StatusCode::NOT_FOUND, "event_not_registered");
}
