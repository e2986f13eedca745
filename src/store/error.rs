//! What a storage call can fail with, and (once, below) what each failure tells a client.

use diesel::result::{DatabaseErrorKind, Error};

use crate::error::AppError;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The row a statement needed is not there.
    #[error("no such row")]
    NotFound,
    /// The database cannot take the statement now (busy, connection lost, a serialisation
    /// conflict, no pooled connection): retrying shortly may work.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness rule of the data refused the write; the text says which, in words fit
    /// for the person who asked.
    #[error("{0}")]
    Conflict(String),
    /// A stored value is outside what the code can read (an id that is not a UUID, a status
    /// outside its set): a defect or a hand-edited row, never the client's fault.
    #[error("stored data unreadable: {0}")]
    Corrupt(String),
    #[error("database: {0}")]
    Query(#[source] Error),
}

impl DbError {
    pub fn corrupt(message: impl Into<String>) -> DbError {
        DbError::Corrupt(message.into())
    }
}

/// SQLite reports a lock it waited `busy_timeout` for as `SQLITE_BUSY`, which diesel passes on
/// as an unclassified error with SQLite's own message (`sqlite3_errstr`): "database is locked"
/// (or "database table is locked"). Those texts are SQLite's stable API for the code.
fn is_sqlite_busy(message: &str) -> bool {
    message.contains("database is locked") || message.contains("database table is locked")
}

impl From<Error> for DbError {
    fn from(e: Error) -> Self {
        match &e {
            Error::NotFound => DbError::NotFound,
            Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::SerializationFailure,
                _,
            ) => DbError::Unavailable(e.to_string()),
            Error::DatabaseError(DatabaseErrorKind::Unknown, info)
                if is_sqlite_busy(info.message()) =>
            {
                DbError::Unavailable(e.to_string())
            }
            _ => DbError::Query(e),
        }
    }
}

impl From<r2d2::Error> for DbError {
    fn from(e: r2d2::Error) -> Self {
        DbError::Unavailable(e.to_string())
    }
}

/// The one place a storage failure becomes what the client is told: busy or unreachable is a
/// 503 with Retry-After, a uniqueness refusal a 409, anything else a logged 500 (with its cause
/// chain) that tells the client nothing.
impl From<DbError> for AppError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::NotFound => AppError::NotFound("resource"),
            DbError::Unavailable(cause) => AppError::Unavailable(cause),
            DbError::Conflict(message) => AppError::Conflict(message),
            DbError::Corrupt(_) | DbError::Query(_) => AppError::Internal(cause_chain(&e)),
        }
    }
}

/// `error: cause: cause…`, for the log.
fn cause_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Transactions run use cases that answer in `AppError`; diesel's own failures inside them
/// take the storage mapping.
impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        DbError::from(e).into()
    }
}

impl From<r2d2::Error> for AppError {
    fn from(e: r2d2::Error) -> Self {
        DbError::from(e).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_busy_and_lost_connections_are_unavailable_other_failures_are_not() {
        let locked = diesel::result::Error::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("database is locked".to_owned()),
        );
        assert!(matches!(DbError::from(locked), DbError::Unavailable(_)));
        let closed = diesel::result::Error::DatabaseError(
            DatabaseErrorKind::ClosedConnection,
            Box::new("server closed the connection".to_owned()),
        );
        assert!(matches!(DbError::from(closed), DbError::Unavailable(_)));
        let syntax = diesel::result::Error::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("near \"SELEC\": syntax error".to_owned()),
        );
        assert!(matches!(DbError::from(syntax), DbError::Query(_)));
        assert!(matches!(
            DbError::from(diesel::result::Error::NotFound),
            DbError::NotFound
        ));
    }
}
