//! The Lambda runtime edge: what every function binary under `functions/` runs.
//!
//! Each function is the same program over the one router of `event_processor_core::http`,
//! mounting only its own endpoint ([`Routes`]), the only one API Gateway routes to it. Keeping
//! the start-up here means the `main.rs` of the functions cannot drift apart: they differ only
//! in their endpoint and in which backends they warm up. The core
//! knows nothing of Lambda: this crate hands it what it needs from an invocation (its
//! deadline) as plain request extensions.

pub mod emf;

use std::process::ExitCode;
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use event_processor_core::App;
use event_processor_core::error::ErrorChain;
use event_processor_core::http::{AuthorizerClaims, InvocationDeadline, LambdaRequestId, Limits};
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;

pub use event_processor_core::WarmUp;
pub use event_processor_core::http::Routes;

/// The longest init waits for the warm-up. Lambda allows 10 s for init, and a backend that
/// slow is better reported by the requests that need it.
const WARM_UP_DEADLINE: Duration = Duration::from_secs(2);

/// Initialises logging as the function's logging configuration asks (`AWS_LAMBDA_LOG_FORMAT`,
/// `AWS_LAMBDA_LOG_LEVEL`), builds the app from the environment once per cold start, opens the
/// connections of `backends`, and serves invocations of `routes` until the runtime stops. A start-up
/// failure is logged and exits non-zero, so Lambda reports an init error instead of answering
/// with a half-built app.
pub async fn run(routes: Routes, backends: WarmUp) -> ExitCode {
    lambda_http::tracing::init_default_subscriber();
    let metrics = emf::settings_from_env().and_then(|(namespace, function, pairs)| {
        emf::install(
            &namespace,
            function.as_deref(),
            pairs,
            Box::new(std::io::stdout()),
        )
    });
    if let Err(error) = metrics {
        tracing::error!(error = %ErrorChain(&error), "start-up failed");
        return ExitCode::FAILURE;
    }
    let app = match App::from_env().await {
        Ok(app) => app,
        Err(error) => {
            tracing::error!(error = %ErrorChain(&error), "start-up failed");
            return ExitCode::FAILURE;
        }
    };
    warm_up(&app, backends).await;
    match lambda_http::run(handler(&app, routes)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %ErrorChain(error.as_ref()), "the Lambda runtime stopped");
            ExitCode::FAILURE
        }
    }
}

/// The TCP + TLS handshakes happen here, in init, rather than in the first request (see
/// BENCHMARKS.md, "Lambda cold start"). Not fatal: a backend that is down at init is reported
/// by the requests that need it (503), and may be back by then.
async fn warm_up(app: &App, backends: WarmUp) {
    match tokio::time::timeout(WARM_UP_DEADLINE, app.warm_up(backends)).await {
        Ok(report) => {
            if let Err(error) = report.store {
                tracing::warn!(error = %ErrorChain(&error), "warm-up of the schema store failed");
            }
            if let Err(error) = report.stream {
                tracing::warn!(error = %ErrorChain(&error), "warm-up of the event stream failed");
            }
        }
        Err(_) => tracing::warn!(deadline = ?WARM_UP_DEADLINE, "warm-up timed out"),
    }
}

/// Lambda's invoke payload is at most 6 MB (6,291,456 bytes) *after* API Gateway has put the
/// body into its event as a JSON string, where every `"` and `\\` of the body is escaped:
/// valid JSON text grows by at most 2×. A body over this limit must still reach the function
/// so that it gets the contract's 413 rather than API Gateway's own error, hence a batch limit
/// of 3,000,000 bytes on Lambda (2 × 3,000,000 plus the event's ~2 KB of headers and context
/// fits; 5 MiB would not). Measured in `tests::a_body_at_the_limit_fits_the_invoke_payload`.
pub const LAMBDA_LIMITS: Limits = Limits {
    event: 1024 * 1024,
    batch: 3_000_000,
    schema: 256 * 1024,
};

/// Lambda's invoke payload limit (synchronous invocation, request).
pub const INVOKE_PAYLOAD_LIMIT: usize = 6_291_456;

/// The app's router of `routes` with [`LAMBDA_LIMITS`], fed what the HTTP layer needs to know
/// of each invocation; the metrics the invocation recorded are written once it has its answer.
pub fn handler(app: &App, routes: Routes) -> axum::Router {
    app.clone()
        .with_limits(LAMBDA_LIMITS)
        .router_of(routes)
        .layer(axum::middleware::from_fn(flush_metrics))
        .layer(axum::middleware::map_request(from_invocation))
}

async fn flush_metrics(request: Request, next: Next) -> Response {
    let request_id = request
        .extensions()
        .get::<LambdaRequestId>()
        .map(|id| id.0.clone());
    let response = next.run(request).await;
    emf::flush(request_id.as_deref());
    response
}

/// Copies into the request, as the HTTP layer's own types, what it needs of the invocation:
/// - its deadline, so that the request's deadline is one the function's timeout can honour
///   (the answer is always the contract's JSON, not a platform timeout);
/// - its request id, logged beside the HTTP request id;
/// - the claims API Gateway's JWT authorizer verified, from which the HTTP layer applies the
///   scope rule (with `AUTH=jwt`, a request that arrives without them is refused).
async fn from_invocation(mut request: Request) -> Request {
    if let Some(context) = request.lambda_context_ref() {
        let deadline = context.deadline();
        let id = LambdaRequestId(context.request_id.clone());
        let extensions = request.extensions_mut();
        extensions.insert(InvocationDeadline(deadline));
        extensions.insert(id);
    }
    if let Some(claims) = authorizer_claims(&request) {
        request.extensions_mut().insert(claims);
    }
    request
}

/// The JWT authorizer's claims of an HTTP API (payload 2.0) request, if it has any.
fn authorizer_claims(request: &Request) -> Option<AuthorizerClaims> {
    let RequestContext::ApiGatewayV2(context) = request.request_context_ref()? else {
        return None;
    };
    let jwt = context.authorizer.as_ref()?.jwt.as_ref()?;
    Some(AuthorizerClaims {
        scopes: jwt.scopes.clone(),
        scope_claim: jwt.claims.get("scope").cloned(),
        subject: jwt.claims.get("sub").cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(case: &str) -> Request {
        let path = format!(
            "{}/../events/send-event/{case}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let json = std::fs::read_to_string(path).expect("the payload");
        lambda_http::request::from_str(&json)
            .expect("an API Gateway event")
            .map(axum::body::Body::new)
    }

    #[test]
    fn the_authorizers_scopes_and_subject_are_handed_over() {
        let claims = authorizer_claims(&payload("authorized")).expect("claims");
        assert_eq!(claims.scopes, Some(vec!["SpongeBob:send".to_owned()]));
        assert_eq!(claims.scope_claim.as_deref(), Some("SpongeBob:send"));
        assert_eq!(claims.subject.as_deref(), Some("7g4r2a3b-producer"));
    }

    #[test]
    fn a_request_without_an_authorizer_has_no_claims() {
        assert!(authorizer_claims(&payload("no-claims")).is_none());
    }

    /// An API Gateway (HTTP API, payload 2.0) event for `POST path` with `body`, as API Gateway
    /// would serialize it.
    fn api_gateway_event(path: &str, body: &str) -> String {
        let template = std::fs::read_to_string(format!(
            "{}/../events/send-event/no-claims.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let mut event: serde_json::Value = serde_json::from_str(&template).unwrap();
        event["rawPath"] = path.into();
        event["requestContext"]["http"]["path"] = path.into();
        event["headers"]["content-length"] = body.len().to_string().into();
        event["body"] = body.into();
        serde_json::to_string(&event).unwrap()
    }

    /// A JSON batch of exactly `len` bytes made of `\"` pairs: the most a valid JSON body
    /// grows when API Gateway escapes it into its event (2×).
    fn worst_case_batch(len: usize) -> String {
        let inner = len - 4; // `["` + `"]`
        let mut body = String::with_capacity(len);
        body.push_str("[\"");
        body.push_str(&"\\\"".repeat(inner / 2));
        if inner % 2 == 1 {
            body.push('x');
        }
        body.push_str("\"]");
        assert_eq!(body.len(), len);
        serde_json::from_str::<serde_json::Value>(&body).expect("valid JSON");
        body
    }

    async fn invoke(router: &axum::Router, event: &str) -> (u16, serde_json::Value) {
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let request = lambda_http::request::from_str(event)
            .expect("an API Gateway event")
            .map(axum::body::Body::new);
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).expect("a JSON answer"),
        )
    }

    /// A function answers its own route, and every other path as the unknown route it is to
    /// that function (API Gateway never sends it one).
    #[tokio::test]
    async fn a_function_serves_its_own_route_only() {
        use event_processor_core::adapters::memory::{MemoryEventStream, MemorySchemaStore};
        let app = App::new(
            std::sync::Arc::new(MemorySchemaStore::new()),
            std::sync::Arc::new(MemoryEventStream::new()),
        );
        let register = api_gateway_event("/Own/Route/register_event", r#"{"type":"object"}"#);
        let send = api_gateway_event("/Own/Route/send_event", "{}");

        let send_event = handler(&app, Routes::SEND_EVENT);
        let (status, body) = invoke(&send_event, &register).await;
        assert_eq!(
            (status, &body["error"]),
            (404, &"not_found".into()),
            "{body}"
        );
        let (status, body) = invoke(&send_event, &send).await;
        assert_eq!(
            (status, &body["error"]),
            (404, &"event_not_registered".into()),
            "{body}"
        );

        let register_event = handler(&app, Routes::REGISTER_EVENT);
        assert_eq!(invoke(&register_event, &register).await.0, 201);
        assert_eq!(invoke(&register_event, &send).await.0, 404);
        let (status, body) = invoke(&send_event, &send).await;
        assert_eq!(status, 200, "{body}");
    }

    #[tokio::test]
    async fn a_body_at_the_limit_fits_the_invoke_payload_and_one_over_gets_the_413() {
        use event_processor_core::adapters::memory::{MemoryEventStream, MemorySchemaStore};
        let app = App::new(
            std::sync::Arc::new(MemorySchemaStore::new()),
            std::sync::Arc::new(MemoryEventStream::new()),
        );
        let router = handler(&app, Routes::ALL);
        let register = api_gateway_event("/Big/Strings/register_event", r#"{"type":"string"}"#);
        assert_eq!(invoke(&router, &register).await.0, 201);

        let path = "/Big/Strings/send_events";
        let at = api_gateway_event(path, &worst_case_batch(LAMBDA_LIMITS.batch));
        let over = api_gateway_event(path, &worst_case_batch(LAMBDA_LIMITS.batch + 1));
        // The measurement: the event around a worst-case body at the limit, and the headroom.
        let overhead = at.len() - 2 * LAMBDA_LIMITS.batch;
        eprintln!(
            "batch at the limit: event {} bytes of {INVOKE_PAYLOAD_LIMIT}; overhead {overhead}; \
             largest body that fits: {}",
            at.len(),
            (INVOKE_PAYLOAD_LIMIT - overhead) / 2
        );
        assert!(at.len() <= INVOKE_PAYLOAD_LIMIT, "{} bytes", at.len());
        assert!(
            over.len() <= INVOKE_PAYLOAD_LIMIT,
            "one byte over still reaches the function"
        );

        let (status, body) = invoke(&router, &at).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = invoke(&router, &over).await;
        assert_eq!(status, 413, "{body}");
        assert_eq!(body["error"], "payload_too_large");

        // A single event: 1 MiB, worst case, fits too.
        let event = worst_case_batch(LAMBDA_LIMITS.event);
        let event = &event[1..event.len() - 1]; // the string itself, one JSON value
        let single = api_gateway_event("/Big/Strings/send_event", event);
        assert!(single.len() <= INVOKE_PAYLOAD_LIMIT);
        assert_eq!(invoke(&router, &single).await.0, 200);
    }

    /// What the function writes to stdout, captured.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    async fn call(router: &axum::Router, uri: &str, body: &str) -> u16 {
        use tower::ServiceExt;
        let request = http::Request::post(uri)
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.to_owned()))
            .unwrap();
        router
            .clone()
            .oneshot(request)
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    // The only test of this binary that installs the process's recorder.
    #[tokio::test]
    async fn each_invocation_writes_what_it_counted_as_embedded_metric_format() {
        use event_processor_core::adapters::memory::{MemoryEventStream, MemorySchemaStore};
        use serde_json::Value;

        let out = Captured::default();
        emf::install(
            "EventProcessorTest",
            Some("send-event"),
            true,
            Box::new(out.clone()),
        )
        .unwrap();
        let app = App::new(
            std::sync::Arc::new(MemorySchemaStore::new()),
            std::sync::Arc::new(MemoryEventStream::new()),
        );
        let router = handler(&app, Routes::ALL);
        assert_eq!(
            call(
                &router,
                "/Emf/Fruits/register_event",
                r#"{"required":["fruit"]}"#
            )
            .await,
            201
        );
        for _ in 0..3 {
            assert_eq!(
                call(&router, "/Emf/Fruits/send_event", r#"{"fruit":"kiwi"}"#).await,
                200
            );
        }
        for _ in 0..2 {
            assert_eq!(
                call(&router, "/Emf/Fruits/send_event", r#"{"color":"red"}"#).await,
                422
            );
        }

        let written = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let documents: Vec<Value> = written
            .lines()
            .map(|line| serde_json::from_str(line).expect("one JSON document per line"))
            .collect();
        let total = |metric: &str, dimension: (&str, &str)| -> u64 {
            documents
                .iter()
                .filter(|d| d["client"] == "Emf" && d[dimension.0] == dimension.1)
                .filter_map(|d| d[metric].as_u64())
                .sum()
        };
        assert_eq!(
            total("events_accepted_total", ("event", "Fruits")),
            3,
            "{written}"
        );
        assert_eq!(
            total("events_rejected_total", ("reason", "validation_failed")),
            2,
            "{written}"
        );
        let requests: u64 = documents
            .iter()
            .filter(|d| d["route"] == "/{client}/{event}/send_event")
            .filter_map(|d| d["requests_total"].as_u64())
            .sum();
        assert_eq!(requests, 5, "{written}");
        for document in &documents {
            assert_eq!(document["function"], "send-event");
            let aws = &document["_aws"]["CloudWatchMetrics"][0];
            assert_eq!(aws["Namespace"], "EventProcessorTest");
            assert!(
                aws["Dimensions"][0]
                    .as_array()
                    .is_some_and(|d| d.contains(&"function".into()))
            );
        }
    }
}
