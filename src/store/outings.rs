//! Outings, companions, check-ins and idempotency records.

use crate::domain::escalation::OutingStatus;
use diesel::prelude::*;

use super::accounts::parse_id;
use super::native::{on_backend, UpdateRow};
use super::schema::{checkins, idempotency_keys, outing_companions, outing_events, outings, users};
use super::DbError;
use super::{new_id, DbConn};
use crate::domain::ids::{AlertId, OrgId, OutingId, UserId};

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = outings, treat_none_as_null = true, treat_none_as_default_value = false)]
pub struct OutingRow {
    pub id: OutingId,
    pub canvasser_id: UserId,
    pub org_id: OrgId,
    pub status: OutingStatus,
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
    pub open_alert_id: Option<AlertId>,
    pub next_action_at: Option<i64>,
    pub claimed_by: Option<String>,
    pub claimed_until: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The latest check-in's display order (`recorded_at`, `received_at`), beside its id.
    pub last_checkin_recorded_at: Option<i64>,
    pub last_checkin_received_at: Option<i64>,
    /// A pending "check on me": its deadline and note (cleared by a check-in or when it fires).
    pub check_on_me_due_at: Option<i64>,
    pub check_on_me_note: Option<String>,
    /// A pending "are you OK?": its deadline, the asker's note, and the hash of the token the
    /// phone's notification answers with.
    pub welfare_due_at: Option<i64>,
    pub welfare_note: Option<String>,
    pub welfare_token_hash: Option<String>,
}

impl OutingRow {
    /// Makes `checkin` the outing's latest check-in.
    pub fn set_latest(&mut self, checkin: &CheckinRow) {
        self.last_checkin_id = Some(checkin.id.clone());
        self.last_checkin_recorded_at = Some(checkin.recorded_at);
        self.last_checkin_received_at = Some(checkin.received_at);
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
) -> Result<(), DbError> {
    diesel::insert_into(outings::table)
        .values(row)
        .execute(conn)
        .map_err(|e| match e {
            // outings_one_open_per_canvasser: a concurrent start won the race.
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            ) => DbError::Conflict("you already have an outing that has not ended".into()),
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
pub fn open_outing_of(conn: &mut DbConn, canvasser: UserId) -> Result<Option<String>, DbError> {
    Ok(outings::table
        .filter(outings::canvasser_id.eq(canvasser.to_string()))
        .filter(outings::status.ne(OutingStatus::Ended))
        .select(outings::id)
        .get_result(conn)
        .optional()?)
}

pub fn find(conn: &mut DbConn, id: OutingId) -> Result<Option<OutingRow>, DbError> {
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
pub fn find_for_update(conn: &mut DbConn, id: OutingId) -> Result<Option<OutingRow>, DbError> {
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
) -> Result<Option<(OutingRow, Option<String>)>, DbError> {
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

/// [`find_for_update_with_policy`] for several outings at once (one statement), for a batch
/// of check-ins. On PostgreSQL the rows are locked in id order, so two batches that share
/// outings cannot deadlock.
pub fn find_many_for_update_with_policy(
    conn: &mut DbConn,
    ids: &[String],
) -> Result<Vec<(OutingRow, Option<String>)>, DbError> {
    use super::schema::organisations;
    macro_rules! query {
        () => {
            outings::table
                .filter(outings::id.eq_any(ids))
                .order(outings::id)
                .select((
                    OutingRow::as_select(),
                    organisations::table
                        .filter(organisations::id.eq(outings::org_id))
                        .select(organisations::escalation_policy)
                        .single_value(),
                ))
        };
    }
    match conn {
        DbConn::Pg(pg) => Ok(query!().for_update().load(pg)?),
        // No round trips to save in-process: the cached one-row statement, once per outing,
        // beats preparing an `IN (...)` of a new length for every batch.
        DbConn::Sqlite(_) => {
            let mut found = Vec::with_capacity(ids.len());
            for id in ids {
                let id: OutingId = parse_id(id, "outing")?;
                found.extend(find_for_update_with_policy(conn, id)?);
            }
            Ok(found)
        }
    }
}

/// What a plain check-in changes on its outing (see [`CheckinPlan::is_plain`]); a batch of
/// them is written by [`update_after_checkins`], which sets these columns and no others.
///
/// [`CheckinPlan::is_plain`]: crate::service::outings::CheckinPlan::is_plain
pub fn only_checkin_columns_differ(before: &OutingRow, after: &OutingRow) -> bool {
    // Destructured without `..`: a column added later does not compile until it is sorted
    // into "check-in column" (`_`, and then written by [`update_from`] and the PostgreSQL
    // batch) or "compared"; otherwise a change to it would be silently left unwritten.
    let OutingRow {
        id,
        canvasser_id,
        org_id,
        status: _,
        started_at,
        ended_at,
        checkin_interval_s,
        next_checkin_due_at: _,
        planned_end_at,
        area,
        solo,
        note,
        last_checkin_id: _,
        last_received_at: _,
        inside_area: _,
        low_battery_notified: _,
        outside_area_notified: _,
        reminder_sent_for: _,
        open_alert_id,
        next_action_at: _,
        claimed_by,
        claimed_until,
        created_at,
        updated_at: _,
        last_checkin_recorded_at: _,
        last_checkin_received_at: _,
        check_on_me_due_at,
        check_on_me_note,
        welfare_due_at,
        welfare_note,
        welfare_token_hash,
    } = before;
    *id == after.id
        && *canvasser_id == after.canvasser_id
        && *org_id == after.org_id
        && *started_at == after.started_at
        && *ended_at == after.ended_at
        && *checkin_interval_s == after.checkin_interval_s
        && *planned_end_at == after.planned_end_at
        && *area == after.area
        && *solo == after.solo
        && *check_on_me_due_at == after.check_on_me_due_at
        && *check_on_me_note == after.check_on_me_note
        && *welfare_due_at == after.welfare_due_at
        && *welfare_note == after.welfare_note
        && *welfare_token_hash == after.welfare_token_hash
        && *note == after.note
        && *open_alert_id == after.open_alert_id
        && *claimed_by == after.claimed_by
        && *claimed_until == after.claimed_until
        && *created_at == after.created_at
}

/// Whether `after` differs from `before` only in the columns a scheduler step changes (status,
/// the reminder and alert it recorded, its next action, its update time), so that
/// [`update_after_steps`] may write just those.
pub fn only_step_columns_differ(before: &OutingRow, after: &OutingRow) -> bool {
    // Destructured without `..`: a column added later does not compile until it is sorted
    // into "step column" (`_`) or "compared".
    let OutingRow {
        id,
        canvasser_id,
        org_id,
        status: _,
        started_at,
        ended_at,
        checkin_interval_s,
        next_checkin_due_at,
        planned_end_at,
        area,
        solo,
        note,
        last_checkin_id,
        last_received_at,
        inside_area,
        low_battery_notified,
        outside_area_notified,
        reminder_sent_for: _,
        open_alert_id: _,
        next_action_at: _,
        claimed_by,
        claimed_until,
        created_at,
        updated_at: _,
        last_checkin_recorded_at,
        last_checkin_received_at,
        check_on_me_due_at,
        check_on_me_note,
        welfare_due_at,
        welfare_note,
        welfare_token_hash,
    } = before;
    *check_on_me_due_at == after.check_on_me_due_at
        && *check_on_me_note == after.check_on_me_note
        && *welfare_due_at == after.welfare_due_at
        && *welfare_note == after.welfare_note
        && *welfare_token_hash == after.welfare_token_hash
        && *id == after.id
        && *canvasser_id == after.canvasser_id
        && *org_id == after.org_id
        && *started_at == after.started_at
        && *ended_at == after.ended_at
        && *checkin_interval_s == after.checkin_interval_s
        && *next_checkin_due_at == after.next_checkin_due_at
        && *planned_end_at == after.planned_end_at
        && *area == after.area
        && *solo == after.solo
        && *note == after.note
        && *last_checkin_id == after.last_checkin_id
        && *last_received_at == after.last_received_at
        && *inside_area == after.inside_area
        && *low_battery_notified == after.low_battery_notified
        && *outside_area_notified == after.outside_area_notified
        && *claimed_by == after.claimed_by
        && *claimed_until == after.claimed_until
        && *created_at == after.created_at
        && *last_checkin_recorded_at == after.last_checkin_recorded_at
        && *last_checkin_received_at == after.last_checkin_received_at
}

/// Writes the outings of a scheduler batch, each of which differs from what was read only in
/// the step columns ([`only_step_columns_differ`]): on PostgreSQL one statement for all of
/// them; on SQLite one cached statement per outing.
pub fn update_after_steps(conn: &mut DbConn, rows: &[OutingRow]) -> Result<(), DbError> {
    match conn {
        DbConn::Pg(pg) if rows.len() > 1 => {
            PgStepUpdates::new(rows).execute(pg)?;
        }
        _ => {
            for row in rows {
                update(conn, row)?;
            }
        }
    }
    Ok(())
}

/// PostgreSQL: the columns a scheduler step changes, for many outings in one prepared
/// statement (one array per column).
struct PgStepUpdates<'a> {
    ids: Vec<OutingId>,
    statuses: Vec<&'a str>,
    reminder: Vec<Option<i64>>,
    open_alert: Vec<Option<AlertId>>,
    next_action: Vec<Option<i64>>,
    updated: Vec<i64>,
}

impl<'a> PgStepUpdates<'a> {
    fn new(rows: &'a [OutingRow]) -> Self {
        PgStepUpdates {
            ids: rows.iter().map(|r| r.id).collect(),
            statuses: rows.iter().map(|r| r.status.as_str()).collect(),
            reminder: rows.iter().map(|r| r.reminder_sent_for).collect(),
            open_alert: rows.iter().map(|r| r.open_alert_id).collect(),
            next_action: rows.iter().map(|r| r.next_action_at).collect(),
            updated: rows.iter().map(|r| r.updated_at).collect(),
        }
    }
}

impl diesel::query_builder::QueryId for PgStepUpdates<'_> {
    type QueryId = PgStepUpdates<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for PgStepUpdates<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> QueryResult<()> {
        use diesel::sql_types::{Array, BigInt, Nullable, Text};
        out.push_sql(
            "UPDATE outings SET status = v.status, reminder_sent_for = v.reminder, \
             open_alert_id = v.open_alert, next_action_at = v.next_action, \
             updated_at = v.updated FROM unnest(",
        );
        out.push_bind_param::<Array<Text>, _>(&self.ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.statuses)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<BigInt>>, _>(&self.reminder)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.open_alert)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<BigInt>>, _>(&self.next_action)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<BigInt>, _>(&self.updated)?;
        out.push_sql(
            ") AS v(id, status, reminder, open_alert, next_action, updated) \
             WHERE outings.id = v.id",
        );
        Ok(())
    }
}

impl<Conn> RunQueryDsl<Conn> for PgStepUpdates<'_> {}

/// Writes the outings of a batch of plain check-ins: on PostgreSQL one statement for all of
/// them (arrays, `unnest`); on SQLite one cached statement per outing (no round trips there).
pub fn update_after_checkins(conn: &mut DbConn, rows: &[OutingRow]) -> Result<(), DbError> {
    match conn {
        DbConn::Pg(pg) if rows.len() > 1 => {
            PgCheckinUpdates::new(rows).execute(pg)?;
        }
        _ => {
            for row in rows {
                update(conn, row)?;
            }
        }
    }
    Ok(())
}

/// PostgreSQL: the columns a plain check-in changes, for many outings in one prepared
/// statement (one array per column).
struct PgCheckinUpdates<'a> {
    ids: Vec<OutingId>,
    statuses: Vec<&'a str>,
    due: Vec<Option<i64>>,
    last_ids: Vec<Option<&'a str>>,
    received: Vec<i64>,
    inside: Vec<Option<bool>>,
    low_battery: Vec<bool>,
    outside: Vec<bool>,
    reminder: Vec<Option<i64>>,
    next_action: Vec<Option<i64>>,
    updated: Vec<i64>,
    last_recorded: Vec<Option<i64>>,
    last_received: Vec<Option<i64>>,
}

impl<'a> PgCheckinUpdates<'a> {
    fn new(rows: &'a [OutingRow]) -> Self {
        PgCheckinUpdates {
            ids: rows.iter().map(|r| r.id).collect(),
            statuses: rows.iter().map(|r| r.status.as_str()).collect(),
            due: rows.iter().map(|r| r.next_checkin_due_at).collect(),
            last_ids: rows.iter().map(|r| r.last_checkin_id.as_deref()).collect(),
            received: rows.iter().map(|r| r.last_received_at).collect(),
            inside: rows.iter().map(|r| r.inside_area).collect(),
            low_battery: rows.iter().map(|r| r.low_battery_notified).collect(),
            outside: rows.iter().map(|r| r.outside_area_notified).collect(),
            reminder: rows.iter().map(|r| r.reminder_sent_for).collect(),
            next_action: rows.iter().map(|r| r.next_action_at).collect(),
            updated: rows.iter().map(|r| r.updated_at).collect(),
            last_recorded: rows.iter().map(|r| r.last_checkin_recorded_at).collect(),
            last_received: rows.iter().map(|r| r.last_checkin_received_at).collect(),
        }
    }
}

impl diesel::query_builder::QueryId for PgCheckinUpdates<'_> {
    type QueryId = PgCheckinUpdates<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for PgCheckinUpdates<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> QueryResult<()> {
        use diesel::sql_types::{Array, BigInt, Bool, Nullable, Text};
        out.push_sql(
            "UPDATE outings SET status = v.status, next_checkin_due_at = v.due, \
             last_checkin_id = v.last_id, last_received_at = v.received, \
             inside_area = v.inside, low_battery_notified = v.low_battery, \
             outside_area_notified = v.outside, reminder_sent_for = v.reminder, \
             next_action_at = v.next_action, updated_at = v.updated, \
             last_checkin_recorded_at = v.last_recorded, \
             last_checkin_received_at = v.last_received FROM unnest(",
        );
        out.push_bind_param::<Array<Text>, _>(&self.ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.statuses)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<BigInt>>, _>(&self.due)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.last_ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<BigInt>, _>(&self.received)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Bool>>, _>(&self.inside)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Bool>, _>(&self.low_battery)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Bool>, _>(&self.outside)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<BigInt>>, _>(&self.reminder)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<BigInt>>, _>(&self.next_action)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<BigInt>, _>(&self.updated)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<BigInt>>, _>(&self.last_recorded)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<BigInt>>, _>(&self.last_received)?;
        out.push_sql(
            ") AS v(id, status, due, last_id, received, inside, low_battery, outside, reminder, \
             next_action, updated, last_recorded, last_received) WHERE outings.id = v.id",
        );
        Ok(())
    }
}

impl<Conn> RunQueryDsl<Conn> for PgCheckinUpdates<'_> {}

/// The columns a check-in moves on its outing, and no others. SQLite rewrites the entries of
/// every index that has a column in an UPDATE's SET list, changed or not: the full row
/// ([`update`]) touched all four indexes of `outings` for each check-in (a random page each,
/// 4 KB written to the WAL for every one), where these columns touch only
/// `outings_next_action`.
#[derive(AsChangeset)]
#[diesel(table_name = outings, treat_none_as_null = true)]
struct CheckinColumns<'a> {
    next_checkin_due_at: Option<i64>,
    last_checkin_id: Option<&'a str>,
    last_received_at: i64,
    inside_area: Option<bool>,
    low_battery_notified: bool,
    outside_area_notified: bool,
    reminder_sent_for: Option<i64>,
    next_action_at: Option<i64>,
    updated_at: i64,
    last_checkin_recorded_at: Option<i64>,
    last_checkin_received_at: Option<i64>,
}

/// The statement-cache marker of [`CheckinColumns`] updates.
struct CheckinColumnsUpdate;

/// Writes `after`, which was read as `before`: just the check-in columns when nothing else
/// changed ([`CheckinColumns`]), else every column ([`update`]).
pub fn update_from(
    conn: &mut DbConn,
    before: &OutingRow,
    after: &OutingRow,
) -> Result<(), DbError> {
    if before.status != after.status || !only_checkin_columns_differ(before, after) {
        return update(conn, after);
    }
    let changes = CheckinColumns {
        next_checkin_due_at: after.next_checkin_due_at,
        last_checkin_id: after.last_checkin_id.as_deref(),
        last_received_at: after.last_received_at,
        inside_area: after.inside_area,
        low_battery_notified: after.low_battery_notified,
        outside_area_notified: after.outside_area_notified,
        reminder_sent_for: after.reminder_sent_for,
        next_action_at: after.next_action_at,
        updated_at: after.updated_at,
        last_checkin_recorded_at: after.last_checkin_recorded_at,
        last_checkin_received_at: after.last_checkin_received_at,
    };
    let id = after.id.to_string();
    let update = UpdateRow::<CheckinColumnsUpdate, _>::new("outings", changes.as_changeset(), &id);
    on_backend!(conn, c => update.execute(c))?;
    Ok(())
}

pub fn update(conn: &mut DbConn, row: &OutingRow) -> Result<(), DbError> {
    let id = row.id.to_string();
    let update = UpdateRow::<OutingRow, _>::new("outings", row.as_changeset(), &id);
    on_backend!(conn, c => update.execute(c))?;
    Ok(())
}

/// Companions with their display names, in a stable order.
pub fn companions(conn: &mut DbConn, outing: OutingId) -> Result<Vec<(UserId, String)>, DbError> {
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

pub fn display_name(conn: &mut DbConn, user: &str) -> Result<String, DbError> {
    let name: Option<String> = on_backend!(conn, c => users::table
        .find(user)
        .select(users::display_name)
        .get_result(c)
        .optional())?;
    Ok(name.unwrap_or_default())
}

pub fn insert_checkin(conn: &mut DbConn, row: &CheckinRow) -> Result<(), DbError> {
    on_backend!(conn, c => diesel::insert_into(checkins::table).values(row).execute(c))?;
    Ok(())
}

/// Several check-ins in one statement.
pub fn insert_checkins(conn: &mut DbConn, rows: &[CheckinRow]) -> Result<(), DbError> {
    match rows {
        [] => {}
        // One row: the cached single-row statement.
        [row] => insert_checkin(conn, row)?,
        rows => match conn {
            DbConn::Pg(pg) => {
                diesel::insert_into(checkins::table)
                    .values(rows)
                    .execute(pg)?;
            }
            // In-process: the cached one-row statement per row (see find_many_...).
            DbConn::Sqlite(_) => {
                for row in rows {
                    insert_checkin(conn, row)?;
                }
            }
        },
    }
    Ok(())
}

pub fn find_checkin(conn: &mut DbConn, id: &str) -> Result<Option<CheckinRow>, DbError> {
    Ok(on_backend!(conn, c => checkins::table
        .find(id)
        .select(CheckinRow::as_select())
        .get_result(c)
        .optional())?)
}

/// The check-ins of `ids` that still exist (location retention purges them), in no order.
pub fn find_checkins(conn: &mut DbConn, ids: &[&str]) -> Result<Vec<CheckinRow>, DbError> {
    Ok(checkins::table
        .filter(checkins::id.eq_any(ids))
        .select(CheckinRow::as_select())
        .load(conn)?)
}

/// Client ids of this outing already stored, among `candidates` (offline-queue de-duplication).
pub fn existing_client_ids(
    conn: &mut DbConn,
    outing: &str,
    candidates: &[String],
) -> Result<Vec<String>, DbError> {
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
) -> Result<Vec<CheckinRow>, DbError> {
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
    status: Option<OutingStatus>,
    after: Option<(i64, String)>,
    limit: i64,
) -> Result<Vec<OutingRow>, DbError> {
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
        query = query.filter(outings::status.eq(status));
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
) -> Result<(), DbError> {
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

pub fn events(conn: &mut DbConn, outing: &str) -> Result<Vec<(String, i64)>, DbError> {
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
) -> Result<Option<StoredResponse>, DbError> {
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
) -> Result<(), DbError> {
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

/// Stored responses for several `(user, Idempotency-Key)` pairs: one statement on PostgreSQL
/// (the pairs as arrays, each an index probe), the cached one-pair statement on SQLite.
pub fn idempotent_responses(
    conn: &mut DbConn,
    pairs: &[(String, String)],
) -> Result<std::collections::HashMap<(String, String), StoredResponse>, DbError> {
    let mut found = std::collections::HashMap::new();
    match conn {
        DbConn::Pg(pg) => {
            use diesel::sql_types::{Array, Text};
            let users: Vec<&str> = pairs.iter().map(|(u, _)| u.as_str()).collect();
            let keys: Vec<&str> = pairs.iter().map(|(_, k)| k.as_str()).collect();
            let rows: Vec<StoredResponseRow> = diesel::sql_query(
                "SELECT k.user_id, k.idem_key, k.request_hash, k.response_status, k.response_body \
                 FROM unnest($1, $2) AS p(user_id, idem_key) \
                 JOIN idempotency_keys k ON k.user_id = p.user_id AND k.idem_key = p.idem_key",
            )
            .bind::<Array<Text>, _>(&users)
            .bind::<Array<Text>, _>(&keys)
            .load(pg)?;
            for row in rows {
                found.insert(
                    (row.user_id, row.idem_key),
                    StoredResponse {
                        request_hash: row.request_hash,
                        status: u16::try_from(row.response_status).unwrap_or(200),
                        body: row.response_body,
                    },
                );
            }
        }
        DbConn::Sqlite(_) => {
            for (user, key) in pairs {
                let user: UserId = parse_id(user, "user")?;
                if let Some(stored) = idempotent_response(conn, user, key)? {
                    found.insert((user.to_string(), key.clone()), stored);
                }
            }
        }
    }
    Ok(found)
}

#[derive(QueryableByName)]
struct StoredResponseRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    user_id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    idem_key: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    request_hash: String,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    response_status: i32,
    #[diesel(sql_type = diesel::sql_types::Text)]
    response_body: String,
}

/// A response to keep for an `Idempotency-Key` (see [`store_idempotent_responses`]).
pub struct NewStoredResponse<'a> {
    pub user: String,
    pub key: &'a str,
    pub request_hash: &'a str,
    pub status: u16,
    pub body: &'a str,
}

/// [`store_idempotent_response`] for several requests in one statement.
pub fn store_idempotent_responses(
    conn: &mut DbConn,
    responses: &[NewStoredResponse<'_>],
    now_ms: i64,
) -> Result<(), DbError> {
    if responses.is_empty() {
        return Ok(());
    }
    if let DbConn::Sqlite(_) = conn {
        // In-process: the cached one-row statement per response.
        for r in responses {
            let user: UserId = parse_id(&r.user, "user")?;
            store_idempotent_response(conn, user, r.key, r.request_hash, r.status, r.body, now_ms)?;
        }
        return Ok(());
    }
    let rows: Vec<_> = responses
        .iter()
        .map(|r| {
            (
                idempotency_keys::user_id.eq(r.user.as_str()),
                idempotency_keys::idem_key.eq(r.key),
                idempotency_keys::request_hash.eq(r.request_hash),
                idempotency_keys::response_status.eq(i32::from(r.status)),
                idempotency_keys::response_body.eq(r.body),
                idempotency_keys::created_at.eq(now_ms),
            )
        })
        .collect();
    on_backend!(conn, c => diesel::insert_into(idempotency_keys::table).values(&rows).execute(c))?;
    Ok(())
}

/// Outings of these organisations that need attention: overdue, or with an unresolved alert.
pub fn needing_attention(conn: &mut DbConn, orgs: &[OrgId]) -> Result<Vec<OutingRow>, DbError> {
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
pub fn not_ended(conn: &mut DbConn, orgs: &[OrgId]) -> Result<Vec<OutingRow>, DbError> {
    let orgs: Vec<String> = orgs.iter().map(ToString::to_string).collect();
    Ok(outings::table
        .filter(outings::org_id.eq_any(orgs))
        .filter(outings::status.ne(OutingStatus::Ended))
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

    fn outing() -> OutingRow {
        OutingRow {
            id: OutingId::new(),
            canvasser_id: UserId::new(),
            org_id: OrgId::new(),
            status: OutingStatus::Active,
            started_at: 1,
            ended_at: None,
            checkin_interval_s: 600,
            next_checkin_due_at: Some(601_000),
            planned_end_at: None,
            area: None,
            solo: true,
            note: None,
            last_checkin_id: Some("k".into()),
            last_received_at: 1,
            inside_area: None,
            low_battery_notified: false,
            outside_area_notified: false,
            reminder_sent_for: None,
            open_alert_id: None,
            next_action_at: Some(541_000),
            claimed_by: None,
            claimed_until: None,
            created_at: 1,
            updated_at: 1,
            last_checkin_recorded_at: Some(1),
            last_checkin_received_at: Some(1),
            check_on_me_due_at: None,
            check_on_me_note: None,
            welfare_due_at: None,
            welfare_note: None,
            welfare_token_hash: None,
        }
    }

    /// A check-in's outing write names only the columns a check-in moves (so SQLite leaves the
    /// other indexes of `outings` alone), and anything else changed is written whole.
    #[test]
    fn a_checkin_writes_its_columns_alone_and_anything_more_whole() {
        let (mut conn, cached) = crate::store::sqlite_recording_prepared();
        let before = outing();
        let id = before.id;
        let read = |conn: &mut DbConn| -> OutingRow {
            on_backend!(conn, c => outings::table
                .find(id)
                .select(OutingRow::as_select())
                .get_result(c))
            .unwrap()
        };
        // The outing alone, without the canvasser and organisation it names.
        diesel::connection::SimpleConnection::batch_execute(&mut conn, "PRAGMA foreign_keys = OFF")
            .unwrap();
        on_backend!(&mut conn, c => diesel::insert_into(outings::table).values(&before).execute(c))
            .unwrap();

        let mut checked_in = before.clone();
        checked_in.next_checkin_due_at = Some(1_200_000);
        checked_in.next_action_at = Some(1_140_000);
        checked_in.last_checkin_id = Some("k2".into());
        checked_in.last_checkin_recorded_at = Some(600_000);
        checked_in.last_checkin_received_at = Some(600_001);
        checked_in.last_received_at = 600_001;
        checked_in.inside_area = Some(true);
        checked_in.low_battery_notified = true;
        checked_in.updated_at = 600_001;
        update_from(&mut conn, &before, &checked_in).unwrap();
        assert_eq!(format!("{:?}", read(&mut conn)), format!("{checked_in:?}"));
        {
            let cached = cached.lock().unwrap();
            let update = cached
                .iter()
                .find(|sql| sql.starts_with("UPDATE"))
                .expect("the update is a cached statement");
            for untouched in ["canvasser_id", "org_id", "status", "started_at"] {
                assert!(!update.contains(untouched), "{update}");
            }
            assert!(update.contains("next_action_at"), "{update}");
        }

        // A status or any other column changed too: the whole row is written.
        let mut overdue = checked_in.clone();
        overdue.status = OutingStatus::Overdue;
        overdue.next_action_at = Some(2_000_000);
        update_from(&mut conn, &checked_in, &overdue).unwrap();
        assert_eq!(format!("{:?}", read(&mut conn)), format!("{overdue:?}"));
        let mut noted = overdue.clone();
        noted.note = Some("north side".into());
        noted.next_action_at = Some(2_100_000);
        update_from(&mut conn, &overdue, &noted).unwrap();
        assert_eq!(format!("{:?}", read(&mut conn)), format!("{noted:?}"));
    }

    /// A check-in's narrow write is allowed only when every other column is as read.
    #[test]
    fn only_the_checkin_columns_may_be_written_alone() {
        let before = outing();
        let mut checked_in = before.clone();
        checked_in.next_checkin_due_at = Some(1_200_000);
        checked_in.next_action_at = Some(1_140_000);
        checked_in.last_checkin_id = Some("k2".into());
        checked_in.updated_at = 2;
        assert!(only_checkin_columns_differ(&before, &checked_in));
        let changes: [fn(&mut OutingRow); 8] = [
            |o| o.ended_at = Some(2),
            |o| o.area = Some("{}".into()),
            |o| o.note = Some("n".into()),
            |o| o.open_alert_id = Some(AlertId::new()),
            |o| o.claimed_by = Some("w".into()),
            |o| o.claimed_until = Some(9),
            |o| o.planned_end_at = Some(9),
            |o| o.checkin_interval_s = 60,
        ];
        for change in changes {
            let mut other = checked_in.clone();
            change(&mut other);
            assert!(!only_checkin_columns_differ(&before, &other), "{other:?}");
        }
    }

    /// A scheduler batch writes only the step columns of an outing whose other columns are as
    /// read; anything else changed must be written whole, or it would be lost.
    #[test]
    fn only_the_step_columns_may_be_written_alone() {
        let before = outing();
        let mut step = before.clone();
        step.status = OutingStatus::Overdue;
        step.reminder_sent_for = Some(601_000);
        step.open_alert_id = Some(AlertId::new());
        step.next_action_at = Some(3_000_000);
        step.updated_at = 2;
        assert!(only_step_columns_differ(&before, &step));
        assert!(only_step_columns_differ(&before, &before));
        let changes: [fn(&mut OutingRow); 6] = [
            |o| o.ended_at = Some(2),
            |o| o.next_checkin_due_at = None,
            |o| o.last_checkin_id = None,
            |o| o.area = Some("{}".into()),
            |o| o.claimed_by = Some("w".into()),
            |o| o.low_battery_notified = true,
        ];
        for change in changes {
            let mut other = step.clone();
            change(&mut other);
            assert!(!only_step_columns_differ(&before, &other), "{other:?}");
        }
    }
}
