//! `/auth/*` and `/me`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{ApiJson, Caller};
use super::totp::verify_second_factor as second_factor;
use crate::auth::password;
use crate::domain::account::Role;
use crate::domain::ids::{OrgId, SessionId, UserId};
use crate::error::{AppError, Problem};
use crate::state::AppState;
use crate::store;
use crate::store::accounts::Account;
use crate::store::auth::RefreshOutcome;
use crate::store::totp::Proof;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    /// The current 6-digit code from the authenticator app, for accounts with two-factor
    /// authentication enabled.
    #[serde(default)]
    pub totp_code: Option<String>,
    /// An unused recovery code, instead of `totp_code` (each works once).
    #[serde(default)]
    pub recovery_code: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

#[derive(Serialize, ToSchema)]
pub struct MeResponse {
    pub id: UserId,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub org_id: Option<OrgId>,
    pub has_pins: bool,
    /// Whether two-factor authentication (TOTP) is enabled for this account.
    pub totp_enabled: bool,
}

fn invalid_credentials() -> AppError {
    AppError::Unauthorized("invalid email or password".into())
}

/// The second factor of a login whose password was right.
enum SecondFactor {
    /// Two-factor authentication is not enabled for the account.
    NotNeeded,
    /// Enabled, and no code was given.
    Missing,
    /// Enabled, and the code given is wrong, used or replayed.
    Wrong,
    /// Enabled, and this proof is valid; it is spent with the login.
    Proved(Proof),
}

enum LoginOutcome {
    Session(SessionId, String),
    BadCredentials,
    TotpRequired,
    TotpInvalid,
}

/// The client address used for rate limiting. `X-Forwarded-For` is believed only when the
/// operator says a proxy sets it; otherwise anyone could pick a fresh address per attempt.
fn client_address(req: &HttpRequest, state: &AppState) -> String {
    if state.settings.server.trust_forwarded_for {
        if let Some(ip) = req.connection_info().realip_remote_addr() {
            return ip.to_owned();
        }
    }
    req.peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn issue_tokens(
    state: &AppState,
    account: &Account,
    session: SessionId,
    refresh_token: String,
) -> Result<TokenResponse, AppError> {
    let now_s = state.clock.now().timestamp();
    let access_token = state
        .keys
        .issue(account.id, session, account.role, account.org_id, now_s)
        .map_err(|e| AppError::internal(format!("signing access token: {e}")))?;
    Ok(TokenResponse {
        access_token,
        refresh_token,
        token_type: "Bearer",
        expires_in: state.keys.access_ttl_s(),
    })
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse),
              (status = 401, description = "wrong email or password (indistinguishable); with the right password for an account with two-factor authentication: problem type `.../totp-required` when no code was given, `.../totp-invalid` when the code is wrong or already used", body = Problem),
              (status = 422, description = "both `totp_code` and `recovery_code` given, or another invalid field", body = Problem),
              (status = 429, description = "rate limited; see Retry-After", body = Problem)))]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<HttpResponse, AppError> {
    if body.totp_code.is_some() && body.recovery_code.is_some() {
        return Err(AppError::field(
            "recovery_code",
            "give either totp_code or recovery_code, not both",
        ));
    }
    let email = body.email.trim().to_lowercase();
    let address_bucket = format!("addr:{}", client_address(&req, &state));
    let email_bucket = format!("email:{email}");
    let auth = &state.settings.auth;
    let window_ms = auth.login_window_s * 1000;
    let now_ms = state.clock.now_ms();

    // 1. Rate limits and the account, read without holding the write lock.
    let (limits, user) = {
        let (address_bucket, email_bucket, email) =
            (address_bucket.clone(), email_bucket.clone(), email.clone());
        state
            .store
            .read(move |conn| {
                let since = now_ms - window_ms;
                let by_address = store::auth::recent_attempts(conn, &address_bucket, since)?;
                let by_email = store::auth::recent_attempts(conn, &email_bucket, since)?;
                let user = store::accounts::find_by_email(conn, &email)?;
                Ok(((by_address, by_email), user))
            })
            .await?
    };
    let ((address_count, address_oldest), (email_failures, email_oldest)) = limits;
    let retry_after = |oldest: Option<i64>| {
        let until = oldest.unwrap_or(now_ms) + window_ms;
        (((until - now_ms).max(1000) + 999) / 1000) as u64
    };
    if address_count >= i64::from(auth.login_max_per_address) {
        return Err(AppError::RateLimited {
            retry_after_s: retry_after(address_oldest),
        });
    }
    if email_failures >= i64::from(auth.login_max_failures_per_email) {
        return Err(AppError::RateLimited {
            retry_after_s: retry_after(email_oldest),
        });
    }

    // 2. Argon2 off the async threads; an unknown email costs the same as a wrong password.
    let password = body.password;
    let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
    let verified = web::block(move || match stored_hash {
        Some(hash) if password.len() <= 1024 => password::verify(&password, &hash),
        _ => {
            password::verify_against_dummy(&password);
            false
        }
    })
    .await
    .map_err(|e| AppError::internal(format!("password check: {e}")))?;
    let account = match (&user, verified) {
        (Some(row), true) => Some(Account::try_from(row)?).filter(|a| !a.disabled),
        _ => None,
    };

    // 3. The second factor, looked at only once the password is known to be right, so that
    //    someone without the password learns nothing about it.
    let second = match (&account, &user) {
        (Some(account), Some(row)) if row.totp_enabled => {
            if body.totp_code.is_none() && body.recovery_code.is_none() {
                SecondFactor::Missing
            } else {
                match second_factor(&state, account.id, row, body.totp_code, body.recovery_code)
                    .await?
                {
                    Some(proof) => SecondFactor::Proved(proof),
                    None => SecondFactor::Wrong,
                }
            }
        }
        _ => SecondFactor::NotNeeded,
    };

    // 4. Record the attempt and, on success, spend the second factor and start the login.
    let refresh_ttl_ms = auth.refresh_ttl_s * 1000;
    let forget_before = now_ms - window_ms;
    let user_id = account.as_ref().map(|a| a.id);
    let outcome = state
        .store
        .write(move |conn| {
            let Some(id) = user_id else {
                store::auth::record_attempt(conn, &address_bucket, now_ms, false, forget_before)?;
                store::auth::record_attempt(conn, &email_bucket, now_ms, false, forget_before)?;
                return Ok(LoginOutcome::BadCredentials);
            };
            let outcome = match &second {
                SecondFactor::NotNeeded => None,
                SecondFactor::Missing => Some(LoginOutcome::TotpRequired),
                SecondFactor::Wrong => Some(LoginOutcome::TotpInvalid),
                // Conditional: of two logins racing with one code, only one gets through.
                SecondFactor::Proved(proof) => (!store::totp::spend(conn, id, proof, now_ms)?)
                    .then_some(LoginOutcome::TotpInvalid),
            };
            store::auth::record_attempt(
                conn,
                &address_bucket,
                now_ms,
                outcome.is_none(),
                forget_before,
            )?;
            match outcome {
                None => {
                    let (session, refresh) =
                        store::auth::create_session(conn, id, now_ms, refresh_ttl_ms)?;
                    Ok(LoginOutcome::Session(session, refresh))
                }
                Some(LoginOutcome::TotpInvalid) => {
                    // A wrong code counts against the email like a wrong password.
                    store::auth::record_attempt(conn, &email_bucket, now_ms, false, forget_before)?;
                    Ok(LoginOutcome::TotpInvalid)
                }
                Some(other) => Ok(other),
            }
        })
        .await?;
    match (account, outcome) {
        (Some(account), LoginOutcome::Session(session, refresh)) => {
            tracing::info!(user = %account.id, "login");
            Ok(HttpResponse::Ok().json(issue_tokens(&state, &account, session, refresh)?))
        }
        (_, LoginOutcome::TotpRequired) => Err(AppError::TotpRequired),
        (Some(account), LoginOutcome::TotpInvalid) => {
            tracing::info!(user = %account.id, "login refused: wrong or used two-factor code");
            Err(AppError::TotpInvalid)
        }
        _ => Err(invalid_credentials()),
    }
}

#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse),
              (status = 401, description = "unknown, expired or already spent token; a spent token revokes the whole login", body = Problem)))]
pub async fn refresh(
    state: web::Data<AppState>,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<HttpResponse, AppError> {
    let now_ms = state.clock.now_ms();
    let ttl_ms = state.settings.auth.refresh_ttl_s * 1000;
    let outcome = state
        .store
        .write(move |conn| {
            store::auth::rotate_refresh_token(conn, &body.refresh_token, now_ms, ttl_ms)
        })
        .await?;
    match outcome {
        RefreshOutcome::Rotated {
            user,
            session,
            refresh_token,
        } => {
            let account = Account::try_from(user.as_ref())?;
            Ok(HttpResponse::Ok().json(issue_tokens(&state, &account, session, refresh_token)?))
        }
        RefreshOutcome::Reused => {
            state.sessions.clear();
            tracing::warn!("spent refresh token presented; login revoked");
            Err(AppError::Unauthorized(
                "refresh token already used; login revoked".into(),
            ))
        }
        RefreshOutcome::Invalid => Err(AppError::Unauthorized("invalid refresh token".into())),
    }
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body = RefreshRequest,
    responses((status = 204, description = "the login is over (also for an unknown token)")))]
pub async fn logout(
    state: web::Data<AppState>,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<HttpResponse, AppError> {
    let now_ms = state.clock.now_ms();
    state
        .store
        .write(move |conn| store::auth::logout(conn, &body.refresh_token, now_ms))
        .await?;
    state.sessions.clear();
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/api/v1/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = MeResponse), (status = 401, body = Problem)))]
pub async fn me(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, AppError> {
    let id = caller.id;
    let row = state
        .store
        .read(move |conn| store::accounts::find(conn, id))
        .await?
        .ok_or(AppError::NotFound("user"))?;
    let account = Account::try_from(&row)?;
    Ok(HttpResponse::Ok().json(MeResponse {
        id: account.id,
        email: account.email,
        display_name: account.display_name,
        role: account.role,
        org_id: account.org_id,
        has_pins: account.has_pins,
        totp_enabled: row.totp_enabled,
    }))
}
