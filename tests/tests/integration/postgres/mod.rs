//! PostgreSQL on 127.0.0.1:5432 (the database `scripts/test` creates, and databases of their
//! own for the migration tests).

mod contract;
mod idempotency;
/// The original service's schemas imported (events on an SQLite stream).
#[cfg(feature = "sqlite")]
mod import;
mod migrations;
mod rejections;
mod schema_corpus;
mod store;

/// Rejections and idempotency keys through the router on PostgreSQL (events on the memory
/// stream: the Kafka side is local_stack's).
mod lifecycle {
    use std::sync::Arc;

    use event_processor_core::Processor;
    use event_processor_core::adapters::memory::MemoryEventStream;
    use event_processor_core::http::Api;
    use event_processor_tests::lifecycle::Backend;
    use event_processor_tests::postgres::store;

    async fn backend() -> Backend {
        let store = store().await;
        let stream = MemoryEventStream::new();
        let processor = Processor::new(store.clone(), Arc::new(stream.clone()))
            .with_rejections(store.clone())
            .with_idempotency(store);
        Backend {
            router: Api::new(processor).router(),
            source: Arc::new(stream),
        }
    }

    event_processor_tests::lifecycle_suite!(backend());
}
