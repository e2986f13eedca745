//! The scheduler's queries: due work, claimed so that replicas never process the same row at
//! the same time.

use diesel::dsl::min;
use diesel::prelude::*;

use super::alerts::AlertRow;
use super::outings::OutingRow;
use super::schema::{alerts, outings};
use super::DbConn;
use crate::error::AppError;

/// Outings with an action due at `now_ms`, oldest first. On PostgreSQL the rows are locked
/// `FOR UPDATE SKIP LOCKED` until the transaction ends: another replica skips them, and if
/// this process dies the locks vanish with its connection, so the work is taken over at once.
/// On SQLite the single writer connection is the claim.
pub fn claim_due_outings(
    conn: &mut DbConn,
    now_ms: i64,
    limit: i64,
) -> Result<Vec<OutingRow>, AppError> {
    // Served by outings_next_action (partial index on next_action_at).
    macro_rules! due {
        () => {
            outings::table
                .filter(outings::next_action_at.le(now_ms))
                .order(outings::next_action_at)
                .limit(limit)
                .select(OutingRow::as_select())
        };
    }
    Ok(match conn {
        DbConn::Pg(pg) => due!().for_update().skip_locked().load(pg)?,
        DbConn::Sqlite(sqlite) => due!().load(sqlite)?,
    })
}

/// Alerts with an action due at `now_ms`, oldest first, claimed like outings.
pub fn claim_due_alerts(
    conn: &mut DbConn,
    now_ms: i64,
    limit: i64,
) -> Result<Vec<AlertRow>, AppError> {
    // Served by alerts_next_action.
    macro_rules! due {
        () => {
            alerts::table
                .filter(alerts::next_action_at.le(now_ms))
                .order(alerts::next_action_at)
                .limit(limit)
                .select(AlertRow::as_select())
        };
    }
    Ok(match conn {
        DbConn::Pg(pg) => due!().for_update().skip_locked().load(pg)?,
        DbConn::Sqlite(sqlite) => due!().load(sqlite)?,
    })
}

/// The earliest pending action of any outing or alert (both partial indexes answer a MIN).
pub fn earliest_action(conn: &mut DbConn) -> Result<Option<i64>, AppError> {
    let outing: Option<i64> = outings::table
        .select(min(outings::next_action_at))
        .get_result(conn)?;
    let alert: Option<i64> = alerts::table
        .select(min(alerts::next_action_at))
        .get_result(conn)?;
    Ok(match (outing, alert) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

/// Pushes a row's action back after a failure, so one broken row cannot block the queue.
pub fn postpone(
    conn: &mut DbConn,
    outing: Option<&str>,
    alert: Option<&str>,
    until_ms: i64,
) -> Result<(), AppError> {
    if let Some(id) = outing {
        diesel::update(outings::table.find(id))
            .set(outings::next_action_at.eq(until_ms))
            .execute(conn)?;
    }
    if let Some(id) = alert {
        diesel::update(alerts::table.find(id))
            .set(alerts::next_action_at.eq(until_ms))
            .execute(conn)?;
    }
    Ok(())
}
