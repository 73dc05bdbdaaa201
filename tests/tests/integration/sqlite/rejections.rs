//! Rejections in a SQLite file: retention by TTL and by the per-pair cap (checked in the file
//! itself, not only through reads), exact round trip of any text, failures as errors, and the
//! migration of a file of the previous release.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use event_processor_core::adapters::sqlite::SqliteDb;
use event_processor_core::domain::{ClientId, EventId, EventName, Fingerprint, IdempotencyKey};
// The only port trait in scope: `SqliteDb` has the schema store's `get` and `list` too.
use event_processor_core::ports::{
    self, Begin, MAX_REJECTIONS_PER_PAIR, Rejection, RejectionStore, StoreError,
};
use event_processor_core::schema::ValidationIssue;
use event_processor_tests::contract::rejections::rejection;
use event_processor_tests::{deadline, event_name, unique_client};

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

fn db_path() -> PathBuf {
    // Leaked on purpose: writer threads keep the file open past the test.
    tempfile::tempdir().unwrap().keep().join("rejections.db")
}

fn pair() -> (ClientId, EventName) {
    (unique_client(), event_name("Fruits"))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A UUID v7 of Unix millisecond `ms`; `seq` orders ids of one millisecond.
fn id_at(ms: u64, seq: u64) -> EventId {
    EventId::parse(&format!(
        "{:08x}-{:04x}-7000-8000-{seq:012x}",
        ms >> 16,
        ms & 0xffff
    ))
    .unwrap()
}

/// A rejection of the pair received at Unix millisecond `ms`.
fn received_at(client: &ClientId, event: &EventName, ms: u64, seq: u64) -> Rejection {
    Rejection {
        id: id_at(ms, seq),
        ..rejection(client, event, &format!("{{\"seq\": {seq}}}"))
    }
}

/// The ids of the pair's rows in the file, oldest first, whatever their age.
fn stored(path: &Path, client: &ClientId, event: &EventName) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut query = conn
        .prepare("SELECT id FROM rejections WHERE client = ?1 AND event = ?2 ORDER BY id")
        .unwrap();
    query
        .query_map([client.as_str(), event.as_str()], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn ids(rejections: &[&Rejection]) -> Vec<String> {
    rejections.iter().map(|r| r.id.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejections_older_than_the_ttl_are_purged_by_the_next_keep_of_their_pair() {
    // Given rejections received 8 and 6 days ago, kept by a store that keeps them 30 days,
    let path = db_path();
    let (client, event) = pair();
    let now = now_ms();
    let eight_days = received_at(&client, &event, now - 8 * DAY_MS, 1);
    let six_days = received_at(&client, &event, now - 6 * DAY_MS, 1);
    let long = SqliteDb::open(&path)
        .unwrap()
        .with_rejections_ttl(Duration::from_secs(30 * 24 * 60 * 60));
    long.keep(&[eight_days.clone(), six_days.clone()], deadline())
        .await
        .unwrap();
    assert_eq!(stored(&path, &client, &event).len(), 2);

    // when a store with the default 7 days keeps a new rejection of the pair,
    let db = SqliteDb::open(&path).unwrap();
    let fresh = rejection(&client, &event, "{}");
    db.keep(std::slice::from_ref(&fresh), deadline())
        .await
        .unwrap();

    // then the one past 7 days is gone from the file, the others are kept.
    assert_eq!(stored(&path, &client, &event), ids(&[&six_days, &fresh]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_never_show_rejections_older_than_the_ttl() {
    // Given a rejection received two days ago and a fresh one, both in the file,
    let path = db_path();
    let (client, event) = pair();
    let old = received_at(&client, &event, now_ms() - 2 * DAY_MS, 1);
    let fresh = rejection(&client, &event, "{}");
    let db = SqliteDb::open(&path).unwrap();
    db.keep(&[old.clone(), fresh.clone()], deadline())
        .await
        .unwrap();

    // when a store that keeps rejections one day reads them,
    let short = SqliteDb::open(&path)
        .unwrap()
        .with_rejections_ttl(Duration::from_secs(24 * 60 * 60));
    let listed = short
        .list(&client, &event, 10, None, deadline())
        .await
        .unwrap();
    let got_old = short
        .get(&client, &event, old.id, deadline())
        .await
        .unwrap();
    let before_fresh = short
        .list(&client, &event, 10, Some(fresh.id), deadline())
        .await
        .unwrap();

    // then it never returns the old one, though it is still in the file until the next keep.
    assert_eq!(listed, vec![fresh]);
    assert_eq!(got_old, None);
    assert!(before_fresh.is_empty(), "{before_fresh:?}");
    assert_eq!(stored(&path, &client, &event).len(), 2);
    assert_eq!(
        db.get(&client, &event, old.id, deadline()).await.unwrap(),
        Some(old)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_keeps_only_its_newest_rejections_beyond_the_cap() {
    // Given more rejections of one pair than the cap, in one request, and one of another pair,
    let path = db_path();
    let db = SqliteDb::open(&path).unwrap();
    let (client, event) = pair();
    let other = event_name("Colors");
    let now = now_ms();
    let mut flood: Vec<Rejection> = (0..MAX_REJECTIONS_PER_PAIR as u64 + 5)
        .map(|seq| received_at(&client, &event, now, seq))
        .collect();
    let neighbour = received_at(&client, &other, now, 0);
    let mut request = flood.clone();
    request.push(neighbour.clone());

    // when they are kept, and then one more,
    db.keep(&request, deadline()).await.unwrap();
    let after_flood = stored(&path, &client, &event);
    let one_more = received_at(&client, &event, now, flood.len() as u64);
    db.keep(std::slice::from_ref(&one_more), deadline())
        .await
        .unwrap();
    flood.push(one_more);

    // then the file holds the newest MAX_REJECTIONS_PER_PAIR of the pair each time, and the
    // other pair's rejection is untouched.
    let newest = |rejections: &[Rejection]| {
        ids(&rejections[rejections.len() - MAX_REJECTIONS_PER_PAIR..]
            .iter()
            .collect::<Vec<_>>())
    };
    assert_eq!(after_flood, newest(&flood[..flood.len() - 1]));
    assert_eq!(stored(&path, &client, &event), newest(&flood));
    assert_eq!(stored(&path, &client, &other), ids(&[&neighbour]));
    let listed = db
        .list(
            &client,
            &event,
            MAX_REJECTIONS_PER_PAIR + 10,
            None,
            deadline(),
        )
        .await
        .unwrap();
    assert_eq!(listed.len(), MAX_REJECTIONS_PER_PAIR);
    assert_eq!(listed.first(), flood.last());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_with_nul_and_characters_beyond_the_bmp_round_trips_exactly() {
    // Given a rejection whose data and messages hold U+0000, astral characters and U+10FFFF,
    let path = db_path();
    let db = SqliteDb::open(&path).unwrap();
    let (client, event) = pair();
    let data = "{\"a\":\"\u{0}\"}\u{0}trailing \u{1F600} \u{10FFFF} \u{FEFF}é\u{0}";
    let kept = Rejection {
        errors: vec![ValidationIssue {
            instance_path: "/a\u{0}".to_owned(),
            schema_path: "/properties/a\u{1F600}/type".to_owned(),
            keyword: "type".to_owned(),
            message: "\"\u{0}\" is not of type \"integer\"".to_owned(),
        }],
        request_id: Some("req-\u{1F600}".to_owned()),
        ..rejection(&client, &event, data)
    };

    // when it is kept and read back,
    db.keep(std::slice::from_ref(&kept), deadline())
        .await
        .unwrap();
    let got = db.get(&client, &event, kept.id, deadline()).await.unwrap();
    let listed = db
        .list(&client, &event, 10, None, deadline())
        .await
        .unwrap();

    // then every byte is back, and the file holds all of them.
    assert_eq!(got.as_ref(), Some(&kept));
    assert_eq!(listed, vec![kept.clone()]);
    let length: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row(
            "SELECT length(data) FROM rejections WHERE id = ?1",
            [kept.id.to_string()],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(length, data.len() as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_on_a_database_locked_past_the_busy_timeout_is_an_error_and_recovers() {
    // Given a store that waits 50 ms for a lock, and another connection holding it,
    let path = db_path();
    let db = SqliteDb::open_with_busy_timeout(&path, Duration::from_millis(50)).unwrap();
    let (client, event) = pair();
    let blocker = rusqlite::Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();

    // when a rejection is kept and a replay marked,
    let kept = rejection(&client, &event, "{}");
    let keep = db.keep(std::slice::from_ref(&kept), deadline()).await;
    let mark = db
        .mark_replayed(
            &client,
            &event,
            kept.id,
            event_processor_core::domain::SchemaVersion::FIRST,
            deadline(),
        )
        .await;

    // then both are errors (nothing kept), and once the lock is gone keeping works again.
    assert!(matches!(keep, Err(StoreError::Unavailable(_))), "{keep:?}");
    assert!(matches!(mark, Err(StoreError::Unavailable(_))), "{mark:?}");
    blocker.execute_batch("ROLLBACK").unwrap();
    assert!(stored(&path, &client, &event).is_empty());
    db.keep(std::slice::from_ref(&kept), deadline())
        .await
        .unwrap();
    assert_eq!(
        db.list(&client, &event, 10, None, deadline())
            .await
            .unwrap(),
        vec![kept]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_edited_rejection_is_reported_corrupt_not_a_panic() {
    // Given kept rejections, one edited to errors that are not JSON, one to data not UTF-8,
    let path = db_path();
    let db = SqliteDb::open(&path).unwrap();
    let (client, event) = pair();
    let bad_errors = rejection(&client, &event, "{}");
    let bad_data = rejection(&client, &event, "{}");
    db.keep(&[bad_errors.clone(), bad_data.clone()], deadline())
        .await
        .unwrap();
    let edit = rusqlite::Connection::open(&path).unwrap();
    edit.execute(
        "UPDATE rejections SET errors = 'not json' WHERE id = ?1",
        [bad_errors.id.to_string()],
    )
    .unwrap();
    edit.execute(
        "UPDATE rejections SET data = x'ff00' WHERE id = ?1",
        [bad_data.id.to_string()],
    )
    .unwrap();

    // when they are read,
    let by_errors = db.get(&client, &event, bad_errors.id, deadline()).await;
    let by_data = db.get(&client, &event, bad_data.id, deadline()).await;
    let listed = db.list(&client, &event, 10, None, deadline()).await;

    // then each read is a Corrupt error.
    assert!(
        matches!(by_errors, Err(StoreError::Corrupt(_))),
        "{by_errors:?}"
    );
    assert!(
        matches!(by_data, Err(StoreError::Corrupt(_))),
        "{by_data:?}"
    );
    assert!(matches!(listed, Err(StoreError::Corrupt(_))), "{listed:?}");
}

/// Step 2 of the migrations as released: a file at `user_version` 2 has exactly these tables.
const SECOND_RELEASE: &str = "
CREATE TABLE IF NOT EXISTS compatibility (
    client TEXT NOT NULL,
    event  TEXT NOT NULL,
    mode   TEXT NOT NULL,
    PRIMARY KEY (client, event)
) WITHOUT ROWID;
PRAGMA user_version = 2;
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_of_the_previous_release_is_migrated_to_keep_rejections_and_keys() {
    // Given a file as the previous release left it (user_version 2) with a registered pair,
    let path = db_path();
    let (client, event) = pair();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(include_str!("../../../fixtures/sqlite-first-release.sql"))
            .unwrap();
        conn.execute_batch(SECOND_RELEASE).unwrap();
        conn.execute(
            "INSERT INTO schemas (client, event, version, schema) VALUES (?1, ?2, 1, '{}')",
            [client.as_str(), event.as_str()],
        )
        .unwrap();
    }

    // when this release opens it,
    let db = SqliteDb::open(&path).unwrap();

    // then its schema is still there, rejections and idempotency keys work,
    assert_eq!(
        ports::SchemaStore::versions(db.as_ref(), &client, &event, deadline())
            .await
            .unwrap()
            .len(),
        1
    );
    let kept = rejection(&client, &event, "{}");
    db.keep(std::slice::from_ref(&kept), deadline())
        .await
        .unwrap();
    assert_eq!(
        db.list(&client, &event, 10, None, deadline())
            .await
            .unwrap(),
        vec![kept]
    );
    let key = IdempotencyKey::parse(b"k").unwrap();
    let begun = ports::IdempotencyStore::begin(
        db.as_ref(),
        &client,
        &event,
        &key,
        Fingerprint::of("send_event", b"{}", None),
        &[EventId::new()],
        SystemTime::now() + Duration::from_secs(30),
        deadline(),
    )
    .await
    .unwrap();
    assert_eq!(begun, Begin::Started);

    // and the file records the migration, so opening it again changes nothing.
    let user_version = |path: &Path| -> i64 {
        rusqlite::Connection::open(path)
            .unwrap()
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap()
    };
    let migrated = user_version(&path);
    assert!(migrated >= 3, "user_version {migrated}");
    drop(db);
    let again: Arc<SqliteDb> = SqliteDb::open(&path).unwrap();
    assert_eq!(user_version(&path), migrated);
    assert_eq!(
        again
            .list(&client, &event, 10, None, deadline())
            .await
            .unwrap()
            .len(),
        1
    );
}

/// Step 3 of the migrations as released: rejections and idempotency keys, before rejections
/// were numbered per pair.
const THIRD_RELEASE: &str = "
CREATE TABLE rejections (
    client      TEXT    NOT NULL,
    event       TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    version     INTEGER CHECK (version >= 1),
    received_at TEXT    NOT NULL,
    request_id  TEXT,
    error       TEXT    NOT NULL,
    errors      TEXT    NOT NULL,
    data        BLOB    NOT NULL,
    truncated   INTEGER NOT NULL CHECK (truncated IN (0, 1)),
    replayed    INTEGER CHECK (replayed >= 1),
    PRIMARY KEY (client, event, id)
) WITHOUT ROWID;
CREATE TABLE idempotency (
    client      TEXT    NOT NULL,
    event       TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    fingerprint BLOB    NOT NULL,
    event_ids   TEXT    NOT NULL,
    status      INTEGER,
    body        BLOB,
    lease_until INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (client, event, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_expiry ON idempotency (expires_at);
PRAGMA user_version = 3;
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejections_kept_before_numbering_are_numbered_in_id_order_and_trimmed_after_it() {
    // Given a file at user_version 3 holding three rejections of a pair, written out of order,
    let path = db_path();
    let (client, event) = pair();
    let now = now_ms();
    let old: Vec<Rejection> = (0..3)
        .map(|seq| received_at(&client, &event, now, seq))
        .collect();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(include_str!("../../../fixtures/sqlite-first-release.sql"))
            .unwrap();
        conn.execute_batch(SECOND_RELEASE).unwrap();
        conn.execute_batch(THIRD_RELEASE).unwrap();
        for rejection in [&old[2], &old[0], &old[1]] {
            conn.execute(
                "INSERT INTO rejections (client, event, id, received_at, error, errors, data,
                                         truncated)
                 VALUES (?1, ?2, ?3, '2026-01-01T00:00:00Z', 'e', '[]', CAST('{}' AS BLOB), 0)",
                [client.as_str(), event.as_str(), &rejection.id.to_string()],
            )
            .unwrap();
        }
    }

    // when this release opens it and keeps one more,
    let db = SqliteDb::open(&path).unwrap();
    let newer = received_at(&client, &event, now, 3);
    db.keep(std::slice::from_ref(&newer), deadline())
        .await
        .unwrap();

    // then the old rows are numbered 1, 2, 3 in id order, the new one 4, and the pair's count
    // is 4, so the next trims cut the oldest first.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let numbered: Vec<(String, i64)> = conn
        .prepare("SELECT id, seq FROM rejections WHERE client = ?1 AND event = ?2 ORDER BY seq")
        .unwrap()
        .query_map([client.as_str(), event.as_str()], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let expected: Vec<(String, i64)> = old
        .iter()
        .chain([&newer])
        .zip(1..)
        .map(|(rejection, seq)| (rejection.id.to_string(), seq))
        .collect();
    assert_eq!(numbered, expected);
    let kept: i64 = conn
        .query_row(
            "SELECT kept FROM rejection_pairs WHERE client = ?1 AND event = ?2",
            [client.as_str(), event.as_str()],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(kept, 4);
}
