//! The embedded default, for real: SQLite files on disk.

mod contract;
mod gateway;
mod idempotency;
mod rejections;
mod unconfirmed;

/// Rejections and idempotency keys through the router, on one SQLite file holding the
/// schemas, the rejections, the keys and the event log.
mod lifecycle {
    use event_processor_core::Processor;
    use event_processor_core::adapters::sqlite::SqliteDb;
    use event_processor_core::http::Api;
    use event_processor_tests::lifecycle::Backend;

    async fn backend() -> Backend {
        let path = tempfile::tempdir().unwrap().keep().join("lifecycle.db");
        let db = SqliteDb::open(&path).unwrap();
        let processor = Processor::new(db.clone(), db.clone())
            .with_rejections(db.clone())
            .with_idempotency(db.clone());
        Backend {
            router: Api::new(processor).router(),
            source: db,
        }
    }

    event_processor_tests::lifecycle_suite!(backend());
}
