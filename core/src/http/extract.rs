//! Extractors: what a handler needs from a request, validated, with [`ApiError`] as the
//! rejection so that a bad request gets API.md's JSON answer whichever part is wrong.
//!
//! Axum runs a handler's extractors in argument order; every pair route takes [`Pair`] first
//! and its body last, so a bad name (400) is reported before a bad Content-Type (415), size
//! (413) or body (400), the order in which a client can fix them.

use std::marker::PhantomData;
use std::time::{Duration, SystemTime};

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use serde_json::Value;
use tracing::Span;

use super::AppState;
use super::auth::{Permission, authorize};
use super::body::{self, Limits};
use super::error::ApiError;
use crate::compat::Mode;
use crate::domain::{ClientId, EventName, SchemaVersion};
use crate::retry::Deadline;

/// The `{client}/{event}` of a pair route, validated, recorded on the request span, and
/// checked against the caller's scopes for the route's action `P` (400, then 403).
#[derive(Debug)]
pub(crate) struct Pair<P> {
    pub client: ClientId,
    pub event: EventName,
    permission: PhantomData<P>,
}

impl<S: Send + Sync, P: Permission> FromRequestParts<S> for Pair<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path((client, event)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::InvalidPath)?;
        let client = client_name(&client)?;
        let event = EventName::parse(&event).map_err(|source| ApiError::InvalidName {
            segment: "event",
            source,
        })?;
        Span::current().record("event", event.as_str());
        authorize::<P>(&parts.extensions, &client)?;
        Ok(Self {
            client,
            event,
            permission: PhantomData,
        })
    }
}

/// The `{client}` of a client route (`list_events`), validated and checked like [`Pair`].
#[derive(Debug)]
pub(crate) struct Client<P>(pub ClientId, pub PhantomData<P>);

impl<S: Send + Sync, P: Permission> FromRequestParts<S> for Client<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(client) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::InvalidPath)?;
        let client = client_name(&client)?;
        authorize::<P>(&parts.extensions, &client)?;
        Ok(Self(client, PhantomData))
    }
}

fn client_name(raw: &str) -> Result<ClientId, ApiError> {
    let client = ClientId::parse(raw).map_err(|source| ApiError::InvalidName {
        segment: "client",
        source,
    })?;
    Span::current().record("client", client.as_str());
    Ok(client)
}

/// What a body document is: its form field, its size limit, its name in error messages.
pub(crate) trait DocumentKind {
    /// The form field that holds the document as JSON text (the original clients' encoding).
    const FORM_FIELD: &'static str;
    /// The document's name in error messages, e.g. "the event".
    const WHAT: &'static str;
    fn limit(limits: &Limits) -> usize;
}

/// An event: `send_event`'s body.
#[derive(Debug)]
pub(crate) struct EventDocument;

impl DocumentKind for EventDocument {
    const FORM_FIELD: &'static str = "event";
    const WHAT: &'static str = "the event";
    fn limit(limits: &Limits) -> usize {
        limits.event
    }
}

/// A JSON Schema: `register_event`'s body.
#[derive(Debug)]
pub(crate) struct SchemaDocument;

impl DocumentKind for SchemaDocument {
    const FORM_FIELD: &'static str = "event_schema";
    const WHAT: &'static str = "the schema";
    fn limit(limits: &Limits) -> usize {
        limits.schema
    }
}

/// The JSON document a request carries: the whole body as `application/json`, or the form
/// field `K::FORM_FIELD` holding JSON text. Content-Type (415), then size (413, checked before
/// anything is parsed), then JSON (400).
#[derive(Debug)]
pub(crate) struct Document<K>(pub Value, pub PhantomData<K>);

impl<K: DocumentKind> FromRequest<AppState> for Document<K> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        let encoding = body::encoding(&parts.headers)?;
        let bytes = body::read_limited(&parts.headers, body, K::limit(&state.limits)).await?;
        let value = body::json_document(encoding, &bytes, K::FORM_FIELD, K::WHAT)?;
        Ok(Self(value, PhantomData))
    }
}

/// `?version=N`: the version a route works on (absent: the latest). Anything but a whole
/// number from 1 up, or the parameter given twice, is a 400. Other parameters are ignored.
#[derive(Debug)]
pub(crate) struct VersionQuery(pub Option<SchemaVersion>);

impl<S: Send + Sync> FromRequestParts<S> for VersionQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let Some(query) = parts.uri.query() else {
            return Ok(Self(None));
        };
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(query).map_err(|_| ApiError::InvalidQuery)?;
        let mut versions = pairs.iter().filter(|(name, _)| name == "version");
        match (versions.next(), versions.next()) {
            (None, _) => Ok(Self(None)),
            (Some((_, raw)), None) => SchemaVersion::parse(raw)
                .map(|version| Self(Some(version)))
                .map_err(ApiError::InvalidVersion),
            (Some(_), Some(_)) => Err(ApiError::DuplicateVersion),
        }
    }
}

/// Longest body of `PUT .../compatibility` (`{"compatibility":"FULL_TRANSITIVE"}` is 36 bytes).
const MODE_BODY_LIMIT: usize = 1024;

/// `PUT .../compatibility`'s body: `{"compatibility": "<mode>"}`, as JSON.
#[derive(Debug)]
pub(crate) struct ModeBody(pub Mode);

impl<S: Send + Sync> FromRequest<S> for ModeBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        if body::encoding(&parts.headers)? != body::Encoding::Json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = body::read_limited(&parts.headers, body, MODE_BODY_LIMIT).await?;
        let document = body::parse_json(&bytes, "the body")?;
        let name = document
            .get("compatibility")
            .and_then(Value::as_str)
            .ok_or(ApiError::MissingCompatibility)?;
        name.parse()
            .map(Self)
            .map_err(ApiError::InvalidCompatibility)
    }
}

/// Most events one batch may carry (one Kinesis `PutRecords` call).
pub const MAX_BATCH_ITEMS: usize = 500;

/// `send_events`' body: a JSON array of 1 to [`MAX_BATCH_ITEMS`] events. JSON only: the form
/// encoding of the original clients carries one event.
#[derive(Debug)]
pub(crate) struct Batch(pub Vec<Value>);

impl FromRequest<AppState> for Batch {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        if body::encoding(&parts.headers)? != body::Encoding::Json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = body::read_limited(&parts.headers, body, state.limits.batch).await?;
        match body::parse_json(&bytes, "the batch")? {
            Value::Array(items) if (1..=MAX_BATCH_ITEMS).contains(&items.len()) => Ok(Self(items)),
            _ => Err(ApiError::InvalidBatch {
                max: MAX_BATCH_ITEMS,
            }),
        }
    }
}

/// When a Lambda invocation must have answered; the Lambda glue puts it in the request's
/// extensions. `serve` has none.
#[derive(Debug, Clone, Copy)]
pub struct InvocationDeadline(pub SystemTime);

/// Time kept back from a Lambda invocation's deadline to send the answer to the runtime.
pub const INVOCATION_MARGIN: Duration = Duration::from_secs(1);

/// The request's deadline, decided here and only here: the HTTP layer's budget, or less if
/// the Lambda invocation ends sooner ([`INVOCATION_MARGIN`] before its deadline).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestDeadline(pub Deadline);

impl FromRequestParts<AppState> for RequestDeadline {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, std::convert::Infallible> {
        let mut budget = state.request_budget;
        if let Some(InvocationDeadline(at)) = parts.extensions.get() {
            let left = at.duration_since(SystemTime::now()).unwrap_or_default();
            budget = budget.min(left.saturating_sub(INVOCATION_MARGIN));
        }
        Ok(Self(Deadline::after(budget)))
    }
}
