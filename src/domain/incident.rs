//! The incident log's rules: categories, what a report and an entry may say, who may read,
//! add to and close an incident, and the hash chain that makes a later change visible.

use serde_json::json;
use sha2::{Digest, Sha256};

use super::account::Role;
use super::field_error::FieldErrors;
use super::ids::{OrgId, UserId};

pub const MAX_DESCRIPTION_CHARS: usize = 4000;
pub const MAX_ENTRY_CHARS: usize = 4000;

super::delivery::wire_enum!(
    /// An incident is open for entries until someone closes it.
    IncidentStatus {
        Open => "open",
        Closed => "closed",
    }
);

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    serde::Serialize,
    utoipa::ToSchema,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[serde(rename_all = "snake_case")]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum Category {
    VerbalAbuse,
    Threat,
    Harassment,
    Assault,
    Damage,
    Other,
}

impl Category {
    pub const ALL: [Category; 6] = [
        Category::VerbalAbuse,
        Category::Threat,
        Category::Harassment,
        Category::Assault,
        Category::Damage,
        Category::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::VerbalAbuse => "verbal_abuse",
            Category::Threat => "threat",
            Category::Harassment => "harassment",
            Category::Assault => "assault",
            Category::Damage => "damage",
            Category::Other => "other",
        }
    }

    pub fn parse(raw: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == raw)
    }

    /// The words a person reads (a push, the export).
    pub fn label(self) -> &'static str {
        match self {
            Category::VerbalAbuse => "Verbal abuse",
            Category::Threat => "Threat",
            Category::Harassment => "Harassment",
            Category::Assault => "Assault",
            Category::Damage => "Damage",
            Category::Other => "Other",
        }
    }
}

/// Text of a report or an entry: trimmed, 1 to `max` characters, no control characters but
/// line breaks and tabs.
pub fn parse_text(errors: &mut FieldErrors, field: &str, raw: &str, max: usize) -> Option<String> {
    let text = raw.trim();
    if text.is_empty() {
        errors.push(field, "must not be empty");
        return None;
    }
    if text.chars().count() > max {
        errors.push(field, format!("must be at most {max} characters"));
        return None;
    }
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        errors.push(field, "must not contain control characters");
        return None;
    }
    Some(text.to_owned())
}

/// What deciding access needs to know of an incident.
#[derive(Debug, Clone, Copy)]
pub struct IncidentFacts {
    pub org_id: OrgId,
    pub reporter_id: UserId,
    pub share_with_police: bool,
}

/// What a person may do with an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncidentAccess {
    /// Not theirs to know of: answered as 404.
    None,
    /// Read it and add entries (police contacts of a shared incident).
    Contribute,
    /// Read, add entries and close it (its reporter, the organisation's organisers).
    Manage,
}

impl IncidentAccess {
    pub fn reads(self) -> bool {
        self != IncidentAccess::None
    }

    pub fn closes(self) -> bool {
        self == IncidentAccess::Manage
    }
}

/// The reporter and their organisation's organisers manage an incident; police contacts
/// assigned to the organisation read and add to it when it is shared with them; nobody else
/// (another canvasser, another organisation, an administrator) learns it exists.
pub fn access(
    viewer: UserId,
    role: Role,
    viewer_org: Option<OrgId>,
    police_orgs: &[OrgId],
    incident: &IncidentFacts,
) -> IncidentAccess {
    if viewer == incident.reporter_id {
        return IncidentAccess::Manage;
    }
    match role {
        Role::Organiser if viewer_org == Some(incident.org_id) => IncidentAccess::Manage,
        Role::Police if incident.share_with_police && police_orgs.contains(&incident.org_id) => {
            IncidentAccess::Contribute
        }
        _ => IncidentAccess::None,
    }
}

/// Whether reading this incident is a read of another person's location (audited): anyone
/// but its reporter reading one that carries a position.
pub fn location_read_is_audited(
    viewer: UserId,
    incident: &IncidentFacts,
    has_location: bool,
) -> bool {
    has_location && viewer != incident.reporter_id
}

/// The report as hashed: every field the reporter gave and the server set.
#[derive(Debug, Clone)]
pub struct ReportLink<'a> {
    pub id: &'a str,
    pub org_id: &'a str,
    pub reporter_id: &'a str,
    pub category: &'a str,
    pub description: &'a str,
    pub occurred_at_ms: i64,
    pub reported_at_ms: i64,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub outing_id: Option<&'a str>,
    pub share_with_police: bool,
}

/// An entry as hashed.
#[derive(Debug, Clone)]
pub struct EntryLink<'a> {
    pub id: &'a str,
    pub seq: i32,
    pub at_ms: i64,
    pub author_id: &'a str,
    pub kind: &'a str,
    pub text: &'a str,
}

fn sha256_hex(previous: &str, canonical: &serde_json::Value) -> String {
    let mut hasher = Sha256::new();
    hasher.update(previous.as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical.to_string().as_bytes());
    hex::encode(hasher.finalize())
}

/// The first link: SHA-256 of the report (with an empty previous hash).
pub fn report_hash(report: &ReportLink<'_>) -> String {
    sha256_hex(
        "",
        &json!([
            report.id,
            report.org_id,
            report.reporter_id,
            report.category,
            report.description,
            report.occurred_at_ms,
            report.reported_at_ms,
            report.lat,
            report.lon,
            report.outing_id,
            report.share_with_police,
        ]),
    )
}

/// SHA-256 of the previous link's hash and this entry.
pub fn entry_hash(previous: &str, entry: &EntryLink<'_>) -> String {
    sha256_hex(
        previous,
        &json!([
            entry.id,
            entry.seq,
            entry.at_ms,
            entry.author_id,
            entry.kind,
            entry.text
        ]),
    )
}

/// One link of a chain as checked: whether its stored hash is what its content gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedLink {
    pub stored: String,
    pub intact: bool,
}

/// Checks a chain: the report's stored hash against its content, then each entry's against
/// the previous stored hash and its own content. A changed report or entry breaks its own
/// link; a replaced hash breaks the next one.
pub fn check_chain(
    report: &ReportLink<'_>,
    report_stored: &str,
    entries: &[(EntryLink<'_>, &str)],
) -> Vec<CheckedLink> {
    let mut links = vec![CheckedLink {
        stored: report_stored.to_owned(),
        intact: report_hash(report) == report_stored,
    }];
    let mut previous = report_stored.to_owned();
    for (entry, stored) in entries {
        links.push(CheckedLink {
            stored: (*stored).to_owned(),
            intact: entry_hash(&previous, entry) == *stored,
        });
        previous = (*stored).to_owned();
    }
    links
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report<'a>(description: &'a str) -> ReportLink<'a> {
        ReportLink {
            id: "i1",
            org_id: "o1",
            reporter_id: "u1",
            category: "threat",
            description,
            occurred_at_ms: 1_000,
            reported_at_ms: 2_000,
            lat: Some(51.5),
            lon: Some(-0.1),
            outing_id: None,
            share_with_police: true,
        }
    }

    fn entry<'a>(id: &'a str, seq: i32, text: &'a str) -> EntryLink<'a> {
        EntryLink {
            id,
            seq,
            at_ms: 3_000 + i64::from(seq),
            author_id: "u2",
            kind: "note",
            text,
        }
    }

    #[test]
    fn categories_round_trip_and_unknown_ones_are_refused() {
        for c in Category::ALL {
            assert_eq!(Category::parse(c.as_str()), Some(c));
        }
        assert_eq!(Category::parse("Threat"), None);
        assert_eq!(Category::parse(""), None);
    }

    #[test]
    fn text_is_trimmed_bounded_and_free_of_control_characters() {
        let mut errors = FieldErrors::new();
        assert_eq!(
            parse_text(&mut errors, "description", "  shouted at  \n", 10).as_deref(),
            Some("shouted at")
        );
        assert!(errors.is_empty());
        assert!(parse_text(&mut errors, "description", "   ", 10).is_none());
        assert!(parse_text(&mut errors, "description", "12345678901", 10).is_none());
        assert!(parse_text(&mut errors, "description", "a\u{0}b", 10).is_none());
        assert_eq!(errors.0.len(), 3);
        assert!(errors.0.iter().all(|e| e.field == "description"));
        let mut ok = FieldErrors::new();
        assert!(parse_text(&mut ok, "text", "line one\nline\ttwo", 40).is_some());
    }

    #[test]
    fn who_may_read_add_to_and_close_an_incident() {
        let (reporter, other, organiser, police) =
            (UserId::new(), UserId::new(), UserId::new(), UserId::new());
        let (org, other_org) = (OrgId::new(), OrgId::new());
        let shared = IncidentFacts {
            org_id: org,
            reporter_id: reporter,
            share_with_police: true,
        };
        let unshared = IncidentFacts {
            share_with_police: false,
            ..shared
        };
        let a = |who, role, own_org, police_orgs: &[OrgId], facts: &IncidentFacts| {
            access(who, role, own_org, police_orgs, facts)
        };
        assert_eq!(
            a(reporter, Role::Canvasser, Some(org), &[], &shared),
            IncidentAccess::Manage
        );
        assert_eq!(
            a(other, Role::Canvasser, Some(org), &[], &shared),
            IncidentAccess::None
        );
        assert_eq!(
            a(organiser, Role::Organiser, Some(org), &[], &unshared),
            IncidentAccess::Manage
        );
        assert_eq!(
            a(organiser, Role::Organiser, Some(other_org), &[], &shared),
            IncidentAccess::None
        );
        assert_eq!(
            a(police, Role::Police, None, &[org], &shared),
            IncidentAccess::Contribute
        );
        assert_eq!(
            a(police, Role::Police, None, &[org], &unshared),
            IncidentAccess::None
        );
        assert_eq!(
            a(police, Role::Police, None, &[other_org], &shared),
            IncidentAccess::None
        );
        assert_eq!(
            a(other, Role::Admin, None, &[], &shared),
            IncidentAccess::None
        );
        assert!(IncidentAccess::Manage.closes() && !IncidentAccess::Contribute.closes());
        assert!(IncidentAccess::Contribute.reads() && !IncidentAccess::None.reads());
    }

    #[test]
    fn only_others_reading_a_position_are_audited() {
        let reporter = UserId::new();
        let facts = IncidentFacts {
            org_id: OrgId::new(),
            reporter_id: reporter,
            share_with_police: false,
        };
        assert!(!location_read_is_audited(reporter, &facts, true));
        assert!(location_read_is_audited(UserId::new(), &facts, true));
        assert!(!location_read_is_audited(UserId::new(), &facts, false));
    }

    #[test]
    fn an_intact_chain_checks_and_any_change_breaks_a_link() {
        let r = report("He threatened me at the gate");
        let h0 = report_hash(&r);
        let e1 = entry("e1", 1, "Crime reference 123");
        let h1 = entry_hash(&h0, &e1);
        let e2 = entry("e2", 2, "Closed");
        let h2 = entry_hash(&h1, &e2);
        let intact = check_chain(&r, &h0, &[(e1.clone(), &h1), (e2.clone(), &h2)]);
        assert!(intact.iter().all(|l| l.intact), "{intact:?}");

        // An edited entry breaks its own link.
        let edited = entry("e1", 1, "Crime reference 124");
        let checked = check_chain(&r, &h0, &[(edited, &h1), (e2.clone(), &h2)]);
        assert_eq!(
            checked.iter().map(|l| l.intact).collect::<Vec<_>>(),
            [true, false, true]
        );
        // An edited report breaks the first.
        let checked = check_chain(&report("He was polite"), &h0, &[(e1.clone(), &h1)]);
        assert!(!checked[0].intact && checked[1].intact);
        // An entry's hash recomputed to match its edit breaks the next link instead.
        let forged = entry("e1", 1, "nothing happened");
        let forged_hash = entry_hash(&h0, &forged);
        let checked = check_chain(&r, &h0, &[(forged, &forged_hash), (e2, &h2)]);
        assert_eq!(
            checked.iter().map(|l| l.intact).collect::<Vec<_>>(),
            [true, true, false]
        );
        // Hashes are SHA-256 in hex.
        assert_eq!(h0.len(), 64);
        assert!(h0.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
