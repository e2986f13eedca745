//! PIN prompts under the wrong-PIN lockout ([`crate::domain::pins`]): every prompt that takes
//! a PIN (end, check-in, PIN change) counts the attempt before the PIN is hashed and settles
//! it after, each in its own short transaction with the outing row locked.

use crate::domain::checkin::PinCheck;
use crate::domain::delivery::MessageType;
use crate::domain::escalation::{AlertKind, OutingStatus};
use crate::domain::ids::{OutingId, UserId};
use crate::domain::pins::{self, Gate, PinAttempts};
use crate::domain::policy::EscalationPolicy;
use crate::domain::time::{from_millis, to_millis};
use crate::error::AppError;
use crate::service::alerts;
use crate::service::facts::org_policy;
use crate::service::facts::{self, Raised};
use crate::service::notify::{self, Lookups};
use crate::store::{self, DbConn};

/// Where the counter of a prompt lives: the outing the PIN is typed on (the user's open one
/// for a PIN change), or the user when they have no open outing.
#[derive(Debug, Clone)]
pub struct Scope {
    key: String,
    outing: Option<OutingId>,
}

impl Scope {
    /// The scope of a prompt on `outing` by `user`: the outing if it is theirs and not ended
    /// (otherwise the operation itself answers 404/403/409 and nothing is counted).
    pub fn resolve(
        conn: &mut DbConn,
        user: UserId,
        outing: Option<OutingId>,
    ) -> Result<Option<Scope>, AppError> {
        let outing = match outing {
            Some(id) => Some(id),
            None => store::outings::open_outing_of(conn, user)?
                .and_then(|id| id.parse::<OutingId>().ok()),
        };
        match outing {
            Some(id) => {
                let Some(row) = store::outings::find(conn, id)? else {
                    return Ok(None);
                };
                if row.canvasser_id != user || row.status == OutingStatus::Ended {
                    return Ok(None);
                }
                Ok(Some(Scope {
                    key: row.id.to_string(),
                    outing: Some(id),
                }))
            }
            None => Ok(Some(Scope {
                key: format!("user:{user}"),
                outing: None,
            })),
        }
    }
}

impl Scope {
    /// The outing of this scope, if it is one.
    pub fn outing(&self) -> Option<OutingId> {
        self.outing
    }
}

fn load(conn: &mut DbConn, scope: &Scope) -> Result<Option<PinAttempts>, AppError> {
    Ok(store::pins::find(conn, &scope.key)?.map(|row| PinAttempts {
        failures: u32::try_from(row.failures).unwrap_or(0),
        locked_until: row.locked_until.map(from_millis),
    }))
}

fn lock_outing(conn: &mut DbConn, scope: &Scope) -> Result<(), AppError> {
    if let Some(id) = scope.outing {
        store::outings::find_for_update(conn, id)?;
    }
    Ok(())
}

/// Counts an attempt on `scope` before its PIN is checked.
pub fn reserve(conn: &mut DbConn, scope: &Scope, now_ms: i64) -> Result<Gate, AppError> {
    lock_outing(conn, scope)?;
    let (gate, next) = pins::reserve(load(conn, scope)?, from_millis(now_ms));
    if matches!(gate, Gate::Check { .. }) {
        save(conn, scope, Some(next), now_ms)?;
    }
    Ok(gate)
}

fn save(
    conn: &mut DbConn,
    scope: &Scope,
    attempts: Option<PinAttempts>,
    now_ms: i64,
) -> Result<(), AppError> {
    match attempts {
        Some(a) => Ok(store::pins::save(
            conn,
            &scope.key,
            i32::try_from(a.failures).unwrap_or(i32::MAX),
            a.locked_until.map(to_millis),
            now_ms,
        )?),
        None => Ok(store::pins::clear(conn, &scope.key)?),
    }
}

/// What settling did that the background loops must hear of.
#[derive(Debug, Default, Clone, Copy)]
pub struct SettledChanges {
    pub alert_raised: bool,
}

/// Settles the attempt once the PIN is classified: a right PIN ends the run; the fifth wrong
/// one locks the prompt and raises `wrong_pins` (silently: never to the owner). A duress PIN
/// typed while the prompt is locked still raises duress, though the answer is 429.
pub fn settle(
    conn: &mut DbConn,
    scope: &Scope,
    gate: Gate,
    check: PinCheck,
    default_policy: &EscalationPolicy,
    now_ms: i64,
) -> Result<SettledChanges, AppError> {
    lock_outing(conn, scope)?;
    let stored = load(conn, scope)?.unwrap_or_default();
    let settled = pins::settle(stored, gate, check, from_millis(now_ms));
    if matches!(gate, Gate::Check { .. }) || settled.attempts != Some(stored) {
        save(conn, scope, settled.attempts, now_ms)?;
    }
    let mut changes = SettledChanges::default();
    let Some(outing_id) = scope.outing else {
        return Ok(changes);
    };
    let kind = match (gate, check) {
        _ if settled.raise_wrong_pins => AlertKind::WrongPins,
        (Gate::Locked { .. }, PinCheck::Duress) => AlertKind::Duress,
        _ => return Ok(changes),
    };
    raise_on(conn, outing_id, kind, default_policy, now_ms)?;
    changes.alert_raised = true;
    Ok(changes)
}

/// Raises `kind` on the outing (if it is still running). A `wrong_pins` that finds another
/// alert open leaves it as it is and tells the organisers by a notice instead.
pub fn raise_on(
    conn: &mut DbConn,
    outing_id: OutingId,
    kind: AlertKind,
    default_policy: &EscalationPolicy,
    now_ms: i64,
) -> Result<(), AppError> {
    let Some(mut outing) = store::outings::find_for_update(conn, outing_id)? else {
        return Ok(());
    };
    if outing.status == OutingStatus::Ended {
        return Ok(());
    }
    let policy = org_policy(conn, outing.org_id, default_policy)?;
    let location = facts::last_location_of(conn, &outing)?;
    let raised = alerts::raise(
        conn,
        &mut Lookups::default(),
        &mut outing,
        kind,
        location,
        &policy,
        now_ms,
    )?;
    if matches!(raised, Raised::Unchanged(_)) && kind == AlertKind::WrongPins {
        notify::notice(conn, &outing, MessageType::WrongPins, now_ms)?;
    } else {
        notify::alert_raised(conn, &outing, &raised, now_ms)?;
    }
    outing.updated_at = now_ms;
    facts::reschedule(&mut outing, &policy)?;
    store::outings::update(conn, &outing)?;
    Ok(())
}
