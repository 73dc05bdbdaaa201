//! The one HTTP layer: an axum `Router` implementing API.md over the [`Processor`].
//!
//! `event-processor serve` and every Lambda function mount this same router, so the paths,
//! limits, status codes and error bodies are identical in every runtime. Handlers are thin:
//! extractors ([`extract`]) validate names and bodies and decide the request's deadline, the
//! processor does the work, typed bodies ([`response`]) and [`ApiError`] make the answer.

mod auth;
mod body;
mod edge;
mod error;
mod extract;
mod idempotent;
mod response;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Method, Request, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub use auth::{Auth, AuthorizerClaims, Unauthenticated};
pub use body::{DRAIN_LIMIT, DRAIN_TIME, Limits};
pub use edge::LambdaRequestId;
pub use error::{ApiError, RETRY_AFTER_SECS};
pub use extract::{INVOCATION_MARGIN, InvocationDeadline, MAX_BATCH_ITEMS};

use crate::processor::{BatchVerdict, Item, Processor, Registered, Submission};
use auth::{ToRead, ToRegister, ToSend};
use edge::Logged;
use extract::{
    Batch, Client, Document, EventDocument, IdempotencyHeader, ModeBody, Paging, Pair, RejectionId,
    RequestDeadline, RequestId, SchemaDocument, Submitted, VersionQuery,
};
use response::Reply;

/// How long a request may take when nothing shorter is imposed (a Lambda invocation imposes
/// its own remaining time): every retry of every backend call of the request fits in it.
pub const REQUEST_BUDGET: Duration = Duration::from_secs(10);

/// Renders the process's metrics in the Prometheus text format (`serve`'s `GET /metrics`).
pub type MetricsRender = Arc<dyn Fn() -> String + Send + Sync>;

/// The send routes, whose templates are part of an idempotent request's fingerprint.
const SEND_EVENT: &str = "/{client}/{event}/send_event";
const SEND_EVENTS: &str = "/{client}/{event}/send_events";

/// Shared state of every handler, behind one `Arc`: axum clones the state for every request,
/// and a clone of the processor itself (its ports and caches) is a dozen atomic increments
/// and decrements, measured at ~7% of a small send's CPU.
#[derive(Clone)]
pub(crate) struct AppState(Arc<Shared>);

pub(crate) struct Shared {
    processor: Processor,
    limits: Limits,
    request_budget: Duration,
    metrics: Option<MetricsRender>,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The HTTP API over a processor, with its settings.
pub struct Api {
    state: Shared,
    auth: Auth,
}

impl Api {
    /// The API with API.md's default limits and [`REQUEST_BUDGET`].
    pub fn new(processor: Processor) -> Self {
        Self {
            state: Shared {
                processor,
                limits: Limits::default(),
                request_budget: REQUEST_BUDGET,
                metrics: None,
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

    /// Serves `GET /metrics` with `render` (`serve`; a Lambda function writes its metrics to
    /// its log instead). With `AUTH=jwt`, it needs the `*:read` scope.
    pub fn metrics(mut self, render: MetricsRender) -> Self {
        self.state.metrics = Some(render);
        self
    }

    /// Body size limits other than API.md's defaults (a Lambda function's, which must fit
    /// Lambda's invoke payload).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.state.limits = limits;
        self
    }

    /// The whole API of API.md.
    pub fn router(self) -> Router {
        self.router_of(Routes::ALL)
    }

    /// The API's `routes` only, behind the same edge layer (a Lambda function mounts its own
    /// endpoint: see [`Routes`]).
    pub fn router_of(self, routes: Routes) -> Router {
        (routes.0)(Router::new())
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .with_state(AppState(Arc::new(self.state)))
            // Every route and the fallbacks: a request to no route gets its id, its log line
            // and its 401 like any other.
            .layer(axum::middleware::from_fn_with_state(self.auth, edge::edge))
    }
}

/// Which routes of API.md a router serves: all of them (`serve`), or one Lambda function's.
///
/// API Gateway sends a function only its own endpoint, so a function's router needs only that
/// route; each constant names its handlers alone, so a function's binary links only the code
/// its endpoint reaches (not the compatibility checker into `send-event`, for instance). Its
/// route answers as in `serve`; any other path is an unknown route to it (404). API Gateway's
/// `$default` route, which receives what no route matches, goes to a function that mounts
/// [`Routes::ALL`], so a wrong method still gets its 405 with `Allow`.
#[derive(Clone, Copy, Debug)]
pub struct Routes(fn(Router<AppState>) -> Router<AppState>);

impl Routes {
    /// Every route of API.md, and `GET /metrics`.
    pub const ALL: Routes = Routes(|router| {
        [
            Routes::REGISTER_EVENT,
            Routes::CHECK_COMPATIBILITY,
            Routes::SEND_EVENT,
            Routes::SEND_EVENTS,
            Routes::VALIDATE,
            Routes::GET_SCHEMA,
            Routes::VERSIONS,
            Routes::COMPATIBILITY,
            Routes::LIST_EVENTS,
            Routes::REJECTED,
            Routes::REPLAY,
        ]
        .into_iter()
        .fold(router, |router, routes| (routes.0)(router))
        .route("/metrics", get(metrics_text))
    });
    pub const REGISTER_EVENT: Routes =
        Routes(|router| router.route("/{client}/{event}/register_event", post(register_event)));
    pub const CHECK_COMPATIBILITY: Routes = Routes(|router| {
        router.route(
            "/{client}/{event}/check_compatibility",
            post(check_compatibility),
        )
    });
    pub const SEND_EVENT: Routes = Routes(|router| router.route(SEND_EVENT, post(send_event)));
    pub const SEND_EVENTS: Routes = Routes(|router| router.route(SEND_EVENTS, post(send_events)));
    pub const VALIDATE: Routes =
        Routes(|router| router.route("/{client}/{event}/validate", post(validate)));
    pub const GET_SCHEMA: Routes =
        Routes(|router| router.route("/{client}/{event}/schema", get(get_schema)));
    pub const VERSIONS: Routes =
        Routes(|router| router.route("/{client}/{event}/versions", get(versions)));
    /// `GET` and `PUT`: one function serves both.
    pub const COMPATIBILITY: Routes = Routes(|router| {
        router.route(
            "/{client}/{event}/compatibility",
            get(get_compatibility).put(put_compatibility),
        )
    });
    pub const LIST_EVENTS: Routes =
        Routes(|router| router.route("/{client}/list_events", get(list_events)));
    pub const REJECTED: Routes =
        Routes(|router| router.route("/{client}/{event}/rejected", get(rejected)));
    pub const REPLAY: Routes =
        Routes(|router| router.route("/{client}/{event}/rejected/{id}/replay", post(replay)));
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

#[allow(clippy::too_many_arguments)]
async fn send_event(
    State(state): State<AppState>,
    Pair { client, event, .. }: Pair<ToSend>,
    VersionQuery(version): VersionQuery,
    RequestDeadline(deadline): RequestDeadline,
    RequestId(request_id): RequestId,
    IdempotencyHeader(key): IdempotencyHeader,
    Submitted { body, text, data }: Submitted,
) -> Result<Response, ApiError> {
    let to = Submission {
        client: &client,
        event: &event,
        version,
        deadline,
        request_id: request_id.as_deref(),
    };
    let data = readable(&state, &to, &text, data).await?;
    let processor = &state.processor;
    idempotent::once(&state, SEND_EVENT, &to, key, &body, 1, |ids| async move {
        let id = ids.and_then(|ids| ids.first().copied());
        let accepted = processor.receive_event(&to, data, &text, id).await?;
        let mut response = Reply::succeeded("event sent", response::Sent { id: accepted.id })
            .with_status(StatusCode::OK);
        Logged {
            version: Some(accepted.version),
            ..Logged::default()
        }
        .on(&mut response);
        Ok(response)
    })
    .await
}

/// A body that could not be read as the route's document is kept as a rejection of the pair
/// (as received) before its error is answered.
async fn readable<T>(
    state: &AppState,
    to: &Submission<'_>,
    received: &[u8],
    parsed: Result<T, ApiError>,
) -> Result<T, ApiError> {
    match parsed {
        Ok(value) => Ok(value),
        Err(error) => {
            state
                .processor
                .reject_unreadable(to, received, error.to_string())
                .await;
            Err(error)
        }
    }
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

#[allow(clippy::too_many_arguments)]
async fn send_events(
    State(state): State<AppState>,
    Pair { client, event, .. }: Pair<ToSend>,
    VersionQuery(version): VersionQuery,
    RequestDeadline(deadline): RequestDeadline,
    RequestId(request_id): RequestId,
    IdempotencyHeader(key): IdempotencyHeader,
    Batch { body, items }: Batch,
) -> Result<Response, ApiError> {
    let to = Submission {
        client: &client,
        event: &event,
        version,
        deadline,
        request_id: request_id.as_deref(),
    };
    let items = readable(&state, &to, &body, items).await?;
    let count = items.len();
    let processor = &state.processor;
    let raw = &body;
    idempotent::once(
        &state,
        SEND_EVENTS,
        &to,
        key,
        &body,
        count,
        |ids| async move {
            let items = items
                .into_iter()
                .map(|(data, text)| Item {
                    data,
                    text: &raw[text],
                })
                .collect();
            let report = processor.receive_events(&to, items, ids.as_deref()).await?;
            let mut response = batch_answer(&report);
            Logged {
                items: Some(count),
                ..Logged::default()
            }
            .on(&mut response);
            Ok(response)
        },
    )
    .await
}

/// A batch's answer from its report: the status from the mix of its items' outcomes.
fn batch_answer(report: &crate::processor::BatchReport) -> Response {
    let (status, error, msg) = match report.verdict {
        BatchVerdict::AllAccepted => (StatusCode::OK, None, "all events sent"),
        BatchVerdict::SomeAccepted => (
            StatusCode::MULTI_STATUS,
            Some("partially_accepted"),
            "some events were not sent; see results",
        ),
        BatchVerdict::Unavailable { unconfirmed: false } => (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("service_unavailable"),
            "the event stream is unavailable; no event was published, retry later",
        ),
        BatchVerdict::Unavailable { unconfirmed: true } => (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("publish_unconfirmed"),
            "the event stream did not confirm some events: they may be in the stream under the \
             ids given; retry with the same Idempotency-Key",
        ),
        BatchVerdict::TooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            Some("payload_too_large"),
            "no event was sent: every event is too large for one stream record",
        ),
        BatchVerdict::NoneValid => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("validation_failed"),
            "no event was sent: none satisfies the registered schema and can be published; see results",
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
        body: response::Batch::of(report),
    }
    .with_status(status);
    if report.retryable() {
        // Some items can be retried; tell the client when.
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    }
    response
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

async fn rejected(
    State(state): State<AppState>,
    Pair { client, event, .. }: Pair<ToRead>,
    Paging { limit, before }: Paging,
    RequestDeadline(deadline): RequestDeadline,
) -> Result<Response, ApiError> {
    let page = state
        .processor
        .rejected(&client, &event, limit, before, deadline)
        .await?;
    let msg = format!(
        "{} rejected event(s) of {client}/{event}",
        page.rejected.len()
    );
    let body = response::Rejected {
        rejected: &page.rejected,
        next: page.next,
    };
    Ok(Reply::succeeded(msg, body).with_status(StatusCode::OK))
}

async fn replay(
    State(state): State<AppState>,
    Pair { client, event, .. }: Pair<ToSend>,
    RejectionId(id): RejectionId,
    VersionQuery(version): VersionQuery,
    RequestDeadline(deadline): RequestDeadline,
) -> Result<Response, ApiError> {
    let replayed = state
        .processor
        .replay(&client, &event, id, version, deadline)
        .await?;
    let body = response::Replayed {
        id: replayed.id,
        version: replayed.version,
    };
    let mut response = Reply::succeeded("event replayed", body).with_status(StatusCode::OK);
    Logged {
        version: Some(replayed.version),
        ..Logged::default()
    }
    .on(&mut response);
    Ok(response)
}

/// `serve`'s metrics, Prometheus text. With `AUTH=jwt` they need `*:read`: they name every
/// client's pairs.
async fn metrics_text(
    State(state): State<AppState>,
    request: Request<Body>,
) -> Result<Response, ApiError> {
    let Some(render) = &state.metrics else {
        return Err(ApiError::NotFound {
            method: Method::GET.to_string(),
            path: "/metrics".to_owned(),
        });
    };
    auth::authorize_all::<ToRead>(request.extensions())?;
    let mut response = render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
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
