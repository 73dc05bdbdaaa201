//! Lambda function `send-events`: API Gateway routes `POST /{client}/{event}/send_events` (batches) here.
//!
//! Like every function it mounts its own route of the one HTTP layer over the app built from
//! `SCHEMA_STORE` / `EVENT_STREAM` once per cold start; see `event_processor_lambda`. Init opens the
//! connections to the schema store and the event stream its requests reach.

use std::process::ExitCode;

use event_processor_lambda::{Routes, WarmUp};

#[tokio::main]
async fn main() -> ExitCode {
    event_processor_lambda::run(Routes::SEND_EVENTS, WarmUp::StoreAndStream).await
}
