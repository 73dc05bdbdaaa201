//! Publishing to Kinesis: PutRecord for one event, PutRecords for a batch, both retried by
//! the one retry policy within the request's deadline.
//!
//! Each record remembers whether any of its attempts may have stored it (`may_have_stored`,
//! or an attempt cut off in flight). Its final failure is `StreamError::Unconfirmed` if one
//! did, even when the last attempt was a clean refusal, and `StreamError::Unavailable` only
//! when none can have.

use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use tokio::time::Instant;

use super::{KinesisEventStream, may_have_stored, unavailable};
use crate::adapters::aws;
use crate::envelope::Envelope;
use crate::error::{Cause, ErrorChain, cause};
use crate::ports::StreamError;
use crate::retry::{Deadline, LastAttempt, Retry, RetryError};

/// Kinesis accepts at most this many records per PutRecords call ...
pub const MAX_BATCH_RECORDS: usize = 500;
/// ... and at most this many bytes (data plus partition keys) per call.
pub const MAX_BATCH_BYTES: usize = 5 * 1024 * 1024;
/// Kinesis' limit for one record: data plus partition key.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// The least time before the deadline worth another attempt: about one Kinesis round trip.
const MIN_ATTEMPT: Duration = Duration::from_millis(50);

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

fn encode(event: &Envelope) -> Result<Blob, StreamError> {
    event
        .to_structured_json()
        .map(Blob::new)
        .map_err(|e| StreamError::Encode(cause(e)))
}

impl KinesisEventStream {
    pub(super) async fn put_record(
        &self,
        event: &Envelope,
        deadline: Deadline,
    ) -> Result<(), StreamError> {
        let data = encode(event)?;
        let partition_key = event.id.to_string();
        check_record_size(data.as_ref().len() + partition_key.len())?;
        // The output's sequence number is a required member: an `Ok` carries one.
        let mut retry = Retry::new(self.retry, deadline);
        let mut reached = false;
        loop {
            let call = self
                .client
                .put_record()
                .stream_name(&self.stream)
                .partition_key(&partition_key)
                .data(data.clone())
                .send();
            let started = Instant::now();
            let (last, last_stored) = match retry.attempt(call).await {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(error)) => {
                    let stored = may_have_stored(&error);
                    if !aws::is_transient(&error) {
                        let error = cause(RetryError::Permanent(error));
                        return Err(final_failure(reached, stored, error));
                    }
                    (LastAttempt::Failed(error), stored)
                }
                // Cut off at the attempt timeout or the deadline: the request may have been
                // sent, and Kinesis may store it after we stopped listening.
                Err(timed_out) => (LastAttempt::TimedOut(timed_out), true),
            };
            reached |= last_stored;
            tracing::warn!(error = %ErrorChain(&last), attempt = retry.attempts(), "PutRecord: transient failure");
            if !another_attempt(&mut retry, deadline, !reached, started.elapsed()).await {
                let error = RetryError::Exhausted {
                    attempts: retry.attempts(),
                    last,
                };
                return Err(final_failure(reached, last_stored, cause(error)));
            }
        }
    }

    pub(super) async fn put_records(
        &self,
        events: &[Envelope],
        deadline: Deadline,
    ) -> Vec<Result<(), StreamError>> {
        let mut results: Vec<Option<Result<(), StreamError>>> = vec![None; events.len()];
        let mut entries = Vec::with_capacity(events.len());
        for (index, event) in events.iter().enumerate() {
            let entry = encode(event).and_then(|data| {
                check_record_size(data.as_ref().len() + event.cloud_event.id.len())?;
                PutRecordsRequestEntry::builder()
                    .data(data)
                    .partition_key(event.cloud_event.id.clone())
                    .build()
                    .map_err(unavailable)
            });
            match entry {
                Ok(entry) => entries.push((index, entry)),
                Err(error) => results[index] = Some(Err(error)),
            }
        }
        // Calls of at most 500 records and 5 MiB, one after the other, sharing the deadline.
        let mut chunk = Vec::new();
        let mut chunk_bytes = 0;
        for (index, entry) in entries {
            let bytes = entry.data().as_ref().len() + entry.partition_key().len();
            if !chunk.is_empty()
                && (chunk.len() == MAX_BATCH_RECORDS || chunk_bytes + bytes > MAX_BATCH_BYTES)
            {
                self.put_chunk(std::mem::take(&mut chunk), deadline, &mut results)
                    .await;
                chunk_bytes = 0;
            }
            chunk.push((index, entry));
            chunk_bytes += bytes;
        }
        if !chunk.is_empty() {
            self.put_chunk(chunk, deadline, &mut results).await;
        }
        results
            .into_iter()
            .map(|result| result.unwrap_or_else(|| Err(unavailable(Unsettled))))
            .collect()
    }

    /// Sends `chunk` (index into the batch, entry) with PutRecords until each record is
    /// acknowledged, refused for good, or the deadline passes; only the records that failed
    /// transiently are resent, never accepted ones. Settles every index it is given.
    async fn put_chunk(
        &self,
        chunk: Vec<(usize, PutRecordsRequestEntry)>,
        deadline: Deadline,
        results: &mut [Option<Result<(), StreamError>>],
    ) {
        let mut pending: Vec<Pending> = chunk
            .into_iter()
            .map(|(index, entry)| Pending {
                index,
                entry,
                reached: false,
            })
            .collect();
        let mut retry = Retry::new(self.retry, deadline);
        loop {
            let call = self
                .client
                .put_records()
                .stream_name(&self.stream)
                .set_records(Some(pending.iter().map(|p| p.entry.clone()).collect()))
                .send();
            // The last failure, and whether that attempt may have stored the records still
            // pending after it.
            let started = Instant::now();
            let (last, last_stored): (LastAttempt<ChunkFailure>, bool) = match retry
                .attempt(call)
                .await
            {
                Ok(Ok(output)) if output.records().len() == pending.len() => {
                    let mut failed = Vec::new();
                    let mut last = None;
                    for (record, result) in pending.into_iter().zip(output.records()) {
                        match result.error_code() {
                            // No error code: accepted, with its sequence number.
                            None => results[record.index] = Some(Ok(())),
                            // Kinesis documents a record with an error code
                            // (ProvisionedThroughputExceededException, InternalFailure)
                            // as not added to the stream: this attempt did not store it.
                            Some(code) => {
                                let refused = cause(RecordRefused {
                                    code: code.to_owned(),
                                    message: result.error_message().unwrap_or_default().to_owned(),
                                });
                                if aws::is_transient_code(code) {
                                    failed.push(record);
                                    last = Some(refused);
                                } else {
                                    results[record.index] =
                                        Some(Err(final_failure(record.reached, false, refused)));
                                }
                            }
                        }
                    }
                    pending = failed;
                    match last {
                        Some(last) => (LastAttempt::Failed(ChunkFailure(last)), false),
                        None => return,
                    }
                }
                // An answer that is not one result per record: which records Kinesis
                // stored is unknown.
                Ok(Ok(output)) => {
                    let mismatch = MismatchedResults {
                        sent: pending.len(),
                        got: output.records().len(),
                    };
                    (LastAttempt::Failed(ChunkFailure(cause(mismatch))), true)
                }
                Ok(Err(error)) => {
                    let stored = may_have_stored(&error);
                    if !aws::is_transient(&error) {
                        settle(pending, results, cause(error), stored);
                        return;
                    }
                    (LastAttempt::Failed(ChunkFailure(cause(error))), stored)
                }
                // Cut off at the attempt timeout or the deadline: the call may have been
                // sent, and Kinesis may store its records after we stopped listening.
                Err(timed_out) => (LastAttempt::TimedOut(timed_out), true),
            };
            for record in &mut pending {
                record.reached |= last_stored;
            }
            tracing::warn!(error = %ErrorChain(&last), attempt = retry.attempts(), records = pending.len(), "PutRecords: retrying the failed records");
            let clean = pending.iter().any(|record| !record.reached);
            if !another_attempt(&mut retry, deadline, clean, started.elapsed()).await {
                let error = RetryError::Exhausted {
                    attempts: retry.attempts(),
                    last,
                };
                settle(pending, results, cause(error), last_stored);
                return;
            }
        }
    }
}

/// After a failed attempt (which took `last_took`), backs off and says whether to make
/// another before the deadline. While the outcome is `clean` (no attempt so far may have
/// stored a record), not unless the deadline leaves at least as long as the last attempt took
/// (and [`MIN_ATTEMPT`]): one cut off in flight would turn "nothing stored" into "unknown".
/// Once an attempt may have stored a record, the answer is unconfirmed already and another
/// attempt can only make it an acknowledgement: any time left is worth trying.
async fn another_attempt(
    retry: &mut Retry,
    deadline: Deadline,
    clean: bool,
    last_took: Duration,
) -> bool {
    if !retry.backoff().await {
        return false;
    }
    !clean || deadline.remaining() >= MIN_ATTEMPT.max(last_took)
}

/// A record of a PutRecords chunk, not settled yet.
struct Pending {
    /// Its index in the batch.
    index: usize,
    entry: PutRecordsRequestEntry,
    /// Whether one of its attempts so far may have stored it.
    reached: bool,
}

/// The last transient failure of a PutRecords call (the call's or one record's).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct ChunkFailure(Cause);

/// A batch entry that no call settled (a bug in the chunking, never a Kinesis answer).
#[derive(Debug, thiserror::Error)]
#[error("the record was not sent")]
struct Unsettled;

/// The last failure of a record that an earlier attempt may have stored.
#[derive(Debug, thiserror::Error)]
#[error("an earlier attempt may have stored the record; the last attempt failed")]
struct EarlierAttemptUnconfirmed(#[source] Cause);

/// A record's failure, once no attempt is left: `Unconfirmed` if any attempt (`reached`, or
/// the last one, `last_stored`) may have stored it, else `Unavailable`.
fn final_failure(reached: bool, last_stored: bool, error: Cause) -> StreamError {
    match (reached, last_stored) {
        (_, true) => StreamError::Unconfirmed(error),
        (true, false) => StreamError::Unconfirmed(cause(EarlierAttemptUnconfirmed(error))),
        (false, false) => StreamError::Unavailable(error),
    }
}

/// Fails every record still pending with `error`, each as [`final_failure`] says.
fn settle(
    pending: Vec<Pending>,
    results: &mut [Option<Result<(), StreamError>>],
    error: Cause,
    last_stored: bool,
) {
    for record in pending {
        results[record.index] = Some(Err(final_failure(
            record.reached,
            last_stored,
            error.clone(),
        )));
    }
}
