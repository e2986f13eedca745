//! The use cases' one error type. The HTTP edge maps it once to RFC 9457 problem details
//! (`http::problem`); below it nothing knows of HTTP.

use crate::domain::field_error::FieldError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("authentication required")]
    Unauthorized(String),
    /// The password was right; the account also needs a TOTP or recovery code.
    #[error("a two-factor code is required")]
    TotpRequired,
    /// The TOTP or recovery code given at login is wrong, used already, or replayed.
    #[error("the two-factor code is invalid or was already used")]
    TotpInvalid,
    /// The caller's organisation requires two-factor authentication and the caller has not
    /// enabled it yet.
    #[error("your organisation requires two-factor authentication: enable it with POST /api/v1/me/totp and POST /api/v1/me/totp/confirm")]
    TotpEnrollmentRequired,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("request body too large")]
    PayloadTooLarge { limit: usize },
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("too many requests")]
    RateLimited { retry_after_s: u64 },
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    pub fn internal(message: impl Into<String>) -> Self {
        AppError::Internal(message.into())
    }

    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        AppError::Validation(vec![FieldError::new(field, message)])
    }
}
