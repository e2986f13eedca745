//! Opening, upgrading, acknowledging and resolving alerts.

use crate::domain::escalation::{self, AlertClock, AlertKind, AlertStatus, Opening};
use crate::domain::ids::{AlertId, UserId};
use crate::domain::policy::EscalationPolicy;
use crate::domain::time::{from_millis, to_millis};
use crate::error::AppError;
use crate::service::facts::{self, LastLocation, Raised};
use crate::service::notify::Lookups;
use crate::store::alerts::AlertRow;
use crate::store::outings::OutingRow;
use crate::store::{self, DbConn};

pub fn clock_of(row: &AlertRow) -> Result<AlertClock, AppError> {
    let policy: EscalationPolicy = serde_json::from_str(&row.policy)
        .map_err(|e| AppError::internal(format!("stored policy of alert {}: {e}", row.id)))?;
    Ok(AlertClock {
        kind: row.kind,
        level: row.level(),
        status: row.status,
        opened_at: from_millis(row.opened_at),
        escalated_at: row.escalated_at.map(from_millis),
        acknowledged_at: row.acknowledged_at.map(from_millis),
        last_pushed_at: from_millis(row.last_pushed_at.unwrap_or(row.opened_at)),
        repeats_sent: u32::try_from(row.repeats_sent).unwrap_or(0),
        ack_timeouts: u32::try_from(row.ack_timeouts).unwrap_or(0),
        policy,
    })
}

/// Copies a clock's state onto the row and recomputes the alert's next scheduler time.
pub fn apply_clock(row: &mut AlertRow, clock: &AlertClock, now_ms: i64) {
    row.kind = clock.kind;
    row.level = i32::from(clock.level);
    row.status = clock.status;
    row.escalated_at = clock.escalated_at.map(to_millis);
    row.acknowledged_at = clock.acknowledged_at.map(to_millis);
    row.last_pushed_at = Some(to_millis(clock.last_pushed_at));
    row.repeats_sent = i32::try_from(clock.repeats_sent).unwrap_or(i32::MAX);
    row.ack_timeouts = i32::try_from(clock.ack_timeouts).unwrap_or(i32::MAX);
    row.next_action_at = escalation::next_alert_action_at(clock).map(to_millis);
    row.updated_at = now_ms;
}

/// What is raised: a kind, and why when the kind does not say it all (a check-on-me's note).
pub struct Raising {
    pub kind: AlertKind,
    pub reason: Option<String>,
}

impl From<AlertKind> for Raising {
    fn from(kind: AlertKind) -> Self {
        Raising { kind, reason: None }
    }
}

/// Opens an alert of `kind` on the outing, or upgrades its unresolved one (an outing has at
/// most one). The policy is snapshotted onto a new alert. The caller saves the outing.
pub fn raise(
    conn: &mut DbConn,
    lookups: &mut Lookups,
    outing: &mut OutingRow,
    raising: impl Into<Raising>,
    location: Option<LastLocation>,
    policy: &EscalationPolicy,
    now_ms: i64,
) -> Result<Raised, AppError> {
    let Raising { kind, reason } = raising.into();
    let existing = match outing.open_alert_id {
        Some(id) => {
            store::alerts::find_for_update(conn, id)?.filter(|a| a.status != AlertStatus::Resolved)
        }
        None => None,
    };
    let existing_clock = existing.as_ref().map(clock_of).transpose()?;
    let now = from_millis(now_ms);
    let raised = match (
        escalation::open_or_upgrade(existing_clock.as_ref(), kind),
        existing,
    ) {
        (Opening::Open { kind, level }, _) => {
            let clock = AlertClock {
                kind,
                level,
                status: AlertStatus::Open,
                opened_at: now,
                escalated_at: None,
                acknowledged_at: None,
                last_pushed_at: now,
                repeats_sent: 0,
                ack_timeouts: 0,
                policy: *policy,
            };
            let mut row = AlertRow {
                id: AlertId::new(),
                outing_id: outing.id,
                org_id: outing.org_id,
                canvasser_id: outing.canvasser_id,
                kind,
                level: 0,
                status: AlertStatus::Open,
                policy: serde_json::to_string(policy)
                    .map_err(|e| AppError::internal(format!("policy snapshot: {e}")))?,
                opened_at: now_ms,
                escalated_at: None,
                acknowledged_at: None,
                acknowledged_by: None,
                resolved_at: None,
                resolved_by: None,
                resolution: None,
                note: None,
                last_lat: None,
                last_lon: None,
                last_accuracy_m: None,
                last_recorded_at: None,
                repeats_sent: 0,
                ack_timeouts: 0,
                last_pushed_at: None,
                next_action_at: None,
                claimed_by: None,
                claimed_until: None,
                updated_at: now_ms,
                reason,
                // "Reply OK 4821": who replies is matched by phone number, so four digits
                // tell apart the few alerts one person may hold at once.
                ack_code: Some(format!("{:04}", rand::random_range(0..10_000u32))),
            };
            apply_clock(&mut row, &clock, now_ms);
            let location = match location {
                Some(l) => Some(l),
                None => lookups.last_location(conn, outing)?,
            };
            set_location(&mut row, location);
            lookups.insert_alert(conn, row.clone())?;
            lookups.record_event(conn, &row, "alert.opened", now_ms)?;
            outing.open_alert_id = Some(row.id);
            Raised::Opened(row)
        }
        (Opening::Upgrade { kind, to_level, .. }, Some(mut row)) => {
            // New danger re-opens an acknowledged alert and restarts its repeat clock.
            let clock = escalation::upgraded(&clock_of(&row)?, kind, to_level, now);
            row.acknowledged_by = None;
            apply_clock(&mut row, &clock, now_ms);
            if location.is_some() {
                set_location(&mut row, location);
            }
            store::alerts::update(conn, &row)?;
            lookups.record_event(conn, &row, "alert.escalated", now_ms)?;
            Raised::Upgraded(row)
        }
        (_, Some(row)) => Raised::Unchanged(row),
        (_, None) => return Err(AppError::internal("alert upgrade without an open alert")),
    };
    Ok(raised)
}

fn set_location(row: &mut AlertRow, location: Option<LastLocation>) {
    if let Some(l) = location {
        row.last_lat = Some(l.lat);
        row.last_lon = Some(l.lon);
        row.last_accuracy_m = l.accuracy_m;
        row.last_recorded_at = Some(l.recorded_at_ms);
    }
}

/// Resolves the alert with `resolution` (`checked_in`, `ended_safe`, or a contact's outcome).
/// The caller clears the outing's `open_alert_id` and saves the outing.
pub fn resolve(
    conn: &mut DbConn,
    row: &mut AlertRow,
    resolution: &str,
    by: Option<UserId>,
    note: Option<String>,
    now_ms: i64,
) -> Result<(), AppError> {
    let clock = clock_of(row)?;
    let resolved = escalation::resolve(&clock, from_millis(now_ms))
        .map_err(|e| AppError::Conflict(e.to_string()))?;
    apply_clock(row, &resolved, now_ms);
    row.resolved_at = Some(now_ms);
    row.resolved_by = by;
    row.resolution = Some(resolution.to_owned());
    if note.is_some() {
        row.note = note;
    }
    store::alerts::update(conn, row)?;
    Ok(store::events::record(
        conn,
        &row.id.to_string(),
        &row.org_id.to_string(),
        "alert.resolved",
        now_ms,
    )?)
}

/// The viewer's relation to an alert.
pub struct AlertAccess {
    pub visible: bool,
    pub may_handle: bool,
}

pub fn access(
    conn: &mut DbConn,
    caller: &crate::domain::caller::Caller,
    row: &AlertRow,
) -> Result<AlertAccess, AppError> {
    access_as(conn, caller.id, caller.role, caller.org_id, row)
}

/// [`access`] for a user who is not the caller (the maker of a hand-off link, say).
pub fn access_as(
    conn: &mut DbConn,
    id: UserId,
    role: crate::domain::account::Role,
    org_id: Option<crate::domain::ids::OrgId>,
    row: &AlertRow,
) -> Result<AlertAccess, AppError> {
    use crate::domain::visibility::{alert_visible, may_handle_alert, AlertFacts, Viewer};
    let companions: Vec<UserId> = store::outings::companions(conn, row.outing_id)?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let police_orgs = if role == crate::domain::account::Role::Police {
        store::accounts::police_orgs(conn, id)?
    } else {
        Vec::new()
    };
    let viewer = Viewer {
        id,
        role,
        org_id,
        police_orgs: &police_orgs,
    };
    let facts = AlertFacts {
        canvasser: row.canvasser_id,
        org_id: row.org_id,
        companions: &companions,
        level: row.level(),
        kind: row.kind,
    };
    Ok(AlertAccess {
        visible: alert_visible(&viewer, &facts),
        may_handle: may_handle_alert(&viewer, &facts),
    })
}

/// Loads an alert (and its outing, locked first: the lock order everywhere is outing, then
/// alert) for a contact who may handle it.
fn handled_alert(
    conn: &mut DbConn,
    caller: &crate::domain::caller::Caller,
    alert_id: AlertId,
) -> Result<(OutingRow, AlertRow), AppError> {
    let peek = store::alerts::find(conn, alert_id)?.ok_or(AppError::NotFound("alert"))?;
    let outing_id: crate::domain::ids::OutingId =
        store::accounts::parse_id(&peek.outing_id.to_string(), "outing")?;
    let outing =
        store::outings::find_for_update(conn, outing_id)?.ok_or(AppError::NotFound("alert"))?;
    let row = store::alerts::find_for_update(conn, peek.id)?.ok_or(AppError::NotFound("alert"))?;
    let access = access(conn, caller, &row)?;
    if !access.visible {
        return Err(AppError::NotFound("alert"));
    }
    if !access.may_handle {
        return Err(AppError::Forbidden(if row.canvasser_id == caller.id {
            "you cannot acknowledge or resolve your own alert: check in instead".into()
        } else {
            "only organisers and police contacts handle alerts".into()
        }));
    }
    Ok((outing, row))
}

/// First acknowledgement wins; later ones are a 409.
pub fn acknowledge_by_contact(
    conn: &mut DbConn,
    caller: &crate::domain::caller::Caller,
    alert_id: AlertId,
    note: Option<String>,
    now_ms: i64,
) -> Result<AlertRow, AppError> {
    let (_, mut row) = handled_alert(conn, caller, alert_id)?;
    let clock = clock_of(&row)?;
    let acknowledged = escalation::acknowledge(&clock, from_millis(now_ms))
        .map_err(|e| AppError::Conflict(e.to_string()))?;
    apply_clock(&mut row, &acknowledged, now_ms);
    row.acknowledged_at = Some(now_ms);
    row.acknowledged_by = Some(caller.id);
    if note.is_some() {
        row.note = note;
    }
    store::alerts::update(conn, &row)?;
    store::events::record(
        conn,
        &row.id.to_string(),
        &row.org_id.to_string(),
        "alert.acknowledged",
        now_ms,
    )?;
    Ok(row)
}

/// A contact resolves an alert with an outcome: `all_clear` goes out, and an overdue outing
/// becomes active again with a fresh deadline (the contact has vouched for the canvasser).
pub fn resolve_by_contact(
    conn: &mut DbConn,
    caller: &crate::domain::caller::Caller,
    alert_id: AlertId,
    outcome: &str,
    note: Option<String>,
    default_policy: &EscalationPolicy,
    now_ms: i64,
) -> Result<AlertRow, AppError> {
    let (mut outing, mut row) = handled_alert(conn, caller, alert_id)?;
    resolve(conn, &mut row, outcome, Some(caller.id), note, now_ms)?;
    crate::service::notify::all_clear(conn, &outing, &row, now_ms)?;
    if outing.open_alert_id == Some(row.id) {
        outing.open_alert_id = None;
    }
    if outing.status == escalation::OutingStatus::Overdue {
        let policy = facts::org_policy(conn, outing.org_id, default_policy)?;
        let due = crate::domain::deadline::next_checkin_due_at(
            from_millis(now_ms),
            outing.checkin_interval_s,
            outing.planned_end_at.map(from_millis),
        );
        outing.status = escalation::OutingStatus::Active;
        outing.next_checkin_due_at = Some(to_millis(due));
        outing.last_received_at = now_ms;
        facts::reschedule(&mut outing, &policy)?;
    }
    outing.updated_at = now_ms;
    store::outings::update(conn, &outing)?;
    Ok(row)
}
