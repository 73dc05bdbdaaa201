//! A Lambda consumer of the Event Processor's Kinesis stream, for teams to start from.
//!
//! A Kinesis event source mapping hands the function a batch of one shard's records. For each
//! record, in order, [`Consumer::handle`]:
//!
//! 1. decodes the record's data, the CloudEvents 1.0 structured JSON document the gateway
//!    published (API.md, "What is published"), into the gateway's own envelope type
//!    [`CloudEvent<D>`] (crate `event-processor-envelope`: the attribute names are defined once,
//!    for both sides of the stream), with `D` the team's type for the event's data;
//! 2. drops it if an event with the same `id` was already handled here (see "Duplicates");
//! 3. hands the event to the team's function;
//! 4. reports the records that failed (not decodable, or refused by the function) by sequence
//!    number, as a partial batch response (`ReportBatchItemFailures`), so that Lambda retries
//!    from the first failed record instead of the whole batch, and a poison record ends in the
//!    on-failure destination after the mapping's retries instead of blocking its shard.
//!
//! A failed record does not stop the batch: the records after it are handled now, and when
//! Lambda redelivers them (it retries everything from the lowest failed sequence number) they
//! are duplicates, dropped. Handling them now matters when the retries run out: Lambda then
//! discards the rest of the batch, from the failed record on, to the on-failure destination,
//! and the good records in it were already handled. The price is order: a failed event is
//! retried after later events of its shard. (The gateway keys records by event id, so the
//! stream orders nothing per client or event name anyway; see docs/aws.md.)
//!
//! # Duplicates
//! Delivery is at least once twice over: the gateway retries a `PutRecord` whose answer was lost
//! (both copies carry the same event `id`, and as the partition key is the id, land in the same
//! shard a few records apart), and Lambda redelivers records after a partial failure, an error
//! or a timeout. [`Consumer`] remembers the ids it handled in a bounded LRU, per execution
//! environment ([`DEFAULT_DEDUP_CAPACITY`] ids, about 1 MB), and drops a record whose id it
//! holds. It does not remember:
//! - across execution environments: a cold start begins empty, and a retried batch may go to
//!   another environment (scaling, a recycled environment, a reshard);
//! - an event whose function call succeeded in an invocation that then crashed or timed out
//!   (the id is remembered in memory only after the call returns);
//! - beyond its capacity: an id is forgotten after that many newer ones.
//!
//! Where a second handling is not acceptable, make the function idempotent on `id` (e.g. a
//! conditional write keyed by it) — the in-memory window only saves the repeated work.

use std::fmt::Display;
use std::marker::PhantomData;
use std::num::NonZeroUsize;
use std::sync::Mutex;

use aws_lambda_events::kinesis::KinesisEventRecord;
use hashlink::LruCache;
use serde::de::DeserializeOwned;

/// The batch a Kinesis event source mapping invokes the function with, and its answer.
pub use aws_lambda_events::kinesis::KinesisEvent;
pub use aws_lambda_events::streams::KinesisEventResponse;
pub use event_processor_envelope::CloudEvent;

/// How many handled event ids an execution environment remembers. The gateway retries a
/// publish within its 10 s request deadline, and a shard takes at most 1,000 records a second:
/// 10,000 ids cover a retried publish on a saturated shard, and a redelivered batch of up to
/// 10,000 records (the mapping's largest). Each id costs about 100 bytes.
pub const DEFAULT_DEDUP_CAPACITY: NonZeroUsize = NonZeroUsize::new(10_000).unwrap();

/// What happened to a batch: how many events the function handled, how many duplicates were
/// dropped, and the sequence numbers of the records that failed, in batch order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub handled: usize,
    pub duplicates: usize,
    pub failed: Vec<String>,
}

impl From<Outcome> for KinesisEventResponse {
    /// The partial batch response: one `itemIdentifier` (the sequence number) per failed
    /// record; none when the whole batch succeeded.
    fn from(outcome: Outcome) -> Self {
        let mut response = KinesisEventResponse::default();
        response.set_failures(outcome.failed);
        response
    }
}

/// Decodes, deduplicates and hands each record of a batch to `handler`, an async function (or
/// async closure) of a [`CloudEvent<D>`]: `Ok` when the event is handled, `Err` for one to be
/// retried.
pub struct Consumer<D, H> {
    handler: H,
    /// Ids of handled events, most recent last. Held only between awaits, never across one.
    handled: Mutex<LruCache<String, ()>>,
    data: PhantomData<fn() -> D>,
}

impl<D, H, E> Consumer<D, H>
where
    D: DeserializeOwned,
    H: AsyncFn(CloudEvent<D>) -> Result<(), E>,
    E: Display,
{
    /// A consumer that remembers [`DEFAULT_DEDUP_CAPACITY`] handled ids.
    pub fn new(handler: H) -> Self {
        Self::with_dedup_capacity(handler, DEFAULT_DEDUP_CAPACITY)
    }

    /// A consumer that remembers the last `capacity` handled ids.
    pub fn with_dedup_capacity(handler: H, capacity: NonZeroUsize) -> Self {
        Self {
            handler,
            handled: Mutex::new(LruCache::new(capacity.get())),
            data: PhantomData,
        }
    }

    /// Handles one batch, record by record in order; never fails as a whole (an `Err` would
    /// make Lambda retry every record of the batch).
    pub async fn handle(&self, batch: &KinesisEvent) -> Outcome {
        let mut outcome = Outcome::default();
        for record in &batch.records {
            let sequence_number = &record.kinesis.sequence_number;
            let event = match decode::<D>(record) {
                Ok(event) => event,
                Err(error) => {
                    // Not the gateway's envelope, or data of another type than `D` (another
                    // pair's event: filter the mapping on `source` and `type`, docs/aws.md).
                    // Retrying cannot fix it, but failing it sends it to the on-failure
                    // destination once the retries are spent, where someone will see it.
                    tracing::warn!(
                        sequence_number,
                        partition_key = record.kinesis.partition_key,
                        %error,
                        "a record is not a CloudEvent of the expected type"
                    );
                    outcome.failed.push(sequence_number.clone());
                    continue;
                }
            };
            if self.already_handled(&event.id) {
                tracing::debug!(id = event.id, sequence_number, "dropping a duplicate");
                outcome.duplicates += 1;
                continue;
            }
            let id = event.id.clone();
            match (self.handler)(event).await {
                Ok(()) => {
                    self.remember(id);
                    outcome.handled += 1;
                }
                Err(error) => {
                    tracing::warn!(id, sequence_number, %error, "the handler refused an event");
                    outcome.failed.push(sequence_number.clone());
                }
            }
        }
        tracing::info!(
            records = batch.records.len(),
            handled = outcome.handled,
            duplicates = outcome.duplicates,
            failed = outcome.failed.len(),
            "batch done"
        );
        outcome
    }

    fn already_handled(&self, id: &str) -> bool {
        // `get` (not `contains_key`) marks it recently seen: a duplicate keeps its id in the
        // window. A poisoned lock only means another handler panicked; the set is still valid.
        let mut handled = self.handled.lock().unwrap_or_else(|e| e.into_inner());
        handled.get(id).is_some()
    }

    fn remember(&self, id: String) {
        let mut handled = self.handled.lock().unwrap_or_else(|e| e.into_inner());
        handled.insert(id, ());
    }
}

/// A record's data as the gateway's envelope (Lambda has already base64-decoded it).
fn decode<D: DeserializeOwned>(
    record: &KinesisEventRecord,
) -> Result<CloudEvent<D>, serde_json::Error> {
    serde_json::from_slice(&record.kinesis.data)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde::Deserialize;
    use serde_json::{Value, json};

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Fruit {
        fruit: String,
    }

    fn document(id: &str, fruit: &str) -> Value {
        json!({
            "specversion": "1.0",
            "id": id,
            "source": "/SpongeBob",
            "type": "Fruits",
            "time": "2024-07-01T12:00:00Z",
            "dataschema": "/SpongeBob/Fruits/schema?version=1",
            "datacontenttype": "application/json",
            "data": {"fruit": fruit}
        })
    }

    /// A batch as Lambda delivers it: data base64-encoded, one sequence number per record.
    fn batch(datas: &[Vec<u8>]) -> KinesisEvent {
        use base64::Engine;
        let encode = |data: &[u8]| base64::engine::general_purpose::STANDARD.encode(data);
        let records: Vec<Value> = datas
            .iter()
            .enumerate()
            .map(|(i, data)| {
                json!({
                    "eventSource": "aws:kinesis",
                    "eventID": format!("shardId-000000000000:{}", 1000 + i),
                    "kinesis": {
                        "kinesisSchemaVersion": "1.0",
                        "partitionKey": format!("key-{i}"),
                        "sequenceNumber": (1000 + i).to_string(),
                        "data": encode(data),
                        "approximateArrivalTimestamp": 1_720_000_000.5
                    }
                })
            })
            .collect();
        serde_json::from_value(json!({"Records": records})).expect("a Kinesis event")
    }

    fn fruits(ids: &[&str]) -> Vec<Vec<u8>> {
        ids.iter()
            .map(|id| {
                document(id, &format!("fruit {id}"))
                    .to_string()
                    .into_bytes()
            })
            .collect()
    }

    /// A consumer counting its handled events, refusing the fruit "poison".
    fn counting(
        calls: &AtomicUsize,
    ) -> Consumer<Fruit, impl AsyncFn(CloudEvent<Fruit>) -> Result<(), String> + '_> {
        Consumer::new(async |event: CloudEvent<Fruit>| {
            if event.data.fruit == "poison" {
                return Err("poison".to_owned());
            }
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
    }

    #[tokio::test]
    async fn every_record_of_a_good_batch_is_handled_and_none_reported() {
        let calls = AtomicUsize::new(0);
        let consumer = counting(&calls);

        let outcome = consumer.handle(&batch(&fruits(&["a", "b", "c"]))).await;

        assert_eq!(
            outcome,
            Outcome {
                handled: 3,
                ..Outcome::default()
            }
        );
        assert!(
            KinesisEventResponse::from(outcome)
                .batch_item_failures
                .is_empty()
        );
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_record_that_is_not_a_cloudevent_is_reported_by_its_sequence_number() {
        let calls = AtomicUsize::new(0);
        let consumer = counting(&calls);
        let mut datas = fruits(&["a", "b"]);
        datas.insert(1, b"not json".to_vec());

        let outcome = consumer.handle(&batch(&datas)).await;

        assert_eq!(outcome.handled, 2, "the record after it is handled too");
        assert_eq!(outcome.failed, ["1001"]);
        let response = KinesisEventResponse::from(outcome);
        assert_eq!(
            serde_json::to_value(&response).unwrap(),
            json!({"batchItemFailures": [{"itemIdentifier": "1001"}]})
        );
    }

    #[tokio::test]
    async fn data_of_another_type_is_a_failure_not_a_panic() {
        let calls = AtomicUsize::new(0);
        let consumer = counting(&calls);
        let mut other = document("x", "");
        other["data"] = json!({"color": "blue"});

        let outcome = consumer
            .handle(&batch(&[other.to_string().into_bytes()]))
            .await;

        assert_eq!(outcome.failed, ["1000"]);
    }

    #[tokio::test]
    async fn the_same_id_twice_in_a_batch_is_handled_once() {
        let calls = AtomicUsize::new(0);
        let consumer = counting(&calls);

        let outcome = consumer.handle(&batch(&fruits(&["a", "b", "a"]))).await;

        assert_eq!((outcome.handled, outcome.duplicates), (2, 1));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_refused_event_is_not_remembered_so_its_retry_is_handled() {
        let attempts = AtomicUsize::new(0);
        let consumer = Consumer::new(async |_: CloudEvent<Fruit>| {
            // Refused the first time (a downstream outage), accepted the second.
            match attempts.fetch_add(1, Ordering::SeqCst) {
                0 => Err("downstream unavailable"),
                _ => Ok(()),
            }
        });
        let records = batch(&fruits(&["a"]));

        let first = consumer.handle(&records).await;
        let retried = consumer.handle(&records).await;

        assert_eq!(first.failed, ["1000"]);
        assert_eq!((retried.handled, retried.duplicates), (1, 0));
    }

    #[tokio::test]
    async fn an_id_is_forgotten_after_capacity_newer_ones() {
        let calls = AtomicUsize::new(0);
        let consumer = Consumer::with_dedup_capacity(
            async |_: CloudEvent<Fruit>| {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok::<(), String>(())
            },
            NonZeroUsize::new(2).unwrap(),
        );

        consumer.handle(&batch(&fruits(&["a", "b", "c"]))).await;
        let again = consumer.handle(&batch(&fruits(&["a", "c"]))).await;

        assert_eq!(
            (again.handled, again.duplicates),
            (1, 1),
            "a is out of the window, c in it"
        );
    }

    #[tokio::test]
    async fn a_new_execution_environment_does_not_know_what_another_handled() {
        let calls = AtomicUsize::new(0);
        let records = batch(&fruits(&["a", "b"]));
        counting(&calls).handle(&records).await;

        let cold = counting(&calls).handle(&records).await;

        assert_eq!(cold.handled, 2, "the in-memory window is per environment");
    }

    #[tokio::test]
    async fn the_sample_event_a_retried_publish_is_handled_once() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/events/batch.json");
        let json = std::fs::read_to_string(path).unwrap();
        let event: KinesisEvent = serde_json::from_str(&json).unwrap();
        let calls = AtomicUsize::new(0);

        let outcome = counting(&calls).handle(&event).await;

        assert_eq!((outcome.handled, outcome.duplicates), (1, 1));
        assert!(outcome.failed.is_empty());
    }
}
