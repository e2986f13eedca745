//! `doorstep backup`: a consistent copy of a SQLite database, made beside a running server.

use std::path::Path;

use diesel::connection::SimpleConnection;
use diesel::{Connection, RunQueryDsl, SqliteConnection};

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: String,
        source: diesel::ConnectionError,
    },
    #[error("copying the database failed: {0}")]
    Copy(#[from] diesel::result::Error),
}

/// Copies the SQLite database at `source` into `target` with `VACUUM INTO`: one read
/// transaction, so the copy is the database as of one commit, and in WAL mode it does not
/// hold up the server's writer (which keeps committing check-ins meanwhile). `target` must be
/// absent or empty (the caller creates it empty, owner-only).
pub fn sqlite_vacuum_into(source: &Path, target: &Path) -> Result<(), BackupError> {
    let url = source.to_string_lossy();
    let mut conn = SqliteConnection::establish(&url).map_err(|source| BackupError::Open {
        path: url.clone().into_owned(),
        source,
    })?;
    // The server may hold the write lock for a group commit or a checkpoint for a moment.
    conn.batch_execute("PRAGMA busy_timeout = 5000;")?;
    diesel::sql_query("VACUUM INTO ?")
        .bind::<diesel::sql_types::Text, _>(target.to_string_lossy().into_owned())
        .execute(&mut conn)?;
    Ok(())
}
