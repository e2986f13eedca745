//! Storage: the only module with SQL. One connection type for SQLite and PostgreSQL, pools,
//! migrations, and the small set of backend-specific statements.

pub mod accounts;
pub mod alerts;
pub mod audit;
pub mod auth;
pub mod events;
pub mod notifications;
pub mod orgs;
pub mod outings;
pub mod push;
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
}

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

/// Handles to the database. On SQLite all writes go through a pool of one connection: SQLite
/// has a single writer anyway, and queuing in the pool beats spinning on `SQLITE_BUSY`.
#[derive(Clone)]
pub struct Store {
    reader: Pool,
    writer: Pool,
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
        let kind = settings
            .kind()
            .map_err(|e| StoreError::Open(e.to_string()))?;
        let manager = ConnectionManager { kind: kind.clone() };
        let build = |size: u32| {
            r2d2::Pool::builder()
                .max_size(size)
                .connection_timeout(Duration::from_secs(5))
                .build(manager.clone())
                .map_err(|e| StoreError::Open(e.to_string()))
        };
        match kind {
            DatabaseKind::Sqlite(path) => {
                if let Some(dir) = Path::new(&path).parent() {
                    if !dir.as_os_str().is_empty() {
                        std::fs::create_dir_all(dir).map_err(|e| {
                            StoreError::Open(format!("cannot create {}: {e}", dir.display()))
                        })?;
                    }
                }
                let writer = build(1)?;
                let reader = build(settings.pool_size)?;
                Ok(Store {
                    reader,
                    writer,
                    backend: Backend::Sqlite,
                })
            }
            DatabaseKind::Postgres(_) => {
                let pool = build(settings.pool_size)?;
                Ok(Store {
                    reader: pool.clone(),
                    writer: pool,
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
    /// together, or nothing does (an `Err` rolls back).
    pub async fn write<T, F>(&self, f: F) -> Result<T, AppError>
    where
        F: FnOnce(&mut DbConn) -> Result<T, AppError> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.writer.clone();
        run_blocking(move || {
            let mut pooled = pool.get().map_err(AppError::from)?;
            let conn: &mut DbConn = &mut pooled;
            conn.transaction(f)
        })
        .await
    }

    /// Blocking variant of [`Store::write`] for command-line tools and background threads.
    pub fn write_blocking<T, F>(&self, f: F) -> Result<T, AppError>
    where
        F: FnOnce(&mut DbConn) -> Result<T, AppError>,
    {
        let mut pooled = self.writer.get().map_err(AppError::from)?;
        let conn: &mut DbConn = &mut pooled;
        conn.transaction(f)
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

/// A fresh UUID as stored (text).
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    fn names(dir: &str) -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
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

        conn.revert_last_migration(super::SQLITE_MIGRATIONS)
            .unwrap();
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
}
