//! The HTTP limit of a machine, for BENCHMARKS.md: an axum endpoint that does only what
//! `send_event` cannot avoid — read the body, decode the original clients' form field, parse
//! the event's JSON, answer a small JSON object — and nothing else (no validation, no stream,
//! no logging). `scripts/load` runs it beside `serve` on the same load, so the gateway's cost
//! is the ratio of the two.
//!
//! Usage: `bare-axum [ADDR]` (default 127.0.0.1:5099).

use axum::Router;
use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;

async fn send_event(body: Bytes) -> impl IntoResponse {
    let form: Vec<(String, String)> = match serde_urlencoded::from_bytes(&body) {
        Ok(form) => form,
        Err(_) => return (StatusCode::BAD_REQUEST, "{}").into_response(),
    };
    let Some((_, event)) = form.iter().find(|(name, _)| name == "event") else {
        return (StatusCode::BAD_REQUEST, "{}").into_response();
    };
    match serde_json::from_str::<serde_json::Value>(event) {
        Ok(_) => (
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"code":"SUCCEEDED","msg":"event sent","id":"0190c0de-0000-7000-8000-000000000000"}"#,
        )
            .into_response(),
        Err(_) => (StatusCode::BAD_REQUEST, "{}").into_response(),
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:5099".to_owned());
    let app = Router::new().route("/{client}/{event}/send_event", post(send_event));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("bare-axum listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
