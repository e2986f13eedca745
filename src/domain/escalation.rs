//! The escalation policy as pure functions: what the scheduler fires, when, and to whom.
//!
//! Nothing here does I/O or reads a clock: every function that depends on time takes `now`.
//! The scheduler loads an [`OutingClock`] or [`AlertClock`], asks [`decide_outing`] or
//! [`decide_alert`] what to do at `now` (at most one [`Step`]), records the step in the
//! outbox under its [`Step::key`] together with the new state, and asks again until nothing
//! fires. It then stores [`next_outing_action_at`] / [`next_alert_action_at`] as the row's
//! next wake-up time.
//!
//! The timeline of escalation.md, and the decisions taken where it is silent:
//!
//! 1. **Reminder** at `due - reminder_before_s` (none when `reminder_before_s <= 0`), once per
//!    deadline: [`OutingClock::reminder_sent_for`] records the due time it was sent (or
//!    skipped) for. A reminder that would fire at or after `due` is *stale* (a server down
//!    past it, or a check-in that moved the deadline): it is skipped, not sent, and the skip
//!    is recorded. When `reminder_before_s` is at least the check-in interval the reminder
//!    time lies before the check-in that set the deadline: it then fires at once (the
//!    canvasser simply hears "next check-in due at …" right after checking in).
//! 2. **Missed** at `due + grace_s` (a negative grace counts as 0): the outing becomes
//!    [`OutingStatus::Overdue`] and a `missed_checkin` alert opens at level 1, unless an alert
//!    is already open (then [`open_or_upgrade`] answers [`Opening::Unchanged`]). An overdue or
//!    ended outing has no scheduled action: its alert drives.
//! 3. **Repeat** every `repeat_s` (0 = never) after the last push of an open, unacknowledged
//!    alert, counted from the *real* time of that push: after downtime one repeat fires, and
//!    the next comes `repeat_s` after it, never a burst.
//! 4. **Escalate** when an open level-1 alert reaches `opened_at + police_after_s`. If a repeat
//!    is due at the same time, the escalation wins and restarts the repeat clock.
//! 5. **Acknowledge** stops repeats and escalation; `ack_timeout_s` later an unresolved alert
//!    fires **AckTimeout**: open again one level up (level 2 is re-sent at level 2).
//! 6. **Resolve**: nothing fires ever again; `all_clear` goes to everyone who was pushed.
//!
//! Opening and upgrading ([`open_or_upgrade`]): panic and duress open at level 2,
//! missed_checkin and need_help at level 1. A more severe kind (missed_checkin < need_help <
//! panic < duress) upgrades the unresolved alert of the outing to that kind, at the higher of
//! the two levels. An upgrade **re-opens an acknowledged alert** (new danger after an ack
//! needs someone to take charge again) and restarts its repeat clock, but keeps `opened_at`:
//! the police deadline counts from when the danger began, so a re-opened level-1 alert older
//! than `police_after_s` escalates at the next tick. A duress alert is never downgraded (the
//! canvasser, who may be coerced, must not be able to learn of it or turn it into a panic).
//!
//! Step keys are unique over an alert's (or, for reminders and missed check-ins, an outing's)
//! whole life: repeat and ack-timeout counters only grow, the level only rises, and reminder
//! and missed keys carry the deadline. A counter that reached `u32::MAX` stops its step
//! rather than reuse a key (unreachable: that is 8,000 years of one-minute repeats).
//!
//! All time arithmetic saturates ([`add_secs`]); no input makes these functions panic.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::domain::delivery::MessageType;
use crate::domain::ids::UserId;
use crate::domain::policy::EscalationPolicy;
use crate::domain::time::{add_secs, to_millis, Instant};

/// What happened to the canvasser, in increasing severity.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[serde(rename_all = "snake_case")]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum AlertKind {
    MissedCheckin,
    /// Five wrong PINs in a row on one outing: someone may be trying the phone.
    WrongPins,
    NeedHelp,
    Panic,
    Duress,
}

impl AlertKind {
    pub const ALL: [AlertKind; 5] = [
        AlertKind::MissedCheckin,
        AlertKind::WrongPins,
        AlertKind::NeedHelp,
        AlertKind::Panic,
        AlertKind::Duress,
    ];

    /// The wire name, also the push message type of an alert of this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::MissedCheckin => "missed_checkin",
            AlertKind::WrongPins => "wrong_pins",
            AlertKind::NeedHelp => "need_help",
            AlertKind::Panic => "panic",
            AlertKind::Duress => "duress",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "missed_checkin" => Some(AlertKind::MissedCheckin),
            "wrong_pins" => Some(AlertKind::WrongPins),
            "need_help" => Some(AlertKind::NeedHelp),
            "panic" => Some(AlertKind::Panic),
            "duress" => Some(AlertKind::Duress),
            _ => None,
        }
    }

    /// The level an alert of this kind opens at: panic and duress go straight to the police.
    pub fn opening_level(self) -> u8 {
        match self {
            AlertKind::MissedCheckin | AlertKind::WrongPins | AlertKind::NeedHelp => 1,
            AlertKind::Panic | AlertKind::Duress => 2,
        }
    }

    /// Rank used for upgrades: missed_checkin (0) < wrong_pins < need_help < panic < duress (4).
    /// A wrong_pins never upgrades an alert already open (see [`open_or_upgrade`]).
    pub fn severity(self) -> u8 {
        match self {
            AlertKind::MissedCheckin => 0,
            AlertKind::WrongPins => 1,
            AlertKind::NeedHelp => 2,
            AlertKind::Panic => 3,
            AlertKind::Duress => 4,
        }
    }

    /// The kinds the person the alert is about must never learn of: they may be typed, or
    /// watched being typed, by someone coercing them. Nothing about such an alert reaches
    /// the outing's owner: no list item, cursor, count, audit row, stream event or message.
    pub const HIDDEN_FROM_OWNER: [AlertKind; 2] = [AlertKind::Duress, AlertKind::WrongPins];

    pub fn hidden_from_owner(self) -> bool {
        Self::HIDDEN_FROM_OWNER.contains(&self)
    }

    /// The message that announces an alert of this kind (the same wire name).
    pub fn message_type(self) -> MessageType {
        match self {
            AlertKind::MissedCheckin => MessageType::MissedCheckin,
            AlertKind::WrongPins => MessageType::WrongPins,
            AlertKind::NeedHelp => MessageType::NeedHelp,
            AlertKind::Panic => MessageType::Panic,
            AlertKind::Duress => MessageType::Duress,
        }
    }

    /// Whether the canvasser is among the recipients of an alert of this kind (levels 1 and 2).
    pub fn notifies_canvasser(self) -> bool {
        matches!(self, AlertKind::MissedCheckin | AlertKind::NeedHelp)
    }
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[serde(rename_all = "snake_case")]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum AlertStatus {
    Open,
    Acknowledged,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Open => "open",
            AlertStatus::Acknowledged => "acknowledged",
            AlertStatus::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(AlertStatus::Open),
            "acknowledged" => Some(AlertStatus::Acknowledged),
            "resolved" => Some(AlertStatus::Resolved),
            _ => None,
        }
    }
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[serde(rename_all = "snake_case")]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum OutingStatus {
    Active,
    Overdue,
    Ended,
}

impl OutingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutingStatus::Active => "active",
            OutingStatus::Overdue => "overdue",
            OutingStatus::Ended => "ended",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(OutingStatus::Active),
            "overdue" => Some(OutingStatus::Overdue),
            "ended" => Some(OutingStatus::Ended),
            _ => None,
        }
    }
}

/// What the scheduler needs of an outing.
#[derive(Debug, Clone, PartialEq)]
pub struct OutingClock {
    pub status: OutingStatus,
    pub next_checkin_due_at: Option<Instant>,
    /// The due time whose reminder has been recorded or deliberately skipped.
    pub reminder_sent_for: Option<Instant>,
}

/// What the scheduler needs of an alert.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertClock {
    pub kind: AlertKind,
    /// 1 or 2. Anything else read from storage is treated as the nearest of the two.
    pub level: u8,
    pub status: AlertStatus,
    pub opened_at: Instant,
    pub escalated_at: Option<Instant>,
    pub acknowledged_at: Option<Instant>,
    /// When the current recipients were last pushed (open, escalation, repeat, ack timeout).
    pub last_pushed_at: Instant,
    pub repeats_sent: u32,
    pub ack_timeouts: u32,
    /// Snapshot of the policy taken when the alert opened.
    pub policy: EscalationPolicy,
}

impl AlertClock {
    /// A freshly opened alert (as [`Opening::Open`] asks): pushed now, nothing repeated yet.
    pub fn new_open(kind: AlertKind, level: u8, now: Instant, policy: EscalationPolicy) -> Self {
        Self {
            kind,
            level: clamp_level(level),
            status: AlertStatus::Open,
            opened_at: now,
            escalated_at: None,
            acknowledged_at: None,
            last_pushed_at: now,
            repeats_sent: 0,
            ack_timeouts: 0,
            policy,
        }
    }
}

/// One scheduled step of the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `checkin_reminder` to the canvasser (level 0), once per deadline.
    Reminder { due_at: Instant },
    /// due + grace passed: outing overdue, alert `missed_checkin` opens at level 1 (or, if an
    /// alert is already open, the outing just becomes overdue).
    Missed { due_at: Instant },
    /// Re-push the current recipients of an open, unacknowledged alert.
    Repeat { seq: u32, level: u8 },
    /// Unacknowledged level-1 alert reached opened + police_after: level 2.
    Escalate { to_level: u8 },
    /// Acknowledged alert unresolved after ack_timeout: open again, one level up (re-sent at
    /// level 2 if already 2).
    AckTimeout { seq: u32, to_level: u8 },
}

impl Step {
    /// Stable, unique-per-alert/outing name of this step, used in the outbox's unique key
    /// (alert or outing id, step key, recipient, channel): `reminder:<due epoch ms>`,
    /// `missed:<due epoch ms>`, `repeat:<seq>`, `escalate:<level>`, `ack_timeout:<seq>`.
    pub fn key(&self) -> String {
        match self {
            Step::Reminder { due_at } => format!("reminder:{}", to_millis(*due_at)),
            Step::Missed { due_at } => format!("missed:{}", to_millis(*due_at)),
            Step::Repeat { seq, .. } => format!("repeat:{seq}"),
            Step::Escalate { to_level } => format!("escalate:{to_level}"),
            Step::AckTimeout { seq, .. } => format!("ack_timeout:{seq}"),
        }
    }

    /// The push message type of the contract. A repeat re-sends the alert's own kind
    /// (`missed_checkin`, `need_help`, `panic`, `duress`; `missed_checkin` if the caller
    /// passes no kind); escalation and ack timeout send `escalation`.
    pub fn message_type(&self, alert_kind: Option<AlertKind>) -> MessageType {
        match self {
            Step::Reminder { .. } => MessageType::CheckinReminder,
            Step::Missed { .. } => MessageType::MissedCheckin,
            Step::Repeat { .. } => alert_kind
                .unwrap_or(AlertKind::MissedCheckin)
                .message_type(),
            Step::Escalate { .. } | Step::AckTimeout { .. } => MessageType::Escalation,
        }
    }

    /// The recipient level of this step: 0 for a reminder, 1 for a missed check-in (the
    /// level its alert opens at), else the alert's level after the step.
    pub fn level(&self) -> u8 {
        match self {
            Step::Reminder { .. } => 0,
            Step::Missed { .. } => AlertKind::MissedCheckin.opening_level(),
            Step::Repeat { level, .. } => *level,
            Step::Escalate { to_level } | Step::AckTimeout { to_level, .. } => *to_level,
        }
    }
}

/// What to do for an outing now, and its state afterwards.
#[derive(Debug, Clone, PartialEq)]
pub struct OutingDecision {
    pub fire: Option<Step>,
    /// Store this even when nothing fires: a stale reminder is recorded as skipped.
    pub reminder_sent_for: Option<Instant>,
    pub status: OutingStatus,
}

/// The outing's deadline, when the scheduler has anything to do for it.
fn scheduled_due(outing: &OutingClock) -> Option<Instant> {
    match outing.status {
        OutingStatus::Active => outing.next_checkin_due_at,
        OutingStatus::Overdue | OutingStatus::Ended => None,
    }
}

/// When the reminder for `due` is still to be sent (or skipped), its time.
fn pending_reminder_at(
    policy: &EscalationPolicy,
    outing: &OutingClock,
    due: Instant,
) -> Option<Instant> {
    (policy.reminder_before_s > 0 && outing.reminder_sent_for != Some(due))
        .then(|| reminder_at(policy, due))
}

/// When the reminder for the deadline `due` falls due: `reminder_before_s` before it.
pub fn reminder_at(policy: &EscalationPolicy, due: Instant) -> Instant {
    add_secs(due, policy.reminder_before_s.saturating_neg())
}

/// When the deadline `due` counts as missed: `grace_s` after it (a negative grace as 0).
pub fn missed_at(policy: &EscalationPolicy, due: Instant) -> Instant {
    add_secs(due, policy.grace_s.max(0))
}

/// What to do for this outing at `now`: one step at most (call again after applying it).
pub fn decide_outing(
    policy: &EscalationPolicy,
    outing: &OutingClock,
    now: Instant,
) -> OutingDecision {
    let mut decision = OutingDecision {
        fire: None,
        reminder_sent_for: outing.reminder_sent_for,
        status: outing.status,
    };
    let Some(due) = scheduled_due(outing) else {
        return decision;
    };
    if let Some(remind_at) = pending_reminder_at(policy, outing, due) {
        if now >= remind_at {
            decision.reminder_sent_for = Some(due);
            if now < due {
                decision.fire = Some(Step::Reminder { due_at: due });
                return decision;
            }
            // Stale (the deadline has come): skipped, recorded, and on to the missed check.
        }
    }
    if now >= missed_at(policy, due) {
        decision.status = OutingStatus::Overdue;
        decision.fire = Some(Step::Missed { due_at: due });
    }
    decision
}

/// The outing's next scheduler time: the pending reminder (possibly already past, to be
/// skipped as stale), else `due + grace`; `None` unless the outing is active with a deadline.
pub fn next_outing_action_at(policy: &EscalationPolicy, outing: &OutingClock) -> Option<Instant> {
    let due = scheduled_due(outing)?;
    Some(pending_reminder_at(policy, outing, due).unwrap_or_else(|| missed_at(policy, due)))
}

/// What to do for an alert now: the step to fire, and the alert's state after it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertDecision {
    pub fire: Option<Step>,
    pub next: AlertClock,
}

fn clamp_level(level: u8) -> u8 {
    level.clamp(1, 2)
}

/// When an open level-1 alert goes to level 2.
fn escalate_at(alert: &AlertClock) -> Option<Instant> {
    (alert.status == AlertStatus::Open && clamp_level(alert.level) < 2)
        .then(|| add_secs(alert.opened_at, alert.policy.police_after_s.max(0)))
}

/// When an open alert's recipients are pushed again. `None` when repeats are off, when the
/// time saturated (a repeat must come strictly after the last push, or it could fire forever
/// at the end of time), or when the counter is exhausted.
fn repeat_at(alert: &AlertClock) -> Option<Instant> {
    if alert.status != AlertStatus::Open
        || alert.policy.repeat_s <= 0
        || alert.repeats_sent == u32::MAX
    {
        return None;
    }
    let at = add_secs(alert.last_pushed_at, alert.policy.repeat_s);
    (at > alert.last_pushed_at).then_some(at)
}

/// When an acknowledged alert opens again. An acknowledged alert without `acknowledged_at`
/// (a corrupted row) counts from its last push.
fn ack_deadline(alert: &AlertClock) -> Option<Instant> {
    if alert.status != AlertStatus::Acknowledged || alert.ack_timeouts == u32::MAX {
        return None;
    }
    let since = alert.acknowledged_at.unwrap_or(alert.last_pushed_at);
    Some(add_secs(since, alert.policy.ack_timeout_s.max(0)))
}

fn min_instant(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What to do for this alert at `now`: one step at most (call again after applying it).
pub fn decide_alert(alert: &AlertClock, now: Instant) -> AlertDecision {
    let mut next = alert.clone();
    let due = |at: Option<Instant>| at.is_some_and(|at| now >= at);
    let fire = if due(escalate_at(alert)) {
        next.level = 2;
        next.escalated_at = Some(now);
        next.last_pushed_at = now;
        Some(Step::Escalate { to_level: 2 })
    } else if due(repeat_at(alert)) {
        let seq = alert.repeats_sent.saturating_add(1);
        next.repeats_sent = seq;
        next.last_pushed_at = now;
        Some(Step::Repeat {
            seq,
            level: clamp_level(alert.level),
        })
    } else if due(ack_deadline(alert)) {
        let seq = alert.ack_timeouts.saturating_add(1);
        let to_level = clamp_level(alert.level).saturating_add(1).min(2);
        if to_level > alert.level {
            next.escalated_at = Some(now);
        }
        next.level = to_level;
        next.status = AlertStatus::Open;
        next.acknowledged_at = None;
        next.last_pushed_at = now;
        next.ack_timeouts = seq;
        Some(Step::AckTimeout { seq, to_level })
    } else {
        None
    };
    AlertDecision { fire, next }
}

/// The alert's next scheduler time: for an open alert the earlier of its escalation (level 1)
/// and its next repeat; for an acknowledged one its ack timeout; never for a resolved one.
pub fn next_alert_action_at(alert: &AlertClock) -> Option<Instant> {
    min_instant(
        min_instant(escalate_at(alert), repeat_at(alert)),
        ack_deadline(alert),
    )
}

/// Request-driven transition: what a panic, need-help, duress or missed check-in does to the
/// outing's alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// No unresolved alert: open one.
    Open { kind: AlertKind, level: u8 },
    /// The unresolved alert becomes this kind at this level (see [`upgraded`]).
    Upgrade {
        kind: AlertKind,
        from_level: u8,
        to_level: u8,
    },
    /// The unresolved alert already covers it.
    Unchanged,
}

/// Open a new alert, or upgrade the outing's unresolved one (`existing`; a resolved alert
/// counts as none) when `incoming` is more severe. Same or less severe kinds change nothing:
/// in particular a panic never turns a duress alert back into one the canvasser may see.
pub fn open_or_upgrade(existing: Option<&AlertClock>, incoming: AlertKind) -> Opening {
    match existing {
        // An alert the owner can see stays one they can see: turning it into wrong_pins
        // would make it vanish from their phone, which is itself a tell. The caller tells
        // the organisers of the wrong PINs by a notice instead.
        Some(alert)
            if alert.status != AlertStatus::Resolved && incoming == AlertKind::WrongPins =>
        {
            Opening::Unchanged
        }
        Some(alert) if alert.status != AlertStatus::Resolved => {
            if incoming.severity() > alert.kind.severity() {
                Opening::Upgrade {
                    kind: incoming,
                    from_level: alert.level,
                    to_level: clamp_level(alert.level).max(incoming.opening_level()),
                }
            } else {
                Opening::Unchanged
            }
        }
        _ => Opening::Open {
            kind: incoming,
            level: incoming.opening_level(),
        },
    }
}

/// The alert after an [`Opening::Upgrade`] at `now`: the new kind and level, open again (an
/// acknowledged alert is re-opened), pushed now (the repeat clock restarts), `escalated_at`
/// set if the level rose. `opened_at` and the counters are kept.
pub fn upgraded(alert: &AlertClock, kind: AlertKind, to_level: u8, now: Instant) -> AlertClock {
    let mut next = alert.clone();
    let to_level = clamp_level(to_level).max(clamp_level(alert.level));
    if to_level > alert.level {
        next.escalated_at = Some(now);
    }
    next.kind = kind;
    next.level = to_level;
    next.status = AlertStatus::Open;
    next.acknowledged_at = None;
    next.last_pushed_at = now;
    next
}

/// Why a request-driven transition was refused.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum TransitionError {
    #[error("the alert is already acknowledged")]
    AlreadyAcknowledged,
    #[error("the alert is already resolved")]
    AlreadyResolved,
}

/// Someone takes charge of an open alert: repeats and escalation stop. The first
/// acknowledgement wins; acknowledging an acknowledged or resolved alert is an error.
pub fn acknowledge(alert: &AlertClock, now: Instant) -> Result<AlertClock, TransitionError> {
    match alert.status {
        AlertStatus::Open => Ok(AlertClock {
            status: AlertStatus::Acknowledged,
            acknowledged_at: Some(now),
            ..alert.clone()
        }),
        AlertStatus::Acknowledged => Err(TransitionError::AlreadyAcknowledged),
        AlertStatus::Resolved => Err(TransitionError::AlreadyResolved),
    }
}

/// The alert is over (resolved by a contact, a check-in, or the safe PIN): nothing more is
/// scheduled. Resolving a resolved alert is an error. `acknowledged_at` is kept for the record.
pub fn resolve(alert: &AlertClock, _now: Instant) -> Result<AlertClock, TransitionError> {
    match alert.status {
        AlertStatus::Open | AlertStatus::Acknowledged => Ok(AlertClock {
            status: AlertStatus::Resolved,
            ..alert.clone()
        }),
        AlertStatus::Resolved => Err(TransitionError::AlreadyResolved),
    }
}

/// The people around one outing.
#[derive(Debug, Clone, Copy)]
pub struct People<'a> {
    pub canvasser: UserId,
    pub organisers: &'a [UserId],
    pub companions: &'a [UserId],
    pub police: &'a [UserId],
}

/// Who receives a step. Level 0: the canvasser. Level 1: the canvasser (only for
/// missed_checkin and need_help), every organiser of the org, the outing's companions.
/// Level 2 (or more): everyone at level 1 plus every police contact of the org.
///
/// Whether the canvasser is included is decided by the kind alone, even if the canvasser
/// also appears in another list (an organiser canvassing): so a duress alert never reaches
/// the canvasser, at any level (not even a level-0 push). `kind: None` means a reminder, so
/// at level 1 or more it includes no canvasser. No duplicates; the order is canvasser, then
/// organisers, companions, police, each group sorted by id (independent of input order).
pub fn recipients(kind: Option<AlertKind>, level: u8, people: &People) -> Vec<UserId> {
    let canvasser = people.canvasser;
    let canvasser_included = match kind {
        Some(kind) if kind.hidden_from_owner() => false,
        _ if level == 0 => true,
        Some(kind) => kind.notifies_canvasser(),
        None => false,
    };
    let mut seen = BTreeSet::from([canvasser]);
    let mut out = Vec::new();
    if canvasser_included {
        out.push(canvasser);
    }
    let mut add_group = |group: &[UserId]| {
        let fresh: BTreeSet<UserId> = group
            .iter()
            .copied()
            .filter(|id| !seen.contains(id))
            .collect();
        seen.extend(fresh.iter().copied());
        out.extend(fresh);
    };
    if level >= 1 {
        add_group(people.organisers);
        add_group(people.companions);
    }
    if level >= 2 {
        add_group(people.police);
    }
    out
}

/// Who gets `all_clear`: everyone who was pushed about this alert (the caller passes them),
/// except the canvasser of an alert hidden from them (duress, wrong PINs). Sorted by id, no duplicates.
pub fn all_clear_recipients(
    kind: AlertKind,
    canvasser: UserId,
    previously_notified: &[UserId],
) -> Vec<UserId> {
    previously_notified
        .iter()
        .copied()
        .filter(|id| !(kind.hidden_from_owner() && *id == canvasser))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::from_millis;
    use chrono::{DateTime, TimeZone, Utc};
    use proptest::prelude::*;
    use uuid::Uuid;

    /// The injected clock: `t(s)` is `s` seconds after a fixed origin.
    fn t(s: i64) -> Instant {
        add_secs(Utc.with_ymd_and_hms(2026, 6, 12, 18, 0, 0).unwrap(), s)
    }

    fn policy() -> EscalationPolicy {
        EscalationPolicy::default()
    }

    fn active(due: i64) -> OutingClock {
        OutingClock {
            status: OutingStatus::Active,
            next_checkin_due_at: Some(t(due)),
            reminder_sent_for: None,
        }
    }

    fn alert(kind: AlertKind, opened: i64) -> AlertClock {
        AlertClock::new_open(kind, kind.opening_level(), t(opened), policy())
    }

    fn user(n: u128) -> UserId {
        UserId::from(Uuid::from_u128(n))
    }

    fn apply_outing(outing: &mut OutingClock, d: &OutingDecision) {
        outing.reminder_sent_for = d.reminder_sent_for;
        outing.status = d.status;
    }

    // ---- names -------------------------------------------------------------------------

    #[test]
    fn names_round_trip_and_match_serde() {
        for kind in AlertKind::ALL {
            assert_eq!(AlertKind::parse(kind.as_str()), Some(kind));
            assert_eq!(
                serde_json::to_string(&kind).unwrap(),
                format!("\"{}\"", kind.as_str())
            );
        }
        for s in [
            AlertStatus::Open,
            AlertStatus::Acknowledged,
            AlertStatus::Resolved,
        ] {
            assert_eq!(AlertStatus::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        for s in [
            OutingStatus::Active,
            OutingStatus::Overdue,
            OutingStatus::Ended,
        ] {
            assert_eq!(OutingStatus::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert_eq!(AlertKind::parse("Panic"), None);
        assert_eq!(AlertStatus::parse(""), None);
        assert_eq!(OutingStatus::parse("planned"), None);
    }

    #[test]
    fn every_alert_kind_is_announced_by_its_own_message() {
        for kind in AlertKind::ALL {
            assert_eq!(kind.message_type().as_str(), kind.as_str());
        }
    }

    #[test]
    fn step_keys_and_message_types() {
        let due = from_millis(1_781_287_200_123);
        let cases = [
            (
                Step::Reminder { due_at: due },
                "reminder:1781287200123",
                "checkin_reminder",
            ),
            (
                Step::Missed { due_at: due },
                "missed:1781287200123",
                "missed_checkin",
            ),
            (Step::Repeat { seq: 3, level: 2 }, "repeat:3", "panic"),
            (Step::Escalate { to_level: 2 }, "escalate:2", "escalation"),
            (
                Step::AckTimeout {
                    seq: 1,
                    to_level: 2,
                },
                "ack_timeout:1",
                "escalation",
            ),
        ];
        for (step, key, message_type) in cases {
            assert_eq!(step.key(), key);
            assert_eq!(
                step.message_type(Some(AlertKind::Panic)).as_str(),
                message_type
            );
        }
        let repeat = Step::Repeat { seq: 1, level: 1 };
        for kind in AlertKind::ALL {
            assert_eq!(repeat.message_type(Some(kind)).as_str(), kind.as_str());
        }
        assert_eq!(repeat.message_type(None).as_str(), "missed_checkin");
        assert_eq!(Step::Reminder { due_at: due }.level(), 0);
        assert_eq!(Step::Missed { due_at: due }.level(), 1);
    }

    // ---- timeline row 1: reminder ------------------------------------------------------

    #[test]
    fn reminder_fires_before_due_once_per_deadline() {
        let p = policy();
        let mut outing = active(600);
        assert_eq!(next_outing_action_at(&p, &outing), Some(t(480)));
        assert_eq!(decide_outing(&p, &outing, t(479)).fire, None);
        let d = decide_outing(&p, &outing, t(480));
        assert_eq!(d.fire, Some(Step::Reminder { due_at: t(600) }));
        assert_eq!(d.reminder_sent_for, Some(t(600)));
        assert_eq!(d.status, OutingStatus::Active);
        apply_outing(&mut outing, &d);
        // Sent: not again for this deadline, and the next action is the missed check.
        assert_eq!(decide_outing(&p, &outing, t(481)).fire, None);
        assert_eq!(next_outing_action_at(&p, &outing), Some(t(900)));
        // A check-in moves the deadline: a new reminder for the new deadline.
        outing.next_checkin_due_at = Some(t(1100));
        assert_eq!(next_outing_action_at(&p, &outing), Some(t(980)));
        assert_eq!(
            decide_outing(&p, &outing, t(980)).fire,
            Some(Step::Reminder { due_at: t(1100) })
        );
    }

    #[test]
    fn no_reminder_when_reminder_before_is_zero() {
        let p = EscalationPolicy {
            reminder_before_s: 0,
            ..policy()
        };
        let outing = active(600);
        assert_eq!(next_outing_action_at(&p, &outing), Some(t(900)));
        for s in [0, 480, 599, 600, 899] {
            assert_eq!(decide_outing(&p, &outing, t(s)).fire, None, "at {s}");
        }
        let d = decide_outing(&p, &outing, t(900));
        assert_eq!(d.fire, Some(Step::Missed { due_at: t(600) }));
        assert_eq!(d.reminder_sent_for, None);
    }

    #[test]
    fn reminder_longer_than_the_interval_fires_at_once() {
        // Interval 60 s from a check-in at 540: the reminder time (480) is already past.
        let p = policy();
        let outing = active(600);
        let d = decide_outing(&p, &outing, t(540));
        assert_eq!(d.fire, Some(Step::Reminder { due_at: t(600) }));
    }

    #[test]
    fn stale_reminder_is_skipped_after_downtime() {
        // The server was down from 470 to 700: at 700 the deadline (600) has passed.
        let p = policy();
        let mut outing = active(600);
        let d = decide_outing(&p, &outing, t(700));
        assert_eq!(d.fire, None, "a reminder after the deadline is not sent");
        assert_eq!(d.reminder_sent_for, Some(t(600)), "the skip is recorded");
        assert_eq!(d.status, OutingStatus::Active);
        apply_outing(&mut outing, &d);
        assert_eq!(next_outing_action_at(&p, &outing), Some(t(900)));
        assert_eq!(decide_outing(&p, &outing, t(700)), d);
        // Exactly at the deadline counts as stale too.
        assert_eq!(decide_outing(&p, &active(600), t(600)).fire, None);
    }

    #[test]
    fn stale_reminder_skipped_and_missed_fires_after_long_downtime() {
        let p = policy();
        let d = decide_outing(&p, &active(600), t(5000));
        assert_eq!(d.fire, Some(Step::Missed { due_at: t(600) }));
        assert_eq!(d.reminder_sent_for, Some(t(600)));
        assert_eq!(d.status, OutingStatus::Overdue);
    }

    // ---- timeline row 2: missed --------------------------------------------------------

    #[test]
    fn missed_at_due_plus_grace_makes_the_outing_overdue() {
        let p = policy();
        let mut outing = active(600);
        outing.reminder_sent_for = Some(t(600));
        assert_eq!(decide_outing(&p, &outing, t(899)).fire, None);
        let d = decide_outing(&p, &outing, t(900));
        assert_eq!(d.fire, Some(Step::Missed { due_at: t(600) }));
        assert_eq!(d.status, OutingStatus::Overdue);
        apply_outing(&mut outing, &d);
        assert_eq!(next_outing_action_at(&p, &outing), None);
        assert_eq!(decide_outing(&p, &outing, t(100_000)).fire, None);
        assert_eq!(
            open_or_upgrade(None, AlertKind::MissedCheckin),
            Opening::Open {
                kind: AlertKind::MissedCheckin,
                level: 1
            }
        );
    }

    #[test]
    fn zero_grace_misses_at_the_deadline() {
        let p = EscalationPolicy {
            grace_s: 0,
            ..policy()
        };
        let mut outing = active(600);
        outing.reminder_sent_for = Some(t(600));
        assert_eq!(
            decide_outing(&p, &outing, t(600)).fire,
            Some(Step::Missed { due_at: t(600) })
        );
    }

    #[test]
    fn overdue_ended_or_deadline_free_outings_have_no_action() {
        let p = policy();
        for status in [OutingStatus::Overdue, OutingStatus::Ended] {
            let outing = OutingClock {
                status,
                ..active(600)
            };
            assert_eq!(next_outing_action_at(&p, &outing), None);
            let d = decide_outing(&p, &outing, t(10_000));
            assert_eq!(d.fire, None);
            assert_eq!(d.status, status);
        }
        let no_due = OutingClock {
            next_checkin_due_at: None,
            ..active(600)
        };
        assert_eq!(next_outing_action_at(&p, &no_due), None);
        assert_eq!(decide_outing(&p, &no_due, t(10_000)).fire, None);
    }

    #[test]
    fn missed_on_an_outing_with_an_open_alert_opens_nothing() {
        for kind in AlertKind::ALL {
            assert_eq!(
                open_or_upgrade(Some(&alert(kind, 0)), AlertKind::MissedCheckin),
                Opening::Unchanged,
                "{kind:?}"
            );
        }
    }

    // ---- timeline row 3: repeat --------------------------------------------------------

    #[test]
    fn repeat_every_repeat_s_while_open() {
        let mut a = alert(AlertKind::MissedCheckin, 900);
        assert_eq!(next_alert_action_at(&a), Some(t(1200)));
        assert_eq!(decide_alert(&a, t(1199)).fire, None);
        let d = decide_alert(&a, t(1200));
        assert_eq!(d.fire, Some(Step::Repeat { seq: 1, level: 1 }));
        assert_eq!(d.next.repeats_sent, 1);
        assert_eq!(d.next.last_pushed_at, t(1200));
        assert_eq!(d.next.level, 1);
        a = d.next;
        // The escalation (1500) coincides with the next repeat: escalation wins.
        assert_eq!(next_alert_action_at(&a), Some(t(1500)));
    }

    #[test]
    fn no_repeats_when_repeat_s_is_zero() {
        let mut a = alert(AlertKind::Panic, 0);
        a.policy.repeat_s = 0;
        assert_eq!(
            next_alert_action_at(&a),
            None,
            "level 2, no repeats: nothing"
        );
        for s in [300, 600, 10_000, 1_000_000] {
            assert_eq!(decide_alert(&a, t(s)).fire, None);
        }
        let mut b = alert(AlertKind::MissedCheckin, 0);
        b.policy.repeat_s = 0;
        assert_eq!(next_alert_action_at(&b), Some(t(600)));
        assert_eq!(decide_alert(&b, t(599)).fire, None);
        let d = decide_alert(&b, t(600));
        assert_eq!(d.fire, Some(Step::Escalate { to_level: 2 }));
        assert_eq!(next_alert_action_at(&d.next), None);
    }

    // ---- timeline row 4: escalation ----------------------------------------------------

    #[test]
    fn unacknowledged_level_1_escalates_at_police_after() {
        let mut a = alert(AlertKind::MissedCheckin, 900);
        a.policy.repeat_s = 1000; // no repeat in the way
        assert_eq!(next_alert_action_at(&a), Some(t(1500)));
        assert_eq!(decide_alert(&a, t(1499)).fire, None);
        let d = decide_alert(&a, t(1500));
        assert_eq!(d.fire, Some(Step::Escalate { to_level: 2 }));
        assert_eq!(d.next.level, 2);
        assert_eq!(d.next.escalated_at, Some(t(1500)));
        assert_eq!(d.next.last_pushed_at, t(1500));
        assert_eq!(d.next.status, AlertStatus::Open);
        assert_eq!(
            d.fire.as_ref().unwrap().message_type(Some(a.kind)).as_str(),
            "escalation"
        );
        // Level 2 never escalates again; repeats carry on from the escalation.
        assert_eq!(next_alert_action_at(&d.next), Some(t(2500)));
        assert_eq!(decide_alert(&d.next, t(1500)).fire, None);
    }

    #[test]
    fn escalation_wins_over_a_repeat_due_at_the_same_time() {
        let mut a = alert(AlertKind::NeedHelp, 900);
        a.last_pushed_at = t(1200);
        a.repeats_sent = 1;
        let d = decide_alert(&a, t(1500));
        assert_eq!(d.fire, Some(Step::Escalate { to_level: 2 }));
        assert_eq!(d.next.repeats_sent, 1);
        assert_eq!(decide_alert(&d.next, t(1500)).fire, None);
        assert_eq!(next_alert_action_at(&d.next), Some(t(1800)));
        assert_eq!(
            decide_alert(&d.next, t(1800)).fire,
            Some(Step::Repeat { seq: 2, level: 2 })
        );
    }

    // ---- timeline row 5: acknowledgement and ack timeout --------------------------------

    #[test]
    fn acknowledgement_stops_repeats_and_escalation() {
        let a = alert(AlertKind::MissedCheckin, 900);
        let acked = acknowledge(&a, t(1000)).unwrap();
        assert_eq!(acked.status, AlertStatus::Acknowledged);
        assert_eq!(acked.acknowledged_at, Some(t(1000)));
        assert_eq!(next_alert_action_at(&acked), Some(t(1900)));
        for s in [1200, 1500, 1800, 1899] {
            assert_eq!(decide_alert(&acked, t(s)).fire, None, "at {s}");
        }
    }

    #[test]
    fn first_acknowledgement_wins() {
        let a = alert(AlertKind::Panic, 0);
        let acked = acknowledge(&a, t(10)).unwrap();
        assert_eq!(
            acknowledge(&acked, t(11)),
            Err(TransitionError::AlreadyAcknowledged)
        );
        let resolved = resolve(&a, t(12)).unwrap();
        assert_eq!(
            acknowledge(&resolved, t(13)),
            Err(TransitionError::AlreadyResolved)
        );
    }

    #[test]
    fn ack_timeout_at_level_1_reopens_at_level_2() {
        let a = alert(AlertKind::MissedCheckin, 900);
        let acked = acknowledge(&a, t(1000)).unwrap();
        let d = decide_alert(&acked, t(1900));
        assert_eq!(
            d.fire,
            Some(Step::AckTimeout {
                seq: 1,
                to_level: 2
            })
        );
        assert_eq!(d.next.status, AlertStatus::Open);
        assert_eq!(d.next.level, 2);
        assert_eq!(d.next.acknowledged_at, None);
        assert_eq!(d.next.escalated_at, Some(t(1900)));
        assert_eq!(d.next.last_pushed_at, t(1900));
        assert_eq!(d.next.ack_timeouts, 1);
        // Open again: repeats resume from the real time of the ack timeout.
        assert_eq!(next_alert_action_at(&d.next), Some(t(2200)));
        assert_eq!(
            decide_alert(&d.next, t(2200)).fire,
            Some(Step::Repeat { seq: 1, level: 2 })
        );
    }

    #[test]
    fn ack_timeout_at_level_2_is_resent_at_level_2() {
        let mut a = alert(AlertKind::Panic, 0);
        a.ack_timeouts = 1;
        let acked = acknowledge(&a, t(100)).unwrap();
        assert_eq!(next_alert_action_at(&acked), Some(t(1000)));
        assert_eq!(decide_alert(&acked, t(999)).fire, None);
        let d = decide_alert(&acked, t(1000));
        assert_eq!(
            d.fire,
            Some(Step::AckTimeout {
                seq: 2,
                to_level: 2
            })
        );
        assert_eq!(d.next.level, 2);
        assert_eq!(d.next.escalated_at, None, "the level did not rise");
        assert_eq!(d.next.status, AlertStatus::Open);
        assert_eq!(d.next.ack_timeouts, 2);
    }

    // ---- timeline row 6: resolve and all_clear -----------------------------------------

    #[test]
    fn a_resolved_alert_never_fires() {
        for status in [AlertStatus::Open, AlertStatus::Acknowledged] {
            let mut a = alert(AlertKind::MissedCheckin, 0);
            a.status = status;
            a.acknowledged_at = Some(t(1));
            let r = resolve(&a, t(5)).unwrap();
            assert_eq!(r.status, AlertStatus::Resolved);
            assert_eq!(next_alert_action_at(&r), None);
            for s in [0, 300, 600, 1_000_000] {
                let d = decide_alert(&r, t(s));
                assert_eq!(d.fire, None);
                assert_eq!(d.next, r);
            }
            assert_eq!(resolve(&r, t(6)), Err(TransitionError::AlreadyResolved));
        }
    }

    #[test]
    fn all_clear_goes_to_everyone_notified() {
        let (c, o1, o2, p) = (user(1), user(2), user(3), user(4));
        assert_eq!(
            all_clear_recipients(AlertKind::MissedCheckin, c, &[o2, c, o1, p, o1]),
            vec![c, o1, o2, p]
        );
        assert_eq!(
            all_clear_recipients(AlertKind::Duress, c, &[o2, c, o1, p, c]),
            vec![o1, o2, p]
        );
        assert!(all_clear_recipients(AlertKind::Panic, c, &[]).is_empty());
    }

    #[test]
    fn a_resolved_alert_is_replaced_by_a_new_one() {
        let r = resolve(&alert(AlertKind::Panic, 0), t(5)).unwrap();
        assert_eq!(
            open_or_upgrade(Some(&r), AlertKind::MissedCheckin),
            Opening::Open {
                kind: AlertKind::MissedCheckin,
                level: 1
            }
        );
    }

    // ---- opening and upgrading ---------------------------------------------------------

    #[test]
    fn each_kind_opens_at_its_level() {
        let expected = [
            (AlertKind::MissedCheckin, 1),
            (AlertKind::WrongPins, 1),
            (AlertKind::NeedHelp, 1),
            (AlertKind::Panic, 2),
            (AlertKind::Duress, 2),
        ];
        for (kind, level) in expected {
            assert_eq!(kind.opening_level(), level);
            assert_eq!(open_or_upgrade(None, kind), Opening::Open { kind, level });
            let a = AlertClock::new_open(kind, level, t(0), policy());
            assert_eq!(a.status, AlertStatus::Open);
            assert_eq!(a.last_pushed_at, t(0));
            // Level 2 alerts only repeat; level 1 escalates at police_after.
            // The first repeat (300) comes before a level-1 escalation (600).
            assert_eq!(next_alert_action_at(&a), Some(t(300)));
        }
    }

    #[test]
    fn step_times_come_from_the_policy() {
        let mut p = policy();
        p.reminder_before_s = 120;
        p.grace_s = 300;
        assert_eq!(reminder_at(&p, t(600)), t(480));
        assert_eq!(missed_at(&p, t(600)), t(900));
        p.grace_s = -5;
        assert_eq!(
            missed_at(&p, t(600)),
            t(600),
            "a negative grace counts as 0"
        );
    }

    #[test]
    fn wrong_pins_never_changes_an_open_alert_but_more_danger_upgrades_it() {
        for kind in AlertKind::ALL {
            assert_eq!(
                open_or_upgrade(Some(&alert(kind, 0)), AlertKind::WrongPins),
                Opening::Unchanged,
                "{kind:?}"
            );
        }
        let a = alert(AlertKind::WrongPins, 0);
        assert_eq!(
            open_or_upgrade(Some(&a), AlertKind::MissedCheckin),
            Opening::Unchanged,
            "a missed deadline does not turn a hidden alert into a visible one"
        );
        assert_eq!(
            open_or_upgrade(Some(&a), AlertKind::Duress),
            Opening::Upgrade {
                kind: AlertKind::Duress,
                from_level: 1,
                to_level: 2
            }
        );
        assert!(AlertKind::WrongPins.hidden_from_owner());
        assert!(AlertKind::Duress.hidden_from_owner());
        assert!(!AlertKind::Panic.hidden_from_owner());
        assert!(!AlertKind::WrongPins.notifies_canvasser());
    }

    #[test]
    fn panic_upgrades_an_open_missed_checkin_alert() {
        let mut a = alert(AlertKind::MissedCheckin, 900);
        a.repeats_sent = 1;
        a.last_pushed_at = t(1200);
        let opening = open_or_upgrade(Some(&a), AlertKind::Panic);
        assert_eq!(
            opening,
            Opening::Upgrade {
                kind: AlertKind::Panic,
                from_level: 1,
                to_level: 2
            }
        );
        let up = upgraded(&a, AlertKind::Panic, 2, t(1300));
        assert_eq!(up.kind, AlertKind::Panic);
        assert_eq!(up.level, 2);
        assert_eq!(up.escalated_at, Some(t(1300)));
        assert_eq!(up.last_pushed_at, t(1300));
        assert_eq!(up.opened_at, t(900));
        assert_eq!(up.repeats_sent, 1, "counters keep the keys unique");
        assert_eq!(next_alert_action_at(&up), Some(t(1600)));
        assert_eq!(
            decide_alert(&up, t(1600)).fire,
            Some(Step::Repeat { seq: 2, level: 2 })
        );
        assert_eq!(
            Step::Repeat { seq: 2, level: 2 }
                .message_type(Some(up.kind))
                .as_str(),
            "panic"
        );
    }

    #[test]
    fn need_help_upgrades_missed_checkin_at_level_1_and_keeps_the_police_deadline() {
        let a = alert(AlertKind::MissedCheckin, 900);
        assert_eq!(
            open_or_upgrade(Some(&a), AlertKind::NeedHelp),
            Opening::Upgrade {
                kind: AlertKind::NeedHelp,
                from_level: 1,
                to_level: 1
            }
        );
        let up = upgraded(&a, AlertKind::NeedHelp, 1, t(1000));
        assert_eq!(up.level, 1);
        assert_eq!(up.escalated_at, None);
        assert_eq!(next_alert_action_at(&up), Some(t(1300)));
        assert_eq!(
            decide_alert(&up, t(1500)).fire,
            Some(Step::Escalate { to_level: 2 })
        );
    }

    #[test]
    fn an_upgrade_reopens_an_acknowledged_alert() {
        let a = alert(AlertKind::MissedCheckin, 900);
        let acked = acknowledge(&a, t(1000)).unwrap();
        let Opening::Upgrade { kind, to_level, .. } =
            open_or_upgrade(Some(&acked), AlertKind::Panic)
        else {
            panic!("panic after an ack must upgrade");
        };
        let up = upgraded(&acked, kind, to_level, t(1100));
        assert_eq!(up.status, AlertStatus::Open);
        assert_eq!(up.acknowledged_at, None);
        assert_eq!(up.level, 2);
        assert_eq!(next_alert_action_at(&up), Some(t(1400)));
    }

    #[test]
    fn duress_is_never_downgraded_and_same_kind_is_unchanged() {
        let duress = alert(AlertKind::Duress, 0);
        for kind in AlertKind::ALL {
            assert_eq!(open_or_upgrade(Some(&duress), kind), Opening::Unchanged);
        }
        let panic = alert(AlertKind::Panic, 0);
        assert_eq!(
            open_or_upgrade(Some(&panic), AlertKind::Panic),
            Opening::Unchanged
        );
        assert_eq!(
            open_or_upgrade(Some(&panic), AlertKind::NeedHelp),
            Opening::Unchanged
        );
        assert_eq!(
            open_or_upgrade(Some(&panic), AlertKind::Duress),
            Opening::Upgrade {
                kind: AlertKind::Duress,
                from_level: 2,
                to_level: 2
            }
        );
    }

    #[test]
    fn severity_order() {
        let mut kinds = AlertKind::ALL;
        kinds.reverse();
        kinds.sort_by_key(|k| k.severity());
        assert_eq!(kinds, AlertKind::ALL);
    }

    // ---- recipients --------------------------------------------------------------------

    #[test]
    fn recipients_by_level_and_kind() {
        let c = user(1);
        let organisers = [user(12), user(11)];
        let companions = [user(21), user(11)]; // a companion who is also an organiser
        let police = [user(31)];
        let people = People {
            canvasser: c,
            organisers: &organisers,
            companions: &companions,
            police: &police,
        };
        assert_eq!(recipients(None, 0, &people), vec![c]);
        assert_eq!(
            recipients(Some(AlertKind::MissedCheckin), 1, &people),
            vec![c, user(11), user(12), user(21)]
        );
        assert_eq!(
            recipients(Some(AlertKind::NeedHelp), 2, &people),
            vec![c, user(11), user(12), user(21), user(31)]
        );
        assert_eq!(
            recipients(Some(AlertKind::Panic), 2, &people),
            vec![user(11), user(12), user(21), user(31)]
        );
        assert_eq!(
            recipients(Some(AlertKind::Panic), 1, &people),
            vec![user(11), user(12), user(21)]
        );
    }

    #[test]
    fn duress_never_reaches_the_canvasser() {
        let c = user(1);
        // The canvasser is also an organiser and listed as a companion: still never pushed.
        let organisers = [c, user(11)];
        let companions = [c];
        let police = [user(31), c];
        let people = People {
            canvasser: c,
            organisers: &organisers,
            companions: &companions,
            police: &police,
        };
        for kind in AlertKind::HIDDEN_FROM_OWNER {
            for level in 0..=3 {
                let to = recipients(Some(kind), level, &people);
                assert!(!to.contains(&c), "{kind:?} level {level}: {to:?}");
            }
            let all_clear = all_clear_recipients(kind, c, &[c, user(11)]);
            assert_eq!(all_clear, vec![user(11)], "{kind:?}");
        }
        assert_eq!(
            recipients(Some(AlertKind::WrongPins), 1, &people),
            vec![user(11)],
            "wrong PINs go to the organisers at level 1"
        );
        assert_eq!(
            recipients(Some(AlertKind::Duress), 2, &people),
            vec![user(11), user(31)]
        );
        let all_clear = all_clear_recipients(AlertKind::Duress, c, &[c, user(11), user(31)]);
        assert_eq!(all_clear, vec![user(11), user(31)]);
        let repeat = Step::Repeat { seq: 1, level: 2 };
        assert_eq!(
            repeat.message_type(Some(AlertKind::Duress)).as_str(),
            "duress"
        );
    }

    // ---- catch-up after downtime -------------------------------------------------------

    #[test]
    fn catch_up_after_downtime_fires_once_and_continues_from_real_time() {
        // Opened at 900; the server was down from 1000 to 5000 (escalation at 1500 and six
        // repeats were missed): one escalation at 5000, then a repeat 300 s later.
        let a = alert(AlertKind::MissedCheckin, 900);
        let d = decide_alert(&a, t(5000));
        assert_eq!(d.fire, Some(Step::Escalate { to_level: 2 }));
        assert_eq!(d.next.escalated_at, Some(t(5000)));
        assert_eq!(decide_alert(&d.next, t(5000)).fire, None, "no burst");
        assert_eq!(next_alert_action_at(&d.next), Some(t(5300)));

        // Already at level 2: a single repeat, numbered after the last one.
        let mut b = alert(AlertKind::Panic, 0);
        b.repeats_sent = 2;
        b.last_pushed_at = t(600);
        let d = decide_alert(&b, t(5000));
        assert_eq!(d.fire, Some(Step::Repeat { seq: 3, level: 2 }));
        assert_eq!(decide_alert(&d.next, t(5000)).fire, None, "no burst");
        assert_eq!(next_alert_action_at(&d.next), Some(t(5300)));

        // Acknowledged: one ack timeout, then repeats from the real time.
        let acked = acknowledge(&alert(AlertKind::MissedCheckin, 900), t(1000)).unwrap();
        let d = decide_alert(&acked, t(5000));
        assert_eq!(
            d.fire,
            Some(Step::AckTimeout {
                seq: 1,
                to_level: 2
            })
        );
        assert_eq!(decide_alert(&d.next, t(5000)).fire, None, "no burst");
        assert_eq!(next_alert_action_at(&d.next), Some(t(5300)));

        // The outing: stale reminder skipped, missed fired once.
        let p = policy();
        let mut outing = active(600);
        let d = decide_outing(&p, &outing, t(5000));
        assert_eq!(d.fire, Some(Step::Missed { due_at: t(600) }));
        apply_outing(&mut outing, &d);
        assert_eq!(decide_outing(&p, &outing, t(5000)).fire, None);
    }

    #[test]
    fn extreme_instants_and_policies_do_not_panic() {
        let huge = EscalationPolicy {
            reminder_before_s: i64::MAX,
            grace_s: i64::MAX,
            police_after_s: i64::MIN,
            repeat_s: i64::MAX,
            ack_timeout_s: i64::MIN,
            solo_max_checkin_interval_s: Some(i64::MIN),
            welfare_reply_s: i64::MAX,
            voice_after_s: i64::MIN,
        };
        for now in [DateTime::<Utc>::MIN_UTC, t(0), DateTime::<Utc>::MAX_UTC] {
            for due in [DateTime::<Utc>::MIN_UTC, t(0), DateTime::<Utc>::MAX_UTC] {
                let outing = OutingClock {
                    status: OutingStatus::Active,
                    next_checkin_due_at: Some(due),
                    reminder_sent_for: None,
                };
                let _ = decide_outing(&huge, &outing, now);
                let _ = next_outing_action_at(&huge, &outing);
                let mut a = AlertClock::new_open(AlertKind::MissedCheckin, 1, due, huge);
                a.repeats_sent = u32::MAX;
                let _ = decide_alert(&a, now);
                let _ = next_alert_action_at(&a);
            }
        }
        // At the end of time a repeat fires once, then stops (it could never come later).
        let mut end = AlertClock::new_open(AlertKind::Panic, 2, t(0), policy());
        end.last_pushed_at = add_secs(DateTime::<Utc>::MAX_UTC, -100);
        let d = decide_alert(&end, DateTime::<Utc>::MAX_UTC);
        assert!(matches!(d.fire, Some(Step::Repeat { .. })));
        assert_eq!(decide_alert(&d.next, DateTime::<Utc>::MAX_UTC).fire, None);
        assert_eq!(next_alert_action_at(&d.next), None);
    }

    // ---- whole-timeline simulation -----------------------------------------------------

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Event {
        Ack,
        Resolve,
        /// A check-in that sets the next deadline to this offset.
        CheckIn(i64),
        Raise(AlertKind),
    }

    /// One fired step: (offset s, step, message type, recipients).
    type Fired = (i64, Step, &'static str, Vec<UserId>);

    struct Sim {
        policy: EscalationPolicy,
        outing: OutingClock,
        alert: Option<AlertClock>,
        fired: Vec<Fired>,
        all_clear: Vec<(i64, Vec<UserId>)>,
        organisers: Vec<UserId>,
        companions: Vec<UserId>,
        police: Vec<UserId>,
    }

    const CANVASSER: u128 = 1;

    impl Sim {
        fn new(policy: EscalationPolicy, first_due: i64) -> Self {
            Self {
                policy,
                outing: active(first_due),
                alert: None,
                fired: Vec::new(),
                all_clear: Vec::new(),
                organisers: vec![user(11)],
                companions: vec![user(21)],
                police: vec![user(31)],
            }
        }

        fn people(&self) -> People<'_> {
            People {
                canvasser: user(CANVASSER),
                organisers: &self.organisers,
                companions: &self.companions,
                police: &self.police,
            }
        }

        fn record(&mut self, s: i64, step: Step, kind: Option<AlertKind>, level: u8) {
            let to = recipients(kind, level, &self.people());
            self.fired
                .push((s, step.clone(), step.message_type(kind).as_str(), to));
        }

        fn notified(&self) -> Vec<UserId> {
            self.fired.iter().flat_map(|f| f.3.clone()).collect()
        }

        fn raise(&mut self, s: i64, kind: AlertKind) -> Opening {
            let opening = open_or_upgrade(self.alert.as_ref(), kind);
            match opening {
                Opening::Open { kind, level } => {
                    self.alert = Some(AlertClock::new_open(kind, level, t(s), self.policy));
                }
                Opening::Upgrade { kind, to_level, .. } => {
                    let a = self.alert.as_ref().unwrap();
                    self.alert = Some(upgraded(a, kind, to_level, t(s)));
                }
                Opening::Unchanged => {}
            }
            opening
        }

        fn close_alert(&mut self, s: i64) {
            if let Some(a) = &self.alert {
                if let Ok(r) = resolve(a, t(s)) {
                    let to = all_clear_recipients(r.kind, user(CANVASSER), &self.notified());
                    self.all_clear.push((s, to));
                    self.alert = Some(r);
                }
            }
        }

        fn event(&mut self, s: i64, event: Event) {
            match event {
                Event::Ack => {
                    let a = self.alert.as_ref().expect("an alert to acknowledge");
                    self.alert = Some(acknowledge(a, t(s)).unwrap());
                }
                Event::Resolve => self.close_alert(s),
                Event::CheckIn(due) => {
                    self.outing.next_checkin_due_at = Some(t(due));
                    self.outing.status = OutingStatus::Active;
                    self.close_alert(s);
                }
                Event::Raise(kind) => {
                    self.raise(s, kind);
                }
            }
        }

        /// Everything the scheduler does at offset `s`, until nothing more fires.
        fn tick(&mut self, s: i64) {
            let now = t(s);
            for round in 0.. {
                assert!(round < 5, "no fixed point at {s}");
                let before = next_outing_action_at(&self.policy, &self.outing);
                let od = decide_outing(&self.policy, &self.outing, now);
                let outing_changed = od.reminder_sent_for != self.outing.reminder_sent_for
                    || od.status != self.outing.status;
                if let Some(step) = od.fire.clone() {
                    assert!(before.is_some_and(|b| now >= b), "early {step:?}");
                    if matches!(step, Step::Missed { .. }) {
                        // Pushed only if it opens an alert: with one open, the outing
                        // just becomes overdue.
                        let opened = self.raise(s, AlertKind::MissedCheckin);
                        if opened != Opening::Unchanged {
                            self.record(s, step, Some(AlertKind::MissedCheckin), 1);
                        }
                    } else {
                        self.record(s, step, None, 0);
                    }
                }
                apply_outing(&mut self.outing, &od);

                let mut alert_fired = false;
                if let Some(a) = self.alert.clone() {
                    let before = next_alert_action_at(&a);
                    let ad = decide_alert(&a, now);
                    if let Some(step) = ad.fire.clone() {
                        assert!(before.is_some_and(|b| now >= b), "early {step:?}");
                        let level = step.level();
                        self.record(s, step, Some(ad.next.kind), level);
                        alert_fired = true;
                    }
                    self.alert = Some(ad.next);
                }
                if od.fire.is_none() && !outing_changed && !alert_fired {
                    break;
                }
            }
        }

        fn next_wake(&self) -> Option<i64> {
            let outing = next_outing_action_at(&self.policy, &self.outing);
            let alert = self.alert.as_ref().and_then(next_alert_action_at);
            min_instant(outing, alert).map(|at| (at - t(0)).num_seconds())
        }
    }

    /// Steps a clock second by second from 0 to `until` (inclusive).
    fn simulate(
        policy: EscalationPolicy,
        first_due: i64,
        until: i64,
        events: &[(i64, Event)],
    ) -> Sim {
        let mut sim = Sim::new(policy, first_due);
        for s in 0..=until {
            for (_, event) in events.iter().filter(|(at, _)| *at == s) {
                sim.event(s, *event);
            }
            sim.tick(s);
        }
        sim
    }

    /// The same, but the scheduler sleeps until the next action time or event: it must fire
    /// exactly the same steps at exactly the same times.
    fn simulate_event_driven(
        policy: EscalationPolicy,
        first_due: i64,
        until: i64,
        events: &[(i64, Event)],
    ) -> Sim {
        let mut sim = Sim::new(policy, first_due);
        let mut s = 0;
        while s <= until {
            for (_, event) in events.iter().filter(|(at, _)| *at == s) {
                sim.event(s, *event);
            }
            sim.tick(s);
            let next_event = events.iter().map(|(at, _)| *at).filter(|at| *at > s).min();
            let wake = [sim.next_wake().map(|w| w.max(s + 1)), next_event]
                .into_iter()
                .flatten()
                .min();
            match wake {
                Some(w) => s = w,
                None => break,
            }
        }
        sim
    }

    fn steps(sim: &Sim) -> Vec<(i64, Step)> {
        sim.fired.iter().map(|f| (f.0, f.1.clone())).collect()
    }

    #[test]
    fn simulate_one_hour_unanswered_with_the_default_policy() {
        // Outing started at 0 with a 10-minute interval: due at 600. Nobody answers.
        let sim = simulate(policy(), 600, 3600, &[]);
        let due = t(600);
        let expected = vec![
            (480, Step::Reminder { due_at: due }),
            (900, Step::Missed { due_at: due }),
            (1200, Step::Repeat { seq: 1, level: 1 }),
            (1500, Step::Escalate { to_level: 2 }),
            (1800, Step::Repeat { seq: 2, level: 2 }),
            (2100, Step::Repeat { seq: 3, level: 2 }),
            (2400, Step::Repeat { seq: 4, level: 2 }),
            (2700, Step::Repeat { seq: 5, level: 2 }),
            (3000, Step::Repeat { seq: 6, level: 2 }),
            (3300, Step::Repeat { seq: 7, level: 2 }),
            (3600, Step::Repeat { seq: 8, level: 2 }),
        ];
        assert_eq!(steps(&sim), expected);
        let types: Vec<_> = sim.fired.iter().map(|f| f.2).collect();
        assert_eq!(
            types,
            [
                "checkin_reminder",
                "missed_checkin",
                "missed_checkin",
                "escalation",
                "missed_checkin",
                "missed_checkin",
                "missed_checkin",
                "missed_checkin",
                "missed_checkin",
                "missed_checkin",
                "missed_checkin",
            ]
        );
        let (c, o, m, p) = (user(1), user(11), user(21), user(31));
        assert_eq!(sim.fired[0].3, vec![c]);
        assert_eq!(sim.fired[1].3, vec![c, o, m]);
        assert_eq!(sim.fired[2].3, vec![c, o, m]);
        for f in &sim.fired[3..] {
            assert_eq!(f.3, vec![c, o, m, p], "at {}", f.0);
        }
        assert_eq!(sim.outing.status, OutingStatus::Overdue);
        let keys: BTreeSet<_> = sim.fired.iter().map(|f| f.1.key()).collect();
        assert_eq!(keys.len(), sim.fired.len(), "every step key is unique");
        assert_eq!(
            steps(&simulate_event_driven(policy(), 600, 3600, &[])),
            expected
        );
    }

    #[test]
    fn simulate_one_hour_with_acknowledgements_timeouts_and_resolve() {
        let events = [
            (1300, Event::Ack),
            (2600, Event::Ack),
            (3550, Event::Resolve),
        ];
        let sim = simulate(policy(), 600, 3600, &events);
        let due = t(600);
        let expected = vec![
            (480, Step::Reminder { due_at: due }),
            (900, Step::Missed { due_at: due }),
            (1200, Step::Repeat { seq: 1, level: 1 }),
            // acknowledged at 1300: no escalation at 1500, no repeats
            (
                2200,
                Step::AckTimeout {
                    seq: 1,
                    to_level: 2,
                },
            ),
            (2500, Step::Repeat { seq: 2, level: 2 }),
            // acknowledged at 2600
            (
                3500,
                Step::AckTimeout {
                    seq: 2,
                    to_level: 2,
                },
            ),
            // resolved at 3550: nothing more
        ];
        assert_eq!(steps(&sim), expected);
        let a = sim.alert.as_ref().unwrap();
        assert_eq!(a.status, AlertStatus::Resolved);
        assert_eq!((a.level, a.repeats_sent, a.ack_timeouts), (2, 2, 2));
        assert_eq!(a.escalated_at, Some(t(2200)));
        assert_eq!(
            sim.all_clear,
            vec![(3550, vec![user(1), user(11), user(21), user(31)])]
        );
        assert_eq!(
            steps(&simulate_event_driven(policy(), 600, 3600, &events)),
            expected
        );
    }

    #[test]
    fn simulate_check_ins_move_the_deadline_and_clear_the_alert() {
        // Check-in at 500 (after the reminder): due 1100. Missed at 1400; the canvasser checks
        // in at 1450 (due 2050): all_clear, and a fresh reminder for the new deadline.
        let events = [(500, Event::CheckIn(1100)), (1450, Event::CheckIn(2050))];
        let sim = simulate(policy(), 600, 2400, &events);
        let expected = vec![
            (480, Step::Reminder { due_at: t(600) }),
            (980, Step::Reminder { due_at: t(1100) }),
            (1400, Step::Missed { due_at: t(1100) }),
            (1930, Step::Reminder { due_at: t(2050) }),
            (2350, Step::Missed { due_at: t(2050) }),
        ];
        assert_eq!(steps(&sim), expected);
        assert_eq!(sim.all_clear.len(), 1);
        assert_eq!(sim.all_clear[0].0, 1450);
        assert_eq!(sim.alert.as_ref().unwrap().opened_at, t(2350));
        assert_eq!(
            steps(&simulate_event_driven(policy(), 600, 2400, &events)),
            expected
        );
    }

    #[test]
    fn simulate_panic_then_duress() {
        // Panic at 100 (level 2 at once), duress at 250: the canvasser hears nothing of it.
        let events = [
            (100, Event::Raise(AlertKind::Panic)),
            (250, Event::Raise(AlertKind::Duress)),
            (700, Event::Raise(AlertKind::Panic)),
            (1000, Event::Resolve),
        ];
        let mut p = policy();
        p.reminder_before_s = 0;
        let sim = simulate(p, 3000, 1200, &events);
        let expected = vec![
            (550, Step::Repeat { seq: 1, level: 2 }),
            (850, Step::Repeat { seq: 2, level: 2 }),
        ];
        assert_eq!(steps(&sim), expected);
        for f in &sim.fired {
            assert_eq!(f.2, "duress");
            assert_eq!(f.3, vec![user(11), user(21), user(31)]);
        }
        assert_eq!(sim.alert.as_ref().unwrap().kind, AlertKind::Duress);
        assert_eq!(
            sim.all_clear,
            vec![(1000, vec![user(11), user(21), user(31)])]
        );
        assert_eq!(
            steps(&simulate_event_driven(p, 3000, 1200, &events)),
            expected
        );
    }

    // ---- properties --------------------------------------------------------------------

    fn any_instant() -> impl Strategy<Value = Instant> {
        prop_oneof![
            8 => (-1000i64..200_000).prop_map(t),
            1 => Just(DateTime::<Utc>::MIN_UTC),
            1 => Just(DateTime::<Utc>::MAX_UTC),
            1 => (-8_000_000_000_000_000i64..8_000_000_000_000_000).prop_map(from_millis),
        ]
    }

    fn any_duration() -> impl Strategy<Value = i64> {
        prop_oneof![
            8 => 0i64..2000,
            2 => -5i64..5,
            1 => Just(i64::MAX),
            1 => Just(i64::MIN),
            1 => any::<i64>(),
        ]
    }

    fn any_policy() -> impl Strategy<Value = EscalationPolicy> {
        (
            any_duration(),
            any_duration(),
            any_duration(),
            any_duration(),
            any_duration(),
        )
            .prop_map(|(r, g, p, rep, ack)| EscalationPolicy {
                reminder_before_s: r,
                grace_s: g,
                police_after_s: p,
                repeat_s: rep,
                ack_timeout_s: ack,
                solo_max_checkin_interval_s: None,
                welfare_reply_s: 120,
                voice_after_s: 60,
            })
    }

    fn any_outing_status() -> impl Strategy<Value = OutingStatus> {
        prop_oneof![
            4 => Just(OutingStatus::Active),
            1 => Just(OutingStatus::Overdue),
            1 => Just(OutingStatus::Ended),
        ]
    }

    fn any_outing() -> impl Strategy<Value = OutingClock> {
        (
            any_outing_status(),
            proptest::option::weighted(0.9, any_instant()),
            0u8..3,
            any_instant(),
        )
            .prop_map(|(status, due, sent, other)| OutingClock {
                status,
                next_checkin_due_at: due,
                reminder_sent_for: match sent {
                    0 => None,
                    1 => due,
                    _ => Some(other),
                },
            })
    }

    fn any_kind() -> impl Strategy<Value = AlertKind> {
        prop::sample::select(AlertKind::ALL.to_vec())
    }

    fn any_alert_status() -> impl Strategy<Value = AlertStatus> {
        prop::sample::select(vec![
            AlertStatus::Open,
            AlertStatus::Acknowledged,
            AlertStatus::Resolved,
        ])
    }

    fn any_counter() -> impl Strategy<Value = u32> {
        prop_oneof![8 => 0u32..5, 1 => (u32::MAX - 3)..=u32::MAX]
    }

    fn any_alert() -> impl Strategy<Value = AlertClock> {
        (
            (any_kind(), 0u8..4, any_alert_status()),
            (any_instant(), any_instant(), any_instant(), any_instant()),
            (any_counter(), any_counter()),
            any_policy(),
            any::<(bool, bool)>(),
        )
            .prop_map(
                |(
                    (kind, level, status),
                    (opened, esc, ack, pushed),
                    (reps, acks),
                    policy,
                    (e, a),
                )| {
                    AlertClock {
                        kind,
                        level,
                        status,
                        opened_at: opened,
                        escalated_at: e.then_some(esc),
                        acknowledged_at: a.then_some(ack),
                        last_pushed_at: pushed,
                        repeats_sent: reps,
                        ack_timeouts: acks,
                        policy,
                    }
                },
            )
    }

    /// Increasing clock readings: small and large jumps (downtime), repeated readings.
    fn any_nows() -> impl Strategy<Value = (Instant, Vec<i64>)> {
        (
            any_instant(),
            prop::collection::vec(prop_oneof![3 => 0i64..400, 1 => 0i64..100_000], 1..30),
        )
    }

    fn any_ids() -> impl Strategy<Value = Vec<UserId>> {
        prop::collection::vec((0u128..8).prop_map(user), 0..6)
    }

    proptest! {
        #[test]
        fn outing_never_fires_before_its_next_action(
            policy in any_policy(), outing in any_outing(), now in any_instant()
        ) {
            let d = decide_outing(&policy, &outing, now);
            let next = next_outing_action_at(&policy, &outing);
            if let Some(step) = &d.fire {
                prop_assert!(next.is_some_and(|at| now >= at), "{step:?} before {next:?}");
            }
            // And something happens once it is due (or the deadline is skipped past).
            if next.is_some_and(|at| now >= at) {
                prop_assert!(
                    d.fire.is_some()
                        || d.reminder_sent_for != outing.reminder_sent_for
                        || d.status != outing.status
                );
            }
            if outing.status != OutingStatus::Active {
                prop_assert_eq!(d.fire, None);
                prop_assert_eq!(next, None);
            }
        }

        #[test]
        fn alert_never_fires_before_its_next_action(alert in any_alert(), now in any_instant()) {
            let d = decide_alert(&alert, now);
            let next = next_alert_action_at(&alert);
            if let Some(step) = &d.fire {
                prop_assert!(next.is_some_and(|at| now >= at), "{step:?} before {next:?}");
                prop_assert!((1..=2).contains(&step.level()));
                prop_assert_eq!(d.next.status, AlertStatus::Open);
            } else {
                prop_assert_eq!(&d.next, &alert);
            }
            if next.is_some_and(|at| now >= at) {
                prop_assert!(d.fire.is_some(), "due at {next:?} but nothing fired at {now:?}");
            }
            if alert.status == AlertStatus::Resolved {
                prop_assert_eq!(d.fire, None);
                prop_assert_eq!(next, None);
            }
        }

        #[test]
        fn outing_decisions_terminate_and_never_repeat_a_step(
            policy in any_policy(), outing in any_outing(), (start, gaps) in any_nows()
        ) {
            let mut outing = outing;
            let mut now = start;
            let mut keys = BTreeSet::new();
            for gap in gaps {
                now = add_secs(now, gap);
                let mut rounds = 0;
                loop {
                    rounds += 1;
                    prop_assert!(rounds <= 3, "no fixed point at {now:?}");
                    let d = decide_outing(&policy, &outing, now);
                    let changed = d.reminder_sent_for != outing.reminder_sent_for
                        || d.status != outing.status;
                    if let Some(step) = &d.fire {
                        prop_assert!(keys.insert(step.key()), "{step:?} fired twice");
                    }
                    apply_outing(&mut outing, &d);
                    if d.fire.is_none() && !changed {
                        break;
                    }
                }
            }
            prop_assert!(keys.len() <= 2);
        }

        #[test]
        fn alert_decisions_terminate_and_never_repeat_a_step(
            alert in any_alert(), (start, gaps) in any_nows()
        ) {
            let mut alert = alert;
            let mut now = start;
            let mut keys = BTreeSet::new();
            for gap in gaps {
                now = add_secs(now, gap);
                let mut fired_now = 0;
                loop {
                    let d = decide_alert(&alert, now);
                    let Some(step) = d.fire else {
                        prop_assert_eq!(&d.next, &alert);
                        break;
                    };
                    fired_now += 1;
                    prop_assert!(fired_now <= 1, "a burst at {now:?}: {step:?}");
                    prop_assert!(keys.insert(step.key()), "{step:?} fired twice");
                    alert = d.next;
                }
            }
        }

        #[test]
        fn recipients_are_unique_and_hidden_kinds_never_reach_the_canvasser(
            canvasser in (0u128..8).prop_map(user),
            organisers in any_ids(),
            companions in any_ids(),
            police in any_ids(),
            kind in proptest::option::of(any_kind()),
            level in 0u8..4,
        ) {
            let people = People {
                canvasser,
                organisers: &organisers,
                companions: &companions,
                police: &police,
            };
            let to = recipients(kind, level, &people);
            let unique: BTreeSet<_> = to.iter().collect();
            prop_assert_eq!(unique.len(), to.len(), "duplicates in {:?}", to);
            if kind.is_some_and(AlertKind::hidden_from_owner) {
                prop_assert!(!to.contains(&canvasser));
            }
            // Deterministic: the order of the inputs does not matter.
            let rev = |v: &[UserId]| v.iter().rev().copied().collect::<Vec<_>>();
            let (o, c, p) = (rev(&organisers), rev(&companions), rev(&police));
            let reversed = People { canvasser, organisers: &o, companions: &c, police: &p };
            prop_assert_eq!(&recipients(kind, level, &reversed), &to);
            // Each level includes the one below it (a duress alert aside at level 0).
            if level >= 1 {
                let below = recipients(kind, level - 1, &people);
                for id in below.iter().filter(|id| level > 1 || **id != canvasser) {
                    prop_assert!(to.contains(id));
                }
            }

            let notified: Vec<UserId> = to.iter().chain(&organisers).copied().chain([canvasser]).collect();
            let all_clear = all_clear_recipients(kind.unwrap_or(AlertKind::Panic), canvasser, &notified);
            let unique: BTreeSet<_> = all_clear.iter().collect();
            prop_assert_eq!(unique.len(), all_clear.len());
            prop_assert_eq!(
                all_clear.contains(&canvasser),
                !kind.is_some_and(AlertKind::hidden_from_owner)
            );
        }
    }
}
