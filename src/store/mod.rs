//! Storage: the only module with SQL. `DbConn` is one connection type for SQLite and
//! PostgreSQL; `Store` holds the pools and runs reads and writes. Beside it: `connection`
//! (the r2d2 manager), `writer` (SQLite group commit and checkpoints), `migrate`, `tuning`,
//! and one module per table group.

pub mod accounts;
pub mod alerts;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod cautions;
mod columns;
pub mod connection;
mod error;
pub mod events;
pub mod handoff;
pub mod incidents;
mod migrate;
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
pub mod tuning;
mod writer;

use std::path::Path;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, RunQueryDsl, SqliteConnection};
use diesel_migrations::MigrationHarness;

pub use connection::{ConnectError, ConnectionManager};
use connection::{SQLITE_READER_PRAGMAS, SQLITE_WRITER_PRAGMAS};
pub use error::DbError;
pub use migrate::{POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};
pub use tuning::tune_sqlite_process;
use writer::{immediate_transaction, start_checkpointer, GroupCommit, Job};

use crate::config::{DatabaseKind, DatabaseSettings};
use crate::error::AppError;

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
            statement_cache: settings.statement_cache,
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
            ..Default::default()
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
        assert!(!super::writer::writer_checkpoint_due(ms(100), &caught_up));
        assert!(caught_up.load(Ordering::Acquire), "kept for later");
        assert!(super::writer::writer_checkpoint_due(ms(250), &caught_up));
        assert!(!caught_up.load(Ordering::Acquire), "consumed");
        assert!(!super::writer::writer_checkpoint_due(ms(600), &caught_up));
        assert!(!super::writer::writer_checkpoint_due(ms(999), &caught_up));
        assert!(super::writer::writer_checkpoint_due(ms(1000), &caught_up));
        assert!(super::writer::writer_checkpoint_due(ms(5000), &caught_up));
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
            ..Default::default()
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
