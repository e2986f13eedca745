//! Counts for `/metrics`, read from the database so every replica reports the same truth.

use crate::domain::escalation::{AlertStatus, OutingStatus};
use diesel::prelude::*;

use super::schema::{alerts, outings};
use super::DbConn;
use super::DbError;

pub struct Gauges {
    pub active_outings: i64,
    pub open_alerts_level1: i64,
    pub open_alerts_level2: i64,
}

pub fn gauges(conn: &mut DbConn) -> Result<Gauges, DbError> {
    let active_outings = outings::table
        .filter(outings::status.ne(OutingStatus::Ended))
        .count()
        .get_result(conn)?;
    let open_at = |conn: &mut DbConn, level: i32| -> Result<i64, DbError> {
        Ok(alerts::table
            .filter(alerts::status.ne(AlertStatus::Resolved))
            .filter(alerts::level.eq(level))
            .count()
            .get_result(conn)?)
    };
    Ok(Gauges {
        active_outings,
        open_alerts_level1: open_at(conn, 1)?,
        open_alerts_level2: open_at(conn, 2)?,
    })
}
