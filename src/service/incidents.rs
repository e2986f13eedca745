//! The incident log: reporting, reading, adding entries, closing, and the chain that makes a
//! later change to any of it visible in the export.

use crate::domain::account::Role;
use crate::domain::caller::Caller;
use crate::domain::ids::{OrgId, OutingId, UserId};
use crate::domain::incident::{
    self, Category, CheckedLink, EntryLink, IncidentAccess, IncidentFacts, IncidentStatus,
    ReportLink,
};
use crate::domain::time::from_millis;
use crate::error::AppError;
use crate::service::notify;
use crate::store::incidents::{EntryRow, IncidentRow, Scope};
use crate::store::{self, DbConn};
use crate::wire::{IncidentEntryView, IncidentView, PersonRef, PointView};

/// A validated report.
pub struct NewIncident {
    pub category: Category,
    pub description: String,
    pub occurred_at_ms: Option<i64>,
    pub position: Option<(f64, f64)>,
    pub outing_id: Option<OutingId>,
    pub share_with_police: bool,
}

/// An incident with its entries, as the caller may see it.
pub struct Seen {
    pub row: IncidentRow,
    pub entries: Vec<EntryRow>,
    pub access: IncidentAccess,
}

fn facts(row: &IncidentRow) -> Result<IncidentFacts, AppError> {
    Ok(IncidentFacts {
        org_id: store::accounts::parse_id(&row.org_id, "organisation")?,
        reporter_id: store::accounts::parse_id(&row.reporter_id, "user")?,
        share_with_police: row.share_with_police,
    })
}

fn access_of(
    conn: &mut DbConn,
    caller: &Caller,
    row: &IncidentRow,
) -> Result<IncidentAccess, AppError> {
    let police: Vec<OrgId> = if caller.role == Role::Police {
        store::accounts::police_orgs(conn, caller.id)?
    } else {
        Vec::new()
    };
    Ok(incident::access(
        caller.id,
        caller.role,
        caller.org_id,
        &police,
        &facts(row)?,
    ))
}

fn report_link(row: &IncidentRow) -> ReportLink<'_> {
    ReportLink {
        id: &row.id,
        org_id: &row.org_id,
        reporter_id: &row.reporter_id,
        category: row.category.as_str(),
        description: &row.description,
        occurred_at_ms: row.occurred_at,
        reported_at_ms: row.reported_at,
        lat: row.lat,
        lon: row.lon,
        outing_id: row.outing_id.as_deref(),
        share_with_police: row.share_with_police,
    }
}

fn entry_link(entry: &EntryRow) -> EntryLink<'_> {
    EntryLink {
        id: &entry.id,
        seq: entry.seq,
        at_ms: entry.at,
        author_id: &entry.author_id,
        kind: &entry.kind,
        text: &entry.text,
    }
}

/// Reports an incident (canvassers and organisers, for their own organisation), and tells the
/// organisers and, when shared, the police contacts.
pub fn report(
    conn: &mut DbConn,
    caller: &Caller,
    new: NewIncident,
    now_ms: i64,
) -> Result<Seen, AppError> {
    let org = match (caller.role, caller.org_id) {
        (Role::Canvasser | Role::Organiser, Some(org)) => org,
        _ => {
            return Err(AppError::Forbidden(
                "only canvassers and organisers report incidents".into(),
            ))
        }
    };
    let occurred_at = new.occurred_at_ms.unwrap_or(now_ms);
    if occurred_at > now_ms + 5 * 60_000 {
        return Err(AppError::field("occurred_at", "must not be in the future"));
    }
    if let Some(outing) = new.outing_id {
        let row = store::outings::find(conn, outing)?;
        let theirs = row.is_some_and(|o| {
            o.org_id == org && (o.canvasser_id == caller.id || caller.role == Role::Organiser)
        });
        if !theirs {
            return Err(AppError::field(
                "outing_id",
                "is not an outing of yours or your organisation's",
            ));
        }
    }
    let mut row = IncidentRow {
        id: store::new_id(),
        org_id: org.to_string(),
        reporter_id: caller.id.to_string(),
        category: new.category,
        description: new.description,
        occurred_at,
        reported_at: now_ms,
        lat: new.position.map(|p| p.0),
        lon: new.position.map(|p| p.1),
        outing_id: new.outing_id.map(|o| o.to_string()),
        share_with_police: new.share_with_police,
        status: IncidentStatus::Open,
        closed_at: None,
        hash: String::new(),
    };
    row.hash = incident::report_hash(&report_link(&row));
    store::incidents::insert(conn, &row)?;
    audit(conn, caller, "incident.reported", &row, now_ms)?;
    let mut recipients: Vec<UserId> = store::notifications::organisers_of(conn, org)?
        .into_iter()
        .filter(|id| *id != caller.id)
        .collect();
    if row.share_with_police {
        recipients.extend(store::notifications::police_of(conn, org)?);
    }
    notify::incident_reported(
        conn,
        &row,
        new.category.label(),
        &caller.display_name,
        &recipients,
        now_ms,
    )?;
    Ok(Seen {
        row,
        entries: Vec::new(),
        access: IncidentAccess::Manage,
    })
}

fn audit(
    conn: &mut DbConn,
    caller: &Caller,
    action: &str,
    row: &IncidentRow,
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
            detail: serde_json::json!({"category": row.category, "shared": row.share_with_police}),
        },
        now_ms,
    )?)
}

/// The incident, when the caller may see it (404 otherwise: its existence is not theirs to
/// know).
pub fn read(conn: &mut DbConn, caller: &Caller, id: &str) -> Result<Seen, AppError> {
    let row = store::incidents::find(conn, id)?.ok_or(AppError::NotFound("incident"))?;
    seen(conn, caller, row)
}

fn seen(conn: &mut DbConn, caller: &Caller, row: IncidentRow) -> Result<Seen, AppError> {
    let access = access_of(conn, caller, &row)?;
    if !access.reads() {
        return Err(AppError::NotFound("incident"));
    }
    let entries = store::incidents::entries(conn, &row.id)?;
    Ok(Seen {
        row,
        entries,
        access,
    })
}

/// Whether `caller` reading this incident reads someone else's position (to be audited).
pub fn location_read_is_audited(caller: &Caller, row: &IncidentRow) -> Result<bool, AppError> {
    Ok(incident::location_read_is_audited(
        caller.id,
        &facts(row)?,
        row.lat.is_some(),
    ))
}

/// Records that `caller` read the incident's position.
pub fn audit_location_read(
    conn: &mut DbConn,
    caller: &Caller,
    row: &IncidentRow,
    now_ms: i64,
) -> Result<(), AppError> {
    Ok(store::audit::record(
        conn,
        &store::audit::LocationRead {
            actor_id: caller.id.to_string(),
            actor_role: caller.role.as_str(),
            action: "incident",
            subject_id: row.reporter_id.clone(),
            org_id: row.org_id.clone(),
            outing_id: row.outing_id.clone(),
            alert_id: None,
        },
        now_ms,
    )?)
}

/// Appends an entry to the chain (anyone who may see the incident, while it is open).
pub fn add_entry(
    conn: &mut DbConn,
    caller: &Caller,
    id: &str,
    kind: &str,
    text: String,
    now_ms: i64,
) -> Result<Seen, AppError> {
    let row = store::incidents::find_for_update(conn, id)?.ok_or(AppError::NotFound("incident"))?;
    let mut seen = seen(conn, caller, row)?;
    if seen.row.status == IncidentStatus::Closed {
        return Err(AppError::Conflict("the incident is closed".into()));
    }
    let previous = seen
        .entries
        .last()
        .map_or(seen.row.hash.clone(), |e| e.hash.clone());
    let mut entry = EntryRow {
        id: store::new_id(),
        incident_id: seen.row.id.clone(),
        seq: seen.entries.last().map_or(1, |e| e.seq + 1),
        at: now_ms,
        author_id: caller.id.to_string(),
        kind: kind.to_owned(),
        text,
        hash: String::new(),
    };
    entry.hash = incident::entry_hash(&previous, &entry_link(&entry));
    store::incidents::append(conn, &entry)?;
    seen.entries.push(entry);
    Ok(seen)
}

/// Closes the incident with a last entry (its reporter and the organisers).
pub fn close(
    conn: &mut DbConn,
    caller: &Caller,
    id: &str,
    note: Option<String>,
    now_ms: i64,
) -> Result<Seen, AppError> {
    let row = store::incidents::find_for_update(conn, id)?.ok_or(AppError::NotFound("incident"))?;
    let access = access_of(conn, caller, &row)?;
    if !access.reads() {
        return Err(AppError::NotFound("incident"));
    }
    if !access.closes() {
        return Err(AppError::Forbidden(
            "only its reporter and the organisers close an incident".into(),
        ));
    }
    let mut seen = add_entry(
        conn,
        caller,
        id,
        "close",
        note.unwrap_or_else(|| "Closed".to_owned()),
        now_ms,
    )?;
    store::incidents::mark_closed(conn, id, now_ms)?;
    seen.row.status = IncidentStatus::Closed;
    seen.row.closed_at = Some(now_ms);
    audit(conn, caller, "incident.closed", &seen.row, now_ms)?;
    Ok(seen)
}

/// The incidents the caller may see, newest first.
pub fn list(
    conn: &mut DbConn,
    caller: &Caller,
    before: Option<(i64, String)>,
    limit: i64,
) -> Result<Vec<Seen>, AppError> {
    let me = caller.id.to_string();
    let police: Vec<String>;
    let org: String;
    let scope = match (caller.role, caller.org_id) {
        (Role::Organiser, Some(o)) => {
            org = o.to_string();
            Scope::Org {
                org_id: &org,
                reporter: &me,
            }
        }
        (Role::Police, _) => {
            police = store::accounts::police_orgs(conn, caller.id)?
                .iter()
                .map(ToString::to_string)
                .collect();
            Scope::Shared(&police)
        }
        _ => Scope::Reporter(&me),
    };
    let rows = store::incidents::list(conn, scope, before, limit)?;
    rows.into_iter()
        .map(|row| {
            let access = access_of(conn, caller, &row)?;
            let entries = store::incidents::entries(conn, &row.id)?;
            Ok(Seen {
                row,
                entries,
                access,
            })
        })
        .collect()
}

/// The chain as checked now: the report's link, then each entry's.
pub fn check(seen: &Seen) -> Vec<CheckedLink> {
    let entries: Vec<(EntryLink<'_>, &str)> = seen
        .entries
        .iter()
        .map(|e| (entry_link(e), e.hash.as_str()))
        .collect();
    incident::check_chain(&report_link(&seen.row), &seen.row.hash, &entries)
}

pub fn view(conn: &mut DbConn, seen: &Seen) -> Result<IncidentView, AppError> {
    let person = |conn: &mut DbConn, id: &str| -> Result<PersonRef, AppError> {
        Ok(PersonRef {
            id: store::accounts::parse_id(id, "user")?,
            display_name: store::outings::display_name(conn, id)?,
            phone: None,
        })
    };
    let row = &seen.row;
    let entries = seen
        .entries
        .iter()
        .map(|e| {
            Ok(IncidentEntryView {
                id: e.id.clone(),
                at: from_millis(e.at),
                author: person(conn, &e.author_id)?,
                kind: e.kind.clone(),
                text: e.text.clone(),
                hash: e.hash.clone(),
            })
        })
        .collect::<Result<Vec<_>, AppError>>()?;
    Ok(IncidentView {
        id: row.id.clone(),
        org_id: row.org_id.clone(),
        reporter: person(conn, &row.reporter_id)?,
        category: row.category,
        description: row.description.clone(),
        occurred_at: from_millis(row.occurred_at),
        reported_at: from_millis(row.reported_at),
        location: match (row.lat, row.lon) {
            (Some(lat), Some(lon)) => Some(PointView { lat, lon }),
            _ => None,
        },
        outing_id: row.outing_id.clone(),
        share_with_police: row.share_with_police,
        status: row.status,
        hash: seen
            .entries
            .last()
            .map_or(row.hash.clone(), |e| e.hash.clone()),
        entries,
    })
}

/// The time zone of the incident's organisation: the evidence record gives local times.
pub fn zone_of(conn: &mut DbConn, seen: &Seen) -> Result<chrono_tz::Tz, AppError> {
    let org = seen
        .row
        .org_id
        .parse()
        .map_err(|_| AppError::internal("an incident's organisation id is not a UUID"))?;
    Ok(store::orgs::find(conn, org)?.map_or(chrono_tz::Europe::London, |org| org.timezone))
}
