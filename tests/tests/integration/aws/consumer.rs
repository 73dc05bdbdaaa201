//! The example Kinesis consumer (`examples/kinesis-consumer`) on what the real gateway
//! publishes: events sent through the API land in Kinesis on moto, are read back with
//! GetRecords and wrapped as a Kinesis event source mapping delivers them (one batch per
//! shard, data base64-encoded), then go through the consumer's handler.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::ShardIteratorType;
use base64::Engine;
use event_processor_core::domain::ClientId;
use event_processor_tests::api::post_json;
use event_processor_tests::aws::{Names, fresh_app, sdk_config};
use event_processor_tests::unique_client;
use http::StatusCode;
use kinesis_consumer::{CloudEvent, Consumer, KinesisEvent, KinesisEventResponse, Outcome};
use serde_json::{Value, json};

/// A gateway on a fresh table and stream, with `{client}/Fruits` registered.
async fn gateway() -> (axum::Router, Names, ClientId) {
    let (app, names) = fresh_app().await;
    let router = app.router();
    let client = unique_client();
    let registered = post_json(
        &router,
        &format!("/{client}/Fruits/register_event"),
        &json!({"type": "object", "required": ["fruit"]}),
    )
    .await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{:?}",
        registered.body
    );
    (router, names, client)
}

/// Sends one event through the API; its id.
async fn send(router: &axum::Router, client: &ClientId, event: &Value) -> String {
    let sent = post_json(router, &format!("/{client}/Fruits/send_event"), event).await;
    assert_eq!(sent.status, StatusCode::OK, "{:?}", sent.body);
    sent.body["id"].as_str().expect("an event id").to_owned()
}

/// Puts bytes into the stream as another producer would, bypassing the gateway.
async fn put_raw(stream: &str, partition_key: &str, data: &[u8]) {
    aws_sdk_kinesis::Client::new(&sdk_config().await)
        .put_record()
        .stream_name(stream)
        .partition_key(partition_key)
        .data(Blob::new(data))
        .send()
        .await
        .expect("put a record");
}

/// Every record of `stream`, as the event source mapping delivers them: one batch per shard
/// (a batch never mixes shards), in sequence order, each record in Lambda's JSON shape with its
/// data base64-encoded, parsed by the consumer's own event type.
async fn batches(stream: &str) -> Vec<KinesisEvent> {
    let client = aws_sdk_kinesis::Client::new(&sdk_config().await);
    let arn = client
        .describe_stream_summary()
        .stream_name(stream)
        .send()
        .await
        .expect("describe the stream")
        .stream_description_summary
        .expect("a summary")
        .stream_arn;
    let shards = client
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .expect("list shards");
    let mut batches = Vec::new();
    for shard in shards.shards() {
        let mut records = Vec::new();
        let mut iterator = client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("get a shard iterator")
            .shard_iterator;
        while let Some(current) = iterator {
            let output = client
                .get_records()
                .shard_iterator(current)
                .send()
                .await
                .expect("get records");
            for record in output.records() {
                let arrival = record
                    .approximate_arrival_timestamp()
                    .expect("an arrival time")
                    .as_secs_f64();
                records.push(json!({
                    "kinesis": {
                        "kinesisSchemaVersion": "1.0",
                        "partitionKey": record.partition_key(),
                        "sequenceNumber": record.sequence_number(),
                        "data": base64::engine::general_purpose::STANDARD
                            .encode(record.data().as_ref()),
                        "approximateArrivalTimestamp": arrival,
                    },
                    "eventSource": "aws:kinesis",
                    "eventVersion": "1.0",
                    "eventID": format!("{}:{}", shard.shard_id(), record.sequence_number()),
                    "eventName": "aws:kinesis:record",
                    "invokeIdentityArn": "arn:aws:iam::123456789012:role/kinesis-consumer",
                    "awsRegion": "us-east-1",
                    "eventSourceARN": arn,
                }));
            }
            iterator = if output.records().is_empty() {
                None
            } else {
                output.next_shard_iterator().map(str::to_owned)
            };
        }
        if !records.is_empty() {
            let event = json!({ "Records": records });
            batches.push(serde_json::from_value(event).expect("a Kinesis event"));
        }
    }
    batches
}

/// The team's function of the test: counts each id it handles, refuses the fruit "poison".
#[derive(Default)]
struct Handled(Mutex<HashMap<String, usize>>);

impl Handled {
    async fn handle(&self, event: CloudEvent<Value>) -> Result<(), String> {
        if event.data["fruit"] == "poison" {
            return Err(format!("{} is poison", event.id));
        }
        *self.0.lock().unwrap().entry(event.id).or_default() += 1;
        Ok(())
    }

    fn times(&self, id: &str) -> usize {
        self.0.lock().unwrap().get(id).copied().unwrap_or(0)
    }

    fn most(&self) -> usize {
        self.0.lock().unwrap().values().copied().max().unwrap_or(0)
    }
}

/// Handles every batch, as the mapping would invoke the function once per shard's batch; the
/// outcome of each batch.
async fn deliver<H>(consumer: &Consumer<Value, H>, batches: &[KinesisEvent]) -> Vec<Outcome>
where
    H: AsyncFn(CloudEvent<Value>) -> Result<(), String>,
{
    let mut outcomes = Vec::new();
    for batch in batches {
        outcomes.push(consumer.handle(batch).await);
    }
    outcomes
}

/// The outcomes of several batches added up.
fn total(outcomes: &[Outcome]) -> Outcome {
    let mut total = Outcome::default();
    for outcome in outcomes {
        total.handled += outcome.handled;
        total.duplicates += outcome.duplicates;
        total.failed.extend(outcome.failed.iter().cloned());
    }
    total
}

/// The sequence number of the record carrying event `id`.
fn sequence_number_of(batches: &[KinesisEvent], id: &str) -> String {
    batches
        .iter()
        .flat_map(|batch| &batch.records)
        .find(|record| {
            serde_json::from_slice::<Value>(&record.kinesis.data)
                .is_ok_and(|document| document["id"] == id)
        })
        .map(|record| record.kinesis.sequence_number.clone())
        .expect("the event is in the stream")
}

#[tokio::test]
async fn a_hundred_records_with_one_poison_are_99_handled_and_1_reported_then_none_twice() {
    // Given 100 events published by the gateway, one of which the team's function refuses ...
    let (router, names, client) = gateway().await;
    let mut ids = Vec::new();
    for i in 0..100 {
        let fruit = if i == 41 {
            "poison".to_owned()
        } else {
            format!("fruit {i}")
        };
        ids.push(send(&router, &client, &json!({ "fruit": fruit })).await);
    }
    let poison = ids[41].clone();
    let batches = batches(&names.stream).await;
    assert_eq!(
        batches.iter().map(|b| b.records.len()).sum::<usize>(),
        100,
        "every published event is in the stream"
    );
    let handled = Handled::default();
    let consumer = Consumer::new(async |event| handled.handle(event).await);

    // ... when the mapping delivers them,
    let outcomes = deliver(&consumer, &batches).await;

    // then 99 are handled and the poison is reported by its sequence number, in the answer of
    // its shard's batch; the other batches answer with no failure ...
    let first = total(&outcomes);
    assert_eq!(first.handled, 99);
    assert_eq!(first.duplicates, 0);
    let poison_sequence_number = sequence_number_of(&batches, &poison);
    assert_eq!(first.failed, std::slice::from_ref(&poison_sequence_number));
    let mut answers: Vec<Value> = outcomes
        .into_iter()
        .map(|outcome| serde_json::to_value(KinesisEventResponse::from(outcome)).unwrap())
        .collect();
    answers.sort_by_key(|answer| answer["batchItemFailures"].as_array().map(Vec::len));
    let poisoned = answers.pop().expect("at least one batch");
    assert_eq!(
        poisoned,
        json!({"batchItemFailures": [{"itemIdentifier": poison_sequence_number}]})
    );
    assert!(
        answers
            .iter()
            .all(|a| a == &json!({"batchItemFailures": []})),
        "{answers:?}"
    );

    // ... and when the batches are delivered again (Lambda retries from the failed record on;
    // here every record, a superset),
    let again = total(&deliver(&consumer, &batches).await);

    // no event is handled twice; the poison fails again, towards the on-failure destination.
    assert_eq!(again.handled, 0);
    assert_eq!(again.duplicates, 99);
    assert_eq!(again.failed, first.failed);
    assert_eq!(handled.most(), 1, "an event handled twice");
    assert_eq!(handled.times(&poison), 0);
    assert!(
        ids.iter()
            .filter(|id| **id != poison)
            .all(|id| handled.times(id) == 1)
    );
}

#[tokio::test]
async fn a_record_that_is_not_a_cloudevent_is_reported_and_the_rest_of_its_shard_handled() {
    // Given 99 events of the gateway and, among them, a record of another producer ...
    let (router, names, client) = gateway().await;
    for i in 0..99 {
        send(&router, &client, &json!({ "fruit": format!("fruit {i}") })).await;
        if i == 50 {
            put_raw(
                &names.stream,
                "another-producer",
                b"plain text, not a CloudEvent",
            )
            .await;
        }
    }
    let batches = batches(&names.stream).await;
    let handled = Handled::default();
    let consumer = Consumer::new(async |event| handled.handle(event).await);

    // ... when the mapping delivers them,
    let outcome = total(&deliver(&consumer, &batches).await);

    // then the 99 are handled and the foreign record is the one failure.
    assert_eq!(outcome.handled, 99);
    let foreign = batches
        .iter()
        .flat_map(|batch| &batch.records)
        .find(|record| record.kinesis.partition_key == "another-producer")
        .expect("the foreign record is in the stream");
    assert_eq!(
        outcome.failed,
        std::slice::from_ref(&foreign.kinesis.sequence_number)
    );
}

#[tokio::test]
async fn a_retried_publish_stored_twice_is_handled_once() {
    // Given an event stored twice, as when the gateway retries a PutRecord whose answer was
    // lost: the same document under the same partition key (its id), so in the same shard.
    let (router, names, client) = gateway().await;
    let id = send(&router, &client, &json!({"fruit": "kiwi"})).await;
    let stored = batches(&names.stream).await;
    let record = &stored[0].records[0];
    put_raw(
        &names.stream,
        &record.kinesis.partition_key,
        &record.kinesis.data,
    )
    .await;
    send(&router, &client, &json!({"fruit": "lime"})).await;
    let batches = batches(&names.stream).await;
    let handled = Handled::default();
    let consumer = Consumer::new(async |event| handled.handle(event).await);

    // When the mapping delivers them,
    let outcome = total(&deliver(&consumer, &batches).await);

    // then the event is handled once, its copy dropped.
    assert_eq!(batches.iter().map(|b| b.records.len()).sum::<usize>(), 3);
    assert_eq!((outcome.handled, outcome.duplicates), (2, 1));
    assert_eq!(handled.times(&id), 1);
    assert!(outcome.failed.is_empty());
}
