//! The schema-store contract on PostgreSQL (the database `scripts/test` creates).

event_processor_tests::schema_store_contract!(event_processor_tests::postgres::store());
