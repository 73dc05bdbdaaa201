//! The business functions of the gateway, written against the ports only.
//!
//! `receive_event` is the hot path: the compiled validator for a pair is cached, so a warm
//! process validates and publishes without reading the schema store.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use serde_json::Value;

use crate::domain::{ClientId, EventId, EventName, SchemaVersion};
use crate::envelope::Envelope;
use crate::ports::{
    EventStream, Insert, RegisteredEvent, RegisteredSchema, SchemaStore, StoreError, StreamError,
};
use crate::schema::{CompiledSchema, SchemaError, ValidationIssue};

/// How many compiled validators a process keeps; the bound caps memory. Unregistered pairs
/// are never cached, so a registration made by another process (another Lambda) is visible
/// to the very next event.
const SCHEMA_CACHE_CAPACITY: u64 = 10_000;

/// How long a compiled validator is trusted before the store is read again. Through the API a
/// registered schema never changes (a different one is a 409), so this only bounds how long a
/// change made behind the API's back (an item repaired or deleted in the table) goes unseen by
/// a warm process: at most this long. It costs one store read per pair per minute per process.
pub const SCHEMA_CACHE_TTL: Duration = Duration::from_secs(60);

/// Why a business function failed. Only the HTTP edge turns these into status codes.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("event {client}/{event} is not registered")]
    NotRegistered { client: ClientId, event: EventName },
    #[error("invalid schema")]
    InvalidSchema(#[from] SchemaError),
    #[error("a different schema is already registered for {client}/{event}")]
    SchemaConflict {
        client: ClientId,
        event: EventName,
        version: SchemaVersion,
    },
    #[error("the event does not satisfy the registered schema")]
    InvalidEvent(Vec<ValidationIssue>),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Stream(#[from] StreamError),
}

/// Outcome of a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    /// A new pair (201).
    Created(SchemaVersion),
    /// The identical schema was already registered (200).
    Unchanged(SchemaVersion),
}

impl Registered {
    pub fn version(self) -> SchemaVersion {
        match self {
            Registered::Created(v) | Registered::Unchanged(v) => v,
        }
    }
}

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

/// A pair's compiled schema as the hot path needs it.
#[derive(Debug, Clone)]
struct CachedSchema {
    version: SchemaVersion,
    compiled: CompiledSchema,
}

/// Why a cache fill failed; cloned to every request waiting on the same fill.
#[derive(Debug, Clone)]
enum Lookup {
    NotRegistered,
    Store(StoreError),
    /// The stored schema no longer compiles (e.g. written by another tool); logged, 503.
    Uncompilable,
}

/// The gateway's business logic over a schema store and an event stream.
#[derive(Clone)]
pub struct Processor {
    schemas: Arc<dyn SchemaStore>,
    stream: Arc<dyn EventStream>,
    cache: Cache<(ClientId, EventName), Arc<CachedSchema>>,
}

impl Processor {
    pub fn new(schemas: Arc<dyn SchemaStore>, stream: Arc<dyn EventStream>) -> Self {
        Self::with_schema_cache_ttl(schemas, stream, SCHEMA_CACHE_TTL)
    }

    /// As [`Processor::new`], trusting a cached validator for `ttl` (tests use a short one).
    pub fn with_schema_cache_ttl(
        schemas: Arc<dyn SchemaStore>,
        stream: Arc<dyn EventStream>,
        ttl: Duration,
    ) -> Self {
        Self {
            schemas,
            stream,
            cache: Cache::builder()
                .max_capacity(SCHEMA_CACHE_CAPACITY)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// Registers `schema` for the pair: first time → `Created(1)`; the same schema again
    /// (compared as JSON values) → `Unchanged`; a different one → `SchemaConflict`.
    #[tracing::instrument(skip(self, schema), fields(%client, %event))]
    pub async fn register_event(
        &self,
        client: &ClientId,
        event: &EventName,
        schema: Value,
    ) -> Result<Registered, ProcessError> {
        let compiled = CompiledSchema::compile(&schema)?;
        // Per-pair stream resources first: if they cannot be made, nothing is registered, and
        // an identical re-registration retries them.
        self.stream.prepare(client, event).await?;
        match self
            .schemas
            .insert_if_absent(client, event, &schema)
            .await?
        {
            Insert::Inserted(version) => {
                let cached = CachedSchema { version, compiled };
                self.cache
                    .insert((client.clone(), event.clone()), Arc::new(cached))
                    .await;
                Ok(Registered::Created(version))
            }
            Insert::Existing(existing) if existing.schema == schema => {
                Ok(Registered::Unchanged(existing.version))
            }
            Insert::Existing(existing) => Err(ProcessError::SchemaConflict {
                client: client.clone(),
                event: event.clone(),
                version: existing.version,
            }),
        }
    }

    /// Validates `data` against the pair's schema and publishes it; returns its id once the
    /// stream has acknowledged it.
    #[tracing::instrument(skip(self, data), fields(%client, %event))]
    pub async fn receive_event(
        &self,
        client: &ClientId,
        event: &EventName,
        data: Value,
    ) -> Result<EventId, ProcessError> {
        let schema = self.compiled(client, event).await?;
        schema
            .compiled
            .validate(&data)
            .map_err(ProcessError::InvalidEvent)?;
        let envelope = Envelope::new(client, event, schema.version, data);
        self.stream.publish(&envelope).await?;
        tracing::debug!(id = %envelope.id, "event acknowledged by the stream");
        Ok(envelope.id)
    }

    /// Validates each event of a batch on its own and publishes the valid ones together
    /// (one stream call); returns one outcome per input, in input order.
    #[tracing::instrument(skip(self, items), fields(%client, %event, items = items.len()))]
    pub async fn receive_events(
        &self,
        client: &ClientId,
        event: &EventName,
        items: Vec<Value>,
    ) -> Result<Vec<ItemOutcome>, ProcessError> {
        let schema = self.compiled(client, event).await?;
        let mut outcomes = Vec::with_capacity(items.len());
        let mut envelopes = Vec::with_capacity(items.len());
        for data in items {
            match schema.compiled.validate(&data) {
                Ok(()) => {
                    // Placeholder until the stream answers for this envelope.
                    outcomes.push(ItemOutcome::Unavailable);
                    envelopes.push((
                        outcomes.len() - 1,
                        Envelope::new(client, event, schema.version, data),
                    ));
                }
                Err(issues) => outcomes.push(ItemOutcome::Invalid(issues)),
            }
        }
        if envelopes.is_empty() {
            return Ok(outcomes);
        }
        let (indexes, envelopes): (Vec<usize>, Vec<Envelope>) = envelopes.into_iter().unzip();
        let results = self.stream.publish_batch(&envelopes).await;
        for ((index, envelope), result) in indexes.into_iter().zip(&envelopes).zip(results) {
            outcomes[index] = match result {
                Ok(()) => ItemOutcome::Accepted(envelope.id),
                Err(StreamError::TooLarge { .. }) => ItemOutcome::TooLarge,
                Err(error) => {
                    tracing::warn!(error = %crate::ports::ErrorChain(&error), id = %envelope.id, "batch item not acknowledged");
                    ItemOutcome::Unavailable
                }
            };
        }
        Ok(outcomes)
    }

    /// The pair's registered schema, read from the store.
    #[tracing::instrument(skip(self), fields(%client, %event))]
    pub async fn get_event_schema(
        &self,
        client: &ClientId,
        event: &EventName,
    ) -> Result<RegisteredSchema, ProcessError> {
        self.schemas
            .get(client, event)
            .await?
            .ok_or_else(|| ProcessError::NotRegistered {
                client: client.clone(),
                event: event.clone(),
            })
    }

    /// Every pair registered by `client`, sorted by event name (empty for an unknown client).
    #[tracing::instrument(skip(self), fields(%client))]
    pub async fn list_registered_events(
        &self,
        client: &ClientId,
    ) -> Result<Vec<RegisteredEvent>, ProcessError> {
        Ok(self.schemas.list(client).await?)
    }

    /// The compiled schema of a pair: from the cache, or loaded once (concurrent first
    /// requests for a pair share one store read).
    async fn compiled(
        &self,
        client: &ClientId,
        event: &EventName,
    ) -> Result<Arc<CachedSchema>, ProcessError> {
        let key = (client.clone(), event.clone());
        let load = async {
            let stored = self
                .schemas
                .get(client, event)
                .await
                .map_err(Lookup::Store)?
                .ok_or(Lookup::NotRegistered)?;
            let compiled = CompiledSchema::compile(&stored.schema).map_err(|error| {
                tracing::error!(%error, version = %stored.version, "stored schema does not compile");
                Lookup::Uncompilable
            })?;
            Ok::<_, Lookup>(Arc::new(CachedSchema {
                version: stored.version,
                compiled,
            }))
        };
        self.cache
            .try_get_with(key, load)
            .await
            .map_err(|lookup| match lookup.as_ref() {
                Lookup::NotRegistered => ProcessError::NotRegistered {
                    client: client.clone(),
                    event: event.clone(),
                },
                Lookup::Store(error) => ProcessError::Store(error.clone()),
                Lookup::Uncompilable => {
                    ProcessError::Store(StoreError::Corrupt(crate::ports::cause(
                        SchemaError::Uncompilable("stored schema does not compile".into()),
                    )))
                }
            })
    }
}

#[cfg(test)]
mod tests {
    //! The original service's cases, at core level on the memory adapters.

    use serde_json::json;

    use super::*;
    use crate::adapters::memory::{MemoryEventStream, MemorySchemaStore};

    fn fixture() -> (Processor, MemoryEventStream, Arc<MemorySchemaStore>) {
        fixture_with_ttl(SCHEMA_CACHE_TTL)
    }

    fn fixture_with_ttl(ttl: Duration) -> (Processor, MemoryEventStream, Arc<MemorySchemaStore>) {
        let store = Arc::new(MemorySchemaStore::new());
        let stream = MemoryEventStream::new();
        let processor =
            Processor::with_schema_cache_ttl(store.clone(), Arc::new(stream.clone()), ttl);
        (processor, stream, store)
    }

    fn names(client: &str, event: &str) -> (ClientId, EventName) {
        (
            ClientId::parse(client).unwrap(),
            EventName::parse(event).unwrap(),
        )
    }

    fn person_schema() -> Value {
        json!({
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name", "age"],
            "additionalProperties": false
        })
    }

    #[tokio::test]
    async fn a_valid_event_is_published_with_its_id() {
        let (processor, stream, _) = fixture();
        let (client, event) = names("a", "Person");
        processor
            .register_event(&client, &event, person_schema())
            .await
            .unwrap();

        let id = processor
            .receive_event(&client, &event, json!({"name": "Bob", "age": 3}))
            .await
            .unwrap();

        let published = stream.events(&client, &event);
        assert_eq!(published.len(), 1);
        assert_eq!(published[0].id, id.to_string());
        assert_eq!(published[0].data, json!({"name": "Bob", "age": 3}));
    }

    #[tokio::test]
    async fn an_invalid_event_is_rejected_with_reasons_and_not_published() {
        let (processor, stream, _) = fixture();
        let (client, event) = names("a", "Person");
        processor
            .register_event(&client, &event, person_schema())
            .await
            .unwrap();

        let error = processor
            .receive_event(&client, &event, json!({"name": 7, "extra": true}))
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
        assert!(stream.events(&client, &event).is_empty());
    }

    #[tokio::test]
    async fn an_unregistered_event_is_not_registered() {
        let (processor, _, _) = fixture();
        let (client, event) = names("a", "Nope");
        let error = processor
            .receive_event(&client, &event, json!({}))
            .await
            .unwrap_err();
        assert!(
            matches!(error, ProcessError::NotRegistered { .. }),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn first_registration_creates_version_1_and_the_same_schema_again_is_unchanged() {
        let (processor, _, _) = fixture();
        let (client, event) = names("a", "Person");
        let first = processor
            .register_event(&client, &event, person_schema())
            .await
            .unwrap();
        let again = processor
            .register_event(&client, &event, person_schema())
            .await
            .unwrap();
        assert_eq!(first, Registered::Created(SchemaVersion::FIRST));
        assert_eq!(again, Registered::Unchanged(SchemaVersion::FIRST));
    }

    #[tokio::test]
    async fn a_different_schema_for_a_registered_pair_conflicts() {
        let (processor, _, _) = fixture();
        let (client, event) = names("a", "Person");
        processor
            .register_event(&client, &event, person_schema())
            .await
            .unwrap();
        let error = processor
            .register_event(&client, &event, json!({"type": "array"}))
            .await
            .unwrap_err();
        assert!(
            matches!(error, ProcessError::SchemaConflict { .. }),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn an_invalid_schema_is_refused_with_reasons_and_not_stored() {
        let (processor, _, store) = fixture();
        let (client, event) = names("a", "Person");
        let error = processor
            .register_event(&client, &event, json!({"type": "random_type"}))
            .await
            .unwrap_err();
        let ProcessError::InvalidSchema(SchemaError::Invalid(issues)) = error else {
            panic!("expected InvalidSchema, got {error:?}");
        };
        assert!(!issues.is_empty());
        assert_eq!(store.get(&client, &event).await.unwrap(), None);
    }

    #[tokio::test]
    async fn listing_client_a_does_not_show_client_b() {
        let (processor, _, _) = fixture();
        let (a, fruits) = names("a", "Fruits");
        let (b, colors) = names("b", "Colors");
        processor
            .register_event(&a, &fruits, json!({}))
            .await
            .unwrap();
        processor
            .register_event(&b, &colors, json!({}))
            .await
            .unwrap();

        let listed = processor.list_registered_events(&a).await.unwrap();

        assert_eq!(
            listed,
            vec![RegisteredEvent {
                client: a,
                event: fruits,
                version: SchemaVersion::FIRST
            }]
        );
    }

    #[tokio::test]
    async fn a_warm_pair_validates_without_reading_the_store() {
        let (processor, stream, store) = fixture();
        let (client, event) = names("a", "Person");
        processor
            .register_event(&client, &event, person_schema())
            .await
            .unwrap();
        // With the store down, only the cache can answer.
        store.set_unavailable(true);

        processor
            .receive_event(&client, &event, json!({"name": "Bob", "age": 3}))
            .await
            .unwrap();

        assert_eq!(stream.events(&client, &event).len(), 1);
    }

    #[tokio::test]
    async fn a_cached_validator_expires_and_the_store_is_read_again() {
        let (processor, stream, store) = fixture_with_ttl(Duration::from_millis(50));
        let (client, event) = names("a", "Person");
        processor
            .register_event(&client, &event, person_schema())
            .await
            .unwrap();
        store.set_unavailable(true);

        // Well past the TTL: the entry is gone, so the send needs the (unavailable) store.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let error = processor
            .receive_event(&client, &event, json!({"name": "Bob", "age": 3}))
            .await
            .unwrap_err();

        assert!(matches!(error, ProcessError::Store(_)), "{error:?}");
        assert!(stream.events(&client, &event).is_empty());
    }

    #[tokio::test]
    async fn a_stream_outage_is_reported_and_nothing_is_acknowledged() {
        let (processor, stream, _) = fixture();
        let (client, event) = names("a", "Person");
        processor
            .register_event(&client, &event, person_schema())
            .await
            .unwrap();
        stream.set_unavailable(true);

        let error = processor
            .receive_event(&client, &event, json!({"name": "Bob", "age": 3}))
            .await
            .unwrap_err();

        assert!(matches!(error, ProcessError::Stream(_)), "{error:?}");
        assert!(stream.events(&client, &event).is_empty());
    }
}
