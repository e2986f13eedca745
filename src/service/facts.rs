//! What several use cases read of an outing and its alert: the organisation's policy, the
//! outing's scheduling clock, its companions, its last known position, and what raising an
//! alert did. Below `alerts`, `notify` and `outings`, which all use it.

use crate::domain::escalation::{self, OutingClock};
use crate::domain::ids::{OrgId, UserId};
use crate::domain::policy::EscalationPolicy;
use crate::domain::time::{from_millis, to_millis};
use crate::error::AppError;
use crate::store::alerts::AlertRow;
use crate::store::outings::OutingRow;
use crate::store::{self, DbConn};

/// The policy in force for an organisation (its own, or the server default).
pub fn org_policy(
    conn: &mut DbConn,
    org: OrgId,
    default: &EscalationPolicy,
) -> Result<EscalationPolicy, AppError> {
    Ok(store::orgs::find(conn, org)?
        .map(|o| o.policy(default))
        .unwrap_or(*default))
}

/// The outing's scheduling state as the domain sees it; a stored status that is not one of
/// the three is an error (the column's CHECK makes it impossible), never silently `active`.
pub fn outing_clock(row: &OutingRow) -> Result<OutingClock, AppError> {
    Ok(OutingClock {
        status: row.status,
        next_checkin_due_at: row.next_checkin_due_at.map(from_millis),
        reminder_sent_for: row.reminder_sent_for.map(from_millis),
    })
}

/// Recomputes when the scheduler next has to look at this outing.
pub fn reschedule(row: &mut OutingRow, policy: &EscalationPolicy) -> Result<(), AppError> {
    row.next_action_at =
        escalation::next_outing_action_at(policy, &outing_clock(row)?).map(to_millis);
    Ok(())
}

/// The outing's companions with their names. They are fixed when the outing starts, and
/// `solo` records that there are none: a solo outing (the common case, and every check-in's
/// response) needs no query.
pub fn companions_of(
    conn: &mut DbConn,
    row: &OutingRow,
) -> Result<Vec<(UserId, String)>, AppError> {
    if row.solo {
        return Ok(Vec::new());
    }
    Ok(store::outings::companions(conn, row.id)?)
}

/// Where the canvasser was last seen, copied onto the alert so it survives location retention.
#[derive(Debug, Clone, Copy)]
pub struct LastLocation {
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: Option<f64>,
    pub recorded_at_ms: i64,
}

impl LastLocation {
    /// Where a check-in was, if it carried a position.
    pub fn of(checkin: &crate::store::outings::CheckinRow) -> Option<LastLocation> {
        Some(LastLocation {
            lat: checkin.lat?,
            lon: checkin.lon?,
            accuracy_m: checkin.accuracy_m,
            recorded_at_ms: checkin.recorded_at,
        })
    }
}

/// The outing's latest known position, if it has one that has not been purged.
pub fn last_location_of(
    conn: &mut DbConn,
    outing: &OutingRow,
) -> Result<Option<LastLocation>, AppError> {
    let Some(id) = outing.last_checkin_id.as_deref() else {
        return Ok(None);
    };
    Ok(store::outings::find_checkin(conn, id)?.and_then(|c| LastLocation::of(&c)))
}

/// What `raise` did.
pub enum Raised {
    Opened(AlertRow),
    Upgraded(AlertRow),
    Unchanged(AlertRow),
}

impl Raised {
    pub fn alert(&self) -> &AlertRow {
        match self {
            Raised::Opened(a) | Raised::Upgraded(a) | Raised::Unchanged(a) => a,
        }
    }
}
