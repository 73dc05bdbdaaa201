//! The gateway's metrics (API.md, "Observability"), through the `metrics` facade: the names
//! and labels are decided here, once; what records them is the runtime's choice (`serve`
//! installs a Prometheus recorder, a Lambda function one writing CloudWatch Embedded Metric
//! Format). Without a recorder, recording costs next to nothing.
//!
//! Labels stay of bounded cardinality: a route is its template (`/{client}/{event}/send_event`),
//! never a concrete path; `client` and `event` are names that passed the name rule and were
//! registered or at least asked for by an authenticated caller.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
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

/// One answered request; `route` and `status` (its code, "200") are [`label`]s.
pub fn request(route: &'static str, status: &'static str, duration: Duration) {
    metrics::counter!(REQUESTS, "route" => route, "status" => status).increment(1);
    metrics::histogram!(REQUEST_DURATION, "route" => route).record(duration.as_secs_f64());
}

/// `value` as a label that lives as long as the process, made once per distinct value: every
/// request labels its metrics (and its span) with its route and status, and borrowing them
/// here saves copying them for each. Only for values of a small, bounded set, such as route
/// templates and status codes, never anything a client chooses: each is kept for good.
pub(crate) fn label(value: &str) -> &'static str {
    thread_local! {
        /// The labels this thread has used: found without a lock shared with other threads.
        static USED: RefCell<Vec<&'static str>> = const { RefCell::new(Vec::new()) };
    }
    /// Every label made, so that each value is made once in the process.
    static MADE: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let find = |labels: &[&'static str]| labels.iter().copied().find(|label| *label == value);
    USED.with_borrow_mut(|used| {
        if let Some(label) = find(used) {
            return label;
        }
        let mut made = MADE.lock().unwrap_or_else(PoisonError::into_inner);
        let label = find(&made).unwrap_or_else(|| {
            let label: &'static str = Box::leak(value.into());
            made.push(label);
            label
        });
        used.push(label);
        label
    })
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

/// Recording metrics in a test, apart from every other test.
#[cfg(test)]
pub(crate) mod testing {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    /// A counter as recorded: name, labels, value.
    pub(crate) type Counted = (String, Vec<(String, String)>, u64);

    /// The counters `run` recorded, with a recorder of its own (this thread only: tests
    /// running in parallel do not mix in). `run` runs on a current-thread runtime, so the
    /// tasks it spawns record there too.
    pub(crate) fn counted(run: impl AsyncFnOnce()) -> Vec<Counted> {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        ::metrics::with_local_recorder(&recorder, || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(run())
        });
        snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter_map(|(key, _, _, value)| match value {
                DebugValue::Counter(n) => {
                    let key = key.key();
                    let labels = key
                        .labels()
                        .map(|l| (l.key().to_owned(), l.value().to_owned()))
                        .collect();
                    Some((key.name().to_owned(), labels, n))
                }
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::label;

    #[test]
    fn a_label_is_made_once_per_value_and_borrowed_after() {
        let first = label(&String::from("/{client}/label_test"));
        let again = label(&String::from("/{client}/label_test"));
        assert_eq!(first, "/{client}/label_test");
        assert!(
            std::ptr::eq(first, again),
            "the second call made a new label"
        );
        let other = label("/{client}/label_test_other");
        assert_eq!(other, "/{client}/label_test_other");
        assert!(!std::ptr::eq(first, other));
        // Another thread borrows the same label, not a copy of its own.
        let elsewhere = std::thread::spawn(|| label("/{client}/label_test"))
            .join()
            .unwrap();
        assert!(
            std::ptr::eq(first, elsewhere),
            "another thread made its own label"
        );
    }
}
