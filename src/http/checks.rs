//! Changing an outing under way: `check-on-me`, `welfare-check` and its `welfare-reply`,
//! `PATCH /outings/{id}`, and the owner's `all-clear`.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use super::extract::{path_id, ApiJson, Caller, OptionalJson};
use super::outings::{check_pin, view_in_tx, MAX_NOTE_CHARS};
use super::problem::Problem;
use crate::domain::checkin::{CheckinInterval, CheckinKind};
use crate::domain::checks::parse_check_on_me;
use crate::domain::field_error::{FieldError, FieldErrors};
use crate::domain::ids::OutingId;
use crate::domain::time::from_millis;
use crate::error::AppError;
use crate::service::checks::{self, AllClear, OutingChange};
use crate::state::AppState;
use crate::wire::OutingView;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckOnMeRequest {
    /// Seconds from now: from `limits.min_checkin_interval_s` to 3600.
    pub in_s: i64,
    /// What to tell whoever is alerted ("going into number 14").
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct WelfareCheckRequest {
    /// The question as the canvasser reads it.
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DueResponse {
    /// When the alarm is raised without an answer (then `grace_s` of the policy).
    pub due_at: DateTime<Utc>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WelfareReplyRequest {
    /// The token the `welfare_check` push carried (`reply_token`).
    pub token: String,
    /// `ok` or `need_help`.
    pub kind: String,
}

/// `null` and absent differ: absent leaves a field alone, `null` clears it.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeOutingRequest {
    #[serde(default)]
    pub checkin_interval_s: Option<i64>,
    /// RFC 3339, within 7 days; `null` removes the planned end.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub planned_end_at: Option<Option<DateTime<Utc>>>,
    /// `null` removes the note.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub note: Option<Option<String>>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct AllClearRequest {
    /// The safe PIN, when PINs are set.
    #[serde(default)]
    pub pin: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/outings/{id}/check-on-me", tag = "outings",
    security(("bearer" = [])), params(("id" = String, Path)), request_body = CheckOnMeRequest,
    responses((status = 201, body = DueResponse),
              (status = 403, description = "not your outing", body = Problem),
              (status = 404, body = Problem),
              (status = 409, description = "the outing has ended, or its check-in is overdue", body = Problem),
              (status = 422, body = Problem)))]
pub async fn check_on_me(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    ApiJson(body): ApiJson<CheckOnMeRequest>,
) -> Result<HttpResponse, AppError> {
    let outing_id: OutingId = path_id(&id, "outing")?;
    let check = parse_check_on_me(
        body.in_s,
        body.note,
        state.settings.limits.min_checkin_interval_s,
    )
    .map_err(AppError::Validation)?;
    let default_policy = state.settings.escalation;
    let now_ms = state.clock.now_ms();
    let (_, due_ms) = state
        .store
        .write(move |conn| {
            checks::check_on_me(conn, &caller, outing_id, check, &default_policy, now_ms)
        })
        .await?;
    state.changed();
    Ok(HttpResponse::Created().json(DueResponse {
        due_at: from_millis(due_ms),
    }))
}

#[utoipa::path(post, path = "/api/v1/outings/{id}/welfare-check", tag = "outings",
    security(("bearer" = [])), params(("id" = String, Path)), request_body = WelfareCheckRequest,
    responses((status = 201, description = "asked: `welfare_check` pushed to the canvasser", body = DueResponse),
              (status = 403, description = "only organisers and police contacts ask", body = Problem),
              (status = 404, body = Problem),
              (status = 409, description = "the outing has ended", body = Problem),
              (status = 422, body = Problem)))]
pub async fn welfare_check(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    OptionalJson(body): OptionalJson<WelfareCheckRequest>,
) -> Result<HttpResponse, AppError> {
    let outing_id: OutingId = path_id(&id, "outing")?;
    let mut errors = FieldErrors::new();
    let note = crate::domain::checks::parse_note(body.note, &mut errors);
    errors.finish(()).map_err(AppError::Validation)?;
    let default_policy = state.settings.escalation;
    let now_ms = state.clock.now_ms();
    let (_, due_ms) = state
        .store
        .write(move |conn| {
            checks::welfare_check(conn, &caller, outing_id, note, &default_policy, now_ms)
        })
        .await?;
    state.changed();
    Ok(HttpResponse::Created().json(DueResponse {
        due_at: from_millis(due_ms),
    }))
}

#[utoipa::path(post, path = "/api/v1/outings/{id}/welfare-reply", tag = "outings",
    params(("id" = String, Path)), request_body = WelfareReplyRequest,
    responses((status = 204, description = "answered: counts as a check-in without a position"),
              (status = 404, description = "no such question pending (answered, expired or unknown token)", body = Problem),
              (status = 422, body = Problem)))]
pub async fn welfare_reply(
    state: web::Data<AppState>,
    id: web::Path<String>,
    ApiJson(body): ApiJson<WelfareReplyRequest>,
) -> Result<HttpResponse, AppError> {
    let outing_id: OutingId = path_id(&id, "outing")?;
    let kind = CheckinKind::parse(&body.kind).map_err(|e| AppError::Validation(vec![e]))?;
    if body.token.is_empty() || body.token.len() > 64 {
        return Err(AppError::NotFound("welfare check"));
    }
    let default_policy = state.settings.escalation;
    let now_ms = state.clock.now_ms();
    state
        .store
        .write(move |conn| {
            checks::welfare_reply(conn, outing_id, &body.token, kind, &default_policy, now_ms)
        })
        .await?;
    state.changed();
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(patch, path = "/api/v1/outings/{id}", tag = "outings", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = ChangeOutingRequest,
    responses((status = 200, body = OutingView),
              (status = 403, description = "not your outing", body = Problem),
              (status = 404, body = Problem),
              (status = 409, description = "the outing has ended", body = Problem),
              (status = 422, description = "a rule is broken (minimum interval, the solo maximum, a planned end in the past)", body = Problem)))]
pub async fn change_outing(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    ApiJson(body): ApiJson<ChangeOutingRequest>,
) -> Result<HttpResponse, AppError> {
    let outing_id: OutingId = path_id(&id, "outing")?;
    let now = state.clock.now();
    let mut errors: Vec<FieldError> = Vec::new();
    let interval = body
        .checkin_interval_s
        .map(|s| CheckinInterval::parse(s, state.settings.limits.min_checkin_interval_s))
        .transpose()
        .map_err(|e| errors.push(e))
        .ok()
        .flatten();
    if let Some(Some(end)) = body.planned_end_at {
        if end <= now {
            errors.push(FieldError::new("planned_end_at", "must be in the future"));
        } else if end > now + chrono::Duration::days(7) {
            errors.push(FieldError::new("planned_end_at", "must be within 7 days"));
        }
    }
    let note = body.note.map(|n| n.filter(|n| !n.trim().is_empty()));
    if let Some(Some(n)) = &note {
        if n.chars().count() > MAX_NOTE_CHARS {
            errors.push(FieldError::new(
                "note",
                format!("must be at most {MAX_NOTE_CHARS} characters"),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let change = OutingChange {
        interval,
        planned_end_at: body.planned_end_at,
        note,
    };
    let default_policy = state.settings.escalation;
    let now_ms = now.timestamp_millis();
    let view = state
        .store
        .write(move |conn| {
            let row = checks::change(conn, &caller, outing_id, change, &default_policy, now_ms)?;
            view_in_tx(conn, &caller, &row)
        })
        .await?;
    state.changed();
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(post, path = "/api/v1/outings/{id}/all-clear", tag = "outings",
    security(("bearer" = [])), params(("id" = String, Path)), request_body = AllClearRequest,
    responses((status = 200, description = "the open panic, need-help or missed check-in alert is resolved as a false alarm", body = OutingView),
              (status = 403, description = "wrong PIN, or not your outing", body = Problem),
              (status = 404, body = Problem),
              (status = 409, description = "no alert to cancel, or the outing has ended", body = Problem),
              (status = 422, description = "`pin` is required: PINs are set", body = Problem),
              (status = 429, description = "five wrong PINs in a row: locked for 15 minutes", body = Problem)))]
pub async fn all_clear(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    OptionalJson(body): OptionalJson<AllClearRequest>,
) -> Result<HttpResponse, AppError> {
    let outing_id: OutingId = path_id(&id, "outing")?;
    let pin = check_pin(&state, caller.id, Some(outing_id), body.pin).await?;
    let default_policy = state.settings.escalation;
    let now_ms = state.clock.now_ms();
    let answer = state
        .store
        .write(move |conn| {
            match checks::all_clear(conn, &caller, outing_id, pin, &default_policy, now_ms)? {
                AllClear::Cleared(row) => view_in_tx(conn, &caller, &row).map(Some),
                AllClear::NothingToClear => Ok(None),
            }
        })
        .await?;
    state.changed();
    match answer {
        Some(view) => Ok(HttpResponse::Ok().json(view)),
        None => Err(AppError::Conflict(
            "there is no panic, need-help or missed check-in alert to cancel".into(),
        )),
    }
}
