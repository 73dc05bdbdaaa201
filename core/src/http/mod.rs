//! The one HTTP layer: an axum `Router` implementing API.md over the [`Processor`].
//!
//! `event-processor serve` and every Lambda function mount this same router, so the paths,
//! limits, status codes and error bodies are identical in every runtime. Handlers are thin:
//! extractors ([`extract`]) validate names and bodies and decide the request's deadline, the
//! processor does the work, typed bodies ([`response`]) and [`ApiError`] make the answer.

mod auth;
mod body;
mod error;
mod extract;
mod response;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Method, Request, StatusCode, Uri, header};
use axum::response::Response;
use axum::routing::{get, post};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::{Span, field};

pub use auth::{Auth, AuthorizerClaims, Unauthenticated};
pub use body::Limits;
pub use error::{ApiError, RETRY_AFTER_SECS};
pub use extract::{INVOCATION_MARGIN, InvocationDeadline, MAX_BATCH_ITEMS};

use crate::processor::{BatchVerdict, Processor, Registered};
use auth::{ToRead, ToRegister, ToSend};
use extract::{
    Batch, Client, Document, EventDocument, ModeBody, Pair, RequestDeadline, SchemaDocument,
    VersionQuery,
};
use response::Reply;

/// How long a request may take when nothing shorter is imposed (a Lambda invocation imposes
/// its own remaining time): every retry of every backend call of the request fits in it.
pub const REQUEST_BUDGET: Duration = Duration::from_secs(10);

/// Shared state of every handler.
#[derive(Clone)]
pub(crate) struct AppState {
    processor: Processor,
    limits: Limits,
    request_budget: Duration,
}

/// The HTTP API over a processor, with its settings.
pub struct Api {
    state: AppState,
    auth: Auth,
}

impl Api {
    /// The API with API.md's default limits and [`REQUEST_BUDGET`].
    pub fn new(processor: Processor) -> Self {
        Self {
            state: AppState {
                processor,
                limits: Limits::default(),
                request_budget: REQUEST_BUDGET,
            },
            auth: Auth::Off,
        }
    }

    /// How requests are authenticated (default: [`Auth::Off`]).
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// Gives each request `budget` instead of [`REQUEST_BUDGET`] (tests of retry deadlines).
    pub fn request_budget(mut self, budget: Duration) -> Self {
        self.state.request_budget = budget;
        self
    }

    /// The whole API of API.md.
    pub fn router(self) -> Router {
        Router::new()
            .route("/{client}/{event}/register_event", post(register_event))
            .route(
                "/{client}/{event}/check_compatibility",
                post(check_compatibility),
            )
            .route("/{client}/{event}/send_event", post(send_event))
            .route("/{client}/{event}/send_events", post(send_events))
            .route("/{client}/{event}/validate", post(validate))
            .route("/{client}/{event}/schema", get(get_schema))
            .route("/{client}/{event}/versions", get(versions))
            .route(
                "/{client}/{event}/compatibility",
                get(get_compatibility).put(put_compatibility),
            )
            .route("/{client}/list_events", get(list_events))
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .with_state(self.state)
            // Before routing: an unauthenticated request learns nothing, not even which routes exist.
            .layer(axum::middleware::from_fn_with_state(
                self.auth,
                auth::authenticate,
            ))
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
}

async fn register_event(
    State(state): State<AppState>,
    Pair { client, event, .. }: Pair<ToRegister>,
    RequestDeadline(deadline): RequestDeadline,
    Document(schema, _): Document<SchemaDocument>,
) -> Result<Response, ApiError> {
    let registered = state
        .processor
        .register_event(&client, &event, schema, deadline)
        .await?;
    let status = match registered {
        Registered::Created(_) => StatusCode::CREATED,
        Registered::Unchanged(_) => StatusCode::OK,
    };
    let body = response::Registration {
        client: &client,
        event: &event,
        version: registered.version(),
    };
    Ok(Reply::succeeded("event registered", body).with_status(status))
}

async fn check_compatibility(
    State(state): State<AppState>,
    Pair { client, event, .. }: Pair<ToRegister>,
    RequestDeadline(deadline): RequestDeadline,
    Document(schema, _): Document<SchemaDocument>,
) -> Result<Response, ApiError> {
    let report = state
        .processor
        .check_compatibility(&client, &event, &schema, deadline)
        .await?;
    let msg = if report.compatible {
        "the schema can be registered"
    } else {
        "the schema is not compatible; see incompatibilities"
    };
    let body = response::CompatibilityCheck {
        compatible: report.compatible,
        mode: report.mode,
        incompatibilities: &report.incompatibilities,
        version: report.version,
    };
    Ok(Reply::succeeded(msg, body).with_status(StatusCode::OK))
}

async fn send_event(
    State(state): State<AppState>,
    Pair { client, event, .. }: Pair<ToSend>,
    VersionQuery(version): VersionQuery,
    RequestDeadline(deadline): RequestDeadline,
    Document(data, _): Document<EventDocument>,
) -> Result<Response, ApiError> {
    let accepted = state
        .processor
        .receive_event(&client, &event, data, version, deadline)
        .await?;
    let body = response::Sent { id: accepted.id };
    Ok(Reply::succeeded("event sent", body).with_status(StatusCode::OK))
}

async fn validate(
    State(state): State<AppState>,
    Pair { client, event, .. }: Pair<ToSend>,
    VersionQuery(version): VersionQuery,
    RequestDeadline(deadline): RequestDeadline,
    Document(data, _): Document<EventDocument>,
) -> Result<Response, ApiError> {
    let version = state
        .processor
        .validate_event(&client, &event, &data, version, deadline)
        .await?;
    Ok(Reply::succeeded("event is valid", response::Valid { version }).with_status(StatusCode::OK))
}

async fn send_events(
    State(state): State<AppState>,
    Pair { client, event, .. }: Pair<ToSend>,
    VersionQuery(version): VersionQuery,
    RequestDeadline(deadline): RequestDeadline,
    Batch(items): Batch,
) -> Result<Response, ApiError> {
    let report = state
        .processor
        .receive_events(&client, &event, items, version, deadline)
        .await?;
    let (status, error, msg) = match report.verdict {
        BatchVerdict::AllAccepted => (StatusCode::OK, None, "all events sent"),
        BatchVerdict::SomeAccepted => (
            StatusCode::MULTI_STATUS,
            Some("partially_accepted"),
            "some events were not sent; see results",
        ),
        BatchVerdict::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("service_unavailable"),
            "the event stream is unavailable; no event was published, retry later",
        ),
        BatchVerdict::NoneValid => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("validation_failed"),
            "no event satisfies the registered schema",
        ),
    };
    let mut response = Reply {
        code: if error.is_none() {
            response::Code::Succeeded
        } else {
            response::Code::Failed
        },
        msg: msg.into(),
        error,
        body: response::Batch::of(&report),
    }
    .with_status(status);
    if report.retryable() {
        // Some items can be retried; tell the client when.
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    }
    Ok(response)
}

async fn get_schema(
    State(state): State<AppState>,
    Pair { client, event, .. }: Pair<ToRead>,
    VersionQuery(version): VersionQuery,
    RequestDeadline(deadline): RequestDeadline,
) -> Result<Response, ApiError> {
    let registered = state
        .processor
        .get_event_schema(&client, &event, version, deadline)
        .await?;
    let body = response::Schema {
        schema: &registered.schema,
        version: registered.version,
    };
    Ok(Reply::succeeded("schema recovered", body).with_status(StatusCode::OK))
}

async fn versions(
    State(state): State<AppState>,
    Pair { client, event, .. }: Pair<ToRead>,
    RequestDeadline(deadline): RequestDeadline,
) -> Result<Response, ApiError> {
    let versions = state
        .processor
        .list_versions(&client, &event, deadline)
        .await?;
    let msg = format!("{} version(s) of {client}/{event}", versions.len());
    let body = response::Versions {
        versions: &versions,
    };
    Ok(Reply::succeeded(msg, body).with_status(StatusCode::OK))
}

async fn get_compatibility(
    State(state): State<AppState>,
    Pair { client, event, .. }: Pair<ToRead>,
    RequestDeadline(deadline): RequestDeadline,
) -> Result<Response, ApiError> {
    let (compatibility, default) = state
        .processor
        .compatibility(&client, &event, deadline)
        .await?;
    let body = response::Compatibility {
        compatibility,
        default,
    };
    Ok(Reply::succeeded("compatibility mode", body).with_status(StatusCode::OK))
}

async fn put_compatibility(
    State(state): State<AppState>,
    Pair { client, event, .. }: Pair<ToRegister>,
    RequestDeadline(deadline): RequestDeadline,
    ModeBody(mode): ModeBody,
) -> Result<Response, ApiError> {
    state
        .processor
        .set_compatibility(&client, &event, mode, deadline)
        .await?;
    let body = response::Compatibility {
        compatibility: mode,
        default: false,
    };
    Ok(Reply::succeeded("compatibility mode set", body).with_status(StatusCode::OK))
}

async fn list_events(
    State(state): State<AppState>,
    Client(client, _): Client<ToRead>,
    RequestDeadline(deadline): RequestDeadline,
) -> Result<Response, ApiError> {
    let events = state
        .processor
        .list_registered_events(&client, deadline)
        .await?;
    let msg = format!("{} event(s) registered for {client}", events.len());
    Ok(Reply::succeeded(msg, response::Events { events: &events }).with_status(StatusCode::OK))
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
    Reply {
        code: response::Code::Failed,
        msg: "internal error".into(),
        error: Some("internal_error"),
        body: response::FailureDetails::default(),
    }
    .with_status(StatusCode::INTERNAL_SERVER_ERROR)
}
