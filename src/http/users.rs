//! `POST /users`: accounts are created by admins, and by organisers within their organisation.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{path_id, ApiJson, Caller};
use super::pagination::{self, Page};
use super::problem::Problem;
use crate::auth::password;
use crate::domain::account::{parse_e164, parse_language, DisplayName, Email, NewPassword, Role};
use crate::domain::field_error::FieldErrors;
use crate::domain::ids::{OrgId, UserId};
use crate::domain::management::Change;
use crate::error::AppError;
use crate::service::accounts as account_service;
use crate::state::AppState;
use crate::store;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    pub email: String,
    pub password: String,
    pub display_name: String,
    pub role: Role,
    #[serde(default)]
    pub org_id: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct UserResponse {
    pub id: UserId,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub org_id: Option<OrgId>,
}

/// A validated request: every field parsed, the organisation decided.
struct NewAccount {
    email: Email,
    password: NewPassword,
    display_name: DisplayName,
    role: Role,
    org_id: Option<OrgId>,
    phone: Option<String>,
}

fn parse_phone(raw: &str) -> bool {
    let digits = raw.chars().filter(char::is_ascii_digit).count();
    (6..=20).contains(&digits)
        && raw.len() <= 32
        && raw
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')'))
}

/// Role rules of the contract: admins create anyone; organisers create canvassers and
/// organisers in their own organisation; nobody else creates accounts.
fn authorise_and_parse(caller: &Caller, body: CreateUserRequest) -> Result<NewAccount, AppError> {
    let requested_org = match body.org_id.as_deref() {
        None => None,
        Some(raw) => Some(
            raw.parse::<OrgId>()
                .map_err(|_| AppError::field("org_id", "must be a UUID"))?,
        ),
    };
    let org_id = match caller.role {
        Role::Admin => requested_org,
        Role::Organiser => {
            if !matches!(body.role, Role::Canvasser | Role::Organiser) {
                return Err(AppError::Forbidden(
                    "organisers may create only canvassers and organisers".into(),
                ));
            }
            match (requested_org, caller.org_id) {
                (Some(requested), Some(own)) if requested != own => {
                    return Err(AppError::Forbidden(
                        "organisers may create users only in their own organisation".into(),
                    ))
                }
                (_, own) => own,
            }
        }
        Role::Canvasser | Role::Police => {
            return Err(AppError::Forbidden("you may not create users".into()))
        }
    };
    let mut errors = FieldErrors::new();
    let email = Email::parse("email", &body.email)
        .map_err(|e| errors.0.push(e))
        .ok();
    let password = NewPassword::parse("password", &body.password)
        .map_err(|e| errors.0.push(e))
        .ok();
    let display_name = DisplayName::parse("display_name", &body.display_name)
        .map_err(|e| errors.0.push(e))
        .ok();
    if body.role.belongs_to_org() && org_id.is_none() {
        errors.push(
            "org_id",
            format!("is required for a {}", body.role.as_str()),
        );
    }
    if !body.role.belongs_to_org() && org_id.is_some() {
        errors.push(
            "org_id",
            format!("must be absent for a {}", body.role.as_str()),
        );
    }
    if let Some(phone) = body.phone.as_deref() {
        if !parse_phone(phone) {
            errors.push("phone", "must be a phone number (digits, spaces, + - ( ))");
        }
    }
    match (email, password, display_name, errors.is_empty()) {
        (Some(email), Some(password), Some(display_name), true) => Ok(NewAccount {
            email,
            password,
            display_name,
            role: body.role,
            org_id,
            phone: body.phone.map(|p| p.trim().to_owned()),
        }),
        _ => Err(AppError::Validation(errors.0)),
    }
}

/// Accounts an organiser may create per hour.
const CREATIONS_PER_HOUR: i64 = 100;

#[utoipa::path(post, path = "/api/v1/users", tag = "users", security(("bearer" = [])),
    request_body = CreateUserRequest,
    responses((status = 201, body = UserResponse), (status = 403, body = Problem),
              (status = 409, description = "email taken (admins; organisers get 422 on `email`, as for any unusable address)", body = Problem),
              (status = 422, body = Problem),
              (status = 429, description = "an organiser's 100 creations an hour are spent", body = Problem)))]
pub async fn create_user(
    state: web::Data<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateUserRequest>,
) -> Result<HttpResponse, AppError> {
    let new = authorise_and_parse(&caller, body)?;
    let password = new.password.clone();
    let password_hash = web::block(move || password::hash(password.expose()))
        .await
        .map_err(|e| AppError::internal(format!("password hashing: {e}")))??;
    let now_ms = state.clock.now_ms();
    let creator = caller.clone();
    let account = state
        .store
        .write(move |conn| {
            // An organiser may not learn which addresses have accounts elsewhere: a taken email
            // gets the same answer as any unusable one, and creations are counted so that the
            // answer cannot be used to sweep a list of addresses.
            if creator.role != Role::Admin {
                let bucket = format!("create_user:{}", creator.id);
                if let Err(retry_ms) =
                    store::auth::take_slot(conn, &bucket, now_ms, 3_600_000, CREATIONS_PER_HOUR)?
                {
                    return Err(AppError::RateLimited {
                        retry_after_s: u64::try_from((retry_ms + 999) / 1000).unwrap_or(3600),
                    });
                }
            }
            if let Some(org) = new.org_id {
                if store::orgs::find(conn, org)?.is_none() {
                    return Err(AppError::field("org_id", "no such organisation"));
                }
            }
            store::accounts::insert(
                conn,
                store::accounts::NewUser {
                    email: new.email.as_str(),
                    password_hash,
                    display_name: new.display_name.as_str(),
                    role: new.role,
                    org_id: new.org_id,
                    phone: new.phone.as_deref(),
                    now_ms,
                },
            )
            .map_err(|e| match e {
                store::DbError::Conflict(_) if creator.role != Role::Admin => AppError::field(
                    "email",
                    "cannot be used for a new account: use another address, or ask an administrator",
                ),
                other => other.into(),
            })
        })
        .await?;
    Ok(HttpResponse::Created().json(UserResponse {
        id: account.id,
        email: account.email,
        display_name: account.display_name,
        role: account.role,
        org_id: account.org_id,
    }))
}

/// A user as the account screens see them.
#[derive(Serialize, ToSchema)]
pub struct UserView {
    pub id: UserId,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub org_id: Option<OrgId>,
    pub phone: Option<String>,
    pub disabled: bool,
    /// `en` or `cy`.
    pub language: String,
}

fn user_view(row: &store::accounts::UserRow) -> Result<UserView, AppError> {
    let account = store::accounts::Account::try_from(row)?;
    Ok(UserView {
        id: account.id,
        email: account.email,
        display_name: account.display_name,
        role: account.role,
        org_id: account.org_id,
        phone: account.phone,
        disabled: account.disabled,
        language: row.language.clone(),
    })
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    pub org_id: Option<String>,
    /// `admin`, `organiser`, `canvasser` or `police`.
    pub role: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/users", tag = "users", security(("bearer" = [])),
    params(UserQuery),
    responses((status = 200, body = Page<UserView>),
              (status = 403, description = "not an admin or organiser", body = Problem),
              (status = 404, description = "another organisation (organisers)", body = Problem),
              (status = 422, body = Problem)))]
pub async fn list_users(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<UserQuery>,
) -> Result<HttpResponse, AppError> {
    let query = query.into_inner();
    let org = query
        .org_id
        .as_deref()
        .map(|raw| {
            raw.parse::<OrgId>()
                .map_err(|_| AppError::field("org_id", "must be an organisation id"))
        })
        .transpose()?;
    let role = query
        .role
        .as_deref()
        .map(|raw| {
            Role::parse(raw).ok_or_else(|| {
                AppError::field("role", "must be admin, organiser, canvasser or police")
            })
        })
        .transpose()?;
    let limit = pagination::limit(query.limit)?;
    let after = pagination::decode_cursor(query.cursor.as_deref())?;
    let (items, next_cursor) = state
        .store
        .read(move |conn| {
            let rows = account_service::list(conn, &caller, org, role, after, limit)?;
            let keys: Vec<(i64, String)> =
                rows.iter().map(|r| (r.created_at, r.id.clone())).collect();
            let items = rows.iter().map(user_view).collect::<Result<Vec<_>, _>>()?;
            Ok((
                items,
                pagination::next_cursor(&keys, limit, |(at, id)| (*at, id.as_str())),
            ))
        })
        .await?;
    Ok(HttpResponse::Ok().json(Page { items, next_cursor }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    #[serde(default)]
    pub display_name: Option<String>,
    /// E.164 (`+447700900123`); null removes it.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
    /// `en` or `cy`.
    #[serde(default)]
    pub language: Option<String>,
}

/// `null` (clear) told apart from an absent field (leave as it is).
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Ok(Some(Option::<String>::deserialize(d)?))
    }
}

#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = UserPatch,
    responses((status = 200, body = UserView), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn patch_user(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    ApiJson(body): ApiJson<UserPatch>,
) -> Result<HttpResponse, AppError> {
    let target: UserId = path_id(&id, "user")?;
    let mut errors = FieldErrors::new();
    let display_name = body
        .display_name
        .as_deref()
        .map(|n| DisplayName::parse("display_name", n))
        .transpose()
        .map_err(|e| errors.0.push(e))
        .ok()
        .flatten();
    let phone = match &body.phone {
        Some(Some(p)) => match parse_e164("phone", p) {
            Ok(p) => Some(Some(p)),
            Err(e) => {
                errors.0.push(e);
                None
            }
        },
        Some(None) => Some(None),
        None => None,
    };
    let language = body
        .language
        .as_deref()
        .map(|l| parse_language("language", l))
        .transpose()
        .map_err(|e| errors.0.push(e))
        .ok()
        .flatten();
    if !errors.is_empty() {
        return Err(AppError::Validation(errors.0));
    }
    let now_ms = state.clock.now_ms();
    let view = state
        .store
        .write(move |conn| {
            let row = account_service::authorised_target(conn, &caller, target, Change::Profile)?;
            store::accounts::update_profile(
                conn,
                target,
                display_name.as_ref().map(|n| n.as_str()),
                phone.as_ref().map(|p| p.as_deref()),
                language.as_deref(),
            )?;
            account_service::audit(
                conn,
                &caller,
                "account.update",
                &row,
                serde_json::json!({
                    "display_name": display_name.is_some(),
                    "phone": phone.is_some(),
                    "language": language,
                }),
                now_ms,
            )?;
            let row = store::accounts::find(conn, target)?.ok_or(AppError::NotFound("user"))?;
            user_view(&row)
        })
        .await?;
    state.sessions.clear();
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnPasswordChange {
    pub current_password: String,
    pub new_password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordReset {
    pub new_password: String,
}

async fn hash_new_password(raw: &str) -> Result<String, AppError> {
    let password =
        NewPassword::parse("new_password", raw).map_err(|e| AppError::Validation(vec![e]))?;
    web::block(move || password::hash(password.expose()))
        .await
        .map_err(|e| AppError::internal(format!("password hashing: {e}")))?
}

#[utoipa::path(post, path = "/api/v1/me/password", tag = "users", security(("bearer" = [])),
    request_body = OwnPasswordChange,
    responses((status = 204, description = "changed; every other login of the account has ended"),
              (status = 403, description = "wrong current password", body = Problem),
              (status = 422, body = Problem),
              (status = 429, description = "too many wrong passwords; see Retry-After", body = Problem)))]
pub async fn change_own_password(
    state: web::Data<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<OwnPasswordChange>,
) -> Result<HttpResponse, AppError> {
    NewPassword::parse("new_password", &body.new_password)
        .map_err(|e| AppError::Validation(vec![e]))?;
    super::totp::confirm_password(&state, caller.id, body.current_password).await?;
    let hash = hash_new_password(&body.new_password).await?;
    let now_ms = state.clock.now_ms();
    state
        .store
        .write(move |conn| {
            let row = store::accounts::find(conn, caller.id)?.ok_or(AppError::NotFound("user"))?;
            account_service::set_password(conn, &caller, &row, &hash, now_ms)
        })
        .await?;
    state.sessions.clear();
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(post, path = "/api/v1/users/{id}/password", tag = "users", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = PasswordReset,
    responses((status = 204, description = "set; the member's logins have ended"),
              (status = 403, description = "not yours to reset (an organiser's: an admin's job)", body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn reset_password(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    ApiJson(body): ApiJson<PasswordReset>,
) -> Result<HttpResponse, AppError> {
    let target: UserId = path_id(&id, "user")?;
    let checker = caller.clone();
    state
        .store
        .read(move |conn| {
            account_service::authorised_target(conn, &checker, target, Change::ResetPassword)
        })
        .await?;
    let hash = hash_new_password(&body.new_password).await?;
    let now_ms = state.clock.now_ms();
    state
        .store
        .write(move |conn| {
            let row =
                account_service::authorised_target(conn, &caller, target, Change::ResetPassword)?;
            account_service::set_password(conn, &caller, &row, &hash, now_ms)
        })
        .await?;
    state.sessions.clear();
    Ok(HttpResponse::NoContent().finish())
}

async fn set_disabled(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    disabled: bool,
) -> Result<HttpResponse, AppError> {
    let target: UserId = path_id(&id, "user")?;
    let now_ms = state.clock.now_ms();
    state
        .store
        .write(move |conn| {
            let row = account_service::authorised_target(conn, &caller, target, Change::Disable)?;
            account_service::set_disabled(conn, &caller, &row, disabled, now_ms)
        })
        .await?;
    state.sessions.clear();
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(post, path = "/api/v1/users/{id}/disable", tag = "users", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204, description = "disabled: its logins and streams end at once; an open outing still escalates"),
              (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn disable_user(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    set_disabled(state, caller, id, true).await
}

#[utoipa::path(post, path = "/api/v1/users/{id}/enable", tag = "users", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204, description = "enabled: the account can log in again"),
              (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn enable_user(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    set_disabled(state, caller, id, false).await
}
