//! The store contracts on PostgreSQL (the database `scripts/test` creates).

event_processor_tests::schema_store_contract!(event_processor_tests::postgres::store());

mod rejections {
    use std::sync::Arc;

    use event_processor_core::ports::RejectionStore;

    event_processor_tests::rejection_store_contract!(async {
        event_processor_tests::postgres::store().await as Arc<dyn RejectionStore>
    });
}

mod idempotency {
    use std::sync::Arc;

    use event_processor_core::ports::IdempotencyStore;

    event_processor_tests::idempotency_store_contract!(async {
        event_processor_tests::postgres::store().await as Arc<dyn IdempotencyStore>
    });
}
