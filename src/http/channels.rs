//! Notification channels beyond Web Push: the caller's own (`/me/channels`: email, personal
//! webhook) and an organisation's signed webhook (`/orgs/{id}/webhook`).

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{path_id, ApiJson, Caller};
use super::orgs::can_see_org;
use super::problem::Problem;
use crate::domain::account::Role;
use crate::domain::ids::OrgId;
use crate::error::AppError;
use crate::push::ssrf;
use crate::push::webhook::SECRET_CHARS;
use crate::state::AppState;
use crate::store;

const MAX_URL_CHARS: usize = 2048;

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Channels {
    /// Alerts also by email, to the account's address.
    pub email: bool,
    /// Alerts also POSTed here, signed with this webhook's own secret (given once, in the
    /// answer to the `PUT` that set the URL); null for none.
    pub webhook_url: Option<String>,
    /// Alert steps also by SMS to the account's phone (reply with the code to take charge).
    #[serde(default)]
    pub sms: bool,
    /// A call at level 2 (and for panic or duress) when still unacknowledged
    /// `escalation.voice_after_s` later (press 1 to take charge).
    #[serde(default)]
    pub voice: bool,
}

#[derive(Serialize, ToSchema)]
pub struct ChannelsSet {
    pub email: bool,
    pub webhook_url: Option<String>,
    pub sms: bool,
    pub voice: bool,
    /// The new webhook's signing secret (HMAC-SHA256, see webhooks.md): only in the answer
    /// to the `PUT` that set a new or changed URL, and never shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// `https://` and public (the same rules as push endpoints).
    pub url: String,
    /// Signs every request (HMAC-SHA256); 16–256 characters. Never shown again.
    pub secret: String,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookResponse {
    pub url: String,
}

/// The address rules of push endpoints: https, no credentials, never inside our network.
async fn check_webhook_url(state: &AppState, field: &str, url: &str) -> Result<(), AppError> {
    if url.chars().count() > MAX_URL_CHARS {
        return Err(AppError::field(
            field,
            format!("must be at most {MAX_URL_CHARS} characters"),
        ));
    }
    let allow_private = state.settings.push.allow_private_endpoints;
    let parsed =
        ssrf::check_url(url, allow_private).map_err(|e| AppError::field(field, e.to_string()))?;
    ssrf::check_resolved(&parsed, allow_private)
        .await
        .map_err(|e| AppError::field(field, e.to_string()))
}

#[utoipa::path(get, path = "/api/v1/me/channels", tag = "channels", security(("bearer" = [])),
    responses((status = 200, body = Channels)))]
pub async fn get_channels(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, AppError> {
    let user = caller.id;
    let (email, webhook_url) = state
        .store
        .read(move |conn| Ok(store::accounts::channels(conn, user)?))
        .await?
        .ok_or(AppError::NotFound("user"))?;
    let (_, sms, voice) = state
        .store
        .read(move |conn| Ok(store::accounts::phone_channels(conn, user)?))
        .await?;
    Ok(HttpResponse::Ok().json(Channels {
        email,
        webhook_url,
        sms,
        voice,
    }))
}

#[utoipa::path(put, path = "/api/v1/me/channels", tag = "channels", security(("bearer" = [])),
    request_body = Channels,
    responses((status = 200, body = ChannelsSet),
              (status = 422, description = "a webhook URL that is not https or points inside", body = Problem)))]
pub async fn put_channels(
    state: web::Data<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<Channels>,
) -> Result<HttpResponse, AppError> {
    if let Some(url) = &body.webhook_url {
        check_webhook_url(&state, "webhook_url", url).await?;
    }
    let user = caller.id;
    let (phone, _, _) = state
        .store
        .read(move |conn| Ok(store::accounts::phone_channels(conn, user)?))
        .await?;
    if phone.is_none() && (body.sms || body.voice) {
        return Err(AppError::field(
            if body.sms { "sms" } else { "voice" },
            "needs a phone number on the account (PATCH /users/{id} with phone)",
        ));
    }
    let (sms, voice) = (body.sms, body.voice);
    let (email, webhook_url) = (body.email, body.webhook_url.clone());
    let secret = crate::auth::tokens::new_refresh_token();
    let fresh = {
        let secret = secret.clone();
        state
            .store
            .write(move |conn| {
                store::accounts::set_phone_channels(conn, user, sms, voice)?;
                Ok(store::accounts::set_channels(
                    conn,
                    user,
                    email,
                    webhook_url.as_deref(),
                    &secret,
                )?)
            })
            .await?
    };
    Ok(HttpResponse::Ok().json(ChannelsSet {
        email: body.email,
        webhook_url: body.webhook_url,
        sms: body.sms,
        voice: body.voice,
        webhook_secret: fresh.then_some(secret),
    }))
}

/// Admins and the organisation's organisers; 403 for others who can see it, 404 otherwise.
async fn authorise_org(state: &AppState, caller: Caller, org: OrgId) -> Result<(), AppError> {
    state
        .store
        .read(move |conn| {
            if !can_see_org(conn, &caller, org)? || store::orgs::find(conn, org)?.is_none() {
                return Err(AppError::NotFound("organisation"));
            }
            caller.require_role(&[Role::Admin, Role::Organiser])
        })
        .await
}

#[utoipa::path(put, path = "/api/v1/orgs/{id}/webhook", tag = "channels", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = WebhookRequest,
    responses((status = 200, description = "set; the secret is never echoed", body = WebhookResponse),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn put_org_webhook(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    ApiJson(body): ApiJson<WebhookRequest>,
) -> Result<HttpResponse, AppError> {
    let org: OrgId = path_id(&id, "organisation")?;
    authorise_org(&state, caller, org).await?;
    let secret_chars = body.secret.chars().count();
    if !SECRET_CHARS.contains(&secret_chars) {
        return Err(AppError::field(
            "secret",
            format!(
                "must be {} to {} characters",
                SECRET_CHARS.start(),
                SECRET_CHARS.end()
            ),
        ));
    }
    check_webhook_url(&state, "url", &body.url).await?;
    let (url, secret) = (body.url.clone(), body.secret);
    state
        .store
        .write(move |conn| Ok(store::orgs::set_webhook(conn, org, Some((&url, &secret)))?))
        .await?;
    Ok(HttpResponse::Ok().json(WebhookResponse { url: body.url }))
}

#[utoipa::path(delete, path = "/api/v1/orgs/{id}/webhook", tag = "channels", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_org_webhook(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let org: OrgId = path_id(&id, "organisation")?;
    authorise_org(&state, caller, org).await?;
    state
        .store
        .write(move |conn| Ok(store::orgs::set_webhook(conn, org, None)?))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Serialize, ToSchema)]
pub struct SmsTestResponse {
    /// The provider's id of the message.
    pub sid: String,
}

/// Test SMS a minute per user: enough to check a number, too few to run up a bill.
const SMS_TESTS_PER_MINUTE: i64 = 3;

#[utoipa::path(post, path = "/api/v1/me/sms-test", tag = "channels", security(("bearer" = [])),
    responses((status = 200, description = "the provider accepted a test SMS to the account's phone", body = SmsTestResponse),
              (status = 409, description = "SMS is not configured on this server, or the provider could not be reached", body = Problem),
              (status = 422, description = "the account has no phone number, or the provider refused it", body = Problem),
              (status = 429, description = "more than 3 tests a minute; see Retry-After", body = Problem)))]
pub async fn sms_test(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, AppError> {
    let Some(twilio) = state.twilio.clone() else {
        return Err(AppError::Conflict(
            "SMS is not configured on this server".into(),
        ));
    };
    let user = caller.id;
    let now_ms = state.clock.now_ms();
    let phone = state
        .store
        .write(move |conn| {
            if let Err(retry_ms) = store::auth::take_slot(
                conn,
                &format!("sms_test:{user}"),
                now_ms,
                60_000,
                SMS_TESTS_PER_MINUTE,
            )? {
                return Err(AppError::RateLimited {
                    retry_after_s: u64::try_from((retry_ms + 999) / 1000).unwrap_or(60),
                });
            }
            Ok(store::accounts::phone_channels(conn, user)?.0)
        })
        .await?
        .ok_or_else(|| AppError::field("phone", "the account has no phone number"))?;
    let callback = format!(
        "{}/api/v1/sms/status",
        state.settings.sms_callback_base().unwrap_or_default()
    );
    let text = "Doorstep test: SMS alerts will reach this phone. Reply OK and the alert's code to take charge.";
    match twilio
        .send_sms(&phone, text, &callback, now_ms / 1000)
        .await
    {
        crate::push::twilio::Sent::Accepted { sid } => {
            Ok(HttpResponse::Ok().json(SmsTestResponse { sid }))
        }
        crate::push::twilio::Sent::NotSent(crate::push::attempt::Attempt::Failed {
            error, ..
        }) => Err(AppError::field("phone", error)),
        crate::push::twilio::Sent::NotSent(_) => Err(AppError::Conflict(
            "the SMS provider could not be reached: try again shortly".into(),
        )),
    }
}
