//! `/auth/*` and `/me`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{ApiJson, Caller};
use super::problem::Problem;
use super::totp::verify_second_factor as second_factor;
use crate::auth::password;
use crate::domain::account::Role;
use crate::domain::ids::{OrgId, SessionId, UserId};
use crate::error::AppError;
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

/// The login limits of `auth.*`, in one place for [`reserve_login`].
#[derive(Debug, Clone, Copy)]
struct LoginLimits {
    per_address: i64,
    per_account_address: i64,
    slow_after: i64,
    slow_interval_ms: i64,
    window_ms: i64,
}

/// Counts a login attempt before its password is checked, or refuses it (`Err(retry ms)`):
///
/// - failures per client address (`addr:`), so one address cannot spray many accounts;
/// - failures per account and address (`acct:`), so one address cannot guess one account,
///   while the right password from any other address still works;
/// - failures per account from anywhere (`email:`): past `login_slow_after_failures` the
///   account takes at most one attempt per `login_slow_interval_ms` from anywhere, which
///   bounds a distributed guesser without locking out its owner (they wait a second).
///
/// Returns the ids of the counts taken, to forget them if the password is right.
fn reserve_login(
    conn: &mut store::DbConn,
    email: &str,
    address: &str,
    limits: &LoginLimits,
    now_ms: i64,
) -> Result<Result<Vec<String>, i64>, AppError> {
    let by_address = format!("addr:{address}");
    let by_pair = format!("acct:{email}|{address}");
    let by_account = format!("email:{email}");
    store::auth::lock_buckets(conn, &[&by_address, &by_pair, &by_account])?;
    let since = now_ms - limits.window_ms;
    let retry = |oldest: Option<i64>| oldest.unwrap_or(now_ms) + limits.window_ms - now_ms;
    let (failures, oldest) = store::auth::recent_attempts(conn, &by_address, since)?;
    if failures >= limits.per_address {
        return Ok(Err(retry(oldest)));
    }
    let (failures, oldest) = store::auth::recent_attempts(conn, &by_pair, since)?;
    if failures >= limits.per_account_address {
        return Ok(Err(retry(oldest)));
    }
    let (failures, _) = store::auth::recent_attempts(conn, &by_account, since)?;
    if failures >= limits.slow_after {
        let slow = format!("slow:{email}");
        if let Err(retry_ms) =
            store::auth::take_slot(conn, &slow, now_ms, limits.slow_interval_ms, 1)?
        {
            return Ok(Err(retry_ms));
        }
    }
    let mut taken = Vec::with_capacity(3);
    for bucket in [&by_address, &by_pair, &by_account] {
        taken.push(store::auth::record_attempt(
            conn, bucket, now_ms, false, since,
        )?);
    }
    Ok(Ok(taken))
}

/// The client address used for rate limiting. `X-Forwarded-For` is believed only when the
/// operator says a proxy sets it; otherwise anyone could pick a fresh address per attempt.
pub(crate) fn client_address(req: &HttpRequest, state: &AppState) -> String {
    if state.settings.server.trust_forwarded_for {
        // The proxy appends the address it saw to `X-Forwarded-For`: the last entry. Anything
        // before it is what the client sent, and a client must not choose the address the
        // login limits count (or the audit log records).
        let last = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .last()
            .and_then(|entry| entry.parse::<std::net::IpAddr>().ok());
        if let Some(ip) = last {
            return ip.to_string();
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
    let address = client_address(&req, &state);
    let auth = &state.settings.auth;
    let window_ms = auth.login_window_s * 1000;
    let now_ms = state.clock.now_ms();
    let limits = LoginLimits {
        per_address: i64::from(auth.login_max_per_address),
        per_account_address: i64::from(auth.login_max_failures_per_email),
        slow_after: i64::from(auth.login_slow_after_failures),
        slow_interval_ms: i64::try_from(auth.login_slow_interval_ms).unwrap_or(1000),
        window_ms,
    };

    // 1. The attempt is counted before the password is checked (in one transaction, with its
    //    buckets locked), so concurrent guesses cannot all be checked; a right password takes
    //    its counts back afterwards.
    let (reserved, user) = {
        let email = email.clone();
        state
            .store
            .write(move |conn| {
                let reserved = reserve_login(conn, &email, &address, &limits, now_ms)?;
                let user = store::accounts::find_by_email(conn, &email)?;
                Ok((reserved, user))
            })
            .await?
    };
    let reserved = reserved.map_err(|retry_after_ms| AppError::RateLimited {
        retry_after_s: u64::try_from((retry_after_ms.max(1000) + 999) / 1000).unwrap_or(1),
    })?;

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

    // 4. Settle the attempt and, on success, spend the second factor and start the login.
    let refresh_ttl_ms = auth.refresh_ttl_s * 1000;
    let user_id = account.as_ref().map(|a| a.id);
    let outcome = state
        .store
        .write(move |conn| {
            let Some(id) = user_id else {
                // A failure: the reserved counts stand.
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
            match outcome {
                // A wrong code counts like a wrong password: the reserved counts stand.
                Some(LoginOutcome::TotpInvalid) => Ok(LoginOutcome::TotpInvalid),
                // The right password (asked for a code, or done): not a failure, and logins
                // that succeed are not limited by address (a campaign office shares one).
                other => {
                    for attempt in &reserved {
                        store::auth::forget_attempt(conn, attempt)?;
                    }
                    match other {
                        None => {
                            let (session, refresh) =
                                store::auth::create_session(conn, id, now_ms, refresh_ttl_ms)?;
                            Ok(LoginOutcome::Session(session, refresh))
                        }
                        Some(other) => Ok(other),
                    }
                }
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
            Ok(store::auth::rotate_refresh_token(
                conn,
                &body.refresh_token,
                now_ms,
                ttl_ms,
            )?)
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
        .write(move |conn| Ok(store::auth::logout(conn, &body.refresh_token, now_ms)?))
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
        .read(move |conn| Ok(store::accounts::find(conn, id)?))
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
