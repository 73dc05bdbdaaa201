//! In-memory adapters: for unit tests of the core and for `memory:` load runs.
//! Nothing survives the process, and only the process itself can subscribe.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::Notify;

use crate::domain::{ClientId, EventName, SchemaVersion};
use crate::envelope::{CloudEvent, Envelope};
use crate::ports::{
    EventSource, EventStream, Insert, RegisteredEvent, RegisteredSchema, SchemaStore, StartAt,
    StoreError, StreamError, Subscription, cause,
};

/// The error a switched-off memory adapter reports, to exercise 503 paths in tests.
#[derive(Debug, thiserror::Error)]
#[error("memory adapter switched off for a test")]
pub struct SwitchedOff;

/// Schemas in a map.
#[derive(Default)]
pub struct MemorySchemaStore {
    schemas: RwLock<BTreeMap<(ClientId, EventName), RegisteredSchema>>,
    down: AtomicBool,
}

impl MemorySchemaStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every call fail as `Unavailable` (true) or work again (false).
    pub fn set_unavailable(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(cause(SwitchedOff)));
        }
        Ok(())
    }
}

#[async_trait]
impl SchemaStore for MemorySchemaStore {
    async fn insert_if_absent(
        &self,
        client: &ClientId,
        event: &EventName,
        schema: &Value,
    ) -> Result<Insert, StoreError> {
        self.check()?;
        let mut schemas = self.schemas.write().unwrap_or_else(|e| e.into_inner());
        let key = (client.clone(), event.clone());
        if let Some(existing) = schemas.get(&key) {
            return Ok(Insert::Existing(existing.clone()));
        }
        let registered = RegisteredSchema {
            client: client.clone(),
            event: event.clone(),
            version: SchemaVersion::FIRST,
            schema: schema.clone(),
        };
        schemas.insert(key, registered);
        Ok(Insert::Inserted(SchemaVersion::FIRST))
    }

    async fn get(
        &self,
        client: &ClientId,
        event: &EventName,
    ) -> Result<Option<RegisteredSchema>, StoreError> {
        self.check()?;
        let schemas = self.schemas.read().unwrap_or_else(|e| e.into_inner());
        Ok(schemas.get(&(client.clone(), event.clone())).cloned())
    }

    async fn list(&self, client: &ClientId) -> Result<Vec<RegisteredEvent>, StoreError> {
        self.check()?;
        let schemas = self.schemas.read().unwrap_or_else(|e| e.into_inner());
        // The map is ordered by (client, event): this client's pairs come sorted by event.
        Ok(schemas
            .values()
            .filter(|s| &s.client == client)
            .map(|s| RegisteredEvent {
                client: s.client.clone(),
                event: s.event.clone(),
                version: s.version,
            })
            .collect())
    }
}

#[derive(Default)]
struct Log {
    events: Mutex<HashMap<(ClientId, EventName), Vec<CloudEvent>>>,
    appended: Notify,
}

/// An in-process event log per pair; also its own [`EventSource`].
#[derive(Default, Clone)]
pub struct MemoryEventStream {
    log: Arc<Log>,
    down: Arc<AtomicBool>,
}

impl MemoryEventStream {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every publish fail as `Unavailable` (true) or work again (false).
    pub fn set_unavailable(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Everything published for the pair so far, in order.
    pub fn events(&self, client: &ClientId, event: &EventName) -> Vec<CloudEvent> {
        let events = self.log.events.lock().unwrap_or_else(|e| e.into_inner());
        events
            .get(&(client.clone(), event.clone()))
            .cloned()
            .unwrap_or_default()
    }
}

#[async_trait]
impl EventStream for MemoryEventStream {
    async fn publish(&self, event: &Envelope) -> Result<(), StreamError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StreamError::Unavailable(cause(SwitchedOff)));
        }
        {
            let mut events = self.log.events.lock().unwrap_or_else(|e| e.into_inner());
            events
                .entry((event.client.clone(), event.event.clone()))
                .or_default()
                .push(event.cloud_event.clone());
        }
        self.log.appended.notify_waiters();
        Ok(())
    }
}

#[async_trait]
impl EventSource for MemoryEventStream {
    async fn subscribe(
        &self,
        client: &ClientId,
        event: &EventName,
        start: StartAt,
    ) -> Result<Box<dyn Subscription>, StreamError> {
        let next = match start {
            StartAt::Beginning => 0,
            StartAt::End => self.events(client, event).len(),
        };
        Ok(Box::new(MemorySubscription {
            stream: self.clone(),
            key: (client.clone(), event.clone()),
            next,
        }))
    }
}

struct MemorySubscription {
    stream: MemoryEventStream,
    key: (ClientId, EventName),
    next: usize,
}

impl MemorySubscription {
    fn take_new(&mut self) -> Vec<CloudEvent> {
        let events = self
            .stream
            .log
            .events
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let new: Vec<CloudEvent> = events
            .get(&self.key)
            .map(|all| all.get(self.next..).unwrap_or_default().to_vec())
            .unwrap_or_default();
        self.next += new.len();
        new
    }
}

#[async_trait]
impl Subscription for MemorySubscription {
    async fn next_batch(&mut self) -> Result<Vec<CloudEvent>, StreamError> {
        // Register interest before looking, so an append in between is not missed.
        let log = self.stream.log.clone();
        let appended = log.appended.notified();
        let new = self.take_new();
        if !new.is_empty() {
            return Ok(new);
        }
        let _ = tokio::time::timeout(Duration::from_millis(500), appended).await;
        Ok(self.take_new())
    }
}
