//! Publishing to Kinesis: PutRecord for one event, PutRecords for a batch, both retried by
//! the one retry policy within the request's deadline.

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;

use super::{KinesisEventStream, unavailable};
use crate::adapters::aws;
use crate::envelope::Envelope;
use crate::error::{Cause, ErrorChain, cause};
use crate::ports::StreamError;
use crate::retry::{Deadline, LastAttempt, Retry, RetryError, retry};

/// Kinesis accepts at most this many records per PutRecords call ...
pub const MAX_BATCH_RECORDS: usize = 500;
/// ... and at most this many bytes (data plus partition keys) per call.
pub const MAX_BATCH_BYTES: usize = 5 * 1024 * 1024;
/// Kinesis' limit for one record: data plus partition key.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

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
        let (data, partition_key) = (&data, &partition_key);
        retry(self.retry, deadline, move || async move {
            self.client
                .put_record()
                .stream_name(&self.stream)
                .partition_key(partition_key)
                .data(data.clone())
                .send()
                .await
                .map_err(aws::failure)
        })
        .await
        .map(|_| ())
        .map_err(unavailable)
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

    /// Sends `pending` (index into the batch, entry) with PutRecords until each is
    /// acknowledged, refused for good, or the deadline passes; only the entries that failed
    /// transiently are resent, never accepted ones. Settles every index it is given.
    async fn put_chunk(
        &self,
        mut pending: Vec<(usize, PutRecordsRequestEntry)>,
        deadline: Deadline,
        results: &mut [Option<Result<(), StreamError>>],
    ) {
        let mut retry = Retry::new(self.retry, deadline);
        loop {
            let call = self
                .client
                .put_records()
                .stream_name(&self.stream)
                .set_records(Some(pending.iter().map(|(_, e)| e.clone()).collect()))
                .send();
            let last: LastAttempt<ChunkFailure> = match retry.attempt(call).await {
                Ok(Ok(output)) if output.records().len() == pending.len() => {
                    let mut failed = Vec::new();
                    let mut last = None;
                    for ((index, entry), record) in pending.into_iter().zip(output.records()) {
                        match record.error_code() {
                            // No error code: accepted, with its sequence number.
                            None => results[index] = Some(Ok(())),
                            Some(code) => {
                                let refused = cause(RecordRefused {
                                    code: code.to_owned(),
                                    message: record.error_message().unwrap_or_default().to_owned(),
                                });
                                if aws::is_transient_code(code) {
                                    failed.push((index, entry));
                                    last = Some(refused);
                                } else {
                                    results[index] = Some(Err(StreamError::Unavailable(refused)));
                                }
                            }
                        }
                    }
                    pending = failed;
                    match last {
                        Some(last) => LastAttempt::Failed(ChunkFailure(last)),
                        None => return,
                    }
                }
                Ok(Ok(output)) => LastAttempt::Failed(ChunkFailure(cause(MismatchedResults {
                    sent: pending.len(),
                    got: output.records().len(),
                }))),
                Ok(Err(error)) if aws::is_transient(&error) => {
                    LastAttempt::Failed(ChunkFailure(cause(error)))
                }
                Ok(Err(error)) => {
                    settle(&pending, results, StreamError::Unavailable(cause(error)));
                    return;
                }
                Err(timed_out) => LastAttempt::TimedOut(timed_out),
            };
            tracing::warn!(error = %ErrorChain(&last), attempt = retry.attempts(), records = pending.len(), "PutRecords: retrying the failed records");
            if !retry.backoff().await {
                let error = unavailable(RetryError::Exhausted {
                    attempts: retry.attempts(),
                    last,
                });
                settle(&pending, results, error);
                return;
            }
        }
    }
}

/// The last transient failure of a PutRecords call (the call's or one record's).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct ChunkFailure(Cause);

/// A batch entry that no call settled (a bug in the chunking, never a Kinesis answer).
#[derive(Debug, thiserror::Error)]
#[error("the record was not sent")]
struct Unsettled;

fn settle(
    pending: &[(usize, PutRecordsRequestEntry)],
    results: &mut [Option<Result<(), StreamError>>],
    error: StreamError,
) {
    for (index, _) in pending {
        results[*index] = Some(Err(error.clone()));
    }
}
