//! Who may see what of an outing. Pure: the caller gathers the facts, this decides.

use super::account::Role;
use super::ids::{OrgId, UserId};

/// The viewer, with the organisations a police user is assigned to.
#[derive(Debug, Clone)]
pub struct Viewer<'a> {
    pub id: UserId,
    pub role: Role,
    pub org_id: Option<OrgId>,
    pub police_orgs: &'a [OrgId],
}

/// The facts about an outing that decide visibility.
#[derive(Debug, Clone)]
pub struct OutingFacts<'a> {
    pub canvasser: UserId,
    pub org_id: OrgId,
    pub companions: &'a [UserId],
    /// The open (unresolved) alert's level and whether it is panic or duress.
    pub open_alert_level: Option<u8>,
    pub open_alert_is_panic_or_duress: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OutingVisibility {
    /// Does not exist for this viewer (404).
    None,
    /// Area, times and name only: no live location, no alert (police below level 2).
    Planned,
    /// Everything, including live location and alerts.
    Full,
}

impl OutingVisibility {
    pub fn sees_location(self) -> bool {
        self == OutingVisibility::Full
    }
}

pub fn outing_visibility(viewer: &Viewer<'_>, outing: &OutingFacts<'_>) -> OutingVisibility {
    if viewer.id == outing.canvasser || outing.companions.contains(&viewer.id) {
        return OutingVisibility::Full;
    }
    match viewer.role {
        Role::Organiser if viewer.org_id == Some(outing.org_id) => OutingVisibility::Full,
        Role::Police if viewer.police_orgs.contains(&outing.org_id) => {
            let escalated = outing.open_alert_level.is_some_and(|level| level >= 2)
                || outing.open_alert_is_panic_or_duress;
            if escalated {
                OutingVisibility::Full
            } else {
                OutingVisibility::Planned
            }
        }
        // Admins run the platform, not the canvass: they see no one's whereabouts.
        _ => OutingVisibility::None,
    }
}

/// Whether reading this outing's location must be written to the audit log: organisers and
/// police reading someone else's location.
pub fn location_read_is_audited(viewer: &Viewer<'_>, outing: &OutingFacts<'_>) -> bool {
    matches!(viewer.role, Role::Organiser | Role::Police)
        && viewer.id != outing.canvasser
        && outing_visibility(viewer, outing).sees_location()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(
        canvasser: UserId,
        org: OrgId,
        companions: &'a [UserId],
        level: Option<u8>,
        panic: bool,
    ) -> OutingFacts<'a> {
        OutingFacts {
            canvasser,
            org_id: org,
            companions,
            open_alert_level: level,
            open_alert_is_panic_or_duress: panic,
        }
    }

    #[test]
    fn the_matrix() {
        let org = OrgId::new();
        let other_org = OrgId::new();
        let canvasser = UserId::new();
        let companion = UserId::new();
        let companions = [companion];
        let assigned = [org];
        let none: [OrgId; 0] = [];
        let viewer = |id, role, org_id, police_orgs| Viewer {
            id,
            role,
            org_id,
            police_orgs,
        };
        let quiet = facts(canvasser, org, &companions, None, false);
        let level1 = facts(canvasser, org, &companions, Some(1), false);
        let level2 = facts(canvasser, org, &companions, Some(2), false);
        let panic = facts(canvasser, org, &companions, Some(2), true);
        use OutingVisibility::{Full, Planned};
        let hidden = OutingVisibility::None;
        let cases = [
            (
                viewer(canvasser, Role::Canvasser, Some(org), &none[..]),
                &quiet,
                Full,
            ),
            (
                viewer(companion, Role::Canvasser, Some(org), &none[..]),
                &quiet,
                Full,
            ),
            (
                viewer(UserId::new(), Role::Canvasser, Some(org), &none[..]),
                &quiet,
                hidden,
            ),
            (
                viewer(UserId::new(), Role::Organiser, Some(org), &none[..]),
                &quiet,
                Full,
            ),
            (
                viewer(UserId::new(), Role::Organiser, Some(other_org), &none[..]),
                &level2,
                hidden,
            ),
            (
                viewer(UserId::new(), Role::Police, None, &assigned[..]),
                &quiet,
                Planned,
            ),
            (
                viewer(UserId::new(), Role::Police, None, &assigned[..]),
                &level1,
                Planned,
            ),
            (
                viewer(UserId::new(), Role::Police, None, &assigned[..]),
                &level2,
                Full,
            ),
            (
                viewer(UserId::new(), Role::Police, None, &assigned[..]),
                &panic,
                Full,
            ),
            (
                viewer(UserId::new(), Role::Police, None, &none[..]),
                &panic,
                hidden,
            ),
            (
                viewer(UserId::new(), Role::Admin, None, &none[..]),
                &panic,
                hidden,
            ),
        ];
        for (i, (v, f, expected)) in cases.iter().enumerate() {
            assert_eq!(outing_visibility(v, f), *expected, "case {i}");
        }
    }

    #[test]
    fn audit_only_for_organisers_and_police_reading_locations() {
        let org = OrgId::new();
        let canvasser = UserId::new();
        let none: [OrgId; 0] = [];
        let assigned = [org];
        let quiet = facts(canvasser, org, &[], None, false);
        let level2 = facts(canvasser, org, &[], Some(2), false);
        let organiser = Viewer {
            id: UserId::new(),
            role: Role::Organiser,
            org_id: Some(org),
            police_orgs: &none,
        };
        let police = Viewer {
            id: UserId::new(),
            role: Role::Police,
            org_id: None,
            police_orgs: &assigned,
        };
        let own = Viewer {
            id: canvasser,
            role: Role::Canvasser,
            org_id: Some(org),
            police_orgs: &none,
        };
        assert!(location_read_is_audited(&organiser, &quiet));
        assert!(
            !location_read_is_audited(&police, &quiet),
            "planned view shows no location"
        );
        assert!(location_read_is_audited(&police, &level2));
        assert!(!location_read_is_audited(&own, &quiet));
    }
}
