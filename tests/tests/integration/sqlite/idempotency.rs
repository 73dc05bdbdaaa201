//! Idempotency keys in a SQLite file, across handles with writer threads of their own (as two
//! `serve` processes on one file would have): one winner per key, answers kept byte for byte
//! across processes and restarts, expired keys forgotten and purged, a corrupt key failing
//! alone.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use event_processor_core::adapters::sqlite::SqliteDb;
use event_processor_core::domain::{ClientId, EventId, EventName, Fingerprint, IdempotencyKey};
// The only port traits in scope: `SqliteDb` has the schema store's `get` and `list` too.
use event_processor_core::ports::{
    Begin, IdempotencyStore, KeptAnswer, RejectionStore, StoreError,
};
use event_processor_tests::contract::rejections::rejection;
use event_processor_tests::{deadline, event_name, unique_client};

fn db_path() -> PathBuf {
    // Leaked on purpose: writer threads keep the file open past the test.
    tempfile::tempdir().unwrap().keep().join("idempotency.db")
}

fn pair() -> (ClientId, EventName) {
    (unique_client(), event_name("Fruits"))
}

fn key(raw: &str) -> IdempotencyKey {
    IdempotencyKey::parse(raw.as_bytes()).unwrap()
}

fn lease() -> SystemTime {
    SystemTime::now() + Duration::from_secs(30)
}

/// Begins `key` of the pair with `print` and fresh event ids.
async fn begin(
    store: &dyn IdempotencyStore,
    (client, event): &(ClientId, EventName),
    key: &IdempotencyKey,
    print: Fingerprint,
) -> Begin {
    store
        .begin(
            client,
            event,
            key,
            print,
            &[EventId::new()],
            lease(),
            deadline(),
        )
        .await
        .unwrap()
}

/// (key, expires_at) of every record of the file, by key.
fn records(path: &Path) -> Vec<(String, i64)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut query = conn
        .prepare("SELECT key, expires_at FROM idempotency ORDER BY key")
        .unwrap();
    query
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_begins_from_two_processes_have_exactly_one_winner() {
    // Given two handles on one file, each with its own writer thread and connections,
    let path = db_path();
    let processes = [
        SqliteDb::open(&path).unwrap(),
        SqliteDb::open(&path).unwrap(),
    ];
    let slot = pair();
    let print = Fingerprint::of("send_event", b"[1]", None);

    // when twenty requests with one key begin at once, alternating between them,
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = processes[i % 2].clone();
            let slot = slot.clone();
            tokio::spawn(async move { begin(store.as_ref(), &slot, &key("k"), print).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }

    // then exactly one runs and the others find it in progress.
    let started = outcomes.iter().filter(|o| **o == Begin::Started).count();
    let in_progress = outcomes.iter().filter(|o| **o == Begin::InProgress).count();
    assert_eq!((started, in_progress), (1, 19), "{outcomes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_kept_by_one_process_is_given_byte_for_byte_by_another_and_after_a_restart() {
    // Given a request begun and completed in one process, with a body of arbitrary bytes,
    let path = db_path();
    let (first, second) = (
        SqliteDb::open(&path).unwrap(),
        SqliteDb::open(&path).unwrap(),
    );
    let slot = pair();
    let print = Fingerprint::of("send_event", b"[1,2]", None);
    let answer = KeptAnswer {
        status: 207,
        body: b"{\"a\":\"\x00\"}\xff\xfe\x00".to_vec(),
    };
    assert_eq!(
        begin(first.as_ref(), &slot, &key("k"), print).await,
        Begin::Started
    );
    first
        .complete(&slot.0, &slot.1, &key("k"), &answer, deadline())
        .await
        .unwrap();

    // when the same request comes to the other process, and after both restarted,
    let elsewhere = begin(second.as_ref(), &slot, &key("k"), print).await;
    drop((first, second));
    let restarted = SqliteDb::open(&path).unwrap();
    let later = begin(restarted.as_ref(), &slot, &key("k"), print).await;
    let reused = begin(
        restarted.as_ref(),
        &slot,
        &key("k"),
        Fingerprint::of("send_event", b"[1,3]", None),
    )
    .await;

    // then each gets the kept answer, and another request with the key is refused.
    assert_eq!(elsewhere, Begin::Completed(answer.clone()));
    assert_eq!(later, Begin::Completed(answer));
    assert_eq!(reused, Begin::Reused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_that_ran_out_in_one_process_is_resumed_by_another_with_its_event_ids() {
    // Given a request whose process stopped holding the key until a time now past,
    let path = db_path();
    let (first, second) = (
        SqliteDb::open(&path).unwrap(),
        SqliteDb::open(&path).unwrap(),
    );
    let (client, event) = pair();
    let print = Fingerprint::of("send_event", b"[1,2]", None);
    let first_ids = vec![EventId::new(), EventId::new()];
    first
        .begin(
            &client,
            &event,
            &key("k"),
            print,
            &first_ids,
            SystemTime::now() - Duration::from_secs(1),
            deadline(),
        )
        .await
        .unwrap();

    // when its retry comes to the other process, and another one at once,
    let retry = begin(
        second.as_ref(),
        &(client.clone(), event.clone()),
        &key("k"),
        print,
    )
    .await;
    let concurrent = begin(first.as_ref(), &(client, event), &key("k"), print).await;

    // then the retry runs under the first request's ids, and holds the key.
    assert_eq!(
        retry,
        Begin::Resumed {
            event_ids: first_ids
        }
    );
    assert_eq!(concurrent, Begin::InProgress);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_keys_are_forgotten_and_purged_by_a_later_begin() {
    // Given a completed key and two others whose retention ended (as 24 hours later), and a
    // key still held,
    let path = db_path();
    let db = SqliteDb::open(&path).unwrap();
    let slot = pair();
    let print = Fingerprint::of("send_event", b"{}", None);
    for name in ["done", "gone-1", "gone-2", "held"] {
        assert_eq!(
            begin(db.as_ref(), &slot, &key(name), print).await,
            Begin::Started
        );
    }
    db.complete(
        &slot.0,
        &slot.1,
        &key("done"),
        &KeptAnswer {
            status: 200,
            body: b"{}".to_vec(),
        },
        deadline(),
    )
    .await
    .unwrap();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "UPDATE idempotency SET expires_at = 1 WHERE key IN ('done', 'gone-1', 'gone-2')",
            [],
        )
        .unwrap();

    // when the completed key comes again with another request,
    let again = begin(
        db.as_ref(),
        &slot,
        &key("done"),
        Fingerprint::of("send_event", b"[]", None),
    )
    .await;

    // then it is a new request, and the expired records are gone from the file.
    assert_eq!(again, Begin::Started);
    let keys: Vec<String> = records(&path).into_iter().map(|(key, _)| key).collect();
    assert_eq!(keys, ["done", "held"]);
    assert!(records(&path).iter().all(|(_, expires_at)| *expires_at > 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_key_fails_its_own_begin_and_not_the_writes_committed_with_it() {
    // Given a key whose record was edited to an unreadable fingerprint,
    let path = db_path();
    let db = SqliteDb::open(&path).unwrap();
    let slot = pair();
    let print = Fingerprint::of("send_event", b"{}", None);
    assert_eq!(
        begin(db.as_ref(), &slot, &key("k"), print).await,
        Begin::Started
    );
    let edit = rusqlite::Connection::open(&path).unwrap();
    edit.execute("UPDATE idempotency SET fingerprint = x'00'", [])
        .unwrap();

    // when its begin and a keep are queued together behind another connection's lock (the
    // writer holds a first keep while it waits, so the two share its next transaction),
    edit.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let waiting = {
        let db = db.clone();
        let first = rejection(&slot.0, &slot.1, "1");
        tokio::spawn(async move { db.keep(&[first], deadline()).await })
    };
    while db.pending() < 1 {
        tokio::task::yield_now().await;
    }
    let corrupt = {
        let (db, slot) = (db.clone(), slot.clone());
        tokio::spawn(async move {
            db.begin(&slot.0, &slot.1, &key("k"), print, &[], lease(), deadline())
                .await
        })
    };
    let kept = rejection(&slot.0, &slot.1, "2");
    let keep = {
        let (db, kept) = (db.clone(), kept.clone());
        tokio::spawn(async move { db.keep(&[kept], deadline()).await })
    };
    while db.pending() < 3 {
        tokio::task::yield_now().await;
    }
    edit.execute_batch("COMMIT").unwrap();

    // then the begin is a Corrupt error, and the keep beside it is committed.
    waiting.await.unwrap().unwrap();
    let begun = corrupt.await.unwrap();
    assert!(matches!(begun, Err(StoreError::Corrupt(_))), "{begun:?}");
    keep.await.unwrap().unwrap();
    assert_eq!(
        db.get(&slot.0, &slot.1, kept.id, deadline()).await.unwrap(),
        Some(kept)
    );
}
