//! Lambda function `list-events`: API Gateway routes `GET /{client}/list_events` here, and every
//! request no other route matches (the `$default` route).
//!
//! Unlike the other functions it mounts every route of the one HTTP layer, so that what reaches
//! it through `$default` gets API.md's JSON answers: 404 for an unknown path, 405 with `Allow`
//! for a known path with the wrong method. Its role allows only its own route's reads, so a
//! request for another route that did reach it would fail closed. The app is built from
//! `SCHEMA_STORE` / `EVENT_STREAM` once per cold start; see `event_processor_lambda`. Init opens
//! the connection to the schema store, the only backend its requests reach.

use std::process::ExitCode;

use event_processor_lambda::{Routes, WarmUp};

#[tokio::main]
async fn main() -> ExitCode {
    event_processor_lambda::run(Routes::ALL, WarmUp::Store).await
}
