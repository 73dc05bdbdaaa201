//! The serverless shape on moto_server: every function's `events/` payloads through the
//! Lambda request path, the whole API end to end on DynamoDB + Kinesis, Kinesis retries, and
//! rejections and idempotency keys in the DynamoDB table, and which Kinesis failures are
//! unconfirmed rather than unavailable.

mod consumer;
mod contract;
mod e2e;
mod functions;
mod idempotency;
mod rejections;
mod retries;
mod unconfirmed;
mod upgrade;

/// Rejections and idempotency keys through the router on DynamoDB, events on Kinesis.
mod lifecycle {
    use std::sync::Arc;

    use event_processor_core::Processor;
    use event_processor_core::http::Api;
    use event_processor_tests::aws::{fresh_store, fresh_stream};
    use event_processor_tests::lifecycle::Backend;

    async fn backend() -> Backend {
        let store = Arc::new(fresh_store().await);
        let stream = Arc::new(fresh_stream().await);
        let processor = Processor::new(store.clone(), stream.clone())
            .with_rejections(store.clone())
            .with_idempotency(store);
        Backend {
            router: Api::new(processor).router(),
            source: stream,
        }
    }

    event_processor_tests::lifecycle_suite!(backend());
}
