//! `GET /audit`: who read whose location, and when.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::Caller;
use super::pagination::{self, Page};
use super::problem::Problem;
use crate::domain::account::Role;
use crate::domain::time::from_millis;
use crate::error::AppError;
use crate::state::AppState;
use crate::store::audit::LocationRead;
use crate::store::{self, DbConn};

/// Records that `caller` read the location in an outing view (`action` says where).
pub fn outing_read(
    conn: &mut DbConn,
    caller: &Caller,
    action: &str,
    outing: &crate::wire::OutingView,
    now_ms: i64,
) -> Result<(), AppError> {
    Ok(store::audit::record(
        conn,
        &LocationRead {
            actor_id: caller.id.to_string(),
            actor_role: caller.role.as_str(),
            action,
            subject_id: outing.canvasser.id.to_string(),
            org_id: outing.org_id.to_string(),
            outing_id: Some(outing.id.to_string()),
            alert_id: outing.open_alert.as_ref().map(|a| a.id.to_string()),
        },
        now_ms,
    )?)
}

/// Records that `caller` read the location in an alert view of organisation `org_id`.
pub fn alert_read(
    conn: &mut DbConn,
    caller: &Caller,
    action: &str,
    alert: &crate::wire::AlertView,
    org_id: &str,
    now_ms: i64,
) -> Result<(), AppError> {
    Ok(store::audit::record(
        conn,
        &LocationRead {
            actor_id: caller.id.to_string(),
            actor_role: caller.role.as_str(),
            action,
            subject_id: alert.canvasser.id.to_string(),
            org_id: org_id.to_owned(),
            outing_id: Some(alert.outing_id.to_string()),
            alert_id: Some(alert.id.to_string()),
        },
        now_ms,
    )?)
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only reads of this person's location.
    pub subject_id: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditActor {
    pub id: String,
    pub display_name: String,
    pub role: String,
}

#[derive(Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: String,
    pub at: chrono::DateTime<chrono::Utc>,
    pub actor: AuditActor,
    /// What was read: `outing`, `outing.list`, `outing.checkins`, `alert`, `watch.overdue`,
    /// `watch.stream`, `handoff.view` (a hand-off page opened: the actor is the link's maker
    /// with role `handoff`, `detail.address` the viewer's address); or what was done: `policy`,
    /// `account.update`, `account.password`, `account.disable`, `account.enable`,
    /// `handoff.create`, `handoff.revoke`.
    pub action: String,
    pub subject_id: Option<String>,
    pub subject_name: Option<String>,
    pub org_id: Option<String>,
    pub outing_id: Option<String>,
    pub alert_id: Option<String>,
    /// For actions (`policy`, `account.*`, `handoff.*`): what changed, or who opened the page.
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Value>,
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", security(("bearer" = [])),
    params(AuditQuery),
    responses((status = 200, body = Page<AuditEntry>), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, AppError> {
    let org = match caller.role {
        Role::Admin => None,
        Role::Organiser => Some(
            caller
                .org_id
                .map(|o| o.to_string())
                .ok_or_else(|| AppError::Forbidden("you belong to no organisation".into()))?,
        ),
        _ => {
            return Err(AppError::Forbidden(
                "the audit log is for admins and organisers".into(),
            ))
        }
    };
    let query = query.into_inner();
    if let Some(subject) = &query.subject_id {
        uuid::Uuid::parse_str(subject)
            .map_err(|_| AppError::field("subject_id", "must be a user id"))?;
    }
    let limit = pagination::limit(query.limit)?;
    let after = pagination::decode_cursor(query.cursor.as_deref())?;
    let viewer = caller.id.to_string();
    let (entries, keys) = state
        .store
        .read(move |conn| {
            let rows = store::audit::list(
                conn,
                org.as_deref(),
                query.subject_id.as_deref(),
                &viewer,
                after,
                limit,
            )?;
            let mut entries = Vec::with_capacity(rows.len());
            for row in &rows {
                entries.push(AuditEntry {
                    id: row.id.clone(),
                    at: from_millis(row.at),
                    actor: AuditActor {
                        id: row.actor_id.clone(),
                        display_name: store::outings::display_name(conn, &row.actor_id)?,
                        role: row.actor_role.clone(),
                    },
                    action: row.action.clone(),
                    subject_name: match &row.subject_id {
                        Some(s) => Some(store::outings::display_name(conn, s)?),
                        None => None,
                    },
                    subject_id: row.subject_id.clone(),
                    org_id: row.org_id.clone(),
                    outing_id: row.outing_id.clone(),
                    alert_id: row.alert_id.clone(),
                    detail: row
                        .detail
                        .as_deref()
                        .and_then(|d| serde_json::from_str(d).ok()),
                });
            }
            let keys: Vec<(i64, String)> = rows.iter().map(|r| (r.at, r.id.clone())).collect();
            Ok((entries, keys))
        })
        .await?;
    Ok(HttpResponse::Ok().json(Page {
        items: entries,
        next_cursor: pagination::next_cursor(&keys, limit, |(at, id)| (*at, id.as_str())),
    }))
}
