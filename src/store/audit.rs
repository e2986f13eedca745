//! The audit log: who read whose location, and when.

use diesel::prelude::*;

use super::schema::audit_log;
use super::{new_id, DbConn};
use crate::error::AppError;

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

pub fn record(conn: &mut DbConn, read: &LocationRead<'_>, at: i64) -> Result<(), AppError> {
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
