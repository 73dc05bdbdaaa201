//! Rejections: events refused for their content, kept apart from the stream so that their
//! producer can find them (`rejected`) and publish them once the schema is fixed (`replay`).
//!
//! Keeping a rejection never changes the producer's answer: a store failure is logged and
//! counted (`rejections_dropped_total`), and the 422 (or 413, 400) stays what it was.

use serde_json::Value;

use super::ingest::Submission;
use super::{ProcessError, Processor};
use crate::domain::{
    ClientId, EventId, EventName, Fingerprint, IdempotencyKey, SchemaVersion, now_rfc3339,
};
use crate::envelope::Envelope;
use crate::error::ErrorChain;
use crate::metrics;
use crate::ports::{Begin, KeptAnswer, MAX_REJECTED_DATA, Rejection, StoreError, cause};
use crate::retry::Deadline;
use crate::schema::ValidationIssue;

/// Most rejections one page lists.
pub const MAX_REJECTED_PAGE: usize = 1000;

/// A page of a pair's rejections, newest first, and the id to pass as `before` for the next.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedPage {
    pub rejected: Vec<Rejection>,
    pub next: Option<EventId>,
}

/// A replayed rejection: published under its own id, with the version that accepted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replayed {
    pub id: EventId,
    pub version: SchemaVersion,
}

impl Processor {
    /// A rejection of an event of `to` for `reason`, keeping at most [`MAX_REJECTED_DATA`]
    /// bytes of `text` (cut at a character boundary; bytes that are not UTF-8 become U+FFFD).
    pub(super) fn rejection(
        &self,
        to: &Submission<'_>,
        id: EventId,
        version: Option<SchemaVersion>,
        reason: &'static str,
        errors: Vec<ValidationIssue>,
        text: &[u8],
    ) -> Rejection {
        let mut data = String::from_utf8_lossy(text).into_owned();
        let truncated = data.len() > MAX_REJECTED_DATA;
        if truncated {
            let mut end = MAX_REJECTED_DATA;
            while !data.is_char_boundary(end) {
                end -= 1;
            }
            data.truncate(end);
        }
        Rejection {
            id,
            client: to.client.clone(),
            event: to.event.clone(),
            version,
            received_at: now_rfc3339(),
            request_id: to.request_id.map(str::to_owned),
            error: reason.to_owned(),
            errors,
            data,
            truncated,
            replayed: None,
        }
    }

    /// Counts the rejections of one request and keeps them together. Never fails: a store
    /// failure is logged and counted, the producer's answer stays what it was.
    pub(super) async fn keep_rejections(&self, to: &Submission<'_>, rejections: Vec<Rejection>) {
        for reason in [
            super::ingest::REASON_INVALID,
            super::ingest::REASON_TOO_LARGE,
            super::ingest::REASON_NOT_JSON,
        ] {
            let count = rejections.iter().filter(|r| r.error == reason).count();
            if count > 0 {
                metrics::events_rejected(to.client, to.event, reason, count as u64);
            }
        }
        if let Err(error) = self.rejections.keep(&rejections, to.deadline).await {
            metrics::rejections_dropped(rejections.len() as u64);
            tracing::error!(
                error = %ErrorChain(&error),
                client = %to.client,
                event = %to.event,
                count = rejections.len(),
                "rejected events could not be kept"
            );
        }
    }

    /// The pair's rejections, newest first: at most `limit` (1 to [`MAX_REJECTED_PAGE`]),
    /// older than `before` if given.
    pub async fn rejected(
        &self,
        client: &ClientId,
        event: &EventName,
        limit: usize,
        before: Option<EventId>,
        deadline: Deadline,
    ) -> Result<RejectedPage, ProcessError> {
        let limit = limit.clamp(1, MAX_REJECTED_PAGE);
        // A pair that is not registered has no rejections to show: 404, as every pair route.
        self.validator(client, event, None, deadline).await?;
        // One more than asked for tells whether there is a next page without a second read.
        let mut rejected = self
            .rejections
            .list(client, event, limit + 1, before, deadline)
            .await?;
        let next = if rejected.len() > limit {
            rejected.truncate(limit);
            rejected.last().map(|r| r.id)
        } else {
            None
        };
        Ok(RejectedPage { rejected, next })
    }

    /// Publishes a kept rejection under its own id once it satisfies the latest version (or
    /// `version`). Exactly once: a rejection already replayed answers as before and publishes
    /// nothing; concurrent replays of one rejection take a lock in the idempotency store, the
    /// others are told it is in progress.
    #[tracing::instrument(skip(self, deadline), fields(%client, %event, %id))]
    pub async fn replay(
        &self,
        client: &ClientId,
        event: &EventName,
        id: EventId,
        version: Option<SchemaVersion>,
        deadline: Deadline,
    ) -> Result<Replayed, ProcessError> {
        let rejection = self.replayable(client, event, id, deadline).await?;
        if let Some(version) = rejection.replayed {
            return Ok(Replayed { id, version });
        }
        let key = replay_key(id);
        let fingerprint = Fingerprint::of(REPLAY_ROUTE, id.to_string().as_bytes(), None);
        let lease_until = super::idempotency::lease_until(deadline);
        match self
            .idempotency
            .begin(
                client,
                event,
                &key,
                fingerprint,
                &[id],
                lease_until,
                deadline,
            )
            .await?
        {
            Begin::Started | Begin::Resumed { .. } => {}
            Begin::InProgress => return Err(ProcessError::ReplayInProgress { id }),
            // Replayed by another request between the read above and this lock.
            Begin::Completed(answer) => {
                return replayed_version(&answer)
                    .map(|version| Replayed { id, version })
                    // Never publish without the lock: a lock whose answer does not read is
                    // the store's data at fault.
                    .ok_or(ProcessError::Store(StoreError::Corrupt(cause(
                        UnreadableLock,
                    ))));
            }
            // The key's fingerprint is the id itself: another fingerprint cannot happen.
            Begin::Reused => return Err(ProcessError::ReplayInProgress { id }),
        }
        let outcome = self.publish_replay(&rejection, version, deadline).await;
        let finished = match &outcome {
            Ok(replayed) => {
                let answer = KeptAnswer {
                    status: 200,
                    body: replayed.version.get().to_string().into_bytes(),
                };
                self.idempotency
                    .complete(client, event, &key, &answer, deadline)
                    .await
            }
            // Still invalid, or the stream failed: a later replay may succeed.
            Err(_) => {
                self.idempotency
                    .release(client, event, &key, deadline)
                    .await
            }
        };
        if let Err(error) = finished {
            // The rejection's own mark (below, or already written) still prevents a second
            // publish; the lock runs out with the request's deadline.
            tracing::warn!(error = %ErrorChain(&error), "replay lock not updated");
        }
        outcome
    }

    /// The rejection, if it exists and kept all of its event.
    async fn replayable(
        &self,
        client: &ClientId,
        event: &EventName,
        id: EventId,
        deadline: Deadline,
    ) -> Result<Rejection, ProcessError> {
        let rejection = self
            .rejections
            .get(client, event, id, deadline)
            .await?
            .ok_or_else(|| ProcessError::RejectionNotFound {
                client: client.clone(),
                event: event.clone(),
                id,
            })?;
        if rejection.truncated {
            return Err(ProcessError::NotReplayable { id });
        }
        Ok(rejection)
    }

    async fn publish_replay(
        &self,
        rejection: &Rejection,
        version: Option<SchemaVersion>,
        deadline: Deadline,
    ) -> Result<Replayed, ProcessError> {
        let (client, event) = (&rejection.client, &rejection.event);
        // Read again under the lock: a replay that finished while this one waited for it.
        if let Some(version) = self
            .rejections
            .get(client, event, rejection.id, deadline)
            .await?
            .and_then(|r| r.replayed)
        {
            return Ok(Replayed {
                id: rejection.id,
                version,
            });
        }
        let data: Value = match serde_json::from_str(&rejection.data) {
            Ok(data) => data,
            Err(error) => {
                let validator = self.validator(client, event, version, deadline).await?;
                return Err(ProcessError::InvalidEvent {
                    version: validator.version,
                    issues: vec![ValidationIssue {
                        instance_path: String::new(),
                        schema_path: String::new(),
                        keyword: "json".to_owned(),
                        message: format!("the kept event is not JSON: {error}"),
                    }],
                });
            }
        };
        let validator = self
            .accepting(client, event, &data, version, deadline)
            .await?;
        let envelope = Envelope::with_id(rejection.id, client, event, validator.version, &data)?;
        self.stream
            .publish(&envelope, deadline)
            .await
            .inspect_err(|error| {
                super::ingest::count_publish_failure(error);
            })?;
        metrics::events_accepted(client, event, 1);
        // Published: the answer is 200 whatever follows. The mark makes later replays answer
        // without publishing; if it cannot be written, the lock's kept answer does so for
        // IDEMPOTENCY_RETENTION, and the failure is logged for an operator.
        if let Err(error) = self
            .rejections
            .mark_replayed(client, event, rejection.id, validator.version, deadline)
            .await
        {
            tracing::error!(
                error = %ErrorChain(&error),
                id = %rejection.id,
                "a replayed rejection could not be marked; a replay after the lock's retention would publish it again"
            );
        }
        Ok(Replayed {
            id: rejection.id,
            version: validator.version,
        })
    }
}

/// What replays' lock fingerprints are computed for (see `Fingerprint::of`).
const REPLAY_ROUTE: &str = "replay";

/// A replay lock whose kept answer is not a version number.
#[derive(Debug, thiserror::Error)]
#[error("a replay lock's kept answer is not a version number")]
struct UnreadableLock;

/// The idempotency key under which replays of rejection `id` take their lock: it contains a
/// space, which no client's key can, so a producer cannot take it.
fn replay_key(id: EventId) -> IdempotencyKey {
    IdempotencyKey::reserved(format!("replay {id}"))
}

/// The version a completed replay's lock recorded.
fn replayed_version(answer: &KeptAnswer) -> Option<SchemaVersion> {
    std::str::from_utf8(&answer.body)
        .ok()
        .and_then(|raw| SchemaVersion::parse(raw).ok())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use async_trait::async_trait;
    use serde_json::json;

    use super::super::Item;
    use super::super::tests::{deadline, fixture, names, person_schema};
    use super::*;
    use crate::metrics::testing::{Counted, counted};
    use crate::ports::{RejectionStore, StoreError, cause};

    /// A rejection store that is down.
    struct Down;

    #[derive(Debug, thiserror::Error)]
    #[error("down")]
    struct DownError;

    #[async_trait]
    impl RejectionStore for Down {
        async fn keep(&self, _: &[Rejection], _: Deadline) -> Result<(), StoreError> {
            Err(StoreError::Unavailable(cause(DownError)))
        }
        async fn list(
            &self,
            _: &ClientId,
            _: &EventName,
            _: usize,
            _: Option<EventId>,
            _: Deadline,
        ) -> Result<Vec<Rejection>, StoreError> {
            Err(StoreError::Unavailable(cause(DownError)))
        }
        async fn get(
            &self,
            _: &ClientId,
            _: &EventName,
            _: EventId,
            _: Deadline,
        ) -> Result<Option<Rejection>, StoreError> {
            Err(StoreError::Unavailable(cause(DownError)))
        }
        async fn mark_replayed(
            &self,
            _: &ClientId,
            _: &EventName,
            _: EventId,
            _: SchemaVersion,
            _: Deadline,
        ) -> Result<(), StoreError> {
            Err(StoreError::Unavailable(cause(DownError)))
        }
    }

    fn total(counters: &[Counted], name: &str, reason: Option<&str>) -> u64 {
        counters
            .iter()
            .filter(|(n, labels, _)| {
                n == name
                    && reason.is_none_or(|reason| {
                        labels.iter().any(|(k, v)| k == "reason" && v == reason)
                    })
            })
            .map(|(_, _, value)| value)
            .sum()
    }

    #[test]
    fn a_rejection_that_cannot_be_kept_changes_no_answer_and_is_counted() {
        let counters = counted(async || {
            let f = fixture();
            let processor = f.processor.clone().with_rejections(Arc::new(Down));
            let (client, event) = names("a", "Person");
            processor
                .register_event(&client, &event, person_schema(), deadline())
                .await
                .unwrap();
            let to = Submission {
                client: &client,
                event: &event,
                version: None,
                deadline: deadline(),
                request_id: None,
            };
            let error = processor
                .receive_event(&to, json!({"name": 1}), br#"{"name": 1}"#, None)
                .await
                .unwrap_err();
            assert!(
                matches!(error, ProcessError::InvalidEvent { .. }),
                "{error:?}"
            );
            let report = processor
                .receive_events(
                    &to,
                    vec![
                        Item {
                            data: json!(1),
                            text: b"1",
                        },
                        Item {
                            data: json!(2),
                            text: b"2",
                        },
                        Item {
                            data: json!({"name": "Bob", "age": 3}),
                            text: br#"{"name":"Bob","age":3}"#,
                        },
                    ],
                    None,
                )
                .await
                .unwrap();
            assert_eq!((report.accepted, report.rejected), (1, 2));
        });
        assert_eq!(total(&counters, metrics::REJECTIONS_DROPPED, None), 3);
        assert_eq!(
            total(
                &counters,
                metrics::EVENTS_REJECTED,
                Some(super::super::ingest::REASON_INVALID)
            ),
            3
        );
        assert_eq!(total(&counters, metrics::EVENTS_ACCEPTED, None), 1);
    }

    #[test]
    fn kept_rejections_count_what_was_refused_by_reason_and_drop_nothing() {
        let counters = counted(async || {
            let f = fixture();
            let (client, event) = names("a", "Person");
            f.processor
                .register_event(&client, &event, person_schema(), deadline())
                .await
                .unwrap();
            let to = Submission {
                client: &client,
                event: &event,
                version: None,
                deadline: deadline(),
                request_id: None,
            };
            for _ in 0..4 {
                let _ = f.processor.receive_event(&to, json!(0), b"0", None).await;
            }
            f.processor
                .reject_unreadable(&to, b"{", "EOF".to_owned())
                .await;
            let page = f
                .processor
                .rejected(&client, &event, 100, None, deadline())
                .await
                .unwrap();
            assert_eq!(page.rejected.len(), 5);
        });
        assert_eq!(
            total(
                &counters,
                metrics::EVENTS_REJECTED,
                Some("validation_failed")
            ),
            4
        );
        assert_eq!(
            total(&counters, metrics::EVENTS_REJECTED, Some("invalid_json")),
            1
        );
        assert_eq!(total(&counters, metrics::REJECTIONS_DROPPED, None), 0);
    }

    #[test]
    fn data_is_cut_at_a_character_boundary_and_marked_truncated() {
        let f = fixture();
        let (client, event) = names("a", "Person");
        let to = Submission {
            client: &client,
            event: &event,
            version: None,
            deadline: deadline(),
            request_id: Some("r"),
        };
        // 'é' is two bytes: the limit falls inside the last one.
        let text = format!("\"{}é\"", "x".repeat(MAX_REJECTED_DATA - 2));
        let rejection = f.processor.rejection(
            &to,
            EventId::new(),
            None,
            "validation_failed",
            Vec::new(),
            text.as_bytes(),
        );
        assert!(rejection.truncated);
        assert_eq!(rejection.data.len(), MAX_REJECTED_DATA - 1);
        assert!(text.starts_with(&rejection.data));

        let whole = f.processor.rejection(
            &to,
            EventId::new(),
            None,
            "validation_failed",
            Vec::new(),
            b"{\"a\":1}",
        );
        assert!(!whole.truncated);
        assert_eq!(whole.data, r#"{"a":1}"#);
        assert_eq!(whole.request_id.as_deref(), Some("r"));
    }
}
