//! In-memory adapters: for unit tests of the core and for `memory:` load runs.
//! Nothing survives the process, and only the process itself can subscribe.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::sync::Notify;

use crate::compat::Mode;
use crate::domain::{
    ClientId, EventId, EventName, Fingerprint, IdempotencyKey, SchemaVersion, now_rfc3339,
};
use crate::envelope::{CloudEvent, Envelope};
use crate::error::cause;
use crate::ports::{
    Begin, EventSource, EventStream, IDEMPOTENCY_RETENTION, IdempotencyStore, Insert, KeptAnswer,
    MAX_REJECTIONS_PER_PAIR, RegisteredEvent, RegisteredSchema, Rejection, RejectionStore,
    SchemaStore, StartAt, StoreError, StreamError, Subscription, VersionInfo,
};
use crate::retry::Deadline;

/// The error a switched-off memory adapter reports, to exercise 503 paths in tests.
#[derive(Debug, thiserror::Error)]
#[error("memory adapter switched off for a test")]
pub struct SwitchedOff;

/// One pair's versions (ascending) and its own compatibility mode.
#[derive(Default)]
struct Pair {
    versions: Vec<RegisteredSchema>,
    compatibility: Option<Mode>,
}

/// Schemas, rejections and idempotency keys in maps.
#[derive(Default)]
pub struct MemorySchemaStore {
    pairs: RwLock<BTreeMap<(ClientId, EventName), Pair>>,
    kept: Mutex<Kept>,
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

    /// Runs `read` on the pair's entry (`None` if it was never registered).
    fn read<T>(
        &self,
        client: &ClientId,
        event: &EventName,
        read: impl FnOnce(Option<&Pair>) -> T,
    ) -> Result<T, StoreError> {
        self.check()?;
        let pairs = self.pairs.read().unwrap_or_else(|e| e.into_inner());
        Ok(read(pairs.get(&(client.clone(), event.clone()))))
    }
}

#[async_trait]
impl SchemaStore for MemorySchemaStore {
    async fn insert_version(
        &self,
        client: &ClientId,
        event: &EventName,
        version: SchemaVersion,
        schema: &Value,
        _deadline: Deadline,
    ) -> Result<Insert, StoreError> {
        self.check()?;
        let mut pairs = self.pairs.write().unwrap_or_else(|e| e.into_inner());
        let pair = pairs.entry((client.clone(), event.clone())).or_default();
        if let Some(existing) = pair.versions.iter().find(|v| v.version >= version) {
            return Ok(Insert::Taken(existing.clone()));
        }
        pair.versions.push(RegisteredSchema {
            client: client.clone(),
            event: event.clone(),
            version,
            schema: schema.clone(),
            registered_at: now_rfc3339(),
        });
        Ok(Insert::Inserted)
    }

    async fn get(
        &self,
        client: &ClientId,
        event: &EventName,
        version: Option<SchemaVersion>,
        _deadline: Deadline,
    ) -> Result<Option<RegisteredSchema>, StoreError> {
        self.read(client, event, |pair| {
            let versions = &pair?.versions;
            match version {
                None => versions.last(),
                Some(wanted) => versions.iter().find(|v| v.version == wanted),
            }
            .cloned()
        })
    }

    async fn history(
        &self,
        client: &ClientId,
        event: &EventName,
        _deadline: Deadline,
    ) -> Result<Vec<RegisteredSchema>, StoreError> {
        self.read(client, event, |pair| {
            pair.map(|p| p.versions.clone()).unwrap_or_default()
        })
    }

    async fn versions(
        &self,
        client: &ClientId,
        event: &EventName,
        _deadline: Deadline,
    ) -> Result<Vec<VersionInfo>, StoreError> {
        self.read(client, event, |pair| {
            pair.map(|p| {
                p.versions
                    .iter()
                    .map(|v| VersionInfo {
                        version: v.version,
                        registered_at: v.registered_at.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default()
        })
    }

    async fn list(
        &self,
        client: &ClientId,
        _deadline: Deadline,
    ) -> Result<Vec<RegisteredEvent>, StoreError> {
        self.check()?;
        let pairs = self.pairs.read().unwrap_or_else(|e| e.into_inner());
        // The map is ordered by (client, event): this client's pairs come sorted by event.
        Ok(pairs
            .iter()
            .filter(|((owner, _), _)| owner == client)
            .filter_map(|((client, event), pair)| {
                Some(RegisteredEvent {
                    client: client.clone(),
                    event: event.clone(),
                    version: pair.versions.last()?.version,
                })
            })
            .collect())
    }

    async fn compatibility(
        &self,
        client: &ClientId,
        event: &EventName,
        _deadline: Deadline,
    ) -> Result<Option<Mode>, StoreError> {
        self.read(client, event, |pair| pair.and_then(|p| p.compatibility))
    }

    async fn set_compatibility(
        &self,
        client: &ClientId,
        event: &EventName,
        mode: Mode,
        _deadline: Deadline,
    ) -> Result<(), StoreError> {
        self.check()?;
        let mut pairs = self.pairs.write().unwrap_or_else(|e| e.into_inner());
        pairs
            .entry((client.clone(), event.clone()))
            .or_default()
            .compatibility = Some(mode);
        Ok(())
    }
}

/// How rejections and idempotency keys live in memory: per pair, in maps of this store.
#[derive(Default)]
struct Kept {
    rejections: BTreeMap<(ClientId, EventName), BTreeMap<EventId, Rejection>>,
    keys: HashMap<(ClientId, EventName, IdempotencyKey), KeyRecord>,
}

/// An idempotency key's state.
#[derive(Debug, Clone)]
struct KeyRecord {
    fingerprint: Fingerprint,
    event_ids: Vec<EventId>,
    /// `None` while a request holds the key (until `lease_until`) or after it let it go.
    answer: Option<KeptAnswer>,
    lease_until: SystemTime,
    /// When the record may be forgotten.
    expires_at: SystemTime,
}

impl MemorySchemaStore {
    fn kept(&self) -> Result<std::sync::MutexGuard<'_, Kept>, StoreError> {
        self.check()?;
        Ok(self.kept.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

#[async_trait]
impl RejectionStore for MemorySchemaStore {
    async fn keep(&self, rejections: &[Rejection], _deadline: Deadline) -> Result<(), StoreError> {
        let mut kept = self.kept()?;
        for rejection in rejections {
            let pair = kept
                .rejections
                .entry((rejection.client.clone(), rejection.event.clone()))
                .or_default();
            pair.insert(rejection.id, rejection.clone());
            // Bounded like the other stores: the newest ones are kept.
            while pair.len() > MAX_REJECTIONS_PER_PAIR {
                pair.pop_first();
            }
        }
        Ok(())
    }

    async fn list(
        &self,
        client: &ClientId,
        event: &EventName,
        limit: usize,
        before: Option<EventId>,
        _deadline: Deadline,
    ) -> Result<Vec<Rejection>, StoreError> {
        let kept = self.kept()?;
        let Some(pair) = kept.rejections.get(&(client.clone(), event.clone())) else {
            return Ok(Vec::new());
        };
        Ok(pair
            .values()
            .rev()
            .filter(|r| before.is_none_or(|before| r.id < before))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn get(
        &self,
        client: &ClientId,
        event: &EventName,
        id: EventId,
        _deadline: Deadline,
    ) -> Result<Option<Rejection>, StoreError> {
        let kept = self.kept()?;
        Ok(kept
            .rejections
            .get(&(client.clone(), event.clone()))
            .and_then(|pair| pair.get(&id))
            .cloned())
    }

    async fn mark_replayed(
        &self,
        client: &ClientId,
        event: &EventName,
        id: EventId,
        version: SchemaVersion,
        _deadline: Deadline,
    ) -> Result<(), StoreError> {
        let mut kept = self.kept()?;
        if let Some(rejection) = kept
            .rejections
            .get_mut(&(client.clone(), event.clone()))
            .and_then(|pair| pair.get_mut(&id))
        {
            rejection.replayed.get_or_insert(version);
        }
        Ok(())
    }
}

#[async_trait]
impl IdempotencyStore for MemorySchemaStore {
    async fn begin(
        &self,
        client: &ClientId,
        event: &EventName,
        key: &IdempotencyKey,
        fingerprint: Fingerprint,
        event_ids: &[EventId],
        lease_until: SystemTime,
        _deadline: Deadline,
    ) -> Result<Begin, StoreError> {
        let now = SystemTime::now();
        let mut kept = self.kept()?;
        kept.keys.retain(|_, record| record.expires_at > now);
        let slot = (client.clone(), event.clone(), key.clone());
        let fresh = KeyRecord {
            fingerprint,
            event_ids: event_ids.to_vec(),
            answer: None,
            lease_until,
            expires_at: lease_until.max(now) + IDEMPOTENCY_RETENTION,
        };
        let Some(record) = kept.keys.get_mut(&slot) else {
            kept.keys.insert(slot, fresh);
            return Ok(Begin::Started);
        };
        Ok(if record.fingerprint != fingerprint {
            Begin::Reused
        } else if let Some(answer) = &record.answer {
            Begin::Completed(answer.clone())
        } else if record.lease_until > now {
            Begin::InProgress
        } else {
            record.lease_until = lease_until;
            record.expires_at = fresh.expires_at;
            Begin::Resumed {
                event_ids: record.event_ids.clone(),
            }
        })
    }

    async fn complete(
        &self,
        client: &ClientId,
        event: &EventName,
        key: &IdempotencyKey,
        answer: &KeptAnswer,
        _deadline: Deadline,
    ) -> Result<(), StoreError> {
        let mut kept = self.kept()?;
        if let Some(record) = kept
            .keys
            .get_mut(&(client.clone(), event.clone(), key.clone()))
        {
            record.answer = Some(answer.clone());
            record.expires_at = SystemTime::now() + IDEMPOTENCY_RETENTION;
        }
        Ok(())
    }

    async fn release(
        &self,
        client: &ClientId,
        event: &EventName,
        key: &IdempotencyKey,
        _deadline: Deadline,
    ) -> Result<(), StoreError> {
        let mut kept = self.kept()?;
        if let Some(record) = kept
            .keys
            .get_mut(&(client.clone(), event.clone(), key.clone()))
        {
            record.lease_until = SystemTime::UNIX_EPOCH;
        }
        Ok(())
    }
}

/// Events kept per pair: the newest ones, so that `serve` on `memory:` runs for days in
/// bounded memory. Older events are dropped (a subscriber that fell that far behind skips them).
pub const MAX_EVENTS_PER_PAIR: usize = 10_000;

/// One pair's retained events; `first` is the offset of the oldest one kept.
#[derive(Default)]
struct PairLog {
    first: usize,
    events: VecDeque<CloudEvent<Box<RawValue>>>,
}

impl PairLog {
    fn end(&self) -> usize {
        self.first + self.events.len()
    }

    /// The events from offset `next` on (or from the oldest kept), parsed for a reader.
    fn read_from(&self, next: usize) -> Vec<CloudEvent> {
        let skip = next.saturating_sub(self.first);
        self.events
            .iter()
            .skip(skip)
            // Written by `publish` from data serialized by serde_json: always parses.
            .filter_map(|event| event.parsed().ok())
            .collect()
    }
}

#[derive(Default)]
struct Log {
    pairs: Mutex<HashMap<(ClientId, EventName), PairLog>>,
    appended: Notify,
}

/// An in-process event log per pair (bounded by [`MAX_EVENTS_PER_PAIR`]); also its own
/// [`EventSource`].
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

    /// Every retained event of the pair, in order.
    pub fn events(&self, client: &ClientId, event: &EventName) -> Vec<CloudEvent> {
        self.read(&(client.clone(), event.clone()), 0).0
    }

    /// The pair's events from offset `next` on, and the offset after the last one.
    fn read(&self, key: &(ClientId, EventName), next: usize) -> (Vec<CloudEvent>, usize) {
        let pairs = self.log.pairs.lock().unwrap_or_else(|e| e.into_inner());
        match pairs.get(key) {
            Some(log) => (log.read_from(next), log.end()),
            None => (Vec::new(), 0),
        }
    }
}

#[async_trait]
impl EventStream for MemoryEventStream {
    async fn publish(&self, event: &Envelope, _deadline: Deadline) -> Result<(), StreamError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StreamError::Unavailable(cause(SwitchedOff)));
        }
        {
            let mut pairs = self.log.pairs.lock().unwrap_or_else(|e| e.into_inner());
            let log = pairs
                .entry((event.client.clone(), event.event.clone()))
                .or_default();
            if log.events.len() == MAX_EVENTS_PER_PAIR {
                log.events.pop_front();
                log.first += 1;
            }
            log.events.push_back(event.cloud_event.clone());
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
        let key = (client.clone(), event.clone());
        let next = match start {
            StartAt::Beginning => 0,
            StartAt::End => self.read(&key, usize::MAX).1,
        };
        Ok(Box::new(MemorySubscription {
            stream: self.clone(),
            key,
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
        let (new, end) = self.stream.read(&self.key, self.next);
        self.next = end;
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn the_stream_keeps_only_the_newest_events_of_a_pair() {
        let stream = MemoryEventStream::new();
        let (client, event) = (
            ClientId::parse("a").unwrap(),
            EventName::parse("b").unwrap(),
        );
        let deadline = Deadline::after(Duration::from_secs(5));
        let mut subscription = stream
            .subscribe(&client, &event, StartAt::Beginning)
            .await
            .unwrap();
        for i in 0..MAX_EVENTS_PER_PAIR + 5 {
            let envelope = Envelope::new(&client, &event, SchemaVersion::FIRST, &json!(i)).unwrap();
            stream.publish(&envelope, deadline).await.unwrap();
        }

        let kept = stream.events(&client, &event);
        assert_eq!(kept.len(), MAX_EVENTS_PER_PAIR);
        assert_eq!(kept[0].data, json!(5));
        // A subscriber that fell behind resumes at the oldest event kept, without gaps after it.
        let read = subscription.next_batch().await.unwrap();
        assert_eq!(read.len(), MAX_EVENTS_PER_PAIR);
        assert_eq!(read[0].data, json!(5));
    }
}
