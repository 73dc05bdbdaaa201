//! The business functions of the gateway, written against the ports only.
//!
//! `receive_event` is the hot path: the compiled validator for a pair is cached, so a warm
//! process validates and publishes without reading the schema store.

use std::sync::Arc;

use moka::future::Cache;
use serde_json::Value;

use crate::domain::{ClientId, EventId, EventName, SchemaVersion};
use crate::envelope::Envelope;
use crate::ports::{
    EventStream, Insert, RegisteredEvent, RegisteredSchema, SchemaStore, StoreError, StreamError,
};
use crate::schema::{CompiledSchema, SchemaError, ValidationIssue};

/// How many compiled validators a process keeps. Registered schemas never change (a different
/// schema for a registered pair is a 409), so an entry never goes stale; the bound only caps
/// memory. Unregistered pairs are never cached, so a registration made by another process
/// (another Lambda) is visible to the very next event.
const SCHEMA_CACHE_CAPACITY: u64 = 10_000;

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
        Self {
            schemas,
            stream,
            cache: Cache::builder().max_capacity(SCHEMA_CACHE_CAPACITY).build(),
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
