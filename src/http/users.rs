//! `POST /users`: accounts are created by admins, and by organisers within their organisation.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{ApiJson, Caller};
use crate::auth::password;
use crate::domain::account::{DisplayName, Email, NewPassword, Role};
use crate::domain::field_error::FieldErrors;
use crate::domain::ids::{OrgId, UserId};
use crate::error::{AppError, Problem};
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
                AppError::Conflict(_) if creator.role != Role::Admin => AppError::field(
                    "email",
                    "cannot be used for a new account: use another address, or ask an administrator",
                ),
                other => other,
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
