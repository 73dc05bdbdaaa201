//! An honest 503 on the embedded stream: an append the writer has queued commits whether or
//! not its caller still waits, so a caller whose deadline comes first gets `Unconfirmed`
//! (503 `publish_unconfirmed`); an append the writer rolled back is `Unavailable`
//! (503 `service_unavailable`). The write lock is held by another connection, as another
//! process would hold it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use event_processor_core::Processor;
use event_processor_core::adapters::sqlite::SqliteDb;
use event_processor_core::domain::SchemaVersion;
use event_processor_core::envelope::Envelope;
use event_processor_core::http::Api;
use event_processor_core::ports::{EventStream, SchemaStore, StreamError};
use event_processor_core::retry::Deadline;
use event_processor_tests::api::assert_failure;
use event_processor_tests::idempotency::post_json_with_key;
use event_processor_tests::{deadline, event_name, unique_client};
use http::StatusCode;
use serde_json::json;

fn db_path() -> PathBuf {
    // Leaked on purpose: the writer thread keeps the file open past the test.
    tempfile::tempdir().unwrap().keep().join("unconfirmed.db")
}

/// Another connection holding the file's write lock until it is released.
struct Blocker(rusqlite::Connection);

impl Blocker {
    fn hold(path: &Path) -> Self {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        Self(conn)
    }

    fn release(self) {
        self.0.execute_batch("ROLLBACK").unwrap();
    }
}

/// The ids of every event in the log, in offset order, read straight from the file.
fn logged_ids(path: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut query = conn
        .prepare("SELECT id FROM events ORDER BY client, event, offset")
        .unwrap();
    query
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Waits until the log holds `count` events (the test fails after 10 s).
async fn logged_ids_once(path: &Path, count: usize) -> Vec<String> {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ids = logged_ids(path);
        if ids.len() >= count {
            return ids;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "the log holds {ids:?}, not {count} events"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn envelope() -> Envelope {
    Envelope::new(
        &unique_client(),
        &event_name("Fruits"),
        SchemaVersion::FIRST,
        &json!({"fruit": "kiwi"}),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_still_waiting_for_the_write_lock_at_the_deadline_is_unconfirmed_and_commits_later()
 {
    // Given a writer that waits up to 30 s for the lock, and another connection holding it,
    let path = db_path();
    let db = SqliteDb::open_with_busy_timeout(&path, Duration::from_secs(30)).unwrap();
    let blocker = Blocker::hold(&path);
    let sent = envelope();

    // when an event is published with 300 ms to live,
    let result = db
        .publish(&sent, Deadline::after(Duration::from_millis(300)))
        .await;

    // then it is unconfirmed, and rightly so: the queued append commits once the lock is free.
    assert!(
        matches!(result, Err(StreamError::Unconfirmed(_))),
        "{result:?}"
    );
    assert!(logged_ids(&path).is_empty());
    blocker.release();
    assert_eq!(logged_ids_once(&path, 1).await, vec![sent.id.to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_rolled_back_at_the_busy_timeout_is_unavailable_and_writes_nothing() {
    // Given a writer that gives up on the lock after 100 ms, and another connection holding it,
    let path = db_path();
    let db = SqliteDb::open_with_busy_timeout(&path, Duration::from_millis(100)).unwrap();
    let blocker = Blocker::hold(&path);

    // when an event is published with time to spare,
    let result = db.publish(&envelope(), deadline()).await;

    // then it is unavailable: the writer answered, having rolled its transaction back.
    assert!(
        matches!(result, Err(StreamError::Unavailable(_))),
        "{result:?}"
    );
    assert_eq!(db.pending(), 0, "nothing is left queued");
    blocker.release();
    assert!(logged_ids(&path).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_whose_deadline_has_passed_queues_nothing_and_is_unavailable() {
    let path = db_path();
    let db = SqliteDb::open(&path).unwrap();

    let result = db
        .publish(&envelope(), Deadline::after(Duration::ZERO))
        .await;

    assert!(
        matches!(result, Err(StreamError::Unavailable(_))),
        "{result:?}"
    );
    assert_eq!(db.pending(), 0);
    assert!(logged_ids(&path).is_empty());
}

/// A registered pair on `db`, and two routers over one processor (one idempotency store):
/// requests of the first have 300 ms, of the second 10 s.
async fn gateways(db: &Arc<SqliteDb>) -> (Router, Router, String) {
    let client = unique_client();
    db.insert_version(
        &client,
        &event_name("Fruits"),
        SchemaVersion::FIRST,
        &json!({"type": "object"}),
        deadline(),
    )
    .await
    .unwrap();
    let processor = Processor::new(db.clone(), db.clone());
    let hurried = Api::new(processor.clone())
        .request_budget(Duration::from_millis(300))
        .router();
    let patient = Api::new(processor)
        .request_budget(Duration::from_secs(10))
        .router();
    (hurried, patient, format!("/{client}/Fruits/send_event"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ambiguous_send_is_503_publish_unconfirmed_and_its_retry_with_the_key_is_200_with_the_event_logged_once()
 {
    // Given a gateway on a file whose write lock another connection holds,
    let path = db_path();
    let db = SqliteDb::open_with_busy_timeout(&path, Duration::from_secs(30)).unwrap();
    let (hurried, patient, uri) = gateways(&db).await;
    let body = json!({"fruit": "kiwi"});
    let blocker = Blocker::hold(&path);

    // when an event is sent with an Idempotency-Key and 300 ms,
    let first = post_json_with_key(&hurried, &uri, "order-1", &body).await;

    // then the answer says the outcome is unknown, with Retry-After;
    assert_failure(
        &first,
        StatusCode::SERVICE_UNAVAILABLE,
        "publish_unconfirmed",
    );
    assert!(first.headers.contains_key(http::header::RETRY_AFTER));

    // the queued append commits once the lock is free,
    blocker.release();
    let logged = logged_ids_once(&path, 1).await;

    // and the retry with the same key is acknowledged under the id the log already holds,
    // which it holds once (event ids are unique in the log).
    let retry = post_json_with_key(&patient, &uri, "order-1", &body).await;
    assert_eq!(retry.status, StatusCode::OK, "{:?}", retry.body);
    assert_eq!(logged, vec![retry.body["id"].as_str().unwrap().to_owned()]);
    assert_eq!(logged_ids(&path), logged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_queued_behind_the_unconfirmed_append_is_200_and_the_event_is_logged_once() {
    // Given an unconfirmed send whose append waits for the lock another connection holds,
    let path = db_path();
    let db = SqliteDb::open_with_busy_timeout(&path, Duration::from_secs(30)).unwrap();
    let (hurried, patient, uri) = gateways(&db).await;
    let body = json!({"fruit": "kiwi"});
    let blocker = Blocker::hold(&path);
    let first = post_json_with_key(&hurried, &uri, "order-1", &body).await;
    assert_failure(
        &first,
        StatusCode::SERVICE_UNAVAILABLE,
        "publish_unconfirmed",
    );

    // when its retry (same key, same event id) is queued behind it before the lock is freed,
    let retry = tokio::spawn({
        let (patient, uri, body) = (patient.clone(), uri.clone(), body.clone());
        async move { post_json_with_key(&patient, &uri, "order-1", &body).await }
    });
    while db.pending() < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    blocker.release();

    // then the first append commits, the retry's meets its id in the log and is
    // acknowledged, and the log holds the event once.
    let retry = retry.await.unwrap();
    assert_eq!(retry.status, StatusCode::OK, "{:?}", retry.body);
    assert_eq!(
        logged_ids(&path),
        vec![retry.body["id"].as_str().unwrap().to_owned()]
    );
}
