//! PostgreSQL on 127.0.0.1:5432 (the database `scripts/test` creates).

mod contract;
mod store;
