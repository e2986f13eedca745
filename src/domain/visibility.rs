//! Who may see what of an outing. Pure: the caller gathers the facts, this decides.

use super::account::Role;
use super::escalation::AlertKind;
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

/// The facts about an alert that decide who sees it and who may act on it.
#[derive(Debug, Clone)]
pub struct AlertFacts<'a> {
    pub canvasser: UserId,
    pub org_id: OrgId,
    pub companions: &'a [UserId],
    pub level: u8,
    pub kind: AlertKind,
}

/// The one rule of secrecy under duress: the person an alert is about (the outing's owner,
/// whatever their role) never learns of an alert of a kind hidden from them (duress, wrong
/// PINs). Every path that lists, pages, counts, streams, audits or messages alerts asks this.
pub fn hidden_from(viewer: UserId, canvasser: UserId, kind: AlertKind) -> bool {
    viewer == canvasser && kind.hidden_from_owner()
}

/// Organisers see their organisation's alerts; police those of assigned organisations at
/// level 2 or of kind panic/duress; the canvasser their own except those hidden from them
/// ([`hidden_from`]); companions theirs.
pub fn alert_visible(viewer: &Viewer<'_>, alert: &AlertFacts<'_>) -> bool {
    if hidden_from(viewer.id, alert.canvasser, alert.kind) {
        return false;
    }
    if viewer.id == alert.canvasser || alert.companions.contains(&viewer.id) {
        return true;
    }
    match viewer.role {
        Role::Organiser => viewer.org_id == Some(alert.org_id),
        Role::Police => {
            viewer.police_orgs.contains(&alert.org_id)
                && (alert.level >= 2 || matches!(alert.kind, AlertKind::Panic | AlertKind::Duress))
        }
        _ => false,
    }
}

/// Who sees an alert's whole delivery record (who else was told, by what, when): the
/// contacts who handle alerts. Anyone else told of it (the canvasser, a companion) sees only
/// their own rows: who else was alerted is not theirs to know.
pub fn sees_every_delivery(role: Role) -> bool {
    matches!(role, Role::Organiser | Role::Police)
}

/// Acknowledging and resolving are for the contacts who see the alert: organisers and police.
/// Never the canvasser (only a check-in or the safe PIN clears their own alert).
pub fn may_handle_alert(viewer: &Viewer<'_>, alert: &AlertFacts<'_>) -> bool {
    viewer.id != alert.canvasser
        && matches!(viewer.role, Role::Organiser | Role::Police)
        && alert_visible(viewer, alert)
}

#[cfg(test)]
mod alert_tests {
    use super::*;

    #[test]
    fn alert_matrix() {
        let org = OrgId::new();
        let canvasser = UserId::new();
        let companion = UserId::new();
        let companions = [companion];
        let assigned = [org];
        let none: [OrgId; 0] = [];
        let facts = |level, panic: bool, duress: bool| AlertFacts {
            canvasser,
            org_id: org,
            companions: &companions,
            level,
            kind: match (panic, duress) {
                (_, true) => AlertKind::Duress,
                (true, false) => AlertKind::Panic,
                _ => AlertKind::MissedCheckin,
            },
        };
        let own = Viewer {
            id: canvasser,
            role: Role::Canvasser,
            org_id: Some(org),
            police_orgs: &none,
        };
        let mate = Viewer {
            id: companion,
            role: Role::Canvasser,
            org_id: Some(org),
            police_orgs: &none,
        };
        let organiser = Viewer {
            id: UserId::new(),
            role: Role::Organiser,
            org_id: Some(org),
            police_orgs: &none,
        };
        let stranger = Viewer {
            id: UserId::new(),
            role: Role::Organiser,
            org_id: Some(OrgId::new()),
            police_orgs: &none,
        };
        let police = Viewer {
            id: UserId::new(),
            role: Role::Police,
            org_id: None,
            police_orgs: &assigned,
        };
        let admin = Viewer {
            id: UserId::new(),
            role: Role::Admin,
            org_id: None,
            police_orgs: &none,
        };

        assert!(alert_visible(&own, &facts(1, false, false)));
        assert!(
            !alert_visible(&own, &facts(2, true, true)),
            "duress is hidden from the canvasser"
        );
        assert!(alert_visible(&mate, &facts(2, true, true)));
        assert!(alert_visible(&organiser, &facts(1, false, false)));
        assert!(!alert_visible(&stranger, &facts(2, true, false)));
        assert!(!alert_visible(&police, &facts(1, false, false)));
        assert!(alert_visible(&police, &facts(2, false, false)));
        assert!(!alert_visible(&admin, &facts(2, true, false)));

        assert!(!may_handle_alert(&own, &facts(1, false, false)));
        assert!(!may_handle_alert(&mate, &facts(1, false, false)));
        assert!(may_handle_alert(&organiser, &facts(1, false, false)));
        assert!(may_handle_alert(&police, &facts(2, false, false)));
        assert!(!may_handle_alert(&police, &facts(1, false, false)));
    }

    #[test]
    fn hidden_kinds_are_hidden_from_the_owner_whatever_their_role() {
        let org = OrgId::new();
        let owner = UserId::new();
        let none: [OrgId; 0] = [];
        let other_organiser = Viewer {
            id: UserId::new(),
            role: Role::Organiser,
            org_id: Some(org),
            police_orgs: &none,
        };
        for role in [Role::Canvasser, Role::Organiser] {
            let me = Viewer {
                id: owner,
                role,
                org_id: Some(org),
                police_orgs: &none,
            };
            for kind in AlertKind::ALL {
                for level in [1, 2] {
                    let facts = AlertFacts {
                        canvasser: owner,
                        org_id: org,
                        companions: &[],
                        level,
                        kind,
                    };
                    assert_eq!(
                        alert_visible(&me, &facts),
                        !kind.hidden_from_owner(),
                        "{role:?} {kind:?} {level}"
                    );
                    assert!(!may_handle_alert(&me, &facts));
                    assert!(alert_visible(&other_organiser, &facts), "{kind:?}");
                }
            }
        }
        assert!(hidden_from(owner, owner, AlertKind::WrongPins));
        assert!(!hidden_from(UserId::new(), owner, AlertKind::Duress));
        assert!(!hidden_from(owner, owner, AlertKind::Panic));
    }

    #[test]
    fn only_contacts_see_every_delivery() {
        assert!(sees_every_delivery(Role::Organiser));
        assert!(sees_every_delivery(Role::Police));
        assert!(!sees_every_delivery(Role::Canvasser));
        assert!(!sees_every_delivery(Role::Admin));
    }

    #[test]
    fn police_see_wrong_pins_only_once_escalated() {
        let org = OrgId::new();
        let assigned = [org];
        let police = Viewer {
            id: UserId::new(),
            role: Role::Police,
            org_id: None,
            police_orgs: &assigned,
        };
        let facts = |level| AlertFacts {
            canvasser: UserId::new(),
            org_id: org,
            companions: &[],
            level,
            kind: AlertKind::WrongPins,
        };
        assert!(!alert_visible(&police, &facts(1)));
        assert!(alert_visible(&police, &facts(2)));
    }
}
