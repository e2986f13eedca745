//! Storage: the only module with SQL. One connection type for SQLite and PostgreSQL, pools,
//! migrations, and the small set of backend-specific statements.

pub mod accounts;
pub mod alerts;
pub mod audit;
pub mod auth;
pub mod events;
pub(crate) mod native;
pub mod notifications;
pub mod orgs;
pub mod outings;
pub mod pins;
pub mod push;
pub mod retention;
pub mod schedule;
pub mod schema;
pub mod stats;
pub mod totp;

use std::path::Path;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::R2D2Connection;
use diesel::{Connection, PgConnection, RunQueryDsl, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::config::{DatabaseKind, DatabaseSettings};
use crate::error::AppError;

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Any key will do as long as every Doorstep replica uses the same one.
const MIGRATION_LOCK_KEY: i64 = 0x646f_6f72_7374_6570; // "doorstep"

#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Pg(PgConnection),
    Sqlite(SqliteConnection),
}

pub type Pool = r2d2::Pool<ConnectionManager>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Connection(#[from] diesel::ConnectionError),
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
}

/// Picks the backend from the URL scheme; `MultiConnection::establish` would try each backend in
/// turn and report a confusing SQLite error for a mistyped PostgreSQL URL.
#[derive(Debug, Clone)]
pub struct ConnectionManager {
    kind: DatabaseKind,
    /// SQLite's own pragmas for this pool's connections (cache size, checkpointing).
    sqlite_pragmas: &'static str,
}

/// The writer keeps a large page cache (the tables it appends to and their indexes stay hot)
/// and leaves checkpoints to the checkpointer thread, so copying the WAL back into the database
/// never stalls a commit.
/// (Not larger: SQLite scans the whole page cache at the end of each write transaction, and at
/// 64 MB that scan cost more than the reads it saved.)
/// (`temp_store = MEMORY`, to keep statement journals off the file system, was tried: no clear
/// gain, and 20–70 MB more memory after a burst.)
const SQLITE_WRITER_PRAGMAS: &str = "PRAGMA cache_size = -16384; PRAGMA wal_autocheckpoint = 0;";
const SQLITE_READER_PRAGMAS: &str = "PRAGMA cache_size = -8192;";
/// How often the checkpointer copies committed WAL pages into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = DbConn;
    type Error = ConnectError;

    fn connect(&self) -> Result<DbConn, ConnectError> {
        match &self.kind {
            DatabaseKind::Sqlite(path) => {
                let url = path.to_string_lossy();
                let mut conn = SqliteConnection::establish(&url)?;
                // busy_timeout must come first, or switching to WAL can fail with "database is locked".
                conn.batch_execute(
                    "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                )?;
                conn.batch_execute(self.sqlite_pragmas)?;
                Ok(DbConn::Sqlite(conn))
            }
            DatabaseKind::Postgres(url) => Ok(DbConn::Pg(PgConnection::establish(url)?)),
        }
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), ConnectError> {
        conn.ping().map_err(ConnectError::Query)
    }

    fn has_broken(&self, conn: &mut DbConn) -> bool {
        conn.is_broken()
    }
}

/// Handles to the database. On SQLite all writes go through one connection (SQLite has a
/// single writer anyway, and queuing beats spinning on `SQLITE_BUSY`) driven by a group-commit
/// thread: see [`GroupCommit`].
#[derive(Clone)]
pub struct Store {
    reader: Pool,
    writer: Pool,
    group: Option<GroupCommit>,
    backend: Backend,
}

/// What a queued write hands back once it has run: called with the outcome of the commit.
type Finish = Box<dyn FnOnce(Result<(), String>) + Send>;
/// A queued write: runs inside the shared transaction (in its own savepoint).
type Job = Box<dyn FnOnce(&mut DbConn) -> Finish + Send>;

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
struct GroupCommit {
    queue: std::sync::mpsc::Sender<Job>,
    /// Held by every clone of the Store; the checkpointer stops when the last one is gone.
    alive: std::sync::Arc<()>,
    /// Set by the checkpointer when it has just copied nearly all of the WAL back: the
    /// cheapest moment for the writer to finish the job (see [`group_commit_loop`]).
    caught_up: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl GroupCommit {
    fn start(pool: Pool) -> Result<GroupCommit, StoreError> {
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
fn start_checkpointer(manager: ConnectionManager, group: &GroupCommit) -> Result<(), StoreError> {
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
fn writer_checkpoint_due(since: Duration, caught_up: &std::sync::atomic::AtomicBool) -> bool {
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
fn immediate_transaction<T, E, F>(conn: &mut DbConn, f: F) -> Result<T, E>
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

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database: {0}")]
    Open(String),
    #[error("database migration failed: {0}")]
    Migration(String),
}

impl Store {
    pub fn connect(settings: &DatabaseSettings) -> Result<Store, StoreError> {
        // OpenSSL (libpq's TLS, push encryption) is initialised here, before libpq does it,
        // so that it registers no exit-time cleanup: that cleanup frees OpenSSL's global state
        // while other threads may still be using it (a test process once aborted with "double
        // free or corruption" after every test had passed). The first initialisation decides.
        openssl::init();
        let kind = settings
            .kind()
            .map_err(|e| StoreError::Open(e.to_string()))?;
        let manager = |sqlite_pragmas| ConnectionManager {
            kind: kind.clone(),
            sqlite_pragmas,
        };
        let build = |size: u32, manager: ConnectionManager| {
            r2d2::Pool::builder()
                .max_size(size)
                .connection_timeout(Duration::from_secs(5))
                // A ping per checkout costs a round trip per query batch; diesel marks a
                // connection broken on a failed query, and `has_broken` drops it then.
                .test_on_check_out(false)
                .build(manager)
                .map_err(|e| StoreError::Open(e.to_string()))
        };
        match kind.clone() {
            DatabaseKind::Sqlite(path) => {
                if path.as_os_str() != ":memory:" {
                    crate::files::prepare_private_database(Path::new(&path)).map_err(|e| {
                        StoreError::Open(format!("cannot create {}: {e}", path.display()))
                    })?;
                }
                let writer = build(1, manager(SQLITE_WRITER_PRAGMAS))?;
                let reader = build(settings.pool_size, manager(SQLITE_READER_PRAGMAS))?;
                let group = Some(GroupCommit::start(writer.clone())?);
                if let Some(group) = &group {
                    start_checkpointer(manager(SQLITE_READER_PRAGMAS), group)?;
                }
                Ok(Store {
                    reader,
                    writer,
                    group,
                    backend: Backend::Sqlite,
                })
            }
            DatabaseKind::Postgres(_) => {
                let pool = build(settings.pool_size, manager(""))?;
                Ok(Store {
                    reader: pool.clone(),
                    writer: pool,
                    group: None,
                    backend: Backend::Postgres,
                })
            }
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies pending migrations. On PostgreSQL an advisory lock makes replicas that start
    /// together take turns.
    pub fn migrate(&self) -> Result<usize, StoreError> {
        let mut conn = self
            .writer
            .get()
            .map_err(|e| StoreError::Open(e.to_string()))?;
        let migration_err = |e: &dyn std::fmt::Display| StoreError::Migration(e.to_string());
        match &mut *conn {
            DbConn::Pg(pg) => {
                diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
                    .execute(pg)
                    .map_err(|e| migration_err(&e))?;
                let result = pg
                    .run_pending_migrations(POSTGRES_MIGRATIONS)
                    .map(|done| done.len())
                    .map_err(|e| migration_err(&e));
                let unlock =
                    diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
                        .execute(pg);
                let applied = result?;
                unlock.map_err(|e| migration_err(&e))?;
                Ok(applied)
            }
            DbConn::Sqlite(sqlite) => sqlite
                .run_pending_migrations(SQLITE_MIGRATIONS)
                .map(|done| done.len())
                .map_err(|e| migration_err(&e)),
        }
    }

    /// PostgreSQL's own settings that decide whether Doorstep keeps pace (empty on SQLite):
    /// the server's version, `autovacuum`, `shared_buffers`, `synchronous_commit` and
    /// `max_wal_size`, as `(name, value)`.
    pub fn postgres_settings(&self) -> Result<Vec<(String, String)>, StoreError> {
        #[derive(diesel::QueryableByName)]
        struct Setting {
            #[diesel(sql_type = diesel::sql_types::Text)]
            name: String,
            #[diesel(sql_type = diesel::sql_types::Text)]
            setting: String,
        }
        let mut conn = self
            .reader
            .get()
            .map_err(|e| StoreError::Open(e.to_string()))?;
        let DbConn::Pg(pg) = &mut *conn else {
            return Ok(Vec::new());
        };
        let rows: Vec<Setting> = diesel::sql_query(
            "SELECT name, current_setting(name) AS setting FROM pg_settings \
             WHERE name IN ('server_version', 'autovacuum', 'shared_buffers', \
             'synchronous_commit', 'max_wal_size') ORDER BY name",
        )
        .load(pg)
        .map_err(|e| StoreError::Open(e.to_string()))?;
        Ok(rows.into_iter().map(|s| (s.name, s.setting)).collect())
    }

    /// What in the database server's settings will make Doorstep fall behind, in words for
    /// the operator (logged at start). Without autovacuum PostgreSQL keeps every dead row
    /// version: each check-in and each escalation step leaves one in `outings` and the
    /// outbox, and the scheduler's and the delivery worker's index walks step over all of
    /// them. With a million outings due at 1,000 a second the pushes fell minutes behind
    /// within a quarter of an hour (benchmarks.md, item 34).
    pub fn database_warnings(&self) -> Result<Vec<String>, StoreError> {
        let settings = self.postgres_settings()?;
        Ok(settings
            .iter()
            .filter(|(name, value)| name == "autovacuum" && value == "off")
            .map(|_| {
                "PostgreSQL runs with autovacuum = off: dead rows will pile up in outings and \
                 notifications, and the scheduler and push delivery will slow down until they \
                 miss deadlines; turn autovacuum on (see docs/operations.md)"
                    .to_owned()
            })
            .collect())
    }

    /// True when every embedded migration has been applied (for `/readyz`).
    pub fn migrations_current(conn: &mut DbConn) -> Result<bool, AppError> {
        let pending = match conn {
            DbConn::Pg(pg) => pg.has_pending_migration(POSTGRES_MIGRATIONS),
            DbConn::Sqlite(sqlite) => sqlite.has_pending_migration(SQLITE_MIGRATIONS),
        };
        pending
            .map(|p| !p)
            .map_err(|e| AppError::internal(format!("cannot read migrations: {e}")))
    }

    /// Runs `f` on a pooled read connection on the blocking thread pool.
    pub async fn read<T, F>(&self, f: F) -> Result<T, AppError>
    where
        F: FnOnce(&mut DbConn) -> Result<T, AppError> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.reader.clone();
        run_blocking(move || {
            let mut conn = pool.get().map_err(AppError::from)?;
            f(&mut conn)
        })
        .await
    }

    /// Runs `f` in one transaction on the write connection: everything it writes commits
    /// together, or nothing does (an `Err` rolls back). Returns once the write is durable.
    /// On SQLite `f` runs in a savepoint of a group commit shared with concurrent writes.
    pub async fn write<T, F>(&self, f: F) -> Result<T, AppError>
    where
        F: FnOnce(&mut DbConn) -> Result<T, AppError> + Send + 'static,
        T: Send + 'static,
    {
        if let Some(group) = &self.group {
            let (reply, answer) = tokio::sync::oneshot::channel::<Result<T, AppError>>();
            let job: Job = Box::new(move |conn: &mut DbConn| {
                // Nested: a savepoint inside the group's transaction.
                let result = conn.transaction(f);
                Box::new(move |committed: Result<(), String>| {
                    let answer = match (result, committed) {
                        (Ok(value), Ok(())) => Ok(value),
                        (Err(e), _) => Err(e),
                        (Ok(_), Err(e)) => Err(AppError::internal(e)),
                    };
                    // The caller may have gone (client hung up); the write stands regardless.
                    let _ = reply.send(answer);
                })
            });
            group
                .queue
                .send(job)
                .map_err(|_| AppError::internal("the writer thread has stopped"))?;
            return answer
                .await
                .map_err(|_| AppError::internal("the write was abandoned"))?;
        }
        let pool = self.writer.clone();
        run_blocking(move || {
            let mut pooled = pool.get().map_err(AppError::from)?;
            let conn: &mut DbConn = &mut pooled;
            conn.transaction(f)
        })
        .await
    }

    /// Blocking variant of [`Store::write`] for command-line tools and background threads.
    /// These run beside a server that may be writing the same SQLite file, so the transaction
    /// takes the write lock at its start (`BEGIN IMMEDIATE`, waiting up to `busy_timeout`):
    /// a deferred one that reads first fails at once with "database is locked" when the server
    /// commits between its read and its first write (SQLite cannot wait there).
    pub fn write_blocking<T, F>(&self, f: F) -> Result<T, AppError>
    where
        F: FnOnce(&mut DbConn) -> Result<T, AppError>,
    {
        let mut pooled = self.writer.get().map_err(AppError::from)?;
        immediate_transaction(&mut pooled, f)
    }
}

async fn run_blocking<T, F>(f: F) -> Result<T, AppError>
where
    F: FnOnce() -> Result<T, AppError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AppError::internal(format!("storage task failed: {e}")))?
}

/// Lets this PostgreSQL transaction commit without waiting for its WAL to reach disk
/// (`synchronous_commit = off` for this transaction only). For bookkeeping whose loss in a
/// database crash is harmless by design: the delivery worker's leases and attempt results,
/// where losing the last fraction of a second means a message is sent again (delivery is
/// at-least-once anyway), never that one is lost. Alerts, steps, outbox rows and check-ins
/// never use it. A no-op on SQLite, whose group commit already amortises the sync.
pub fn relax_commit(conn: &mut DbConn) -> Result<(), AppError> {
    if let DbConn::Pg(pg) = conn {
        // A simple query: nothing to parse or bind.
        pg.batch_execute("SET LOCAL synchronous_commit = off")?;
    }
    Ok(())
}

/// Process-wide SQLite settings, for a process that has not used SQLite yet (the binary's
/// `main` calls it first thing; tests do without it):
///
/// - multi-thread mode (`SQLITE_CONFIG_MULTITHREAD`): SQLite stops taking a connection's mutex
///   on every call (each `sqlite3_step`, each column read). Safe here because a connection is
///   only ever used by one thread at a time: diesel's connections are not `Sync`, and the pools
///   hand each to one thread.
/// - no memory statistics (`SQLITE_CONFIG_MEMSTATUS` 0, which SQLite's documentation
///   recommends): every allocation otherwise takes a global mutex to count itself.
///
/// Together they were 8–9% of the writer thread's time under check-in load (perf). Returns
/// whether SQLite accepted them; it refuses once initialised, which costs speed, not safety.
pub fn tune_sqlite_process() -> bool {
    use libsqlite3_sys::{
        sqlite3_config, SQLITE_CONFIG_MEMSTATUS, SQLITE_CONFIG_MULTITHREAD, SQLITE_OK,
    };
    // SAFETY: sqlite3_config must not run while another thread uses SQLite, and only before
    // sqlite3_initialize; `main` calls this before any thread or connection exists, and after
    // initialisation SQLite answers SQLITE_MISUSE without changing anything. The variadic
    // arguments are those each option documents (none; one int).
    unsafe {
        sqlite3_config(SQLITE_CONFIG_MULTITHREAD) == SQLITE_OK
            && sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0 as std::os::raw::c_int) == SQLITE_OK
    }
}

/// A fresh id as stored (text): a UUIDv7, time-ordered, so inserts append to the primary-key
/// index instead of dirtying a random page of it (74 random bits still make it unguessable;
/// no access depends on an id being secret anyway).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// For tests: an in-memory SQLite database with every migration applied, as a `DbConn`, and
/// the SQL of each statement diesel prepares and caches on it, in order.
#[cfg(test)]
pub(crate) fn sqlite_recording_prepared() -> (DbConn, std::sync::Arc<std::sync::Mutex<Vec<String>>>)
{
    use diesel::connection::{Connection, InstrumentationEvent};
    use diesel_migrations::MigrationHarness;
    let mut sqlite = SqliteConnection::establish(":memory:").unwrap();
    sqlite.run_pending_migrations(SQLITE_MIGRATIONS).unwrap();
    let cached = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = cached.clone();
    sqlite.set_instrumentation(move |event: InstrumentationEvent<'_>| {
        if let InstrumentationEvent::CacheQuery { sql, .. } = event {
            seen.lock().unwrap().push(sql.to_owned());
        }
    });
    (DbConn::Sqlite(sqlite), cached)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn sqlite_settings(dir: &tempfile::TempDir, file: &str) -> crate::config::DatabaseSettings {
        crate::config::DatabaseSettings {
            url: format!("sqlite://{}", dir.path().join(file).display()),
            pool_size: 2,
        }
    }

    /// A store on a new SQLite file in `dir`, with one table made by `create`.
    async fn scratch_store(
        dir: &tempfile::TempDir,
        file: &str,
        create: &'static str,
    ) -> super::Store {
        use diesel::RunQueryDsl;
        let store = super::Store::connect(&sqlite_settings(dir, file)).unwrap();
        store
            .write(move |conn| {
                diesel::sql_query(create).execute(conn)?;
                Ok(())
            })
            .await
            .unwrap();
        store
    }

    /// Another process committing between the writer's first read and its first write (an
    /// admin command beside the server, the bench arming deadlines) must not fail the group:
    /// the writer takes the write lock first, and the other process waits its turn.
    #[tokio::test]
    async fn a_write_from_another_process_does_not_fail_the_writers_group() {
        use diesel::RunQueryDsl;
        let dir = tempfile::tempdir().unwrap();
        let server = scratch_store(&dir, "two.db", "CREATE TABLE marks (who TEXT NOT NULL)").await;
        let other = super::Store::connect(&sqlite_settings(&dir, "two.db")).unwrap();
        let (done, other_done) = std::sync::mpsc::channel();
        let written = server
            .write(move |conn| {
                // The read that starts a deferred transaction's snapshot.
                diesel::sql_query("SELECT who FROM marks").execute(conn)?;
                std::thread::spawn(move || {
                    let result = other.write_blocking(|conn| {
                        diesel::sql_query("INSERT INTO marks VALUES ('other')").execute(conn)?;
                        Ok(())
                    });
                    let _ = done.send(result);
                });
                // Give the other process its chance to commit first (it cannot while the
                // writer holds the lock, so this wait runs out).
                let early = other_done.recv_timeout(std::time::Duration::from_millis(300));
                diesel::sql_query("INSERT INTO marks VALUES ('server')").execute(conn)?;
                Ok(other_done_later(early, other_done))
            })
            .await;
        let other_result = written.expect("the writer's group was refused");
        let other_result = other_result.recv_timeout(std::time::Duration::from_secs(10));
        assert!(
            matches!(other_result, Ok(Ok(()))),
            "the other process waited its turn and wrote: {other_result:?}"
        );
        let count: i64 = server
            .read(|conn| {
                #[derive(diesel::QueryableByName)]
                struct Count {
                    #[diesel(sql_type = diesel::sql_types::BigInt)]
                    n: i64,
                }
                let c: Count =
                    diesel::sql_query("SELECT COUNT(*) AS n FROM marks").get_result(conn)?;
                Ok(c.n)
            })
            .await
            .unwrap();
        assert_eq!(count, 2);
    }

    /// The other process's answer: already in, or still to come once the writer commits.
    fn other_done_later(
        early: Result<Result<(), crate::error::AppError>, std::sync::mpsc::RecvTimeoutError>,
        later: std::sync::mpsc::Receiver<Result<(), crate::error::AppError>>,
    ) -> std::sync::mpsc::Receiver<Result<(), crate::error::AppError>> {
        if let Ok(answer) = early {
            let (send, receive) = std::sync::mpsc::channel();
            let _ = send.send(answer);
            return receive;
        }
        later
    }

    /// The writer finishes a checkpoint right after the checkpointer caught up (no sooner than
    /// 250 ms after its last), and after a second whatever the checkpointer did: the WAL
    /// restarts at least once a second under any load.
    #[test]
    fn the_writer_checkpoints_when_cheap_and_at_least_once_a_second() {
        let ms = std::time::Duration::from_millis;
        let caught_up = AtomicBool::new(true);
        assert!(!super::writer_checkpoint_due(ms(100), &caught_up));
        assert!(caught_up.load(Ordering::Acquire), "kept for later");
        assert!(super::writer_checkpoint_due(ms(250), &caught_up));
        assert!(!caught_up.load(Ordering::Acquire), "consumed");
        assert!(!super::writer_checkpoint_due(ms(600), &caught_up));
        assert!(!super::writer_checkpoint_due(ms(999), &caught_up));
        assert!(super::writer_checkpoint_due(ms(1000), &caught_up));
        assert!(super::writer_checkpoint_due(ms(5000), &caught_up));
    }

    fn names(dir: &str) -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    /// Group commit: concurrent writes share commits, yet each is still all-or-nothing on its
    /// own — a write that fails rolls back only its own rows, and every caller that hears
    /// "done" finds its rows there.
    /// A blocking write (the CLI's) that reads before it writes, while another process
    /// commits in between: it must wait for the lock, not fail with "database is locked".
    #[test]
    fn a_blocking_write_that_reads_first_waits_for_a_concurrent_writer() {
        use diesel::RunQueryDsl;
        let dir = tempfile::tempdir().unwrap();
        let settings = crate::config::DatabaseSettings {
            url: format!("sqlite://{}", dir.path().join("b.db").display()),
            pool_size: 1,
        };
        let ours = super::Store::connect(&settings).unwrap();
        let theirs = super::Store::connect(&settings).unwrap();
        ours.write_blocking(|conn| {
            diesel::sql_query("CREATE TABLE t (v BIGINT NOT NULL)").execute(conn)?;
            Ok(())
        })
        .unwrap();
        let other = std::sync::Mutex::new(None);
        let result = ours.write_blocking(|conn| {
            diesel::sql_query("SELECT v FROM t").execute(conn)?;
            // Another writer commits now, if it can (it cannot before we commit).
            let theirs = theirs.clone();
            let handle = std::thread::spawn(move || {
                theirs.write_blocking(|conn| {
                    diesel::sql_query("INSERT INTO t VALUES (2)").execute(conn)?;
                    Ok(())
                })
            });
            std::thread::sleep(std::time::Duration::from_millis(300));
            *other.lock().unwrap() = Some(handle);
            diesel::sql_query("INSERT INTO t VALUES (1)").execute(conn)?;
            Ok(())
        });
        assert!(result.is_ok(), "{result:?}");
        let handle = other.lock().unwrap().take().unwrap();
        assert!(handle.join().unwrap().is_ok());
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let count: Count = ours
            .write_blocking(|conn| {
                Ok(diesel::sql_query("SELECT COUNT(*) AS n FROM t").get_result(conn)?)
            })
            .unwrap();
        assert_eq!(count.n, 2, "both writes are there");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn group_commit_keeps_each_write_atomic() {
        use diesel::RunQueryDsl;

        #[derive(diesel::QueryableByName)]
        struct Value {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            v: i64,
        }
        let dir = tempfile::tempdir().unwrap();
        let store = scratch_store(&dir, "g.db", "CREATE TABLE t (v BIGINT NOT NULL)").await;
        let writes = (0..200i64).map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .write(move |conn| {
                        // Two rows per write, so a half-applied write would show.
                        for v in [i, i + 1000] {
                            diesel::sql_query(format!("INSERT INTO t (v) VALUES ({v})"))
                                .execute(conn)?;
                        }
                        if i % 3 == 0 {
                            return Err(crate::error::AppError::Conflict("refused".into()));
                        }
                        Ok(i)
                    })
                    .await
            })
        });
        let mut committed = Vec::new();
        for write in futures_util::future::join_all(writes).await {
            if let Ok(i) = write.unwrap() {
                committed.push(i);
            }
        }
        committed.sort_unstable();
        let expected: Vec<i64> = (0..200).filter(|i| i % 3 != 0).collect();
        assert_eq!(committed, expected);
        let stored: Vec<i64> = store
            .read(|conn| {
                Ok(diesel::sql_query("SELECT v FROM t ORDER BY v")
                    .load::<Value>(conn)?
                    .into_iter()
                    .map(|r| r.v)
                    .collect())
            })
            .await
            .unwrap();
        let mut want: Vec<i64> = expected.iter().flat_map(|i| [*i, i + 1000]).collect();
        want.sort_unstable();
        assert_eq!(stored, want);
    }

    /// Both backends must evolve in step: every migration exists in both trees.
    #[test]
    fn migration_trees_have_identical_names() {
        let root = env!("CARGO_MANIFEST_DIR");
        assert_eq!(
            names(&format!("{root}/migrations/sqlite")),
            names(&format!("{root}/migrations/postgres"))
        );
    }

    /// The channels migration rebuilds `notifications` on SQLite: existing outbox rows and
    /// their push deliveries survive it (up and down), and rows without a recipient fit after.
    #[test]
    fn sqlite_channels_migration_keeps_the_outbox() {
        use diesel::connection::SimpleConnection;
        use diesel::{Connection, RunQueryDsl, SqliteConnection};
        use diesel_migrations::MigrationHarness;

        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        fn count(conn: &mut SqliteConnection, sql: &str) -> i64 {
            diesel::sql_query(sql).get_result::<Count>(conn).unwrap().n
        }

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
        conn.batch_execute("PRAGMA foreign_keys = ON;").unwrap();
        // Up to the migration before the channels one.
        conn.run_next_migration(super::SQLITE_MIGRATIONS).unwrap();
        conn.run_next_migration(super::SQLITE_MIGRATIONS).unwrap();
        conn.batch_execute(
            "INSERT INTO organisations (id, name, created_at) VALUES ('o', 'Org', 0);
             INSERT INTO users (id, email, password_hash, display_name, role, org_id, created_at)
                 VALUES ('u', 'u@example.org', 'x', 'U', 'organiser', 'o', 0);
             INSERT INTO notifications (id, dedupe_key, recipient_id, channel, step, message_type,
                 level, payload, status, created_at, next_attempt_at, expires_at)
                 VALUES ('n', 'k', 'u', 'webpush', 's', 'test', 0, '{}', 'sent', 0, 0, 1);
             INSERT INTO push_deliveries (id, notification_id, subscription_id, status)
                 VALUES ('d', 'n', 'sub', 'sent');",
        )
        .unwrap();

        conn.run_pending_migrations(super::SQLITE_MIGRATIONS)
            .unwrap();
        assert_eq!(
            count(&mut conn, "SELECT COUNT(*) AS n FROM notifications"),
            1
        );
        assert_eq!(
            count(&mut conn, "SELECT COUNT(*) AS n FROM push_deliveries"),
            1
        );
        conn.batch_execute(
            "INSERT INTO notifications (id, dedupe_key, recipient_id, channel, step, message_type,
                 level, payload, status, created_at, next_attempt_at, expires_at)
                 VALUES ('w', 'k2', NULL, 'webhook', 's', 'panic', 2, '{}', 'pending', 0, 0, 1);",
        )
        .unwrap();
        // No dangling references after the rebuild.
        assert_eq!(
            count(
                &mut conn,
                "SELECT COUNT(*) AS n FROM pragma_foreign_key_check"
            ),
            0
        );

        // Back through the later migrations (which do not touch the outbox) to this one.
        while !conn
            .revert_last_migration(super::SQLITE_MIGRATIONS)
            .unwrap()
            .to_string()
            .replace('-', "")
            .starts_with("20261127")
        {}
        assert_eq!(
            count(&mut conn, "SELECT COUNT(*) AS n FROM notifications"),
            1
        );
        assert_eq!(
            count(&mut conn, "SELECT COUNT(*) AS n FROM push_deliveries"),
            1
        );
        conn.batch_execute("DELETE FROM notifications WHERE id = 'n';")
            .unwrap();
        assert_eq!(
            count(&mut conn, "SELECT COUNT(*) AS n FROM push_deliveries"),
            0
        );
    }

    /// The outings of a database from before `latest_checkin_order` get their latest
    /// check-in's display order from the check-in they point at.
    #[test]
    fn sqlite_latest_checkin_order_migration_backfills_outings() {
        use diesel::connection::SimpleConnection;
        use diesel::{Connection, RunQueryDsl, SqliteConnection};
        use diesel_migrations::MigrationHarness;
        #[derive(diesel::QueryableByName)]
        struct Order {
            #[diesel(sql_type = diesel::sql_types::Text)]
            id: String,
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
            recorded: Option<i64>,
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
            received: Option<i64>,
        }

        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        // Up to the migration before this one.
        for _ in 0..3 {
            conn.run_next_migration(super::SQLITE_MIGRATIONS).unwrap();
        }
        conn.batch_execute(
            "INSERT INTO organisations (id, name, created_at) VALUES ('o', 'Org', 0);
             INSERT INTO users (id, email, password_hash, display_name, role, org_id, created_at)
                 VALUES ('u', 'u@example.org', 'x', 'U', 'canvasser', 'o', 0);
             INSERT INTO outings (id, canvasser_id, org_id, status, started_at,
                 checkin_interval_s, solo, last_checkin_id, last_received_at, created_at, updated_at)
                 VALUES ('a', 'u', 'o', 'ended', 0, 600, TRUE, 'c', 200, 0, 0),
                        ('b', 'u', 'o', 'active', 0, 600, TRUE, NULL, 0, 0, 0);
             INSERT INTO checkins (id, outing_id, user_id, kind, source, recorded_at, received_at)
                 VALUES ('c', 'a', 'u', 'ok', 'live', 100, 200);",
        )
        .unwrap();
        conn.run_pending_migrations(super::SQLITE_MIGRATIONS)
            .unwrap();
        let rows: Vec<Order> = diesel::sql_query(
            "SELECT id, last_checkin_recorded_at AS recorded, last_checkin_received_at AS received
             FROM outings ORDER BY id",
        )
        .load(&mut conn)
        .unwrap();
        let rows: Vec<_> = rows
            .into_iter()
            .map(|r| (r.id, r.recorded, r.received))
            .collect();
        assert_eq!(
            rows,
            vec![
                ("a".to_owned(), Some(100), Some(200)),
                ("b".to_owned(), None, None)
            ]
        );
    }
}
