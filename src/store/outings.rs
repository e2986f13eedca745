//! Outings, companions, check-ins and idempotency records.

use diesel::prelude::*;

use super::accounts::parse_id;
use super::native::{on_backend, UpdateRow};
use super::schema::{checkins, idempotency_keys, outing_companions, outing_events, outings, users};
use super::{new_id, DbConn};
use crate::domain::ids::{OrgId, OutingId, UserId};
use crate::error::AppError;

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = outings, treat_none_as_null = true, treat_none_as_default_value = false)]
pub struct OutingRow {
    pub id: String,
    pub canvasser_id: String,
    pub org_id: String,
    pub status: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub checkin_interval_s: i64,
    pub next_checkin_due_at: Option<i64>,
    pub planned_end_at: Option<i64>,
    pub area: Option<String>,
    pub solo: bool,
    pub note: Option<String>,
    pub last_checkin_id: Option<String>,
    pub last_received_at: i64,
    pub inside_area: Option<bool>,
    pub low_battery_notified: bool,
    pub outside_area_notified: bool,
    pub reminder_sent_for: Option<i64>,
    pub open_alert_id: Option<String>,
    pub next_action_at: Option<i64>,
    pub claimed_by: Option<String>,
    pub claimed_until: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The latest check-in's display order (`recorded_at`, `received_at`), beside its id.
    pub last_checkin_recorded_at: Option<i64>,
    pub last_checkin_received_at: Option<i64>,
}

impl OutingRow {
    /// Makes `checkin` the outing's latest check-in.
    pub fn set_latest(&mut self, checkin: &CheckinRow) {
        self.last_checkin_id = Some(checkin.id.clone());
        self.last_checkin_recorded_at = Some(checkin.recorded_at);
        self.last_checkin_received_at = Some(checkin.received_at);
    }

    pub fn outing_id(&self) -> Result<OutingId, AppError> {
        parse_id(&self.id, "outing")
    }
    pub fn canvasser(&self) -> Result<UserId, AppError> {
        parse_id(&self.canvasser_id, "user")
    }
    pub fn org(&self) -> Result<OrgId, AppError> {
        parse_id(&self.org_id, "organisation")
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = checkins, treat_none_as_default_value = false)]
pub struct CheckinRow {
    pub id: String,
    pub outing_id: String,
    pub user_id: String,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub accuracy_m: Option<f64>,
    pub battery_pct: Option<i32>,
    pub kind: String,
    pub source: String,
    pub recorded_at: i64,
    pub received_at: i64,
    pub inside_area: Option<bool>,
    pub client_id: Option<String>,
    pub location_purged_at: Option<i64>,
}

pub fn insert_outing(
    conn: &mut DbConn,
    row: &OutingRow,
    companions: &[UserId],
) -> Result<(), AppError> {
    diesel::insert_into(outings::table)
        .values(row)
        .execute(conn)
        .map_err(|e| match e {
            // outings_one_open_per_canvasser: a concurrent start won the race.
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            ) => AppError::Conflict("you already have an outing that has not ended".into()),
            other => other.into(),
        })?;
    for companion in companions {
        diesel::insert_into(outing_companions::table)
            .values((
                outing_companions::outing_id.eq(&row.id),
                outing_companions::user_id.eq(companion.to_string()),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// The canvasser's outing that has not ended, if any (outings_one_open_per_canvasser).
pub fn open_outing_of(conn: &mut DbConn, canvasser: UserId) -> Result<Option<String>, AppError> {
    Ok(outings::table
        .filter(outings::canvasser_id.eq(canvasser.to_string()))
        .filter(outings::status.ne("ended"))
        .select(outings::id)
        .get_result(conn)
        .optional()?)
}

pub fn find(conn: &mut DbConn, id: OutingId) -> Result<Option<OutingRow>, AppError> {
    let id = id.to_string();
    Ok(on_backend!(conn, c => outings::table
        .find(&id)
        .select(OutingRow::as_select())
        .get_result(c)
        .optional())?)
}

/// Loads an outing for change. On PostgreSQL the row stays locked until the transaction ends,
/// so concurrent check-ins, the scheduler and idempotent retries of one outing take turns. On
/// SQLite the single writer already serialises them.
pub fn find_for_update(conn: &mut DbConn, id: OutingId) -> Result<Option<OutingRow>, AppError> {
    match conn {
        DbConn::Pg(pg) => Ok(outings::table
            .find(id.to_string())
            .select(OutingRow::as_select())
            .for_update()
            .get_result(pg)
            .optional()?),
        DbConn::Sqlite(_) => find(conn, id),
    }
}

/// [`find_for_update`], with its organisation's custom escalation policy (JSON; `None` when
/// it follows the server's default) read in the same statement. On PostgreSQL only the
/// outing is locked: the policy is a scalar subquery, not a joined row.
pub fn find_for_update_with_policy(
    conn: &mut DbConn,
    id: OutingId,
) -> Result<Option<(OutingRow, Option<String>)>, AppError> {
    use super::schema::organisations;
    let id = id.to_string();
    macro_rules! query {
        () => {
            outings::table.find(&id).select((
                OutingRow::as_select(),
                organisations::table
                    .filter(organisations::id.eq(outings::org_id))
                    .select(organisations::escalation_policy)
                    .single_value(),
            ))
        };
    }
    Ok(match conn {
        DbConn::Pg(pg) => query!().for_update().get_result(pg).optional()?,
        DbConn::Sqlite(sqlite) => query!().get_result(sqlite).optional()?,
    })
}

pub fn update(conn: &mut DbConn, row: &OutingRow) -> Result<(), AppError> {
    let update = UpdateRow::<OutingRow, _>::new("outings", row.as_changeset(), &row.id);
    on_backend!(conn, c => update.execute(c))?;
    Ok(())
}

/// Companions with their display names, in a stable order.
pub fn companions(conn: &mut DbConn, outing: &str) -> Result<Vec<(UserId, String)>, AppError> {
    let rows: Vec<(String, String)> = on_backend!(conn, c => outing_companions::table
        .inner_join(users::table.on(users::id.eq(outing_companions::user_id)))
        .filter(outing_companions::outing_id.eq(outing))
        .order(users::display_name)
        .select((users::id, users::display_name))
        .load(c))?;
    rows.into_iter()
        .map(|(id, name)| Ok((parse_id(&id, "user")?, name)))
        .collect()
}

pub fn display_name(conn: &mut DbConn, user: &str) -> Result<String, AppError> {
    let name: Option<String> = on_backend!(conn, c => users::table
        .find(user)
        .select(users::display_name)
        .get_result(c)
        .optional())?;
    Ok(name.unwrap_or_default())
}

pub fn insert_checkin(conn: &mut DbConn, row: &CheckinRow) -> Result<(), AppError> {
    on_backend!(conn, c => diesel::insert_into(checkins::table).values(row).execute(c))?;
    Ok(())
}

pub fn find_checkin(conn: &mut DbConn, id: &str) -> Result<Option<CheckinRow>, AppError> {
    Ok(on_backend!(conn, c => checkins::table
        .find(id)
        .select(CheckinRow::as_select())
        .get_result(c)
        .optional())?)
}

/// Client ids of this outing already stored, among `candidates` (offline-queue de-duplication).
pub fn existing_client_ids(
    conn: &mut DbConn,
    outing: &str,
    candidates: &[String],
) -> Result<Vec<String>, AppError> {
    // Served by checkins_outing_client_id.
    Ok(checkins::table
        .filter(checkins::outing_id.eq(outing))
        .filter(checkins::client_id.eq_any(candidates))
        .select(checkins::client_id.assume_not_null())
        .load(conn)?)
}

/// The trail, newest first, `limit` rows after the keyset cursor `(recorded_at, id)`.
pub fn trail(
    conn: &mut DbConn,
    outing: &str,
    after: Option<(i64, String)>,
    limit: i64,
) -> Result<Vec<CheckinRow>, AppError> {
    // Served by checkins_outing_recorded.
    let mut query = checkins::table
        .filter(checkins::outing_id.eq(outing))
        .select(CheckinRow::as_select())
        .order((checkins::recorded_at.desc(), checkins::id.desc()))
        .limit(limit)
        .into_boxed();
    if let Some((at, id)) = after {
        query = query.filter(
            checkins::recorded_at
                .lt(at)
                .or(checkins::recorded_at.eq(at).and(checkins::id.lt(id))),
        );
    }
    Ok(query.load(conn)?)
}

/// Which outings a listing covers.
pub enum OutingScope {
    /// A canvasser: their own outings and those they accompany.
    Person(UserId),
    /// Organisers (one org) and police (assigned orgs).
    Orgs(Vec<OrgId>),
}

/// Outings in scope, newest first, after the keyset cursor `(started_at, id)`.
pub fn list(
    conn: &mut DbConn,
    scope: &OutingScope,
    status: Option<&str>,
    after: Option<(i64, String)>,
    limit: i64,
) -> Result<Vec<OutingRow>, AppError> {
    let mut query = outings::table
        .select(OutingRow::as_select())
        .order((outings::started_at.desc(), outings::id.desc()))
        .limit(limit)
        .into_boxed();
    match scope {
        OutingScope::Person(user) => {
            let accompanied = outing_companions::table
                .filter(outing_companions::user_id.eq(user.to_string()))
                .select(outing_companions::outing_id);
            query = query.filter(
                outings::canvasser_id
                    .eq(user.to_string())
                    .or(outings::id.eq_any(accompanied)),
            );
        }
        OutingScope::Orgs(orgs) => {
            let orgs: Vec<String> = orgs.iter().map(ToString::to_string).collect();
            // Served by outings_org_status.
            query = query.filter(outings::org_id.eq_any(orgs));
        }
    }
    if let Some(status) = status {
        query = query.filter(outings::status.eq(status.to_owned()));
    }
    if let Some((at, id)) = after {
        query = query.filter(
            outings::started_at
                .lt(at)
                .or(outings::started_at.eq(at).and(outings::id.lt(id))),
        );
    }
    Ok(query.load(conn)?)
}

pub fn record_event(
    conn: &mut DbConn,
    outing: &str,
    kind: &str,
    at: i64,
    detail: Option<&str>,
) -> Result<(), AppError> {
    on_backend!(conn, c => diesel::insert_into(outing_events::table)
        .values((
            outing_events::id.eq(new_id()),
            outing_events::outing_id.eq(outing),
            outing_events::kind.eq(kind),
            outing_events::at.eq(at),
            outing_events::detail.eq(detail),
        ))
        .execute(c))?;
    Ok(())
}

pub fn events(conn: &mut DbConn, outing: &str) -> Result<Vec<(String, i64)>, AppError> {
    Ok(outing_events::table
        .filter(outing_events::outing_id.eq(outing))
        .order(outing_events::at)
        .select((outing_events::kind, outing_events::at))
        .load(conn)?)
}

/// A stored response for an `Idempotency-Key`.
pub struct StoredResponse {
    pub request_hash: String,
    pub status: u16,
    pub body: String,
}

pub fn idempotent_response(
    conn: &mut DbConn,
    user: UserId,
    key: &str,
) -> Result<Option<StoredResponse>, AppError> {
    Ok(idempotency_keys::table
        .find((user.to_string(), key))
        .select((
            idempotency_keys::request_hash,
            idempotency_keys::response_status,
            idempotency_keys::response_body,
        ))
        .get_result::<(String, i32, String)>(conn)
        .optional()?
        .map(|(request_hash, status, body)| StoredResponse {
            request_hash,
            status: u16::try_from(status).unwrap_or(200),
            body,
        }))
}

pub fn store_idempotent_response(
    conn: &mut DbConn,
    user: UserId,
    key: &str,
    request_hash: &str,
    status: u16,
    body: &str,
    now_ms: i64,
) -> Result<(), AppError> {
    diesel::insert_into(idempotency_keys::table)
        .values((
            idempotency_keys::user_id.eq(user.to_string()),
            idempotency_keys::idem_key.eq(key),
            idempotency_keys::request_hash.eq(request_hash),
            idempotency_keys::response_status.eq(i32::from(status)),
            idempotency_keys::response_body.eq(body),
            idempotency_keys::created_at.eq(now_ms),
        ))
        .execute(conn)?;
    Ok(())
}

/// Outings of these organisations that need attention: overdue, or with an unresolved alert.
pub fn needing_attention(conn: &mut DbConn, orgs: &[OrgId]) -> Result<Vec<OutingRow>, AppError> {
    let orgs: Vec<String> = orgs.iter().map(ToString::to_string).collect();
    // Served by outings_org_status.
    Ok(outings::table
        .filter(outings::org_id.eq_any(orgs))
        .filter(
            outings::status
                .eq("overdue")
                .or(outings::open_alert_id.is_not_null()),
        )
        .select(OutingRow::as_select())
        .load(conn)?)
}

/// Outings of these organisations that have not ended, oldest first.
pub fn not_ended(conn: &mut DbConn, orgs: &[OrgId]) -> Result<Vec<OutingRow>, AppError> {
    let orgs: Vec<String> = orgs.iter().map(ToString::to_string).collect();
    Ok(outings::table
        .filter(outings::org_id.eq_any(orgs))
        .filter(outings::status.ne("ended"))
        .order(outings::started_at)
        .select(OutingRow::as_select())
        .load(conn)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The check-in's first statement (the outing with its organisation's policy) must be a
    /// statement diesel keeps prepared: on PostgreSQL an unprepared one costs two round trips.
    #[test]
    fn the_outing_with_its_policy_is_a_cached_statement() {
        let (mut conn, cached) = crate::store::sqlite_recording_prepared();
        for _ in 0..2 {
            assert!(find_for_update_with_policy(&mut conn, OutingId::new())
                .unwrap()
                .is_none());
        }
        let cached = cached.lock().unwrap();
        assert_eq!(cached.len(), 1, "{cached:?}");
        assert!(cached[0].contains("escalation_policy"), "{cached:?}");
    }
}
