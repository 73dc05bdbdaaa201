//! Every integration test of the workspace in one binary, a module per backend: linking the
//! AWS SDK, librdkafka and PostgreSQL's client once instead of once per test file.
//!
//! Backend modules need their cargo feature (`scripts/test` runs with `--all-features`) and
//! their service (started by `scripts/test`); a missing service fails the test, it never skips.

mod auth;
mod http;
mod idempotency;
mod memory;
mod versions;
mod wire;

#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "aws")]
mod aws;

#[cfg(feature = "postgres")]
mod postgres;

#[cfg(feature = "kafka")]
mod kafka;

#[cfg(all(feature = "postgres", feature = "kafka"))]
mod local_stack;

#[cfg(all(feature = "postgres", feature = "kafka"))]
mod original_consumers;
