//! PostgreSQL on 127.0.0.1:5432 (the database `scripts/test` creates, and databases of their
//! own for the migration tests).

mod contract;
mod idempotency;
mod migrations;
mod rejections;
mod schema_corpus;
mod store;
