//! Lambda function `versions`: API Gateway routes `GET /{client}/{event}/versions` here.
//!
//! Like every function it mounts its own route of the one HTTP layer over the app built from
//! `SCHEMA_STORE` / `EVENT_STREAM` once per cold start; see `event_processor_lambda`. Init opens the
//! connection to the schema store, the only backend its requests reach.

use std::process::ExitCode;

use event_processor_lambda::{Routes, WarmUp};

#[tokio::main]
async fn main() -> ExitCode {
    event_processor_lambda::run(Routes::VERSIONS, WarmUp::Store).await
}
