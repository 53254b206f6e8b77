//! The one write connection: its thread, its queue and group commit.

use super::BUSY_TIMEOUT;
use super::MAX_BATCH;
use crate::store::StoreError;
use rusqlite::Connection;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use tokio::sync::oneshot;

/// Counters of the writer, for tests and metrics.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Transactions committed.
    pub commits: AtomicU64,
    /// Writes executed (successful or not).
    pub writes: AtomicU64,
    /// Largest number of writes seen in one transaction.
    pub max_batch: AtomicU64,
}

pub(super) fn configure_writer(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // journal_mode answers with a row, so it is read rather than executed.
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "journal_mode is {mode}, WAL required"
        )));
    }
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")?;
    Ok(())
}

/// A queued write with its reply channel, type-erased so one queue carries
/// writes of every result type.
pub(super) trait WriteJob: Send {
    /// Runs the write; true when it succeeded (its savepoint is kept).
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller once the batch's fate is known.
    fn finish(self: Box<Self>, commit: Result<(), &str>);
}

struct TypedJob<R, F> {
    f: Option<F>,
    result: Option<Result<R, StoreError>>,
    reply: oneshot::Sender<Result<R, StoreError>>,
}

/// A write to queue, and where its result arrives once its batch is
/// committed (or has failed).
pub(super) fn job<R, F>(f: F) -> (Box<dyn WriteJob>, oneshot::Receiver<Result<R, StoreError>>)
where
    R: Send + 'static,
    F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
{
    let (reply, rx) = oneshot::channel();
    let job = TypedJob {
        f: Some(f),
        result: None,
        reply,
    };
    (Box::new(job), rx)
}

impl<R, F> WriteJob for TypedJob<R, F>
where
    R: Send + 'static,
    F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(f) = self.f.take() else {
            return false;
        };
        // A panicking write must not take the writer thread (and with it
        // every later write) down.
        let result = catch_unwind(AssertUnwindSafe(|| f(conn)))
            .unwrap_or_else(|_| Err(StoreError::Unavailable("store write panicked".into())));
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, commit: Result<(), &str>) {
        let answer = match (self.result, commit) {
            // The write's own failure stands whatever happened to the batch.
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(r)), Ok(())) => Ok(r),
            (_, Err(msg)) => Err(StoreError::Unavailable(msg.to_string())),
            (None, Ok(())) => Err(StoreError::Unavailable("write was not run".into())),
        };
        let _ = self.reply.send(answer);
    }
}

pub(super) fn writer_loop(
    conn: Connection,
    rx: mpsc::Receiver<Box<dyn WriteJob>>,
    stats: &WriterStats,
) {
    // Blocks for the first write, then takes whatever else queued up while
    // the previous COMMIT was syncing: that is the group commit.
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run_batch(&conn, batch, stats);
    }
}

pub(super) fn run_batch(conn: &Connection, mut batch: Vec<Box<dyn WriteJob>>, stats: &WriterStats) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let msg = format!("cannot begin a transaction: {e}");
        for job in batch {
            job.finish(Err(&msg));
        }
        return;
    }
    for job in batch.iter_mut() {
        stats.writes.fetch_add(1, Ordering::Relaxed);
        if conn.execute_batch("SAVEPOINT w").is_err() {
            continue; // the job was not run; it is answered with the batch
        }
        let ok = job.run(conn);
        let closed = if ok {
            conn.execute_batch("RELEASE w")
        } else {
            conn.execute_batch("ROLLBACK TO w; RELEASE w")
        };
        if let Err(e) = closed {
            // The transaction is in an unknown state: give up the batch.
            tracing::error!(error = %e, "store savepoint failed; rolling back the batch");
            let _ = conn.execute_batch("ROLLBACK");
            let msg = format!("store transaction failed: {e}");
            for job in batch {
                job.finish(Err(&msg));
            }
            return;
        }
    }
    match conn.execute_batch("COMMIT") {
        Ok(()) => {
            stats.commits.fetch_add(1, Ordering::Relaxed);
            stats
                .max_batch
                .fetch_max(batch.len() as u64, Ordering::Relaxed);
            for job in batch {
                job.finish(Ok(()));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "store commit failed");
            let _ = conn.execute_batch("ROLLBACK");
            let msg = format!("store commit failed: {e}");
            for job in batch {
                job.finish(Err(&msg));
            }
        }
    }
}
