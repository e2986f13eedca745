//! The escalation policy of an organisation (defaults from the server's `escalation.*`).

use serde::{Deserialize, Serialize};

use super::field_error::{FieldError, FieldErrors};

/// Upper bound for every policy duration: a week. Longer values are almost certainly typos and
/// would make an alert effectively silent.
pub const MAX_POLICY_DURATION_S: i64 = 7 * 24 * 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EscalationPolicy {
    /// Push a reminder to the canvasser this long before a check-in is due (0 = none).
    pub reminder_before_s: i64,
    /// A check-in is missed when `due + grace` passes with no check-in.
    pub grace_s: i64,
    /// An unacknowledged level-1 alert goes to level 2 (police) after this.
    pub police_after_s: i64,
    /// While an alert is open and unacknowledged, re-push its recipients this often (0 = never).
    pub repeat_s: i64,
    /// An acknowledged alert still unresolved after this re-opens one level up.
    pub ack_timeout_s: i64,
    /// If set, an outing with no companions may not ask for a longer check-in interval.
    #[serde(default)]
    pub solo_max_checkin_interval_s: Option<i64>,
    /// An "are you OK?" welfare check unanswered this long opens a missed check-in alert.
    #[serde(default = "default_welfare_reply_s")]
    pub welfare_reply_s: i64,
    /// A level-2 (or panic/duress) step still unacknowledged this long later calls the
    /// recipients who asked for voice calls.
    #[serde(default = "default_voice_after_s")]
    pub voice_after_s: i64,
}

pub const DEFAULT_VOICE_AFTER_S: i64 = 60;

fn default_voice_after_s() -> i64 {
    DEFAULT_VOICE_AFTER_S
}

pub const DEFAULT_WELFARE_REPLY_S: i64 = 120;

fn default_welfare_reply_s() -> i64 {
    DEFAULT_WELFARE_REPLY_S
}

impl Default for EscalationPolicy {
    fn default() -> Self {
        Self {
            reminder_before_s: 120,
            grace_s: 300,
            police_after_s: 600,
            repeat_s: 300,
            ack_timeout_s: 900,
            solo_max_checkin_interval_s: None,
            welfare_reply_s: DEFAULT_WELFARE_REPLY_S,
            voice_after_s: DEFAULT_VOICE_AFTER_S,
        }
    }
}

impl EscalationPolicy {
    /// Checks the rules of escalation.md: every duration ≥ `min_interval_s`, except
    /// `reminder_before_s` and `grace_s` (≥ 0) and `repeat_s` (0 or ≥ the minimum).
    pub fn validate(&self, min_interval_s: i64) -> Result<(), Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        let mut check = |field: &str, value: i64, min: i64, zero_ok: bool| {
            if value > MAX_POLICY_DURATION_S {
                errors.push(field, format!("must be at most {MAX_POLICY_DURATION_S} s"));
            } else if value < 0 {
                errors.push(field, "must not be negative");
            } else if value < min && !(zero_ok && value == 0) {
                let zero = if zero_ok { " (or 0)" } else { "" };
                errors.push(field, format!("must be at least {min} s{zero}"));
            }
        };
        check("reminder_before_s", self.reminder_before_s, 0, true);
        check("grace_s", self.grace_s, 0, true);
        check("police_after_s", self.police_after_s, min_interval_s, false);
        check("repeat_s", self.repeat_s, min_interval_s, true);
        check("ack_timeout_s", self.ack_timeout_s, min_interval_s, false);
        check(
            "welfare_reply_s",
            self.welfare_reply_s,
            min_interval_s,
            false,
        );
        check("voice_after_s", self.voice_after_s, 0, true);
        if let Some(solo) = self.solo_max_checkin_interval_s {
            check("solo_max_checkin_interval_s", solo, min_interval_s, false);
        }
        errors.finish(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        assert!(EscalationPolicy::default().validate(60).is_ok());
    }

    #[test]
    fn zero_allowed_where_the_spec_allows_it() {
        let p = EscalationPolicy {
            reminder_before_s: 0,
            grace_s: 0,
            repeat_s: 0,
            ..EscalationPolicy::default()
        };
        assert!(p.validate(60).is_ok());
    }

    #[test]
    fn each_rule_names_its_field() {
        let p = EscalationPolicy {
            reminder_before_s: -1,
            grace_s: MAX_POLICY_DURATION_S + 1,
            police_after_s: 59,
            repeat_s: 30,
            ack_timeout_s: 0,
            solo_max_checkin_interval_s: Some(10),
            welfare_reply_s: 59,
            voice_after_s: -1,
        };
        let errors = p.validate(60).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "reminder_before_s",
                "grace_s",
                "police_after_s",
                "repeat_s",
                "ack_timeout_s",
                "welfare_reply_s",
                "voice_after_s",
                "solo_max_checkin_interval_s"
            ]
        );
    }
}
