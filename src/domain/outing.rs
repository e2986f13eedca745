//! What a check-in does to an outing: deadline, status, alert, area events. Pure.

use super::checkin::{CheckinKind, DisplayOrder, PinCheck};
use super::deadline::deadline_after_checkin;
use super::escalation::{AlertKind, OutingStatus};
use super::time::Instant;

/// The parts of an outing a check-in reads.
#[derive(Debug, Clone, PartialEq)]
pub struct OutingState {
    pub status: OutingStatus,
    pub started_at: Instant,
    pub checkin_interval_s: i64,
    pub planned_end_at: Option<Instant>,
    pub next_checkin_due_at: Option<Instant>,
    /// Display order of the check-in currently shown as the latest.
    pub latest: Option<DisplayOrder>,
    pub inside_area: Option<bool>,
    /// Kind of the outing's unresolved alert, if any.
    pub open_alert: Option<AlertKind>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IncomingCheckin {
    pub kind: CheckinKind,
    pub recorded_at: Option<Instant>,
    pub received_at: Instant,
    pub inside_area: Option<bool>,
    pub pin: PinCheck,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CheckinEffect {
    pub next_checkin_due_at: Instant,
    pub status: OutingStatus,
    /// This check-in becomes the one shown as the outing's latest.
    pub becomes_latest: bool,
    /// Resolve the open alert as `checked_in`.
    pub resolves_alert: bool,
    /// Open, or upgrade the open alert to, this kind.
    pub raises: Option<AlertKind>,
    /// The canvasser was inside (or not yet known) and is now outside the area.
    pub left_area: bool,
}

/// The effect of one check-in.
///
/// - The deadline is reset from the *receipt* time and never moves earlier.
/// - Any check-in (even one with the duress PIN, which must look normal) returns an overdue
///   outing to `active`.
/// - A plain check-in resolves a `missed_checkin` alert. Need-help and panic alerts need the
///   safe PIN (or a contact) to clear; a duress or wrong-PINs alert is only ever cleared by
///   a contact, because anything done on the canvasser's phone may be coerced.
/// - `need_help` raises a need-help alert; the duress PIN raises a duress alert (and wins).
pub fn checkin_effect(outing: &OutingState, incoming: &IncomingCheckin) -> CheckinEffect {
    let current_due = outing.next_checkin_due_at.unwrap_or(outing.started_at);
    let next_checkin_due_at = deadline_after_checkin(
        current_due,
        incoming.received_at,
        outing.checkin_interval_s,
        outing.planned_end_at,
    );
    let order = DisplayOrder::new(incoming.recorded_at, incoming.received_at);
    let becomes_latest = outing.latest.is_none_or(|latest| order >= latest);
    let raises = match (incoming.pin, incoming.kind) {
        (PinCheck::Duress, _) => Some(AlertKind::Duress),
        (_, CheckinKind::NeedHelp) => Some(AlertKind::NeedHelp),
        _ => None,
    };
    let resolves_alert = raises.is_none()
        && match outing.open_alert {
            Some(AlertKind::MissedCheckin) => true,
            Some(AlertKind::NeedHelp | AlertKind::Panic) => incoming.pin == PinCheck::Safe,
            Some(AlertKind::Duress | AlertKind::WrongPins) | None => false,
        };
    // Only the check-in shown as the latest says where the canvasser is now.
    let left_area =
        becomes_latest && incoming.inside_area == Some(false) && outing.inside_area != Some(false);
    CheckinEffect {
        next_checkin_due_at,
        status: OutingStatus::Active,
        becomes_latest,
        resolves_alert,
        raises,
        left_area,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone, Utc};
    use proptest::prelude::*;

    fn t(s: i64) -> Instant {
        Utc.with_ymd_and_hms(2026, 6, 12, 18, 0, 0).unwrap() + Duration::seconds(s)
    }

    fn outing() -> OutingState {
        OutingState {
            status: OutingStatus::Active,
            started_at: t(0),
            checkin_interval_s: 600,
            planned_end_at: None,
            next_checkin_due_at: Some(t(600)),
            latest: None,
            inside_area: None,
            open_alert: None,
        }
    }

    fn ok_at(received: i64) -> IncomingCheckin {
        IncomingCheckin {
            kind: CheckinKind::Ok,
            recorded_at: None,
            received_at: t(received),
            inside_area: None,
            pin: PinCheck::NotSet,
        }
    }

    #[test]
    fn deadline_resets_from_receipt() {
        let e = checkin_effect(&outing(), &ok_at(300));
        assert_eq!(e.next_checkin_due_at, t(900));
        assert!(e.becomes_latest && !e.resolves_alert && e.raises.is_none());
    }

    #[test]
    fn overdue_plain_checkin_resolves_missed_alert() {
        let mut o = outing();
        o.status = OutingStatus::Overdue;
        o.open_alert = Some(AlertKind::MissedCheckin);
        let e = checkin_effect(&o, &ok_at(1000));
        assert_eq!(e.status, OutingStatus::Active);
        assert!(e.resolves_alert);
    }

    #[test]
    fn panic_needs_the_safe_pin_and_duress_is_never_cleared_by_the_canvasser() {
        let mut o = outing();
        o.open_alert = Some(AlertKind::Panic);
        assert!(!checkin_effect(&o, &ok_at(10)).resolves_alert);
        let safe = IncomingCheckin {
            pin: PinCheck::Safe,
            ..ok_at(10)
        };
        assert!(checkin_effect(&o, &safe).resolves_alert);
        o.open_alert = Some(AlertKind::Duress);
        assert!(!checkin_effect(&o, &safe).resolves_alert);
    }

    #[test]
    fn duress_pin_raises_duress_and_looks_like_a_normal_checkin() {
        let mut o = outing();
        o.status = OutingStatus::Overdue;
        o.open_alert = Some(AlertKind::MissedCheckin);
        let duress = IncomingCheckin {
            pin: PinCheck::Duress,
            ..ok_at(1000)
        };
        let e = checkin_effect(&o, &duress);
        assert_eq!(e.raises, Some(AlertKind::Duress));
        assert!(!e.resolves_alert);
        assert_eq!(e.status, OutingStatus::Active);
        assert_eq!(
            e.next_checkin_due_at,
            checkin_effect(&o, &ok_at(1000)).next_checkin_due_at
        );
    }

    #[test]
    fn need_help_raises() {
        let need = IncomingCheckin {
            kind: CheckinKind::NeedHelp,
            ..ok_at(10)
        };
        assert_eq!(
            checkin_effect(&outing(), &need).raises,
            Some(AlertKind::NeedHelp)
        );
    }

    #[test]
    fn leaving_the_area_is_noticed_once() {
        let mut o = outing();
        o.inside_area = Some(true);
        let outside = IncomingCheckin {
            inside_area: Some(false),
            ..ok_at(10)
        };
        assert!(checkin_effect(&o, &outside).left_area);
        o.inside_area = Some(false);
        assert!(
            !checkin_effect(&o, &outside).left_area,
            "still outside is not a new event"
        );
    }

    #[test]
    fn an_old_batch_item_does_not_replace_the_latest() {
        let mut o = outing();
        o.latest = Some(DisplayOrder::new(None, t(500)));
        let queued = IncomingCheckin {
            recorded_at: Some(t(100)),
            inside_area: Some(false),
            ..ok_at(600)
        };
        let e = checkin_effect(&o, &queued);
        assert!(!e.becomes_latest);
        assert!(
            !e.left_area,
            "where the canvasser was earlier is not where they are"
        );
        assert_eq!(
            e.next_checkin_due_at,
            t(1200),
            "but the deadline still resets from receipt"
        );
    }

    proptest! {
        #[test]
        fn deadline_never_moves_earlier(a in 0i64..100_000, gap in 0i64..100_000, interval in 60i64..86_400) {
            let mut o = outing();
            o.checkin_interval_s = interval;
            let first = checkin_effect(&o, &ok_at(a));
            o.next_checkin_due_at = Some(first.next_checkin_due_at);
            let second = checkin_effect(&o, &ok_at(a + gap));
            prop_assert!(second.next_checkin_due_at >= first.next_checkin_due_at);
        }

        #[test]
        fn a_batch_never_counts_as_newer_than_a_later_live_checkin(
            live_at in 0i64..10_000, batch_delay in 1i64..10_000, recorded_skew in -10_000i64..10_000,
        ) {
            // A live check-in received (and recorded) at `live_at`; a batch received later whose
            // items claim any recorded time up to the batch's receipt.
            let mut o = outing();
            let live = checkin_effect(&o, &ok_at(live_at));
            prop_assert!(live.becomes_latest);
            o.latest = Some(DisplayOrder::new(None, t(live_at)));
            let batch_received = live_at + batch_delay;
            let recorded = (live_at + recorded_skew).min(live_at - 1);
            let item = IncomingCheckin { recorded_at: Some(t(recorded)), ..ok_at(batch_received) };
            prop_assert!(!checkin_effect(&o, &item).becomes_latest);
        }
    }
}
