//! The adapter contracts on SQLite, each test on a fresh database file.

use std::sync::Arc;

use event_processor_core::adapters::sqlite::SqliteDb;

fn fresh_db() -> Arc<SqliteDb> {
    // The directory is leaked on purpose: the writer thread keeps the file open past the test.
    let dir = tempfile::tempdir().unwrap().keep();
    SqliteDb::open(dir.join("contract.db")).unwrap()
}

event_processor_tests::schema_store_contract!(async { fresh_db() });

event_processor_tests::event_stream_contract!(async {
    let db = fresh_db();
    (db.clone(), db)
});

mod rejections {
    use std::sync::Arc;

    use event_processor_core::ports::RejectionStore;

    event_processor_tests::rejection_store_contract!(async {
        super::fresh_db() as Arc<dyn RejectionStore>
    });
}

mod idempotency {
    use std::sync::Arc;

    use event_processor_core::ports::IdempotencyStore;

    event_processor_tests::idempotency_store_contract!(async {
        super::fresh_db() as Arc<dyn IdempotencyStore>
    });
}
