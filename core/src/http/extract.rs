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
use bytes::Bytes;
use serde_json::Value;
use serde_json::value::RawValue;
use tracing::Span;

use super::AppState;
use super::auth::{Permission, authorize};
use super::body::{self, Limits};
use super::error::ApiError;
use crate::compat::Mode;
use crate::domain::{
    ClientId, EventId, EventName, IdempotencyKey, IdempotencyKeyError, SchemaVersion,
};
use crate::processor::MAX_REJECTED_PAGE;
use crate::retry::Deadline;

/// The `{client}/{event}` of a pair route, validated, recorded on the request span, and
/// checked against the caller's scopes for the route's action `P` (400, then 403).
#[derive(Debug)]
pub(crate) struct Pair<P> {
    pub client: ClientId,
    pub event: EventName,
    permission: PhantomData<P>,
}

/// The names of a pair route's path (by name: some routes have more parameters).
#[derive(serde::Deserialize)]
struct PairPath {
    client: String,
    event: String,
}

impl<S: Send + Sync, P: Permission> FromRequestParts<S> for Pair<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(PairPath { client, event }) = Path::<PairPath>::from_request_parts(parts, state)
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

/// The `{id}` of a rejection route: a UUID (400 otherwise).
#[derive(Debug)]
pub(crate) struct RejectionId(pub EventId);

#[derive(serde::Deserialize)]
struct RejectionPath {
    id: String,
}

impl<S: Send + Sync> FromRequestParts<S> for RejectionId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(RejectionPath { id }) = Path::<RejectionPath>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::InvalidPath)?;
        id.parse().map(Self).map_err(ApiError::InvalidRejectionId)
    }
}

/// `?limit=N&before=ID` of `rejected`: 1 to [`MAX_REJECTED_PAGE`] (default 100), and the
/// `next` of the previous page.
#[derive(Debug)]
pub(crate) struct Paging {
    pub limit: usize,
    pub before: Option<EventId>,
}

/// Rejections listed when `limit` is not given.
const DEFAULT_REJECTED_PAGE: usize = 100;

impl<S: Send + Sync> FromRequestParts<S> for Paging {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let invalid = || ApiError::InvalidPaging {
            max: MAX_REJECTED_PAGE,
        };
        let pairs: Vec<(String, String)> = match parts.uri.query() {
            Some(query) => serde_urlencoded::from_str(query).map_err(|_| ApiError::InvalidQuery)?,
            None => Vec::new(),
        };
        let single = |name: &str| -> Result<Option<&str>, ApiError> {
            let mut values = pairs
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.as_str());
            match (values.next(), values.next()) {
                (value, None) => Ok(value),
                (_, Some(_)) => Err(invalid()),
            }
        };
        let limit = match single("limit")? {
            None => DEFAULT_REJECTED_PAGE,
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_REJECTED_PAGE).contains(n))
                .ok_or_else(invalid)?,
        };
        let before = single("before")?
            .map(|raw| raw.parse::<EventId>().map_err(|_| invalid()))
            .transpose()?;
        Ok(Self { limit, before })
    }
}

/// The `Idempotency-Key` header, if any: 1–255 visible ASCII characters, once (400
/// `invalid_idempotency_key` otherwise).
#[derive(Debug)]
pub(crate) struct IdempotencyHeader(pub Option<IdempotencyKey>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let mut values = parts.headers.get_all(IDEMPOTENCY_KEY).iter();
        match (values.next(), values.next()) {
            (None, _) => Ok(Self(None)),
            (Some(value), None) => Ok(Self(Some(IdempotencyKey::parse(value.as_bytes())?))),
            (Some(_), Some(_)) => Err(IdempotencyKeyError.into()),
        }
    }
}

/// The header of an idempotent request.
pub(crate) const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The request's id (`x-request-id`, set by the edge layer if the client sent none),
/// kept with the rejections it causes.
#[derive(Debug)]
pub(crate) struct RequestId(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Self, std::convert::Infallible> {
        Ok(Self(
            parts
                .headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(|id| id.chars().take(200).collect()),
        ))
    }
}

/// An event a send route received: the raw body (an idempotency key's fingerprint), the
/// event's text (the body, or the form field; what a rejection keeps), and the event parsed,
/// or why it is not JSON (the handler keeps it as a rejection before answering 400).
/// Content-Type (415), size (413) and form errors (400) are answered by the extractor.
#[derive(Debug)]
pub(crate) struct Submitted {
    pub body: Bytes,
    pub text: Bytes,
    pub data: Result<Value, ApiError>,
}

impl FromRequest<AppState> for Submitted {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        let encoding = body::encoding(&parts.headers)?;
        let body = body::read_limited(&parts.headers, body, state.limits.event).await?;
        let text = match encoding {
            body::Encoding::Json => body.clone(),
            body::Encoding::Form => {
                Bytes::from(body::form_field(&body, EventDocument::FORM_FIELD)?)
            }
        };
        let data = body::parse_json(&text, EventDocument::WHAT);
        Ok(Self { body, text, data })
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

/// `send_events`' body: a JSON array of 1 to [`MAX_BATCH_ITEMS`] events, each with where its
/// text lies in the raw body (a rejected item keeps its text as received), and the raw body (an
/// idempotency key's fingerprint; what a rejection keeps when the body is not JSON). JSON only:
/// the form encoding of the original clients carries one event. A body that is not JSON is
/// left to the handler (it keeps it as a rejection); JSON of the wrong shape is a 400.
#[derive(Debug)]
pub(crate) struct Batch {
    pub body: Bytes,
    pub items: Result<Vec<(Value, std::ops::Range<usize>)>, ApiError>,
}

impl FromRequest<AppState> for Batch {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        if body::encoding(&parts.headers)? != body::Encoding::Json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let body = body::read_limited(&parts.headers, body, state.limits.batch).await?;
        let not_a_batch = || ApiError::InvalidBatch {
            max: MAX_BATCH_ITEMS,
        };
        let items = match serde_json::from_slice::<Vec<&RawValue>>(&body) {
            Ok(raw) if (1..=MAX_BATCH_ITEMS).contains(&raw.len()) => Ok(raw
                .into_iter()
                .map(|item| {
                    let text = item.get();
                    // The item's place in the body: its text is a slice of it.
                    let start = text.as_ptr() as usize - body.as_ptr() as usize;
                    let value = body::parse_json(text.as_bytes(), "a batch item")?;
                    Ok((value, start..start + text.len()))
                })
                .collect::<Result<Vec<_>, ApiError>>()?),
            Ok(_) => return Err(not_a_batch()),
            // JSON, but not an array: the batch's shape is wrong. Not JSON: the handler keeps it.
            Err(_) => match serde_json::from_slice::<serde::de::IgnoredAny>(&body) {
                Ok(_) => return Err(not_a_batch()),
                Err(source) => Err(ApiError::InvalidJson {
                    what: "the batch",
                    source,
                }),
            },
        };
        Ok(Self { body, items })
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
