//! Connections: one r2d2 manager for both backends, picked by the URL's scheme, with SQLite's
//! per-pool pragmas.

use std::time::Duration;

use diesel::connection::{CacheSize, SimpleConnection};
use diesel::r2d2::R2D2Connection;
use diesel::{Connection, PgConnection, SqliteConnection};

use super::DbConn;
use crate::config::DatabaseKind;

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
    pub(super) kind: DatabaseKind,
    /// SQLite's own pragmas for this pool's connections (cache size, checkpointing).
    pub(super) sqlite_pragmas: &'static str,
    /// `database.statement_cache`: PostgreSQL statements prepared by name and kept.
    pub(super) statement_cache: bool,
}

/// The writer keeps a large page cache (the tables it appends to and their indexes stay hot)
/// and leaves checkpoints to the checkpointer thread, so copying the WAL back into the database
/// never stalls a commit.
/// (Not larger: SQLite scans the whole page cache at the end of each write transaction, and at
/// 64 MB that scan cost more than the reads it saved.)
/// (`temp_store = MEMORY`, to keep statement journals off the file system, was tried: no clear
/// gain, and 20–70 MB more memory after a burst.)
pub(super) const SQLITE_WRITER_PRAGMAS: &str =
    "PRAGMA cache_size = -16384; PRAGMA wal_autocheckpoint = 0;";
pub(super) const SQLITE_READER_PRAGMAS: &str = "PRAGMA cache_size = -8192;";
/// How often the checkpointer copies committed WAL pages into the database file.
pub(super) const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

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
            DatabaseKind::Postgres(url) => {
                let mut conn = PgConnection::establish(url)?;
                if !self.statement_cache {
                    // Every statement then goes as one Parse/Bind/Execute of an unnamed
                    // statement (PQsendQueryParams), which PgBouncer's transaction pooling
                    // keeps on one server connection; `store::native`'s hot statements run
                    // on this same connection, so they follow.
                    conn.set_prepared_statement_cache_size(CacheSize::Disabled);
                }
                Ok(DbConn::Pg(conn))
            }
        }
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), ConnectError> {
        conn.ping().map_err(ConnectError::Query)
    }

    fn has_broken(&self, conn: &mut DbConn) -> bool {
        conn.is_broken()
    }
}
