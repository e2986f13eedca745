//! Location retention: coordinates of outings that ended more than
//! `privacy.location_retention_days` ago are removed. Alerts keep their record (who, when,
//! outcome) without the trail.

use diesel::prelude::*;

use crate::error::AppError;
use crate::store::schema::{
    alerts, checkins, idempotency_keys, login_attempts, notifications, outings,
};
use crate::store::DbConn;

/// What one run removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub checkins: usize,
    pub alerts: usize,
    pub notifications: usize,
    pub idempotency_records: usize,
}

/// Idempotent replays older than this are forgotten (they hold responses with coordinates).
const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 3_600_000;

/// Removes what retention says must go, as of `now_ms` (the caller's clock: tests inject one).
pub fn purge(conn: &mut DbConn, now_ms: i64, retention_days: i64) -> Result<Purged, AppError> {
    let cutoff = now_ms - retention_days.saturating_mul(86_400_000);
    let expired = outings::table
        .filter(outings::status.eq("ended"))
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
        .filter(outings::status.eq("ended"))
        .filter(outings::ended_at.lt(cutoff))
        .select(outings::id);
    let alerts = diesel::update(
        alerts::table
            .filter(alerts::outing_id.eq_any(expired))
            .filter(alerts::status.eq("resolved"))
            .filter(alerts::last_lat.is_not_null()),
    )
    .set((
        alerts::last_lat.eq(None::<f64>),
        alerts::last_lon.eq(None::<f64>),
        alerts::last_accuracy_m.eq(None::<f64>),
    ))
    .execute(conn)?;
    let expired = outings::table
        .filter(outings::status.eq("ended"))
        .filter(outings::ended_at.lt(cutoff))
        .select(outings::id.nullable());
    // Delivered or abandoned messages keep their delivery record; their text (with the last
    // position) goes.
    let notifications = diesel::update(
        notifications::table
            .filter(notifications::outing_id.eq_any(expired))
            .filter(notifications::status.ne("pending"))
            .filter(notifications::payload.ne("{}")),
    )
    .set(notifications::payload.eq("{}"))
    .execute(conn)?;
    let idempotency_records = diesel::delete(
        idempotency_keys::table
            .filter(idempotency_keys::created_at.lt(now_ms - IDEMPOTENCY_WINDOW_MS)),
    )
    .execute(conn)?;
    diesel::delete(
        login_attempts::table.filter(login_attempts::attempted_at.lt(now_ms - 86_400_000)),
    )
    .execute(conn)?;
    // Wrong-PIN counters outlive their 15-minute lockout by a day at most.
    crate::store::pins::purge_older_than(conn, now_ms - 86_400_000)?;
    Ok(Purged {
        checkins,
        alerts,
        notifications,
        idempotency_records,
    })
}

/// Runs the purge hourly until the task is dropped.
pub async fn run(state: actix_web::web::Data<crate::state::AppState>) {
    loop {
        let now_ms = state.clock.now_ms();
        let days = state.settings.privacy.location_retention_days;
        match state
            .store
            .write(move |conn| purge(conn, now_ms, days))
            .await
        {
            Ok(purged) if purged != Purged::default() => {
                tracing::info!(
                    checkins = purged.checkins,
                    alerts = purged.alerts,
                    notifications = purged.notifications,
                    "location retention applied"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "location retention failed; retrying in an hour"),
        }
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    }
}
