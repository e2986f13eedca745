//! `/outings`: start, view, check in (live and offline batch), panic, end. And `PUT /me/pins`.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use super::extract::{path_id, ApiJson, Caller, OptionalJson, RawJson};
use super::pagination::{self, Page};
use super::problem::Problem;
use crate::auth::password;
use crate::domain::account::Role;
use crate::domain::area;
use crate::domain::checkin::{
    classify_pin, validate_pin_pair, BatteryPct, CheckinInterval, CheckinKind, PinCheck, Position,
    RecordedAt,
};
use crate::domain::escalation::{AlertKind, OutingStatus};
use crate::domain::field_error::FieldError;
use crate::domain::ids::{OutingId, UserId};
use crate::domain::time::Instant;
use crate::error::AppError;
use crate::service::checkins::LiveCheckin;
use crate::service::outings::{self as service, NewCheckin, StartOuting};
use crate::service::pins as pin_service;
use crate::state::AppState;
use crate::store::outings::OutingScope;
use crate::store::{self, DbConn};
use crate::wire::{AlertView, CheckinResponse, CheckinView, OutingView};

pub const MAX_BATCH: usize = 500;
pub(super) const MAX_NOTE_CHARS: usize = 500;
const MAX_COMPANIONS: usize = 20;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationInput {
    pub lat: f64,
    pub lon: f64,
    #[serde(default)]
    pub accuracy_m: Option<f64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartOutingRequest {
    pub checkin_interval_s: i64,
    #[serde(default)]
    pub planned_end_at: Option<DateTime<Utc>>,
    /// GeoJSON `Polygon` / `MultiPolygon` geometry, or `{"type": "Circle", "center": [lon, lat], "radius_m": R}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub area: Option<Value>,
    #[serde(default)]
    pub companions: Vec<String>,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub start_location: Option<LocationInput>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckinRequest {
    pub lat: f64,
    pub lon: f64,
    #[serde(default)]
    pub accuracy_m: Option<f64>,
    #[serde(default)]
    pub recorded_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub battery_pct: Option<f64>,
    #[serde(default)]
    pub kind: Option<CheckinKind>,
    #[serde(default)]
    pub pin: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchItem {
    pub lat: f64,
    pub lon: f64,
    #[serde(default)]
    pub accuracy_m: Option<f64>,
    pub recorded_at: DateTime<Utc>,
    #[serde(default)]
    pub battery_pct: Option<f64>,
    #[serde(default)]
    pub kind: Option<CheckinKind>,
    /// The phone's id for this queued check-in; a retry of the same id is stored once.
    pub client_id: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    pub checkins: Vec<BatchItem>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct PanicRequest {
    #[serde(default)]
    pub lat: Option<f64>,
    #[serde(default)]
    pub lon: Option<f64>,
    #[serde(default)]
    pub accuracy_m: Option<f64>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct EndRequest {
    #[serde(default)]
    pub pin: Option<String>,
    #[serde(default)]
    pub lat: Option<f64>,
    #[serde(default)]
    pub lon: Option<f64>,
    #[serde(default)]
    pub accuracy_m: Option<f64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PinsRequest {
    pub safe_pin: String,
    pub duress_pin: String,
    /// The safe PIN now set: required once PINs are set (403 when wrong).
    #[serde(default)]
    pub current_pin: Option<String>,
}

/// The 201 of `POST /outings`: the outing, and the cautions in or touching its area.
#[derive(Serialize, ToSchema)]
pub struct StartedOutingView {
    #[serde(flatten)]
    pub outing: OutingView,
    pub cautions: Vec<crate::wire::CautionView>,
}

#[derive(Serialize, ToSchema)]
pub struct BatchResponse {
    /// Check-ins stored by this request (duplicates of earlier `client_id`s are not).
    pub stored: usize,
    pub duplicates: usize,
    pub outing: OutingView,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `active`, `overdue` or `ended`.
    pub status: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

fn prefixed(prefix: &str, mut errors: Vec<FieldError>) -> Vec<FieldError> {
    if !prefix.is_empty() {
        for e in &mut errors {
            e.field = format!("{prefix}{}", e.field);
        }
    }
    errors
}

fn parse_position(
    prefix: &str,
    lat: f64,
    lon: f64,
    accuracy_m: Option<f64>,
) -> Result<Position, Vec<FieldError>> {
    Position::parse(lat, lon, accuracy_m).map_err(|e| prefixed(prefix, e))
}

fn parse_optional_position(
    lat: Option<f64>,
    lon: Option<f64>,
    accuracy_m: Option<f64>,
) -> Result<Option<Position>, AppError> {
    match (lat, lon) {
        (None, None) if accuracy_m.is_none() => Ok(None),
        (Some(lat), Some(lon)) => parse_position("", lat, lon, accuracy_m)
            .map(Some)
            .map_err(AppError::Validation),
        (None, _) => Err(AppError::field(
            "lat",
            "is required with lon and accuracy_m",
        )),
        (_, None) => Err(AppError::field("lon", "is required with lat")),
    }
}

/// Validates one check-in; field names carry `prefix` (e.g. `checkins[3].`).
#[allow(clippy::too_many_arguments)]
fn parse_checkin(
    prefix: &str,
    lat: f64,
    lon: f64,
    accuracy_m: Option<f64>,
    recorded_at: Option<DateTime<Utc>>,
    battery_pct: Option<f64>,
    kind: Option<CheckinKind>,
    client_id: Option<String>,
    now: Instant,
) -> Result<NewCheckin, Vec<FieldError>> {
    let mut errors = Vec::new();
    let position = parse_position(prefix, lat, lon, accuracy_m)
        .map_err(|e| errors.extend(e))
        .ok();
    let recorded_at = match recorded_at {
        Some(at) => RecordedAt::parse(at, now)
            .map(|r| Some(r.get()))
            .map_err(|e| errors.extend(prefixed(prefix, vec![e])))
            .unwrap_or(None),
        None => None,
    };
    let battery_pct = match battery_pct {
        Some(b) => BatteryPct::parse(b)
            .map(Some)
            .map_err(|e| errors.extend(prefixed(prefix, vec![e])))
            .unwrap_or(None),
        None => None,
    };
    if let Some(id) = &client_id {
        if id.is_empty() || id.len() > 100 || id.chars().any(char::is_control) {
            errors.push(FieldError::new(
                format!("{prefix}client_id"),
                "must be 1 to 100 printable characters",
            ));
        }
    }
    match position {
        Some(position) if errors.is_empty() => Ok(NewCheckin {
            position,
            recorded_at,
            battery_pct,
            kind: kind.unwrap_or(CheckinKind::Ok),
            client_id,
        }),
        _ => Err(errors),
    }
}

/// Classifies a PIN typed at a prompt on `outing` (the caller's open outing when `None`)
/// against the caller's stored PIN hashes (argon2, off the async threads), under the
/// wrong-PIN lockout: the attempt is counted before the hash and settled after; while the
/// prompt is locked the answer is 429 whatever was typed (a duress PIN still raises duress).
pub(super) async fn check_pin(
    state: &AppState,
    user: UserId,
    outing: Option<OutingId>,
    presented: Option<String>,
) -> Result<PinCheck, AppError> {
    let row = state
        .store
        .read(move |conn| Ok(store::accounts::find(conn, user)?))
        .await?
        .ok_or_else(|| AppError::Unauthorized("account not found".into()))?;
    let has_pins = row.safe_pin_hash.is_some() && row.duress_pin_hash.is_some();
    let presented = presented.filter(|p| !p.is_empty());
    if !has_pins || presented.is_none() {
        return Ok(classify_pin(
            has_pins,
            presented.as_deref(),
            |_| false,
            |_| false,
        ));
    }
    let now_ms = state.clock.now_ms();
    let reserved = state
        .store
        .write(move |conn| {
            let Some(scope) = pin_service::Scope::resolve(conn, user, outing)? else {
                return Ok(None);
            };
            let gate = pin_service::reserve(conn, &scope, now_ms)?;
            Ok(Some((scope, gate)))
        })
        .await?;
    let check = web::block(move || {
        let safe = row.safe_pin_hash.unwrap_or_default();
        let duress = row.duress_pin_hash.unwrap_or_default();
        classify_pin(
            has_pins,
            presented.as_deref(),
            |pin| password::verify(pin, &safe),
            |pin| password::verify(pin, &duress),
        )
    })
    .await
    .map_err(|e| AppError::internal(format!("PIN check: {e}")))?;
    let Some((scope, gate)) = reserved else {
        return Ok(check);
    };
    let default_policy = state.settings.escalation;
    let settled = state
        .store
        .write(move |conn| pin_service::settle(conn, &scope, gate, check, &default_policy, now_ms))
        .await?;
    if settled.alert_raised {
        state.changed();
    }
    match gate.retry_after_s(crate::domain::time::from_millis(now_ms)) {
        Some(retry_after_s) => Err(AppError::RateLimited { retry_after_s }),
        None => Ok(check),
    }
}

/// Builds the caller's view of an outing inside the current transaction.
pub(super) fn view_in_tx(
    conn: &mut DbConn,
    caller: &Caller,
    row: &store::outings::OutingRow,
) -> Result<OutingView, AppError> {
    view_known(conn, caller, row, &[])
}

/// [`view_in_tx`] after storing check-ins: the latest is taken from `known`, not read back.
fn view_known(
    conn: &mut DbConn,
    caller: &Caller,
    row: &store::outings::OutingRow,
    known: &[store::outings::CheckinRow],
) -> Result<OutingView, AppError> {
    service::view_with(conn, caller, row, known)?
        .map(|(view, _)| view)
        .ok_or(AppError::NotFound("outing"))
}

#[utoipa::path(post, path = "/api/v1/outings", tag = "outings", security(("bearer" = [])),
    request_body = StartOutingRequest,
    responses((status = 201, body = StartedOutingView), (status = 403, body = Problem),
              (status = 409, description = "an outing that has not ended exists", body = Problem),
              (status = 422, body = Problem)))]
pub async fn start_outing(
    state: web::Data<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<StartOutingRequest>,
) -> Result<HttpResponse, AppError> {
    let now = state.clock.now();
    let limits = &state.settings.limits;
    let mut errors = Vec::new();
    let interval = CheckinInterval::parse(body.checkin_interval_s, limits.min_checkin_interval_s)
        .map_err(|e| errors.push(e))
        .ok();
    if let Some(end) = body.planned_end_at {
        if end <= now {
            errors.push(FieldError::new("planned_end_at", "must be in the future"));
        } else if end > now + chrono::Duration::days(7) {
            errors.push(FieldError::new("planned_end_at", "must be within 7 days"));
        }
    }
    let area = match &body.area {
        Some(value) => area::parse_area(value, limits.max_area_vertices)
            .map(Some)
            .map_err(|e| errors.extend(e))
            .unwrap_or(None),
        None => None,
    };
    let mut companions = Vec::new();
    if body.companions.len() > MAX_COMPANIONS {
        errors.push(FieldError::new(
            "companions",
            format!("at most {MAX_COMPANIONS}"),
        ));
    }
    for (i, raw) in body.companions.iter().enumerate() {
        match raw.parse::<UserId>() {
            Ok(id) if companions.contains(&id) => errors.push(FieldError::new(
                format!("companions[{i}]"),
                "is listed twice",
            )),
            Ok(id) => companions.push(id),
            Err(_) => errors.push(FieldError::new(
                format!("companions[{i}]"),
                "must be a user id",
            )),
        }
    }
    if let Some(note) = &body.note {
        if note.chars().count() > MAX_NOTE_CHARS {
            errors.push(FieldError::new(
                "note",
                format!("must be at most {MAX_NOTE_CHARS} characters"),
            ));
        }
    }
    let start_location = match &body.start_location {
        Some(l) => parse_position("start_location.", l.lat, l.lon, l.accuracy_m)
            .map(Some)
            .map_err(|e| errors.extend(e))
            .unwrap_or(None),
        None => None,
    };
    let Some(interval) = interval.filter(|_| errors.is_empty()) else {
        return Err(AppError::Validation(errors));
    };
    let req = StartOuting {
        interval,
        planned_end_at: body.planned_end_at,
        area,
        companions,
        note: body.note.filter(|n| !n.trim().is_empty()),
        start_location,
    };
    let default_policy = state.settings.escalation;
    let now_ms = now.timestamp_millis();
    let view = state
        .store
        .write(move |conn| {
            let started = service::start(conn, &caller, req, &default_policy, now_ms)?;
            Ok(StartedOutingView {
                outing: view_in_tx(conn, &caller, &started.row)?,
                cautions: crate::service::cautions::views(conn, &started.cautions)?,
            })
        })
        .await?;
    state.changed();
    Ok(HttpResponse::Created().json(view))
}

#[utoipa::path(get, path = "/api/v1/outings/{id}", tag = "outings", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = OutingView), (status = 404, body = Problem)))]
pub async fn get_outing(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let outing_id: OutingId = path_id(&id, "outing")?;
    let reader = caller.clone();
    let (view, audited) = state
        .store
        .read(move |conn| {
            let row = store::outings::find(conn, outing_id)?.ok_or(AppError::NotFound("outing"))?;
            service::view(conn, &reader, &row)?.ok_or(AppError::NotFound("outing"))
        })
        .await?;
    if audited {
        let now_ms = state.clock.now_ms();
        let v = view.clone();
        state
            .store
            .write(move |conn| super::audit::outing_read(conn, &caller, "outing", &v, now_ms))
            .await?;
    }
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(get, path = "/api/v1/outings", tag = "outings", security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, body = Page<OutingView>), (status = 422, body = Problem)))]
pub async fn list_outings(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, AppError> {
    let query = query.into_inner();
    let status = pagination::status_filter(
        query.status.as_deref(),
        &[
            OutingStatus::Active,
            OutingStatus::Overdue,
            OutingStatus::Ended,
        ],
        OutingStatus::as_str,
    )?;
    let limit = pagination::limit(query.limit)?;
    let after = pagination::decode_cursor(query.cursor.as_deref())?;
    let reader = caller.clone();
    let (items, rows_seen) = state
        .store
        .read(move |conn| {
            let scope = match reader.role {
                Role::Canvasser => OutingScope::Person(reader.id),
                Role::Organiser => OutingScope::Orgs(reader.org_id.into_iter().collect()),
                Role::Police => OutingScope::Orgs(store::accounts::police_orgs(conn, reader.id)?),
                Role::Admin => OutingScope::Orgs(Vec::new()),
            };
            let rows = store::outings::list(conn, &scope, status, after, limit)?;
            let mut items = Vec::with_capacity(rows.len());
            for row in &rows {
                // Organisers also run outings of their own; listing covers their org's.
                if let Some(seen) = service::view(conn, &reader, row)? {
                    items.push(seen);
                }
            }
            let keys: Vec<(i64, String)> = rows
                .iter()
                .map(|r| (r.started_at, r.id.to_string()))
                .collect();
            Ok((items, keys))
        })
        .await?;
    let audited: Vec<OutingView> = items
        .iter()
        .filter(|(_, a)| *a)
        .map(|(v, _)| v.clone())
        .collect();
    if !audited.is_empty() {
        let now_ms = state.clock.now_ms();
        state
            .store
            .write(move |conn| {
                for view in &audited {
                    super::audit::outing_read(conn, &caller, "outing.list", view, now_ms)?;
                }
                Ok(())
            })
            .await?;
    }
    let next_cursor = pagination::next_cursor(&rows_seen, limit, |(at, id)| (*at, id.as_str()));
    Ok(HttpResponse::Ok().json(Page {
        items: items.into_iter().map(|(v, _)| v).collect::<Vec<_>>(),
        next_cursor,
    }))
}

#[utoipa::path(get, path = "/api/v1/outings/{id}/checkins", tag = "outings", security(("bearer" = [])),
    params(("id" = String, Path), PageQuery),
    responses((status = 200, body = Page<CheckinView>), (status = 404, body = Problem),
              (status = 422, description = "a bad `limit` or `cursor`", body = Problem)))]
pub async fn list_checkins(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, AppError> {
    let outing_id: OutingId = path_id(&id, "outing")?;
    let limit = pagination::limit(query.limit)?;
    let after = pagination::decode_cursor(query.cursor.as_deref())?;
    let reader = caller.clone();
    let (rows, view, audited) = state
        .store
        .read(move |conn| {
            let row = store::outings::find(conn, outing_id)?.ok_or(AppError::NotFound("outing"))?;
            let visibility = service::visibility(conn, &reader, &row)?.visibility;
            // The trail is live location: only for those who may see it.
            if !visibility.sees_location() {
                return Err(AppError::NotFound("outing"));
            }
            let (view, audited) =
                service::view(conn, &reader, &row)?.ok_or(AppError::NotFound("outing"))?;
            let rows = store::outings::trail(conn, &row.id.to_string(), after, limit)?;
            Ok((rows, view, audited))
        })
        .await?;
    if audited {
        let now_ms = state.clock.now_ms();
        state
            .store
            .write(move |conn| {
                super::audit::outing_read(conn, &caller, "outing.checkins", &view, now_ms)
            })
            .await?;
    }
    let next_cursor = pagination::next_cursor(&rows, limit, |r| (r.recorded_at, r.id.as_str()));
    Ok(HttpResponse::Ok().json(Page {
        items: rows.iter().map(CheckinView::from).collect::<Vec<_>>(),
        next_cursor,
    }))
}

fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, AppError> {
    let Some(value) = req.headers().get("Idempotency-Key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 200)
        .ok_or_else(|| {
            AppError::BadRequest("Idempotency-Key must be 1 to 200 visible ASCII characters".into())
        })?;
    Ok(Some(key.to_owned()))
}

#[utoipa::path(post, path = "/api/v1/outings/{id}/checkins", tag = "outings", security(("bearer" = [])),
    params(("id" = String, Path),
           ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key returns the first response and stores nothing new")),
    request_body = CheckinRequest,
    responses((status = 201, body = CheckinResponse), (status = 403, description = "not your outing, or wrong PIN", body = Problem),
              (status = 404, body = Problem), (status = 409, description = "the outing has ended", body = Problem),
              (status = 422, body = Problem)))]
pub async fn check_in(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    id: web::Path<String>,
    RawJson(raw): RawJson,
) -> Result<HttpResponse, AppError> {
    state.checkin_ceiling.check(caller.id)?;
    let outing_id: OutingId = path_id(&id, "outing")?;
    let key = idempotency_key(&req)?;
    let body: CheckinRequest = super::extract::parse_json(&raw)?;
    let now = state.clock.now();
    let item = parse_checkin(
        "",
        body.lat,
        body.lon,
        body.accuracy_m,
        body.recorded_at,
        body.battery_pct,
        body.kind,
        None,
        now,
    )
    .map_err(AppError::Validation)?;
    // A live check-in without a PIN is an ordinary one whether or not PINs are set, so the
    // account row is only read (and the PIN hashed) when one was typed.
    let pin = match body.pin.filter(|p| !p.is_empty()) {
        None => PinCheck::NotSet,
        presented => match check_pin(&state, caller.id, Some(outing_id), presented).await? {
            PinCheck::Missing => PinCheck::NotSet,
            pin => pin,
        },
    };
    let request_hash = {
        let mut hasher = Sha256::new();
        hasher.update(outing_id.to_string().as_bytes());
        hasher.update(b"\n");
        hasher.update(&raw);
        crate::auth::tokens::hex(&hasher.finalize())
    };
    let answer = state
        .checkins
        .record(LiveCheckin {
            caller,
            outing_id,
            item,
            pin,
            key,
            request_hash,
            now_ms: now.timestamp_millis(),
        })
        .await?;
    let (status, body, changes) = (answer.status, answer.body, answer.changes);
    state.committed(changes);
    let status = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::CREATED);
    Ok(HttpResponse::build(status)
        .content_type("application/json")
        .body(body))
}

#[utoipa::path(post, path = "/api/v1/outings/{id}/checkins/batch", tag = "outings", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = BatchRequest,
    responses((status = 201, body = BatchResponse), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn check_in_batch(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    ApiJson(body): ApiJson<BatchRequest>,
) -> Result<HttpResponse, AppError> {
    state.checkin_ceiling.check(caller.id)?;
    let outing_id: OutingId = path_id(&id, "outing")?;
    if body.checkins.is_empty() || body.checkins.len() > MAX_BATCH {
        return Err(AppError::field(
            "checkins",
            format!("must hold 1 to {MAX_BATCH} check-ins"),
        ));
    }
    let now = state.clock.now();
    let mut errors = Vec::new();
    let mut items = Vec::with_capacity(body.checkins.len());
    for (i, c) in body.checkins.into_iter().enumerate() {
        match parse_checkin(
            &format!("checkins[{i}]."),
            c.lat,
            c.lon,
            c.accuracy_m,
            Some(c.recorded_at),
            c.battery_pct,
            c.kind,
            Some(c.client_id),
            now,
        ) {
            Ok(item) => items.push(item),
            Err(e) => errors.extend(e),
        }
    }
    if !errors.is_empty() {
        errors.truncate(50);
        return Err(AppError::Validation(errors));
    }
    let submitted = items.len();
    let rules = service::OutingRules::from(state.settings.as_ref());
    let now_ms = now.timestamp_millis();
    let (response, changes) = state
        .store
        .write(move |conn| {
            let recorded = service::record_checkins(
                conn,
                &caller,
                outing_id,
                service::Submission {
                    items,
                    pin: PinCheck::NotSet,
                    source: "batch",
                },
                &rules,
                now_ms,
            )?;
            let outing = view_known(conn, &caller, &recorded.outing, &recorded.stored)?;
            let response = BatchResponse {
                stored: recorded.stored.len(),
                duplicates: submitted - recorded.stored.len(),
                outing,
            };
            Ok((response, recorded.changes))
        })
        .await?;
    state.committed(changes);
    Ok(HttpResponse::Created().json(response))
}

#[utoipa::path(post, path = "/api/v1/outings/{id}/panic", tag = "outings", security(("bearer" = [])),
    params(("id" = String, Path)), request_body(content = PanicRequest, description = "optional"),
    responses((status = 201, body = AlertView),
              (status = 403, description = "only the outing's canvasser and companions may raise a panic", body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn panic(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    OptionalJson(body): OptionalJson<PanicRequest>,
) -> Result<HttpResponse, AppError> {
    let outing_id: OutingId = path_id(&id, "outing")?;
    let position = parse_optional_position(body.lat, body.lon, body.accuracy_m)?;
    let default_policy = state.settings.escalation;
    let now_ms = state.clock.now_ms();
    let view = state
        .store
        .write(move |conn| {
            let (outing, raised) =
                service::panic(conn, &caller, outing_id, position, &default_policy, now_ms)?;
            let name = store::outings::display_name(conn, &outing.canvasser_id.to_string())?;
            let mut view =
                service::for_viewer(service::alert_view(conn, raised.alert(), name)?, &caller);
            // Pressing panic must not reveal a silent duress alert to whoever holds the phone.
            if view.kind.hidden_from_owner() && outing.canvasser_id == caller.id {
                view.kind = AlertKind::Panic;
                view.notifications.clear();
            }
            Ok(view)
        })
        .await?;
    state.changed();
    Ok(HttpResponse::Created().json(view))
}

#[utoipa::path(post, path = "/api/v1/outings/{id}/end", tag = "outings", security(("bearer" = [])),
    params(("id" = String, Path)), request_body(content = EndRequest, description = "optional without PINs"),
    responses((status = 200, body = OutingView), (status = 403, description = "wrong PIN, or not your outing", body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn end_outing(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    OptionalJson(body): OptionalJson<EndRequest>,
) -> Result<HttpResponse, AppError> {
    let outing_id: OutingId = path_id(&id, "outing")?;
    let position = parse_optional_position(body.lat, body.lon, body.accuracy_m)?;
    let pin = check_pin(&state, caller.id, Some(outing_id), body.pin).await?;
    let default_policy = state.settings.escalation;
    let now_ms = state.clock.now_ms();
    let view = state
        .store
        .write(move |conn| {
            let row = service::end(
                conn,
                &caller,
                outing_id,
                pin,
                position,
                &default_policy,
                now_ms,
            )?;
            view_in_tx(conn, &caller, &row)
        })
        .await?;
    state.changed();
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(put, path = "/api/v1/me/pins", tag = "outings", security(("bearer" = [])),
    request_body = PinsRequest,
    responses((status = 204, description = "PINs set"),
              (status = 403, description = "`current_pin` is wrong", body = Problem),
              (status = 422, body = Problem),
              (status = 429, description = "five wrong PINs in a row: locked for 15 minutes", body = Problem)))]
pub async fn put_pins(
    state: web::Data<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<PinsRequest>,
) -> Result<HttpResponse, AppError> {
    validate_pin_pair(&body.safe_pin, &body.duress_pin).map_err(AppError::Validation)?;
    let user = caller.id;
    // Whoever holds the phone must not be able to replace the safe PIN: the current one is
    // needed, under the same lockout as every PIN prompt.
    match check_pin(&state, user, None, body.current_pin.clone()).await? {
        PinCheck::NotSet | PinCheck::Safe => {}
        PinCheck::Missing => {
            return Err(AppError::field(
                "current_pin",
                "is required: you have set PINs",
            ))
        }
        PinCheck::Wrong => return Err(AppError::Forbidden("wrong PIN".into())),
        // The duress PIN answers as the safe PIN would, changes nothing, and raises duress on
        // the open outing, if there is one.
        PinCheck::Duress => {
            let default_policy = state.settings.escalation;
            let now_ms = state.clock.now_ms();
            state
                .store
                .write(move |conn| {
                    if let Some(scope) = pin_service::Scope::resolve(conn, user, None)? {
                        if let Some(outing) = scope.outing() {
                            pin_service::raise_on(
                                conn,
                                outing,
                                AlertKind::Duress,
                                &default_policy,
                                now_ms,
                            )?;
                        }
                    }
                    Ok(())
                })
                .await?;
            state.changed();
            return Ok(HttpResponse::NoContent().finish());
        }
    }
    let (safe, duress) = web::block(move || -> Result<(String, String), AppError> {
        Ok((
            password::hash(&body.safe_pin)?,
            password::hash(&body.duress_pin)?,
        ))
    })
    .await
    .map_err(|e| AppError::internal(format!("PIN hashing: {e}")))??;
    state
        .store
        .write(move |conn| Ok(store::accounts::set_pins(conn, user, &safe, &duress)?))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
