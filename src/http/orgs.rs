//! `/orgs`: organisations, their escalation policy and police contacts.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{path_id, ApiJson, Caller};
use super::problem::Problem;
use crate::domain::account::{DisplayName, Role};
use crate::domain::ids::{OrgId, UserId};
use crate::domain::policy::EscalationPolicy;
use crate::domain::time::parse_timezone;
use crate::error::AppError;
use crate::state::AppState;
use crate::store::{self, DbConn};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrgRequest {
    pub name: String,
    /// IANA time zone name; `Europe/London` when left out.
    pub timezone: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrgRequest {
    pub name: Option<String>,
    /// IANA time zone name (`Europe/London`): the times in messages and evidence records.
    pub timezone: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct OrgResponse {
    pub id: OrgId,
    pub name: String,
    /// The policy in force: the organisation's own, or the server default.
    pub escalation_policy: EscalationPolicy,
    /// IANA time zone name: times people read are local to it.
    pub timezone: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PoliceContactRequest {
    pub user_id: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecuritySettings {
    /// Organisers must enable two-factor authentication (TOTP); until they do, every request
    /// but `GET /me` and enrollment answers 403 `.../totp-enrollment-required`. Canvassers are
    /// never asked.
    pub require_totp: bool,
}

/// Who may see an organisation: admins, its members and its assigned police.
pub fn can_see_org(conn: &mut DbConn, caller: &Caller, org: OrgId) -> Result<bool, AppError> {
    Ok(match caller.role {
        Role::Admin => true,
        Role::Organiser | Role::Canvasser => caller.org_id == Some(org),
        Role::Police => store::accounts::is_police_of(conn, caller.id, org)?,
    })
}

fn org_response(org: store::orgs::Organisation, default: &EscalationPolicy) -> OrgResponse {
    OrgResponse {
        escalation_policy: org.policy(default),
        id: org.id,
        name: org.name,
        timezone: org.timezone.name().to_owned(),
    }
}

#[utoipa::path(post, path = "/api/v1/orgs", tag = "organisations", security(("bearer" = [])),
    request_body = CreateOrgRequest,
    responses((status = 201, body = OrgResponse), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create_org(
    state: web::Data<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateOrgRequest>,
) -> Result<HttpResponse, AppError> {
    caller.require_role(&[Role::Admin])?;
    let mut errors = Vec::new();
    let name = DisplayName::parse("name", &body.name).map_err(|e| errors.push(e));
    let timezone = match body.timezone.as_deref() {
        Some(raw) => parse_timezone("timezone", raw).map_err(|e| errors.push(e)),
        None => Ok(chrono_tz::Europe::London),
    };
    let (Ok(name), Ok(timezone)) = (name, timezone) else {
        return Err(AppError::Validation(errors));
    };
    let now_ms = state.clock.now_ms();
    let org = state
        .store
        .write(move |conn| Ok(store::orgs::insert(conn, name.as_str(), timezone, now_ms)?))
        .await?;
    Ok(HttpResponse::Created().json(org_response(org, &state.settings.escalation)))
}

#[utoipa::path(get, path = "/api/v1/orgs/{id}", tag = "organisations", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = OrgResponse), (status = 404, body = Problem)))]
pub async fn get_org(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let org_id: OrgId = path_id(&id, "organisation")?;
    let org = state
        .store
        .read(move |conn| {
            if !can_see_org(conn, &caller, org_id)? {
                return Ok(None);
            }
            Ok(store::orgs::find(conn, org_id)?)
        })
        .await?
        .ok_or(AppError::NotFound("organisation"))?;
    Ok(HttpResponse::Ok().json(org_response(org, &state.settings.escalation)))
}

#[utoipa::path(patch, path = "/api/v1/orgs/{id}", tag = "organisations", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = UpdateOrgRequest,
    responses((status = 200, body = OrgResponse), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update_org(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    ApiJson(body): ApiJson<UpdateOrgRequest>,
) -> Result<HttpResponse, AppError> {
    let org_id: OrgId = path_id(&id, "organisation")?;
    let mut errors = Vec::new();
    let name = body
        .name
        .as_deref()
        .map(|raw| DisplayName::parse("name", raw))
        .transpose()
        .map_err(|e| errors.push(e));
    let timezone = body
        .timezone
        .as_deref()
        .map(|raw| parse_timezone("timezone", raw))
        .transpose()
        .map_err(|e| errors.push(e));
    let (Ok(name), Ok(timezone)) = (name, timezone) else {
        return Err(AppError::Validation(errors));
    };
    let org = state
        .store
        .write(move |conn| {
            if !can_see_org(conn, &caller, org_id)? {
                return Err(AppError::NotFound("organisation"));
            }
            caller.require_role(&[Role::Admin, Role::Organiser])?;
            store::orgs::update(conn, org_id, name.as_ref().map(|n| n.as_str()), timezone)?;
            store::orgs::find(conn, org_id)?.ok_or(AppError::NotFound("organisation"))
        })
        .await?;
    Ok(HttpResponse::Ok().json(org_response(org, &state.settings.escalation)))
}

#[utoipa::path(put, path = "/api/v1/orgs/{id}/escalation-policy", tag = "organisations",
    security(("bearer" = [])), params(("id" = String, Path)), request_body = EscalationPolicy,
    responses((status = 200, body = EscalationPolicy), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn put_policy(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    ApiJson(policy): ApiJson<EscalationPolicy>,
) -> Result<HttpResponse, AppError> {
    let org_id: OrgId = path_id(&id, "organisation")?;
    let min = state.settings.limits.min_checkin_interval_s;
    let default_policy = state.settings.escalation;
    let now_ms = state.clock.now_ms();
    state
        .store
        .write(move |conn| {
            if !can_see_org(conn, &caller, org_id)? {
                return Err(AppError::NotFound("organisation"));
            }
            let Some(org) = store::orgs::find(conn, org_id)? else {
                return Err(AppError::NotFound("organisation"));
            };
            caller.require_role(&[Role::Admin, Role::Organiser])?;
            policy.validate(min).map_err(AppError::Validation)?;
            let old = org.policy(&default_policy);
            store::orgs::set_policy(conn, org_id, &policy)?;
            // Who changed how fast the police are called, from what to what.
            Ok(store::audit::record_action(
                conn,
                &store::audit::Action {
                    actor_id: caller.id.to_string(),
                    actor_role: caller.role.as_str(),
                    action: "policy",
                    subject_id: None,
                    org_id: Some(org_id.to_string()),
                    detail: serde_json::json!({"old": old, "new": policy}),
                },
                now_ms,
            )?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(policy))
}

#[utoipa::path(post, path = "/api/v1/orgs/{id}/police-contacts", tag = "organisations",
    security(("bearer" = [])), params(("id" = String, Path)), request_body = PoliceContactRequest,
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn add_police_contact(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    ApiJson(body): ApiJson<PoliceContactRequest>,
) -> Result<HttpResponse, AppError> {
    let org_id: OrgId = path_id(&id, "organisation")?;
    let now_ms = state.clock.now_ms();
    state
        .store
        .write(move |conn| {
            if !can_see_org(conn, &caller, org_id)? || store::orgs::find(conn, org_id)?.is_none() {
                return Err(AppError::NotFound("organisation"));
            }
            caller.require_role(&[Role::Admin])?;
            let not_police = || AppError::field("user_id", "must be the id of a police user");
            let user_id: UserId = body.user_id.parse().map_err(|_| not_police())?;
            let user = store::accounts::find(conn, user_id)?.ok_or_else(not_police)?;
            if user.role != Role::Police {
                return Err(not_police());
            }
            Ok(store::accounts::assign_police(
                conn, org_id, user_id, now_ms,
            )?)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(delete, path = "/api/v1/orgs/{id}/police-contacts/{user_id}", tag = "organisations",
    security(("bearer" = [])), params(("id" = String, Path), ("user_id" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn remove_police_contact(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    let (org, user) = path.into_inner();
    let org_id: OrgId = path_id(&org, "organisation")?;
    let user_id: UserId = path_id(&user, "police contact")?;
    state
        .store
        .write(move |conn| {
            if !can_see_org(conn, &caller, org_id)? || store::orgs::find(conn, org_id)?.is_none() {
                return Err(AppError::NotFound("organisation"));
            }
            caller.require_role(&[Role::Admin])?;
            if !store::accounts::unassign_police(conn, org_id, user_id)? {
                return Err(AppError::NotFound("police contact"));
            }
            Ok(())
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/api/v1/orgs/{id}/security", tag = "organisations",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = SecuritySettings), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
pub async fn get_security(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let org_id: OrgId = path_id(&id, "organisation")?;
    let require_totp = state
        .store
        .read(move |conn| {
            let found = match can_see_org(conn, &caller, org_id)? {
                true => store::orgs::require_totp(conn, org_id)?,
                false => None,
            };
            let required = found.ok_or(AppError::NotFound("organisation"))?;
            caller.require_role(&[Role::Admin, Role::Organiser])?;
            Ok(required)
        })
        .await?;
    Ok(HttpResponse::Ok().json(SecuritySettings { require_totp }))
}

#[utoipa::path(put, path = "/api/v1/orgs/{id}/security", tag = "organisations",
    security(("bearer" = [])), params(("id" = String, Path)), request_body = SecuritySettings,
    responses((status = 200, body = SecuritySettings), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn put_security(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    ApiJson(body): ApiJson<SecuritySettings>,
) -> Result<HttpResponse, AppError> {
    let org_id: OrgId = path_id(&id, "organisation")?;
    let require_totp = body.require_totp;
    let by = caller.id;
    state
        .store
        .write(move |conn| {
            if !can_see_org(conn, &caller, org_id)? || store::orgs::find(conn, org_id)?.is_none() {
                return Err(AppError::NotFound("organisation"));
            }
            caller.require_role(&[Role::Admin, Role::Organiser])?;
            Ok(store::orgs::set_require_totp(conn, org_id, require_totp)?)
        })
        .await?;
    // Organisers without a second factor must be stopped at once, not after the memo expires.
    state.sessions.clear();
    tracing::info!(org = %org_id, by = %by, require_totp, "organisation security settings changed");
    Ok(HttpResponse::Ok().json(SecuritySettings { require_totp }))
}
