//! Bootstrap tasks run from the command line.

use crate::auth::password;
use crate::config::Settings;
use crate::domain::account::{DisplayName, Email, NewPassword, Role};
use crate::domain::ids::UserId;
use crate::error::AppError;
use crate::store::{self, Store};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("a user with email {0} already exists")]
    EmailTaken(String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("{0}")]
    Other(String),
}

impl From<crate::domain::field_error::FieldError> for AdminError {
    fn from(e: crate::domain::field_error::FieldError) -> Self {
        AdminError::Invalid {
            field: e.field,
            message: e.message,
        }
    }
}

/// Creates a platform admin, applying migrations first so this works on a fresh database.
pub fn create_admin(
    settings: &Settings,
    email: &str,
    password_text: &str,
    name: &str,
) -> Result<UserId, AdminError> {
    let email = Email::parse("--email", email)?;
    let password_text = NewPassword::parse("--password", password_text)?;
    let name = DisplayName::parse("--name", name)?;
    let store = Store::connect(&settings.database)?;
    store.migrate()?;
    let hash =
        password::hash(password_text.expose()).map_err(|e| AdminError::Other(e.to_string()))?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let result = store.write_blocking(|conn| {
        Ok(store::accounts::insert(
            conn,
            store::accounts::NewUser {
                email: email.as_str(),
                password_hash: hash,
                display_name: name.as_str(),
                role: Role::Admin,
                org_id: None,
                phone: None,
                now_ms,
            },
        )?)
    });
    match result {
        Ok(account) => Ok(account.id),
        Err(AppError::Conflict(_)) => Err(AdminError::EmailTaken(email.as_str().to_owned())),
        Err(e) => Err(AdminError::Other(e.to_string())),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(
        "doorstep backup copies SQLite databases; for PostgreSQL use pg_dump (or continuous \
         archiving for point-in-time recovery): see docs/operations.md, \"Backups\""
    )]
    Postgres,
    #[error("{0} already exists: choose a new file (a backup never overwrites one)")]
    Exists(String),
    #[error("there is no database at {0}")]
    NoDatabase(String),
    #[error("cannot create {path}: {source}")]
    Create {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Copy(#[from] store::backup::BackupError),
}

/// `doorstep backup --to FILE`: a consistent copy of the configured SQLite database, taken
/// while the server runs (check-ins go on meanwhile). `to` must not exist; it is created
/// owner-only (`0600`, like the database: it holds the same secrets and trails).
pub fn backup(settings: &Settings, to: &std::path::Path) -> Result<(), BackupError> {
    let source = match settings.database.kind()? {
        crate::config::DatabaseKind::Postgres(_) => return Err(BackupError::Postgres),
        crate::config::DatabaseKind::Sqlite(path) => path,
    };
    if !source.is_file() {
        return Err(BackupError::NoDatabase(source.display().to_string()));
    }
    let create_error = |source: std::io::Error| BackupError::Create {
        path: to.display().to_string(),
        source,
    };
    // Created empty here, owner-only, and only if absent (in one step: no race with another
    // file of that name); VACUUM INTO fills an empty file.
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(to).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => BackupError::Exists(to.display().to_string()),
        _ => create_error(e),
    })?;
    drop(file);
    if let Err(e) = store::backup::sqlite_vacuum_into(&source, to) {
        // No half-written copy left behind to be mistaken for a backup.
        let _ = std::fs::remove_file(to);
        return Err(e.into());
    }
    // On disk before we say it is done.
    std::fs::File::open(to)
        .and_then(|f| f.sync_all())
        .map_err(create_error)?;
    Ok(())
}
