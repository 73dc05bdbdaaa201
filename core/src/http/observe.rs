//! One log line and the request metrics per request (API.md, "Observability").
//!
//! The handlers say what they know through response extensions ([`Logged`]): the version an
//! event was checked against, a batch's size, the stable `error` of a failure. This layer
//! adds what it sees itself (route, status, duration, ids) and writes the line once, so the
//! line has the same fields in every runtime and no handler can forget it.

use std::time::Instant;

use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{MatchedPath, RawPathParams, Request};
use axum::middleware::Next;
use axum::response::Response;

use crate::domain::{ClientId, EventName, SchemaVersion};
use crate::metrics;

/// What a handler knows of its request, for the log line.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Logged {
    pub version: Option<SchemaVersion>,
    pub items: Option<usize>,
    pub error: Option<&'static str>,
}

impl Logged {
    /// Adds what `self` knows to what `response` already says.
    pub fn on(self, response: &mut Response) {
        let logged = response.extensions_mut().get_or_insert_default::<Logged>();
        logged.version = self.version.or(logged.version);
        logged.items = self.items.or(logged.items);
        logged.error = self.error.or(logged.error);
    }
}

/// The id of the Lambda invocation serving the request, which the Lambda glue puts in the
/// request's extensions (`serve` has none): logged beside the request id.
#[derive(Debug, Clone)]
pub struct LambdaRequestId(pub String);

/// Route label of requests that matched no route: a bounded label, never the raw path.
const UNMATCHED: &str = "unmatched";

/// The layer: times the request, then logs it and records its metrics.
pub(crate) async fn observe(
    params: Result<RawPathParams, RawPathParamsRejection>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str)
        .to_owned();
    let lambda_request_id = request
        .extensions()
        .get::<LambdaRequestId>()
        .map(|id| id.0.clone());
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        // A client's id: bounded, as everything a client puts in a log line.
        .map(|id| id.chars().take(200).collect::<String>());
    // Only names that pass the name rule reach the log: no path text of a client's choosing.
    let (mut client, mut event) = (None, None);
    if let Ok(params) = &params {
        for (name, value) in params {
            match name {
                "client" => client = ClientId::parse(value).ok(),
                "event" => event = EventName::parse(value).ok(),
                _ => {}
            }
        }
    }

    let response = next.run(request).await;

    let duration = started.elapsed();
    let status = response.status().as_u16();
    let logged = response
        .extensions()
        .get::<Logged>()
        .copied()
        .unwrap_or_default();
    metrics::request(&route, status, duration);
    tracing::info!(
        target: "event_processor::request",
        request_id = request_id.as_deref(),
        lambda_request_id = lambda_request_id.as_deref(),
        method = %method,
        route,
        client = client.as_ref().map(ClientId::as_str),
        event = event.as_ref().map(EventName::as_str),
        version = logged.version.map(SchemaVersion::get),
        status,
        error = logged.error,
        items = logged.items,
        duration_ms = duration.as_secs_f64() * 1000.0,
        "request"
    );
    response
}
