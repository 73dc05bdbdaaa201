//! The gateway's metrics (API.md, "Observability"), through the `metrics` facade: the names
//! and labels are decided here, once; what records them is the runtime's choice (`serve`
//! installs a Prometheus recorder, a Lambda function one writing CloudWatch Embedded Metric
//! Format). Without a recorder, recording costs next to nothing.
//!
//! Labels stay of bounded cardinality: a route is its template (`/{client}/{event}/send_event`),
//! never a concrete path; `client` and `event` are names that passed the name rule and were
//! registered or at least asked for by an authenticated caller.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::domain::{ClientId, EventName};

pub const REQUESTS: &str = "requests_total";
pub const REQUEST_DURATION: &str = "request_duration_seconds";
pub const EVENTS_ACCEPTED: &str = "events_accepted_total";
pub const EVENTS_REJECTED: &str = "events_rejected_total";
pub const STREAM_PUBLISH_FAILURES: &str = "stream_publish_failures_total";
pub const REJECTIONS_DROPPED: &str = "rejections_dropped_total";

/// Whether the per-pair metrics carry `client` and `event` labels (on by default). A Lambda
/// function turns them off unless asked: in CloudWatch each pair would be a billed metric.
static PAIR_LABELS: AtomicBool = AtomicBool::new(true);

/// Sets, for the whole process, whether per-pair metrics carry `client` and `event` labels.
pub fn set_pair_labels(on: bool) {
    PAIR_LABELS.store(on, Ordering::Relaxed);
}

fn pair_labels(client: &ClientId, event: &EventName) -> Vec<metrics::Label> {
    if PAIR_LABELS.load(Ordering::Relaxed) {
        vec![
            metrics::Label::new("client", client.as_str().to_owned()),
            metrics::Label::new("event", event.as_str().to_owned()),
        ]
    } else {
        Vec::new()
    }
}

/// One answered request.
pub fn request(route: &str, status: u16, duration: Duration) {
    metrics::counter!(REQUESTS, "route" => route.to_owned(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!(REQUEST_DURATION, "route" => route.to_owned())
        .record(duration.as_secs_f64());
}

/// Events the stream acknowledged.
pub fn events_accepted(client: &ClientId, event: &EventName, count: u64) {
    metrics::counter!(EVENTS_ACCEPTED, pair_labels(client, event)).increment(count);
}

/// Events refused for their content (`validation_failed`, `payload_too_large`, `invalid_json`).
pub fn events_rejected(client: &ClientId, event: &EventName, reason: &'static str, count: u64) {
    let mut labels = pair_labels(client, event);
    labels.push(metrics::Label::new("reason", reason));
    metrics::counter!(EVENTS_REJECTED, labels).increment(count);
}

/// A publish the stream did not acknowledge.
pub fn stream_publish_failure(reason: &'static str) {
    metrics::counter!(STREAM_PUBLISH_FAILURES, "reason" => reason).increment(1);
}

/// Rejections that could not be kept.
pub fn rejections_dropped(count: u64) {
    metrics::counter!(REJECTIONS_DROPPED).increment(count);
}
