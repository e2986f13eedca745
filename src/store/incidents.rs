//! The incident log's rows: reports and their append-only entries. Nothing here updates an
//! entry or a report's content; closing sets only `status` and `closed_at`.

use crate::domain::incident::{Category, IncidentStatus};
use diesel::prelude::*;

use super::schema::{incident_entries, incidents};
use super::{DbConn, DbError};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = incidents)]
pub struct IncidentRow {
    pub id: String,
    pub org_id: String,
    pub reporter_id: String,
    pub category: Category,
    pub description: String,
    pub occurred_at: i64,
    pub reported_at: i64,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub outing_id: Option<String>,
    pub share_with_police: bool,
    pub status: IncidentStatus,
    pub closed_at: Option<i64>,
    pub hash: String,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = incident_entries)]
pub struct EntryRow {
    pub id: String,
    pub incident_id: String,
    pub seq: i32,
    pub at: i64,
    pub author_id: String,
    pub kind: String,
    pub text: String,
    pub hash: String,
}

pub fn insert(conn: &mut DbConn, row: &IncidentRow) -> Result<(), DbError> {
    diesel::insert_into(incidents::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn find(conn: &mut DbConn, id: &str) -> Result<Option<IncidentRow>, DbError> {
    Ok(incidents::table
        .find(id)
        .select(IncidentRow::as_select())
        .get_result(conn)
        .optional()?)
}

/// The incident, locked against a concurrent entry (PostgreSQL; SQLite's one writer already
/// serialises them), so two entries never take the same place in the chain.
pub fn find_for_update(conn: &mut DbConn, id: &str) -> Result<Option<IncidentRow>, DbError> {
    match conn {
        DbConn::Pg(pg) => Ok(incidents::table
            .find(id)
            .select(IncidentRow::as_select())
            .for_update()
            .get_result(pg)
            .optional()?),
        DbConn::Sqlite(_) => find(conn, id),
    }
}

pub fn entries(conn: &mut DbConn, incident_id: &str) -> Result<Vec<EntryRow>, DbError> {
    Ok(incident_entries::table
        .filter(incident_entries::incident_id.eq(incident_id))
        .order(incident_entries::seq.asc())
        .select(EntryRow::as_select())
        .load(conn)?)
}

/// Appends an entry; the unique (incident, seq) refuses a second entry in the same place.
pub fn append(conn: &mut DbConn, entry: &EntryRow) -> Result<(), DbError> {
    diesel::insert_into(incident_entries::table)
        .values(entry)
        .execute(conn)?;
    Ok(())
}

pub fn mark_closed(conn: &mut DbConn, id: &str, at: i64) -> Result<(), DbError> {
    diesel::update(incidents::table.find(id))
        .set((
            incidents::status.eq(IncidentStatus::Closed),
            incidents::closed_at.eq(Some(at)),
        ))
        .execute(conn)?;
    Ok(())
}

/// Who may see which incidents, as a filter.
pub enum Scope<'a> {
    Reporter(&'a str),
    /// An organiser: their organisation's, and their own anywhere.
    Org {
        org_id: &'a str,
        reporter: &'a str,
    },
    /// Police: the shared incidents of these organisations.
    Shared(&'a [String]),
}

/// Newest first; `before` is the cursor (reported_at, id) of the last row of the previous page.
pub fn list(
    conn: &mut DbConn,
    scope: Scope<'_>,
    before: Option<(i64, String)>,
    limit: i64,
) -> Result<Vec<IncidentRow>, DbError> {
    let mut query = incidents::table
        .select(IncidentRow::as_select())
        .order((incidents::reported_at.desc(), incidents::id.desc()))
        .limit(limit)
        .into_boxed();
    query = match scope {
        Scope::Reporter(id) => query.filter(incidents::reporter_id.eq(id.to_owned())),
        Scope::Org { org_id, reporter } => query.filter(
            incidents::org_id
                .eq(org_id.to_owned())
                .or(incidents::reporter_id.eq(reporter.to_owned())),
        ),
        Scope::Shared(orgs) => query
            .filter(incidents::share_with_police.eq(true))
            .filter(incidents::org_id.eq_any(orgs.to_vec())),
    };
    if let Some((at, id)) = before {
        query = query.filter(
            incidents::reported_at
                .lt(at)
                .or(incidents::reported_at.eq(at).and(incidents::id.lt(id))),
        );
    }
    Ok(query.load(conn)?)
}

/// Removes incidents closed before `cutoff` with their entries (retention).
pub fn forget_closed_before(conn: &mut DbConn, cutoff: i64) -> Result<usize, DbError> {
    let old = incidents::table
        .filter(incidents::status.eq(IncidentStatus::Closed))
        .filter(incidents::closed_at.lt(cutoff))
        .select(incidents::id);
    diesel::delete(incident_entries::table.filter(incident_entries::incident_id.eq_any(old)))
        .execute(conn)?;
    Ok(diesel::delete(
        incidents::table
            .filter(incidents::status.eq(IncidentStatus::Closed))
            .filter(incidents::closed_at.lt(cutoff)),
    )
    .execute(conn)?)
}
