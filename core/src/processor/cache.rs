//! The compiled-schema cache of the hot path: a warm process validates and publishes without
//! reading the schema store.
//!
//! Bounded (a capacity in pairs), single-flight (concurrent first requests for a pair share one
//! store read), and trusted for a TTL measured on tokio's clock, so tests can pause time
//! instead of sleeping. Unregistered pairs are never cached, so a registration made by another
//! process (another Lambda) is visible to the very next event.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use tokio::time::Instant;

use crate::domain::{ClientId, EventName, SchemaVersion};
use crate::ports::StoreError;
use crate::schema::{CompiledSchema, SchemaError};

/// How many compiled validators a process keeps; the bound caps memory.
const CAPACITY: u64 = 10_000;

/// How long a compiled validator is trusted before the store is read again. Through the API a
/// registered schema never changes (a different one is a 409), so this only bounds how long a
/// change made behind the API's back (an item repaired or deleted in the table) goes unseen by
/// a warm process: at most this long. It costs one store read per pair per minute per process.
pub const SCHEMA_CACHE_TTL: Duration = Duration::from_secs(60);

/// A pair's compiled schema as the hot path needs it.
#[derive(Debug)]
pub(super) struct CachedSchema {
    pub version: SchemaVersion,
    pub compiled: CompiledSchema,
    loaded_at: Instant,
}

impl CachedSchema {
    pub fn new(version: SchemaVersion, compiled: CompiledSchema) -> Self {
        Self {
            version,
            compiled,
            loaded_at: Instant::now(),
        }
    }
}

/// Why a cache fill failed; shared by every request that waited on the same fill.
#[derive(Debug)]
pub(super) enum Lookup {
    NotRegistered,
    Store(StoreError),
    /// The stored schema no longer compiles (e.g. written by another tool).
    Uncompilable(Arc<SchemaError>),
}

#[derive(Clone)]
pub(super) struct SchemaCache {
    entries: Cache<(ClientId, EventName), Arc<CachedSchema>>,
    ttl: Duration,
}

impl SchemaCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            entries: Cache::builder().max_capacity(CAPACITY).build(),
            ttl,
        }
    }

    /// The cached entry of the pair if it is still trusted, or the result of `load` (run once
    /// for all concurrent callers).
    pub async fn get_or_load(
        &self,
        client: &ClientId,
        event: &EventName,
        load: impl Future<Output = Result<Arc<CachedSchema>, Lookup>>,
    ) -> Result<Arc<CachedSchema>, Arc<Lookup>> {
        let key = (client.clone(), event.clone());
        if let Some(entry) = self.entries.get(&key).await {
            if entry.loaded_at.elapsed() < self.ttl {
                return Ok(entry);
            }
            self.entries.invalidate(&key).await;
        }
        self.entries.try_get_with(key, load).await
    }

    pub async fn insert(&self, client: &ClientId, event: &EventName, entry: CachedSchema) {
        self.entries
            .insert((client.clone(), event.clone()), Arc::new(entry))
            .await;
    }
}
