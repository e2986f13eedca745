//! `/watch`: the organisers' and police's live board of overdue outings, planned outings for
//! police, and the SSE stream of alert events.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::Caller;
use super::problem::Problem;
use crate::domain::account::Role;
use crate::domain::escalation::OutingStatus;
use crate::domain::time::from_millis;
use crate::error::AppError;
use crate::service::{alerts as alert_service, outings as outing_service};
use crate::state::AppState;
use crate::store::{self, DbConn};
use crate::wire::{AlertView, OutingView, PersonRef};

/// Heartbeat comment interval: well under the 30 s the contract promises, so proxies with a
/// 30 s idle timeout keep the stream open.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// How often an open stream re-checks its login: with the session memo's 1 s, a logout,
/// password change or disabled account on any replica ends the stream within 2 s, and the
/// access token's expiry within 1 s.
const LOGIN_CHECK: Duration = Duration::from_secs(1);

/// One open stream: the login it was opened with is re-checked on every event, every
/// heartbeat and every [`LOGIN_CHECK`]; the stream ends when the login has.
struct Subscriber {
    receiver: tokio::sync::broadcast::Receiver<crate::watch::AlertEvent>,
    heartbeat: tokio::time::Interval,
    login_check: tokio::time::Interval,
    state: web::Data<AppState>,
    caller: Caller,
    token: String,
    expires_at_ms: i64,
    connected: bool,
}

impl Subscriber {
    /// Whether the access token is still unexpired and its login live (and still this user).
    async fn login_live(&mut self) -> bool {
        if self.state.clock.now_ms() >= self.expires_at_ms {
            return false;
        }
        match super::extract::caller_from_token(&self.state, &self.token, false).await {
            Ok(caller) if caller.id == self.caller.id && caller.role == self.caller.role => {
                self.caller = caller;
                true
            }
            _ => false,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct OverdueItem {
    pub outing: OutingView,
    pub alert: Option<AlertView>,
    /// Seconds past the missed deadline (or since the alert opened, for an alert on an outing
    /// that is not overdue, such as a panic).
    pub overdue_s: i64,
}

#[derive(Serialize, ToSchema)]
pub struct OverdueBoard {
    pub items: Vec<OverdueItem>,
}

#[derive(Serialize, ToSchema)]
pub struct PlannedOuting {
    pub outing_id: String,
    pub org_id: String,
    pub canvasser: PersonRef,
    pub status: OutingStatus,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub planned_end_at: Option<chrono::DateTime<chrono::Utc>>,
    #[schema(value_type = Option<Object>)]
    pub area: Option<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
pub struct PlannedBoard {
    pub items: Vec<PlannedOuting>,
}

fn watched_orgs(
    conn: &mut DbConn,
    caller: &Caller,
) -> Result<Vec<crate::domain::ids::OrgId>, AppError> {
    match caller.role {
        Role::Organiser => Ok(caller.org_id.into_iter().collect()),
        Role::Police => Ok(store::accounts::police_orgs(conn, caller.id)?),
        _ => Err(AppError::Forbidden(
            "the board is for organisers and police".into(),
        )),
    }
}

#[utoipa::path(get, path = "/api/v1/watch/overdue", tag = "watch", security(("bearer" = [])),
    responses((status = 200, body = OverdueBoard), (status = 403, body = Problem)))]
pub async fn overdue(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, AppError> {
    let now_ms = state.clock.now_ms();
    let reader = caller.clone();
    let mut items = state
        .store
        .read(move |conn| {
            let orgs = watched_orgs(conn, &reader)?;
            let rows = store::outings::needing_attention(conn, &orgs)?;
            let mut items = Vec::new();
            for row in &rows {
                let Some((outing, _)) = outing_service::view(conn, &reader, row)? else {
                    continue;
                };
                // An outing is on the board for being overdue or for an alert this viewer
                // may see: never for an alert hidden from them (their own duress).
                if outing.open_alert.is_none() && row.status != OutingStatus::Overdue {
                    continue;
                }
                // Police see only escalated outings here: the planned board shows the rest.
                if outing.last_checkin.is_none()
                    && outing.open_alert.is_none()
                    && reader.role == Role::Police
                {
                    continue;
                }
                let overdue_s = match (row.status, row.next_checkin_due_at, &outing.open_alert) {
                    (OutingStatus::Overdue, Some(due), _) => (now_ms - due) / 1000,
                    (_, _, Some(alert)) => (now_ms - alert.opened_at.timestamp_millis()) / 1000,
                    _ => 0,
                }
                .max(0);
                let alert = outing.open_alert.clone();
                items.push(OverdueItem {
                    outing,
                    alert,
                    overdue_s,
                });
            }
            Ok(items)
        })
        .await?;
    items.sort_by(|a, b| {
        b.overdue_s
            .cmp(&a.overdue_s)
            .then_with(|| a.outing.id.cmp(&b.outing.id))
    });
    let audited: Vec<OutingView> = items
        .iter()
        .filter(|i| {
            i.outing.last_checkin.is_some()
                || i.alert.as_ref().is_some_and(|a| a.last_location.is_some())
        })
        .map(|i| i.outing.clone())
        .collect();
    if !audited.is_empty() {
        state
            .store
            .write(move |conn| {
                for outing in &audited {
                    super::audit::outing_read(conn, &caller, "watch.overdue", outing, now_ms)?;
                }
                Ok(())
            })
            .await?;
    }
    Ok(HttpResponse::Ok().json(OverdueBoard { items }))
}

#[utoipa::path(get, path = "/api/v1/watch/planned", tag = "watch", security(("bearer" = [])),
    responses((status = 200, body = PlannedBoard), (status = 403, body = Problem)))]
pub async fn planned(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, AppError> {
    caller.require_role(&[Role::Police])?;
    let items = state
        .store
        .read(move |conn| {
            let orgs = store::accounts::police_orgs(conn, caller.id)?;
            let rows = store::outings::not_ended(conn, &orgs)?;
            let mut items = Vec::with_capacity(rows.len());
            for row in rows {
                items.push(PlannedOuting {
                    canvasser: PersonRef {
                        id: row.canvasser_id,
                        display_name: store::outings::display_name(
                            conn,
                            &row.canvasser_id.to_string(),
                        )?,
                        // The planned board shows no live location, so no phone either.
                        phone: None,
                    },
                    outing_id: row.id.to_string(),
                    org_id: row.org_id.to_string(),
                    status: row.status,
                    started_at: from_millis(row.started_at),
                    planned_end_at: row.planned_end_at.map(from_millis),
                    area: row
                        .area
                        .as_deref()
                        .and_then(|a| serde_json::from_str(a).ok()),
                });
            }
            Ok(items)
        })
        .await?;
    Ok(HttpResponse::Ok().json(PlannedBoard { items }))
}

#[derive(Deserialize, IntoParams)]
pub struct StreamQuery {
    /// For `EventSource`, which cannot set headers: the access token.
    pub access_token: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/watch/stream", tag = "watch", security(("bearer" = [])),
    params(StreamQuery),
    responses((status = 200, content_type = "text/event-stream",
               description = "events `alert.opened`, `alert.escalated`, `alert.acknowledged`, `alert.resolved`, each `data:` an Alert; a `: heartbeat` comment every 15 s"),
              (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn stream(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<StreamQuery>,
) -> Result<HttpResponse, AppError> {
    let token = match query.into_inner().access_token {
        Some(token) => token,
        None => super::extract::bearer_token(&req)
            .ok_or_else(|| AppError::Unauthorized("missing bearer token".into()))?,
    };
    let caller = super::extract::caller_from_token(&state, &token, false).await?;
    caller.require_role(&[Role::Organiser, Role::Police])?;
    // The verifier allows a few seconds of clock skew between replicas; the stream itself
    // ends at the expiry the token states.
    let expires_at_ms = state
        .keys
        .verify(&token)
        .map(|claims| claims.exp.saturating_mul(1000))
        .map_err(|_| AppError::Unauthorized("invalid or expired access token".into()))?;
    let receiver = state.watch.subscribe();
    let stream = Subscriber {
        receiver,
        heartbeat: tokio::time::interval(HEARTBEAT),
        login_check: tokio::time::interval(LOGIN_CHECK),
        state,
        caller,
        token,
        expires_at_ms,
        connected: false,
    };
    let events = futures_util::stream::unfold(stream, |mut sub| async move {
        if !sub.connected {
            sub.connected = true;
            // Tell the client the stream is open (and flush headers through proxies).
            return Some((
                Ok::<_, actix_web::Error>(web::Bytes::from_static(b": connected\n\n")),
                sub,
            ));
        }
        loop {
            tokio::select! {
                _ = sub.login_check.tick() => {
                    if !sub.login_live().await {
                        return None;
                    }
                }
                _ = sub.heartbeat.tick() => {
                    if !sub.login_live().await {
                        return None;
                    }
                    return Some((Ok(web::Bytes::from_static(b": heartbeat\n\n")), sub));
                }
                event = sub.receiver.recv() => match event {
                    Ok(event) => {
                        if !sub.login_live().await {
                            return None;
                        }
                        if let Some(chunk) = render_event(&sub.state, &sub.caller, &event).await {
                            return Some((Ok(chunk), sub));
                        }
                    }
                    // Too slow to keep up, or the hub is gone: end this stream; the
                    // browser's EventSource reconnects and the board catches up.
                    Err(_) => return None,
                }
            }
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(events))
}

/// The event as this subscriber may see it, or nothing; reading a location is audited.
async fn render_event(
    state: &web::Data<AppState>,
    caller: &Caller,
    event: &crate::watch::AlertEvent,
) -> Option<web::Bytes> {
    let (caller, alert_id, now_ms) = (caller.clone(), event.alert_id.clone(), state.clock.now_ms());
    let view = state
        .store
        .read(move |conn| {
            let Ok(alert_id) = alert_id.parse() else {
                return Ok(None);
            };
            let Some(row) = store::alerts::find(conn, alert_id)? else {
                return Ok(None);
            };
            if !alert_service::access(conn, &caller, &row)?.visible {
                return Ok(None);
            }
            let name = store::outings::display_name(conn, &row.canvasser_id.to_string())?;
            Ok(Some((
                outing_service::alert_view(conn, &row, name)?,
                caller,
            )))
        })
        .await
        .ok()
        .flatten();
    let (view, caller) = view?;
    if view.last_location.is_some() {
        let (v, org) = (view.clone(), event.org_id.clone());
        let _ = state
            .store
            .write(move |conn| {
                super::audit::alert_read(conn, &caller, "watch.stream", &v, &org, now_ms)
            })
            .await;
    }
    let data = serde_json::to_string(&view).ok()?;
    Some(web::Bytes::from(format!(
        "event: {}\ndata: {data}\n\n",
        event.event
    )))
}
