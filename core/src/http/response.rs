//! Typed response bodies. Every answer is `{"code", "msg", ...}` (API.md, "Responses"): the
//! envelope is [`Reply`], the rest is a `#[derive(Serialize)]` body per route.

use std::borrow::Cow;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use super::edge::Logged;
use crate::compat::{Incompatibility, Mode};
use crate::domain::{ClientId, EventId, EventName, SchemaVersion};
use crate::ports::{RegisteredEvent, Rejection, VersionInfo};
use crate::processor::{BatchReport, ItemOutcome};
use crate::schema::ValidationIssue;

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum Code {
    Succeeded,
    Failed,
}

/// The envelope of every JSON answer: `code`, `msg`, the stable `error` of a failure, and the
/// route's own fields.
#[derive(Debug, Serialize)]
pub(crate) struct Reply<'a, T> {
    pub code: Code,
    pub msg: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
    #[serde(flatten)]
    pub body: T,
}

impl<'a, T: Serialize> Reply<'a, T> {
    pub fn succeeded(msg: impl Into<Cow<'a, str>>, body: T) -> Self {
        Self {
            code: Code::Succeeded,
            msg: msg.into(),
            error: None,
            body,
        }
    }

    pub fn with_status(self, status: StatusCode) -> Response {
        let logged = Logged {
            error: self.error,
            ..Logged::default()
        };
        let mut response = (status, Json(self)).into_response();
        logged.on(&mut response);
        response
    }
}

/// A registration: `201` new, `200` identical.
#[derive(Debug, Serialize)]
pub(crate) struct Registration<'a> {
    pub client: &'a ClientId,
    pub event: &'a EventName,
    pub version: SchemaVersion,
}

/// An accepted event.
#[derive(Debug, Serialize)]
pub(crate) struct Sent {
    pub id: EventId,
}

/// A recovered schema.
#[derive(Debug, Serialize)]
pub(crate) struct Schema<'a> {
    pub schema: &'a Value,
    pub version: SchemaVersion,
}

/// A client's pairs.
#[derive(Debug, Serialize)]
pub(crate) struct Events<'a> {
    pub events: &'a [RegisteredEvent],
}

/// The details of a failure: validation or meta-validation issues, or why a schema is not
/// compatible.
#[derive(Debug, Default, Serialize)]
pub(crate) struct FailureDetails<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<&'a [ValidationIssue]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incompatibilities: Option<&'a [Incompatibility]>,
}

/// A pair's versions.
#[derive(Debug, Serialize)]
pub(crate) struct Versions<'a> {
    pub versions: &'a [VersionInfo],
}

/// A pair's compatibility mode.
#[derive(Debug, Serialize)]
pub(crate) struct Compatibility {
    pub compatibility: Mode,
    pub default: bool,
}

/// A dry-run registration.
#[derive(Debug, Serialize)]
pub(crate) struct CompatibilityCheck<'a> {
    pub compatible: bool,
    pub mode: Mode,
    pub incompatibilities: &'a [Incompatibility],
    pub version: Option<SchemaVersion>,
}

/// A valid event (dry run).
#[derive(Debug, Serialize)]
pub(crate) struct Valid {
    pub version: SchemaVersion,
}

/// A replayed rejection.
#[derive(Debug, Serialize)]
pub(crate) struct Replayed {
    pub id: EventId,
    pub version: SchemaVersion,
}

/// A page of rejections.
#[derive(Debug, Serialize)]
pub(crate) struct Rejected<'a> {
    pub rejected: &'a [Rejection],
    pub next: Option<EventId>,
}

/// A batch: counts and one result per input, in input order.
#[derive(Debug, Serialize)]
pub(crate) struct Batch<'a> {
    pub accepted: usize,
    pub rejected: usize,
    pub results: Vec<ItemResult<'a>>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ItemResult<'a> {
    pub index: usize,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<EventId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<&'a [ValidationIssue]>,
}

impl<'a> Batch<'a> {
    pub fn of(report: &'a BatchReport) -> Self {
        let results = report
            .outcomes
            .iter()
            .enumerate()
            .map(|(index, outcome)| {
                let (status, id, error, errors) = match outcome {
                    ItemOutcome::Accepted(id) => (StatusCode::OK, Some(*id), None, None),
                    ItemOutcome::Invalid(errors) => (
                        StatusCode::UNPROCESSABLE_ENTITY,
                        None,
                        Some("validation_failed"),
                        Some(errors.as_slice()),
                    ),
                    ItemOutcome::Unavailable => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        None,
                        Some("service_unavailable"),
                        None,
                    ),
                    // The id it may be in the stream under: what a consumer deduplicates by.
                    ItemOutcome::Unconfirmed(id) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        Some(*id),
                        Some("publish_unconfirmed"),
                        None,
                    ),
                    ItemOutcome::TooLarge => (
                        StatusCode::PAYLOAD_TOO_LARGE,
                        None,
                        Some("payload_too_large"),
                        None,
                    ),
                };
                ItemResult {
                    index,
                    status: status.as_u16(),
                    id,
                    error,
                    errors,
                }
            })
            .collect();
        Self {
            accepted: report.accepted,
            rejected: report.rejected,
            results,
        }
    }
}
