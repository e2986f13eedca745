//! What retention removes: coordinates of long-ended outings, replayable answers, old login
//! attempts. The rule of when is `service::retention`'s.

use crate::domain::delivery::DeliveryStatus;
use crate::domain::escalation::{AlertStatus, OutingStatus};
use diesel::prelude::*;

use super::schema::{alerts, checkins, idempotency_keys, login_attempts, notifications, outings};
use super::DbConn;
use super::DbError;

/// Rows whose coordinates [`forget_locations`] removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Forgotten {
    pub checkins: usize,
    pub alerts: usize,
    pub notifications: usize,
}

/// Removes the coordinates of outings that ended before `cutoff_ms`: their check-ins' positions,
/// their resolved alerts' last positions, and the text of their finished messages. Alerts keep
/// their record (who, when, outcome); messages keep their delivery record.
pub fn forget_locations(conn: &mut DbConn, cutoff: i64, now_ms: i64) -> Result<Forgotten, DbError> {
    let expired = outings::table
        .filter(outings::status.eq(OutingStatus::Ended))
        .filter(outings::ended_at.lt(cutoff))
        .select(outings::id);
    let checkins = diesel::update(
        checkins::table
            .filter(checkins::outing_id.eq_any(expired))
            .filter(checkins::location_purged_at.is_null()),
    )
    .set((
        checkins::lat.eq(None::<f64>),
        checkins::lon.eq(None::<f64>),
        checkins::accuracy_m.eq(None::<f64>),
        checkins::location_purged_at.eq(Some(now_ms)),
    ))
    .execute(conn)?;
    let expired = outings::table
        .filter(outings::status.eq(OutingStatus::Ended))
        .filter(outings::ended_at.lt(cutoff))
        .select(outings::id);
    let alerts = diesel::update(
        alerts::table
            .filter(alerts::outing_id.eq_any(expired))
            .filter(alerts::status.eq(AlertStatus::Resolved))
            .filter(alerts::last_lat.is_not_null()),
    )
    .set((
        alerts::last_lat.eq(None::<f64>),
        alerts::last_lon.eq(None::<f64>),
        alerts::last_accuracy_m.eq(None::<f64>),
    ))
    .execute(conn)?;
    let expired = outings::table
        .filter(outings::status.eq(OutingStatus::Ended))
        .filter(outings::ended_at.lt(cutoff))
        .select(outings::id.nullable());
    // Delivered or abandoned messages keep their delivery record; their text (with the last
    // position) goes.
    let notifications = diesel::update(
        notifications::table
            .filter(notifications::outing_id.eq_any(expired))
            .filter(notifications::status.ne(DeliveryStatus::Pending))
            .filter(notifications::payload.ne("{}")),
    )
    .set(notifications::payload.eq("{}"))
    .execute(conn)?;
    Ok(Forgotten {
        checkins,
        alerts,
        notifications,
    })
}

/// Forgets idempotent answers stored before `before_ms` (they hold coordinates).
pub fn forget_idempotency_records(conn: &mut DbConn, before_ms: i64) -> Result<usize, DbError> {
    Ok(
        diesel::delete(idempotency_keys::table.filter(idempotency_keys::created_at.lt(before_ms)))
            .execute(conn)?,
    )
}

/// Forgets login attempts made before `before_ms`.
pub fn forget_login_attempts(conn: &mut DbConn, before_ms: i64) -> Result<usize, DbError> {
    Ok(
        diesel::delete(login_attempts::table.filter(login_attempts::attempted_at.lt(before_ms)))
            .execute(conn)?,
    )
}
