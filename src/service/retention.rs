//! Location retention: coordinates of outings that ended more than
//! `privacy.location_retention_days` ago are removed. Alerts keep their record (who, when,
//! outcome) without the trail.

use crate::error::AppError;
use crate::store::{self, DbConn};

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

/// Login attempts and wrong-PIN counters are kept this long (they outlive their windows and
/// 15-minute lockouts by a day at most).
const ATTEMPTS_WINDOW_MS: i64 = 86_400_000;

/// Removes what retention says must go, as of `now_ms` (the caller's clock: tests inject one).
/// Also removes closed incidents older than the incident log's own keeping period (whole,
/// with their entries) and cautions that lapsed more than 30 days ago.
pub fn purge(
    conn: &mut DbConn,
    now_ms: i64,
    retention_days: i64,
    incident_retention_days: i64,
) -> Result<Purged, AppError> {
    store::incidents::forget_closed_before(
        conn,
        now_ms - incident_retention_days.saturating_mul(86_400_000),
    )?;
    store::cautions::forget_expired_before(conn, now_ms - 30 * 86_400_000)?;
    let cutoff = now_ms - retention_days.saturating_mul(86_400_000);
    let forgotten = store::retention::forget_locations(conn, cutoff, now_ms)?;
    let idempotency_records =
        store::retention::forget_idempotency_records(conn, now_ms - IDEMPOTENCY_WINDOW_MS)?;
    store::retention::forget_login_attempts(conn, now_ms - ATTEMPTS_WINDOW_MS)?;
    store::pins::purge_older_than(conn, now_ms - ATTEMPTS_WINDOW_MS)?;
    // Hand-off links a day after they lapsed or were revoked: they open nothing any more.
    store::handoff::forget_lapsed_before(conn, now_ms - ATTEMPTS_WINDOW_MS)?;
    Ok(Purged {
        checkins: forgotten.checkins,
        alerts: forgotten.alerts,
        notifications: forgotten.notifications,
        idempotency_records,
    })
}
