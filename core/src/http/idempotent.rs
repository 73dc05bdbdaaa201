//! `Idempotency-Key` on the send routes (API.md, "Idempotency"): a request with a key runs
//! once; its final answer is kept and given again, byte for byte, to the same request.

use std::future::Future;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use super::AppState;
use super::error::ApiError;
use crate::domain::{EventId, Fingerprint, IdempotencyKey};
use crate::ports::KeptAnswer;
use crate::processor::{Idempotency, Submission};

/// Header of an answer given again for an idempotency key.
pub(crate) const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// Statuses that are a request's final answer: kept for its key. Anything else (503 above
/// all) lets the key go, and the retry runs again under the same event ids.
const FINAL: [StatusCode; 4] = [
    StatusCode::OK,
    StatusCode::MULTI_STATUS,
    StatusCode::PAYLOAD_TOO_LARGE,
    StatusCode::UNPROCESSABLE_ENTITY,
];

/// Runs `send` (given the event ids to publish under, if the key decided them) once per key:
/// without a key, just runs it. `route` is the route's template: it is part of the request's
/// fingerprint.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn once<F, Fut>(
    state: &AppState,
    route: &str,
    to: &Submission<'_>,
    key: Option<IdempotencyKey>,
    body: &[u8],
    items: usize,
    send: F,
) -> Result<Response, ApiError>
where
    F: FnOnce(Option<Vec<EventId>>) -> Fut,
    Fut: Future<Output = Result<Response, ApiError>>,
{
    let Some(key) = key else {
        return send(None).await;
    };
    let fingerprint = Fingerprint::of(route, body, to.version);
    let claim = match state
        .processor
        .begin_idempotent(to.client, to.event, key, fingerprint, items, to.deadline)
        .await?
    {
        Idempotency::Run(claim) => claim,
        Idempotency::Completed(answer) => return Ok(replayed(answer)),
        Idempotency::InProgress => return Err(ApiError::RequestInProgress),
        Idempotency::Reused => return Err(ApiError::IdempotencyKeyReused),
    };
    let response = send(Some(claim.event_ids.clone()))
        .await
        .unwrap_or_else(IntoResponse::into_response);
    // A 207 with items to retry (503s, `Retry-After` set) is not final either: kept, it would
    // answer every retry with the same 207, and the unconfirmed items could never be retried
    // under their ids.
    let retry_later = response.headers().contains_key(header::RETRY_AFTER);
    if !FINAL.contains(&response.status()) || retry_later {
        state
            .processor
            .finish_idempotent(claim, None, to.deadline)
            .await;
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    // The gateway's own JSON, already in memory.
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            tracing::error!(%error, "answer body could not be buffered");
            state
                .processor
                .finish_idempotent(claim, None, to.deadline)
                .await;
            return Err(ApiError::AnswerLost);
        }
    };
    let answer = KeptAnswer {
        status: parts.status.as_u16(),
        body: bytes.to_vec(),
    };
    state
        .processor
        .finish_idempotent(claim, Some(answer), to.deadline)
        .await;
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

/// A kept answer, given again.
fn replayed(answer: KeptAnswer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut response = (status, answer.body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    response
}
