//! The wrong-PIN lockout: five wrong PINs in a row on one outing lock its PIN prompts for
//! fifteen minutes and tell the organisers (a silent `wrong_pins` alert).
//!
//! An attempt is counted *before* its PIN is checked ([`reserve`]) and settled after
//! ([`settle`]), so that concurrent guesses cannot all be checked: the sixth concurrent
//! guess is refused without being hashed. A right PIN (safe or duress) ends the run.

use super::checkin::PinCheck;
use super::time::{add_secs, Instant};

/// Wrong PINs in a row that lock the prompt.
pub const MAX_WRONG_PINS: u32 = 5;
/// How long the prompt stays locked.
pub const LOCKOUT_S: i64 = 15 * 60;

/// The stored counter of one scope (an outing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PinAttempts {
    /// Attempts counted and not yet proved right, in a row.
    pub failures: u32,
    pub locked_until: Option<Instant>,
}

/// Whether a presented PIN may be checked now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Check it; this is attempt number `attempt` of the run.
    Check { attempt: u32 },
    /// Locked: answer 429 until `until`. (The PIN is still compared, only so that a duress
    /// PIN typed during the lockout raises the alarm; the answer is 429 either way.)
    Locked { until: Instant },
}

impl Gate {
    /// Seconds until the prompt opens again (for `Retry-After`), at least 1.
    pub fn retry_after_s(self, now: Instant) -> Option<u64> {
        match self {
            Gate::Check { .. } => None,
            Gate::Locked { until } => {
                Some(u64::try_from((until - now).num_seconds().max(1)).unwrap_or(1))
            }
        }
    }
}

/// Counts an attempt before its PIN is checked. Returns the gate and the counter to store.
pub fn reserve(stored: Option<PinAttempts>, now: Instant) -> (Gate, PinAttempts) {
    let current = stored.unwrap_or_default();
    match current.locked_until {
        Some(until) if until > now => return (Gate::Locked { until }, current),
        // A lockout that has passed starts a new run.
        Some(_) => {
            let next = PinAttempts {
                failures: 1,
                locked_until: None,
            };
            return (Gate::Check { attempt: 1 }, next);
        }
        None => {}
    }
    if current.failures >= MAX_WRONG_PINS {
        // Five attempts are already being checked: anything more waits for the lockout they
        // may set (or for a right PIN among them to end the run).
        let until = add_secs(now, LOCKOUT_S);
        return (Gate::Locked { until }, current);
    }
    let next = PinAttempts {
        failures: current.failures + 1,
        locked_until: None,
    };
    (
        Gate::Check {
            attempt: next.failures,
        },
        next,
    )
}

/// What settling an attempt does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    /// The counter to store; `None` clears it.
    pub attempts: Option<PinAttempts>,
    /// This attempt completed a run of wrong PINs: lock, and tell the organisers.
    pub raise_wrong_pins: bool,
}

/// Settles an attempt once its PIN has been classified.
pub fn settle(stored: PinAttempts, gate: Gate, check: PinCheck, now: Instant) -> Settled {
    match (gate, check) {
        // Locked: nothing is counted, whatever was typed.
        (Gate::Locked { .. }, _) => Settled {
            attempts: Some(stored),
            raise_wrong_pins: false,
        },
        (Gate::Check { .. }, PinCheck::Safe | PinCheck::Duress) => Settled {
            attempts: None,
            raise_wrong_pins: false,
        },
        (Gate::Check { .. }, PinCheck::NotSet | PinCheck::Missing) => Settled {
            attempts: Some(PinAttempts {
                failures: stored.failures.saturating_sub(1),
                ..stored
            }),
            raise_wrong_pins: false,
        },
        (Gate::Check { attempt }, PinCheck::Wrong) if attempt >= MAX_WRONG_PINS => Settled {
            attempts: Some(PinAttempts {
                failures: stored.failures,
                locked_until: Some(add_secs(now, LOCKOUT_S)),
            }),
            raise_wrong_pins: stored.locked_until.is_none(),
        },
        (Gate::Check { .. }, PinCheck::Wrong) => Settled {
            attempts: Some(stored),
            raise_wrong_pins: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn t(s: i64) -> Instant {
        add_secs(Utc.with_ymd_and_hms(2026, 6, 12, 18, 0, 0).unwrap(), s)
    }

    /// Runs one attempt through reserve and settle, as the service does.
    fn attempt(stored: Option<PinAttempts>, check: PinCheck, now: Instant) -> (Gate, Settled) {
        let (gate, reserved) = reserve(stored, now);
        (gate, settle(reserved, gate, check, now))
    }

    #[test]
    fn five_wrong_in_a_row_lock_for_fifteen_minutes_and_raise_once() {
        let mut stored = None;
        for n in 1..=4 {
            let (gate, s) = attempt(stored, PinCheck::Wrong, t(n));
            assert_eq!(gate, Gate::Check { attempt: n as u32 });
            assert!(!s.raise_wrong_pins);
            stored = s.attempts;
        }
        let (gate, s) = attempt(stored, PinCheck::Wrong, t(5));
        assert_eq!(gate, Gate::Check { attempt: 5 });
        assert!(s.raise_wrong_pins, "the fifth wrong PIN raises");
        assert_eq!(s.attempts.unwrap().locked_until, Some(t(5 + LOCKOUT_S)));
        stored = s.attempts;
        // The sixth, even the right PIN, is refused while locked, and raises nothing more.
        for check in [PinCheck::Wrong, PinCheck::Safe, PinCheck::Duress] {
            let (gate, s) = attempt(stored, check, t(6));
            assert_eq!(
                gate,
                Gate::Locked {
                    until: t(5 + LOCKOUT_S)
                }
            );
            assert_eq!(gate.retry_after_s(t(6)), Some(LOCKOUT_S as u64 - 1));
            assert!(!s.raise_wrong_pins);
            assert_eq!(s.attempts, stored);
        }
        // After the lockout a new run starts.
        let (gate, s) = attempt(stored, PinCheck::Wrong, t(5 + LOCKOUT_S));
        assert_eq!(gate, Gate::Check { attempt: 1 });
        assert_eq!(s.attempts.unwrap().failures, 1);
    }

    #[test]
    fn a_right_pin_ends_the_run() {
        let mut stored = None;
        for n in 1..=4 {
            stored = attempt(stored, PinCheck::Wrong, t(n)).1.attempts;
        }
        for right in [PinCheck::Safe, PinCheck::Duress] {
            let (_, s) = attempt(stored, right, t(10));
            assert_eq!(s.attempts, None, "{right:?}");
        }
        let (_, s) = attempt(None, PinCheck::Wrong, t(11));
        assert_eq!(s.attempts.unwrap().failures, 1);
    }

    #[test]
    fn concurrent_guesses_beyond_five_are_not_checked() {
        // Ten reservations before any settles: only five may be checked.
        let mut stored = None;
        let mut gates = Vec::new();
        for _ in 0..10 {
            let (gate, reserved) = reserve(stored, t(0));
            gates.push(gate);
            stored = Some(reserved);
        }
        let checked = gates
            .iter()
            .filter(|g| matches!(g, Gate::Check { .. }))
            .count();
        assert_eq!(checked, 5);
        // Whichever of them settles fifth-numbered raises the alert.
        let s = settle(
            stored.unwrap(),
            Gate::Check { attempt: 5 },
            PinCheck::Wrong,
            t(1),
        );
        assert!(s.raise_wrong_pins);
    }

    #[test]
    fn an_attempt_that_was_not_a_pin_is_not_counted() {
        let (_, s) = attempt(None, PinCheck::Missing, t(0));
        assert_eq!(s.attempts.unwrap().failures, 0);
    }
}
