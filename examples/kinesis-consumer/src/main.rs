//! The example consumer's Lambda binary: a Kinesis event source mapping on the gateway's
//! stream invokes it with batches of records (template.yaml beside this crate, docs/aws.md
//! "Consuming the stream"). Replace [`handle`] and [`Fruit`] with your own.

use kinesis_consumer::{CloudEvent, Consumer, KinesisEvent, KinesisEventResponse};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde::Deserialize;

/// The data of the events this function consumes: the README's `SpongeBob/Fruits`. The
/// mapping's filter (template.yaml) lets only that pair's events reach the function; an event
/// whose data does not fit this type is reported as a failed record.
#[derive(Debug, Deserialize)]
struct Fruit {
    fruit: String,
}

/// The team's code, called once per event (duplicates already dropped). `Err` has the record
/// retried by Lambda, then sent to the on-failure destination; make it idempotent on
/// `event.id` if handling an event twice must not show.
async fn handle(event: CloudEvent<Fruit>) -> Result<(), String> {
    tracing::info!(
        id = event.id,
        source = event.source,
        event = event.event_type,
        fruit = event.data.fruit,
        "handled an event"
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    // JSON logs when the function's LoggingConfig says so (AWS_LAMBDA_LOG_FORMAT).
    lambda_runtime::tracing::init_default_subscriber();
    // Built once per execution environment: its window of handled ids outlives invocations.
    let consumer = &Consumer::new(handle);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<KinesisEvent>| async move {
            Ok::<_, Error>(KinesisEventResponse::from(
                consumer.handle(&event.payload).await,
            ))
        },
    ))
    .await
}
