//! Wrong PINs in a row, per scope (an outing, or a user without one): the counter behind the
//! PIN lockout. Callers lock the outing row first, so two attempts on one outing take turns.

use diesel::prelude::*;

use super::schema::pin_attempts;
use super::DbConn;
use super::DbError;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = pin_attempts)]
pub struct PinAttemptsRow {
    pub scope: String,
    pub failures: i32,
    pub locked_until: Option<i64>,
    pub updated_at: i64,
}

pub fn find(conn: &mut DbConn, scope: &str) -> Result<Option<PinAttemptsRow>, DbError> {
    Ok(pin_attempts::table
        .find(scope)
        .select(PinAttemptsRow::as_select())
        .load(conn)?
        .into_iter()
        .next())
}

/// Writes the counter (insert or replace).
pub fn save(
    conn: &mut DbConn,
    scope: &str,
    failures: i32,
    locked_until: Option<i64>,
    now_ms: i64,
) -> Result<(), DbError> {
    let updated = diesel::update(pin_attempts::table.find(scope))
        .set((
            pin_attempts::failures.eq(failures),
            pin_attempts::locked_until.eq(locked_until),
            pin_attempts::updated_at.eq(now_ms),
        ))
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(pin_attempts::table)
            .values((
                pin_attempts::scope.eq(scope),
                pin_attempts::failures.eq(failures),
                pin_attempts::locked_until.eq(locked_until),
                pin_attempts::updated_at.eq(now_ms),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// A right PIN ends the run of wrong ones.
pub fn clear(conn: &mut DbConn, scope: &str) -> Result<(), DbError> {
    diesel::delete(pin_attempts::table.find(scope)).execute(conn)?;
    Ok(())
}

/// Counters untouched since `before_ms` (retention).
pub fn purge_older_than(conn: &mut DbConn, before_ms: i64) -> Result<usize, DbError> {
    Ok(
        diesel::delete(pin_attempts::table.filter(pin_attempts::updated_at.lt(before_ms)))
            .execute(conn)?,
    )
}
