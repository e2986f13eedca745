//! Migrations, embedded in the binary: `migrations/sqlite` and `migrations/postgres` with
//! identical folder names, applied by `serve` and `migrate`.

use diesel::{Connection, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::{DbConn, Store, StoreError};

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Any key will do as long as every Doorstep replica uses the same one.
const MIGRATION_LOCK_KEY: i64 = 0x646f_6f72_7374_6570; // "doorstep"

impl Store {
    /// Applies pending migrations. On PostgreSQL a transaction-scoped advisory lock makes
    /// replicas that start together take turns: all pending migrations run in one
    /// transaction that holds it (PostgreSQL's DDL is transactional; each migration is a
    /// savepoint in it). A session lock would not survive PgBouncer's transaction pooling:
    /// taken on one server connection and released on another, it would stay held by the
    /// first, and every later start would wait for it forever.
    pub fn migrate(&self) -> Result<usize, StoreError> {
        let mut conn = self
            .writer
            .get()
            .map_err(|e| StoreError::Open(e.to_string()))?;
        let migration_err = |e: &dyn std::fmt::Display| StoreError::Migration(e.to_string());
        match &mut *conn {
            DbConn::Pg(pg) => pg
                .transaction::<usize, MigrateError, _>(|pg| {
                    diesel::sql_query(format!(
                        "SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"
                    ))
                    .execute(pg)?;
                    pg.run_pending_migrations(POSTGRES_MIGRATIONS)
                        .map(|done| done.len())
                        .map_err(|e| MigrateError::Store(migration_err(&e)))
                })
                .map_err(|e| match e {
                    MigrateError::Store(e) => e,
                    MigrateError::Transaction(e) => migration_err(&e),
                }),
            DbConn::Sqlite(sqlite) => sqlite
                .run_pending_migrations(SQLITE_MIGRATIONS)
                .map(|done| done.len())
                .map_err(|e| migration_err(&e)),
        }
    }
}

/// What the migration transaction can fail with: a migration, or the transaction itself.
#[derive(Debug)]
enum MigrateError {
    Store(StoreError),
    Transaction(diesel::result::Error),
}

impl From<diesel::result::Error> for MigrateError {
    fn from(e: diesel::result::Error) -> Self {
        MigrateError::Transaction(e)
    }
}
