//! Alerts and their delivery records.

use crate::domain::account::Role;
use crate::domain::delivery::{Channel, DeliveryStatus};
use crate::domain::escalation::AlertStatus;
use diesel::prelude::*;

use super::native::{on_backend, UpdateRow};
use super::schema::{alerts, notifications, users};
use super::DbConn;
use super::DbError;
use crate::domain::escalation::AlertKind;
use crate::domain::ids::{AlertId, OrgId, OutingId, UserId};

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = alerts, treat_none_as_null = true, treat_none_as_default_value = false)]
pub struct AlertRow {
    pub id: AlertId,
    pub outing_id: OutingId,
    pub org_id: OrgId,
    pub canvasser_id: UserId,
    pub kind: AlertKind,
    pub level: i32,
    pub status: AlertStatus,
    pub policy: String,
    pub opened_at: i64,
    pub escalated_at: Option<i64>,
    pub acknowledged_at: Option<i64>,
    pub acknowledged_by: Option<UserId>,
    pub resolved_at: Option<i64>,
    pub resolved_by: Option<UserId>,
    pub resolution: Option<String>,
    pub note: Option<String>,
    pub last_lat: Option<f64>,
    pub last_lon: Option<f64>,
    pub last_accuracy_m: Option<f64>,
    pub last_recorded_at: Option<i64>,
    pub repeats_sent: i32,
    pub ack_timeouts: i32,
    pub last_pushed_at: Option<i64>,
    pub next_action_at: Option<i64>,
    pub claimed_by: Option<String>,
    pub claimed_until: Option<i64>,
    pub updated_at: i64,
    /// Why it opened, beyond its kind: a check-on-me's note, an unanswered welfare check.
    pub reason: Option<String>,
    /// The four digits its SMS asks to be replied with ("Reply OK 4821 to take charge").
    pub ack_code: Option<String>,
}

impl AlertRow {
    /// The alert's level, 1 or 2: a stored value outside that range (never written) reads as
    /// the nearer of the two, and an unreadable one as 2, the safer.
    pub fn level(&self) -> u8 {
        u8::try_from(self.level).map_or(2, |level| level.clamp(1, 2))
    }
}

pub fn insert(conn: &mut DbConn, row: &AlertRow) -> Result<(), DbError> {
    on_backend!(conn, c => diesel::insert_into(alerts::table).values(row).execute(c))?;
    Ok(())
}

/// Inserts many alerts: on PostgreSQL one statement per thousand (a scheduler batch's new
/// alerts, one round trip); on SQLite one cached statement each (no round trips there).
pub fn insert_all(conn: &mut DbConn, rows: &[AlertRow]) -> Result<(), DbError> {
    match conn {
        DbConn::Pg(pg) if rows.len() > 1 => {
            // 29 bound values a row: well under PostgreSQL's 65,535 per statement.
            for chunk in rows.chunks(1000) {
                diesel::insert_into(alerts::table)
                    .values(chunk)
                    .execute(pg)?;
            }
        }
        _ => {
            for row in rows {
                insert(conn, row)?;
            }
        }
    }
    Ok(())
}

pub fn update(conn: &mut DbConn, row: &AlertRow) -> Result<(), DbError> {
    let id = row.id.to_string();
    let update = UpdateRow::<AlertRow, _>::new("alerts", row.as_changeset(), &id);
    on_backend!(conn, c => update.execute(c))?;
    Ok(())
}

pub fn find(conn: &mut DbConn, id: AlertId) -> Result<Option<AlertRow>, DbError> {
    Ok(on_backend!(conn, c => alerts::table
        .find(id)
        .select(AlertRow::as_select())
        .get_result(c)
        .optional())?)
}

/// Loads an alert for change, locked on PostgreSQL until the transaction ends.
pub fn find_for_update(conn: &mut DbConn, id: AlertId) -> Result<Option<AlertRow>, DbError> {
    match conn {
        DbConn::Pg(pg) => Ok(alerts::table
            .find(id)
            .select(AlertRow::as_select())
            .for_update()
            .get_result(pg)
            .optional()?),
        DbConn::Sqlite(_) => find(conn, id),
    }
}

/// Which alerts a list may hold, before the per-row visibility rule
/// ([`crate::domain::visibility::alert_visible`]) has the last word.
#[derive(Clone, Copy)]
pub struct AlertFilter<'a> {
    pub orgs: Option<&'a [OrgId]>,
    pub canvasser: Option<UserId>,
    pub status: Option<AlertStatus>,
    /// The viewer: alerts about them of kinds hidden from their owner are left out here, so
    /// that neither a page nor its cursor is ever built from one.
    pub hidden_from: UserId,
    /// Police: only alerts at level 2 or of kind panic/duress.
    pub escalated_only: bool,
}

/// Alerts matching `filter`, newest first, after the cursor.
pub fn list(
    conn: &mut DbConn,
    filter: &AlertFilter<'_>,
    after: Option<(i64, String)>,
    limit: i64,
) -> Result<Vec<AlertRow>, DbError> {
    let AlertFilter {
        orgs,
        canvasser,
        status,
        hidden_from,
        escalated_only,
    } = *filter;
    let hidden_kinds = AlertKind::HIDDEN_FROM_OWNER;
    let mut query = alerts::table
        .select(AlertRow::as_select())
        .filter(diesel::dsl::not(
            alerts::canvasser_id
                .eq(hidden_from.to_string())
                .and(alerts::kind.eq_any(hidden_kinds)),
        ))
        .order((alerts::opened_at.desc(), alerts::id.desc()))
        .limit(limit)
        .into_boxed();
    if escalated_only {
        query = query.filter(
            alerts::level
                .ge(2)
                .or(alerts::kind.eq_any([AlertKind::Panic, AlertKind::Duress])),
        );
    }
    if let Some(orgs) = orgs {
        let orgs: Vec<String> = orgs.iter().map(ToString::to_string).collect();
        // Served by alerts_org_status.
        query = query.filter(alerts::org_id.eq_any(orgs));
    }
    if let Some(canvasser) = canvasser {
        query = query.filter(alerts::canvasser_id.eq(canvasser.to_string()));
    }
    if let Some(status) = status {
        query = query.filter(alerts::status.eq(status));
    }
    if let Some((at, id)) = after {
        query = query.filter(
            alerts::opened_at
                .lt(at)
                .or(alerts::opened_at.eq(at).and(alerts::id.lt(id))),
        );
    }
    Ok(query.load(conn)?)
}

/// One row of an alert's delivery record.
pub struct DeliveryRecord {
    /// `None` for an organisation's webhook.
    pub recipient_id: Option<String>,
    pub display_name: Option<String>,
    pub role: Option<Role>,
    pub level: i32,
    pub channel: Channel,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub sent_at: Option<i64>,
    pub last_error: Option<String>,
}

pub fn deliveries(conn: &mut DbConn, alert: &str) -> Result<Vec<DeliveryRecord>, DbError> {
    // Served by notifications_alert.
    let rows = notifications::table
        .left_join(users::table.on(notifications::recipient_id.eq(users::id.nullable())))
        .filter(notifications::alert_id.eq(alert))
        .order((notifications::created_at, notifications::id))
        .select((
            notifications::recipient_id,
            users::display_name.nullable(),
            users::role.nullable(),
            notifications::level,
            notifications::channel,
            notifications::status,
            notifications::attempts,
            notifications::sent_at,
            notifications::last_error,
        ))
        .load::<(
            Option<String>,
            Option<String>,
            Option<Role>,
            i32,
            Channel,
            DeliveryStatus,
            i32,
            Option<i64>,
            Option<String>,
        )>(conn)?;
    Ok(rows
        .into_iter()
        .map(
            |(
                recipient_id,
                display_name,
                role,
                level,
                channel,
                status,
                attempts,
                sent_at,
                last_error,
            )| {
                DeliveryRecord {
                    recipient_id,
                    display_name,
                    role,
                    level,
                    channel,
                    status,
                    attempts,
                    sent_at,
                    last_error,
                }
            },
        )
        .collect())
}

/// The unresolved alerts `user` was told of whose reply code is `code` (an SMS reply names
/// its alert by those four digits).
pub fn told_with_code(
    conn: &mut DbConn,
    user: UserId,
    code: &str,
) -> Result<Vec<AlertRow>, DbError> {
    let told = notifications::table
        .filter(notifications::recipient_id.eq(Some(user.to_string())))
        .select(notifications::alert_id);
    Ok(alerts::table
        .filter(alerts::ack_code.eq(code))
        .filter(alerts::status.ne(AlertStatus::Resolved))
        .filter(alerts::id.nullable().eq_any(told))
        .order(alerts::opened_at.desc())
        .select(AlertRow::as_select())
        .load(conn)?)
}
