//! Ingest: validating events against their pair's schema and publishing the valid ones, one at
//! a time (`send_event`) or as a batch (`send_events`). The hot path.

use std::sync::Arc;

use serde_json::Value;

use super::cache::{CachedSchema, Lookup};
use super::{ProcessError, Processor};
use crate::domain::{ClientId, EventId, EventName};
use crate::envelope::Envelope;
use crate::error::{ErrorChain, cause};
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
    /// Valid, but the stream did not acknowledge it; the client may retry it.
    Unavailable,
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
    /// Nothing was accepted because the stream did not acknowledge; the valid items can be retried.
    Unavailable,
    /// Nothing was accepted because no item can be published as it is.
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
        let unavailable = outcomes
            .iter()
            .filter(|o| matches!(o, ItemOutcome::Unavailable))
            .count();
        let verdict = if accepted == outcomes.len() {
            BatchVerdict::AllAccepted
        } else if accepted > 0 {
            BatchVerdict::SomeAccepted
        } else if unavailable > 0 {
            BatchVerdict::Unavailable
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
        self.outcomes.contains(&ItemOutcome::Unavailable)
    }
}

impl Processor {
    /// Validates `data` against the pair's schema and publishes it; returns its id once the
    /// stream has acknowledged it.
    #[tracing::instrument(skip(self, data, deadline), fields(%client, %event))]
    pub async fn receive_event(
        &self,
        client: &ClientId,
        event: &EventName,
        data: Value,
        deadline: Deadline,
    ) -> Result<EventId, ProcessError> {
        let schema = self.compiled(client, event, deadline).await?;
        schema
            .compiled
            .validate(&data)
            .map_err(ProcessError::InvalidEvent)?;
        let envelope = Envelope::new(client, event, schema.version, &data)?;
        self.stream.publish(&envelope, deadline).await?;
        tracing::debug!(id = %envelope.id, "event acknowledged by the stream");
        Ok(envelope.id)
    }

    /// Validates each event of a batch on its own and publishes the valid ones together
    /// (one stream call, one deadline); reports one outcome per input, in input order.
    #[tracing::instrument(skip(self, items, deadline), fields(%client, %event, items = items.len()))]
    pub async fn receive_events(
        &self,
        client: &ClientId,
        event: &EventName,
        items: Vec<Value>,
        deadline: Deadline,
    ) -> Result<BatchReport, ProcessError> {
        let schema = self.compiled(client, event, deadline).await?;
        let mut outcomes = Vec::with_capacity(items.len());
        let mut envelopes = Vec::with_capacity(items.len());
        let mut indexes = Vec::with_capacity(items.len());
        for data in &items {
            match schema.compiled.validate(data) {
                Ok(()) => {
                    indexes.push(outcomes.len());
                    envelopes.push(Envelope::new(client, event, schema.version, data)?);
                    // Until the stream answers for this envelope.
                    outcomes.push(ItemOutcome::Unavailable);
                }
                Err(issues) => outcomes.push(ItemOutcome::Invalid(issues)),
            }
        }
        if !envelopes.is_empty() {
            let results = self.stream.publish_batch(&envelopes, deadline).await;
            for ((index, envelope), result) in indexes.into_iter().zip(&envelopes).zip(results) {
                outcomes[index] = match result {
                    Ok(()) => ItemOutcome::Accepted(envelope.id),
                    Err(StreamError::TooLarge { .. }) => ItemOutcome::TooLarge,
                    Err(error) => {
                        tracing::warn!(error = %ErrorChain(&error), id = %envelope.id, "batch item not acknowledged");
                        ItemOutcome::Unavailable
                    }
                };
            }
        }
        Ok(BatchReport::new(outcomes))
    }

    /// The compiled schema of a pair: from the cache, or loaded once (concurrent first
    /// requests for a pair share one store read).
    async fn compiled(
        &self,
        client: &ClientId,
        event: &EventName,
        deadline: Deadline,
    ) -> Result<Arc<CachedSchema>, ProcessError> {
        let load = async {
            let stored = self
                .schemas
                .get(client, event, deadline)
                .await
                .map_err(Lookup::Store)?
                .ok_or(Lookup::NotRegistered)?;
            let compiled = CompiledSchema::compile(&stored.schema)
                .map_err(|error| Lookup::Uncompilable(Arc::new(error)))?;
            Ok(Arc::new(CachedSchema::new(stored.version, compiled)))
        };
        self.cache
            .get_or_load(client, event, load)
            .await
            .map_err(|lookup| match lookup.as_ref() {
                Lookup::NotRegistered => ProcessError::NotRegistered {
                    client: client.clone(),
                    event: event.clone(),
                },
                Lookup::Store(error) => ProcessError::Store(error.clone()),
                // A schema the store holds but that no longer compiles: the store's data is
                // at fault (written by another tool), not the request.
                Lookup::Uncompilable(error) => {
                    ProcessError::Store(StoreError::Corrupt(cause(StoredSchema(error.clone()))))
                }
            })
    }
}

/// A schema read from the store that does not compile.
#[derive(Debug, thiserror::Error)]
#[error("the stored schema does not compile")]
struct StoredSchema(#[source] Arc<crate::schema::SchemaError>);

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::super::tests::{deadline, fixture, fixture_with_ttl, names, person_schema};
    use super::*;

    #[tokio::test]
    async fn a_valid_event_is_published_with_its_id() {
        let f = fixture();
        let (client, event) = names("a", "Person");
        f.processor
            .register_event(&client, &event, person_schema(), deadline())
            .await
            .unwrap();

        let id = f
            .processor
            .receive_event(
                &client,
                &event,
                json!({"name": "Bob", "age": 3}),
                deadline(),
            )
            .await
            .unwrap();

        let published = f.stream.events(&client, &event);
        assert_eq!(published.len(), 1);
        assert_eq!(published[0].id, id.to_string());
        assert_eq!(published[0].data, json!({"name": "Bob", "age": 3}));
    }

    #[tokio::test]
    async fn an_invalid_event_is_rejected_with_reasons_and_not_published() {
        let f = fixture();
        let (client, event) = names("a", "Person");
        f.processor
            .register_event(&client, &event, person_schema(), deadline())
            .await
            .unwrap();

        let error = f
            .processor
            .receive_event(
                &client,
                &event,
                json!({"name": 7, "extra": true}),
                deadline(),
            )
            .await
            .unwrap_err();

        let ProcessError::InvalidEvent(issues) = error else {
            panic!("expected InvalidEvent, got {error:?}");
        };
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
            .receive_event(&client, &event, json!({}), deadline())
            .await
            .unwrap_err();
        assert!(
            matches!(error, ProcessError::NotRegistered { .. }),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn a_warm_pair_validates_without_reading_the_store() {
        let f = fixture();
        let (client, event) = names("a", "Person");
        f.processor
            .register_event(&client, &event, person_schema(), deadline())
            .await
            .unwrap();
        // With the store down, only the cache can answer.
        f.store.set_unavailable(true);

        f.processor
            .receive_event(
                &client,
                &event,
                json!({"name": "Bob", "age": 3}),
                deadline(),
            )
            .await
            .unwrap();

        assert_eq!(f.stream.events(&client, &event).len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cached_validator_expires_and_the_store_is_read_again() {
        let ttl = Duration::from_secs(60);
        let f = fixture_with_ttl(ttl);
        let (client, event) = names("a", "Person");
        f.processor
            .register_event(&client, &event, person_schema(), deadline())
            .await
            .unwrap();
        f.store.set_unavailable(true);
        let valid = json!({"name": "Bob", "age": 3});

        // Within the TTL the cache answers; past it, the send needs the (unavailable) store.
        tokio::time::advance(ttl - Duration::from_secs(1)).await;
        f.processor
            .receive_event(&client, &event, valid.clone(), deadline())
            .await
            .expect("still cached");
        tokio::time::advance(Duration::from_secs(2)).await;
        let error = f
            .processor
            .receive_event(&client, &event, valid, deadline())
            .await
            .unwrap_err();

        assert!(matches!(error, ProcessError::Store(_)), "{error:?}");
        assert_eq!(f.stream.events(&client, &event).len(), 1);
    }

    #[tokio::test]
    async fn a_stream_outage_is_reported_and_nothing_is_acknowledged() {
        let f = fixture();
        let (client, event) = names("a", "Person");
        f.processor
            .register_event(&client, &event, person_schema(), deadline())
            .await
            .unwrap();
        f.stream.set_unavailable(true);

        let error = f
            .processor
            .receive_event(
                &client,
                &event,
                json!({"name": "Bob", "age": 3}),
                deadline(),
            )
            .await
            .unwrap_err();

        assert!(matches!(error, ProcessError::Stream(_)), "{error:?}");
        assert!(f.stream.events(&client, &event).is_empty());
    }

    #[tokio::test]
    async fn a_batch_report_counts_each_outcome_and_decides_the_verdict() {
        let f = fixture();
        let (client, event) = names("a", "Person");
        f.processor
            .register_event(&client, &event, person_schema(), deadline())
            .await
            .unwrap();
        let valid = json!({"name": "Bob", "age": 3});

        let mixed = f
            .processor
            .receive_events(&client, &event, vec![valid.clone(), json!(1)], deadline())
            .await
            .unwrap();
        assert_eq!((mixed.accepted, mixed.rejected), (1, 1));
        assert_eq!(mixed.verdict, BatchVerdict::SomeAccepted);
        assert!(matches!(mixed.outcomes[1], ItemOutcome::Invalid(_)));

        let none = f
            .processor
            .receive_events(&client, &event, vec![json!(1)], deadline())
            .await
            .unwrap();
        assert_eq!(none.verdict, BatchVerdict::NoneValid);

        f.stream.set_unavailable(true);
        let down = f
            .processor
            .receive_events(&client, &event, vec![valid, json!(2)], deadline())
            .await
            .unwrap();
        assert_eq!(down.verdict, BatchVerdict::Unavailable);
        assert!(down.retryable());
        assert_eq!(down.outcomes[0], ItemOutcome::Unavailable);
    }
}
