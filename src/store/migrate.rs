//! Migrations, embedded in the binary: `migrations/sqlite` and `migrations/postgres` with
//! identical folder names, applied by `serve` and `migrate`.

use diesel::RunQueryDsl;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::{DbConn, Store, StoreError};

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Any key will do as long as every Doorstep replica uses the same one.
const MIGRATION_LOCK_KEY: i64 = 0x646f_6f72_7374_6570; // "doorstep"

impl Store {
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
}
