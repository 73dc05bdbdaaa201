//! The adapter contracts on the in-memory adapters (the reference the others must match).

use std::sync::Arc;

use event_processor_core::adapters::memory::{MemoryEventStream, MemorySchemaStore};

event_processor_tests::schema_store_contract!(async { Arc::new(MemorySchemaStore::new()) });

event_processor_tests::event_stream_contract!(async {
    let stream = MemoryEventStream::new();
    (Arc::new(stream.clone()), Arc::new(stream))
});

mod rejections {
    use std::sync::Arc;

    use event_processor_core::adapters::memory::MemorySchemaStore;
    use event_processor_core::ports::RejectionStore;

    event_processor_tests::rejection_store_contract!(async {
        Arc::new(MemorySchemaStore::new()) as Arc<dyn RejectionStore>
    });
}

mod idempotency {
    use std::sync::Arc;

    use event_processor_core::adapters::memory::MemorySchemaStore;
    use event_processor_core::ports::IdempotencyStore;

    event_processor_tests::idempotency_store_contract!(async {
        Arc::new(MemorySchemaStore::new()) as Arc<dyn IdempotencyStore>
    });
}

mod lifecycle {
    use std::sync::Arc;

    use event_processor_core::Processor;
    use event_processor_core::adapters::memory::{MemoryEventStream, MemorySchemaStore};
    use event_processor_core::http::Api;
    use event_processor_tests::lifecycle::Backend;

    async fn backend() -> Backend {
        let store = Arc::new(MemorySchemaStore::new());
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
