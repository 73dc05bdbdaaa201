//! The business functions of the gateway, written against the ports only, one file per
//! capability: [`registry`] (register, read and list schemas) and [`ingest`] (validate and
//! publish events, one at a time or in batches).
//!
//! Every function takes the request's [`Deadline`](crate::retry::Deadline): all the store and
//! stream calls it makes share it.

mod cache;
pub mod ingest;
pub mod registry;

use std::sync::Arc;
use std::time::Duration;

use crate::domain::{ClientId, EventName, SchemaVersion};
use crate::envelope::EncodeError;
use crate::ports::{EventStream, SchemaStore, StoreError, StreamError};
use crate::schema::{SchemaError, ValidationIssue};

pub use cache::SCHEMA_CACHE_TTL;
pub use ingest::{BatchReport, BatchVerdict, ItemOutcome};
pub use registry::Registered;

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
    /// An accepted event could not be enveloped: a bug, never the client's input.
    #[error("the event could not be enveloped")]
    Encode(#[from] EncodeError),
}

/// The gateway's business logic over a schema store and an event stream.
#[derive(Clone)]
pub struct Processor {
    schemas: Arc<dyn SchemaStore>,
    stream: Arc<dyn EventStream>,
    cache: cache::SchemaCache,
}

impl Processor {
    pub fn new(schemas: Arc<dyn SchemaStore>, stream: Arc<dyn EventStream>) -> Self {
        Self {
            schemas,
            stream,
            cache: cache::SchemaCache::new(SCHEMA_CACHE_TTL),
        }
    }

    /// Trusts a cached validator for `ttl` instead of [`SCHEMA_CACHE_TTL`] (tests use a short one).
    pub fn with_schema_cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache = cache::SchemaCache::new(ttl);
        self
    }
}

#[cfg(test)]
mod tests {
    //! Shared fixtures of the processor's tests (the original service's cases, at core level
    //! on the memory adapters).

    use std::sync::Arc;
    use std::time::Duration;

    use serde_json::{Value, json};

    use super::*;
    use crate::adapters::memory::{MemoryEventStream, MemorySchemaStore};
    use crate::retry::Deadline;

    pub(super) struct Fixture {
        pub processor: Processor,
        pub stream: MemoryEventStream,
        pub store: Arc<MemorySchemaStore>,
    }

    pub(super) fn fixture() -> Fixture {
        fixture_with_ttl(SCHEMA_CACHE_TTL)
    }

    pub(super) fn fixture_with_ttl(ttl: Duration) -> Fixture {
        let store = Arc::new(MemorySchemaStore::new());
        let stream = MemoryEventStream::new();
        let processor =
            Processor::new(store.clone(), Arc::new(stream.clone())).with_schema_cache_ttl(ttl);
        Fixture {
            processor,
            stream,
            store,
        }
    }

    pub(super) fn names(client: &str, event: &str) -> (ClientId, EventName) {
        (
            ClientId::parse(client).unwrap(),
            EventName::parse(event).unwrap(),
        )
    }

    pub(super) fn deadline() -> Deadline {
        Deadline::after(Duration::from_secs(5))
    }

    pub(super) fn person_schema() -> Value {
        json!({
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name", "age"],
            "additionalProperties": false
        })
    }
}
