//! The SQLite writer: one thread owns the write connection and group-commits every write
//! queued meanwhile; a second thread checkpoints the WAL.

use std::time::Duration;

use diesel::Connection;

use super::connection::{ConnectionManager, CHECKPOINT_EVERY};
use super::{DbConn, Pool, StoreError};

/// What a queued write hands back once it has run: called with the outcome of the commit.
pub(super) type Finish = Box<dyn FnOnce(Result<(), String>) + Send>;
/// A queued write: runs inside the shared transaction (in its own savepoint).
pub(super) type Job = Box<dyn FnOnce(&mut DbConn) -> Finish + Send>;

/// Most writes one group commit takes: enough to amortise the commit, few enough that a
/// request queued behind the group waits milliseconds, not seconds.
const GROUP_COMMIT_MAX: usize = 256;

/// Group commit for SQLite. Every write request is queued to one thread that owns the write
/// connection; it takes everything queued, runs each request in its own savepoint (so a
/// request that fails rolls back alone), commits once, and only then answers each caller. A
/// caller therefore never hears "done" before its rows are durable, and under load one commit
/// carries many requests instead of one. Nothing waits to fill a group: an idle writer takes
/// the first request at once.
#[derive(Clone)]
pub(super) struct GroupCommit {
    pub(super) queue: std::sync::mpsc::Sender<Job>,
    /// Held by every clone of the Store; the checkpointer stops when the last one is gone.
    alive: std::sync::Arc<()>,
    /// Set by the checkpointer when it has just copied nearly all of the WAL back: the
    /// cheapest moment for the writer to finish the job (see [`group_commit_loop`]).
    caught_up: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl GroupCommit {
    pub(super) fn start(pool: Pool) -> Result<GroupCommit, StoreError> {
        let (queue, jobs) = std::sync::mpsc::channel::<Job>();
        let caught_up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer_sees = caught_up.clone();
        std::thread::Builder::new()
            .name("doorstep-writer".into())
            .spawn(move || group_commit_loop(&pool, &jobs, &writer_sees))
            .map_err(|e| StoreError::Open(format!("cannot start the writer thread: {e}")))?;
        Ok(GroupCommit {
            queue,
            alive: std::sync::Arc::new(()),
            caught_up,
        })
    }
}

/// Copies committed WAL pages back into the database file every 100 ms, on its own
/// connection, so the writer seldom pays for it and the WAL stays small. `PASSIVE` never
/// waits for (or blocks) readers or the writer; what it cannot copy now it copies next time.
/// After a pass that left at most [`CAUGHT_UP_FRAMES`] uncopied it tells the writer, whose
/// own checkpoint then has little left to copy.
pub(super) fn start_checkpointer(
    manager: ConnectionManager,
    group: &GroupCommit,
) -> Result<(), StoreError> {
    use r2d2::ManageConnection;
    let alive = std::sync::Arc::downgrade(&group.alive);
    let caught_up = group.caught_up.clone();
    let mut conn = manager
        .connect()
        .map_err(|e| StoreError::Open(format!("checkpointer connection: {e}")))?;
    std::thread::Builder::new()
        .name("doorstep-checkpoint".into())
        .spawn(move || {
            while alive.upgrade().is_some() {
                std::thread::sleep(CHECKPOINT_EVERY);
                match passive_checkpoint(&mut conn) {
                    Ok(Some(left)) if left <= CAUGHT_UP_FRAMES => {
                        caught_up.store(true, std::sync::atomic::Ordering::Release);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "WAL checkpoint failed; retrying shortly")
                    }
                }
            }
        })
        .map_err(|e| StoreError::Open(format!("cannot start the checkpointer: {e}")))?;
    Ok(())
}

/// A `PASSIVE` checkpoint; how many WAL frames it left uncopied, or `None` when another
/// checkpoint held the lock (SQLite reports that as busy, not as an error).
fn passive_checkpoint(conn: &mut DbConn) -> Result<Option<i64>, diesel::result::Error> {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Checkpoint {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        busy: i32,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        log: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        checkpointed: i64,
    }
    let DbConn::Sqlite(sqlite) = conn else {
        return Ok(None);
    };
    let done: Checkpoint =
        diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)").get_result(sqlite)?;
    Ok((done.busy == 0).then(|| (done.log - done.checkpointed).max(0)))
}

/// WAL frames (4 KB each) a checkpointer pass may leave for the writer to copy: about a
/// millisecond or two of its time.
const CAUGHT_UP_FRAMES: i64 = 512;

/// How often the writer itself finishes a checkpoint (see [`group_commit_loop`]): at the
/// first group boundary after the checkpointer has caught up, once this long has passed...
const WAL_RESTART_EVERY: Duration = Duration::from_millis(250);
/// ...and at the latest after this long, caught up or not, so the WAL cannot grow without end.
const WAL_RESTART_AT_LATEST: Duration = Duration::from_millis(1000);

/// Whether the writer finishes a checkpoint now, `since` its last one, given whether the
/// checkpointer has just caught up (consumed here).
pub(super) fn writer_checkpoint_due(
    since: Duration,
    caught_up: &std::sync::atomic::AtomicBool,
) -> bool {
    since >= WAL_RESTART_AT_LATEST
        || (since >= WAL_RESTART_EVERY
            && caught_up.swap(false, std::sync::atomic::Ordering::AcqRel))
}

fn group_commit_loop(
    pool: &Pool,
    jobs: &std::sync::mpsc::Receiver<Job>,
    caught_up: &std::sync::atomic::AtomicBool,
) {
    let mut last_restart = std::time::Instant::now();
    // Ends when every Store clone (every sender) is gone.
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < GROUP_COMMIT_MAX {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        metrics::histogram!("doorstep_db_group_commit_writes").record(batch.len() as f64);
        let mut pooled = match pool.get() {
            Ok(conn) => conn,
            Err(e) => {
                // Dropping the jobs drops their reply channels: each caller gets an error.
                tracing::error!(error = %e, "the write connection is unavailable");
                continue;
            }
        };
        let conn: &mut DbConn = &mut pooled;
        let mut finishers: Vec<Finish> = Vec::with_capacity(batch.len());
        let outcome = immediate_transaction(conn, |conn| {
            for job in batch {
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(conn)));
                match ran {
                    Ok(finish) => finishers.push(finish),
                    // The savepoint may be left open: roll the whole group back.
                    Err(_) => return Err(diesel::result::Error::RollbackTransaction),
                }
            }
            Ok(())
        });
        let outcome = outcome.map_err(|e| format!("the write was not committed: {e}"));
        if let Err(e) = &outcome {
            tracing::error!(error = %e, writes = finishers.len(), "group commit failed");
        }
        for finish in finishers {
            finish(outcome.clone());
        }
        // Under steady writes the checkpointer never catches up (the writer appends while it
        // copies), so SQLite never starts the WAL over and it grows without end: 2 GB in ten
        // seconds of check-ins, every new block zeroed by the kernel on the writer's time. A
        // checkpoint from the writer, between groups, copies what the checkpointer has not,
        // and the next transaction restarts the WAL from its first frame. Every write waits
        // while it runs, so it runs just after a checkpointer pass, when little is left: at a
        // fixed 250 ms it copied up to a quarter of a second of WAL each time, and those
        // pauses were the ingest's p99 (benchmarks.md, item 35).
        if writer_checkpoint_due(last_restart.elapsed(), caught_up) {
            last_restart = std::time::Instant::now();
            if let Err(e) = passive_checkpoint(conn) {
                tracing::warn!(error = %e, "writer checkpoint failed");
            }
        }
    }
}

/// Runs `f` in a transaction that takes SQLite's write lock at its start (`BEGIN IMMEDIATE`,
/// waiting up to `busy_timeout` while another process holds it). A deferred transaction
/// reads first and fails at once with "database is locked" when another process (an admin
/// command, the bench arming deadlines) commits between that read and its first write: a
/// whole group of check-ins refused. The writer only writes, so taking the lock first costs
/// nothing. On PostgreSQL an ordinary transaction.
pub(super) fn immediate_transaction<T, E, F>(conn: &mut DbConn, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    let DbConn::Sqlite(sqlite) = conn else {
        return conn.transaction(f);
    };
    AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")?;
    let result = f(conn);
    let DbConn::Sqlite(sqlite) = conn else {
        return Err(diesel::result::Error::BrokenTransactionManager.into());
    };
    match result {
        Ok(value) => {
            AnsiTransactionManager::commit_transaction(sqlite)?;
            Ok(value)
        }
        Err(e) => {
            AnsiTransactionManager::rollback_transaction(sqlite)?;
            Err(e)
        }
    }
}
