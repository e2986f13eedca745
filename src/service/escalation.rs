//! The escalation steps the scheduler fires: a reminder or a missed check-in on an outing, a
//! repeat, an escalation or an acknowledgement timeout on an alert. The domain decides what is
//! due (`domain::escalation::decide_outing`, `decide_alert`); these record it: the alert, the
//! outbox rows, the event, the outing's next time. The scheduler only claims rows, calls these
//! inside its transaction, and commits.

use crate::domain::checks;
use crate::domain::escalation::{self, AlertKind, Step};
use crate::domain::policy::EscalationPolicy;
use crate::domain::time::{from_millis, to_millis};
use crate::error::AppError;
use crate::service::alerts::{self, Raising};
use crate::service::facts::{self, Raised};
use crate::service::notify::{self, Lookups, OutingPeople, StepRecord};
use crate::store::alerts::AlertRow;
use crate::store::outings::OutingRow;
use crate::store::{self, DbConn};

fn record_lag(scheduled_ms: i64, now_ms: i64, step: &Step) {
    let lag_s = (now_ms - scheduled_ms).max(0) as f64 / 1000.0;
    let name = match step {
        Step::Reminder { .. } => "reminder",
        Step::Missed { .. } => "missed",
        Step::Repeat { .. } => "repeat",
        Step::Escalate { .. } => "escalate",
        Step::AckTimeout { .. } => "ack_timeout",
    };
    metrics::histogram!("doorstep_detection_lag_seconds", "step" => name).record(lag_s);
    metrics::counter!("doorstep_escalation_steps_total", "step" => name).increment(1);
}

/// Applies every outing step due at `now_ms` (a reminder, a missed check-in), then reschedules.
pub fn fire_outing(
    conn: &mut DbConn,
    lookups: &mut Lookups,
    mut outing: OutingRow,
    now_ms: i64,
    default_policy: &EscalationPolicy,
) -> Result<(), AppError> {
    let policy = lookups.policy(conn, outing.org_id, default_policy)?;
    let before = outing.clone();
    let now = from_millis(now_ms);
    // At most a skipped reminder and a missed check-in can be due together.
    for _ in 0..3 {
        let clock = facts::outing_clock(&outing)?;
        let decision = escalation::decide_outing(&policy, &clock, now);
        outing.reminder_sent_for = decision.reminder_sent_for.map(to_millis);
        outing.status = decision.status;
        let Some(step) = decision.fire else {
            break;
        };
        match &step {
            Step::Reminder { due_at } => {
                let scheduled = to_millis(escalation::reminder_at(&policy, *due_at));
                let recipients = [outing.canvasser_id];
                notify::record(
                    conn,
                    lookups,
                    &StepRecord {
                        outing: &outing,
                        alert: None,
                        step_key: &step.key(),
                        message_type: step.message_type(None),
                        level: 0,
                        recipients: &recipients,
                        due_at_ms: Some(scheduled),
                        // A reminder after its deadline is noise.
                        expires_at_ms: Some(to_millis(*due_at)),
                        resolution: None,
                        caution: None,
                        welfare: None,
                    },
                    now_ms,
                )?;
                record_lag(scheduled, now_ms, &step);
            }
            Step::Missed { due_at } => {
                let scheduled = to_millis(escalation::missed_at(&policy, *due_at));
                // A missed check-on-me or "are you OK?" says so on the alert; the alert now
                // stands for every pending deadline, so they are spent.
                let missed = checks::which_missed(
                    *due_at,
                    outing.check_on_me_due_at.map(from_millis),
                    outing.welfare_due_at.map(from_millis),
                );
                let note = match missed {
                    checks::Missed::CheckOnMe => outing.check_on_me_note.clone(),
                    checks::Missed::Welfare => outing.welfare_note.clone(),
                    checks::Missed::Regular => None,
                };
                clear_pending_checks(&mut outing);
                let raised = alerts::raise(
                    conn,
                    lookups,
                    &mut outing,
                    Raising {
                        kind: AlertKind::MissedCheckin,
                        reason: checks::reason(missed, note.as_deref()),
                    },
                    None,
                    &policy,
                    now_ms,
                )?;
                if let Raised::Opened(alert) = &raised {
                    let people = OutingPeople::load(conn, lookups, &outing)?;
                    let recipients = people.recipients(Some(AlertKind::MissedCheckin), 1);
                    notify::record(
                        conn,
                        lookups,
                        &StepRecord {
                            outing: &outing,
                            alert: Some(alert),
                            step_key: &step.key(),
                            message_type: step.message_type(None),
                            level: 1,
                            recipients: &recipients,
                            due_at_ms: Some(scheduled),
                            expires_at_ms: None,
                            resolution: None,
                            caution: None,
                            welfare: None,
                        },
                        now_ms,
                    )?;
                }
                record_lag(scheduled, now_ms, &step);
            }
            // Alert steps are the alert's own (see fire_alert).
            _ => break,
        }
    }
    facts::reschedule(&mut outing, &policy)?;
    outing.updated_at = now_ms;
    lookups.save_outing(conn, &before, outing)
}

/// Forgets a pending check-on-me and "are you OK?" (answered, or overtaken by an alert).
pub fn clear_pending_checks(outing: &mut OutingRow) {
    outing.check_on_me_due_at = None;
    outing.check_on_me_note = None;
    outing.welfare_due_at = None;
    outing.welfare_note = None;
    outing.welfare_token_hash = None;
}

/// Applies every step of an alert due at `now_ms` (repeat, escalation, ack timeout).
pub fn fire_alert(
    conn: &mut DbConn,
    lookups: &mut Lookups,
    mut alert: AlertRow,
    now_ms: i64,
) -> Result<(), AppError> {
    let outing_id: crate::domain::ids::OutingId =
        store::accounts::parse_id(&alert.outing_id.to_string(), "outing")?;
    let outing = store::outings::find(conn, outing_id)?
        .ok_or_else(|| AppError::internal(format!("alert {} has no outing", alert.id)))?;
    let now = from_millis(now_ms);
    let mut people: Option<OutingPeople> = None;
    for _ in 0..3 {
        let clock = alerts::clock_of(&alert)?;
        let scheduled = alert.next_action_at.unwrap_or(now_ms);
        let decision = escalation::decide_alert(&clock, now);
        let Some(step) = decision.fire else {
            break;
        };
        alerts::apply_clock(&mut alert, &decision.next, now_ms);
        let kind = decision.next.kind;
        let level = step.level();
        if people.is_none() {
            people = Some(OutingPeople::load(conn, lookups, &outing)?);
        }
        let recipients = people
            .as_ref()
            .map(|p| p.recipients(Some(kind), level))
            .unwrap_or_default();
        notify::record(
            conn,
            lookups,
            &StepRecord {
                outing: &outing,
                alert: Some(&alert),
                step_key: &step.key(),
                message_type: step.message_type(Some(kind)),
                level,
                recipients: &recipients,
                due_at_ms: Some(scheduled),
                expires_at_ms: None,
                resolution: None,
                caution: None,
                welfare: None,
            },
            now_ms,
        )?;
        if matches!(step, Step::Escalate { .. } | Step::AckTimeout { .. }) {
            lookups.record_event(conn, &alert, "alert.escalated", now_ms)?;
        }
        record_lag(scheduled, now_ms, &step);
    }
    let clock = alerts::clock_of(&alert)?;
    alerts::apply_clock(&mut alert, &clock, now_ms);
    Ok(store::alerts::update(conn, &alert)?)
}
