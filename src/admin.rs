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
