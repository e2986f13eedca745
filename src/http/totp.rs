//! `/me/totp`: two-factor authentication (TOTP, RFC 6238) with single-use recovery codes.
//!
//! Enrollment is two steps: `POST /me/totp` stores a new secret without enabling it, and
//! `POST /me/totp/confirm` enables it once the user proves their app produces the right codes.
//! Every accepted code is spent: its time step is recorded in `users.totp_last_step` and an
//! older or equal step is refused afterwards, so a code seen over someone's shoulder cannot be
//! replayed.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{ApiJson, Caller};
use super::problem::Problem;
use crate::auth::{password, totp};
use crate::domain::account::Role;
use crate::domain::ids::UserId;
use crate::error::AppError;
use crate::state::AppState;
use crate::store;
use crate::store::accounts::UserRow;
use crate::store::totp::Proof;

/// Who may use two-factor authentication. Canvassers never do: they must be able to check in
/// with one tap.
const TOTP_ROLES: &[Role] = &[Role::Admin, Role::Organiser, Role::Police];

#[derive(Serialize, ToSchema)]
pub struct EnrollResponse {
    /// The shared secret, base32 (for typing into an authenticator app by hand).
    pub secret: String,
    /// `otpauth://totp/...` URL: show it as a QR code for the authenticator app to scan.
    pub otpauth_url: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    /// The current 6-digit code from the authenticator app (for `DELETE /me/totp` a recovery
    /// code is accepted too).
    pub code: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The account's password: an access token alone (a stolen one) must not be able to
    /// enrol a second factor and lock the owner out.
    pub password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableRequest {
    /// The account's password.
    pub password: String,
    /// The current 6-digit code from the authenticator app, or an unused recovery code.
    pub code: String,
}

/// Checks the caller's password for a sensitive change, limited like failed logins (a stolen
/// access token must not become a password oracle): 403 when wrong, 429 after too many.
pub(super) async fn confirm_password(
    state: &AppState,
    user: UserId,
    presented: String,
) -> Result<(), AppError> {
    let auth = &state.settings.auth;
    let window_ms = auth.login_window_s * 1000;
    let max = i64::from(auth.login_max_failures_per_email);
    let now_ms = state.clock.now_ms();
    let bucket = format!("password:{user}");
    let (row, (failures, oldest)) = {
        let bucket = bucket.clone();
        state
            .store
            .read(move |conn| {
                let row = store::accounts::find(conn, user)?;
                let failures = store::auth::recent_attempts(conn, &bucket, now_ms - window_ms)?;
                Ok((row, failures))
            })
            .await?
    };
    let row = row.ok_or_else(|| AppError::Unauthorized("account not found".into()))?;
    if failures >= max {
        let until = oldest.unwrap_or(now_ms) + window_ms;
        return Err(AppError::RateLimited {
            retry_after_s: (((until - now_ms).max(1000) + 999) / 1000) as u64,
        });
    }
    let hash = row.password_hash;
    let right = web::block(move || password::verify(&presented, &hash))
        .await
        .map_err(|e| AppError::internal(format!("password check: {e}")))?;
    if right {
        return Ok(());
    }
    state
        .store
        .write(move |conn| {
            Ok(store::auth::record_attempt(
                conn,
                &bucket,
                now_ms,
                false,
                now_ms - window_ms,
            )?)
        })
        .await?;
    Err(AppError::Forbidden("wrong password".into()))
}

#[derive(Serialize, ToSchema)]
pub struct ConfirmResponse {
    /// Single-use recovery codes, shown this once; each can stand in for a TOTP code at login.
    pub recovery_codes: Vec<String>,
}

/// Checks a second factor without spending it: `Some(proof)` when the TOTP code is valid now
/// (± one step) and newer than the last accepted one, or the recovery code matches an unused
/// one. The caller spends the proof (`store::totp::spend`) in the transaction that acts on it.
pub(super) async fn verify_second_factor(
    state: &AppState,
    user: UserId,
    row: &UserRow,
    totp_code: Option<String>,
    recovery_code: Option<String>,
) -> Result<Option<Proof>, AppError> {
    if let Some(code) = totp_code {
        let Some(secret) = row.totp_secret.as_deref() else {
            return Ok(None);
        };
        let now_s = state.clock.now().timestamp();
        let last = row.totp_last_step;
        return Ok(totp::check(secret, &code, now_s)?
            .filter(|step| last.is_none_or(|last| *step > last))
            .map(Proof::Step));
    }
    let Some(canonical) = recovery_code
        .as_deref()
        .and_then(totp::canonical_recovery_code)
    else {
        return Ok(None);
    };
    let unused = state
        .store
        .read(move |conn| Ok(store::totp::unused_recovery_codes(conn, user)?))
        .await?;
    let found = web::block(move || {
        unused
            .into_iter()
            .find(|(_, hash)| password::verify(&canonical, hash))
            .map(|(id, _)| id)
    })
    .await
    .map_err(|e| AppError::internal(format!("recovery code check: {e}")))?;
    Ok(found.map(Proof::RecoveryCode))
}

#[utoipa::path(post, path = "/api/v1/me/totp", tag = "auth", security(("bearer" = [])),
    request_body = EnrollRequest,
    responses((status = 201, description = "a new secret, pending until confirmed; enrolling again before confirming replaces it", body = EnrollResponse),
              (status = 401, body = Problem),
              (status = 403, description = "wrong password, or a canvasser (canvassers do not use two-factor authentication)", body = Problem),
              (status = 409, description = "two-factor authentication is already enabled", body = Problem),
              (status = 422, body = Problem),
              (status = 429, description = "too many wrong passwords; see Retry-After", body = Problem)))]
pub async fn enroll(
    state: web::Data<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<EnrollRequest>,
) -> Result<HttpResponse, AppError> {
    caller.require_role(TOTP_ROLES)?;
    confirm_password(&state, caller.id, body.password).await?;
    let secret = totp::new_secret();
    let otpauth_url = totp::otpauth_url(&secret, &caller.email)?;
    let id = caller.id;
    let stored = {
        let secret = secret.clone();
        state
            .store
            .write(move |conn| Ok(store::totp::set_pending_secret(conn, id, &secret)?))
            .await?
    };
    if !stored {
        return Err(AppError::Conflict(
            "two-factor authentication is already enabled".into(),
        ));
    }
    Ok(HttpResponse::Created().json(EnrollResponse {
        secret,
        otpauth_url,
    }))
}

#[utoipa::path(post, path = "/api/v1/me/totp/confirm", tag = "auth", security(("bearer" = [])),
    request_body = CodeRequest,
    responses((status = 200, description = "enabled; the recovery codes are shown only now", body = ConfirmResponse),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 409, description = "already enabled, or no enrollment pending", body = Problem),
              (status = 422, description = "wrong code (field `code`)", body = Problem)))]
pub async fn confirm(
    state: web::Data<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CodeRequest>,
) -> Result<HttpResponse, AppError> {
    caller.require_role(TOTP_ROLES)?;
    let id = caller.id;
    let row = state
        .store
        .read(move |conn| Ok(store::accounts::find(conn, id)?))
        .await?
        .ok_or(AppError::NotFound("user"))?;
    if row.totp_enabled {
        return Err(AppError::Conflict(
            "two-factor authentication is already enabled".into(),
        ));
    }
    let Some(secret) = row.totp_secret.clone() else {
        return Err(AppError::Conflict(
            "no enrollment is pending: start with POST /api/v1/me/totp".into(),
        ));
    };
    let last = row.totp_last_step;
    let step = totp::check(&secret, &body.code, state.clock.now().timestamp())?
        .filter(|step| last.is_none_or(|last| *step > last))
        .ok_or_else(|| {
            AppError::field(
                "code",
                "wrong or expired code: enter the current code from the authenticator app",
            )
        })?;

    let codes = totp::new_recovery_codes();
    let hashes = {
        let codes = codes.clone();
        web::block(move || {
            codes
                .iter()
                .map(|code| password::hash(&code.replace('-', "")))
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(|e| AppError::internal(format!("recovery code hashing: {e}")))??
    };
    let enabled = state
        .store
        .write(move |conn| Ok(store::totp::enable(conn, id, &secret, step, &hashes)?))
        .await?;
    if !enabled {
        return Err(AppError::Conflict(
            "the enrollment changed meanwhile (enabled or restarted elsewhere); check GET /api/v1/me"
                .into(),
        ));
    }
    state.sessions.clear();
    tracing::info!(user = %id, "two-factor authentication enabled");
    Ok(HttpResponse::Ok().json(ConfirmResponse {
        recovery_codes: codes,
    }))
}

#[utoipa::path(delete, path = "/api/v1/me/totp", tag = "auth", security(("bearer" = [])),
    request_body = DisableRequest,
    responses((status = 204, description = "disabled; the secret and every recovery code are gone"),
              (status = 401, body = Problem),
              (status = 403, description = "wrong password, or the caller's organisation requires two-factor authentication", body = Problem),
              (status = 409, description = "two-factor authentication is not enabled", body = Problem),
              (status = 422, description = "wrong or used code (field `code`)", body = Problem),
              (status = 429, description = "too many wrong codes; see Retry-After", body = Problem)))]
pub async fn disable(
    state: web::Data<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<DisableRequest>,
) -> Result<HttpResponse, AppError> {
    confirm_password(&state, caller.id, body.password).await?;
    let id = caller.id;
    let org = caller.org_id;
    let auth = &state.settings.auth;
    let window_ms = auth.login_window_s * 1000;
    let now_ms = state.clock.now_ms();
    // Wrong codes are limited like failed logins: a stolen access token must not be enough to
    // guess a code and switch the second factor off.
    let bucket = format!("totp:{id}");
    let (row, org_requires, (failures, oldest)) = {
        let bucket = bucket.clone();
        state
            .store
            .read(move |conn| {
                let row = store::accounts::find(conn, id)?;
                let required = match org {
                    Some(org) => store::orgs::require_totp(conn, org)?.unwrap_or(false),
                    None => false,
                };
                let failures = store::auth::recent_attempts(conn, &bucket, now_ms - window_ms)?;
                Ok((row, required, failures))
            })
            .await?
    };
    let row = row.ok_or(AppError::NotFound("user"))?;
    if !row.totp_enabled {
        return Err(AppError::Conflict(
            "two-factor authentication is not enabled".into(),
        ));
    }
    if org_requires {
        return Err(AppError::Forbidden(
            "your organisation requires two-factor authentication".into(),
        ));
    }
    if failures >= i64::from(auth.login_max_failures_per_email) {
        let until = oldest.unwrap_or(now_ms) + window_ms;
        return Err(AppError::RateLimited {
            retry_after_s: (((until - now_ms).max(1000) + 999) / 1000) as u64,
        });
    }
    let (totp_code, recovery_code) = if totp::looks_like_totp(&body.code) {
        (Some(body.code), None)
    } else {
        (None, Some(body.code))
    };
    let proof = verify_second_factor(&state, id, &row, totp_code, recovery_code).await?;
    let forget_before = now_ms - window_ms;
    let disabled = state
        .store
        .write(move |conn| match proof {
            Some(proof) if store::totp::spend(conn, id, &proof, now_ms)? => {
                store::totp::disable(conn, id)?;
                Ok(true)
            }
            _ => {
                store::auth::record_attempt(conn, &bucket, now_ms, false, forget_before)?;
                Ok(false)
            }
        })
        .await?;
    if !disabled {
        return Err(AppError::field(
            "code",
            "wrong or already used code: give the current authenticator code or an unused recovery code",
        ));
    }
    state.sessions.clear();
    tracing::info!(user = %id, "two-factor authentication disabled");
    Ok(HttpResponse::NoContent().finish())
}
