//! The Kafka event stream and event source (feature `kafka`), on librdkafka through rdkafka.
//!
//! Each (client, event) pair is a topic `{client}.{event}`, created through the admin API
//! when the pair is registered ([`EventStream::prepare`]). An event is one record in CloudEvents
//! *binary* mode: the value is the event's JSON, the attributes are `ce_*` headers plus
//! `content-type`, and the key is the event id.
//!
//! One idempotent producer (`acks=all`, `enable.idempotence=true`) serves the whole process;
//! librdkafka batches what is enqueued together and retries transient failures itself until
//! `message.timeout.ms`. [`EventStream::publish`] returns only after the delivery report, so a
//! `200` means every in-sync replica has the record.
//!
//! A failed delivery is told apart by what librdkafka knows of the record: its persistence
//! status (`rd_kafka_message_status`), read in the delivery report. Never enqueued (the local
//! queue still full at the deadline), never transmitted (the broker down or unreachable until
//! `message.timeout.ms`), or refused by the broker as not written (`NOT_PERSISTED`) →
//! [`StreamError::Unavailable`] (`503 service_unavailable`). Transmitted without an
//! acknowledgement (`POSSIBLY_PERSISTED`: `message.timeout.ms` expired with the produce request
//! in flight, a connection lost after it was sent) → [`StreamError::Unconfirmed`]
//! (`503 publish_unconfirmed`). So is a record whose report the request's deadline did not
//! wait for: once enqueued, librdkafka keeps it and may still deliver it.
//!
//! Topics get one partition by default, so a pair's events are read in acceptance order, as
//! on every other stream; with more partitions, order holds per partition (the key is the
//! event id).
//!
//! The source behind `listen` assigns itself every partition of the topic, from the beginning
//! or from the current end, and keeps its position in memory: it joins no consumer group and
//! commits nothing.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::bindings::rd_kafka_msg_status_t;
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tokio::sync::oneshot;

use crate::domain::{ClientId, EventName};
use crate::envelope::{CloudEvent, Envelope};
use crate::error::cause;
use crate::ports::{EventSource, EventStream, StartAt, StreamError, Subscription};
use crate::retry::Deadline;

/// How long a send waits before it tries again to enqueue into a full local queue.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(100);
/// How long a subscription waits for the first record of a batch.
const POLL_WAIT: Duration = Duration::from_millis(500);
/// Most records one [`Subscription::next_batch`] returns.
const POLL_LIMIT: usize = 1000;

/// Tuning of the Kafka adapter; [`Default`] is what `EVENT_STREAM=kafka://...` uses.
#[derive(Debug, Clone)]
pub struct KafkaOptions {
    /// How long a record may wait for its acknowledgement (librdkafka `message.timeout.ms`,
    /// retries included) before the publish fails: unavailable if it was never sent,
    /// unconfirmed if it was.
    pub delivery_timeout: Duration,
    /// Deadline of admin and metadata requests (topic creation, partition lookup).
    pub request_timeout: Duration,
    /// Partitions of a newly created topic.
    pub partitions: i32,
    /// Replication factor of a newly created topic; `-1` takes the broker's
    /// `default.replication.factor`.
    pub replication_factor: i32,
}

impl Default for KafkaOptions {
    fn default() -> Self {
        Self {
            // Inside the HTTP layer's request budget (10 s), so that librdkafka reports a
            // failed delivery before the request's deadline cuts the wait short.
            delivery_timeout: Duration::from_secs(8),
            request_timeout: Duration::from_secs(10),
            partitions: 1,
            replication_factor: -1,
        }
    }
}

/// The topic of a pair. Names cannot contain dots, so distinct pairs never share a topic.
pub fn topic_name(client: &ClientId, event: &EventName) -> String {
    format!("{client}.{event}")
}

/// A Kafka client request that did not finish within its deadline.
#[derive(Debug, thiserror::Error)]
#[error("Kafka did not answer within {0:?}")]
struct TimedOut(Duration);

/// The request's deadline came before the delivery report of an enqueued record.
#[derive(Debug, thiserror::Error)]
#[error("no delivery report within the request's deadline; librdkafka still holds the record")]
struct ReportNotAwaited;

/// The delivery report of an enqueued record never came (the producer went away).
#[derive(Debug, thiserror::Error)]
#[error("the delivery report of an enqueued record was lost")]
struct ReportLost;

/// A delivery that failed, with what librdkafka knows of the record.
#[derive(Debug, thiserror::Error)]
#[error("Kafka did not acknowledge the record ({status})")]
struct NotDelivered {
    #[source]
    error: KafkaError,
    status: Persistence,
}

/// Whether a record that failed may be in the topic log (librdkafka's
/// `rd_kafka_msg_status_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Persistence {
    /// "Never transmitted to the broker, or failed with an error indicating it was not
    /// written to the log."
    NotPersisted,
    /// "Transmitted to broker, but no acknowledgement was received" (and, in a failed report,
    /// any other status: not known to be absent).
    PossiblyPersisted,
}

impl std::fmt::Display for Persistence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Persistence::NotPersisted => "not persisted",
            Persistence::PossiblyPersisted => "possibly persisted",
        })
    }
}

/// What the delivery callback hands to the send waiting for it.
type Report = Result<(), (KafkaError, Persistence)>;

/// The producer's context: passes each delivery report, with the record's persistence
/// status, to the send that waits for it. (rdkafka's `FutureProducer` reports only the error,
/// which does not tell a record never sent from one sent and not acknowledged: both fail
/// with `MessageTimedOut` once `message.timeout.ms` passes.)
struct Reporter;

impl ClientContext for Reporter {}

impl ProducerContext for Reporter {
    type DeliveryOpaque = Box<oneshot::Sender<Report>>;

    fn delivery(&self, result: &DeliveryResult<'_>, reply: Self::DeliveryOpaque) {
        let report = match result {
            Ok(_) => Ok(()),
            Err((error, message)) => Err((error.clone(), persistence(message))),
        };
        // A send that stopped waiting (its deadline passed) no longer needs the report.
        let _ = reply.send(report);
    }
}

/// librdkafka's persistence status of a record in its delivery report.
fn persistence(message: &BorrowedMessage<'_>) -> Persistence {
    // SAFETY: `message` is the report's rd_kafka_message_t, valid for the whole callback;
    // rd_kafka_message_status only reads it.
    let status = unsafe { rdkafka::bindings::rd_kafka_message_status(message.ptr()) };
    match status {
        rd_kafka_msg_status_t::RD_KAFKA_MSG_STATUS_NOT_PERSISTED => Persistence::NotPersisted,
        _ => Persistence::PossiblyPersisted,
    }
}

type KafkaProducer = Arc<ThreadedProducer<Reporter>>;

/// Creating the topic failed for a reason other than it already existing.
#[derive(Debug, thiserror::Error)]
#[error("could not create Kafka topic {topic}: {code}")]
struct TopicNotCreated {
    topic: String,
    code: RDKafkaErrorCode,
}

/// A record whose headers or value are not a CloudEvent in binary mode.
#[derive(Debug, thiserror::Error)]
#[error("Kafka record at {topic}/{partition}@{offset} is not a binary-mode CloudEvent: {detail}")]
struct NotACloudEvent {
    topic: String,
    partition: i32,
    offset: i64,
    detail: String,
}

/// The producer's record size limit (librdkafka's default), so a too large event is refused
/// locally instead of by the broker.
const MAX_MESSAGE_BYTES: usize = 1_000_000;

fn unavailable(error: KafkaError) -> StreamError {
    StreamError::Unavailable(cause(error))
}

fn base_config(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("client.id", "event-processor")
        // Back within a second of a broker's return, rather than librdkafka's default of up
        // to ten seconds between reconnection attempts.
        .set("reconnect.backoff.max.ms", "1000");
    config
}

/// The stream named by `EVENT_STREAM=kafka://BROKERS`, with the default options. It serves
/// both sides: publishing, and `listen`.
pub fn open(brokers: &str) -> Result<KafkaStream, KafkaError> {
    KafkaStream::connect(brokers, KafkaOptions::default())
}

/// The producer side, one per process; also the [`EventSource`] of `listen`.
pub struct KafkaStream {
    brokers: String,
    /// The producer and its generation. librdkafka asks for a producer that hit a fatal
    /// error (e.g. fenced after an epoch bump) to be replaced: it never produces again.
    producer: RwLock<(u64, KafkaProducer)>,
    producer_config: ClientConfig,
    admin: AdminClient<DefaultClientContext>,
    options: KafkaOptions,
}

impl std::fmt::Debug for KafkaStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaStream")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl KafkaStream {
    /// Creates the producer and the admin client for `brokers` (`HOST:PORT[,HOST:PORT]`).
    /// Connects lazily: an unreachable broker shows up as `Unavailable` on first use.
    pub fn connect(brokers: &str, options: KafkaOptions) -> Result<Self, KafkaError> {
        let delivery_ms = options.delivery_timeout.as_millis().max(1).to_string();
        let request_ms = options
            .delivery_timeout
            .min(Duration::from_secs(30))
            .as_millis()
            .max(1)
            .to_string();
        let mut producer_config = base_config(brokers);
        producer_config
            // Durable acknowledgement: every in-sync replica has the record.
            .set("acks", "all")
            .set("message.max.bytes", MAX_MESSAGE_BYTES.to_string())
            // Retries never duplicate or reorder records within a partition.
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", &delivery_ms)
            .set("request.timeout.ms", &request_ms)
            // Concurrent sends still share produce requests (whatever queued while one was in
            // flight); a longer linger only delayed each ack (BENCHMARKS.md: 5 ms vs 1 ms).
            .set("linger.ms", "1");
        let producer = create_producer(&producer_config)?;
        let admin = base_config(brokers).create()?;
        Ok(Self {
            brokers: brokers.to_owned(),
            producer: RwLock::new((0, producer)),
            producer_config,
            admin,
            options,
        })
    }

    fn producer(&self) -> (u64, KafkaProducer) {
        self.producer
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces producer `generation` if it can no longer produce: it hit a fatal error, or
    /// the broker fenced its producer id (as some brokers do after the epoch bump that
    /// follows a delivery timeout). Once, however many sends saw it.
    fn replace_if_fatal(&self, generation: u64, producer: &KafkaProducer, error: &KafkaError) {
        let reason = match (producer.client().fatal_error(), error.rdkafka_error_code()) {
            (Some((_, reason)), _) => reason,
            (
                None,
                Some(
                    code @ (RDKafkaErrorCode::ProducerFenced
                    | RDKafkaErrorCode::InvalidProducerEpoch
                    | RDKafkaErrorCode::UnknownProducerId
                    | RDKafkaErrorCode::OutOfOrderSequenceNumber),
                ),
            ) => code.to_string(),
            _ => return,
        };
        let mut current = self.producer.write().unwrap_or_else(|e| e.into_inner());
        if current.0 != generation {
            return;
        }
        match create_producer(&self.producer_config) {
            Ok(fresh) => {
                tracing::warn!(%reason, "Kafka producer can no longer produce; replaced it");
                *current = (generation + 1, fresh);
            }
            Err(error) => tracing::error!(%error, "could not replace the failed Kafka producer"),
        }
    }

    async fn deliver(&self, envelope: &Envelope, deadline: Deadline) -> Result<(), StreamError> {
        let topic = topic_name(&envelope.client, &envelope.event);
        let payload = envelope.data_json().as_bytes();
        let key = envelope.cloud_event.id.as_str();
        let headers = envelope.binary_headers().into_iter().fold(
            OwnedHeaders::new_with_capacity(7),
            |headers, (key, value)| {
                headers.insert(Header {
                    key,
                    value: Some(value),
                })
            },
        );
        let (reply, report) = oneshot::channel();
        let mut record = BaseRecord::with_opaque_to(&topic, Box::new(reply))
            .payload(payload)
            .key(key)
            .headers(headers);
        let (generation, producer) = self.producer();
        // Waiting for room in a full local queue counts against the request's deadline.
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned))
                    if deadline.remaining() > QUEUE_FULL_BACKOFF =>
                {
                    record = returned;
                    tokio::time::sleep(QUEUE_FULL_BACKOFF).await;
                }
                // Not enqueued (queue still full at the deadline, unknown topic, a fatal
                // producer): librdkafka never had the record, so nothing was sent.
                Err((error, _)) => {
                    return Err(self.not_enqueued(generation, &producer, error, payload.len()));
                }
            }
        }
        // Enqueued. librdkafka bounds the delivery itself (`message.timeout.ms`); the
        // request's deadline bounds the wait in case it is the shorter of the two.
        let report = match tokio::time::timeout(deadline.remaining(), report).await {
            Ok(Ok(report)) => report,
            // librdkafka still holds the record and may deliver it after we stopped waiting.
            Err(_) => return Err(StreamError::Unconfirmed(cause(ReportNotAwaited))),
            Ok(Err(_)) => return Err(StreamError::Unconfirmed(cause(ReportLost))),
        };
        match report {
            Ok(()) => Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), _)) => {
                // Refused by the broker's `message.max.bytes`: final.
                Err(StreamError::TooLarge {
                    size: payload.len(),
                    max: MAX_MESSAGE_BYTES,
                })
            }
            Err((error, status)) => {
                tracing::warn!(%error, %status, %topic, id = key, "Kafka did not acknowledge an event");
                self.replace_if_fatal(generation, &producer, &error);
                let failure = cause(NotDelivered { error, status });
                Err(match status {
                    Persistence::NotPersisted => StreamError::Unavailable(failure),
                    Persistence::PossiblyPersisted => StreamError::Unconfirmed(failure),
                })
            }
        }
    }

    /// The failure of a record librdkafka refused to enqueue.
    fn not_enqueued(
        &self,
        generation: u64,
        producer: &KafkaProducer,
        error: KafkaError,
        size: usize,
    ) -> StreamError {
        if error == KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge) {
            // Larger than the producer's `message.max.bytes`: final.
            return StreamError::TooLarge {
                size,
                max: MAX_MESSAGE_BYTES,
            };
        }
        tracing::warn!(%error, "Kafka did not take an event");
        self.replace_if_fatal(generation, producer, &error);
        unavailable(error)
    }
}

/// The process's producer, from its configuration.
fn create_producer(config: &ClientConfig) -> Result<KafkaProducer, KafkaError> {
    Ok(Arc::new(config.create_with_context(Reporter)?))
}

#[async_trait]
impl EventStream for KafkaStream {
    async fn publish(&self, event: &Envelope, deadline: Deadline) -> Result<(), StreamError> {
        self.deliver(event, deadline).await
    }

    /// Enqueues every record before awaiting any delivery report, so librdkafka sends them
    /// in as few produce requests as it can; each result is that record's own report.
    async fn publish_batch(
        &self,
        events: &[Envelope],
        deadline: Deadline,
    ) -> Vec<Result<(), StreamError>> {
        // join_all polls every future once, in order, before waiting: that first poll
        // enqueues each record, so they are all queued together and in input order.
        futures::future::join_all(events.iter().map(|event| self.deliver(event, deadline))).await
    }

    /// Creates the pair's topic; a topic that already exists is success.
    async fn prepare(
        &self,
        client: &ClientId,
        event: &EventName,
        deadline: Deadline,
    ) -> Result<(), StreamError> {
        let topic = topic_name(client, event);
        let new_topic = NewTopic::new(
            &topic,
            self.options.partitions,
            TopicReplication::Fixed(self.options.replication_factor),
        );
        let timeout = self.options.request_timeout.min(deadline.remaining());
        let admin_options = AdminOptions::new()
            .request_timeout(Some(timeout))
            .operation_timeout(Some(timeout));
        let results = tokio::time::timeout(
            deadline.remaining(),
            self.admin.create_topics([&new_topic], &admin_options),
        )
        .await
        .map_err(|_| StreamError::Unavailable(cause(TimedOut(timeout))))?
        .map_err(unavailable)?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    tracing::error!(%topic, %code, "could not create a Kafka topic");
                    return Err(StreamError::Unavailable(cause(TopicNotCreated {
                        topic,
                        code,
                    })));
                }
            }
        }
        Ok(())
    }

    /// Topics are per pair and created at registration; this only checks that the brokers
    /// answer, so a wrong `EVENT_STREAM` fails `setup` rather than the first request.
    async fn setup(&self) -> Result<(), StreamError> {
        let (_, producer) = self.producer();
        let deadline = self.options.request_timeout;
        tokio::task::spawn_blocking(move || producer.client().fetch_metadata(None, deadline))
            .await
            .map_err(|e| StreamError::Unavailable(cause(e)))?
            .map_err(unavailable)?;
        Ok(())
    }
}

/// The read side: a fresh consumer for each subscription.
#[async_trait]
impl EventSource for KafkaStream {
    async fn subscribe(
        &self,
        client: &ClientId,
        event: &EventName,
        start: StartAt,
    ) -> Result<Box<dyn Subscription>, StreamError> {
        // librdkafka's consumer API wants a group id, but the partitions are assigned, not
        // subscribed: the group is never joined, positions live in this subscription and
        // nothing is committed. A fresh id keeps subscriptions independent.
        let group = format!("event-processor-listen-{}", uuid::Uuid::now_v7().simple());
        let mut config = base_config(&self.brokers);
        config
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("allow.auto.create.topics", "false")
            // An offset that no longer exists (retention) restarts at the oldest record.
            .set("auto.offset.reset", "earliest");
        let mut subscription = KafkaSubscription {
            consumer: Arc::new(config.create().map_err(unavailable)?),
            config,
            topic: topic_name(client, event),
            start,
            assigned: false,
            request_timeout: self.options.request_timeout,
        };
        subscription.assign().await?;
        Ok(Box::new(subscription))
    }
}

struct KafkaSubscription {
    consumer: Arc<StreamConsumer>,
    config: ClientConfig,
    topic: String,
    start: StartAt,
    /// False while the topic does not exist yet (the pair is not registered).
    assigned: bool,
    request_timeout: Duration,
}

impl KafkaSubscription {
    /// Assigns every partition of the topic, if it exists. The end offsets are resolved now
    /// (not lazily by the fetcher), so an event accepted after `subscribe` returned is seen.
    async fn assign(&mut self) -> Result<(), StreamError> {
        if !self.assigned {
            // A consumer that once saw the topic missing may keep it marked unknown until
            // its next periodic metadata refresh: start afresh for each attempt.
            self.consumer = Arc::new(self.config.create().map_err(unavailable)?);
        }
        let consumer = self.consumer.clone();
        let topic = self.topic.clone();
        let start = self.start;
        let timeout = self.request_timeout;
        let assignment = tokio::task::spawn_blocking(move || {
            let metadata = consumer.fetch_metadata(Some(&topic), timeout)?;
            let partitions: Vec<i32> = metadata
                .topics()
                .iter()
                .filter(|t| t.name() == topic && t.error().is_none())
                .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                .collect();
            if partitions.is_empty() {
                return Ok(None);
            }
            let mut list = TopicPartitionList::with_capacity(partitions.len());
            for partition in partitions {
                let offset = match start {
                    StartAt::Beginning => Offset::Beginning,
                    StartAt::End => {
                        let (_low, high) = consumer.fetch_watermarks(&topic, partition, timeout)?;
                        Offset::Offset(high)
                    }
                };
                list.add_partition_offset(&topic, partition, offset)?;
            }
            consumer.assign(&list)?;
            Ok::<_, KafkaError>(Some(()))
        })
        .await
        .map_err(|e| StreamError::Unavailable(cause(e)))?
        .map_err(unavailable)?;
        if assignment.is_some() {
            self.assigned = true;
        } else {
            // The topic does not exist yet: every record it will ever hold is new.
            self.start = StartAt::Beginning;
        }
        Ok(())
    }
}

/// Reads a binary-mode record back into the CloudEvent it carries.
fn cloud_event_of(message: &BorrowedMessage<'_>) -> Result<CloudEvent, StreamError> {
    let fail = |detail: String| {
        StreamError::Corrupt(cause(NotACloudEvent {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            detail,
        }))
    };
    let attribute = |name: &str| -> Result<String, StreamError> {
        let headers = message.headers().ok_or_else(|| fail("no headers".into()))?;
        let value = headers
            .iter()
            .find(|h| h.key == name)
            .and_then(|h| h.value)
            .ok_or_else(|| fail(format!("header {name} is missing")))?;
        String::from_utf8(value.to_vec()).map_err(|_| fail(format!("header {name} is not UTF-8")))
    };
    let cloud_event = CloudEvent {
        specversion: attribute("ce_specversion")?,
        id: attribute("ce_id")?,
        source: attribute("ce_source")?,
        event_type: attribute("ce_type")?,
        time: attribute("ce_time")?,
        dataschema: attribute("ce_dataschema")?,
        datacontenttype: attribute("content-type")?,
        data: serde_json::from_slice(message.payload().unwrap_or_default())
            .map_err(|e| fail(format!("value is not JSON: {e}")))?,
    };
    Ok(cloud_event)
}

#[async_trait]
impl Subscription for KafkaSubscription {
    async fn next_batch(&mut self) -> Result<Vec<CloudEvent>, StreamError> {
        if !self.assigned {
            self.assign().await?;
            if !self.assigned {
                tokio::time::sleep(POLL_WAIT).await;
                return Ok(Vec::new());
            }
        }
        let mut events = Vec::new();
        let first = match tokio::time::timeout(POLL_WAIT, self.consumer.recv()).await {
            Err(_) => return Ok(events),
            Ok(first) => first,
        };
        let mut next = Some(first);
        while let Some(received) = next {
            let message = received.map_err(unavailable)?;
            events.push(cloud_event_of(&message)?);
            if events.len() >= POLL_LIMIT {
                break;
            }
            // Whatever is already fetched, without waiting for more.
            next = self.consumer.recv().now_or_never();
        }
        Ok(events)
    }
}
