//! The one HTTP layer: an axum `Router` implementing API.md over the [`Processor`].
//!
//! `event-processor serve` and every Lambda function mount this same router, so the paths,
//! limits, status codes and error bodies are identical in every runtime.

mod body;
mod error;

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::{Span, field};

pub use body::{Encoding, Limits};
pub use error::{ApiError, ErrorChain, RETRY_AFTER_SECS};

use crate::domain::{ClientId, EventName};
use crate::processor::{ItemOutcome, Processor, Registered};

/// Shared state of every handler.
#[derive(Clone)]
struct AppState {
    processor: Processor,
    limits: Limits,
}

/// The whole API of API.md with the default limits.
pub fn router(processor: Processor) -> Router {
    router_with_limits(processor, Limits::default())
}

/// The whole API with explicit body limits.
pub fn router_with_limits(processor: Processor, limits: Limits) -> Router {
    Router::new()
        .route("/{client}/{event}/register_event", post(register_event))
        .route("/{client}/{event}/send_event", post(send_event))
        .route("/{client}/{event}/send_events", post(send_events))
        .route("/{client}/{event}/schema", get(get_schema))
        .route("/{client}/list_events", get(list_events))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(AppState { processor, limits })
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<Body>| {
                    let request_id = request
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    tracing::info_span!(
                        "request",
                        method = %request.method(),
                        path = %request.uri().path(),
                        request_id,
                        client = field::Empty,
                        event = field::Empty,
                    )
                })
                .on_response(|response: &Response, latency: Duration, _span: &Span| {
                    tracing::info!(status = response.status().as_u16(), ?latency, "response");
                }),
        )
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// Validates the `{client}` and `{event}` path segments and records them on the request span.
fn pair(
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(ClientId, EventName), ApiError> {
    let Path((client, event)) = path.map_err(|_| ApiError::InvalidPath)?;
    let client = ClientId::parse(&client).map_err(|source| ApiError::InvalidName {
        segment: "client",
        source,
    })?;
    let event = EventName::parse(&event).map_err(|source| ApiError::InvalidName {
        segment: "event",
        source,
    })?;
    Span::current().record("client", client.as_str());
    Span::current().record("event", event.as_str());
    Ok((client, event))
}

fn succeeded(status: StatusCode, msg: &str, mut fields: Value) -> Response {
    if let Value::Object(map) = &mut fields {
        map.insert("code".into(), "SUCCEEDED".into());
        map.insert("msg".into(), msg.into());
    }
    (status, Json(fields)).into_response()
}

async fn register_event(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (client, event) = pair(path)?;
    let schema = body::document(
        &headers,
        body,
        state.limits.schema,
        "event_schema",
        "the schema",
    )
    .await?;
    let registered = state
        .processor
        .register_event(&client, &event, schema)
        .await?;
    let status = match registered {
        Registered::Created(_) => StatusCode::CREATED,
        Registered::Unchanged(_) => StatusCode::OK,
    };
    Ok(succeeded(
        status,
        "event registered",
        json!({"client": client, "event": event, "version": registered.version()}),
    ))
}

async fn send_event(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (client, event) = pair(path)?;
    let data = body::document(&headers, body, state.limits.event, "event", "the event").await?;
    let id = state.processor.receive_event(&client, &event, data).await?;
    Ok(succeeded(StatusCode::OK, "event sent", json!({"id": id})))
}

/// Most events one batch may carry (one Kinesis `PutRecords` call).
pub const MAX_BATCH_ITEMS: usize = 500;

async fn send_events(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (client, event) = pair(path)?;
    // A batch is a JSON array; the form encoding of the original clients carries one event.
    if body::encoding(&headers)? != Encoding::Json {
        return Err(ApiError::UnsupportedMediaType);
    }
    let bytes = body::read_limited(&headers, body, state.limits.batch).await?;
    let Value::Array(items) = body::parse_json(&bytes, "the batch")? else {
        return Err(ApiError::InvalidBatch {
            max: MAX_BATCH_ITEMS,
        });
    };
    if items.is_empty() || items.len() > MAX_BATCH_ITEMS {
        return Err(ApiError::InvalidBatch {
            max: MAX_BATCH_ITEMS,
        });
    }
    let outcomes = state
        .processor
        .receive_events(&client, &event, items)
        .await?;
    Ok(batch_response(&outcomes))
}

/// 200 all accepted, 207 some, 422 none valid, 503 none accepted because the stream is down.
fn batch_response(outcomes: &[ItemOutcome]) -> Response {
    let accepted = outcomes
        .iter()
        .filter(|o| matches!(o, ItemOutcome::Accepted(_)))
        .count();
    let invalid = outcomes
        .iter()
        .filter(|o| matches!(o, ItemOutcome::Invalid(_) | ItemOutcome::TooLarge))
        .count();
    let unavailable = outcomes.len() - accepted - invalid;
    let results: Vec<Value> = outcomes
        .iter()
        .enumerate()
        .map(|(index, outcome)| match outcome {
            ItemOutcome::Accepted(id) => json!({"index": index, "status": 200, "id": id}),
            ItemOutcome::Invalid(errors) => {
                json!({"index": index, "status": 422, "errors": errors})
            }
            ItemOutcome::Unavailable => json!({"index": index, "status": 503}),
            ItemOutcome::TooLarge => json!({"index": index, "status": 413}),
        })
        .collect();
    let (status, error, msg) = if accepted == outcomes.len() {
        (StatusCode::OK, None, "all events sent")
    } else if accepted > 0 {
        (
            StatusCode::MULTI_STATUS,
            Some("partially_accepted"),
            "some events were not sent; see results",
        )
    } else if unavailable > 0 {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("service_unavailable"),
            "the event stream is unavailable; no event was published, retry later",
        )
    } else {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("validation_failed"),
            "no event satisfies the registered schema",
        )
    };
    let mut body = json!({
        "code": if error.is_none() { "SUCCEEDED" } else { "FAILED" },
        "msg": msg,
        "accepted": accepted,
        "rejected": outcomes.len() - accepted,
        "results": results,
    });
    if let Some(error) = error {
        body["error"] = error.into();
    }
    let mut response = (status, Json(body)).into_response();
    if unavailable > 0 {
        // Some items can be retried; tell the client when.
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from(RETRY_AFTER_SECS),
        );
    }
    response
}

async fn get_schema(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let (client, event) = pair(path)?;
    let registered = state.processor.get_event_schema(&client, &event).await?;
    Ok(succeeded(
        StatusCode::OK,
        "schema recovered",
        json!({"schema": registered.schema, "version": registered.version}),
    ))
}

async fn list_events(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(client) = path.map_err(|_| ApiError::InvalidPath)?;
    let client = ClientId::parse(&client).map_err(|source| ApiError::InvalidName {
        segment: "client",
        source,
    })?;
    Span::current().record("client", client.as_str());
    let events = state.processor.list_registered_events(&client).await?;
    let msg = format!("{} event(s) registered for {client}", events.len());
    Ok(succeeded(StatusCode::OK, &msg, json!({"events": events})))
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound {
        method: method.to_string(),
        path: uri.path().chars().take(200).collect(),
    }
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed(method.to_string())
}

/// Last line of defence: a panic becomes a logged JSON 500, never a dropped connection.
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %detail, "handler panicked");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({"code": "FAILED", "msg": "internal error", "error": "internal_error"})),
    )
        .into_response()
}
