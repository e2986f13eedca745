//! The alert event log that live watchers on every replica follow.

use diesel::prelude::*;

use super::native::on_backend;
use super::schema::alert_events;
use super::DbConn;
use super::DbError;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = alert_events)]
pub struct EventRow {
    pub seq: i64,
    pub alert_id: String,
    pub org_id: String,
    pub event: String,
    pub at: i64,
}

/// An event to append to the log.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = alert_events)]
pub struct NewEvent {
    pub alert_id: String,
    pub org_id: String,
    pub event: String,
    pub at: i64,
}

/// Appends many events, in order: on PostgreSQL in one statement per thousand (a scheduler
/// batch's, one round trip); on SQLite one cached statement each.
pub fn record_all(conn: &mut DbConn, events: &[NewEvent]) -> Result<(), DbError> {
    match conn {
        DbConn::Pg(pg) if events.len() > 1 => {
            for chunk in events.chunks(1000) {
                diesel::insert_into(alert_events::table)
                    .values(chunk)
                    .execute(pg)?;
            }
        }
        _ => {
            for e in events {
                record(conn, &e.alert_id, &e.org_id, &e.event, e.at)?;
            }
        }
    }
    Ok(())
}

pub fn record(
    conn: &mut DbConn,
    alert_id: &str,
    org_id: &str,
    event: &str,
    at: i64,
) -> Result<(), DbError> {
    on_backend!(conn, c => diesel::insert_into(alert_events::table)
        .values((
            alert_events::alert_id.eq(alert_id),
            alert_events::org_id.eq(org_id),
            alert_events::event.eq(event),
            alert_events::at.eq(at),
        ))
        .execute(c))?;
    Ok(())
}

pub fn max_seq(conn: &mut DbConn) -> Result<Option<i64>, DbError> {
    Ok(alert_events::table
        .select(diesel::dsl::max(alert_events::seq))
        .get_result(conn)?)
}

/// Events after `after_seq`, plus those of `gaps` (sequence numbers skipped so far: on
/// PostgreSQL a lower number can commit after a higher one), oldest first.
pub fn after(
    conn: &mut DbConn,
    after_seq: i64,
    gaps: &[i64],
    limit: i64,
) -> Result<Vec<EventRow>, DbError> {
    let mut rows: Vec<EventRow> = alert_events::table
        .filter(alert_events::seq.gt(after_seq))
        .order(alert_events::seq)
        .limit(limit)
        .select(EventRow::as_select())
        .load(conn)?;
    if !gaps.is_empty() {
        let mut late: Vec<EventRow> = alert_events::table
            .filter(alert_events::seq.eq_any(gaps))
            .select(EventRow::as_select())
            .load(conn)?;
        late.append(&mut rows);
        rows = late;
    }
    Ok(rows)
}

pub fn prune(conn: &mut DbConn, before_ms: i64) -> Result<usize, DbError> {
    Ok(diesel::delete(alert_events::table.filter(alert_events::at.lt(before_ms))).execute(conn)?)
}
