//! `/orgs/{id}/cautions`: the do-not-knock register.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{path_id, ApiJson, Caller};
use super::problem::Problem;
use crate::domain::caution;
use crate::domain::ids::OrgId;
use crate::error::AppError;
use crate::service::cautions as service;
use crate::state::AppState;
use crate::wire::CautionView;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CautionRequest {
    pub lat: f64,
    pub lon: f64,
    /// 10–500.
    pub radius_m: f64,
    /// `do_not_knock`, `pairs_only` or `note`.
    pub level: String,
    /// 1–500 characters: what to expect there, never a resident's name.
    pub reason: String,
    /// Default: 90 days from now; at most a year.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CautionQuery {
    /// `LAT,LON`: only cautions near this position.
    pub near: Option<String>,
    /// With `near`: how far from it (default 0: cautions whose circle holds it; at most 5000).
    pub within_m: Option<f64>,
}

#[derive(Serialize, ToSchema)]
pub struct CautionList {
    pub items: Vec<CautionView>,
    /// Always null: the register answers in one page (at most 500 in force).
    pub next_cursor: Option<String>,
}

fn parse_near(query: &CautionQuery) -> Result<Option<(f64, f64, f64)>, AppError> {
    let within = query.within_m.unwrap_or(0.0);
    if !(0.0..=5_000.0).contains(&within) {
        return Err(AppError::field("within_m", "must be between 0 and 5000"));
    }
    let Some(raw) = query.near.as_deref() else {
        if query.within_m.is_some() {
            return Err(AppError::field("near", "is required with within_m"));
        }
        return Ok(None);
    };
    let bad = || AppError::field("near", "must be LAT,LON in degrees");
    let (lat, lon) = raw.split_once(',').ok_or_else(bad)?;
    let lat: f64 = lat.trim().parse().map_err(|_| bad())?;
    let lon: f64 = lon.trim().parse().map_err(|_| bad())?;
    if !((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)) {
        return Err(bad());
    }
    Ok(Some((lat, lon, within)))
}

#[utoipa::path(post, path = "/api/v1/orgs/{id}/cautions", tag = "cautions", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = CautionRequest,
    responses((status = 201, body = CautionView),
              (status = 403, description = "not an organiser or police contact of the organisation", body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn mark_caution(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    ApiJson(body): ApiJson<CautionRequest>,
) -> Result<HttpResponse, AppError> {
    let org: OrgId = path_id(&id, "organisation")?;
    let now_ms = state.clock.now_ms();
    let new = caution::parse_new(
        body.lat,
        body.lon,
        body.radius_m,
        &body.level,
        &body.reason,
        body.expires_at.map(|t| t.timestamp_millis()),
        now_ms,
    )
    .map_err(AppError::Validation)?;
    let view = state
        .store
        .write(move |conn| {
            let row = service::mark(conn, &caller, org, new, now_ms)?;
            service::view(conn, &row)
        })
        .await?;
    Ok(HttpResponse::Created().json(view))
}

#[utoipa::path(get, path = "/api/v1/orgs/{id}/cautions", tag = "cautions", security(("bearer" = [])),
    params(("id" = String, Path), CautionQuery),
    responses((status = 200, body = CautionList), (status = 404, body = Problem),
              (status = 422, body = Problem)))]
pub async fn list_cautions(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    query: web::Query<CautionQuery>,
) -> Result<HttpResponse, AppError> {
    let org: OrgId = path_id(&id, "organisation")?;
    let near = parse_near(&query)?;
    let now_ms = state.clock.now_ms();
    let items = state
        .store
        .read(move |conn| {
            let rows = service::list(conn, &caller, org, near, now_ms)?;
            service::views(conn, &rows)
        })
        .await?;
    Ok(HttpResponse::Ok().json(CautionList {
        items,
        next_cursor: None,
    }))
}

#[utoipa::path(delete, path = "/api/v1/orgs/{id}/cautions/{caution_id}", tag = "cautions", security(("bearer" = [])),
    params(("id" = String, Path), ("caution_id" = String, Path)),
    responses((status = 204, description = "retired"),
              (status = 403, description = "only organisers and its author", body = Problem),
              (status = 404, body = Problem)))]
pub async fn retire_caution(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    let org: OrgId = path_id(&path.0, "organisation")?;
    let caution: uuid::Uuid = path_id(&path.1, "caution")?;
    let now_ms = state.clock.now_ms();
    state
        .store
        .write(move |conn| service::retire(conn, &caller, org, &caution.to_string(), now_ms))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(post, path = "/api/v1/orgs/{id}/cautions/{caution_id}/renew", tag = "cautions", security(("bearer" = [])),
    params(("id" = String, Path), ("caution_id" = String, Path)),
    responses((status = 200, body = CautionView),
              (status = 403, description = "only organisers and its author", body = Problem),
              (status = 404, body = Problem)))]
pub async fn renew_caution(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    let org: OrgId = path_id(&path.0, "organisation")?;
    let caution: uuid::Uuid = path_id(&path.1, "caution")?;
    let now_ms = state.clock.now_ms();
    let view = state
        .store
        .write(move |conn| {
            let row = service::renew(conn, &caller, org, &caution.to_string(), now_ms)?;
            service::view(conn, &row)
        })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}
