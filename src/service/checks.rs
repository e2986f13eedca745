//! What a canvasser or their contacts change on an outing under way: "check on me in 10
//! minutes", "are you OK?" and its answer from the phone's notification, a new interval or
//! planned end, and the owner's own "all clear" for a false alarm.

use sha2::{Digest, Sha256};

use crate::domain::account::Role;
use crate::domain::caller::Caller;
use crate::domain::checkin::{CheckinInterval, CheckinKind, PinCheck};
use crate::domain::checks::{self, CheckOnMe};
use crate::domain::deadline::{deadline_after_checkin, earliest_due, next_checkin_due_at};
use crate::domain::delivery::MessageType;
use crate::domain::escalation::{AlertKind, AlertStatus, OutingStatus};
use crate::domain::ids::OutingId;
use crate::domain::policy::EscalationPolicy;
use crate::domain::time::{from_millis, to_millis, Instant};
use crate::domain::visibility::OutingVisibility;
use crate::error::AppError;
use crate::service::alerts;
use crate::service::escalation::clear_pending_checks;
use crate::service::facts::{org_policy, reschedule};
use crate::service::notify::{self, Lookups, StepRecord};
use crate::service::outings::visibility;
use crate::store::outings::OutingRow;
use crate::store::{self, DbConn};

/// The outing's own, for update: 404 when the caller cannot see it, 403 when it is someone
/// else's, 409 when it has ended.
fn own_running_outing(
    conn: &mut DbConn,
    caller: &Caller,
    id: OutingId,
) -> Result<OutingRow, AppError> {
    let row = crate::service::outings::own_outing_for_update(conn, caller, id)?;
    if row.status == OutingStatus::Ended {
        return Err(AppError::Conflict("this outing has ended".into()));
    }
    Ok(row)
}

/// The regular deadline from the last check-in (or the start), capped by the planned end.
fn regular_due(outing: &OutingRow) -> Instant {
    next_checkin_due_at(
        from_millis(outing.last_received_at),
        outing.checkin_interval_s,
        outing.planned_end_at.map(from_millis),
    )
}

/// Sets `next_checkin_due_at` to the earliest of the regular and the pending deadlines; `quiet` deadlines (a short
/// check-on-me, a welfare check) get no reminder before them.
fn set_due(outing: &mut OutingRow, quiet: &[Instant]) {
    let due = earliest_due(
        regular_due(outing),
        [
            outing.check_on_me_due_at.map(from_millis),
            outing.welfare_due_at.map(from_millis),
        ],
    );
    outing.next_checkin_due_at = Some(to_millis(due));
    if quiet.contains(&due) {
        outing.reminder_sent_for = Some(to_millis(due));
    }
}

/// "Check on me": a one-off deadline `in_s` from now, with a note that the missed alert
/// carries. A new one replaces a pending one. Returns the outing and the new deadline.
pub fn check_on_me(
    conn: &mut DbConn,
    caller: &Caller,
    outing_id: OutingId,
    check: CheckOnMe,
    default_policy: &EscalationPolicy,
    now_ms: i64,
) -> Result<(OutingRow, i64), AppError> {
    let mut outing = own_running_outing(conn, caller, outing_id)?;
    if outing.status == OutingStatus::Overdue {
        return Err(AppError::Conflict(
            "your check-in is overdue: check in first, then ask to be checked on".into(),
        ));
    }
    let due = checks::due_in(from_millis(now_ms), check.in_s);
    outing.check_on_me_due_at = Some(to_millis(due));
    outing.check_on_me_note = check.note.clone();
    let quiet = if checks::reminds(&check) {
        Vec::new()
    } else {
        vec![due]
    };
    set_due(&mut outing, &quiet);
    let policy = org_policy(conn, outing.org_id, default_policy)?;
    reschedule(&mut outing, &policy)?;
    outing.updated_at = now_ms;
    store::outings::update(conn, &outing)?;
    Ok((outing, to_millis(due)))
}

/// "Are you OK?" from an organiser of the outing's organisation or a police contact who may see
/// the outing: pushes `welfare_check` to the canvasser, whose notification answers with a
/// one-off token; no answer within the policy's `welfare_reply_s` (plus grace) opens a missed
/// check-in alert at level 1. A new question replaces a pending one.
pub fn welfare_check(
    conn: &mut DbConn,
    caller: &Caller,
    outing_id: OutingId,
    note: Option<String>,
    default_policy: &EscalationPolicy,
    now_ms: i64,
) -> Result<(OutingRow, i64), AppError> {
    let mut outing =
        store::outings::find_for_update(conn, outing_id)?.ok_or(AppError::NotFound("outing"))?;
    match visibility(conn, caller, &outing)?.visibility {
        OutingVisibility::None => return Err(AppError::NotFound("outing")),
        _ if matches!(caller.role, Role::Organiser | Role::Police)
            && outing.canvasser_id != caller.id => {}
        _ => {
            return Err(AppError::Forbidden(
                "only the organisers and police contacts ask \"are you OK?\"".into(),
            ))
        }
    }
    if outing.status == OutingStatus::Ended {
        return Err(AppError::Conflict("this outing has ended".into()));
    }
    let policy = org_policy(conn, outing.org_id, default_policy)?;
    let due = checks::due_in(from_millis(now_ms), policy.welfare_reply_s);
    let token = reply_token();
    outing.welfare_due_at = Some(to_millis(due));
    outing.welfare_note = note.clone();
    outing.welfare_token_hash = Some(hash_token(&token));
    if outing.status == OutingStatus::Active {
        set_due(&mut outing, &[due]);
    }
    reschedule(&mut outing, &policy)?;
    outing.updated_at = now_ms;
    let recipients = [outing.canvasser_id];
    notify::record(
        conn,
        &mut Lookups::default(),
        &StepRecord {
            outing: &outing,
            alert: None,
            step_key: &format!("welfare:{now_ms}"),
            message_type: MessageType::WelfareCheck,
            level: 0,
            recipients: &recipients,
            due_at_ms: Some(now_ms),
            // An answer after the deadline is too late to matter to this question.
            expires_at_ms: Some(to_millis(due)),
            resolution: None,
            caution: None,
            welfare: Some((note.as_deref(), &token)),
        },
        now_ms,
    )?;
    store::outings::update(conn, &outing)?;
    Ok((outing, to_millis(due)))
}

/// 128 random bits, base64url: what the phone's notification answers a welfare check with.
fn reply_token() -> String {
    use base64::Engine;
    let bytes: [u8; 16] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The answer to a welfare check from the phone's notification ("I'm OK" / "I need help"),
/// authorised by the question's token alone (the service worker holds no login). It counts
/// as a check-in without a position: the deadline restarts from now, pending checks are
/// cleared, a missed check-in alert is resolved; "I need help" raises `need_help`. A token
/// that is unknown, answered already or for another outing is a 404.
pub fn welfare_reply(
    conn: &mut DbConn,
    outing_id: OutingId,
    token: &str,
    kind: CheckinKind,
    default_policy: &EscalationPolicy,
    now_ms: i64,
) -> Result<OutingRow, AppError> {
    let mut outing =
        store::outings::find_for_update(conn, outing_id)?.ok_or(AppError::NotFound("outing"))?;
    if outing.welfare_token_hash.as_deref() != Some(hash_token(token).as_str())
        || outing.status == OutingStatus::Ended
    {
        return Err(AppError::NotFound("welfare check"));
    }
    let policy = org_policy(conn, outing.org_id, default_policy)?;
    let current = outing.next_checkin_due_at.map(from_millis);
    let now = from_millis(now_ms);
    let regular = deadline_after_checkin(
        current.unwrap_or(now),
        now,
        outing.checkin_interval_s,
        outing.planned_end_at.map(from_millis),
    );
    clear_pending_checks(&mut outing);
    outing.next_checkin_due_at = Some(to_millis(regular));
    outing.last_received_at = now_ms;
    store::outings::record_event(
        conn,
        &outing.id.to_string(),
        match kind {
            CheckinKind::Ok => "welfare.ok",
            CheckinKind::NeedHelp => "welfare.need_help",
        },
        now_ms,
        None,
    )?;
    match kind {
        CheckinKind::Ok => {
            if outing.status == OutingStatus::Overdue {
                outing.status = OutingStatus::Active;
            }
            crate::service::outings::resolve_open_alert(conn, &mut outing, "checked_in", now_ms)?;
        }
        CheckinKind::NeedHelp => {
            let raised = alerts::raise(
                conn,
                &mut Lookups::default(),
                &mut outing,
                AlertKind::NeedHelp,
                None,
                &policy,
                now_ms,
            )?;
            notify::alert_raised(conn, &outing, &raised, now_ms)?;
        }
    }
    reschedule(&mut outing, &policy)?;
    outing.updated_at = now_ms;
    store::outings::update(conn, &outing)?;
    Ok(outing)
}

/// A change to an outing under way (`PATCH /outings/{id}`): each field is left alone when
/// `None`; `planned_end_at: Some(None)` removes the planned end.
pub struct OutingChange {
    pub interval: Option<CheckinInterval>,
    pub planned_end_at: Option<Option<Instant>>,
    pub note: Option<Option<String>>,
}

/// Changes the interval, planned end or note of the caller's outing. The deadline is
/// recomputed from the last check-in (it may move earlier); the rules that held at the start
/// hold again: the minimum interval (parsed already) and the solo maximum of the policy.
pub fn change(
    conn: &mut DbConn,
    caller: &Caller,
    outing_id: OutingId,
    change: OutingChange,
    default_policy: &EscalationPolicy,
    now_ms: i64,
) -> Result<OutingRow, AppError> {
    let mut outing = own_running_outing(conn, caller, outing_id)?;
    let policy = org_policy(conn, outing.org_id, default_policy)?;
    if let Some(interval) = change.interval {
        if let Some(max) = policy.solo_max_checkin_interval_s {
            if outing.solo && interval.as_secs() > max {
                return Err(AppError::field(
                    "checkin_interval_s",
                    format!(
                        "must be at most {max} s when canvassing alone (your organisation's rule)"
                    ),
                ));
            }
        }
        outing.checkin_interval_s = interval.as_secs();
    }
    if let Some(end) = change.planned_end_at {
        if end.is_some_and(|end| to_millis(end) <= now_ms) {
            return Err(AppError::field(
                "planned_end_at",
                "must be in the future (to stop now, end the outing)",
            ));
        }
        outing.planned_end_at = end.map(to_millis);
    }
    if let Some(note) = change.note {
        outing.note = note;
    }
    if outing.status == OutingStatus::Active {
        let quiet: Vec<Instant> = outing.welfare_due_at.map(from_millis).into_iter().collect();
        set_due(&mut outing, &quiet);
    }
    reschedule(&mut outing, &policy)?;
    outing.updated_at = now_ms;
    store::outings::update(conn, &outing)?;
    Ok(outing)
}

/// What the owner's "all clear" did.
pub enum AllClear {
    /// The open alert is resolved as a false alarm (or, with the duress PIN, looks so).
    Cleared(Box<OutingRow>),
    /// There was no alert the owner may cancel (none, or one hidden from them): a 409, after
    /// whatever the duress PIN raised is committed.
    NothingToClear,
}

/// The owner cancels their own open `panic`, `need_help` or `missed_checkin` alert
/// (`resolution: false_alarm`, `all_clear` to everyone told). With the duress PIN it answers
/// exactly the same, and the alert silently becomes `duress`. A wrong or missing PIN never
/// gets here (the caller checks it under the wrong-PIN lockout).
pub fn all_clear(
    conn: &mut DbConn,
    caller: &Caller,
    outing_id: OutingId,
    pin: PinCheck,
    default_policy: &EscalationPolicy,
    now_ms: i64,
) -> Result<AllClear, AppError> {
    let mut outing = own_running_outing(conn, caller, outing_id)?;
    match pin {
        PinCheck::Wrong => return Err(AppError::Forbidden("wrong PIN".into())),
        PinCheck::Missing => return Err(AppError::field("pin", "is required: you have set PINs")),
        PinCheck::NotSet | PinCheck::Safe | PinCheck::Duress => {}
    }
    let policy = org_policy(conn, outing.org_id, default_policy)?;
    let open = match outing.open_alert_id {
        Some(id) => {
            store::alerts::find_for_update(conn, id)?.filter(|a| a.status != AlertStatus::Resolved)
        }
        None => None,
    };
    // What the owner may see of it: an alert hidden from them is, to them, no alert.
    let cancellable = open.filter(|a| {
        matches!(
            a.kind,
            AlertKind::Panic | AlertKind::NeedHelp | AlertKind::MissedCheckin
        )
    });
    if pin == PinCheck::Duress {
        let raised = alerts::raise(
            conn,
            &mut Lookups::default(),
            &mut outing,
            AlertKind::Duress,
            None,
            &policy,
            now_ms,
        )?;
        notify::alert_raised(conn, &outing, &raised, now_ms)?;
    }
    let Some(mut alert) = cancellable else {
        outing.updated_at = now_ms;
        store::outings::update(conn, &outing)?;
        return Ok(AllClear::NothingToClear);
    };
    if pin != PinCheck::Duress {
        alerts::resolve(
            conn,
            &mut alert,
            "false_alarm",
            Some(caller.id),
            None,
            now_ms,
        )?;
        notify::all_clear(conn, &outing, &alert, now_ms)?;
        outing.open_alert_id = None;
    }
    // Either way the phone shows what a cleared alert looks like: active, the deadline
    // restarted from now.
    clear_pending_checks(&mut outing);
    outing.status = OutingStatus::Active;
    outing.last_received_at = now_ms;
    outing.next_checkin_due_at = Some(to_millis(regular_due(&outing)));
    reschedule(&mut outing, &policy)?;
    outing.updated_at = now_ms;
    store::outings::update(conn, &outing)?;
    Ok(AllClear::Cleared(Box::new(outing)))
}
