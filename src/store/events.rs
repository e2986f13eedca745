//! The alert event log that live watchers on every replica follow.

use diesel::prelude::*;

use super::schema::alert_events;
use super::DbConn;
use crate::error::AppError;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = alert_events)]
pub struct EventRow {
    pub seq: i64,
    pub alert_id: String,
    pub org_id: String,
    pub event: String,
    pub at: i64,
}

pub fn record(
    conn: &mut DbConn,
    alert_id: &str,
    org_id: &str,
    event: &str,
    at: i64,
) -> Result<(), AppError> {
    diesel::insert_into(alert_events::table)
        .values((
            alert_events::alert_id.eq(alert_id),
            alert_events::org_id.eq(org_id),
            alert_events::event.eq(event),
            alert_events::at.eq(at),
        ))
        .execute(conn)?;
    Ok(())
}

/// Events recorded since `since_ms` (a window, not a cursor: on PostgreSQL a sequence value
/// can commit after a higher one, so readers re-read a short window and skip what they have).
pub fn recent(conn: &mut DbConn, since_ms: i64, limit: i64) -> Result<Vec<EventRow>, AppError> {
    // Served by alert_events_at.
    Ok(alert_events::table
        .filter(alert_events::at.ge(since_ms))
        .order(alert_events::seq)
        .limit(limit)
        .select(EventRow::as_select())
        .load(conn)?)
}

pub fn prune(conn: &mut DbConn, before_ms: i64) -> Result<usize, AppError> {
    Ok(diesel::delete(alert_events::table.filter(alert_events::at.lt(before_ms))).execute(conn)?)
}
