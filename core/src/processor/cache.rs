//! The compiled-schema cache of the hot path: a warm process validates and publishes without
//! reading the schema store.
//!
//! Two maps, both bounded and single-flight (concurrent first requests share one store read):
//! - validators per (client, event, version). Versions are immutable, so these never go stale.
//! - the latest version of each pair, with its validator, trusted for a TTL measured on tokio's
//!   clock (tests pause time instead of sleeping). A newer version registered by another process
//!   is picked up within the TTL — and at once by an event the cached version would refuse (see
//!   `ingest`). Unregistered pairs are never cached, so a registration made by another process is
//!   visible to the very next event.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use tokio::time::Instant;

use crate::domain::{ClientId, EventName, SchemaVersion};
use crate::ports::StoreError;
use crate::schema::{CompiledSchema, SchemaError};

/// How many compiled validators (and latest-version entries) a process keeps.
const CAPACITY: u64 = 10_000;

/// How long "which version is latest" is trusted before the store is read again. It bounds how
/// long a valid event may still be published against an older version after another process
/// registered a newer one (an event only the newer one accepts is never refused meanwhile), and
/// how long a change made behind the API's back goes unseen. It costs one store read per pair
/// per minute per process.
pub const SCHEMA_CACHE_TTL: Duration = Duration::from_secs(60);

/// One version of a pair's schema, compiled.
#[derive(Debug)]
pub(crate) struct Validator {
    pub version: SchemaVersion,
    pub compiled: CompiledSchema,
}

/// The latest version of a pair as of `loaded_at`.
#[derive(Debug, Clone)]
struct Latest {
    validator: Arc<Validator>,
    loaded_at: Instant,
}

/// Why a cache fill failed; shared by every request that waited on the same fill.
#[derive(Debug)]
pub(super) enum Lookup {
    NotRegistered,
    VersionNotFound,
    Store(StoreError),
    /// The stored schema no longer compiles (e.g. written by another tool).
    Uncompilable(Arc<SchemaError>),
}

type Pair = (ClientId, EventName);

#[derive(Clone)]
pub(super) struct SchemaCache {
    validators: Cache<(ClientId, EventName, SchemaVersion), Arc<Validator>>,
    latest: Cache<Pair, Latest>,
    ttl: Duration,
}

impl SchemaCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            validators: Cache::builder().max_capacity(CAPACITY).build(),
            latest: Cache::builder().max_capacity(CAPACITY).build(),
            ttl,
        }
    }

    /// The latest version's validator if it is still trusted, or the result of `load` (run once
    /// for all concurrent callers), which is then also cached as that version's validator.
    pub async fn latest(
        &self,
        client: &ClientId,
        event: &EventName,
        load: impl Future<Output = Result<Arc<Validator>, Lookup>>,
    ) -> Result<Arc<Validator>, Arc<Lookup>> {
        let key = (client.clone(), event.clone());
        if let Some(entry) = self.latest.get(&key).await {
            if entry.loaded_at.elapsed() < self.ttl {
                return Ok(entry.validator);
            }
            self.latest.invalidate(&key).await;
        }
        let entry = self
            .latest
            .try_get_with(key, async {
                let validator = load.await?;
                Ok(Latest {
                    validator,
                    loaded_at: Instant::now(),
                })
            })
            .await?;
        self.remember(client, event, &entry.validator).await;
        Ok(entry.validator)
    }

    /// The validator of `version`, or the result of `load` (run once for all concurrent callers).
    pub async fn version(
        &self,
        client: &ClientId,
        event: &EventName,
        version: SchemaVersion,
        load: impl Future<Output = Result<Arc<Validator>, Lookup>>,
    ) -> Result<Arc<Validator>, Arc<Lookup>> {
        self.validators
            .try_get_with((client.clone(), event.clone(), version), load)
            .await
    }

    /// Records `validator` as the pair's latest version, as of now (after a registration, or
    /// when a store read found a newer version than the cached one).
    pub async fn set_latest(
        &self,
        client: &ClientId,
        event: &EventName,
        validator: Arc<Validator>,
    ) {
        self.remember(client, event, &validator).await;
        let latest = Latest {
            validator,
            loaded_at: Instant::now(),
        };
        self.latest
            .insert((client.clone(), event.clone()), latest)
            .await;
    }

    async fn remember(&self, client: &ClientId, event: &EventName, validator: &Arc<Validator>) {
        self.validators
            .insert(
                (client.clone(), event.clone(), validator.version),
                validator.clone(),
            )
            .await;
    }
}
