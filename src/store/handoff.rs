//! Hand-off links (`handoff_links`) and what a hand-off page reads: the people on an outing
//! with their phones, and its check-ins around an alert.

use diesel::prelude::*;

use super::outings::CheckinRow;
use super::schema::{checkins, handoff_links, users};
use super::{DbConn, DbError};
use crate::domain::ids::{AlertId, UserId};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = handoff_links, treat_none_as_default_value = false)]
pub struct LinkRow {
    pub id: String,
    pub alert_id: AlertId,
    /// SHA-256 (hex) of the token; the token itself is never stored.
    pub token_hash: String,
    pub created_by: UserId,
    pub created_at: i64,
    /// The 24-hour cap; a resolved alert's link stops earlier (`domain::handoff::expires_at`).
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

pub fn insert(conn: &mut DbConn, row: &LinkRow) -> Result<(), DbError> {
    diesel::insert_into(handoff_links::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// The link whose token hashes to `token_hash`, revoked or not.
pub fn find_by_hash(conn: &mut DbConn, token_hash: &str) -> Result<Option<LinkRow>, DbError> {
    // Served by the unique index on token_hash.
    Ok(handoff_links::table
        .filter(handoff_links::token_hash.eq(token_hash))
        .select(LinkRow::as_select())
        .get_result(conn)
        .optional()?)
}

/// Revokes every link of the alert not revoked yet; returns their ids.
pub fn revoke_all(conn: &mut DbConn, alert: AlertId, now_ms: i64) -> Result<Vec<String>, DbError> {
    let live = handoff_links::table
        .filter(handoff_links::alert_id.eq(alert))
        .filter(handoff_links::revoked_at.is_null());
    let ids: Vec<String> = live.select(handoff_links::id).load(conn)?;
    if !ids.is_empty() {
        diesel::update(handoff_links::table.filter(handoff_links::id.eq_any(&ids)))
            .set(handoff_links::revoked_at.eq(Some(now_ms)))
            .execute(conn)?;
    }
    Ok(ids)
}

/// Forgets links that lapsed (cap passed) or were revoked before `before_ms`: they open
/// nothing, and a forgotten token is answered exactly like a lapsed one.
pub fn forget_lapsed_before(conn: &mut DbConn, before_ms: i64) -> Result<usize, DbError> {
    Ok(diesel::delete(
        handoff_links::table.filter(
            handoff_links::expires_at
                .lt(before_ms)
                .or(handoff_links::revoked_at.lt(before_ms)),
        ),
    )
    .execute(conn)?)
}

/// A person as the hand-off page shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub id: String,
    pub display_name: String,
    pub phone: Option<String>,
}

/// Display names and phones of `ids` (those that exist), by display name.
pub fn people(conn: &mut DbConn, ids: &[String]) -> Result<Vec<Person>, DbError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(String, String, Option<String>)> = users::table
        .filter(users::id.eq_any(ids))
        .order((users::display_name, users::id))
        .select((users::id, users::display_name, users::phone))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, display_name, phone)| Person {
            id,
            display_name,
            phone,
        })
        .collect())
}

/// The outing's check-ins recorded at or after `since_ms`, newest first, at most `limit`.
pub fn checkins_since(
    conn: &mut DbConn,
    outing: &str,
    since_ms: i64,
    limit: i64,
) -> Result<Vec<CheckinRow>, DbError> {
    // Served by checkins_outing_recorded.
    Ok(checkins::table
        .filter(checkins::outing_id.eq(outing))
        .filter(checkins::recorded_at.ge(since_ms))
        .order((checkins::recorded_at.desc(), checkins::id.desc()))
        .limit(limit)
        .select(CheckinRow::as_select())
        .load(conn)?)
}

/// The outing's last check-in recorded before `before_ms`, if any.
pub fn last_checkin_before(
    conn: &mut DbConn,
    outing: &str,
    before_ms: i64,
) -> Result<Option<CheckinRow>, DbError> {
    // Served by checkins_outing_recorded.
    Ok(checkins::table
        .filter(checkins::outing_id.eq(outing))
        .filter(checkins::recorded_at.lt(before_ms))
        .order((checkins::recorded_at.desc(), checkins::id.desc()))
        .limit(1)
        .select(CheckinRow::as_select())
        .load(conn)?
        .into_iter()
        .next())
}
