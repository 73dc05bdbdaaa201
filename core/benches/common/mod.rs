//! What the benchmarks share: the registered pair and the requests they send.

#![allow(dead_code, reason = "each benchmark uses a part of this module")]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use event_processor_core::Processor;
use event_processor_core::adapters::memory::{MemoryEventStream, MemorySchemaStore};
use event_processor_core::http::Api;
use serde_json::{Value, json};
use tower::ServiceExt;

/// The schema of SpongeBob/Fruits in every benchmark.
pub fn fruits_schema() -> Value {
    json!({
        "type": "object",
        "properties": {"fruit": {"type": "string"}, "quantity": {"type": "integer", "minimum": 0}},
        "required": ["fruit"],
        "additionalProperties": false
    })
}

/// A small valid event (35 bytes of JSON).
pub fn small_event() -> Value {
    json!({"fruit": "pineapple", "quantity": 3})
}

/// A JSON array of `n` small events: a `send_events` body.
pub fn batch_body(n: usize) -> String {
    serde_json::to_string(&vec![small_event(); n]).expect("JSON")
}

/// The whole HTTP layer over the memory backends, with SpongeBob/Fruits registered.
pub async fn registered_router() -> Router {
    let processor = Processor::new(
        Arc::new(MemorySchemaStore::new()),
        Arc::new(MemoryEventStream::new()),
    );
    let app = Api::new(processor).router();
    register_fruits(&app).await;
    app
}

/// Registers SpongeBob/Fruits through `app` (201, or 200 if it already was).
pub async fn register_fruits(app: &Router) {
    let response = app
        .clone()
        .oneshot(post(
            "/SpongeBob/Fruits/register_event",
            fruits_schema().to_string(),
        ))
        .await
        .expect("infallible");
    assert!(response.status().is_success(), "{}", response.status());
}

/// A JSON POST.
pub fn post(path: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/json")
        .body(body.into())
        .expect("a valid request")
}

/// Sends `request` and checks it was accepted (200), so a benchmark never measures an error path.
pub async fn send_ok(app: &Router, request: Request<Body>) {
    let response = app.clone().oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), 200);
}
