//! Ingest: validating events against their pair's schema and publishing the valid ones, one at
//! a time (`send_event`) or as a batch (`send_events`). The hot path.

use std::sync::Arc;

use serde_json::Value;

use super::cache::{Lookup, Validator};
use super::{ProcessError, Processor};
use crate::domain::{ClientId, EventId, EventName, SchemaVersion};
use crate::envelope::Envelope;
use crate::error::{ErrorChain, cause};
use crate::metrics;
use crate::ports::{StoreError, StreamError};
use crate::retry::Deadline;
use crate::schema::{CompiledSchema, ValidationIssue};

/// What became of one event of a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemOutcome {
    /// Acknowledged by the stream.
    Accepted(EventId),
    /// Does not satisfy the schema; not published.
    Invalid(Vec<ValidationIssue>),
    /// Valid, but the stream did not acknowledge it and cannot have stored it; the client may
    /// retry it.
    Unavailable,
    /// Valid, published under this id, but the stream's answer was lost: it may be in the
    /// stream. A retry (under the same `Idempotency-Key`, hence the same id) is safe.
    Unconfirmed(EventId),
    /// Valid, but too large for one stream record; retrying cannot help.
    TooLarge,
}

/// The batch as a whole, from its items' outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchVerdict {
    /// Every item was accepted.
    AllAccepted,
    /// Some items were accepted, some not.
    SomeAccepted,
    /// Nothing was acknowledged because of the stream; the valid items can be retried. With
    /// `unconfirmed`, some may have reached it nonetheless.
    Unavailable { unconfirmed: bool },
    /// Nothing was accepted because every item is too large for a stream record.
    TooLarge,
    /// Nothing was accepted because no item can be published as it is (some invalid, perhaps
    /// some too large).
    NoneValid,
}

/// What became of a batch: one outcome per input, in input order, and the counts.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchReport {
    pub outcomes: Vec<ItemOutcome>,
    pub accepted: usize,
    pub rejected: usize,
    pub verdict: BatchVerdict,
}

impl BatchReport {
    fn new(outcomes: Vec<ItemOutcome>) -> Self {
        let accepted = outcomes
            .iter()
            .filter(|o| matches!(o, ItemOutcome::Accepted(_)))
            .count();
        let count = |f: fn(&ItemOutcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
        let unavailable = count(|o| matches!(o, ItemOutcome::Unavailable));
        let unconfirmed = count(|o| matches!(o, ItemOutcome::Unconfirmed(_)));
        let too_large = count(|o| matches!(o, ItemOutcome::TooLarge));
        let verdict = if accepted == outcomes.len() {
            BatchVerdict::AllAccepted
        } else if accepted > 0 {
            BatchVerdict::SomeAccepted
        } else if unavailable + unconfirmed > 0 {
            BatchVerdict::Unavailable {
                unconfirmed: unconfirmed > 0,
            }
        } else if too_large == outcomes.len() {
            BatchVerdict::TooLarge
        } else {
            BatchVerdict::NoneValid
        };
        Self {
            rejected: outcomes.len() - accepted,
            accepted,
            outcomes,
            verdict,
        }
    }

    /// Whether some items may succeed if sent again later.
    pub fn retryable(&self) -> bool {
        self.outcomes
            .iter()
            .any(|o| matches!(o, ItemOutcome::Unavailable | ItemOutcome::Unconfirmed(_)))
    }
}

/// An event the stream acknowledged, and the version it was validated against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub id: EventId,
    pub version: SchemaVersion,
}

/// One event of a batch, and its text as the client sent it (what a rejection keeps).
#[derive(Debug, Clone)]
pub struct Item<'a> {
    pub data: Value,
    pub text: &'a [u8],
}

/// What an ingest request carries besides its events.
#[derive(Debug, Clone, Copy)]
pub struct Submission<'a> {
    pub client: &'a ClientId,
    pub event: &'a EventName,
    /// The version asked for (`?version=N`); `None`: the latest.
    pub version: Option<SchemaVersion>,
    pub deadline: Deadline,
    /// The request's id, kept with its rejections.
    pub request_id: Option<&'a str>,
}

impl Processor {
    /// Validates an event against the version asked for (or the latest) and publishes it,
    /// under `id` if given (a retried or replayed event keeps its id); returns its id once the
    /// stream has acknowledged it. An event refused for its content is kept as a rejection,
    /// with `text`, the event as the client sent it.
    #[tracing::instrument(skip_all, fields(client = %to.client, event = %to.event))]
    pub async fn receive_event(
        &self,
        to: &Submission<'_>,
        data: Value,
        text: &[u8],
        id: Option<EventId>,
    ) -> Result<Accepted, ProcessError> {
        // The id the event is published under, or kept as a rejection under: a retry under the
        // same idempotency key reuses it.
        let id = id.unwrap_or_default();
        let validator = match self
            .accepting(to.client, to.event, &data, to.version, to.deadline)
            .await
        {
            Ok(validator) => validator,
            Err(ProcessError::InvalidEvent { version, issues }) => {
                let rejection =
                    self.rejection(to, id, Some(version), REASON_INVALID, issues.clone(), text);
                self.keep_rejections(to, vec![rejection]).await;
                return Err(ProcessError::InvalidEvent { version, issues });
            }
            Err(error) => return Err(error),
        };
        let envelope = Envelope::with_id(id, to.client, to.event, validator.version, &data)?;
        match self.stream.publish(&envelope, to.deadline).await {
            Ok(()) => {}
            Err(error) => {
                count_publish_failure(&error);
                if let StreamError::TooLarge { .. } = error {
                    let rejection = self.rejection(
                        to,
                        id,
                        Some(validator.version),
                        REASON_TOO_LARGE,
                        Vec::new(),
                        text,
                    );
                    self.keep_rejections(to, vec![rejection]).await;
                }
                return Err(error.into());
            }
        }
        tracing::debug!(id = %envelope.id, "event acknowledged by the stream");
        accepted(to, 1);
        Ok(Accepted {
            id: envelope.id,
            version: validator.version,
        })
    }

    /// Validates `data` as [`Processor::receive_event`] would, and publishes nothing, keeps
    /// nothing; returns the version that accepts it.
    #[tracing::instrument(skip(self, data, deadline), fields(%client, %event))]
    pub async fn validate_event(
        &self,
        client: &ClientId,
        event: &EventName,
        data: &Value,
        version: Option<SchemaVersion>,
        deadline: Deadline,
    ) -> Result<SchemaVersion, ProcessError> {
        let validator = self
            .accepting(client, event, data, version, deadline)
            .await?;
        Ok(validator.version)
    }

    /// Keeps a send route's body that is not JSON as a rejection (`400 invalid_json`), if the
    /// pair is registered: that is a producer's event the schema never saw.
    pub async fn reject_unreadable(&self, to: &Submission<'_>, text: &[u8], reason: String) {
        match self.validator(to.client, to.event, None, to.deadline).await {
            Ok(_) => {
                let issue = ValidationIssue {
                    instance_path: String::new(),
                    schema_path: String::new(),
                    keyword: "json".to_owned(),
                    message: reason,
                };
                let rejection =
                    self.rejection(to, EventId::new(), None, REASON_NOT_JSON, vec![issue], text);
                self.keep_rejections(to, vec![rejection]).await;
            }
            // Not registered (nothing to keep), or the store cannot say: the answer is the 400.
            Err(error) => tracing::debug!(error = %ErrorChain(&error), "unreadable event not kept"),
        }
    }

    /// Validates each event of a batch on its own (against `version`, or the latest) and
    /// publishes the valid ones together (one stream call, one deadline), item `i` under
    /// `ids[i]` if given; reports one outcome per input, in input order. The items refused for
    /// their content are kept as rejections, together.
    #[tracing::instrument(skip_all, fields(client = %to.client, event = %to.event, items = items.len()))]
    pub async fn receive_events(
        &self,
        to: &Submission<'_>,
        items: Vec<Item<'_>>,
        ids: Option<&[EventId]>,
    ) -> Result<BatchReport, ProcessError> {
        let (client, event, deadline) = (to.client, to.event, to.deadline);
        let validator = self.validator(client, event, to.version, deadline).await?;
        // Fetched only if some item fails the cached latest version (see `accepting`).
        let mut fresh: Option<Arc<Validator>> = None;
        let mut outcomes = Vec::with_capacity(items.len());
        let mut envelopes = Vec::with_capacity(items.len());
        let mut indexes = Vec::with_capacity(items.len());
        let mut rejections = Vec::new();
        for (index, Item { data, text }) in items.iter().enumerate() {
            let mut verdict = validator
                .compiled
                .validate(data)
                .map(|()| validator.clone());
            if verdict.is_err() && to.version.is_none() {
                if fresh.is_none() {
                    fresh = Some(self.reload_latest(client, event, deadline).await?);
                }
                if let Some(fresh) = fresh.as_ref().filter(|f| f.version != validator.version) {
                    if fresh.compiled.validate(data).is_ok() {
                        verdict = Ok(fresh.clone());
                    }
                }
            }
            // The id the item is published under, or kept as a rejection under: a retry under
            // the same idempotency key reuses it (and overwrites, rather than repeats, the
            // rejection).
            let id = ids
                .and_then(|ids| ids.get(index).copied())
                .unwrap_or_default();
            match verdict {
                Ok(accepting) => {
                    indexes.push((outcomes.len(), accepting.version));
                    envelopes.push(Envelope::with_id(
                        id,
                        client,
                        event,
                        accepting.version,
                        data,
                    )?);
                    // Until the stream answers for this envelope.
                    outcomes.push(ItemOutcome::Unavailable);
                }
                Err(issues) => {
                    rejections.push(self.rejection(
                        to,
                        id,
                        Some(validator.version),
                        REASON_INVALID,
                        issues.clone(),
                        text,
                    ));
                    outcomes.push(ItemOutcome::Invalid(issues));
                }
            }
        }
        if !envelopes.is_empty() {
            let results = self.stream.publish_batch(&envelopes, deadline).await;
            for (((index, version), envelope), result) in
                indexes.into_iter().zip(&envelopes).zip(results)
            {
                outcomes[index] = match result {
                    Ok(()) => ItemOutcome::Accepted(envelope.id),
                    Err(error) => {
                        count_publish_failure(&error);
                        if let StreamError::Unconfirmed(_) = error {
                            tracing::warn!(error = %ErrorChain(&error), id = %envelope.id, "batch item's outcome unknown");
                            ItemOutcome::Unconfirmed(envelope.id)
                        } else if let StreamError::TooLarge { .. } = error {
                            rejections.push(self.rejection(
                                to,
                                envelope.id,
                                Some(version),
                                REASON_TOO_LARGE,
                                Vec::new(),
                                items[index].text,
                            ));
                            ItemOutcome::TooLarge
                        } else {
                            tracing::warn!(error = %ErrorChain(&error), id = %envelope.id, "batch item not acknowledged");
                            ItemOutcome::Unavailable
                        }
                    }
                };
            }
        }
        if !rejections.is_empty() {
            self.keep_rejections(to, rejections).await;
        }
        let report = BatchReport::new(outcomes);
        accepted(to, report.accepted);
        Ok(report)
    }

    /// The validator that accepts `data`: `version`'s, or the latest version's. Before
    /// refusing an event against the cached latest version, the store is asked whether a newer
    /// version exists (another process may have registered one since), so an event sent right
    /// after a registration is never refused because of a stale cache.
    pub(super) async fn accepting(
        &self,
        client: &ClientId,
        event: &EventName,
        data: &Value,
        version: Option<SchemaVersion>,
        deadline: Deadline,
    ) -> Result<Arc<Validator>, ProcessError> {
        let validator = self.validator(client, event, version, deadline).await?;
        let Err(issues) = validator.compiled.validate(data) else {
            return Ok(validator);
        };
        let refused = |version, issues| ProcessError::InvalidEvent { version, issues };
        if version.is_some() {
            return Err(refused(validator.version, issues));
        }
        let fresh = self.reload_latest(client, event, deadline).await?;
        if fresh.version == validator.version {
            return Err(refused(validator.version, issues));
        }
        fresh
            .compiled
            .validate(data)
            .map_err(|issues| refused(fresh.version, issues))?;
        Ok(fresh)
    }

    /// The compiled schema of `version` of a pair, or of its latest version: from the cache,
    /// or loaded once (concurrent first requests for a pair share one store read).
    pub(super) async fn validator(
        &self,
        client: &ClientId,
        event: &EventName,
        version: Option<SchemaVersion>,
        deadline: Deadline,
    ) -> Result<Arc<Validator>, ProcessError> {
        let load = async {
            let stored = self
                .schemas
                .get(client, event, version, deadline)
                .await
                .map_err(Lookup::Store)?
                .ok_or(match version {
                    None => Lookup::NotRegistered,
                    Some(_) => Lookup::VersionNotFound,
                })?;
            let compiled = CompiledSchema::compile(&stored.schema)
                .map_err(|error| Lookup::Uncompilable(Arc::new(error)))?;
            Ok(Arc::new(Validator {
                version: stored.version,
                compiled,
            }))
        };
        let found = match version {
            None => self.cache.latest(client, event, load).await,
            Some(version) => self.cache.version(client, event, version, load).await,
        };
        match found {
            Ok(validator) => Ok(validator),
            Err(lookup) => Err(match lookup.as_ref() {
                Lookup::NotRegistered => Self::not_registered(client, event),
                // Either the pair or only the version is missing: say which.
                Lookup::VersionNotFound => self.missing(client, event, version, deadline).await,
                Lookup::Store(error) => ProcessError::Store(error.clone()),
                // A schema the store holds but that no longer compiles: the store's data is
                // at fault (written by another tool), not the request.
                Lookup::Uncompilable(error) => {
                    ProcessError::Store(StoreError::Corrupt(cause(StoredSchema(error.clone()))))
                }
            }),
        }
    }

    /// The pair's latest version read from the store now (not from the cache), which then
    /// becomes the cached latest version.
    async fn reload_latest(
        &self,
        client: &ClientId,
        event: &EventName,
        deadline: Deadline,
    ) -> Result<Arc<Validator>, ProcessError> {
        let stored = self
            .schemas
            .get(client, event, None, deadline)
            .await?
            .ok_or_else(|| Self::not_registered(client, event))?;
        let load = async {
            let compiled = CompiledSchema::compile(&stored.schema)
                .map_err(|error| Lookup::Uncompilable(Arc::new(error)))?;
            Ok(Arc::new(Validator {
                version: stored.version,
                compiled,
            }))
        };
        let validator = self
            .cache
            .version(client, event, stored.version, load)
            .await
            .map_err(|lookup| match lookup.as_ref() {
                Lookup::Uncompilable(error) => {
                    ProcessError::Store(StoreError::Corrupt(cause(StoredSchema(error.clone()))))
                }
                // The load above fails only to compile.
                _ => Self::not_registered(client, event),
            })?;
        self.cache
            .set_latest(client, event, validator.clone())
            .await;
        Ok(validator)
    }
}

/// The reasons of `events_rejected_total` and of a rejection's `error`.
pub(super) const REASON_INVALID: &str = "validation_failed";
pub(super) const REASON_TOO_LARGE: &str = "payload_too_large";
pub(super) const REASON_NOT_JSON: &str = "invalid_json";

fn accepted(to: &Submission<'_>, count: usize) {
    if count > 0 {
        metrics::events_accepted(to.client, to.event, count as u64);
    }
}

pub(super) fn count_publish_failure(error: &StreamError) {
    metrics::stream_publish_failure(match error {
        StreamError::Unavailable(_) => "unavailable",
        StreamError::Unconfirmed(_) => "unconfirmed",
        StreamError::TooLarge { .. } => "too_large",
        StreamError::Corrupt(_) => "corrupt",
        StreamError::Encode(_) => "encode",
    });
}

/// A schema read from the store that does not compile.
#[derive(Debug, thiserror::Error)]
#[error("the stored schema does not compile")]
struct StoredSchema(#[source] Arc<crate::schema::SchemaError>);

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::super::tests::{deadline, fixture, fixture_with_ttl, names, person_schema, version};
    use super::*;
    use crate::compat::Mode;
    use crate::ports::SchemaStore;

    async fn registered(f: &super::super::tests::Fixture) -> (ClientId, EventName) {
        let (client, event) = names("a", "Person");
        f.processor
            .register_event(&client, &event, person_schema(), deadline())
            .await
            .unwrap();
        (client, event)
    }

    /// The send routes' calls, as the tests before rejections wrote them.
    impl Processor {
        async fn send(
            &self,
            client: &ClientId,
            event: &EventName,
            data: Value,
            version: Option<SchemaVersion>,
            deadline: Deadline,
        ) -> Result<Accepted, ProcessError> {
            let to = submission(client, event, version, deadline);
            let text = data.to_string();
            self.receive_event(&to, data, text.as_bytes(), None).await
        }

        async fn send_batch(
            &self,
            client: &ClientId,
            event: &EventName,
            items: Vec<Value>,
            version: Option<SchemaVersion>,
            deadline: Deadline,
        ) -> Result<BatchReport, ProcessError> {
            let to = submission(client, event, version, deadline);
            let texts: Vec<String> = items.iter().map(Value::to_string).collect();
            let items = items
                .into_iter()
                .zip(&texts)
                .map(|(data, text)| Item {
                    data,
                    text: text.as_bytes(),
                })
                .collect();
            self.receive_events(&to, items, None).await
        }
    }

    fn submission<'a>(
        client: &'a ClientId,
        event: &'a EventName,
        version: Option<SchemaVersion>,
        deadline: Deadline,
    ) -> Submission<'a> {
        Submission {
            client,
            event,
            version,
            deadline,
            request_id: Some("test-request"),
        }
    }

    fn bob() -> Value {
        json!({"name": "Bob", "age": 3})
    }

    #[tokio::test]
    async fn a_valid_event_is_published_with_its_id_and_version() {
        let f = fixture();
        let (client, event) = registered(&f).await;

        let accepted = f
            .processor
            .send(&client, &event, bob(), None, deadline())
            .await
            .unwrap();

        let published = f.stream.events(&client, &event);
        assert_eq!(published.len(), 1);
        assert_eq!(published[0].id, accepted.id.to_string());
        assert_eq!(published[0].data, bob());
        assert_eq!(published[0].dataschema, "/a/Person/schema?version=1");
        assert_eq!(accepted.version, SchemaVersion::FIRST);
    }

    #[tokio::test]
    async fn an_invalid_event_is_rejected_with_reasons_and_not_published() {
        let f = fixture();
        let (client, event) = registered(&f).await;

        let error = f
            .processor
            .send(
                &client,
                &event,
                json!({"name": 7, "extra": true}),
                None,
                deadline(),
            )
            .await
            .unwrap_err();

        let ProcessError::InvalidEvent { issues, version } = error else {
            panic!("expected InvalidEvent, got {error:?}");
        };
        assert_eq!(version, SchemaVersion::FIRST);
        let keywords: Vec<&str> = issues.iter().map(|i| i.keyword.as_str()).collect();
        assert!(keywords.contains(&"type"), "{issues:?}");
        assert!(keywords.contains(&"required"), "{issues:?}");
        assert!(keywords.contains(&"additionalProperties"), "{issues:?}");
        assert!(issues.iter().any(|i| i.instance_path == "/name"));
        assert!(f.stream.events(&client, &event).is_empty());
    }

    #[tokio::test]
    async fn an_unregistered_event_is_not_registered() {
        let f = fixture();
        let (client, event) = names("a", "Nope");
        let error = f
            .processor
            .send(&client, &event, json!({}), None, deadline())
            .await
            .unwrap_err();
        assert!(
            matches!(error, ProcessError::NotRegistered { .. }),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn an_event_is_validated_against_the_version_asked_for() {
        let f = fixture();
        let (client, event) = registered(&f).await;
        f.processor
            .set_compatibility(&client, &event, Mode::None, deadline())
            .await
            .unwrap();
        f.processor
            .register_event(&client, &event, json!({"type": "string"}), deadline())
            .await
            .unwrap();

        let old = f
            .processor
            .send(&client, &event, bob(), Some(version(1)), deadline())
            .await
            .unwrap();
        let refused_by_v1 = f
            .processor
            .send(&client, &event, json!("text"), Some(version(1)), deadline())
            .await
            .unwrap_err();
        let missing = f
            .processor
            .send(&client, &event, bob(), Some(version(9)), deadline())
            .await
            .unwrap_err();

        assert_eq!(old.version, version(1));
        assert!(matches!(refused_by_v1, ProcessError::InvalidEvent { .. }));
        assert!(matches!(missing, ProcessError::VersionNotFound { .. }));
        let published = f.stream.events(&client, &event);
        assert_eq!(published.len(), 1);
        assert_eq!(published[0].dataschema, "/a/Person/schema?version=1");
    }

    #[tokio::test]
    async fn validate_publishes_nothing() {
        let f = fixture();
        let (client, event) = registered(&f).await;

        let version = f
            .processor
            .validate_event(&client, &event, &bob(), None, deadline())
            .await
            .unwrap();
        let refused = f
            .processor
            .validate_event(&client, &event, &json!(1), None, deadline())
            .await;

        assert_eq!(version, SchemaVersion::FIRST);
        assert!(matches!(refused, Err(ProcessError::InvalidEvent { .. })));
        assert!(f.stream.events(&client, &event).is_empty());
    }

    #[tokio::test]
    async fn a_newer_version_registered_by_another_instance_is_found_before_refusing() {
        // Two processors on one store, as two processes or two Lambdas would be.
        let f = fixture();
        let (client, event) = registered(&f).await;
        let other = Processor::new(f.store.clone(), Arc::new(f.stream.clone()));
        // This instance has version 1 cached ...
        f.processor
            .send(&client, &event, bob(), None, deadline())
            .await
            .unwrap();
        // ... when the other registers version 2, which adds an optional property.
        let mut with_email = person_schema();
        with_email["properties"]["email"] = json!({"type": "string"});
        other
            .register_event(&client, &event, with_email, deadline())
            .await
            .unwrap();

        let with_an_email = json!({"name": "Bob", "age": 3, "email": "bob@example.com"});
        let accepted = f
            .processor
            .send(&client, &event, with_an_email, None, deadline())
            .await
            .unwrap();

        assert_eq!(accepted.version, version(2));
        let published = f.stream.events(&client, &event);
        assert_eq!(published[1].dataschema, "/a/Person/schema?version=2");
    }

    #[tokio::test]
    async fn a_warm_pair_validates_without_reading_the_store() {
        let f = fixture();
        let (client, event) = registered(&f).await;
        // With the store down, only the cache can answer.
        f.store.set_unavailable(true);

        f.processor
            .send(&client, &event, bob(), None, deadline())
            .await
            .unwrap();

        assert_eq!(f.stream.events(&client, &event).len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_cached_latest_version_expires_and_the_store_is_read_again() {
        let ttl = Duration::from_secs(60);
        let f = fixture_with_ttl(ttl);
        let (client, event) = registered(&f).await;
        f.store.set_unavailable(true);

        // Within the TTL the cache answers; past it, the send needs the (unavailable) store.
        tokio::time::advance(ttl - Duration::from_secs(1)).await;
        f.processor
            .send(&client, &event, bob(), None, deadline())
            .await
            .expect("still cached");
        tokio::time::advance(Duration::from_secs(2)).await;
        let error = f
            .processor
            .send(&client, &event, bob(), None, deadline())
            .await
            .unwrap_err();

        assert!(matches!(error, ProcessError::Store(_)), "{error:?}");
        assert_eq!(f.stream.events(&client, &event).len(), 1);
    }

    #[tokio::test]
    async fn a_version_once_compiled_is_served_without_the_store() {
        let f = fixture();
        let (client, event) = registered(&f).await;
        f.processor
            .send(&client, &event, bob(), Some(version(1)), deadline())
            .await
            .unwrap();
        f.store.set_unavailable(true);

        // Versions are immutable: their validators never expire.
        f.processor
            .send(&client, &event, bob(), Some(version(1)), deadline())
            .await
            .unwrap();

        assert!(
            f.store
                .get(&client, &event, None, deadline())
                .await
                .is_err(),
            "the store really is down"
        );
    }

    #[tokio::test]
    async fn a_stream_outage_is_reported_and_nothing_is_acknowledged() {
        let f = fixture();
        let (client, event) = registered(&f).await;
        f.stream.set_unavailable(true);

        let error = f
            .processor
            .send(&client, &event, bob(), None, deadline())
            .await
            .unwrap_err();

        assert!(matches!(error, ProcessError::Stream(_)), "{error:?}");
        assert!(f.stream.events(&client, &event).is_empty());
    }

    #[tokio::test]
    async fn a_batch_report_counts_each_outcome_and_decides_the_verdict() {
        let f = fixture();
        let (client, event) = registered(&f).await;

        let mixed = f
            .processor
            .send_batch(&client, &event, vec![bob(), json!(1)], None, deadline())
            .await
            .unwrap();
        assert_eq!((mixed.accepted, mixed.rejected), (1, 1));
        assert_eq!(mixed.verdict, BatchVerdict::SomeAccepted);
        assert!(matches!(mixed.outcomes[1], ItemOutcome::Invalid(_)));

        let none = f
            .processor
            .send_batch(&client, &event, vec![json!(1)], None, deadline())
            .await
            .unwrap();
        assert_eq!(none.verdict, BatchVerdict::NoneValid);

        f.stream.set_unavailable(true);
        let down = f
            .processor
            .send_batch(&client, &event, vec![bob(), json!(2)], None, deadline())
            .await
            .unwrap();
        assert_eq!(
            down.verdict,
            BatchVerdict::Unavailable { unconfirmed: false }
        );
        assert!(down.retryable());
        assert_eq!(down.outcomes[0], ItemOutcome::Unavailable);
    }
}
