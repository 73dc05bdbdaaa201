//! The WAL checkpointer: copies committed WAL frames into the database file on a thread of its
//! own, so that no acknowledgement waits for that copy (only, a few times a second under full
//! load, for the short RESTART below).
//!
//! By default SQLite checkpoints inside the commit that pushes the WAL past 1,000 pages: that
//! commit writes and fsyncs the database file while every send queued behind it waits, which
//! is where the durable default's tail latency came from (BENCHMARKS.md). The writer therefore
//! runs with `wal_autocheckpoint=0` and this thread does the work: a PASSIVE checkpoint (it
//! never blocks the writer or readers) whenever commits happened since the last one, and a
//! TRUNCATE once the database has been idle, which resets the WAL file to zero bytes.
//!
//! A PASSIVE checkpoint never catches up with a writer that does not pause: the frames
//! appended while it copies are always left, so SQLite never starts the WAL over and the file
//! grows without bound (324 MB after 12 s of load, measured). Once the WAL holds more than
//! [`RESTART_FRAMES`], a RESTART checkpoint follows the PASSIVE one: it copies the few frames
//! the PASSIVE left, and the next commit writes the WAL from its start again, over blocks
//! already allocated. `journal_size_limit` bounds what the file keeps on disk after that.
//!
//! The RESTART holds the write lock, so it runs on the writer's thread, between two groups,
//! when this thread asks for it: the sends queued meanwhile wait for those few frames, a few
//! times a second at most under full load. It never waits for a lock there (a reader still on
//! the WAL makes it give up until the next ask). Run from this thread, it made the writer's
//! next `BEGIN IMMEDIATE` find the lock taken, and SQLite's busy handler sleeps in steps of up
//! to 100 ms before it looks again, while the RESTART, holding the lock, could itself wait in
//! its busy handler for readers: sends waited up to 131 ms (BENCHMARKS.md).

use std::sync::Weak;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::Connection;

/// How often the checkpointer looks at the commit counter.
pub(super) const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(200);

/// Bytes a WAL file keeps on disk after a checkpoint reset it (SQLite truncates to this).
pub(super) const JOURNAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// WAL frames (pages; 16 MiB at SQLite's 4 KiB default) past which the WAL is started over.
pub const RESTART_FRAMES: i64 = 4096;

/// Runs until the database handle that owns `commits` is dropped.
pub(super) fn run(
    conn: Connection,
    commits: Weak<AtomicU64>,
    checkpoints: Weak<AtomicU64>,
    restart: Weak<AtomicBool>,
) {
    let mut seen = 0;
    let mut truncated = true;
    loop {
        std::thread::sleep(CHECKPOINT_INTERVAL);
        let (Some(commits), Some(checkpoints), Some(restart)) =
            (commits.upgrade(), checkpoints.upgrade(), restart.upgrade())
        else {
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
        let Some(frames) = checkpoint(&conn, mode) else {
            truncated = false;
            continue;
        };
        checkpoints.fetch_add(1, Ordering::Relaxed);
        match mode {
            "PASSIVE" if frames > RESTART_FRAMES => restart.store(true, Ordering::Relaxed),
            // The WAL is empty now: a restart asked for before is done.
            "TRUNCATE" => restart.store(false, Ordering::Relaxed),
            _ => {}
        }
    }
}

/// One checkpoint: the WAL's size in frames when it completed, or `None` when it could not
/// (a busy database — another process's writer or reader — only delays it to the next round;
/// nothing is lost by skipping one).
pub(super) fn checkpoint(conn: &Connection, mode: &str) -> Option<i64> {
    match conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
    }) {
        Ok((0, frames)) => Some(frames),
        Ok(_) => None,
        Err(error) => {
            tracing::debug!(%error, mode, "WAL checkpoint skipped");
            None
        }
    }
}
