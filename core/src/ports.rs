//! Ports: what the core needs from the outside world, as small async traits.
//!
//! Adapters (SQLite, memory, DynamoDB, Kinesis, ...) implement them; the processor holds them
//! as `Arc<dyn SchemaStore>` / `Arc<dyn EventStream>` and never sees an SDK, SQL or HTTP type.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;

use crate::compat::Mode;
use crate::domain::{ClientId, EventId, EventName, Fingerprint, IdempotencyKey, SchemaVersion};
use crate::envelope::{CloudEvent, Envelope};
pub use crate::error::{Cause, cause};
use crate::retry::Deadline;
use crate::schema::ValidationIssue;

/// A schema-store failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or did not answer within its bounded retries.
    /// Nothing was changed. Maps to 503.
    #[error("schema store unavailable")]
    Unavailable(#[source] Cause),
    /// The store answered with data this code cannot read (e.g. a hand-edited row).
    #[error("schema store returned unreadable data")]
    Corrupt(#[source] Cause),
}

/// An event-stream failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StreamError {
    /// The stream did not acknowledge the event(s) within the bounded deadline.
    /// Nothing that this call reports as failed was acknowledged. Maps to 503.
    #[error("event stream unavailable")]
    Unavailable(#[source] Cause),
    /// An attempt may have reached the stream, but its answer never came back (a timed-out
    /// attempt after the request was sent, a connection lost after it was written, a producer's
    /// delivery timeout): the event may be stored. Maps to 503 `publish_unconfirmed`; a retry
    /// under the same event id lets consumers drop the duplicate.
    #[error("event stream did not confirm the publish; the outcome is unknown")]
    Unconfirmed(#[source] Cause),
    /// The event, once enveloped, is larger than the stream accepts for one record (Kinesis:
    /// 1 MiB with its partition key; Kafka: the producer's `message.max.bytes`). Retrying
    /// cannot help, so it maps to 413, not 503.
    #[error("the enveloped event is {size} bytes; the event stream accepts at most {max}")]
    TooLarge { size: usize, max: usize },
    /// A record read back from the stream is not a CloudEvent this code can read.
    #[error("event stream returned an unreadable record")]
    Corrupt(#[source] Cause),
    /// The event could not be encoded as the stream's record (a bug, not a client error).
    #[error("the event could not be encoded for the stream")]
    Encode(#[source] Cause),
}

/// One registered version of a pair's schema.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisteredSchema {
    pub client: ClientId,
    pub event: EventName,
    pub version: SchemaVersion,
    pub schema: Value,
    /// When the version was registered: RFC 3339, UTC.
    pub registered_at: String,
}

/// One line of `versions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionInfo {
    pub version: SchemaVersion,
    /// RFC 3339, UTC.
    pub registered_at: String,
}

/// One line of `list_events`: a pair and its latest version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegisteredEvent {
    pub client: ClientId,
    pub event: EventName,
    pub version: SchemaVersion,
}

/// What [`SchemaStore::insert_version`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Insert {
    /// This call registered the version.
    Inserted,
    /// The version was already registered — by a concurrent registration that won it, or by
    /// this one's own earlier attempt whose answer was lost. Nothing was written.
    Taken(RegisteredSchema),
}

/// Where schemas live: every version of every pair, and each pair's compatibility mode.
///
/// Every call on a request's path takes the request's [`Deadline`]: transient failures are
/// retried until it, and an attempt in flight is cut off at it (see `retry`). Reads are
/// strongly consistent: a registration that returned before the call is visible to it.
#[async_trait]
pub trait SchemaStore: Send + Sync {
    /// Registers `schema` as `version` of the pair, which the caller computed as the latest
    /// version it read plus one (1 for a new pair). Atomic: of any number of concurrent calls
    /// for the same version of a pair, across processes, exactly one returns `Inserted`; the
    /// others return `Taken` with the winner's schema. `Err` means nothing was written, except
    /// after an attempt cut off in flight: a retry then finds its own version as `Taken`.
    async fn insert_version(
        &self,
        client: &ClientId,
        event: &EventName,
        version: SchemaVersion,
        schema: &Value,
        deadline: Deadline,
    ) -> Result<Insert, StoreError>;

    /// A version of the pair (`None`: the latest), or `None` if there is no such version.
    async fn get(
        &self,
        client: &ClientId,
        event: &EventName,
        version: Option<SchemaVersion>,
        deadline: Deadline,
    ) -> Result<Option<RegisteredSchema>, StoreError>;

    /// Every version of the pair with its schema, ascending; empty if it is not registered.
    async fn history(
        &self,
        client: &ClientId,
        event: &EventName,
        deadline: Deadline,
    ) -> Result<Vec<RegisteredSchema>, StoreError>;

    /// Every version of the pair without the schemas, ascending; empty if it is not registered.
    async fn versions(
        &self,
        client: &ClientId,
        event: &EventName,
        deadline: Deadline,
    ) -> Result<Vec<VersionInfo>, StoreError>;

    /// Every pair registered by `client` (and only by it) with its latest version, sorted by
    /// event name.
    async fn list(
        &self,
        client: &ClientId,
        deadline: Deadline,
    ) -> Result<Vec<RegisteredEvent>, StoreError>;

    /// The pair's own compatibility mode, if one was set.
    async fn compatibility(
        &self,
        client: &ClientId,
        event: &EventName,
        deadline: Deadline,
    ) -> Result<Option<Mode>, StoreError>;

    /// Sets the pair's compatibility mode (the caller checked that the pair is registered).
    async fn set_compatibility(
        &self,
        client: &ClientId,
        event: &EventName,
        mode: Mode,
        deadline: Deadline,
    ) -> Result<(), StoreError>;

    /// Opens, ahead of the first request, the connection that request would otherwise open
    /// (TCP and TLS to a remote service), so that a Lambda pays for it during init. Nothing
    /// by default. A failure is only logged by the caller: requests report the backend's state.
    async fn warm_up(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Creates or migrates, idempotently, what this store needs (`event-processor setup`).
    async fn setup(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// An event refused for its content (API.md, "Rejected events"), kept apart from the stream
/// so that its producer can find it and replay it once the schema is fixed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejection {
    /// A UUID v7: rejections sort by the time they were received, and a replay publishes the
    /// event under this id.
    pub id: EventId,
    pub client: ClientId,
    pub event: EventName,
    /// The version the event was checked against, if a schema was reached.
    pub version: Option<SchemaVersion>,
    /// RFC 3339, UTC.
    pub received_at: String,
    pub request_id: Option<String>,
    /// Why: `validation_failed`, `payload_too_large` or `invalid_json`.
    pub error: String,
    pub errors: Vec<ValidationIssue>,
    /// The event as received, as text, at most [`MAX_REJECTED_DATA`] bytes.
    pub data: String,
    /// Whether `data` was cut at [`MAX_REJECTED_DATA`] (such a rejection cannot be replayed).
    pub truncated: bool,
    /// The version it was published under once replayed; a replayed rejection publishes
    /// nothing more.
    #[serde(skip)]
    pub replayed: Option<SchemaVersion>,
}

/// How long a rejection is kept when `REJECTIONS_TTL` does not say (API.md: at least 7 days).
pub const DEFAULT_REJECTIONS_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Most bytes of an event a rejection keeps.
pub const MAX_REJECTED_DATA: usize = 64 * 1024;

/// Most rejections kept per pair: the newest. With the time each is kept (`REJECTIONS_TTL`)
/// and the per-pair rate at which a process keeps them, this bounds what a flood of invalid
/// events can store (the stores that can count cheaply enforce it; see README, "Rejected events").
pub const MAX_REJECTIONS_PER_PAIR: usize = 10_000;

/// Where rejected events are kept, in the schema store's backend, each at least as long as the
/// store's retention (`REJECTIONS_TTL`) and purged after it.
#[async_trait]
pub trait RejectionStore: Send + Sync {
    /// Keeps the rejections of one request together: one transaction (SQLite, PostgreSQL), one
    /// batch write retried until every item is in (DynamoDB). `Err` means none may have been
    /// kept; the caller only logs and counts it (keeping a rejection never changes an answer).
    async fn keep(&self, rejections: &[Rejection], deadline: Deadline) -> Result<(), StoreError>;

    /// The pair's rejections, newest first: at most `limit`, only those older than `before`
    /// (an id from an earlier page) if given. Strongly consistent.
    async fn list(
        &self,
        client: &ClientId,
        event: &EventName,
        limit: usize,
        before: Option<EventId>,
        deadline: Deadline,
    ) -> Result<Vec<Rejection>, StoreError>;

    /// One rejection of the pair, or `None`.
    async fn get(
        &self,
        client: &ClientId,
        event: &EventName,
        id: EventId,
        deadline: Deadline,
    ) -> Result<Option<Rejection>, StoreError>;

    /// Records that the rejection was published under `version` (idempotent).
    async fn mark_replayed(
        &self,
        client: &ClientId,
        event: &EventName,
        id: EventId,
        version: SchemaVersion,
        deadline: Deadline,
    ) -> Result<(), StoreError>;
}

/// An answer kept for an idempotency key: replayed byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptAnswer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// What [`IdempotencyStore::begin`] found for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// No request with this key yet: this one runs, holding the key until its lease ends, and
    /// publishes under the event ids it gave.
    Started,
    /// An earlier request with this key and fingerprint did not finish (it answered 503, or its
    /// instance stopped and its lease ran out): this one runs again under that request's event
    /// ids, so an event that reached the stream carries the same id twice.
    Resumed { event_ids: Vec<EventId> },
    /// A request with this key is running now.
    InProgress,
    /// A request with this key and fingerprint finished: its answer.
    Completed(KeptAnswer),
    /// The key was used for another request (another fingerprint).
    Reused,
}

/// Idempotency keys of `send_event` and `send_events`, scoped to a (client, event) pair, kept
/// [`IDEMPOTENCY_RETENTION`] after their request finished.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Atomically looks the key up and, if no other request holds it, takes it until
    /// `lease_until` (the request's deadline) with `event_ids` (those this request will
    /// publish under). Of any number of concurrent calls for one key, across processes, at
    /// most one gets `Started` or `Resumed`.
    #[allow(clippy::too_many_arguments)]
    async fn begin(
        &self,
        client: &ClientId,
        event: &EventName,
        key: &IdempotencyKey,
        fingerprint: Fingerprint,
        event_ids: &[EventId],
        lease_until: SystemTime,
        deadline: Deadline,
    ) -> Result<Begin, StoreError>;

    /// Keeps the request's final answer (200, 207, 413, 422) for [`IDEMPOTENCY_RETENTION`].
    async fn complete(
        &self,
        client: &ClientId,
        event: &EventName,
        key: &IdempotencyKey,
        answer: &KeptAnswer,
        deadline: Deadline,
    ) -> Result<(), StoreError>;

    /// Lets the key go without an answer (the request answered 503): the next request with it
    /// resumes at once, under the same event ids.
    async fn release(
        &self,
        client: &ClientId,
        event: &EventName,
        key: &IdempotencyKey,
        deadline: Deadline,
    ) -> Result<(), StoreError>;
}

/// How long an idempotency key's answer is kept (API.md: 24 hours).
pub const IDEMPOTENCY_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// Where accepted events go.
#[async_trait]
pub trait EventStream: Send + Sync {
    /// Publishes one event and returns only once the stream has durably acknowledged it
    /// (SQLite commit, Kinesis sequence number, Kafka delivery report with acks=all).
    /// Transient failures are retried until `deadline`; `Err` means the event is not
    /// acknowledged and the client must not be told it was.
    async fn publish(&self, event: &Envelope, deadline: Deadline) -> Result<(), StreamError>;

    /// Publishes several events; the result for each, in input order, with the same
    /// guarantee as [`EventStream::publish`] and one deadline for all of them. Adapters
    /// override this to publish together.
    async fn publish_batch(
        &self,
        events: &[Envelope],
        deadline: Deadline,
    ) -> Vec<Result<(), StreamError>> {
        let mut results = Vec::with_capacity(events.len());
        for event in events {
            results.push(self.publish(event, deadline).await);
        }
        results
    }

    /// Prepares per-pair resources (e.g. a Kafka topic) when a pair is registered.
    /// Idempotent; called before the registration is stored.
    async fn prepare(
        &self,
        _client: &ClientId,
        _event: &EventName,
        _deadline: Deadline,
    ) -> Result<(), StreamError> {
        Ok(())
    }

    /// Opens, ahead of the first request, the connection that request would otherwise open
    /// (TCP and TLS to a remote service), so that a Lambda pays for it during init. Nothing
    /// by default. A failure is only logged by the caller: requests report the backend's state.
    async fn warm_up(&self) -> Result<(), StreamError> {
        Ok(())
    }

    /// Creates, idempotently, what this stream needs (`event-processor setup`).
    async fn setup(&self) -> Result<(), StreamError> {
        Ok(())
    }
}

/// Where `listen` starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// Every event still retained by the stream.
    Beginning,
    /// Only events accepted after the subscription starts.
    End,
}

/// The read side of a stream, for `listen` and for tests that read back what was published.
#[async_trait]
pub trait EventSource: Send + Sync {
    /// Subscribes to one pair's events, in acceptance order.
    async fn subscribe(
        &self,
        client: &ClientId,
        event: &EventName,
        start: StartAt,
    ) -> Result<Box<dyn Subscription>, StreamError>;
}

/// An open subscription.
#[async_trait]
pub trait Subscription: Send {
    /// Waits a short, adapter-chosen time for new events and returns them in order; an empty
    /// batch means none arrived yet. Never returns an event twice.
    async fn next_batch(&mut self) -> Result<Vec<CloudEvent>, StreamError>;
}
