//! `/alerts`: list, view, acknowledge, resolve.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::extract::{path_id, ApiJson, Caller, OptionalJson};
use super::pagination::{self, Page};
use super::problem::Problem;
use crate::domain::account::Role;
use crate::domain::escalation::AlertStatus;
use crate::domain::ids::AlertId;
use crate::error::AppError;
use crate::service::{alerts as service, outings as outing_service};
use crate::state::AppState;
use crate::store::{self, DbConn};
use crate::wire::AlertView;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AlertQuery {
    /// `open`, `acknowledged` or `resolved`.
    pub status: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Safe,
    FalseAlarm,
    Incident,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Safe => "safe",
            Outcome::FalseAlarm => "false_alarm",
            Outcome::Incident => "incident",
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    pub outcome: Outcome,
    #[serde(default)]
    pub note: Option<String>,
}

fn check_note(note: &Option<String>) -> Result<(), AppError> {
    match note {
        Some(n) if n.chars().count() > 1000 => {
            Err(AppError::field("note", "must be at most 1000 characters"))
        }
        _ => Ok(()),
    }
}

/// The alert as the caller may see it (the canvasser's view carries no delivery record of
/// others), and whether the read is an audited location read.
fn view(
    conn: &mut DbConn,
    caller: &Caller,
    row: &store::alerts::AlertRow,
) -> Result<Option<(AlertView, bool)>, AppError> {
    if !service::access(conn, caller, row)?.visible {
        return Ok(None);
    }
    let name = store::outings::display_name(conn, &row.canvasser_id.to_string())?;
    let view = outing_service::for_viewer(outing_service::alert_view(conn, row, name)?, caller);
    let audited = matches!(caller.role, Role::Organiser | Role::Police)
        && row.canvasser_id != caller.id
        && view.last_location.is_some();
    Ok(Some((view, audited)))
}

#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts", security(("bearer" = [])),
    params(AlertQuery),
    responses((status = 200, body = Page<AlertView>), (status = 422, body = Problem)))]
pub async fn list_alerts(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<AlertQuery>,
) -> Result<HttpResponse, AppError> {
    let query = query.into_inner();
    let status = pagination::status_filter(
        query.status.as_deref(),
        &[
            AlertStatus::Open,
            AlertStatus::Acknowledged,
            AlertStatus::Resolved,
        ],
        AlertStatus::as_str,
    )?;
    let limit = pagination::limit(query.limit)?;
    let after = pagination::decode_cursor(query.cursor.as_deref())?;
    let reader = caller.clone();
    let (items, next_key) = state
        .store
        .read(move |conn| {
            let police_orgs;
            let own_org: Vec<_> = reader.org_id.into_iter().collect();
            let (orgs, canvasser) = match reader.role {
                Role::Organiser => (Some(&own_org[..]), None),
                Role::Police => {
                    police_orgs = store::accounts::police_orgs(conn, reader.id)?;
                    (Some(&police_orgs[..]), None)
                }
                Role::Canvasser => (None, Some(reader.id)),
                Role::Admin => return Ok((Vec::new(), None)),
            };
            let filter = store::alerts::AlertFilter {
                orgs,
                canvasser,
                status,
                hidden_from: reader.id,
                escalated_only: reader.role == Role::Police,
            };
            // A page and its cursor are built from visible rows only: read one more visible
            // row than the page holds, so a cursor is only given when another page exists.
            let mut items = Vec::new();
            let mut keys: Vec<(i64, String)> = Vec::new();
            let mut after = after;
            loop {
                let rows = store::alerts::list(conn, &filter, after.clone(), limit + 1)?;
                for row in &rows {
                    if let Some((view, audited)) = view(conn, &reader, row)? {
                        items.push((view, audited, row.org_id));
                        keys.push((row.opened_at, row.id.to_string()));
                    }
                }
                let exhausted = (rows.len() as i64) < limit + 1;
                if exhausted || items.len() as i64 > limit {
                    break;
                }
                after = rows.last().map(|r| (r.opened_at, r.id.to_string()));
            }
            let more = items.len() as i64 > limit;
            items.truncate(usize::try_from(limit).unwrap_or(0));
            keys.truncate(items.len());
            let next_key = if more { keys.pop() } else { None };
            Ok((items, next_key))
        })
        .await?;
    let audited: Vec<(AlertView, String)> = items
        .iter()
        .filter(|(_, a, _)| *a)
        .map(|(v, _, org)| (v.clone(), org.to_string()))
        .collect();
    if !audited.is_empty() {
        let now_ms = state.clock.now_ms();
        state
            .store
            .write(move |conn| {
                for (view, org) in &audited {
                    super::audit::alert_read(conn, &caller, "alert", view, org, now_ms)?;
                }
                Ok(())
            })
            .await?;
    }
    Ok(HttpResponse::Ok().json(Page {
        items: items.into_iter().map(|(v, _, _)| v).collect::<Vec<_>>(),
        next_cursor: next_key.map(|(at, id)| pagination::encode_cursor(at, &id)),
    }))
}

#[utoipa::path(get, path = "/api/v1/alerts/{id}", tag = "alerts", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = AlertView), (status = 404, body = Problem)))]
pub async fn get_alert(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let alert_id: AlertId = path_id(&id, "alert")?;
    let reader = caller.clone();
    let (view, audited, org) = state
        .store
        .read(move |conn| {
            let row = store::alerts::find(conn, alert_id)?.ok_or(AppError::NotFound("alert"))?;
            let (view, audited) = view(conn, &reader, &row)?.ok_or(AppError::NotFound("alert"))?;
            Ok((view, audited, row.org_id))
        })
        .await?;
    if audited {
        let now_ms = state.clock.now_ms();
        let v = view.clone();
        state
            .store
            .write(move |conn| {
                super::audit::alert_read(conn, &caller, "alert", &v, &org.to_string(), now_ms)
            })
            .await?;
    }
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(post, path = "/api/v1/alerts/{id}/ack", tag = "alerts", security(("bearer" = [])),
    params(("id" = String, Path)), request_body(content = AckRequest, description = "optional"),
    responses((status = 200, body = AlertView),
              (status = 403, description = "the canvasser's own alert, or not a contact", body = Problem),
              (status = 404, body = Problem),
              (status = 409, description = "already acknowledged (the first acknowledgement wins) or resolved", body = Problem)))]
pub async fn acknowledge(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    OptionalJson(body): OptionalJson<AckRequest>,
) -> Result<HttpResponse, AppError> {
    let alert_id: AlertId = path_id(&id, "alert")?;
    check_note(&body.note)?;
    let now_ms = state.clock.now_ms();
    let view = state
        .store
        .write(move |conn| {
            let row = service::acknowledge_by_contact(conn, &caller, alert_id, body.note, now_ms)?;
            let name = store::outings::display_name(conn, &row.canvasser_id.to_string())?;
            outing_service::alert_view(conn, &row, name)
        })
        .await?;
    state.changed();
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(post, path = "/api/v1/alerts/{id}/resolve", tag = "alerts", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = ResolveRequest,
    responses((status = 200, body = AlertView), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, description = "already resolved", body = Problem),
              (status = 422, body = Problem)))]
pub async fn resolve(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    ApiJson(body): ApiJson<ResolveRequest>,
) -> Result<HttpResponse, AppError> {
    let alert_id: AlertId = path_id(&id, "alert")?;
    check_note(&body.note)?;
    let now_ms = state.clock.now_ms();
    let default_policy = state.settings.escalation;
    let view = state
        .store
        .write(move |conn| {
            let row = service::resolve_by_contact(
                conn,
                &caller,
                alert_id,
                body.outcome.as_str(),
                body.note,
                &default_policy,
                now_ms,
            )?;
            let name = store::outings::display_name(conn, &row.canvasser_id.to_string())?;
            outing_service::alert_view(conn, &row, name)
        })
        .await?;
    state.changed();
    Ok(HttpResponse::Ok().json(view))
}
