//! Request bodies: Content-Type negotiation, size limits enforced before anything is parsed,
//! and the two encodings the original clients use (a JSON body, or a form field holding JSON).

use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::Value;

use super::error::ApiError;

/// Body size limits (API.md defaults).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub event: usize,
    pub batch: usize,
    pub schema: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            event: 1024 * 1024,
            batch: 5 * 1024 * 1024,
            schema: 256 * 1024,
        }
    }
}

/// The two accepted encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Json,
    Form,
}

/// Reads the Content-Type; anything but JSON or form encoding (or a charset other than
/// UTF-8) is a 415. A missing Content-Type is a 415 too: guessing would hide client bugs.
pub(crate) fn encoding(headers: &HeaderMap) -> Result<Encoding, ApiError> {
    let raw = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::UnsupportedMediaType)?;
    let mime: mime::Mime = raw.parse().map_err(|_| ApiError::UnsupportedMediaType)?;
    if let Some(charset) = mime.get_param(mime::CHARSET) {
        if charset != mime::UTF_8 {
            return Err(ApiError::UnsupportedMediaType);
        }
    }
    match (mime.type_(), mime.subtype()) {
        (mime::APPLICATION, mime::JSON) => Ok(Encoding::Json),
        (mime::APPLICATION, mime::WWW_FORM_URLENCODED) => Ok(Encoding::Form),
        _ => Err(ApiError::UnsupportedMediaType),
    }
}

/// Reads at most `limit` bytes: a declared Content-Length over the limit is refused before
/// reading, and a streamed body is cut off as soon as it passes the limit.
pub(crate) async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::PayloadTooLarge { limit })
        }
        Err(error) => {
            tracing::info!(%error, "request body could not be read");
            Err(ApiError::BodyUnreadable)
        }
    }
}

/// The JSON document in `bytes`: the whole body for JSON, or the form field `field` holding
/// JSON text; `what` names the document in error messages.
pub(crate) fn json_document(
    encoding: Encoding,
    bytes: &[u8],
    field: &'static str,
    what: &'static str,
) -> Result<Value, ApiError> {
    match encoding {
        Encoding::Json => parse_json(bytes, what),
        Encoding::Form => {
            let text = form_field(bytes, field)?;
            parse_json(text.as_bytes(), what)
        }
    }
}

/// Parses JSON; serde_json bounds nesting depth (128) so hostile nesting cannot overflow.
pub(crate) fn parse_json(bytes: &[u8], what: &'static str) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|source| ApiError::InvalidJson { what, source })
}

pub(crate) fn form_field(bytes: &[u8], field: &'static str) -> Result<String, ApiError> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(bytes).map_err(|_| ApiError::InvalidForm)?;
    let mut values = pairs
        .into_iter()
        .filter(|(k, _)| k == field)
        .map(|(_, v)| v);
    let value = values.next().ok_or(ApiError::MissingFormField(field))?;
    if values.next().is_some() {
        return Err(ApiError::DuplicateFormField(field));
    }
    // Percent-decoding is lossy: bytes that are not UTF-8 come back as U+FFFD. Refuse rather
    // than publish an event the client did not send.
    if value.contains('\u{fffd}') {
        return Err(ApiError::InvalidForm);
    }
    Ok(value)
}
