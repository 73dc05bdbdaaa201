//! The edge of every request, in one layer: its id, its span, its task, its caller, and its
//! log line and metrics (API.md, "Observability").
//!
//! These were six layers (tower-http's request id, propagation, trace and catch-panic, and
//! three `from_fn`s). Each layer boxes a future and clones its inner service for every request:
//! a build without them ran ~1.4× faster, and one layer doing their work makes ~60 fewer
//! allocations per request (see BENCHMARKS.md), for work that is a few lines here.
//!
//! The handlers say what they know through response extensions ([`Logged`]): the version an
//! event was checked against, a batch's size, the stable `error` of a failure. This layer
//! adds what it sees itself (route, status, duration, ids) and writes the line once, so the
//! line has the same fields in every runtime and no handler can forget it.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{MatchedPath, RawPathParams, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use tracing::{Instrument, field};
use uuid::Uuid;

use super::auth::{self, Auth};
use super::error::ApiError;
use super::response::{self as reply, Reply};

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

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The layer. The request keeps the `x-request-id` its client sent, or gets a new one, and its
/// answer carries it. The rest runs in a task of its own, inside the request's span: hyper
/// drops a request's future when its client disconnects (a producer's own timeout, typically,
/// before it retries), and a send cut off there would leave its idempotency key held until the
/// lease ran out, a rejection neither kept nor counted, and no log line. In its own task the
/// request finishes, and its answer is kept for the retry.
pub(crate) async fn edge(
    State(auth): State<Auth>,
    params: Result<RawPathParams, RawPathParamsRejection>,
    mut request: Request,
    next: Next,
) -> Response {
    let request_id = match request.headers().get(X_REQUEST_ID) {
        Some(id) => id.clone(),
        None => {
            let id = Uuid::now_v7();
            let id =
                HeaderValue::from_str(id.hyphenated().encode_lower(&mut Uuid::encode_buffer()))
                    .expect("a UUID is a valid header value");
            request.headers_mut().insert(X_REQUEST_ID, id.clone());
            id
        }
    };
    // The route's template, never the raw path: a label of bounded cardinality, made once.
    let route = metrics::label(
        request
            .extensions()
            .get::<MatchedPath>()
            .map_or(UNMATCHED, MatchedPath::as_str),
    );
    // The span gives every line the request logs its context: the route, never the raw path
    // (`serve`'s JSON mode makes no spans: its lines carry no span fields).
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        route,
        request_id = bounded(&request_id),
        client = field::Empty,
        event = field::Empty,
    );
    let task =
        observed(auth, params, route, request_id.clone(), request, next).instrument(span.clone());
    let mut response = match tokio::spawn(task).await {
        Ok(response) => response,
        Err(error) => {
            let _in_span = span.enter();
            if error.is_panic() {
                panic_response(error.into_panic())
            } else {
                // Only when the runtime shuts down under the request.
                tracing::error!(%error, "request task cancelled");
                ApiError::AnswerLost.into_response()
            }
        }
    };
    response
        .headers_mut()
        .entry(X_REQUEST_ID)
        .or_insert(request_id);
    response
}

/// Authenticates the request, runs its route with panics caught, then logs it and records its
/// metrics.
async fn observed(
    auth: Auth,
    params: Result<RawPathParams, RawPathParamsRejection>,
    route: &'static str,
    request_id: HeaderValue,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let lambda_request_id = request
        .extensions()
        .get::<LambdaRequestId>()
        .map(|id| id.0.clone());
    // Only names that pass the name rule reach the log: no path text of a client's choosing.
    let param = |key: &str| {
        let params = params.as_ref().ok()?;
        let (_, value) = params.iter().find(|(name, _)| *name == key)?;
        Some(value)
    };
    let client = param("client").filter(|name| ClientId::is_valid(name));
    let event = param("event").filter(|name| EventName::is_valid(name));

    let answer = async {
        // Before the route's extractors: an unauthenticated request learns nothing, not even
        // which routes exist.
        match auth::caller(&auth, &request) {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
                next.run(request).await
            }
            Err(error) => ApiError::Unauthenticated(error).into_response(),
        }
    };
    let response = AssertUnwindSafe(answer)
        .catch_unwind()
        .await
        .unwrap_or_else(panic_response);

    let duration = started.elapsed();
    let status = response.status();
    let logged = response
        .extensions()
        .get::<Logged>()
        .copied()
        .unwrap_or_default();
    metrics::request(route, metrics::label(status.as_str()), duration);
    tracing::info!(
        target: "event_processor::request",
        request_id = bounded(&request_id),
        lambda_request_id = lambda_request_id.as_deref(),
        method = %method,
        route,
        client,
        event,
        version = logged.version.map(SchemaVersion::get),
        status = status.as_u16(),
        error = logged.error,
        items = logged.items,
        duration_ms = duration.as_secs_f64() * 1000.0,
        "request"
    );
    response
}

/// A request id as it is logged: bounded, as everything a client puts in a log line, and
/// only if it is text (`to_str` admits visible ASCII alone, so its first 200 bytes are its
/// first 200 characters).
fn bounded(id: &HeaderValue) -> Option<&str> {
    let id = id.to_str().ok()?;
    Some(id.get(..MAX_LOGGED_ID).unwrap_or(id))
}

/// How much of a request id is logged.
const MAX_LOGGED_ID: usize = 200;

/// Last line of defence: a panic becomes a logged JSON 500, never a dropped connection.
fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %detail, "handler panicked");
    Reply {
        code: reply::Code::Failed,
        msg: "internal error".into(),
        error: Some("internal_error"),
        body: reply::FailureDetails::default(),
    }
    .with_status(StatusCode::INTERNAL_SERVER_ERROR)
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    /// The `requests_total` samples (route, status, count) of the requests `run` makes.
    fn requests_counted(run: impl AsyncFnOnce()) -> Vec<(String, String, u64)> {
        metrics::testing::counted(run)
            .into_iter()
            .filter(|(name, _, _)| name == metrics::REQUESTS)
            .map(|(_, labels, n)| {
                let label = |wanted: &str| {
                    labels
                        .iter()
                        .find(|(key, _)| key == wanted)
                        .map(|(_, value)| value.clone())
                        .unwrap_or_default()
                };
                (label("route"), label("status"), n)
            })
            .collect()
    }

    async fn boom() -> &'static str {
        panic!("a bug")
    }

    fn router(auth: Auth) -> Router {
        Router::new()
            .route("/boom", get(boom))
            .route("/fine", get(|| async { "fine" }))
            .layer(axum::middleware::from_fn_with_state(auth, edge))
    }

    async fn status(router: &Router, path: &str) -> u16 {
        let request = Request::get(path).body(Body::empty()).unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        assert!(response.headers().contains_key(X_REQUEST_ID), "{path}");
        response.status().as_u16()
    }

    /// A panic is caught inside the request's task, so the 500 is observed like any answer;
    /// a 401 too. Without the inner catch, the task's join error would answer the same 500
    /// but record nothing.
    #[test]
    fn a_panic_and_a_401_are_counted_like_any_request() {
        let counted = requests_counted(async || {
            let open = router(Auth::Off);
            assert_eq!(status(&open, "/boom").await, 500);
            assert_eq!(status(&open, "/fine").await, 200);
            let closed = router(Auth::Authorizer {
                scope_prefix: "".into(),
            });
            assert_eq!(status(&closed, "/fine").await, 401);
        });
        let count = |route: &str, status: &str| {
            counted
                .iter()
                .filter(|(r, s, _)| r == route && s == status)
                .map(|(_, _, n)| n)
                .sum::<u64>()
        };
        assert_eq!(count("/boom", "500"), 1, "{counted:?}");
        assert_eq!(count("/fine", "200"), 1, "{counted:?}");
        assert_eq!(count("/fine", "401"), 1, "{counted:?}");
    }
}
