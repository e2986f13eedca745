//! When the next check-in of an outing is due.
//!
//! The rule: `due = min(last receipt + interval, planned end)`, where "last receipt" is when
//! the *server* received the latest check-in (or the outing's start before any).
//!
//! Why receipt time and never the phone's `recorded_at`: the phone's clock may be wrong, and a
//! check-in queued offline says the canvasser was fine *then*, not that anyone has heard from
//! them since. An offline batch therefore resets the deadline from the moment the batch
//! arrived, exactly like one live check-in arriving then. (Which check-in is *shown* as the
//! latest is a different question, answered by recorded time: see
//! `crate::domain::checkin::DisplayOrder`.)
//!
//! A check-in never moves the deadline earlier ([`deadline_after_checkin`]): with a fixed
//! interval and plan that follows from the rule, since a later receipt cannot give an
//! earlier minimum, and the function also enforces it for check-ins processed out of order
//! (two concurrent requests committing in the opposite order of their receipt).
//!
//! All arithmetic saturates at chrono's representable range: nothing here panics.

use chrono::{DateTime, TimeDelta, Utc};

/// `min(last_received_at + interval_s, planned_end_at)`.
///
/// A negative `interval_s` counts as 0 (due at once): a deadline before the check-in that
/// set it means nothing. Validated intervals are never negative (see
/// `crate::domain::checkin::CheckinInterval`).
pub fn next_checkin_due_at(
    last_received_at: DateTime<Utc>,
    interval_s: i64,
    planned_end_at: Option<DateTime<Utc>>,
) -> DateTime<Utc> {
    let due = TimeDelta::try_seconds(interval_s.max(0))
        .and_then(|interval| last_received_at.checked_add_signed(interval))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    match planned_end_at {
        Some(end) => due.min(end),
        None => due,
    }
}

/// The deadline after a check-in (live, or an offline batch) received at `received_at`.
///
/// `min(max(current_due, received_at + interval_s), planned_end_at)`: the deadline never
/// moves earlier than `current_due`, except that it is always capped by the planned end. The
/// cap only bites when `current_due` is already past the planned end, i.e. the plan was
/// shortened after `current_due` was set; when the plan or the interval changes, recompute
/// with [`next_checkin_due_at`] instead of waiting for a check-in.
pub fn deadline_after_checkin(
    current_due: DateTime<Utc>,
    received_at: DateTime<Utc>,
    interval_s: i64,
    planned_end_at: Option<DateTime<Utc>>,
) -> DateTime<Utc> {
    let candidate = next_checkin_due_at(received_at, interval_s, None).max(current_due);
    match planned_end_at {
        Some(end) => candidate.min(end),
        None => candidate,
    }
}

/// The deadline that rules: the earliest of the regular one and every pending one-off
/// deadline (a check-on-me, an "are you OK?" welfare check).
pub fn earliest_due(
    regular: DateTime<Utc>,
    pending: impl IntoIterator<Item = Option<DateTime<Utc>>>,
) -> DateTime<Utc> {
    pending.into_iter().flatten().fold(regular, DateTime::min)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 6, 1, h, m, s).unwrap()
    }

    #[test]
    fn the_earliest_pending_deadline_rules() {
        let regular = at(10, 15, 0);
        assert_eq!(earliest_due(regular, [None, None]), regular);
        assert_eq!(
            earliest_due(regular, [Some(at(10, 5, 0)), None]),
            at(10, 5, 0)
        );
        assert_eq!(
            earliest_due(regular, [Some(at(10, 12, 0)), Some(at(10, 7, 0))]),
            at(10, 7, 0)
        );
        assert_eq!(earliest_due(regular, [Some(at(10, 30, 0))]), regular);
    }

    #[test]
    fn due_is_receipt_plus_interval() {
        assert_eq!(next_checkin_due_at(at(10, 0, 0), 900, None), at(10, 15, 0));
    }

    #[test]
    fn due_is_capped_by_planned_end() {
        assert_eq!(
            next_checkin_due_at(at(10, 0, 0), 900, Some(at(10, 10, 0))),
            at(10, 10, 0)
        );
        assert_eq!(
            next_checkin_due_at(at(10, 0, 0), 900, Some(at(11, 0, 0))),
            at(10, 15, 0)
        );
    }

    #[test]
    fn planned_end_in_the_past_makes_it_due_at_the_end() {
        assert_eq!(
            next_checkin_due_at(at(10, 0, 0), 900, Some(at(9, 0, 0))),
            at(9, 0, 0)
        );
    }

    #[test]
    fn negative_interval_counts_as_zero() {
        assert_eq!(next_checkin_due_at(at(10, 0, 0), -5, None), at(10, 0, 0));
        assert_eq!(
            next_checkin_due_at(at(10, 0, 0), i64::MIN, None),
            at(10, 0, 0)
        );
    }

    #[test]
    fn saturates_instead_of_overflowing() {
        let max = DateTime::<Utc>::MAX_UTC;
        assert_eq!(next_checkin_due_at(max, 60, None), max);
        assert_eq!(next_checkin_due_at(at(10, 0, 0), i64::MAX, None), max);
        assert_eq!(
            next_checkin_due_at(at(10, 0, 0), i64::MAX, Some(at(12, 0, 0))),
            at(12, 0, 0)
        );
        assert_eq!(deadline_after_checkin(max, max, i64::MAX, None), max);
    }

    #[test]
    fn checkin_resets_from_receipt() {
        // Due at 10:15; a check-in at 10:05 moves it to 10:20.
        assert_eq!(
            deadline_after_checkin(at(10, 15, 0), at(10, 5, 0), 900, None),
            at(10, 20, 0)
        );
    }

    #[test]
    fn overdue_checkin_resets_from_receipt() {
        assert_eq!(
            deadline_after_checkin(at(10, 15, 0), at(10, 40, 0), 900, None),
            at(10, 55, 0)
        );
    }

    #[test]
    fn offline_batch_counts_from_receipt_not_recorded_time() {
        // Items recorded at 09:00-09:30 on a phone without signal arrive together at 10:30.
        // Nothing about the recorded times enters the computation: the deadline runs from
        // 10:30, the moment we last heard from the canvasser.
        let batch_received = at(10, 30, 0);
        assert_eq!(
            deadline_after_checkin(at(9, 15, 0), batch_received, 900, None),
            at(10, 45, 0)
        );
    }

    #[test]
    fn late_processed_checkin_does_not_move_deadline_earlier() {
        // A live check-in received at 10:07 set the due to 10:22; a batch received at 10:06
        // but committed afterwards must not pull it back to 10:21.
        let current = deadline_after_checkin(at(10, 15, 0), at(10, 7, 0), 900, None);
        assert_eq!(current, at(10, 22, 0));
        assert_eq!(
            deadline_after_checkin(current, at(10, 6, 0), 900, None),
            at(10, 22, 0)
        );
    }

    #[test]
    fn checkin_near_the_end_is_capped_by_planned_end() {
        assert_eq!(
            deadline_after_checkin(at(11, 50, 0), at(11, 55, 0), 900, Some(at(12, 0, 0))),
            at(12, 0, 0)
        );
    }

    #[test]
    fn shortened_plan_caps_even_below_the_current_due() {
        // The plan was cut to 10:10 after the due was set to 10:15.
        assert_eq!(
            deadline_after_checkin(at(10, 15, 0), at(10, 5, 0), 900, Some(at(10, 10, 0))),
            at(10, 10, 0)
        );
    }

    fn instant() -> impl Strategy<Value = DateTime<Utc>> {
        // Around the present, ±100 years, at second precision.
        (-3_155_760_000i64..3_155_760_000).prop_map(|s| {
            DateTime::from_timestamp(1_750_000_000 + s, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
        })
    }

    fn any_instant() -> impl Strategy<Value = DateTime<Utc>> {
        prop_oneof![
            4 => instant(),
            1 => Just(DateTime::<Utc>::MAX_UTC),
            1 => Just(DateTime::<Utc>::MIN_UTC),
        ]
    }

    fn interval() -> impl Strategy<Value = i64> {
        prop_oneof![4 => 60i64..=86_400, 1 => any::<i64>()]
    }

    proptest! {
        #[test]
        fn never_panics(
            last in any_instant(),
            received in any_instant(),
            interval_s in any::<i64>(),
            end in proptest::option::of(any_instant()),
        ) {
            let due = next_checkin_due_at(last, interval_s, end);
            let _ = deadline_after_checkin(due, received, interval_s, end);
        }

        #[test]
        fn never_after_planned_end(
            last in any_instant(),
            received in any_instant(),
            interval_s in interval(),
            end in any_instant(),
        ) {
            let due = next_checkin_due_at(last, interval_s, Some(end));
            prop_assert!(due <= end);
            prop_assert!(deadline_after_checkin(due, received, interval_s, Some(end)) <= end);
        }

        #[test]
        fn never_before_the_checkin_that_set_it_unless_capped(
            last in any_instant(),
            interval_s in interval(),
            end in proptest::option::of(any_instant()),
        ) {
            let due = next_checkin_due_at(last, interval_s, end);
            prop_assert!(due >= last || end == Some(due));
        }

        /// The rule alone already has the property: a later receipt never gives an earlier
        /// deadline, with or without a planned end.
        #[test]
        fn later_receipt_never_gives_earlier_due(
            a in any_instant(),
            b in any_instant(),
            interval_s in interval(),
            end in proptest::option::of(any_instant()),
        ) {
            let (earlier, later) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(
                next_checkin_due_at(later, interval_s, end)
                    >= next_checkin_due_at(earlier, interval_s, end)
            );
        }

        /// A sequence of check-ins, received in any order, never moves the deadline earlier.
        #[test]
        fn checkins_never_move_deadline_earlier(
            started in any_instant(),
            receipts in proptest::collection::vec(any_instant(), 0..20),
            interval_s in interval(),
            end in proptest::option::of(any_instant()),
        ) {
            let mut due = next_checkin_due_at(started, interval_s, end);
            for received in receipts {
                let next = deadline_after_checkin(due, received, interval_s, end);
                prop_assert!(next >= due, "{next} < {due} after a check-in at {received}");
                due = next;
            }
        }

        /// Processing check-ins in receipt order gives exactly the rule's answer for the last.
        #[test]
        fn in_order_processing_matches_the_rule(
            started in instant(),
            mut offsets in proptest::collection::vec(0i64..1_000_000, 1..20),
            interval_s in interval(),
            end in proptest::option::of(instant()),
        ) {
            offsets.sort_unstable();
            let receipts: Vec<_> = offsets
                .iter()
                .map(|&o| started + TimeDelta::seconds(o))
                .collect();
            let mut due = next_checkin_due_at(started, interval_s, end);
            for &received in &receipts {
                due = deadline_after_checkin(due, received, interval_s, end);
            }
            let last = receipts.last().copied().unwrap_or(started);
            prop_assert_eq!(due, next_checkin_due_at(last, interval_s, end));
        }
    }
}
