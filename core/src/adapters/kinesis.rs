//! Kinesis event stream (feature `aws`): the production [`EventStream`] and its [`EventSource`].
//!
//! One stream carries every pair. Each record's data is the CloudEvents structured JSON of
//! API.md and its partition key the event id, so load spreads over every shard. An event is
//! acknowledged only with a sequence number in hand. Throttling and server errors are retried
//! here, with full-jitter exponential backoff inside one bounded deadline (the SDK's own retries
//! are off, so the deadline is the whole story); after it, `StreamError::Unavailable` → 503.
//! A retry after a lost response can store a record twice: consumers deduplicate by `id`.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::client::Waiters;
use aws_sdk_kinesis::config::http::HttpResponse;
use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::operation::create_stream::CreateStreamError;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{
    PutRecordsRequestEntry, ShardIteratorType, StreamMode, StreamModeDetails,
};
use rand::Rng;
use tokio::time::Instant;

use crate::domain::{ClientId, EventName};
use crate::envelope::{CloudEvent, Envelope};
use crate::ports::{Cause, EventSource, EventStream, StartAt, StreamError, Subscription, cause};

/// Kinesis accepts at most this many records per PutRecords call ...
pub const MAX_BATCH_RECORDS: usize = 500;
/// Kinesis' limit for one record: data plus partition key.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// ... and at most this many bytes (data plus partition keys) per call.
pub const MAX_BATCH_BYTES: usize = 5 * 1024 * 1024;

/// Error codes that mean "try again": throttling (of the shard or of KMS) and server faults.
const TRANSIENT_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "KMSThrottlingException",
    "ThrottlingException",
    "InternalFailure",
    "InternalFailureException",
    "ServiceUnavailable",
];

/// How long `setup` waits for a new stream to become ACTIVE.
const SETUP_TIMEOUT: Duration = Duration::from_secs(300);
/// A subscription's pause when no shard had anything new.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// GetRecords calls per shard in one `next_batch` (Kinesis allows 5 per second per shard).
const READS_PER_SHARD: usize = 4;

/// The bounded retry of publishing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// From the first attempt to giving up, attempts and sleeps included.
    pub deadline: Duration,
    /// The cap of the first backoff; each later one doubles, up to `max_backoff`.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// Well inside API Gateway's 30 s integration timeout, with room for the schema lookup.
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(8),
            first_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// The sleep before retry number `retry` (1-based): uniform in `0..=cap` ("full jitter"),
    /// so that many throttled Lambdas do not retry in lockstep. `None` once the deadline is
    /// too close for another attempt.
    fn backoff(&self, retry: u32, deadline: Instant) -> Option<Duration> {
        let cap = self
            .first_backoff
            .saturating_mul(2u32.saturating_pow(retry.saturating_sub(1)))
            .min(self.max_backoff);
        let sleep = rand::rng().random_range(Duration::ZERO..=cap);
        let remaining = deadline.checked_duration_since(Instant::now())?;
        (sleep < remaining).then_some(sleep)
    }
}

/// Publishing gave up: the deadline passed with the last failure still transient.
#[derive(Debug, thiserror::Error)]
#[error("Kinesis did not acknowledge within {deadline:?} ({attempts} attempts)")]
pub struct NotAcknowledged {
    pub deadline: Duration,
    pub attempts: u32,
    #[source]
    pub last: Cause,
}

/// Kinesis answered a call without the sequence number that acknowledges a record.
#[derive(Debug, thiserror::Error)]
#[error("Kinesis answered without a sequence number")]
pub struct NoSequenceNumber;

/// An attempt in flight is never cut off at the publishing deadline: Kinesis may already have
/// stored its record, and abandoning it would answer 503 for an event that is in the stream.
/// The deadline bounds when attempts *start*; an attempt is bounded by the SDK's attempt
/// timeout, and by this cap as a last resort.
const IN_FLIGHT_LIMIT: Duration = Duration::from_secs(30);

/// One attempt did not finish within [`IN_FLIGHT_LIMIT`].
#[derive(Debug, thiserror::Error)]
#[error("the attempt did not finish within the in-flight limit")]
pub struct AttemptCutOff;

/// PutRecords refused one record (its per-record `ErrorCode`).
#[derive(Debug, thiserror::Error)]
#[error("Kinesis refused the record: {code}: {message}")]
pub struct RecordRefused {
    pub code: String,
    pub message: String,
}

/// PutRecords answered with a different number of results than records sent.
#[derive(Debug, thiserror::Error)]
#[error("PutRecords answered {got} results for {sent} records")]
pub struct MismatchedResults {
    pub sent: usize,
    pub got: usize,
}

/// Whether a failed call may succeed if tried again.
fn is_transient<E, R>(error: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
{
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(_) => error
            .as_service_error()
            .and_then(ProvideErrorMetadata::code)
            .is_some_and(|code| TRANSIENT_CODES.contains(&code)),
        _ => false,
    }
}

/// Like [`is_transient`], also treating any 5xx answer as transient.
fn is_transient_response<E>(error: &SdkError<E, HttpResponse>) -> bool
where
    E: ProvideErrorMetadata,
{
    is_transient(error)
        || error
            .raw_response()
            .is_some_and(|response| response.status().is_server_error())
}

fn unavailable(error: impl std::error::Error + Send + Sync + 'static) -> StreamError {
    StreamError::Unavailable(cause(error))
}

/// Events of every pair in one Kinesis stream.
#[derive(Clone, Debug)]
pub struct KinesisEventStream {
    client: Client,
    stream: String,
    retry: RetryPolicy,
}

impl KinesisEventStream {
    /// A stream named `stream`, with a client built from `config` whose own retries are off
    /// (this adapter's bounded retry replaces them).
    pub fn from_config(config: &SdkConfig, stream: impl Into<String>) -> Self {
        Self::from_client_config(aws_sdk_kinesis::config::Builder::from(config), stream)
    }

    /// As [`KinesisEventStream::from_config`], from a Kinesis client configuration (tests
    /// point it at a fault-injecting endpoint); its retries are turned off here.
    pub fn from_client_config(
        client_config: aws_sdk_kinesis::config::Builder,
        stream: impl Into<String>,
    ) -> Self {
        let client_config = client_config.retry_config(RetryConfig::disabled()).build();
        Self {
            client: Client::from_conf(client_config),
            stream: stream.into(),
            retry: RetryPolicy::default(),
        }
    }

    /// Replaces the default retry policy (tests use short deadlines).
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn stream_name(&self) -> &str {
        &self.stream
    }

    /// Every shard of the stream, open or closed, following ListShards pagination.
    async fn shard_ids(&self) -> Result<Vec<String>, StreamError> {
        let mut ids = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            // With a NextToken, ListShards must not be given the stream name.
            let request = match next_token.take() {
                Some(token) => self.client.list_shards().next_token(token),
                None => self.client.list_shards().stream_name(&self.stream),
            };
            let page = request.send().await.map_err(unavailable)?;
            ids.extend(page.shards().iter().map(|s| s.shard_id().to_owned()));
            match page.next_token() {
                Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
                _ => return Ok(ids),
            }
        }
    }

    async fn shard_iterator(
        &self,
        shard: &str,
        position: &Position,
    ) -> Result<Option<String>, StreamError> {
        let request = self
            .client
            .get_shard_iterator()
            .stream_name(&self.stream)
            .shard_id(shard);
        let request = match position {
            Position::Start(StartAt::Beginning) => {
                request.shard_iterator_type(ShardIteratorType::TrimHorizon)
            }
            Position::Start(StartAt::End) => request.shard_iterator_type(ShardIteratorType::Latest),
            Position::After(sequence) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(sequence),
        };
        let output = request.send().await.map_err(unavailable)?;
        Ok(output.shard_iterator().map(str::to_owned))
    }

    /// Sends `pending` (indices into `entries`) with PutRecords until each is acknowledged,
    /// refused for good, or the deadline passes; only the entries that failed are resent.
    async fn put_chunk(
        &self,
        mut pending: Vec<usize>,
        entries: &[PutRecordsRequestEntry],
        results: &mut [Option<Result<(), StreamError>>],
    ) {
        let deadline = Instant::now() + self.retry.deadline;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let call = self
                .client
                .put_records()
                .stream_name(&self.stream)
                .set_records(Some(pending.iter().map(|&i| entries[i].clone()).collect()))
                .send();
            let last: Cause = match tokio::time::timeout(IN_FLIGHT_LIMIT, call).await {
                Ok(Ok(output)) if output.records().len() == pending.len() => {
                    let mut failed = Vec::new();
                    let mut last = None;
                    for (&index, record) in pending.iter().zip(output.records()) {
                        match (record.error_code(), record.sequence_number()) {
                            (None, Some(sequence)) if !sequence.is_empty() => {
                                results[index] = Some(Ok(()));
                            }
                            (None, _) => results[index] = Some(Err(unavailable(NoSequenceNumber))),
                            (Some(code), _) => {
                                let refused = cause(RecordRefused {
                                    code: code.to_owned(),
                                    message: record.error_message().unwrap_or_default().to_owned(),
                                });
                                if TRANSIENT_CODES.contains(&code) {
                                    failed.push(index);
                                    last = Some(refused);
                                } else {
                                    results[index] = Some(Err(StreamError::Unavailable(refused)));
                                }
                            }
                        }
                    }
                    pending = failed;
                    match last {
                        Some(last) => last,
                        None => return,
                    }
                }
                Ok(Ok(output)) => cause(MismatchedResults {
                    sent: pending.len(),
                    got: output.records().len(),
                }),
                Ok(Err(error)) if is_transient_response(&error) => cause(error),
                Ok(Err(error)) => {
                    let error = StreamError::Unavailable(cause(error));
                    for index in pending {
                        results[index] = Some(Err(error.clone()));
                    }
                    return;
                }
                Err(_elapsed) => cause(AttemptCutOff),
            };
            tracing::warn!(error = %last, attempts, records = pending.len(), "PutRecords: retrying the failed records");
            match self.retry.backoff(attempts, deadline) {
                Some(sleep) => tokio::time::sleep(sleep).await,
                None => {
                    let error = StreamError::Unavailable(cause(NotAcknowledged {
                        deadline: self.retry.deadline,
                        attempts,
                        last,
                    }));
                    for index in pending {
                        results[index] = Some(Err(error.clone()));
                    }
                    return;
                }
            }
        }
    }
}

/// A record Kinesis would refuse whatever the retries: answered as too large, not unavailable.
fn check_record_size(size: usize) -> Result<(), StreamError> {
    if size > MAX_RECORD_BYTES {
        return Err(StreamError::TooLarge {
            size,
            max: MAX_RECORD_BYTES,
        });
    }
    Ok(())
}

#[async_trait]
impl EventStream for KinesisEventStream {
    /// PutRecord; `Ok` only with a sequence number. Transient failures are retried until the
    /// policy's deadline, then `Unavailable` wrapping [`NotAcknowledged`] and the last failure.
    async fn publish(&self, event: &Envelope) -> Result<(), StreamError> {
        let data = Blob::new(event.to_structured_json());
        let partition_key = event.id.to_string();
        check_record_size(data.as_ref().len() + partition_key.len())?;
        let deadline = Instant::now() + self.retry.deadline;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let call = self
                .client
                .put_record()
                .stream_name(&self.stream)
                .partition_key(&partition_key)
                .data(data.clone())
                .send();
            let last = match tokio::time::timeout(IN_FLIGHT_LIMIT, call).await {
                Ok(Ok(output)) if !output.sequence_number().is_empty() => return Ok(()),
                Ok(Ok(_)) => return Err(unavailable(NoSequenceNumber)),
                Ok(Err(error)) if is_transient_response(&error) => cause(error),
                Ok(Err(error)) => return Err(unavailable(error)),
                Err(_elapsed) => cause(AttemptCutOff),
            };
            tracing::warn!(error = %last, attempts, "PutRecord: retrying");
            match self.retry.backoff(attempts, deadline) {
                Some(sleep) => tokio::time::sleep(sleep).await,
                None => {
                    return Err(unavailable(NotAcknowledged {
                        deadline: self.retry.deadline,
                        attempts,
                        last,
                    }));
                }
            }
        }
    }

    /// PutRecords in chunks of at most 500 records and 5 MiB; within a chunk, only the
    /// records whose per-record `ErrorCode` is transient are resent, never accepted ones.
    async fn publish_batch(&self, events: &[Envelope]) -> Vec<Result<(), StreamError>> {
        let entries: Result<Vec<PutRecordsRequestEntry>, _> = events
            .iter()
            .map(|event| {
                PutRecordsRequestEntry::builder()
                    .data(Blob::new(event.to_structured_json()))
                    .partition_key(event.id.to_string())
                    .build()
            })
            .collect();
        let entries = match entries {
            Ok(entries) => entries,
            Err(error) => return vec![Err(unavailable(error)); events.len()],
        };
        let mut results: Vec<Option<Result<(), StreamError>>> = vec![None; events.len()];
        let mut chunk = Vec::new();
        let mut chunk_bytes = 0;
        for (index, entry) in entries.iter().enumerate() {
            let bytes = entry.data().as_ref().len() + entry.partition_key().len();
            if let Err(too_large) = check_record_size(bytes) {
                results[index] = Some(Err(too_large));
                continue;
            }
            if !chunk.is_empty()
                && (chunk.len() == MAX_BATCH_RECORDS || chunk_bytes + bytes > MAX_BATCH_BYTES)
            {
                self.put_chunk(std::mem::take(&mut chunk), &entries, &mut results)
                    .await;
                chunk_bytes = 0;
            }
            chunk.push(index);
            chunk_bytes += bytes;
        }
        if !chunk.is_empty() {
            self.put_chunk(chunk, &entries, &mut results).await;
        }
        // put_chunk settles every index it is given.
        results
            .into_iter()
            .map(|result| result.unwrap_or_else(|| Err(unavailable(NoSequenceNumber))))
            .collect()
    }

    /// DescribeStreamSummary: read-only metadata of this one stream (no records), allowed by
    /// `kinesis:DescribeStreamSummary` on the stream.
    async fn warm_up(&self) -> Result<(), StreamError> {
        self.client
            .describe_stream_summary()
            .stream_name(&self.stream)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Creates the stream (on-demand) unless it exists, and waits until it is ACTIVE.
    async fn setup(&self) -> Result<(), StreamError> {
        let mode = StreamModeDetails::builder()
            .stream_mode(StreamMode::OnDemand)
            .build()
            .map_err(unavailable)?;
        let created = self
            .client
            .create_stream()
            .stream_name(&self.stream)
            .stream_mode_details(mode)
            .send()
            .await;
        match created {
            Ok(_) => tracing::info!(stream = %self.stream, "created the Kinesis stream"),
            Err(error)
                if matches!(
                    error.as_service_error(),
                    Some(CreateStreamError::ResourceInUseException(_))
                ) => {}
            Err(error) => return Err(unavailable(error)),
        }
        self.client
            .wait_until_stream_exists()
            .stream_name(&self.stream)
            .wait(SETUP_TIMEOUT)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

/// Where a shard reader (re)starts.
#[derive(Debug, Clone)]
enum Position {
    Start(StartAt),
    After(String),
}

#[derive(Debug)]
struct ShardReader {
    id: String,
    /// `None` once the shard is closed and read to its end.
    iterator: Option<String>,
    /// Where to resume if the iterator expires (iterators live 5 minutes).
    resume: Position,
}

#[async_trait]
impl EventSource for KinesisEventStream {
    /// Reads every shard (TRIM_HORIZON for `Beginning`, LATEST for `End`) and keeps the pair's
    /// records, recognised by their CloudEvent `source` and `type`.
    async fn subscribe(
        &self,
        client: &ClientId,
        event: &EventName,
        start: StartAt,
    ) -> Result<Box<dyn Subscription>, StreamError> {
        let mut subscription = KinesisSubscription {
            stream: self.clone(),
            source: format!("/{client}"),
            event_type: event.to_string(),
            shards: Vec::new(),
            known: HashSet::new(),
        };
        subscription.add_new_shards(start).await?;
        Ok(Box::new(subscription))
    }
}

struct KinesisSubscription {
    stream: KinesisEventStream,
    source: String,
    event_type: String,
    shards: Vec<ShardReader>,
    known: HashSet<String>,
}

impl KinesisSubscription {
    /// Starts a reader on every shard not seen yet: at subscription, and when a shard closes
    /// (resharding: its children start where it ended, so they are read from their start).
    async fn add_new_shards(&mut self, start: StartAt) -> Result<(), StreamError> {
        for id in self.stream.shard_ids().await? {
            if self.known.contains(&id) {
                continue;
            }
            let resume = Position::Start(start);
            let iterator = self.stream.shard_iterator(&id, &resume).await?;
            self.known.insert(id.clone());
            self.shards.push(ShardReader {
                id,
                iterator,
                resume,
            });
        }
        Ok(())
    }

    /// One pass over every shard, each read until it is caught up (bounded).
    async fn read_all_shards(&mut self) -> Result<Vec<CloudEvent>, StreamError> {
        let mut events = Vec::new();
        let mut shard_closed = false;
        for index in 0..self.shards.len() {
            for _ in 0..READS_PER_SHARD {
                let Some(iterator) = self.shards[index].iterator.clone() else {
                    break;
                };
                let read = self
                    .stream
                    .client
                    .get_records()
                    .shard_iterator(iterator)
                    .send()
                    .await;
                let output = match read {
                    Ok(output) => output,
                    Err(error)
                        if error
                            .as_service_error()
                            .and_then(ProvideErrorMetadata::code)
                            == Some("ExpiredIteratorException") =>
                    {
                        let shard = &self.shards[index];
                        let iterator = self.stream.shard_iterator(&shard.id, &shard.resume).await?;
                        self.shards[index].iterator = iterator;
                        continue;
                    }
                    // Over the shard's read limit: the next batch will catch up.
                    Err(error) if is_transient(&error) => break,
                    Err(error) => return Err(unavailable(error)),
                };
                let shard = &mut self.shards[index];
                for record in output.records() {
                    shard.resume = Position::After(record.sequence_number().to_owned());
                    match serde_json::from_slice::<CloudEvent>(record.data().as_ref()) {
                        Ok(event) => {
                            if event.source == self.source && event.event_type == self.event_type {
                                events.push(event);
                            }
                        }
                        // The stream is shared: a record some other producer wrote is not ours
                        // to fail on.
                        Err(error) => tracing::warn!(
                            shard = %shard.id,
                            sequence = record.sequence_number(),
                            %error,
                            "skipping a record that is not a CloudEvent"
                        ),
                    }
                }
                shard.iterator = output.next_shard_iterator().map(str::to_owned);
                shard_closed |= shard.iterator.is_none();
                let caught_up = match output.millis_behind_latest() {
                    Some(behind) => behind == 0,
                    None => output.records().is_empty(),
                };
                if caught_up {
                    break;
                }
            }
        }
        if shard_closed {
            self.add_new_shards(StartAt::Beginning).await?;
        }
        Ok(events)
    }
}

#[async_trait]
impl Subscription for KinesisSubscription {
    /// Kinesis orders records only within a shard and the partition key (the event id)
    /// spreads a pair over every shard, so each batch is put back in acceptance order by id
    /// (UUID v7). Waits [`POLL_INTERVAL`] and reads once more when nothing was new.
    async fn next_batch(&mut self) -> Result<Vec<CloudEvent>, StreamError> {
        let mut events = self.read_all_shards().await?;
        if events.is_empty() {
            tokio::time::sleep(POLL_INTERVAL).await;
            events = self.read_all_shards().await?;
        }
        events.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(events)
    }
}
