//! The do-not-knock register: marking, listing, renewing and retiring cautions, and finding
//! the ones that bear on an outing's area or a check-in's position.

use crate::domain::account::Role;
use crate::domain::area::Area;
use crate::domain::caller::Caller;
use crate::domain::caution::{self, Circle, NewCaution};
use crate::domain::ids::{OrgId, UserId};
use crate::domain::time::from_millis;
use crate::error::AppError;
use crate::store::cautions::CautionRow;
use crate::store::{self, DbConn};
use crate::wire::{CautionView, PersonRef};

/// Most cells an area may span before its cautions are found by the organisation's list.
const MAX_AREA_CELLS: usize = 2_000;
/// Most cautions a list answers with.
const MAX_LISTED: i64 = 500;

fn police_orgs(conn: &mut DbConn, caller: &Caller) -> Result<Vec<OrgId>, AppError> {
    Ok(if caller.role == Role::Police {
        store::accounts::police_orgs(conn, caller.id)?
    } else {
        Vec::new()
    })
}

fn circle(row: &CautionRow) -> Circle {
    Circle {
        lat: row.lat,
        lon: row.lon,
        radius_m: row.radius_m,
    }
}

/// Marks a caution; organisers of `org` and its police contacts may.
pub fn mark(
    conn: &mut DbConn,
    caller: &Caller,
    org: OrgId,
    new: NewCaution,
    now_ms: i64,
) -> Result<CautionRow, AppError> {
    let police = police_orgs(conn, caller)?;
    if !caution::may_see(caller.role, caller.org_id, &police, org) {
        return Err(AppError::NotFound("organisation"));
    }
    if !caution::may_mark(caller.role, caller.org_id, &police, org) {
        return Err(AppError::Forbidden(
            "only organisers and the police contacts mark cautions".into(),
        ));
    }
    let row = CautionRow {
        id: store::new_id(),
        org_id: org.to_string(),
        lat: new.lat,
        lon: new.lon,
        radius_m: new.radius_m,
        level: new.level,
        reason: new.reason,
        created_by: caller.id.to_string(),
        created_at: now_ms,
        expires_at: new.expires_at_ms,
    };
    store::cautions::insert(conn, &row, &caution::cells_of_circle(&circle(&row)))?;
    audit(conn, caller, "caution.marked", &row, now_ms)?;
    Ok(row)
}

fn audit(
    conn: &mut DbConn,
    caller: &Caller,
    action: &str,
    row: &CautionRow,
    now_ms: i64,
) -> Result<(), AppError> {
    Ok(store::audit::record_action(
        conn,
        &store::audit::Action {
            actor_id: caller.id.to_string(),
            actor_role: caller.role.as_str(),
            action,
            subject_id: Some(row.id.clone()),
            org_id: Some(row.org_id.clone()),
            detail: serde_json::json!({
                "level": row.level,
                "radius_m": row.radius_m,
                "expires_at": crate::domain::time::rfc3339(from_millis(row.expires_at)),
            }),
        },
        now_ms,
    )?)
}

/// The cautions of `org` in force, those within `within_m` of `near` when given.
pub fn list(
    conn: &mut DbConn,
    caller: &Caller,
    org: OrgId,
    near: Option<(f64, f64, f64)>,
    now_ms: i64,
) -> Result<Vec<CautionRow>, AppError> {
    let police = police_orgs(conn, caller)?;
    if !caution::may_see(caller.role, caller.org_id, &police, org) {
        return Err(AppError::NotFound("organisation"));
    }
    let org_id = org.to_string();
    Ok(match near {
        None => store::cautions::active(conn, &org_id, now_ms, MAX_LISTED)?,
        Some((lat, lon, within_m)) => {
            // A wide search reads the organisation's cautions rather than thousands of cells.
            let rows = match caution::cells_near(
                lat,
                lon,
                within_m + caution::MAX_RADIUS_M,
                MAX_AREA_CELLS,
            ) {
                Some(cells) => store::cautions::in_cells(conn, &org_id, &cells, now_ms)?,
                None => store::cautions::active(conn, &org_id, now_ms, i64::MAX)?,
            };
            rows.into_iter()
                .filter(|row| {
                    let grown = Circle {
                        radius_m: row.radius_m + within_m,
                        ..circle(row)
                    };
                    caution::covers(&grown, lat, lon)
                })
                .collect()
        }
    })
}

/// A caution the caller may retire or renew.
fn retirable(
    conn: &mut DbConn,
    caller: &Caller,
    org: OrgId,
    id: &str,
) -> Result<CautionRow, AppError> {
    let police = police_orgs(conn, caller)?;
    let row = store::cautions::find(conn, id)?
        .filter(|row| row.org_id == org.to_string())
        .filter(|_| caution::may_see(caller.role, caller.org_id, &police, org))
        .ok_or(AppError::NotFound("caution"))?;
    let author: UserId = store::accounts::parse_id(&row.created_by, "user")?;
    if !caution::may_retire(caller.id, caller.role, caller.org_id, org, author) {
        return Err(AppError::Forbidden(
            "only organisers and its author retire or renew a caution".into(),
        ));
    }
    Ok(row)
}

pub fn retire(
    conn: &mut DbConn,
    caller: &Caller,
    org: OrgId,
    id: &str,
    now_ms: i64,
) -> Result<(), AppError> {
    let row = retirable(conn, caller, org, id)?;
    store::cautions::delete(conn, &row.id)?;
    audit(conn, caller, "caution.retired", &row, now_ms)
}

/// Renews a caution for another 90 days from now (a lapsed one comes back into force).
pub fn renew(
    conn: &mut DbConn,
    caller: &Caller,
    org: OrgId,
    id: &str,
    now_ms: i64,
) -> Result<CautionRow, AppError> {
    let mut row = retirable(conn, caller, org, id)?;
    row.expires_at = now_ms + caution::DEFAULT_LIFETIME_MS;
    store::cautions::set_expiry(conn, &row.id, row.expires_at)?;
    audit(conn, caller, "caution.renewed", &row, now_ms)?;
    Ok(row)
}

/// The organisation's cautions in force that lie within or touch `area`.
pub fn touching_area(
    conn: &mut DbConn,
    org: &str,
    area: &Area,
    now_ms: i64,
) -> Result<Vec<CautionRow>, AppError> {
    let rows = match caution::cells_near_area(area, MAX_AREA_CELLS) {
        Some(cells) => store::cautions::in_cells(conn, org, &cells, now_ms)?,
        None => store::cautions::active(conn, org, now_ms, i64::MAX)?,
    };
    Ok(rows
        .into_iter()
        .filter(|row| caution::touches(&circle(row), area))
        .collect())
}

/// The organisation's cautions in force whose circle holds the position: one indexed lookup
/// of the position's grid cell.
pub fn covering(
    conn: &mut DbConn,
    org: &str,
    lat: f64,
    lon: f64,
    now_ms: i64,
) -> Result<Vec<CautionRow>, AppError> {
    Ok(
        store::cautions::in_cells(conn, org, &[caution::cell_of(lat, lon)], now_ms)?
            .into_iter()
            .filter(|row| caution::covers(&circle(row), lat, lon))
            .collect(),
    )
}

pub fn view(conn: &mut DbConn, row: &CautionRow) -> Result<CautionView, AppError> {
    Ok(CautionView {
        id: row.id.clone(),
        org_id: row.org_id.clone(),
        lat: row.lat,
        lon: row.lon,
        radius_m: row.radius_m,
        level: row.level,
        reason: row.reason.clone(),
        created_by: PersonRef {
            id: store::accounts::parse_id(&row.created_by, "user")?,
            display_name: store::outings::display_name(conn, &row.created_by)?,
            phone: None,
        },
        created_at: from_millis(row.created_at),
        expires_at: from_millis(row.expires_at),
    })
}

pub fn views(conn: &mut DbConn, rows: &[CautionRow]) -> Result<Vec<CautionView>, AppError> {
    rows.iter().map(|row| view(conn, row)).collect()
}

/// Indexes every caution that has no grid cells (those marked before the grid last changed:
/// its migration empties `caution_cells`). Runs at start; a no-op once all are indexed.
pub fn index_unindexed(conn: &mut DbConn) -> Result<usize, AppError> {
    let rows = store::cautions::unindexed(conn)?;
    for row in &rows {
        store::cautions::insert_cells(conn, row, &caution::cells_of_circle(&circle(row)))?;
    }
    Ok(rows.len())
}
