//! The WAL checkpointer: copies committed WAL frames into the database file on a thread of its
//! own, so that no acknowledgement waits for it.
//!
//! By default SQLite checkpoints inside the commit that pushes the WAL past 1,000 pages: that
//! commit writes and fsyncs the database file while every send queued behind it waits, which
//! is where the durable default's tail latency came from (BENCHMARKS.md). The writer therefore
//! runs with `wal_autocheckpoint=0` and this thread does the work: a PASSIVE checkpoint (it
//! never blocks the writer or readers) whenever commits happened since the last one, and a
//! TRUNCATE once the database has been idle, which resets the WAL file to zero bytes.
//! `journal_size_limit` bounds what a WAL left over between the two keeps on disk.

use std::path::PathBuf;
use std::sync::Weak;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::Connection;

/// How often the checkpointer looks at the commit counter.
pub(super) const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(200);

/// Bytes a WAL file keeps on disk after a checkpoint reset it (SQLite truncates to this).
pub(super) const JOURNAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// Runs until the database handle that owns `commits` is dropped.
pub(super) fn run(
    path: PathBuf,
    conn: Connection,
    commits: Weak<AtomicU64>,
    checkpoints: Weak<AtomicU64>,
) {
    let mut seen = 0;
    let mut truncated = true;
    loop {
        std::thread::sleep(CHECKPOINT_INTERVAL);
        let (Some(commits), Some(checkpoints)) = (commits.upgrade(), checkpoints.upgrade()) else {
            return;
        };
        let now = commits.load(Ordering::Relaxed);
        let mode = if now != seen {
            seen = now;
            truncated = false;
            "PASSIVE"
        } else if !truncated {
            truncated = true;
            "TRUNCATE"
        } else {
            continue;
        };
        // A busy database (another process's writer or reader) only delays the checkpoint to
        // the next round; nothing is lost by skipping one.
        match conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
            row.get::<_, i64>(0)
        }) {
            Ok(0) => {
                checkpoints.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => truncated = false,
            Err(error) => {
                tracing::debug!(%error, path = %path.display(), mode, "WAL checkpoint skipped");
                truncated = false;
            }
        }
    }
}
