//! Hand-off links: organisers and police make a capability link for one alert that a police
//! control room or patrol opens without an account (api.md, "Hand-off to the police").
//!
//! - Made by those who may handle the alert (organisers of its organisation, police who see
//!   it); a new link revokes the alert's previous one; anyone may revoke through
//!   `DELETE`, with the same rights.
//! - Opens while: not revoked, before its 24-hour cap and an hour after the alert was resolved,
//!   and while its maker could still make it (an account disabled, a police contact
//!   unassigned: the link stops with them).
//! - Every making, revoking and opening is in the audit log, about the alert and its person, so
//!   `store::audit::list` hides them from that person when the alert is hidden from them.

use chrono_tz::Tz;
use serde_json::json;

use crate::domain::area::{parse_stored_area, Area};
use crate::domain::caller::Caller;
use crate::domain::handoff;
use crate::domain::ids::AlertId;
use crate::error::AppError;
use crate::service::alerts::{access, access_as};
use crate::store::alerts::AlertRow;
use crate::store::handoff::{LinkRow, Person};
use crate::store::outings::{CheckinRow, OutingRow};
use crate::store::{self, DbConn};

/// Most check-ins a page shows (newest first): hours of an outing checking in every minute.
pub const MAX_TRAIL: i64 = 500;

/// A new link: its token is shown once, in the answer, and stored only as its hash.
#[derive(Debug)]
pub struct Created {
    pub link_id: String,
    pub token: String,
    pub expires_at_ms: i64,
}

/// Loads the alert for a caller who may hand it over: 404 for those who may not see it (as
/// every alert route), 403 for those who see it but do not handle alerts (its canvasser, a
/// companion).
fn handled(conn: &mut DbConn, caller: &Caller, alert_id: AlertId) -> Result<AlertRow, AppError> {
    let row = store::alerts::find(conn, alert_id)?.ok_or(AppError::NotFound("alert"))?;
    let seen = access(conn, caller, &row)?;
    if !seen.visible {
        return Err(AppError::NotFound("alert"));
    }
    if !seen.may_handle {
        return Err(AppError::Forbidden(
            "only organisers and police contacts hand an alert over to the police".into(),
        ));
    }
    Ok(row)
}

fn audit(
    conn: &mut DbConn,
    actor: (String, &'static str),
    action: &str,
    alert: &AlertRow,
    detail: serde_json::Value,
    now_ms: i64,
) -> Result<(), AppError> {
    Ok(store::audit::record_alert_action(
        conn,
        &store::audit::AlertAction {
            actor_id: actor.0,
            actor_role: actor.1,
            action,
            subject_id: alert.canvasser_id.to_string(),
            org_id: alert.org_id.to_string(),
            outing_id: alert.outing_id.to_string(),
            alert_id: alert.id.to_string(),
            detail,
        },
        now_ms,
    )?)
}

/// Makes a new link for the alert (revoking its previous one). `random` is the token's
/// randomness: `rand::random` in production (ThreadRng, a CSPRNG seeded by the OS).
pub fn create(
    conn: &mut DbConn,
    caller: &Caller,
    alert_id: AlertId,
    random: [u8; handoff::TOKEN_BYTES],
    now_ms: i64,
) -> Result<Created, AppError> {
    let alert = handled(conn, caller, alert_id)?;
    let stored_expiry = handoff::stored_expiry(now_ms);
    let expires_at_ms = handoff::expires_at(stored_expiry, alert.resolved_at);
    if expires_at_ms <= now_ms {
        return Err(AppError::Conflict(
            "the alert was resolved more than an hour ago: a hand-off link would not open".into(),
        ));
    }
    let replaced = store::handoff::revoke_all(conn, alert.id, now_ms)?;
    let token = handoff::token_from_bytes(&random);
    let link = LinkRow {
        id: store::new_id(),
        alert_id: alert.id,
        token_hash: handoff::token_hash(&token),
        created_by: caller.id,
        created_at: now_ms,
        expires_at: stored_expiry,
        revoked_at: None,
    };
    store::handoff::insert(conn, &link)?;
    audit(
        conn,
        (caller.id.to_string(), caller.role.as_str()),
        "handoff.create",
        &alert,
        json!({"link_id": link.id, "expires_at": crate::domain::time::rfc3339(
            crate::domain::time::from_millis(expires_at_ms)), "replaced": replaced}),
        now_ms,
    )?;
    Ok(Created {
        link_id: link.id,
        token,
        expires_at_ms,
    })
}

/// Revokes the alert's link, if it has one that is not revoked yet (the answer is the same
/// either way: there is then no link).
pub fn revoke(
    conn: &mut DbConn,
    caller: &Caller,
    alert_id: AlertId,
    now_ms: i64,
) -> Result<(), AppError> {
    let alert = handled(conn, caller, alert_id)?;
    let revoked = store::handoff::revoke_all(conn, alert.id, now_ms)?;
    if !revoked.is_empty() {
        audit(
            conn,
            (caller.id.to_string(), caller.role.as_str()),
            "handoff.revoke",
            &alert,
            json!({"link_ids": revoked}),
            now_ms,
        )?;
    }
    Ok(())
}

/// Who opened a link, as the audit log records them.
#[derive(Debug, Clone)]
pub struct Visitor {
    /// The client address, as the login limiter derives it (proxies only when trusted).
    pub address: String,
    pub user_agent: Option<String>,
}

/// A position with its time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fix {
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: Option<f64>,
    pub recorded_at: i64,
}

/// A point of the trail: a check-in, or the position an alert was raised with (a panic sends
/// one without a check-in).
#[derive(Debug, Clone, PartialEq)]
pub struct TrailPoint {
    pub recorded_at: i64,
    /// The check-in's kind (`ok`, `need_help`, `panic`, `end`); `None` for the alert's own.
    pub checkin_kind: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub accuracy_m: Option<f64>,
    pub battery_pct: Option<i32>,
    /// Its coordinates were removed by the retention job.
    pub purged: bool,
}

impl TrailPoint {
    fn of(checkin: &CheckinRow) -> TrailPoint {
        TrailPoint {
            recorded_at: checkin.recorded_at,
            checkin_kind: Some(checkin.kind.clone()),
            lat: checkin.lat,
            lon: checkin.lon,
            accuracy_m: checkin.accuracy_m,
            battery_pct: checkin.battery_pct,
            purged: checkin.location_purged_at.is_some(),
        }
    }

    pub fn fix(&self) -> Option<Fix> {
        Some(Fix {
            lat: self.lat?,
            lon: self.lon?,
            accuracy_m: self.accuracy_m,
            recorded_at: self.recorded_at,
        })
    }
}

/// Everything a hand-off page shows, and nothing else: one alert, its outing, its people.
#[derive(Debug)]
pub struct Page {
    pub org_name: String,
    pub zone: Tz,
    pub now_ms: i64,
    pub expires_at_ms: i64,
    pub alert: AlertRow,
    pub acknowledged_by: Option<String>,
    pub person: Person,
    pub companions: Vec<Person>,
    /// Who made the link: the police's contact in the organisation.
    pub contact: Option<Person>,
    pub outing: OutingRow,
    pub area: Option<Area>,
    /// Check-ins recorded since the alert opened (at most [`MAX_TRAIL`]) and the position
    /// the alert was raised with, newest first.
    pub trail: Vec<TrailPoint>,
    /// The last check-in before the alert opened (where a silence began).
    pub before: Option<TrailPoint>,
    /// The outing's latest check-in's battery level and its time.
    pub battery: Option<(i32, i64)>,
    /// The newest known position: of the trail, the alert, or the check-in before it.
    pub last_position: Option<Fix>,
}

/// The page of the link with token `raw`, or `None` when it opens nothing (malformed,
/// unknown, revoked, expired, or its maker may no longer make it): all answered alike.
/// An opening is audited in the same transaction.
pub fn open(
    conn: &mut DbConn,
    raw: &str,
    visitor: &Visitor,
    now_ms: i64,
) -> Result<Option<Page>, AppError> {
    if !handoff::is_token(raw) {
        return Ok(None);
    }
    let Some(link) = store::handoff::find_by_hash(conn, &handoff::token_hash(raw))? else {
        return Ok(None);
    };
    let Some(alert) = store::alerts::find(conn, link.alert_id)? else {
        return Ok(None);
    };
    if !handoff::is_live(link.expires_at, link.revoked_at, alert.resolved_at, now_ms) {
        return Ok(None);
    }
    let Some(maker) = store::accounts::find(conn, link.created_by)? else {
        return Ok(None);
    };
    if maker.disabled_at.is_some() {
        return Ok(None);
    }
    let maker_org = maker
        .org_id
        .as_deref()
        .map(|o| store::accounts::parse_id(o, "organisation"))
        .transpose()?;
    if !access_as(conn, link.created_by, maker.role, maker_org, &alert)?.may_handle {
        return Ok(None);
    }
    let Some(outing) = store::outings::find(conn, alert.outing_id)? else {
        return Ok(None);
    };
    let org = store::orgs::find(conn, alert.org_id)?
        .ok_or_else(|| AppError::internal(format!("alert {} has no organisation", alert.id)))?;
    let outing_id = outing.id.to_string();

    let person = store::handoff::people(conn, &[alert.canvasser_id.to_string()])?
        .into_iter()
        .next()
        .unwrap_or(Person {
            id: alert.canvasser_id.to_string(),
            display_name: String::new(),
            phone: None,
        });
    let companion_ids: Vec<String> = store::outings::companions(conn, outing.id)?
        .into_iter()
        .map(|(id, _)| id.to_string())
        .collect();
    let companions = store::handoff::people(conn, &companion_ids)?;
    let contact = store::handoff::people(conn, &[link.created_by.to_string()])?
        .into_iter()
        .next();
    let acknowledged_by = match alert.acknowledged_by {
        Some(id) => Some(store::outings::display_name(conn, &id.to_string())?),
        None => None,
    };

    let mut trail: Vec<TrailPoint> =
        store::handoff::checkins_since(conn, &outing_id, alert.opened_at, MAX_TRAIL)?
            .iter()
            .map(TrailPoint::of)
            .collect();
    let before = store::handoff::last_checkin_before(conn, &outing_id, alert.opened_at)?
        .as_ref()
        .map(TrailPoint::of);
    let battery = match &outing.last_checkin_id {
        Some(id) => store::outings::find_checkin(conn, id)?
            .and_then(|c| c.battery_pct.map(|pct| (pct, c.recorded_at))),
        None => None,
    };
    let alert_fix = match (alert.last_lat, alert.last_lon, alert.last_recorded_at) {
        (Some(lat), Some(lon), Some(recorded_at)) => Some(Fix {
            lat,
            lon,
            accuracy_m: alert.last_accuracy_m,
            recorded_at,
        }),
        _ => None,
    };
    // The alert's position belongs to the trail when it was taken since the alert opened
    // (a panic's) and is not one of the check-ins already there.
    if let Some(fix) = alert_fix.filter(|f| f.recorded_at >= alert.opened_at) {
        if !trail.iter().any(|p| p.fix() == Some(fix)) {
            let at = trail
                .iter()
                .position(|p| p.recorded_at < fix.recorded_at)
                .unwrap_or(trail.len());
            trail.insert(
                at,
                TrailPoint {
                    recorded_at: fix.recorded_at,
                    checkin_kind: None,
                    lat: Some(fix.lat),
                    lon: Some(fix.lon),
                    accuracy_m: fix.accuracy_m,
                    battery_pct: None,
                    purged: false,
                },
            );
        }
    }
    let last_position = trail
        .iter()
        .filter_map(TrailPoint::fix)
        .chain(alert_fix)
        .chain(before.as_ref().and_then(TrailPoint::fix))
        .max_by_key(|fix| fix.recorded_at);
    let area = outing
        .area
        .as_deref()
        .and_then(|raw| serde_json::from_str(raw).ok())
        .and_then(|value| parse_stored_area(&value));

    let mut user_agent = visitor.user_agent.clone();
    if let Some(ua) = &mut user_agent {
        if let Some((cut, _)) = ua.char_indices().nth(200) {
            ua.truncate(cut);
        }
    }
    audit(
        conn,
        (link.created_by.to_string(), "handoff"),
        "handoff.view",
        &alert,
        json!({"link_id": link.id, "address": visitor.address, "user_agent": user_agent}),
        now_ms,
    )?;
    Ok(Some(Page {
        org_name: org.name,
        zone: org.timezone,
        now_ms,
        expires_at_ms: handoff::expires_at(link.expires_at, alert.resolved_at),
        acknowledged_by,
        person,
        companions,
        contact,
        area,
        trail,
        before,
        battery,
        last_position,
        outing,
        alert,
    }))
}
