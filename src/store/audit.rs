//! The audit log: who read whose location, and when.

use diesel::prelude::*;

use super::schema::{alerts, audit_log};
use super::DbError;
use super::{new_id, DbConn};
use crate::domain::escalation::AlertKind;

pub struct LocationRead<'a> {
    pub actor_id: String,
    pub actor_role: &'static str,
    /// What was read: `outing`, `outing.checkins`, `alert`, `watch.overdue`, `watch.stream`...
    pub action: &'a str,
    pub subject_id: String,
    pub org_id: String,
    pub outing_id: Option<String>,
    pub alert_id: Option<String>,
}

pub fn record(conn: &mut DbConn, read: &LocationRead<'_>, at: i64) -> Result<(), DbError> {
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::id.eq(new_id()),
            audit_log::at.eq(at),
            audit_log::actor_id.eq(&read.actor_id),
            audit_log::actor_role.eq(read.actor_role),
            audit_log::action.eq(read.action),
            audit_log::subject_id.eq(Some(&read.subject_id)),
            audit_log::org_id.eq(Some(&read.org_id)),
            audit_log::outing_id.eq(read.outing_id.as_ref()),
            audit_log::alert_id.eq(read.alert_id.as_ref()),
        ))
        .execute(conn)?;
    Ok(())
}

/// An action on an account or an organisation's settings (`policy`, `account.disable`, ...),
/// with what changed.
pub struct Action<'a> {
    pub actor_id: String,
    pub actor_role: &'static str,
    pub action: &'a str,
    pub subject_id: Option<String>,
    pub org_id: Option<String>,
    pub detail: serde_json::Value,
}

pub fn record_action(conn: &mut DbConn, action: &Action<'_>, at: i64) -> Result<(), DbError> {
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::id.eq(new_id()),
            audit_log::at.eq(at),
            audit_log::actor_id.eq(&action.actor_id),
            audit_log::actor_role.eq(action.actor_role),
            audit_log::action.eq(action.action),
            audit_log::subject_id.eq(action.subject_id.as_ref()),
            audit_log::org_id.eq(action.org_id.as_ref()),
            audit_log::detail.eq(Some(action.detail.to_string())),
        ))
        .execute(conn)?;
    Ok(())
}

/// An action about one alert (`handoff.create`, `handoff.view`, ...), with what it was. Its
/// row names the alert and the person it is about (`subject_id`), so [`list`] leaves it out of
/// that person's own view when the alert is hidden from them.
pub struct AlertAction<'a> {
    pub actor_id: String,
    pub actor_role: &'static str,
    pub action: &'a str,
    pub subject_id: String,
    pub org_id: String,
    pub outing_id: String,
    pub alert_id: String,
    pub detail: serde_json::Value,
}

pub fn record_alert_action(
    conn: &mut DbConn,
    action: &AlertAction<'_>,
    at: i64,
) -> Result<(), DbError> {
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::id.eq(new_id()),
            audit_log::at.eq(at),
            audit_log::actor_id.eq(&action.actor_id),
            audit_log::actor_role.eq(action.actor_role),
            audit_log::action.eq(action.action),
            audit_log::subject_id.eq(Some(&action.subject_id)),
            audit_log::org_id.eq(Some(&action.org_id)),
            audit_log::outing_id.eq(Some(&action.outing_id)),
            audit_log::alert_id.eq(Some(&action.alert_id)),
            audit_log::detail.eq(Some(action.detail.to_string())),
        ))
        .execute(conn)?;
    Ok(())
}

#[derive(Debug, Clone, Queryable)]
pub struct AuditRow {
    pub id: String,
    pub at: i64,
    pub actor_id: String,
    pub actor_role: String,
    pub action: String,
    pub subject_id: Option<String>,
    pub org_id: Option<String>,
    pub outing_id: Option<String>,
    pub alert_id: Option<String>,
    pub detail: Option<String>,
}

/// Audit rows newest first, optionally of one organisation and/or one subject.
///
/// `viewer`'s own rows about alerts hidden from them (reads of their own duress alert) are
/// left out: the person under duress must not see who is reading the alert about them.
pub fn list(
    conn: &mut DbConn,
    org: Option<&str>,
    subject: Option<&str>,
    viewer: &str,
    after: Option<(i64, String)>,
    limit: i64,
) -> Result<Vec<AuditRow>, DbError> {
    let hidden_kinds = AlertKind::HIDDEN_FROM_OWNER;
    let hidden_alerts = alerts::table
        .select(alerts::id.nullable())
        .filter(alerts::canvasser_id.eq(viewer.to_owned()))
        .filter(alerts::kind.eq_any(hidden_kinds));
    let mut query = audit_log::table
        .select((
            audit_log::id,
            audit_log::at,
            audit_log::actor_id,
            audit_log::actor_role,
            audit_log::action,
            audit_log::subject_id,
            audit_log::org_id,
            audit_log::outing_id,
            audit_log::alert_id,
            audit_log::detail,
        ))
        .filter(diesel::dsl::not(
            audit_log::subject_id
                .is_not_null()
                .and(audit_log::subject_id.eq(viewer.to_owned()))
                .and(audit_log::alert_id.is_not_null())
                .and(audit_log::alert_id.eq_any(hidden_alerts)),
        ))
        .order((audit_log::at.desc(), audit_log::id.desc()))
        .limit(limit)
        .into_boxed();
    // Served by audit_log_org and audit_log_subject.
    if let Some(org) = org {
        query = query.filter(audit_log::org_id.eq(org.to_owned()));
    }
    if let Some(subject) = subject {
        query = query.filter(audit_log::subject_id.eq(subject.to_owned()));
    }
    if let Some((at, id)) = after {
        query = query.filter(
            audit_log::at
                .lt(at)
                .or(audit_log::at.eq(at).and(audit_log::id.lt(id))),
        );
    }
    Ok(query.load(conn)?)
}
