//! Request bodies: Content-Type negotiation, size limits enforced before anything is parsed,
//! and the two encodings the original clients use (a JSON body, or a form field holding JSON).

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
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

/// Most bytes of a refused body read and thrown away before answering 413. Many clients
/// (Python's urllib, most SDKs) write the whole body before reading the answer: closing on
/// them with data unread makes the kernel reset the connection and they see a reset instead of
/// the 413. Draining, as nginx's lingering close does, lets them read it. Past this bound (or
/// [`DRAIN_TIME`]) the connection is closed anyway: a client cannot make the gateway read
/// without limit.
pub const DRAIN_LIMIT: u64 = 64 * 1024 * 1024;
/// Longest time spent draining a refused body.
pub const DRAIN_TIME: Duration = Duration::from_secs(5);

/// Reads at most `limit` bytes: a declared Content-Length over the limit is refused before
/// anything is kept, and a streamed body as soon as it passes the limit; either way the rest
/// is drained (see [`DRAIN_LIMIT`]) so that the client reads the 413.
pub(crate) async fn read_limited(
    headers: &HeaderMap,
    mut body: Body,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let too_large = ApiError::PayloadTooLarge { limit };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(declared) = declared.filter(|&len| len > limit as u64) {
        // A client that waits for `100 Continue` has sent nothing yet: it gets the 413 at
        // once. Otherwise the body is on its way: drain it, if it is not absurdly large.
        if !expects_continue(headers) && declared <= DRAIN_LIMIT {
            drain(body, 0).await;
        }
        return Err(too_large);
    }
    let mut kept = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| {
            tracing::info!(%error, "request body could not be read");
            ApiError::BodyUnreadable
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if kept.len() + data.len() > limit {
            drain(body, (kept.len() + data.len()) as u64).await;
            return Err(too_large);
        }
        kept.extend_from_slice(&data);
    }
    Ok(kept.freeze())
}

fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Reads and drops the rest of `body` (of which `read` bytes were read already), up to
/// [`DRAIN_LIMIT`] bytes in all and [`DRAIN_TIME`].
async fn drain(mut body: Body, mut read: u64) {
    let rest = async {
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                read += data.len() as u64;
                if read > DRAIN_LIMIT {
                    break;
                }
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, rest).await;
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
