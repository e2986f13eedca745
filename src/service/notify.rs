//! Recording escalation steps in the outbox: who gets what, exactly once.

use std::collections::HashMap;

use crate::domain::delivery::{Channel, DeliveryStatus, MessageType};
use crate::domain::escalation::{self, AlertKind, People};
use crate::domain::ids::{OrgId, UserId};
use crate::domain::policy::EscalationPolicy;
use crate::error::AppError;
use crate::push::payload::{self, CanvasserRef, Location, Message};
use crate::service::facts::{self, last_location_of, LastLocation, Raised};
use crate::store::alerts::AlertRow;
use crate::store::events::NewEvent;
use crate::store::notifications::NotificationRow;
use crate::store::outings::OutingRow;
use crate::store::{self, new_id, DbConn};

/// How long an alert message may wait for delivery (push TTL and retry horizon).
pub const ALERT_TTL_MS: i64 = 24 * 3600 * 1000;

/// `last_error` of a push to someone with no push subscription.
pub const NO_SUBSCRIPTION: &str = "the recipient has no push subscription";

/// Whether a step is part of an alert (level ≥ 1, or its all-clear): those go to every channel.
/// Reminders, tests and the organisers' notices (`left_area`, `low_battery`) go by push only.
fn is_alert_step(step: &StepRecord<'_>) -> bool {
    step.alert.is_some()
        && (step.level >= 1 || step.message_type == MessageType::AllClear)
        && !step.message_type.is_routine()
}

/// One step to record.
pub struct StepRecord<'a> {
    pub outing: &'a OutingRow,
    pub alert: Option<&'a AlertRow>,
    /// Unique within the alert (or the outing, for reminders): `missed:<due>`, `repeat:3`...
    pub step_key: &'a str,
    pub message_type: MessageType,
    pub level: u8,
    pub recipients: &'a [UserId],
    /// When the step was due: the detection lag is measured from here.
    pub due_at_ms: Option<i64>,
    /// Delivery is pointless after this (a reminder after its deadline).
    pub expires_at_ms: Option<i64>,
    pub resolution: Option<&'a str>,
    /// A `caution` step's caution: its id and reason.
    pub caution: Option<(&'a str, &'a str)>,
    /// A `welfare_check`: the asker's note, and the token its "I'm OK" / "I need help" answer
    /// with (the phone's service worker has no login).
    pub welfare: Option<(Option<&'a str>, &'a str)>,
}

/// Facts that many steps of one transaction share, read once: a scheduler batch fires steps
/// for many outings of the same few organisations. It lives for one transaction only, so it
/// never serves anything staler than the transaction itself would see.
#[derive(Default)]
pub struct Lookups {
    policies: HashMap<OrgId, EscalationPolicy>,
    organisers: HashMap<OrgId, Vec<UserId>>,
    police: HashMap<OrgId, Vec<UserId>>,
    org_webhook: HashMap<String, bool>,
    /// user id → (email alerts on, personal webhook set).
    channels: HashMap<String, (bool, bool)>,
    /// user id → display name.
    names: HashMap<String, String>,
    /// user id → has at least one push subscription.
    subscribed: HashMap<String, bool>,
    /// Latest check-in id → where it was (the location a new alert starts with).
    locations: HashMap<String, Option<LastLocation>>,
    /// Writes held back to be made together by [`Lookups::flush`].
    deferred: Option<Deferred>,
}

/// A scheduler batch's writes, held back to its end: on PostgreSQL a statement per kind for
/// the whole batch instead of a round trip per step.
#[derive(Default)]
struct Deferred {
    alerts: Vec<AlertRow>,
    events: Vec<NewEvent>,
    /// Outings whose step columns alone changed (`only_step_columns_differ`).
    step_outings: Vec<OutingRow>,
    /// Any other changed outing, written whole.
    outings: Vec<OutingRow>,
    notifications: Vec<NotificationRow>,
}

/// The memoised answer for `key`, loading it on first use.
fn memo<K: std::hash::Hash + Eq, V: Clone>(
    map: &mut HashMap<K, V>,
    key: K,
    load: impl FnOnce() -> Result<V, AppError>,
) -> Result<V, AppError> {
    if let Some(value) = map.get(&key) {
        return Ok(value.clone());
    }
    let value = load()?;
    map.insert(key, value.clone());
    Ok(value)
}

impl Lookups {
    /// Lookups that also hold back what a scheduler batch writes (new alerts, their events,
    /// outings, outbox rows) for [`Lookups::flush`] to write together before the transaction
    /// ends. Nothing in a batch reads those rows back before the flush: each outing and alert
    /// is claimed once per batch, and the dedupe key still decides, row by row, which outbox
    /// rows are new.
    pub fn deferring_writes() -> Lookups {
        Lookups {
            deferred: Some(Deferred::default()),
            ..Lookups::default()
        }
    }

    /// Makes the writes held back so far (see [`Lookups::deferring_writes`]), parents first
    /// (an outing and an outbox row refer to their alert); returns how many outbox rows were
    /// new.
    pub fn flush(&mut self, conn: &mut DbConn) -> Result<usize, AppError> {
        let Some(deferred) = self.deferred.as_mut() else {
            return Ok(0);
        };
        let Deferred {
            alerts,
            events,
            step_outings,
            outings,
            notifications,
        } = std::mem::take(deferred);
        store::alerts::insert_all(conn, &alerts)?;
        store::events::record_all(conn, &events)?;
        store::outings::update_after_steps(conn, &step_outings)?;
        for outing in &outings {
            store::outings::update(conn, outing)?;
        }
        if notifications.is_empty() {
            return Ok(0);
        }
        Ok(store::notifications::insert_all_if_new(
            conn,
            &notifications,
        )?)
    }

    /// Inserts a new alert, now or at the flush.
    pub fn insert_alert(&mut self, conn: &mut DbConn, row: AlertRow) -> Result<(), AppError> {
        match self.deferred.as_mut() {
            Some(deferred) => deferred.alerts.push(row),
            None => store::alerts::insert(conn, &row)?,
        }
        Ok(())
    }

    /// Appends to the alert event log, now or at the flush.
    pub fn record_event(
        &mut self,
        conn: &mut DbConn,
        alert: &AlertRow,
        event: &str,
        at: i64,
    ) -> Result<(), AppError> {
        match self.deferred.as_mut() {
            Some(deferred) => deferred.events.push(NewEvent {
                alert_id: alert.id.to_string(),
                org_id: alert.org_id.to_string(),
                event: event.to_owned(),
                at,
            }),
            None => store::events::record(
                conn,
                &alert.id.to_string(),
                &alert.org_id.to_string(),
                event,
                at,
            )?,
        }
        Ok(())
    }

    /// Saves an outing read as `before` (and locked) in this transaction, now or at the flush.
    pub fn save_outing(
        &mut self,
        conn: &mut DbConn,
        before: &OutingRow,
        outing: OutingRow,
    ) -> Result<(), AppError> {
        match self.deferred.as_mut() {
            Some(deferred) if store::outings::only_step_columns_differ(before, &outing) => {
                deferred.step_outings.push(outing)
            }
            Some(deferred) => deferred.outings.push(outing),
            None => store::outings::update(conn, &outing)?,
        }
        Ok(())
    }

    /// Reads where the latest check-ins of `ids` (outings' `last_checkin_id`) were, in one
    /// statement: a batch's missed check-ins each open an alert that starts from there.
    pub fn prefetch_locations<'a>(
        &mut self,
        conn: &mut DbConn,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), AppError> {
        let missing: Vec<&str> = ids
            .into_iter()
            .filter(|id| !self.locations.contains_key(*id))
            .collect::<std::collections::HashSet<_>>()
            .into_iter()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        for id in &missing {
            self.locations.insert((*id).to_owned(), None);
        }
        for c in store::outings::find_checkins(conn, &missing)? {
            self.locations.insert(c.id.clone(), LastLocation::of(&c));
        }
        Ok(())
    }

    /// Where the outing's latest check-in was, if it has one that has not been purged.
    pub fn last_location(
        &mut self,
        conn: &mut DbConn,
        outing: &OutingRow,
    ) -> Result<Option<LastLocation>, AppError> {
        let Some(id) = outing.last_checkin_id.as_deref() else {
            return Ok(None);
        };
        memo(&mut self.locations, id.to_owned(), || {
            last_location_of(conn, outing)
        })
    }

    pub fn policy(
        &mut self,
        conn: &mut DbConn,
        org: OrgId,
        default: &EscalationPolicy,
    ) -> Result<EscalationPolicy, AppError> {
        memo(&mut self.policies, org, || {
            facts::org_policy(conn, org, default)
        })
    }

    fn organisers(&mut self, conn: &mut DbConn, org: OrgId) -> Result<Vec<UserId>, AppError> {
        memo(&mut self.organisers, org, || {
            Ok(store::notifications::organisers_of(conn, org)?)
        })
    }

    fn police(&mut self, conn: &mut DbConn, org: OrgId) -> Result<Vec<UserId>, AppError> {
        memo(&mut self.police, org, || {
            Ok(store::notifications::police_of(conn, org)?)
        })
    }

    fn has_org_webhook(&mut self, conn: &mut DbConn, org: &str) -> Result<bool, AppError> {
        memo(&mut self.org_webhook, org.to_owned(), || {
            Ok(store::orgs::webhook_of(conn, org)?.is_some())
        })
    }

    /// Reads the names and channels of `ids` (a batch's canvassers, who each get a message)
    /// in one statement, instead of two per step.
    pub fn prefetch_people(
        &mut self,
        conn: &mut DbConn,
        ids: impl IntoIterator<Item = UserId>,
    ) -> Result<(), AppError> {
        let missing: Vec<String> = ids
            .into_iter()
            .map(|id| id.to_string())
            .filter(|id| !self.names.contains_key(id))
            .collect::<std::collections::HashSet<_>>()
            .into_iter()
            .collect();
        for (id, name, email, webhook) in store::notifications::people(conn, &missing)? {
            self.channels.insert(id.clone(), (email, webhook.is_some()));
            self.names.insert(id, name);
        }
        self.load_subscribed(conn, missing)
    }

    fn load_subscribed(&mut self, conn: &mut DbConn, ids: Vec<String>) -> Result<(), AppError> {
        let ids: Vec<String> = ids
            .into_iter()
            .filter(|id| !self.subscribed.contains_key(id))
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let found = store::push::subscribed_among(conn, &ids)?;
        for id in ids {
            let has = found.contains(&id);
            self.subscribed.insert(id, has);
        }
        Ok(())
    }

    /// Whether each of `ids` has a push subscription, in order.
    fn subscribed(&mut self, conn: &mut DbConn, ids: &[String]) -> Result<Vec<bool>, AppError> {
        self.load_subscribed(conn, ids.to_vec())?;
        Ok(ids
            .iter()
            .map(|id| self.subscribed.get(id).copied().unwrap_or(false))
            .collect())
    }

    fn display_name(&mut self, conn: &mut DbConn, id: &str) -> Result<String, AppError> {
        memo(&mut self.names, id.to_owned(), || {
            Ok(store::outings::display_name(conn, id)?)
        })
    }

    /// (email alerts on, personal webhook set) for each of `ids`, in order.
    fn channels(
        &mut self,
        conn: &mut DbConn,
        ids: &[String],
    ) -> Result<Vec<(bool, bool)>, AppError> {
        let missing: Vec<String> = ids
            .iter()
            .filter(|id| !self.channels.contains_key(*id))
            .cloned()
            .collect();
        if !missing.is_empty() {
            for (id, email, webhook) in store::notifications::channels_of(conn, &missing)? {
                self.channels.insert(id, (email, webhook.is_some()));
            }
            for id in missing {
                // A user who no longer exists gets push only (which finds no subscription).
                self.channels.entry(id).or_insert((false, false));
            }
        }
        Ok(ids
            .iter()
            .map(|id| self.channels.get(id).copied().unwrap_or((false, false)))
            .collect())
    }
}

/// The people of an outing, for choosing recipients.
pub struct OutingPeople {
    pub canvasser: UserId,
    pub organisers: Vec<UserId>,
    pub companions: Vec<UserId>,
    pub police: Vec<UserId>,
}

impl OutingPeople {
    pub fn load(
        conn: &mut DbConn,
        lookups: &mut Lookups,
        outing: &OutingRow,
    ) -> Result<Self, AppError> {
        let org = outing.org_id;
        Ok(OutingPeople {
            canvasser: outing.canvasser_id,
            organisers: lookups.organisers(conn, org)?,
            companions: facts::companions_of(conn, outing)?
                .into_iter()
                .map(|(id, _)| id)
                .collect(),
            police: lookups.police(conn, org)?,
        })
    }

    pub fn recipients(&self, kind: Option<AlertKind>, level: u8) -> Vec<UserId> {
        escalation::recipients(
            kind,
            level,
            &People {
                canvasser: self.canvasser,
                organisers: &self.organisers,
                companions: &self.companions,
                police: &self.police,
            },
        )
    }
}

/// Writes one outbox row per (recipient, channel). Returns how many were new: 0 means this step had
/// already been recorded (a retry, or another replica got there first).
pub fn record(
    conn: &mut DbConn,
    lookups: &mut Lookups,
    step: &StepRecord<'_>,
    now_ms: i64,
) -> Result<usize, AppError> {
    let canvasser_name = lookups.display_name(conn, &step.outing.canvasser_id.to_string())?;
    let last_location = match step.alert {
        Some(alert) => match (alert.last_lat, alert.last_lon, alert.last_recorded_at) {
            (Some(lat), Some(lon), Some(at)) => Some(Location {
                lat,
                lon,
                accuracy_m: alert.last_accuracy_m,
                recorded_at_ms: at,
            }),
            _ => None,
        },
        None => None,
    };
    let last_location = match last_location {
        Some(l) => Some(l),
        None => lookups.last_location(conn, step.outing)?.map(|l| Location {
            lat: l.lat,
            lon: l.lon,
            accuracy_m: l.accuracy_m,
            recorded_at_ms: l.recorded_at_ms,
        }),
    };
    let due_at_ms = match step.message_type {
        MessageType::CheckinReminder | MessageType::MissedCheckin => {
            step.outing.next_checkin_due_at
        }
        _ => None,
    };
    let (alert_id, outing_id) = (
        step.alert.map(|a| a.id.to_string()),
        step.outing.id.to_string(),
    );
    let body = payload::build(&Message {
        message_type: step.message_type,
        alert_id: alert_id.as_deref(),
        outing_id: Some(&outing_id),
        level: step.level,
        canvasser: Some(CanvasserRef {
            id: step.outing.canvasser_id.to_string(),
            name: canvasser_name,
        }),
        last_location,
        due_at_ms,
        resolution: step.resolution,
        caution_id: step.caution.map(|c| c.0),
        note: step
            .caution
            .map(|c| c.1)
            .or(step.welfare.and_then(|w| w.0))
            .or(step.alert.and_then(|a| a.reason.as_deref())),
        reply_token: step.welfare.map(|w| w.1),
        incident_id: None,
    })
    .to_string();
    let subject = match step.alert {
        Some(alert) => format!("alert:{}", alert.id),
        None => format!("outing:{}", step.outing.id),
    };
    // Push to every recipient; alert steps also by email and webhook, to whoever asked for them,
    // and once per step to the organisation's webhook.
    let ids: Vec<String> = step.recipients.iter().map(ToString::to_string).collect();
    // Someone with no push subscription cannot be reached by push: their row is final when
    // written (`no_subscription`, in the delivery record at once) and costs the delivery
    // worker nothing. One who subscribes later gets the next step's push.
    let subscribed = lookups.subscribed(conn, &ids)?;
    let mut targets: Vec<(Option<String>, Channel)> = ids
        .iter()
        .map(|id| (Some(id.clone()), Channel::Webpush))
        .collect();
    if is_alert_step(step) {
        let channels = lookups.channels(conn, &ids)?;
        for (id, (email, webhook)) in ids.iter().cloned().zip(channels) {
            if email {
                targets.push((Some(id.clone()), Channel::Email));
            }
            if webhook {
                targets.push((Some(id), Channel::Webhook));
            }
        }
        if lookups.has_org_webhook(conn, &step.outing.org_id.to_string())? {
            targets.push((None, Channel::Webhook));
        }
        // SMS and calls, to those who asked for them and have a phone number. A call follows
        // a level-2 step (and panic or duress, which open at level 2) when it is still
        // unacknowledged `voice_after_s` later: the delivery worker checks that then.
        let calls = step.level >= 2 && step.message_type != MessageType::AllClear;
        for (id, sms, voice) in store::notifications::phone_channels(conn, &ids)? {
            if sms && !sms_too_soon(conn, step, &id, now_ms)? {
                targets.push((Some(id.clone()), Channel::Sms));
            }
            if voice && calls {
                targets.push((Some(id), Channel::Voice));
            }
        }
    }
    let voice_after_ms = step
        .alert
        .and_then(|a| serde_json::from_str::<EscalationPolicy>(&a.policy).ok())
        .map_or(crate::domain::policy::DEFAULT_VOICE_AFTER_S, |p| {
            p.voice_after_s
        })
        .saturating_mul(1000);
    let mut inserted = 0;
    for (index, (recipient, channel)) in targets.into_iter().enumerate() {
        let who = match &recipient {
            Some(id) => id.clone(),
            None => format!("org:{}", step.outing.org_id),
        };
        // The push targets come first, in the order of `subscribed`.
        let unreachable =
            channel == Channel::Webpush && !subscribed.get(index).copied().unwrap_or(true);
        let row = NotificationRow {
            id: new_id(),
            dedupe_key: format!("{subject}:{}:{who}:{channel}", step.step_key),
            alert_id: step.alert.map(|a| a.id),
            outing_id: Some(step.outing.id),
            recipient_id: recipient
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|_| AppError::internal("a step's recipient id is not a UUID"))?,
            channel,
            step: step.step_key.to_owned(),
            message_type: step.message_type,
            level: i32::from(step.level),
            payload: body.clone(),
            status: if unreachable {
                DeliveryStatus::NoSubscription
            } else {
                DeliveryStatus::Pending
            },
            attempts: 0,
            due_at: step.due_at_ms,
            created_at: now_ms,
            next_attempt_at: if channel == Channel::Voice {
                now_ms.saturating_add(voice_after_ms)
            } else {
                now_ms
            },
            expires_at: step.expires_at_ms.unwrap_or(now_ms + ALERT_TTL_MS),
            sent_at: None,
            last_error: unreachable.then(|| NO_SUBSCRIPTION.to_owned()),
            claimed_by: None,
            claimed_until: None,
            provider_sid: None,
        };
        // A held-back row counts as new (see `Lookups::deferring_writes`).
        let new = match lookups.deferred.as_mut() {
            Some(deferred) => {
                deferred.notifications.push(row);
                true
            }
            None => store::notifications::insert_if_new(conn, &row)?,
        };
        if new {
            inserted += 1;
            if unreachable {
                crate::push::attempt::count(Channel::Webpush, "no_subscription");
            }
        }
    }
    Ok(inserted)
}

/// Whether an SMS about this alert went to this person less than five minutes ago (an
/// all-clear always goes).
fn sms_too_soon(
    conn: &mut DbConn,
    step: &StepRecord<'_>,
    recipient: &str,
    now_ms: i64,
) -> Result<bool, AppError> {
    let Some(alert) = step.alert else {
        return Ok(false);
    };
    if step.message_type == MessageType::AllClear {
        return Ok(false);
    }
    let last = store::notifications::last_sms_at(conn, &alert.id.to_string(), recipient)?;
    Ok(last.is_some_and(|at| now_ms - at < crate::domain::sms::MIN_REPEAT_MS))
}

/// Pushes for an alert a request opened or upgraded (panic, duress, need-help). The
/// scheduler's missed check-in records its own step.
pub fn alert_raised(
    conn: &mut DbConn,
    outing: &OutingRow,
    raised: &Raised,
    now_ms: i64,
) -> Result<(), AppError> {
    let (alert, key) = match raised {
        Raised::Opened(alert) => (alert, "opened".to_owned()),
        Raised::Upgraded(alert) => (alert, format!("upgrade:{}", alert.kind.as_str())),
        Raised::Unchanged(_) => return Ok(()),
    };
    let kind = alert.kind;
    let level = alert.level();
    let mut lookups = Lookups::default();
    let people = OutingPeople::load(conn, &mut lookups, outing)?;
    let recipients = people.recipients(Some(kind), level);
    record(
        conn,
        &mut lookups,
        &StepRecord {
            outing,
            alert: Some(alert),
            step_key: &key,
            message_type: kind.message_type(),
            level,
            recipients: &recipients,
            due_at_ms: Some(now_ms),
            expires_at_ms: None,
            resolution: None,
            caution: None,
            welfare: None,
        },
        now_ms,
    )?;
    Ok(())
}

/// `all_clear` to everyone who was pushed about the alert (never the canvasser of a duress
/// alert).
pub fn all_clear(
    conn: &mut DbConn,
    outing: &OutingRow,
    alert: &AlertRow,
    now_ms: i64,
) -> Result<(), AppError> {
    let kind = alert.kind;
    let notified = store::notifications::notified_about(conn, &alert.id.to_string())?;
    let recipients = escalation::all_clear_recipients(kind, outing.canvasser_id, &notified);
    record(
        conn,
        &mut Lookups::default(),
        &StepRecord {
            outing,
            alert: Some(alert),
            step_key: "all_clear",
            message_type: MessageType::AllClear,
            level: alert.level(),
            recipients: &recipients,
            due_at_ms: Some(now_ms),
            expires_at_ms: None,
            resolution: alert.resolution.as_deref(),
            caution: None,
            welfare: None,
        },
        now_ms,
    )?;
    Ok(())
}

/// A notice to the organisers (`left_area`, `low_battery`): informational, never escalated.
pub fn notice(
    conn: &mut DbConn,
    outing: &OutingRow,
    kind: MessageType,
    now_ms: i64,
) -> Result<(), AppError> {
    let organisers = store::notifications::organisers_of(conn, outing.org_id)?;
    let recipients: Vec<UserId> = organisers
        .into_iter()
        .filter(|id| *id != outing.canvasser_id)
        .collect();
    record(
        conn,
        &mut Lookups::default(),
        &StepRecord {
            outing,
            alert: None,
            step_key: &format!("{kind}:{now_ms}"),
            message_type: kind,
            level: 1,
            recipients: &recipients,
            due_at_ms: Some(now_ms),
            // Stale after an hour: by then the board says more.
            expires_at_ms: Some(now_ms + 3_600_000),
            resolution: None,
            caution: None,
            welfare: None,
        },
        now_ms,
    )?;
    Ok(())
}

/// Tells the organisers and (when shared) the police contacts of a new incident: by push, by
/// email, personal webhook and SMS to those who asked for them, and once to the organisation's
/// webhook (its body is an `incident` event: see docs/webhooks.md).
pub fn incident_reported(
    conn: &mut DbConn,
    incident: &store::incidents::IncidentRow,
    category_label: &str,
    reporter_name: &str,
    recipients: &[UserId],
    now_ms: i64,
) -> Result<usize, AppError> {
    let mut lookups = Lookups::default();
    let body = payload::build(&Message {
        outing_id: incident.outing_id.as_deref(),
        level: 1,
        canvasser: Some(CanvasserRef {
            id: incident.reporter_id.clone(),
            name: reporter_name.to_owned(),
        }),
        incident_id: Some(&incident.id),
        note: Some(category_label),
        ..Message::of(MessageType::Incident)
    })
    .to_string();
    let ids: Vec<String> = recipients.iter().map(ToString::to_string).collect();
    let subscribed = lookups.subscribed(conn, &ids)?;
    let channels = lookups.channels(conn, &ids)?;
    let mut targets: Vec<(Option<String>, Channel, bool)> = Vec::new();
    for ((id, reachable), (email, webhook)) in ids.iter().zip(subscribed).zip(channels) {
        targets.push((Some(id.clone()), Channel::Webpush, reachable));
        if email {
            targets.push((Some(id.clone()), Channel::Email, true));
        }
        if webhook {
            targets.push((Some(id.clone()), Channel::Webhook, true));
        }
    }
    if lookups.has_org_webhook(conn, &incident.org_id)? {
        targets.push((None, Channel::Webhook, true));
    }
    // And by SMS to those who asked for SMS (a police contact with no app).
    for (id, sms, _) in store::notifications::phone_channels(conn, &ids)? {
        if sms {
            targets.push((Some(id), Channel::Sms, true));
        }
    }
    let mut inserted = 0;
    for (recipient, channel, reachable) in targets {
        let who = match &recipient {
            Some(id) => id.clone(),
            None => format!("org:{}", incident.org_id),
        };
        let row = NotificationRow {
            id: new_id(),
            dedupe_key: format!("incident:{}:{who}:{channel}", incident.id),
            alert_id: None,
            outing_id: incident
                .outing_id
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|_| AppError::internal("an incident's outing id is not a UUID"))?,
            recipient_id: recipient
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|_| AppError::internal("an incident's recipient id is not a UUID"))?,
            channel,
            step: "reported".into(),
            message_type: MessageType::Incident,
            level: 1,
            payload: body.clone(),
            status: if reachable {
                DeliveryStatus::Pending
            } else {
                DeliveryStatus::NoSubscription
            },
            attempts: 0,
            due_at: Some(now_ms),
            created_at: now_ms,
            next_attempt_at: now_ms,
            expires_at: now_ms + ALERT_TTL_MS,
            sent_at: None,
            last_error: (!reachable).then(|| NO_SUBSCRIPTION.to_owned()),
            claimed_by: None,
            claimed_until: None,
            provider_sid: None,
        };
        if store::notifications::insert_if_new(conn, &row)? {
            inserted += 1;
        }
    }
    Ok(inserted)
}

/// A push to the canvasser standing inside a `do_not_knock` caution: once per outing and
/// caution, however many check-ins fall inside it.
pub fn caution_reached(
    conn: &mut DbConn,
    outing: &OutingRow,
    caution: &store::cautions::CautionRow,
    now_ms: i64,
) -> Result<(), AppError> {
    let recipients = [outing.canvasser_id];
    record(
        conn,
        &mut Lookups::default(),
        &StepRecord {
            outing,
            alert: None,
            step_key: &format!("caution:{}", caution.id),
            message_type: MessageType::Caution,
            level: 0,
            recipients: &recipients,
            due_at_ms: Some(now_ms),
            // Stale once they have moved on.
            expires_at_ms: Some(now_ms + 15 * 60_000),
            resolution: None,
            caution: Some((&caution.id, &caution.reason)),
            welfare: None,
        },
        now_ms,
    )?;
    Ok(())
}
