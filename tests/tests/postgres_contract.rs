//! The schema-store contract on PostgreSQL (the database `scripts/test` creates).
#![cfg(feature = "postgres")]

event_processor_tests::schema_store_contract!(event_processor_tests::postgres::store());
