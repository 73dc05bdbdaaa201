//! The business functions of the gateway, written against the ports only, one file per
//! capability: [`registry`] (versions, compatibility, reading and listing schemas),
//! [`ingest`] (validating and publishing events, one at a time or in batches, or validating
//! only), [`rejections`] (events refused for their content: kept, listed, replayed) and
//! [`idempotency`] (keys of retried requests).
//!
//! Every function takes the request's [`Deadline`](crate::retry::Deadline): all the store and
//! stream calls it makes share it.

mod cache;
pub mod idempotency;
pub mod ingest;
pub mod registry;
pub mod rejections;

use std::sync::Arc;
use std::time::Duration;

use crate::adapters::memory::MemorySchemaStore;
use crate::compat::{Incompatibility, Mode};
use crate::domain::{ClientId, EventId, EventName, SchemaVersion};
use crate::envelope::EncodeError;
use crate::ports::{
    EventStream, IdempotencyStore, RejectionStore, SchemaStore, StoreError, StreamError,
};
use crate::schema::{SchemaError, ValidationIssue};

pub use cache::SCHEMA_CACHE_TTL;
pub use idempotency::{Claim, Idempotency};
pub use ingest::{Accepted, BatchReport, BatchVerdict, Item, ItemOutcome, Submission};
pub use registry::{CompatibilityReport, Registered};
pub use rejections::{MAX_REJECTED_PAGE, RejectedPage, Replayed};

/// Why a business function failed. Only the HTTP edge turns these into status codes.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("event {client}/{event} is not registered")]
    NotRegistered { client: ClientId, event: EventName },
    #[error("{client}/{event} has no version {version}")]
    VersionNotFound {
        client: ClientId,
        event: EventName,
        version: SchemaVersion,
    },
    #[error("invalid schema")]
    InvalidSchema(#[from] SchemaError),
    /// The new schema breaks the pair's compatibility mode; nothing was registered.
    #[error("the schema is not {mode} compatible with the registered versions")]
    Incompatible {
        mode: Mode,
        incompatibilities: Vec<Incompatibility>,
    },
    /// The pair has registered every version there can be.
    #[error("{client}/{event} has no version number left")]
    VersionsExhausted { client: ClientId, event: EventName },
    #[error("the event does not satisfy version {version} of the schema")]
    InvalidEvent {
        version: SchemaVersion,
        issues: Vec<ValidationIssue>,
    },
    #[error("{client}/{event} has no rejection {id}")]
    RejectionNotFound {
        client: ClientId,
        event: EventName,
        id: EventId,
    },
    /// The rejection kept only the first 64 KiB of its event: it cannot be replayed.
    #[error("rejection {id} kept only part of its event and cannot be replayed")]
    NotReplayable { id: EventId },
    /// Another replay of the same rejection is running.
    #[error("rejection {id} is being replayed")]
    ReplayInProgress { id: EventId },
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
    rejections: Arc<dyn RejectionStore>,
    idempotency: Arc<dyn IdempotencyStore>,
    cache: cache::SchemaCache,
    default_compatibility: Mode,
}

impl Processor {
    /// A processor over a schema store and an event stream. Rejections and idempotency keys
    /// live in this process's memory until [`Processor::with_rejections`] and
    /// [`Processor::with_idempotency`] give them a home (`App` gives them the schema store's
    /// backend).
    pub fn new(schemas: Arc<dyn SchemaStore>, stream: Arc<dyn EventStream>) -> Self {
        let memory = Arc::new(MemorySchemaStore::new());
        Self {
            schemas,
            stream,
            rejections: memory.clone(),
            idempotency: memory,
            cache: cache::SchemaCache::new(SCHEMA_CACHE_TTL),
            default_compatibility: Mode::default(),
        }
    }

    /// Keeps rejected events in `store`.
    pub fn with_rejections(mut self, store: Arc<dyn RejectionStore>) -> Self {
        self.rejections = store;
        self
    }

    /// Keeps idempotency keys in `store`.
    pub fn with_idempotency(mut self, store: Arc<dyn IdempotencyStore>) -> Self {
        self.idempotency = store;
        self
    }

    /// Trusts the cached latest version of a pair for `ttl` instead of [`SCHEMA_CACHE_TTL`].
    pub fn with_schema_cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache = cache::SchemaCache::new(ttl);
        self
    }

    /// The mode of pairs that have none of their own (`DEFAULT_COMPATIBILITY`).
    pub fn with_default_compatibility(mut self, mode: Mode) -> Self {
        self.default_compatibility = mode;
        self
    }

    fn not_registered(client: &ClientId, event: &EventName) -> ProcessError {
        ProcessError::NotRegistered {
            client: client.clone(),
            event: event.clone(),
        }
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

    pub(super) fn version(n: u32) -> SchemaVersion {
        SchemaVersion::new(n).unwrap()
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
