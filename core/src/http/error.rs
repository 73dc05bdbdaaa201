//! The HTTP edge's error type: the only place where failures become status codes.
//! Server-side failures are logged here with their full source chain and answered with a
//! generic message: no SDK, SQL or file-system text ever reaches a client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::auth::Unauthenticated;
use super::edge::Logged;
use super::response::{Code, FailureDetails, Reply};
use crate::auth::Action;
use crate::compat::UnknownMode;
use crate::domain::NameError;
use crate::domain::VersionError;
use crate::domain::{ClientId, IdempotencyKeyError};
use crate::error::ErrorChain;
use crate::ports::StreamError;
use crate::processor::ProcessError;
use crate::schema::{SchemaError, ValidationIssue};

/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECS: u64 = 1;

/// Everything that can go wrong with a request, in API.md's terms.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid {segment} name: {source}")]
    InvalidName {
        segment: &'static str,
        #[source]
        source: NameError,
    },
    #[error("the request path is not valid UTF-8 or is malformed")]
    InvalidPath,
    #[error("Content-Type must be application/json or application/x-www-form-urlencoded")]
    UnsupportedMediaType,
    #[error("the body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the request body could not be read")]
    BodyUnreadable,
    #[error("the body is not valid form encoding")]
    InvalidForm,
    #[error("form field `{0}` is missing")]
    MissingFormField(&'static str),
    #[error("form field `{0}` is given more than once")]
    DuplicateFormField(&'static str),
    #[error("{what} is not valid JSON: {source}")]
    InvalidJson {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("a batch must be a JSON array of 1 to {max} events")]
    InvalidBatch { max: usize },
    #[error("invalid `version` parameter: {0}")]
    InvalidVersion(#[source] VersionError),
    #[error("`version` is given more than once")]
    DuplicateVersion,
    #[error("the query string is not valid URL encoding")]
    InvalidQuery,
    #[error(transparent)]
    InvalidCompatibility(UnknownMode),
    #[error("the body must be a JSON object with a string member `compatibility`")]
    MissingCompatibility,
    #[error("a valid bearer token is required")]
    Unauthenticated(#[source] Unauthenticated),
    #[error("the token does not allow {action} on client {client}")]
    Forbidden { action: Action, client: ClientId },
    #[error("the token does not allow {action} on every client (`*`)")]
    ForbiddenAll { action: Action },
    #[error("no route for {method} {path}")]
    NotFound { method: String, path: String },
    #[error("method {0} is not allowed on this route")]
    MethodNotAllowed(String),
    #[error(transparent)]
    InvalidIdempotencyKey(#[from] IdempotencyKeyError),
    #[error("a request with this Idempotency-Key is still in progress; retry later")]
    RequestInProgress,
    #[error("this Idempotency-Key was used for another request (another body or version)")]
    IdempotencyKeyReused,
    #[error("invalid rejection id: {0}")]
    InvalidRejectionId(#[source] uuid::Error),
    #[error("`limit` must be a whole number from 1 to {max}; `before` a rejection id")]
    InvalidPaging { max: usize },
    /// The answer could not be buffered to keep it for an idempotency key (never expected:
    /// the gateway's answers are in memory).
    #[error("the answer could not be kept")]
    AnswerLost,
    #[error(transparent)]
    Process(#[from] ProcessError),
}

impl ApiError {
    /// Status code and stable machine-readable error identifier.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        use ProcessError as P;
        match self {
            ApiError::InvalidName { .. } => (StatusCode::BAD_REQUEST, "invalid_name"),
            ApiError::InvalidPath => (StatusCode::BAD_REQUEST, "invalid_path"),
            ApiError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            ApiError::BodyUnreadable => (StatusCode::BAD_REQUEST, "body_unreadable"),
            ApiError::InvalidForm => (StatusCode::BAD_REQUEST, "invalid_form"),
            ApiError::MissingFormField(_) => (StatusCode::BAD_REQUEST, "missing_form_field"),
            ApiError::DuplicateFormField(_) => (StatusCode::BAD_REQUEST, "duplicate_form_field"),
            ApiError::InvalidJson { .. } => (StatusCode::BAD_REQUEST, "invalid_json"),
            ApiError::InvalidBatch { .. } => (StatusCode::BAD_REQUEST, "invalid_batch"),
            ApiError::InvalidVersion(_) | ApiError::DuplicateVersion => {
                (StatusCode::BAD_REQUEST, "invalid_version")
            }
            ApiError::InvalidQuery => (StatusCode::BAD_REQUEST, "invalid_query"),
            ApiError::InvalidCompatibility(_) | ApiError::MissingCompatibility => {
                (StatusCode::BAD_REQUEST, "invalid_compatibility")
            }
            ApiError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            ApiError::Forbidden { .. } | ApiError::ForbiddenAll { .. } => {
                (StatusCode::FORBIDDEN, "forbidden")
            }
            ApiError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::InvalidIdempotencyKey(_) => {
                (StatusCode::BAD_REQUEST, "invalid_idempotency_key")
            }
            ApiError::RequestInProgress | ApiError::Process(P::ReplayInProgress { .. }) => {
                (StatusCode::CONFLICT, "request_in_progress")
            }
            ApiError::IdempotencyKeyReused => {
                (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
            }
            ApiError::InvalidRejectionId(_) => (StatusCode::BAD_REQUEST, "invalid_rejection_id"),
            ApiError::InvalidPaging { .. } => (StatusCode::BAD_REQUEST, "invalid_query"),
            ApiError::Process(P::RejectionNotFound { .. }) => {
                (StatusCode::NOT_FOUND, "rejection_not_found")
            }
            ApiError::Process(P::NotReplayable { .. }) => (StatusCode::CONFLICT, "not_replayable"),
            ApiError::Process(P::NotRegistered { .. }) => {
                (StatusCode::NOT_FOUND, "event_not_registered")
            }
            ApiError::Process(P::VersionNotFound { .. }) => {
                (StatusCode::NOT_FOUND, "version_not_found")
            }
            ApiError::Process(P::InvalidSchema(_)) => (StatusCode::BAD_REQUEST, "invalid_schema"),
            ApiError::Process(P::Incompatible { .. }) => {
                (StatusCode::CONFLICT, "schema_incompatible")
            }
            ApiError::Process(P::VersionsExhausted { .. }) => {
                (StatusCode::CONFLICT, "versions_exhausted")
            }
            ApiError::Process(P::InvalidEvent { .. }) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
            }
            ApiError::Process(P::Stream(StreamError::TooLarge { .. })) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            ApiError::AnswerLost
            | ApiError::Process(P::Stream(StreamError::Encode(_)) | P::Encode(_)) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal_error")
            }
            ApiError::Process(P::Stream(StreamError::Unconfirmed(_))) => {
                (StatusCode::SERVICE_UNAVAILABLE, "publish_unconfirmed")
            }
            ApiError::Process(P::Store(_) | P::Stream(_)) => {
                (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable")
            }
        }
    }

    /// The sentence shown to the client. Server-side failures get a fixed sentence; their
    /// detail goes to the log only.
    fn client_message(&self) -> String {
        if self.status_and_code().0 == StatusCode::INTERNAL_SERVER_ERROR {
            return "internal error".to_owned();
        }
        match self {
            ApiError::Process(ProcessError::Store(_)) => {
                "the schema store is unavailable; nothing was changed, retry later".to_owned()
            }
            ApiError::Process(ProcessError::Stream(e @ StreamError::TooLarge { .. })) => {
                e.to_string()
            }
            ApiError::Process(ProcessError::Stream(StreamError::Unconfirmed(_))) => {
                "the event stream did not confirm the publish: the event may or may not be in \
                 the stream; retry with the same Idempotency-Key, consumers deduplicate by id"
                    .to_owned()
            }
            ApiError::Process(ProcessError::Stream(_)) => {
                "the event stream is unavailable; the event was not published, retry later"
                    .to_owned()
            }
            // The compiler's own sentence says which reference does not resolve, and names
            // nothing of the gateway's.
            ApiError::Process(ProcessError::InvalidSchema(SchemaError::Uncompilable(source))) => {
                format!("the schema cannot be compiled: {source}")
            }
            ApiError::Process(ProcessError::InvalidSchema(e)) => e.to_string(),
            other => other.to_string(),
        }
    }

    fn issues(&self) -> Option<Vec<ValidationIssue>> {
        match self {
            ApiError::Process(ProcessError::InvalidEvent { issues, .. }) => Some(issues.clone()),
            ApiError::Process(ProcessError::InvalidSchema(e)) => {
                let issues = e.issues();
                (!issues.is_empty()).then_some(issues)
            }
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            // Full detail, with the source chain, for operators only.
            tracing::error!(error = %ErrorChain(&self), "request failed on the server side");
        } else {
            // The request's log line has the status and `error`; the sentence is detail.
            tracing::debug!(error = %self, status = status.as_u16(), "request rejected");
        }
        let issues = self.issues();
        let (mode, incompatibilities) = match &self {
            ApiError::Process(ProcessError::Incompatible {
                mode,
                incompatibilities,
            }) => (Some(*mode), Some(incompatibilities.as_slice())),
            _ => (None, None),
        };
        let version = match &self {
            ApiError::Process(ProcessError::InvalidEvent { version, .. }) => Some(*version),
            _ => None,
        };
        let mut response = Reply {
            code: Code::Failed,
            msg: self.client_message().into(),
            error: Some(code),
            body: FailureDetails {
                errors: issues.as_deref(),
                mode,
                incompatibilities,
            },
        }
        .with_status(status);
        Logged {
            version,
            ..Logged::default()
        }
        .on(&mut response);
        if status == StatusCode::SERVICE_UNAVAILABLE || code == "request_in_progress" {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
