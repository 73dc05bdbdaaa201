//! PostgreSQL on 127.0.0.1:5432 (the database `scripts/test` creates, and databases of their
//! own for the migration tests).

mod contract;
mod migrations;
mod store;
