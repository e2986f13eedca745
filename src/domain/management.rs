//! Who may manage whose account: list, edit a profile, reset a password, disable. Pure: the
//! caller gathers the facts, this decides.

use super::account::Role;
use super::ids::{OrgId, UserId};

/// One side of the question: a person, their role and organisation.
#[derive(Debug, Clone, Copy)]
pub struct Person {
    pub id: UserId,
    pub role: Role,
    pub org_id: Option<OrgId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Name, phone, language.
    Profile,
    /// Set a new password for someone else (a forgotten one).
    ResetPassword,
    /// Disable or enable.
    Disable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// They may see the account but not do this (403).
    Forbidden(&'static str),
    /// The account does not exist for them (404).
    Hidden,
}

/// Whether `actor` sees `target` at all: admins everyone; organisers their organisation's
/// members; everyone themselves.
pub fn sees_account(actor: &Person, target: &Person) -> bool {
    actor.id == target.id
        || actor.role == Role::Admin
        || (actor.role == Role::Organiser
            && actor.org_id.is_some()
            && actor.org_id == target.org_id)
}

/// Admins manage anyone but cannot disable themselves (nobody would be left to undo it);
/// organisers manage their organisation's canvassers and organisers, but reset passwords of
/// canvassers only (an organiser's account can see locations: an admin resets it); everyone
/// edits their own profile and changes their own password through `/me/password`.
pub fn may_change(actor: &Person, target: &Person, change: Change) -> Decision {
    if !sees_account(actor, target) {
        return Decision::Hidden;
    }
    if actor.id == target.id {
        return match change {
            Change::Profile => Decision::Allowed,
            Change::ResetPassword => {
                Decision::Forbidden("change your own password with POST /me/password")
            }
            Change::Disable => Decision::Forbidden("you cannot disable your own account"),
        };
    }
    match (actor.role, change) {
        (Role::Admin, _) => Decision::Allowed,
        (Role::Organiser, Change::ResetPassword) if target.role != Role::Canvasser => {
            Decision::Forbidden("an organiser's password is reset by an administrator")
        }
        (Role::Organiser, _) => Decision::Allowed,
        _ => Decision::Hidden,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(role: Role, org: Option<OrgId>) -> Person {
        Person {
            id: UserId::new(),
            role,
            org_id: org,
        }
    }

    #[test]
    fn the_matrix() {
        let org = Some(OrgId::new());
        let other = Some(OrgId::new());
        let admin = person(Role::Admin, None);
        let organiser = person(Role::Organiser, org);
        let fellow = person(Role::Organiser, org);
        let canvasser = person(Role::Canvasser, org);
        let stranger = person(Role::Canvasser, other);
        let police = person(Role::Police, None);
        use Change::*;
        use Decision::*;
        for change in [Profile, ResetPassword, Disable] {
            assert_eq!(may_change(&admin, &canvasser, change), Allowed);
            assert_eq!(may_change(&admin, &organiser, change), Allowed);
            assert_eq!(may_change(&admin, &police, change), Allowed);
            assert_eq!(may_change(&organiser, &canvasser, change), Allowed);
            assert_eq!(may_change(&organiser, &stranger, change), Hidden);
            assert_eq!(may_change(&organiser, &police, change), Hidden);
            assert_eq!(may_change(&canvasser, &organiser, change), Hidden);
            assert_eq!(may_change(&police, &canvasser, change), Hidden);
        }
        assert_eq!(may_change(&organiser, &fellow, Profile), Allowed);
        assert_eq!(may_change(&organiser, &fellow, Disable), Allowed);
        assert!(matches!(
            may_change(&organiser, &fellow, ResetPassword),
            Forbidden(_)
        ));
        assert_eq!(may_change(&canvasser, &canvasser, Profile), Allowed);
        assert!(matches!(
            may_change(&canvasser, &canvasser, ResetPassword),
            Forbidden(_)
        ));
        assert!(matches!(may_change(&admin, &admin, Disable), Forbidden(_)));
        assert!(matches!(
            may_change(&organiser, &organiser, Disable),
            Forbidden(_)
        ));
    }

    #[test]
    fn organisers_without_an_organisation_see_no_one() {
        let lost = person(Role::Organiser, None);
        let also_lost = person(Role::Canvasser, None);
        assert!(!sees_account(&lost, &also_lost));
    }
}
