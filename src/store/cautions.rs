//! The do-not-knock register's rows, and the grid cells each caution is indexed under (see
//! `domain::caution`): a position's cautions are one lookup on (org, cell).

use crate::domain::caution::Level;
use diesel::prelude::*;

use super::schema::{caution_cells, cautions};
use super::{DbConn, DbError};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = cautions)]
pub struct CautionRow {
    pub id: String,
    pub org_id: String,
    pub lat: f64,
    pub lon: f64,
    pub radius_m: f64,
    pub level: Level,
    pub reason: String,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
}

pub fn insert(conn: &mut DbConn, row: &CautionRow, cells: &[i64]) -> Result<(), DbError> {
    diesel::insert_into(cautions::table)
        .values(row)
        .execute(conn)?;
    insert_cells(conn, row, cells)
}

/// Indexes a caution under its grid cells: on PostgreSQL one statement per thousand cells;
/// on SQLite one cached statement each (in-process: no round trips to save).
pub fn insert_cells(conn: &mut DbConn, row: &CautionRow, cells: &[i64]) -> Result<(), DbError> {
    let values: Vec<_> = cells
        .iter()
        .map(|cell| {
            (
                caution_cells::caution_id.eq(&row.id),
                caution_cells::org_id.eq(&row.org_id),
                caution_cells::cell.eq(*cell),
            )
        })
        .collect();
    match conn {
        DbConn::Pg(pg) => {
            for chunk in values.chunks(1000) {
                diesel::insert_into(caution_cells::table)
                    .values(chunk)
                    .execute(pg)?;
            }
        }
        DbConn::Sqlite(sqlite) => {
            for value in values {
                diesel::insert_into(caution_cells::table)
                    .values(value)
                    .execute(sqlite)?;
            }
        }
    }
    Ok(())
}

/// Cautions indexed under no grid cell (see `service::cautions::index_unindexed`).
pub fn unindexed(conn: &mut DbConn) -> Result<Vec<CautionRow>, DbError> {
    let indexed = caution_cells::table.select(caution_cells::caution_id);
    Ok(cautions::table
        .filter(diesel::dsl::not(cautions::id.eq_any(indexed)))
        .select(CautionRow::as_select())
        .load(conn)?)
}

pub fn find(conn: &mut DbConn, id: &str) -> Result<Option<CautionRow>, DbError> {
    Ok(cautions::table
        .find(id)
        .select(CautionRow::as_select())
        .get_result(conn)
        .optional()?)
}

pub fn delete(conn: &mut DbConn, id: &str) -> Result<bool, DbError> {
    diesel::delete(caution_cells::table.filter(caution_cells::caution_id.eq(id))).execute(conn)?;
    Ok(diesel::delete(cautions::table.find(id)).execute(conn)? > 0)
}

pub fn set_expiry(conn: &mut DbConn, id: &str, expires_at: i64) -> Result<(), DbError> {
    diesel::update(cautions::table.find(id))
        .set(cautions::expires_at.eq(expires_at))
        .execute(conn)?;
    Ok(())
}

/// The organisation's cautions in force at `now`, indexed under any of `cells`.
pub fn in_cells(
    conn: &mut DbConn,
    org_id: &str,
    cells: &[i64],
    now: i64,
) -> Result<Vec<CautionRow>, DbError> {
    if cells.is_empty() {
        return Ok(Vec::new());
    }
    let ids = caution_cells::table
        .filter(caution_cells::org_id.eq(org_id.to_owned()))
        .filter(caution_cells::cell.eq_any(cells.to_vec()))
        .select(caution_cells::caution_id);
    Ok(cautions::table
        .filter(cautions::id.eq_any(ids))
        .filter(cautions::expires_at.gt(now))
        .order((cautions::created_at.desc(), cautions::id.desc()))
        .select(CautionRow::as_select())
        .load(conn)?)
}

/// Every caution of the organisation in force at `now`, newest first (at most `limit`).
pub fn active(
    conn: &mut DbConn,
    org_id: &str,
    now: i64,
    limit: i64,
) -> Result<Vec<CautionRow>, DbError> {
    Ok(cautions::table
        .filter(cautions::org_id.eq(org_id.to_owned()))
        .filter(cautions::expires_at.gt(now))
        .order((cautions::created_at.desc(), cautions::id.desc()))
        .limit(limit)
        .select(CautionRow::as_select())
        .load(conn)?)
}

/// Removes cautions that lapsed before `cutoff` (retention).
pub fn forget_expired_before(conn: &mut DbConn, cutoff: i64) -> Result<usize, DbError> {
    let old = cautions::table
        .filter(cautions::expires_at.lt(cutoff))
        .select(cautions::id);
    diesel::delete(caution_cells::table.filter(caution_cells::caution_id.eq_any(old)))
        .execute(conn)?;
    Ok(diesel::delete(cautions::table.filter(cautions::expires_at.lt(cutoff))).execute(conn)?)
}
