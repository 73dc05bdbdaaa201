//! The embedded default, for real: a SQLite file on disk driven through the same router
//! `serve` mounts. Durability across restarts, gap-free offsets under concurrency, and
//! atomic registration across independent connections (as two processes would have).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use event_processor_core::Processor;
use event_processor_core::adapters::sqlite::{RESTART_FRAMES, SqliteDb};
use event_processor_core::http::Api;
use event_processor_core::ports::{EventSource, SchemaStore, StartAt};
use event_processor_tests::api::{self, LoadOutcome, get, post_json, send_in_rounds};
use event_processor_tests::contract::read_events;
use event_processor_tests::{deadline, event_name, unique_client};
use http::StatusCode;
use serde_json::{Value, json};

fn db_path() -> PathBuf {
    tempfile::tempdir().unwrap().keep().join("gateway.db")
}

fn gateway(db: &Arc<SqliteDb>) -> Router {
    Api::new(Processor::new(db.clone(), db.clone())).router()
}

async fn post(router: &Router, uri: &str, body: &Value) -> (StatusCode, Value) {
    let reply = post_json(router, uri, body).await;
    (reply.status, reply.body)
}

/// (offset, id) of every event of the pair, read straight from the file.
fn offsets(path: &Path, client: &str, event: &str) -> Vec<(i64, String)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut query = conn
        .prepare("SELECT offset, id FROM events WHERE client = ?1 AND event = ?2 ORDER BY offset")
        .unwrap();
    query
        .query_map([client, event], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemas_versions_and_events_survive_a_restart_in_order() {
    let path = db_path();
    let client = unique_client();
    let mut ids = Vec::new();
    {
        let db = SqliteDb::open(&path).unwrap();
        let gw = gateway(&db);
        let (status, _) = post(
            &gw,
            &format!("/{client}/Fruits/register_event"),
            &json!({"required": ["fruit"]}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        for i in 0..10 {
            let (status, body) = post(
                &gw,
                &format!("/{client}/Fruits/send_event"),
                &json!({"fruit": i}),
            )
            .await;
            assert_eq!(status, StatusCode::OK);
            ids.push(body["id"].as_str().unwrap().to_owned());
        }
    } // every handle dropped: the writer thread ends, as at process exit

    let db = SqliteDb::open(&path).unwrap();
    let stored = db
        .get(&client, &event_name("Fruits"), None, deadline())
        .await
        .unwrap()
        .expect("schema kept");
    assert_eq!(stored.schema, json!({"required": ["fruit"]}));
    assert_eq!(stored.version.get(), 1);
    let mut subscription = db
        .subscribe(&client, &event_name("Fruits"), StartAt::Beginning)
        .await
        .unwrap();
    let events = read_events(subscription.as_mut(), 10).await;
    let read_ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    assert_eq!(read_ids, ids);
    assert_eq!(events[9].data, json!({"fruit": 9}));
    // A restarted gateway accepts events for the pair without re-registration.
    let (status, _) = post(
        &gateway(&db),
        &format!("/{client}/Fruits/send_event"),
        &json!({"fruit": 10}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_sends_are_all_committed_with_gap_free_offsets() {
    let path = db_path();
    let db = SqliteDb::open(&path).unwrap();
    let gw = gateway(&db);
    let client = unique_client();
    post(
        &gw,
        &format!("/{client}/Load/register_event"),
        &json!({"type": "object"}),
    )
    .await;

    let sends: Vec<_> = (0..1000)
        .map(|i| {
            let (gw, uri) = (gw.clone(), format!("/{client}/Load/send_event"));
            tokio::spawn(async move { post(&gw, &uri, &json!({"i": i})).await })
        })
        .collect();
    let mut acknowledged = BTreeSet::new();
    for send in sends {
        let (status, body) = send.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        acknowledged.insert(body["id"].as_str().unwrap().to_owned());
    }

    let rows = offsets(&path, client.as_str(), "Load");
    let offsets_seen: Vec<i64> = rows.iter().map(|(offset, _)| *offset).collect();
    assert_eq!(
        offsets_seen,
        (0..1000).collect::<Vec<i64>>(),
        "gap-free, from 0"
    );
    let stored: BTreeSet<String> = rows.into_iter().map(|(_, id)| id).collect();
    assert_eq!(
        stored, acknowledged,
        "every acknowledged event is in the log, and only those"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_different_registrations_from_two_processes_never_share_a_version() {
    let path = db_path();
    // Two independent handles (two connections, two writer threads) on one file, like two
    // gateway processes.
    let (first, second) = (
        SqliteDb::open(&path).unwrap(),
        SqliteDb::open(&path).unwrap(),
    );
    let gateways = [gateway(&first), gateway(&second)];
    let client = unique_client();

    // Schemas that differ only in an annotation are compatible: each must get its own version.
    let attempts: Vec<_> = (0..20)
        .map(|i| {
            let gw = gateways[i % 2].clone();
            let uri = format!("/{client}/Race/register_event");
            tokio::spawn(async move {
                post(&gw, &uri, &json!({"title": format!("contender {i}")})).await
            })
        })
        .collect();
    let mut versions = Vec::new();
    for attempt in attempts {
        let (status, body) = attempt.await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{body}");
        versions.push(body["version"].as_u64().unwrap());
    }

    versions.sort_unstable();
    assert_eq!(versions, (1..=20).collect::<Vec<u64>>());
    let history = first
        .history(&client, &event_name("Race"), deadline())
        .await
        .unwrap();
    let titles: BTreeSet<&str> = history
        .iter()
        .map(|v| v.schema["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        titles.len(),
        20,
        "twenty different schemas in twenty versions"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_locked_past_the_busy_timeout_is_503_and_nothing_is_acknowledged() {
    let path = db_path();
    // A short busy timeout, so the held lock turns into a 503 quickly.
    let db = SqliteDb::open_with_busy_timeout(&path, std::time::Duration::from_millis(50)).unwrap();
    let gw = gateway(&db);
    let client = unique_client();
    post(&gw, &format!("/{client}/Fruits/register_event"), &json!({})).await;
    // Another connection holds the write lock for longer than the busy timeout.
    let blocker = rusqlite::Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();

    let (status, body) = post(
        &gw,
        &format!("/{client}/Fruits/send_event"),
        &json!({"fruit": 1}),
    )
    .await;

    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        !body.to_string().to_lowercase().contains("sqlite"),
        "{body}"
    );
    blocker.execute_batch("ROLLBACK").unwrap();
    assert!(offsets(&path, client.as_str(), "Fruits").is_empty());
    // And the gateway recovers once the lock is gone.
    let (status, _) = post(
        &gw,
        &format!("/{client}/Fruits/send_event"),
        &json!({"fruit": 2}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_waiting_on_the_writer_commit_together_in_one_transaction() {
    let path = db_path();
    let db = SqliteDb::open(&path).unwrap();
    let gw = gateway(&db);
    let client = unique_client();
    post(&gw, &format!("/{client}/Group/register_event"), &json!({})).await;
    // Hold the write lock so that every send queues up behind the writer.
    let blocker = rusqlite::Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let before = db.commits();

    let sends: Vec<_> = (0..100)
        .map(|i| {
            let (gw, uri) = (gw.clone(), format!("/{client}/Group/send_event"));
            tokio::spawn(async move { post(&gw, &uri, &json!({"i": i})).await.0 })
        })
        .collect();
    // Every send is queued behind the blocked writer before the lock is released.
    while db.pending() < 100 {
        tokio::task::yield_now().await;
    }
    blocker.execute_batch("COMMIT").unwrap();
    for send in sends {
        assert_eq!(send.await.unwrap(), StatusCode::OK);
    }

    // The writer was inside its first (single-command) transaction when the rest queued: they
    // all go in the next one. Without grouping this would be 100 commits.
    let commits = db.commits() - before;
    assert!(commits <= 3, "{commits} commits for 100 sends");
    assert_eq!(offsets(&path, client.as_str(), "Group").len(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_with_the_database_intermittently_locked_no_acknowledged_event_is_lost() {
    // Given a gateway whose writer gives up after 20 ms on a lock, and another connection
    // that keeps taking the write lock for 60 ms every 100 ms,
    let path = db_path();
    let db = SqliteDb::open_with_busy_timeout(&path, std::time::Duration::from_millis(20)).unwrap();
    let gw = gateway(&db);
    let client = unique_client();
    post(&gw, &format!("/{client}/Chaos/register_event"), &json!({})).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let locker = {
        let (path, stop) = (path.clone(), stop.clone());
        std::thread::spawn(move || {
            let conn = rusqlite::Connection::open(&path).unwrap();
            let mut faults = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
                faults += 1;
                std::thread::sleep(std::time::Duration::from_millis(60));
                conn.execute_batch("COMMIT").unwrap();
                std::thread::sleep(std::time::Duration::from_millis(40));
            }
            faults
        })
    };

    // when 2,000 events are sent, 50 at a time,
    let LoadOutcome {
        acknowledged,
        refused,
    } = send_in_rounds(&gw, &format!("/{client}/Chaos/send_event"), 40, 50, |_| {}).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let faults = locker.join().unwrap();

    // then every 200 is in the log, nothing refused is, and the offsets have no gap.
    let rows = offsets(&path, client.as_str(), "Chaos");
    let stored: BTreeSet<String> = rows.iter().map(|(_, id)| id.clone()).collect();
    eprintln!(
        "faults injected: {faults} lock holds; acknowledged {}, refused {refused}, found {}, lost {}",
        acknowledged.len(),
        stored.len(),
        acknowledged.difference(&stored).count()
    );
    assert!(
        faults > 0 && refused > 0,
        "the fault must have bitten: {faults} faults, {refused} refusals"
    );
    assert_eq!(stored, acknowledged);
    let offsets_seen: Vec<i64> = rows.iter().map(|(offset, _)| *offset).collect();
    assert_eq!(offsets_seen, (0..rows.len() as i64).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_written_by_the_first_release_is_migrated_and_keeps_its_data() {
    // Given a file exactly as the first release left it: its tables (no `user_version`, no
    // compatibility table), a registered pair and an accepted event,
    let path = db_path();
    let client = unique_client();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(include_str!("../../../fixtures/sqlite-first-release.sql"))
            .unwrap();
        conn.execute(
            "INSERT INTO schemas (client, event, version, schema) VALUES (?1, 'Fruits', 1, ?2)",
            rusqlite::params![client.as_str(), r#"{"type":"object","required":["fruit"]}"#],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO events (client, event, offset, id, time, dataschema, data)
             VALUES (?1, 'Fruits', 0, '0190f0e0-0000-7000-8000-000000000001',
                     '2026-11-01T00:00:00Z', ?2, '{\"fruit\":\"kiwi\"}')",
            rusqlite::params![
                client.as_str(),
                format!("/{client}/Fruits/schema?version=1")
            ],
        )
        .unwrap();
    }

    // when this release opens it,
    let db = SqliteDb::open(&path).unwrap();
    let gw = gateway(&db);

    // then the pair is version 1 with its registration time, its event is still in the log,
    let versions = get(&gw, &format!("/{client}/Fruits/versions")).await;
    assert_eq!(versions.status, StatusCode::OK, "{:?}", versions.body);
    assert_eq!(versions.body["versions"][0]["version"], 1);
    assert_eq!(offsets(&path, client.as_str(), "Fruits").len(), 1);
    // new versions and modes work,
    let (status, body) = post(
        &gw,
        &format!("/{client}/Fruits/register_event"),
        &json!({"type": "object"}),
    )
    .await;
    assert_eq!(
        (status, &body["version"]),
        (StatusCode::CREATED, &json!(2)),
        "{body}"
    );
    let mode = api::call(
        &gw,
        http::Method::PUT,
        &format!("/{client}/Fruits/compatibility"),
        Some(("application/json", r#"{"compatibility":"FULL"}"#.to_owned())),
    )
    .await;
    assert_eq!(mode.status, StatusCode::OK, "{:?}", mode.body);
    // and the file records its migration, so opening it again changes nothing.
    let user_version = |path: &Path| -> i64 {
        rusqlite::Connection::open(path)
            .unwrap()
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap()
    };
    let migrated = user_version(&path);
    assert!(migrated >= 2, "user_version {migrated}");
    drop(gw);
    drop(db);
    let again = SqliteDb::open(&path).unwrap();
    assert_eq!(user_version(&path), migrated);
    assert_eq!(
        again
            .versions(&client, &event_name("Fruits"), deadline())
            .await
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkpointer_moves_the_wal_into_the_database_and_truncates_it_once_idle() {
    let path = db_path();
    let db = SqliteDb::open(&path).unwrap();
    let gw = gateway(&db);
    let client = unique_client();
    post(&gw, &format!("/{client}/Wal/register_event"), &json!({})).await;
    // Enough to pass SQLite's default auto-checkpoint (1,000 pages), which the writer no
    // longer runs inside its commits.
    let batch: Vec<Value> = (0..500)
        .map(|i| json!({"i": i, "pad": "x".repeat(400)}))
        .collect();
    for _ in 0..20 {
        let (status, _) = post(&gw, &format!("/{client}/Wal/send_events"), &json!(batch)).await;
        assert_eq!(status, StatusCode::OK);
    }
    let wal = path.with_extension("db-wal");
    // (On a busy machine the checkpointer may already have run between two batches: the WAL's
    // size now proves nothing; its end state below does.)

    // Idle now: the checkpointer copies the WAL into the database and resets it.
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0) > 0 {
        assert!(
            std::time::Instant::now() < give_up,
            "the WAL was never truncated"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(db.checkpoints() >= 1);
    assert_eq!(offsets(&path, client.as_str(), "Wal").len(), 10_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_of_a_database_written_without_pause_stays_bounded() {
    // Given a writer that never pauses long enough for an idle TRUNCATE (PASSIVE checkpoints
    // alone never catch up with it, and the WAL used to grow by every commit's pages),
    let path = db_path();
    let db = SqliteDb::open(&path).unwrap();
    let gw = gateway(&db);
    let client = unique_client();
    post(&gw, &format!("/{client}/Wal/register_event"), &json!({})).await;
    let batch: Vec<Value> = (0..100)
        .map(|i| json!({"i": i, "pad": "x".repeat(3000)}))
        .collect();
    let wal = path.with_extension("db-wal");
    let wal_size = move || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);

    // and another connection reads the log back to back all along, as `listen` does (so a
    // restart always has readers to get past),
    let reading = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let reader = {
        let (path, reading, client) = (path.clone(), reading.clone(), client.to_string());
        std::thread::spawn(move || {
            let conn = rusqlite::Connection::open(&path).unwrap();
            let mut latest = conn
                .prepare(
                    "SELECT count(*) FROM (SELECT data FROM events WHERE client = ?1
                     AND event = 'Wal' ORDER BY offset DESC LIMIT 100)",
                )
                .unwrap();
            let mut reads = 0_u64;
            while reading.load(std::sync::atomic::Ordering::Relaxed) {
                latest
                    .query_row([&client], |row| row.get::<_, i64>(0))
                    .unwrap();
                reads += 1;
            }
            reads
        })
    };

    // when eight producers write several times the restart threshold's worth of events (so
    // that a commit is always queued behind the one in progress),
    let page = 4096;
    let bound = u64::try_from(RESTART_FRAMES).unwrap() * page;
    let (producers, batches) = (8, 40); // 100 events of ~3 KB each: ~96 MB, six times the bound
    let largest = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let writers: Vec<_> = (0..producers)
        .map(|_| {
            let (gw, uri, batch) = (
                gw.clone(),
                format!("/{client}/Wal/send_events"),
                batch.clone(),
            );
            let (largest, wal_size) = (largest.clone(), wal_size.clone());
            tokio::spawn(async move {
                for _ in 0..batches {
                    let (status, _) = post(&gw, &uri, &json!(batch)).await;
                    assert_eq!(status, StatusCode::OK);
                    largest.fetch_max(wal_size(), std::sync::atomic::Ordering::Relaxed);
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let largest = largest.load(std::sync::atomic::Ordering::Relaxed);
    reading.store(false, std::sync::atomic::Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0, "the reader never read");

    // then the WAL file never grew much past the threshold (a checkpointer round of writes
    // past it at most), and every event is in the log.
    assert!(
        largest <= 3 * bound,
        "the WAL reached {largest} bytes; the restart threshold is {bound}"
    );
    assert!(db.checkpoints() >= 2);
    assert_eq!(
        offsets(&path, client.as_str(), "Wal").len(),
        100 * producers * batches
    );
}
