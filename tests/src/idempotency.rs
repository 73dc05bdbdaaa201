//! Sending with an `Idempotency-Key`, as a client retrying after a 503 does.

use axum::Router;
use axum::body::Body;
use http::{Method, Request, header};
use serde_json::Value;

use crate::api::{Reply, send};

/// `POST uri` with a JSON body and the header `Idempotency-Key: key`.
pub async fn post_json_with_key(router: &Router, uri: &str, key: &str, body: &Value) -> Reply {
    let request = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .header("idempotency-key", key)
        .body(Body::from(body.to_string()))
        .expect("a valid request");
    send(router, request).await
}
