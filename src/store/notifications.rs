//! The outbox: one row per (step, recipient, channel), written in the same transaction as the
//! state change that causes it. The unique `dedupe_key` makes every step exactly-once.

use crate::domain::account::Role;
use crate::domain::delivery::{Channel, DeliveryStatus, MessageType};
use diesel::prelude::*;

use super::accounts::parse_id;
use super::native::on_backend;
use super::schema::{notifications, police_assignments, users};
use super::DbConn;
use super::DbError;
use crate::domain::ids::{AlertId, OrgId, OutingId, UserId};

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Insertable)]
#[diesel(table_name = notifications, treat_none_as_default_value = false)]
pub struct NotificationRow {
    pub id: String,
    pub dedupe_key: String,
    pub alert_id: Option<AlertId>,
    pub outing_id: Option<OutingId>,
    /// Null for an organisation's webhook (not a person).
    pub recipient_id: Option<UserId>,
    pub channel: Channel,
    pub step: String,
    pub message_type: MessageType,
    pub level: i32,
    pub payload: String,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub due_at: Option<i64>,
    pub created_at: i64,
    pub next_attempt_at: i64,
    pub expires_at: i64,
    pub sent_at: Option<i64>,
    pub last_error: Option<String>,
    pub claimed_by: Option<String>,
    pub claimed_until: Option<i64>,
    /// The SMS or voice provider's id of the message or call (its status callbacks name it).
    pub provider_sid: Option<String>,
}

/// Inserts the row unless a row with its `dedupe_key` exists; true when inserted. Whatever
/// races between replicas or retries after a crash, a step is recorded once.
pub fn insert_if_new(conn: &mut DbConn, row: &NotificationRow) -> Result<bool, DbError> {
    let inserted = match conn {
        DbConn::Pg(pg) => diesel::insert_into(notifications::table)
            .values(row)
            .on_conflict_do_nothing()
            .execute(pg)?,
        DbConn::Sqlite(sqlite) => diesel::insert_or_ignore_into(notifications::table)
            .values(row)
            .execute(sqlite)?,
    };
    Ok(inserted == 1)
}

/// [`insert_if_new`] for many rows: on PostgreSQL one statement per thousand rows (a row
/// whose `dedupe_key` exists, or repeats one earlier in the list, is skipped); on SQLite the
/// cached one-row statement each (in-process, no round trips to save). Returns how many
/// were new.
pub fn insert_all_if_new(conn: &mut DbConn, rows: &[NotificationRow]) -> Result<usize, DbError> {
    let mut inserted = 0;
    match conn {
        DbConn::Pg(pg) => {
            // 21 bound values a row: well under PostgreSQL's 65,535 per statement.
            for chunk in rows.chunks(1000) {
                inserted += diesel::insert_into(notifications::table)
                    .values(chunk)
                    .on_conflict_do_nothing()
                    .execute(pg)?;
            }
        }
        DbConn::Sqlite(_) => {
            for row in rows {
                inserted += usize::from(insert_if_new(conn, row)?);
            }
        }
    }
    Ok(inserted)
}

fn ids(rows: Vec<String>) -> Result<Vec<UserId>, DbError> {
    rows.iter().map(|id| parse_id(id, "user")).collect()
}

/// Active organisers of an organisation (users_org_role).
pub fn organisers_of(conn: &mut DbConn, org: OrgId) -> Result<Vec<UserId>, DbError> {
    let org = org.to_string();
    ids(on_backend!(conn, c => users::table
        .filter(users::org_id.eq(&org))
        .filter(users::role.eq(Role::Organiser))
        .filter(users::disabled_at.is_null())
        .select(users::id)
        .load(c))?)
}

/// Police contacts assigned to an organisation.
pub fn police_of(conn: &mut DbConn, org: OrgId) -> Result<Vec<UserId>, DbError> {
    let org = org.to_string();
    ids(on_backend!(conn, c => police_assignments::table
        .inner_join(users::table.on(users::id.eq(police_assignments::user_id)))
        .filter(police_assignments::org_id.eq(&org))
        .filter(users::disabled_at.is_null())
        .select(users::id)
        .load(c))?)
}

/// Everyone an alert has been sent to so far (notifications_alert).
pub fn notified_about(conn: &mut DbConn, alert: &str) -> Result<Vec<UserId>, DbError> {
    ids(notifications::table
        .filter(notifications::alert_id.eq(alert))
        .filter(notifications::recipient_id.is_not_null())
        .select(notifications::recipient_id.assume_not_null())
        .distinct()
        .load(conn)?)
}

/// The outbox rows of one alert or outing (tests and the delivery record).
pub fn for_subject(
    conn: &mut DbConn,
    alert: Option<&str>,
    outing: Option<&str>,
) -> Result<Vec<NotificationRow>, DbError> {
    let mut query = notifications::table
        .select(NotificationRow::as_select())
        .order((notifications::created_at, notifications::id))
        .into_boxed();
    if let Some(alert) = alert {
        query = query.filter(notifications::alert_id.eq(alert.to_owned()));
    }
    if let Some(outing) = outing {
        query = query.filter(notifications::outing_id.eq(outing.to_owned()));
    }
    Ok(query.load(conn)?)
}

/// What composing a message for someone needs: `(user id, display name, email alerts on,
/// personal webhook)`.
pub type Person = (String, String, bool, Option<String>);

/// [`Person`] for each of `ids` that exists, in one statement (a scheduler batch's canvassers).
pub fn people(conn: &mut DbConn, ids: &[String]) -> Result<Vec<Person>, DbError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(users::table
        .filter(users::id.eq_any(ids))
        .select((
            users::id,
            users::display_name,
            users::email_alerts,
            users::webhook_url,
        ))
        .load(conn)?)
}

/// How a recipient wants alerts besides push: `(user id, email alerts on, personal webhook)`.
pub fn channels_of(
    conn: &mut DbConn,
    recipients: &[String],
) -> Result<Vec<(String, bool, Option<String>)>, DbError> {
    if recipients.is_empty() {
        return Ok(Vec::new());
    }
    // One cached lookup per recipient: an `IN (...)` list is never a cached statement, and
    // is mostly of one id (the canvasser's reminder).
    let mut found = Vec::with_capacity(recipients.len());
    for id in recipients {
        let row: Option<(bool, Option<String>)> = on_backend!(conn, c => users::table
            .find(id)
            .select((users::email_alerts, users::webhook_url))
            .get_result(c)
            .optional())?;
        if let Some((email, webhook)) = row {
            found.push((id.clone(), email, webhook));
        }
    }
    Ok(found)
}

/// Who of `recipients` asked for SMS or calls and has a phone number: `(user id, sms, voice)`.
pub fn phone_channels(
    conn: &mut DbConn,
    recipients: &[String],
) -> Result<Vec<(String, bool, bool)>, DbError> {
    if recipients.is_empty() {
        return Ok(Vec::new());
    }
    Ok(users::table
        .filter(users::id.eq_any(recipients))
        .filter(users::phone.is_not_null())
        .filter(users::sms_alerts.or(users::voice_alerts))
        .order(users::id)
        .select((users::id, users::sms_alerts, users::voice_alerts))
        .load(conn)?)
}

/// When the latest SMS about `alert` to `recipient` was recorded.
pub fn last_sms_at(
    conn: &mut DbConn,
    alert: &str,
    recipient: &str,
) -> Result<Option<i64>, DbError> {
    // Served by notifications_alert.
    Ok(notifications::table
        .filter(notifications::alert_id.eq(alert))
        .filter(notifications::recipient_id.eq(recipient))
        .filter(notifications::channel.eq(Channel::Sms))
        .select(diesel::dsl::max(notifications::created_at))
        .get_result::<Option<i64>>(conn)?)
}

/// SMS sent (or handed to the provider) for the organisation's alerts since `since`.
pub fn sms_sent_since(conn: &mut DbConn, org: &str, since: i64) -> Result<i64, DbError> {
    use super::schema::alerts;
    Ok(notifications::table
        .inner_join(alerts::table.on(notifications::alert_id.eq(alerts::id.nullable())))
        .filter(alerts::org_id.eq(org))
        .filter(notifications::channel.eq(Channel::Sms))
        .filter(notifications::sent_at.ge(since))
        .count()
        .get_result(conn)?)
}

/// Records the provider's id of the message or call that row `id` became.
pub fn set_provider_sid(conn: &mut DbConn, id: &str, sid: &str) -> Result<(), DbError> {
    diesel::update(notifications::table.find(id))
        .set(notifications::provider_sid.eq(sid))
        .execute(conn)?;
    Ok(())
}

/// The delivery row the provider's status callback names.
pub fn find_by_provider_sid(
    conn: &mut DbConn,
    sid: &str,
) -> Result<Option<NotificationRow>, DbError> {
    // Served by notifications_provider_sid.
    Ok(notifications::table
        .filter(notifications::provider_sid.eq(sid))
        .select(NotificationRow::as_select())
        .load(conn)?
        .into_iter()
        .next())
}

/// What the provider finally said of a message or call: delivered (`Sent`) or not
/// (`Failed`, with its words).
pub fn set_provider_outcome(
    conn: &mut DbConn,
    id: &str,
    status: DeliveryStatus,
    error: Option<&str>,
) -> Result<(), DbError> {
    diesel::update(notifications::table.find(id))
        .set((
            notifications::status.eq(status),
            notifications::last_error.eq(error),
        ))
        .execute(conn)?;
    Ok(())
}
