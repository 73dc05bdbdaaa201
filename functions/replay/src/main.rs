//! Lambda function `replay`: API Gateway routes `POST /{client}/{event}/rejected/{id}/replay`
//! here.
//!
//! Like every function it mounts its own route of the one HTTP layer over the app built from
//! `SCHEMA_STORE` / `EVENT_STREAM` once per cold start; see `event_processor_lambda`. Init opens the
//! connections to the schema store (schemas, rejections, the replay's lock) and the event
//! stream (the replayed event) its requests reach.

use std::process::ExitCode;

use event_processor_lambda::{Routes, WarmUp};

#[tokio::main]
async fn main() -> ExitCode {
    event_processor_lambda::run(Routes::REPLAY, WarmUp::StoreAndStream).await
}
