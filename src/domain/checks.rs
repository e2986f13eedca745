//! One-off deadlines beside the regular check-in interval: "check on me in 10 minutes", which
//! the canvasser sets before going into a house, and "are you OK?", which an organiser or the
//! police ask. Each is a deadline of its own (the earliest pending one rules, see
//! `deadline::earliest_due`); missing it opens a missed check-in alert whose `reason` says
//! which, and a check-in clears both.

use chrono::{DateTime, TimeDelta, Utc};

use super::field_error::FieldErrors;

/// The longest "check on me": beyond an hour the regular interval is the tool.
pub const CHECK_ON_ME_MAX_S: i64 = 3600;
/// A check-on-me shorter than this gets no reminder: the canvasser has only just set it.
pub const NO_REMINDER_UNDER_S: i64 = 180;
pub const MAX_NOTE_CHARS: usize = 500;

/// A validated "check on me".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOnMe {
    pub in_s: i64,
    pub note: Option<String>,
}

/// Checks `in_s` (from the server's minimum interval to an hour) and the note.
pub fn parse_check_on_me(
    in_s: i64,
    note: Option<String>,
    min_s: i64,
) -> Result<CheckOnMe, Vec<super::field_error::FieldError>> {
    let mut errors = FieldErrors::new();
    if !(min_s..=CHECK_ON_ME_MAX_S).contains(&in_s) {
        errors.push(
            "in_s",
            format!("must be between {min_s} and {CHECK_ON_ME_MAX_S} seconds"),
        );
    }
    let note = parse_note(note, &mut errors);
    errors.finish(CheckOnMe { in_s, note })
}

/// A note (trimmed; empty is none) of at most [`MAX_NOTE_CHARS`].
pub fn parse_note(note: Option<String>, errors: &mut FieldErrors) -> Option<String> {
    let note = note.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    if note
        .as_ref()
        .is_some_and(|n| n.chars().count() > MAX_NOTE_CHARS)
    {
        errors.push(
            "note",
            format!("must be at most {MAX_NOTE_CHARS} characters"),
        );
    }
    note
}

/// Whether a reminder should precede this check-on-me's deadline.
pub fn reminds(check: &CheckOnMe) -> bool {
    check.in_s >= NO_REMINDER_UNDER_S
}

/// `now + seconds`, saturating.
pub fn due_in(now: DateTime<Utc>, seconds: i64) -> DateTime<Utc> {
    TimeDelta::try_seconds(seconds)
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Which pending deadline a missed check-in at `due` was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    /// The regular interval (or the planned end).
    Regular,
    CheckOnMe,
    Welfare,
}

/// The deadline that `due` is: a check-on-me first (the canvasser's own words), then a
/// welfare check, else the regular one.
pub fn which_missed(
    due: DateTime<Utc>,
    check_on_me_due: Option<DateTime<Utc>>,
    welfare_due: Option<DateTime<Utc>>,
) -> Missed {
    if check_on_me_due.is_some_and(|d| d <= due) {
        Missed::CheckOnMe
    } else if welfare_due.is_some_and(|d| d <= due) {
        Missed::Welfare
    } else {
        Missed::Regular
    }
}

/// The alert's `reason` for a missed deadline: the check-on-me's note (or what was asked,
/// when there is none), or that an "are you OK?" went unanswered.
pub fn reason(missed: Missed, note: Option<&str>) -> Option<String> {
    match (missed, note) {
        (Missed::Regular, _) => None,
        (Missed::CheckOnMe, Some(note)) => Some(note.to_owned()),
        (Missed::CheckOnMe, None) => Some("Asked to be checked on; no word since.".to_owned()),
        (Missed::Welfare, Some(note)) => Some(format!("\"Are you OK?\" not answered: {note}")),
        (Missed::Welfare, None) => Some("\"Are you OK?\" not answered.".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 12, 18, m, 0).unwrap()
    }

    #[test]
    fn a_check_on_me_is_from_the_minimum_to_an_hour_with_a_short_note() {
        assert_eq!(
            parse_check_on_me(600, Some("  number 14 ".into()), 60).unwrap(),
            CheckOnMe {
                in_s: 600,
                note: Some("number 14".into())
            }
        );
        assert_eq!(
            parse_check_on_me(60, Some(" ".into()), 60).unwrap().note,
            None
        );
        for bad in [59, 3601, -1, 0] {
            let errors = parse_check_on_me(bad, None, 60).unwrap_err();
            assert_eq!(errors[0].field, "in_s", "{bad}");
        }
        let errors = parse_check_on_me(600, Some("x".repeat(501)), 60).unwrap_err();
        assert_eq!(errors[0].field, "note");
        assert!(parse_check_on_me(600, Some("é".repeat(500)), 60).is_ok());
    }

    #[test]
    fn only_a_check_on_me_of_three_minutes_or_more_is_reminded() {
        assert!(!reminds(&parse_check_on_me(179, None, 60).unwrap()));
        assert!(reminds(&parse_check_on_me(180, None, 60).unwrap()));
    }

    #[test]
    fn the_missed_deadline_is_named_and_explained() {
        assert_eq!(which_missed(at(10), None, None), Missed::Regular);
        assert_eq!(which_missed(at(10), Some(at(10)), None), Missed::CheckOnMe);
        assert_eq!(
            which_missed(at(10), Some(at(20)), Some(at(10))),
            Missed::Welfare
        );
        assert_eq!(
            which_missed(at(10), Some(at(5)), Some(at(5))),
            Missed::CheckOnMe
        );
        assert_eq!(
            which_missed(at(10), Some(at(20)), Some(at(30))),
            Missed::Regular
        );
        assert_eq!(reason(Missed::Regular, Some("x")), None);
        assert_eq!(
            reason(Missed::CheckOnMe, Some("going into number 14")).as_deref(),
            Some("going into number 14")
        );
        assert!(reason(Missed::Welfare, None)
            .unwrap()
            .contains("Are you OK?"));
    }

    #[test]
    fn due_in_saturates() {
        assert_eq!(due_in(at(0), 600), at(10));
        assert_eq!(
            due_in(DateTime::<Utc>::MAX_UTC, 600),
            DateTime::<Utc>::MAX_UTC
        );
    }
}
