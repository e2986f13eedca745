//! `/push`: the VAPID public key, the caller's push subscriptions, and a test push.

use actix_web::{web, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{path_id, ApiJson, Caller};
use super::problem::Problem;
use crate::domain::delivery::{Channel, DeliveryStatus, MessageType};
use crate::domain::field_error::FieldError;
use crate::error::AppError;
use crate::push::ssrf;
use crate::state::AppState;
use crate::store::notifications::NotificationRow;
use crate::store::push::Saved;
use crate::store::{self, new_id};

#[derive(Serialize, ToSchema)]
pub struct VapidKeyResponse {
    /// Base64url uncompressed P-256 point: the browser's `applicationServerKey`.
    pub public_key: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionKeys {
    pub p256dh: String,
    pub auth: String,
}

/// A browser's `PushSubscription.toJSON()`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SubscriptionRequest {
    pub endpoint: String,
    #[serde(default)]
    pub expiration_time: Option<f64>,
    pub keys: SubscriptionKeys,
}

#[derive(Serialize, ToSchema)]
pub struct SubscriptionCreated {
    pub id: String,
}

#[derive(Serialize, ToSchema)]
pub struct SubscriptionView {
    pub id: String,
    pub endpoint: String,
    #[serde(rename = "expirationTime")]
    pub expiration_time: Option<i64>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct SubscriptionList {
    pub items: Vec<SubscriptionView>,
}

#[utoipa::path(get, path = "/api/v1/push/vapid-public-key", tag = "push",
    responses((status = 200, body = VapidKeyResponse)))]
pub async fn vapid_public_key(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(VapidKeyResponse {
        public_key: state.push_client.vapid().public_key().to_owned(),
    })
}

fn decode_key(field: &str, value: &str, errors: &mut Vec<FieldError>) -> Option<Vec<u8>> {
    match URL_SAFE_NO_PAD.decode(value.trim_end_matches('=')) {
        Ok(bytes) => Some(bytes),
        Err(_) => {
            errors.push(FieldError::new(field, "must be base64url"));
            None
        }
    }
}

#[utoipa::path(post, path = "/api/v1/push/subscriptions", tag = "push", security(("bearer" = [])),
    request_body = SubscriptionRequest,
    responses((status = 201, description = "registered", body = SubscriptionCreated),
              (status = 200, description = "the same endpoint again: updated", body = SubscriptionCreated),
              (status = 409, description = "10 subscriptions already", body = Problem),
              (status = 422, description = "bad keys, or an endpoint that is not https or points inside", body = Problem)))]
pub async fn subscribe(
    state: web::Data<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<SubscriptionRequest>,
) -> Result<HttpResponse, AppError> {
    let allow_private = state.settings.push.allow_private_endpoints;
    let mut errors = Vec::new();
    if body.endpoint.len() > 2048 {
        errors.push(FieldError::new(
            "endpoint",
            "must be at most 2048 characters",
        ));
    }
    let url = match ssrf::check_url(&body.endpoint, allow_private) {
        Ok(url) => Some(url),
        Err(e) => {
            errors.push(FieldError::new("endpoint", e.to_string()));
            None
        }
    };
    if let Some(p256dh) = decode_key("keys.p256dh", &body.keys.p256dh, &mut errors) {
        let valid = p256dh.len() == 65
            && p256dh[0] == 4
            && p256::PublicKey::from_sec1_bytes(&p256dh).is_ok();
        if !valid {
            errors.push(FieldError::new(
                "keys.p256dh",
                "must be an uncompressed P-256 public key (65 bytes)",
            ));
        }
    }
    if let Some(auth) = decode_key("keys.auth", &body.keys.auth, &mut errors) {
        if auth.len() != 16 {
            errors.push(FieldError::new("keys.auth", "must be 16 bytes"));
        }
    }
    let expiration_time = match body.expiration_time {
        Some(t) if (0.0..1e15).contains(&t) => Some(t as i64),
        Some(_) => {
            errors.push(FieldError::new(
                "expirationTime",
                "must be epoch milliseconds or null",
            ));
            None
        }
        None => None,
    };
    let Some(url) = url.filter(|_| errors.is_empty()) else {
        return Err(AppError::Validation(errors));
    };
    ssrf::check_resolved(&url, allow_private)
        .await
        .map_err(|e| AppError::field("endpoint", e.to_string()))?;
    let now_ms = state.clock.now_ms();
    let user = caller.id;
    let saved = state
        .store
        .write(move |conn| {
            Ok(store::push::save_subscription(
                conn,
                user,
                &body.endpoint,
                &body.keys.p256dh,
                &body.keys.auth,
                expiration_time,
                now_ms,
            )?)
        })
        .await?;
    Ok(match saved {
        Saved::Created(id) => HttpResponse::Created().json(SubscriptionCreated { id }),
        Saved::Updated(id) => HttpResponse::Ok().json(SubscriptionCreated { id }),
    })
}

#[utoipa::path(get, path = "/api/v1/push/subscriptions", tag = "push", security(("bearer" = [])),
    responses((status = 200, body = SubscriptionList)))]
pub async fn list_subscriptions(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, AppError> {
    let user = caller.id.to_string();
    let rows = state
        .store
        .read(move |conn| Ok(store::push::subscriptions_of(conn, &user)?))
        .await?;
    Ok(HttpResponse::Ok().json(SubscriptionList {
        items: rows
            .into_iter()
            .map(|r| SubscriptionView {
                id: r.id,
                endpoint: r.endpoint,
                expiration_time: r.expiration_time,
                created_at: crate::domain::time::from_millis(r.created_at),
            })
            .collect(),
    }))
}

#[utoipa::path(delete, path = "/api/v1/push/subscriptions/{id}", tag = "push", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn unsubscribe(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id: uuid::Uuid = path_id(&id, "push subscription")?;
    let user = caller.id;
    let deleted = state
        .store
        .write(move |conn| {
            Ok(store::push::delete_subscription(
                conn,
                user,
                &id.to_string(),
            )?)
        })
        .await?;
    if deleted {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(AppError::NotFound("push subscription"))
    }
}

/// `POST /push/test` per user per minute.
const TESTS_PER_MINUTE: i64 = 6;

#[utoipa::path(post, path = "/api/v1/push/test", tag = "push", security(("bearer" = [])),
    responses((status = 202, description = "a `test` push is on its way to the caller's subscriptions"),
              (status = 429, description = "more than 6 tests a minute; see Retry-After", body = Problem)))]
pub async fn test_push(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, AppError> {
    let now_ms = state.clock.now_ms();
    let payload =
        crate::push::payload::build(&crate::push::payload::Message::of(MessageType::Test))
            .to_string();
    let (recipient, caller_id) = (caller.id.to_string(), caller.id);
    state
        .store
        .write(move |conn| {
            // Each test is a request to every push service the caller registered: a few a
            // minute is all a person needs.
            let bucket = format!("push_test:{recipient}");
            if let Err(retry_ms) =
                store::auth::take_slot(conn, &bucket, now_ms, 60_000, TESTS_PER_MINUTE)?
            {
                return Err(AppError::RateLimited {
                    retry_after_s: u64::try_from((retry_ms + 999) / 1000).unwrap_or(60),
                });
            }
            let id = new_id();
            Ok(store::notifications::insert_if_new(
                conn,
                &NotificationRow {
                    dedupe_key: format!("test:{id}:{recipient}:webpush"),
                    id,
                    alert_id: None,
                    outing_id: None,
                    recipient_id: Some(caller_id),
                    channel: Channel::Webpush,
                    step: "test".into(),
                    message_type: MessageType::Test,
                    level: 0,
                    payload,
                    status: DeliveryStatus::Pending,
                    attempts: 0,
                    due_at: Some(now_ms),
                    created_at: now_ms,
                    next_attempt_at: now_ms,
                    // A test nobody sees within ten minutes has answered the question.
                    expires_at: now_ms + 600_000,
                    sent_at: None,
                    last_error: None,
                    claimed_by: None,
                    claimed_until: None,
                    provider_sid: None,
                },
            )?)
        })
        .await?;
    state.changed();
    Ok(HttpResponse::Accepted().finish())
}
