//! Errors as the API answers them: RFC 9457 problem details, one stable `type` per kind of
//! failure, mapped once here from the use cases' `AppError`.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::domain::field_error::FieldError;
use crate::error::AppError;

/// Stable problem `type` URI and title for each kind of failure.
fn kind(error: &AppError) -> (&'static str, &'static str) {
    match error {
        AppError::BadRequest(_) => ("bad-request", "Bad request"),
        AppError::Unauthorized(_) => ("unauthorized", "Unauthorized"),
        AppError::TotpRequired => ("totp-required", "Two-factor code required"),
        AppError::TotpInvalid => ("totp-invalid", "Invalid two-factor code"),
        AppError::TotpEnrollmentRequired => {
            ("totp-enrollment-required", "Two-factor enrollment required")
        }
        AppError::Forbidden(_) => ("forbidden", "Forbidden"),
        AppError::NotFound(_) => ("not-found", "Not found"),
        AppError::Conflict(_) => ("conflict", "Conflict"),
        AppError::PayloadTooLarge { .. } => ("payload-too-large", "Payload too large"),
        AppError::Validation(_) => ("validation", "Validation failed"),
        AppError::RateLimited { .. } => ("rate-limited", "Too many requests"),
        AppError::Unavailable(_) => ("unavailable", "Service unavailable"),
        AppError::Internal(_) => ("internal", "Internal server error"),
    }
}

/// What the client is told; storage and internal causes are logged, never echoed.
fn detail(error: &AppError) -> String {
    match error {
        AppError::Unauthorized(reason) => reason.clone(),
        AppError::PayloadTooLarge { limit } => {
            format!("request body exceeds the limit of {limit} bytes")
        }
        AppError::Validation(errors) => match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            _ => format!("{} fields are invalid", errors.len()),
        },
        AppError::RateLimited { retry_after_s } => {
            format!("too many requests; retry after {retry_after_s} s")
        }
        // Never echo storage or internal causes to the client: they are logged instead.
        AppError::Unavailable(_) => "storage is temporarily unavailable; retry shortly".into(),
        AppError::Internal(_) => "an unexpected error occurred; it has been logged".into(),
        other => other.to_string(),
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

pub const PROBLEM_JSON: &str = "application/problem+json";
pub const PROBLEM_TYPE_BASE: &str = "https://doorstep.invalid/problems/";

/// A problem+json response for statuses produced outside `AppError` (unknown routes, 405).
pub fn problem_response(status: StatusCode, slug: &str, title: &str, detail: &str) -> HttpResponse {
    let body = Problem {
        type_uri: format!("{PROBLEM_TYPE_BASE}{slug}"),
        title: title.into(),
        status: status.as_u16(),
        detail: detail.into(),
        errors: Vec::new(),
    };
    HttpResponse::build(status)
        .content_type(PROBLEM_JSON)
        .json(body)
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized(_) | AppError::TotpRequired | AppError::TotpInvalid => {
                StatusCode::UNAUTHORIZED
            }
            AppError::Forbidden(_) | AppError::TotpEnrollmentRequired => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        match self {
            AppError::Internal(cause) => tracing::error!(%cause, "internal error"),
            AppError::Unavailable(cause) => tracing::warn!(%cause, "storage unavailable"),
            _ => {}
        }
        let (slug, title) = kind(self);
        let body = Problem {
            type_uri: format!("{PROBLEM_TYPE_BASE}{slug}"),
            title: title.into(),
            status: status.as_u16(),
            detail: detail(self),
            errors: match self {
                AppError::Validation(errors) => errors.clone(),
                _ => Vec::new(),
            },
        };
        let mut response = HttpResponse::build(status);
        response.content_type(PROBLEM_JSON);
        match self {
            AppError::RateLimited { retry_after_s } => {
                response.insert_header((header::RETRY_AFTER, retry_after_s.to_string()));
            }
            AppError::Unauthorized(_) | AppError::TotpRequired | AppError::TotpInvalid => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            AppError::Unavailable(_) => {
                response.insert_header((header::RETRY_AFTER, "5"));
            }
            _ => {}
        }
        response.json(body)
    }
}
