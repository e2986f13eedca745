//! The delivery worker: drains the outbox to every channel (Web Push, email, webhooks). The
//! claim, lease, expiry, retry and backoff logic is shared; each channel only says how one
//! attempt went ([`Attempt`]). Rows are leased, so several
//! replicas share the work and a dead replica's rows are taken over when its lease runs out.
//! Each delivery runs in its own task under a concurrency bound: a slow push service holds up
//! only its own messages.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use rand::Rng;
use tokio::sync::{Notify, Semaphore};

use super::attempt::{count, Attempt};
use super::payload::stamp_sent_at;
use super::retry::backoff_ms;
use super::sender::{Message, PushClient, SendResult};
use crate::domain::delivery::{Channel, DeliveryStatus, MessageType};
use crate::error::AppError;
use crate::state::AppState;
use crate::store;
use crate::store::notifications::NotificationRow;
use crate::store::push::{self, Outcome};

/// Runs the worker until the task is dropped.
pub async fn run(state: web::Data<AppState>, client: Arc<PushClient>) {
    let worker_id = format!("push-{}", uuid::Uuid::new_v4().simple());
    let settings = state.settings.push.clone();
    // Two bounds. `sends`: attempts in progress (requests to push services, mail servers,
    // webhooks). `leases`: rows this worker has claimed and not yet finished, which includes
    // rows whose result is waiting to be written. Holding a send slot while the result was
    // written made the worker's throughput depend on the database's commit time: when result
    // writes slowed, claims shrank to the few slots just freed and the outbox fell behind.
    // Twice the sends keeps the next batch claimed while results are written; the lease
    // (below) outlasts a row's wait for a send slot plus its own attempt.
    let sends = Arc::new(Semaphore::new(settings.concurrency));
    let leases = Arc::new(Semaphore::new(settings.concurrency.saturating_mul(2)));
    let poll = Duration::from_millis(settings.poll_interval_ms);
    let lease_ms = i64::try_from(settings.request_timeout_ms).unwrap_or(10_000) * 3 + 30_000;
    let finisher = Finisher::start(state.clone(), worker_id.clone());
    // A finished delivery frees a permit. That is worth a claim only when the worker may have
    // left due messages behind for want of permits; otherwise every delivery would cost an
    // empty claim (a write transaction).
    let freed = Arc::new(Notify::new());
    loop {
        let available = leases.available_permits();
        let mut backlog = available == 0;
        if available > 0 {
            let now_ms = state.clock.now_ms();
            let worker = worker_id.clone();
            let started = std::time::Instant::now();
            let claimed = state
                .store
                .write(move |conn| {
                    // The claim commits without waiting for the WAL flush (`relax_commit`).
                    let rows = push::claim_pending(
                        conn,
                        &worker,
                        now_ms,
                        now_ms + lease_ms,
                        available as i64,
                    )?;
                    let contexts = push::delivery_contexts(conn, &rows)?;
                    Ok(rows.into_iter().zip(contexts).collect::<Vec<_>>())
                })
                .await;
            // Waiting for a connection included: a slow claim delays every message behind it.
            metrics::histogram!("doorstep_push_claim_seconds")
                .record(started.elapsed().as_secs_f64());
            match claimed {
                Ok(rows) => {
                    backlog = rows.len() >= available;
                    for (row, context) in rows {
                        // Never waits: only this loop takes leases, and it claimed no more
                        // rows than were free.
                        let Ok(lease) = leases.clone().acquire_owned().await else {
                            return;
                        };
                        let (state, client, finisher, freed, sends) = (
                            state.clone(),
                            client.clone(),
                            finisher.clone(),
                            freed.clone(),
                            sends.clone(),
                        );
                        tokio::spawn(async move {
                            let started = std::time::Instant::now();
                            let delivered =
                                deliver(&state, &client, &finisher, row, context, &sends).await;
                            drop(lease);
                            // Claim to finished result: the worker's throughput is at most
                            // twice `push.concurrency` divided by this.
                            metrics::histogram!("doorstep_push_delivery_seconds")
                                .record(started.elapsed().as_secs_f64());
                            match delivered {
                                // Its next attempt is a new due time: let the worker read it.
                                Ok(AttemptEnd::Retry) => state.push.wake(),
                                Ok(AttemptEnd::Done) => freed.notify_one(),
                                Err(e) => {
                                    tracing::warn!(error = %e, "push delivery bookkeeping failed; the lease will expire and it will be retried");
                                    freed.notify_one();
                                }
                            }
                        });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "push worker cannot claim work"),
            }
        }
        // A full claim means more is due: no need to ask when the next one is.
        let earliest = if backlog {
            None
        } else {
            state
                .store
                .read(|conn| Ok(push::earliest_pending(conn)?))
                .await
                .ok()
                .flatten()
        };
        let wait = earliest
            .map(|at| {
                Duration::from_millis(
                    u64::try_from((at - state.clock.now_ms()).max(0)).unwrap_or(0),
                )
            })
            .unwrap_or(poll)
            .min(poll)
            // Never spin: at least a few ms between polls.
            .max(Duration::from_millis(5));
        let now_ms = state.clock.now_ms();
        backlog |= earliest.is_some_and(|at| at <= now_ms);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = state.push.wake.notified() => {}
            _ = freed.notified(), if backlog => {}
        }
    }
}

/// Delivers every message due at the state's clock now, one after another, and says how many
/// it attempted: one pass of the worker, called directly. Tests that move the clock
/// (`Clock::advance`) with `push.worker_enabled = false` use it, after
/// `scheduler::run_due_now`, to see a step reach its receivers without waiting for the loop.
pub async fn deliver_due_now(state: web::Data<AppState>) -> Result<usize, AppError> {
    let worker = format!("now-{}", uuid::Uuid::new_v4().simple());
    let lease_ms = i64::try_from(state.settings.push.request_timeout_ms).unwrap_or(10_000) * 3;
    let now_ms = state.clock.now_ms();
    let claimer = worker.clone();
    let rows = state
        .store
        .write(move |conn| {
            let rows = push::claim_pending(conn, &claimer, now_ms, now_ms + lease_ms, 1_000)?;
            let contexts = push::delivery_contexts(conn, &rows)?;
            Ok(rows.into_iter().zip(contexts).collect::<Vec<_>>())
        })
        .await?;
    let client = state.push_client.clone();
    let finisher = Finisher::start(state.clone(), worker);
    let sends = Semaphore::new(1);
    let attempted = rows.len();
    for (row, context) in rows {
        deliver(&state, &client, &finisher, row, context, &sends).await?;
    }
    Ok(attempted)
}

/// How a delivery attempt ended, for the worker's next wake-up.
enum AttemptEnd {
    /// Sent, or failed for good.
    Done,
    /// To be tried again later.
    Retry,
}

fn topic_of(row: &NotificationRow) -> Option<String> {
    // A UUID without dashes is 32 base64url characters: the most a Topic may have.
    let subject = match (row.alert_id, row.outing_id) {
        (Some(alert), _) => alert.as_uuid(),
        (None, Some(outing)) => outing.as_uuid(),
        (None, None) => return None,
    };
    Some(subject.simple().to_string())
}

/// One attempt at one notification, whatever its channel: expiry, supersession, the channel's
/// own attempt, then the shared retry rule. `context` was read with the claim. The attempt
/// waits for one of the worker's `sends` slots and gives it back as soon as the attempt is
/// over, before its result is written.
async fn deliver(
    state: &AppState,
    client: &PushClient,
    finisher: &Finisher,
    row: NotificationRow,
    context: push::DeliveryContext,
    sends: &Semaphore,
) -> Result<AttemptEnd, AppError> {
    let send = sends
        .acquire()
        .await
        .map_err(|_| AppError::internal("the delivery worker has stopped"))?;
    let now_ms = state.clock.now_ms();
    let channel = row.channel;
    let finish = |outcome: Outcome| finisher.finish(row.id.clone(), outcome, Vec::new());
    if now_ms > row.expires_at {
        drop(send);
        count(channel, "expired");
        finish(Outcome {
            status: DeliveryStatus::Failed,
            next_attempt_at: now_ms,
            sent_at: None,
            last_error: Some("expired before it could be delivered".into()),
        })
        .await?;
        return Ok(AttemptEnd::Done);
    }
    if context.alert_resolved {
        drop(send);
        count(channel, "superseded");
        finish(Outcome {
            status: DeliveryStatus::Failed,
            next_attempt_at: now_ms,
            sent_at: None,
            last_error: Some("the alert was resolved before delivery".into()),
        })
        .await?;
        return Ok(AttemptEnd::Done);
    }
    let mut writes = Vec::new();
    let attempt = match channel {
        Channel::Webpush => {
            let push::DeliveryContext {
                subscriptions,
                done,
                ..
            } = context;
            webpush_attempt(client, &row, subscriptions, done, now_ms, &mut writes).await
        }
        Channel::Email => email_attempt(state, &row, now_ms).await?,
        Channel::Webhook => webhook_attempt(state, &row, now_ms).await?,
        Channel::Sms | Channel::Voice => phone_attempt(state, &row, now_ms).await?,
    };
    drop(send);
    if channel != Channel::Webpush {
        // Push counts per subscription, in its own attempt.
        count(
            channel,
            match &attempt {
                Attempt::Delivered => "sent",
                Attempt::Retry { .. } => "retry",
                Attempt::Failed { status, .. } => status.as_str(),
            },
        );
    }
    let outcome = match attempt {
        Attempt::Delivered => Outcome {
            status: DeliveryStatus::Sent,
            next_attempt_at: now_ms,
            sent_at: Some(now_ms),
            last_error: None,
        },
        Attempt::Retry {
            retry_after_s,
            error,
        } => {
            let failures = u32::try_from(row.attempts + 1).unwrap_or(u32::MAX);
            let jitter = rand::rng().random::<f64>();
            let next = now_ms + backoff_ms(failures, retry_after_s, jitter);
            Outcome {
                status: if next <= row.expires_at {
                    DeliveryStatus::Pending
                } else {
                    DeliveryStatus::Failed
                },
                next_attempt_at: next.min(row.expires_at.max(now_ms)),
                sent_at: None,
                last_error: Some(error),
            }
        }
        Attempt::Failed { status, error } => Outcome {
            status,
            next_attempt_at: now_ms,
            sent_at: None,
            last_error: Some(error),
        },
    };
    let finished = if outcome.status == DeliveryStatus::Pending {
        AttemptEnd::Retry
    } else {
        AttemptEnd::Done
    };
    finisher.finish(row.id.clone(), outcome, writes).await?;
    Ok(finished)
}

/// Most finished attempts written in one transaction.
const FINISH_BATCH_MAX: usize = 256;

/// An attempt's result on its way to the database.
struct Finished {
    notification: String,
    outcome: Outcome,
    writes: Vec<DeliveryWrite>,
    reply: tokio::sync::oneshot::Sender<Result<(), String>>,
}

/// Writes attempts' results in batches: every result that arrives while one batch is being
/// written goes into the next, so under load one transaction carries many deliveries (a
/// commit, and on PostgreSQL its round trips, per batch instead of per message) while a
/// lone result is written at once. Each delivery still waits for its own result to commit.
#[derive(Clone)]
struct Finisher {
    queue: tokio::sync::mpsc::UnboundedSender<Finished>,
}

impl Finisher {
    /// Starts the writing task; it ends when the last `Finisher` clone is dropped.
    fn start(state: web::Data<AppState>, worker: String) -> Finisher {
        let (queue, mut results) = tokio::sync::mpsc::unbounded_channel::<Finished>();
        tokio::spawn(async move {
            while let Some(first) = results.recv().await {
                let mut batch = vec![first];
                while batch.len() < FINISH_BATCH_MAX {
                    match results.try_recv() {
                        Ok(more) => batch.push(more),
                        Err(_) => break,
                    }
                }
                write_finished(&state, &worker, batch).await;
            }
        });
        Finisher { queue }
    }

    /// Records an attempt's outcome (and its per-subscription results); returns once committed.
    async fn finish(
        &self,
        notification: String,
        outcome: Outcome,
        writes: Vec<DeliveryWrite>,
    ) -> Result<(), AppError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.queue
            .send(Finished {
                notification,
                outcome,
                writes,
                reply,
            })
            .map_err(|_| AppError::internal("the delivery bookkeeping task has stopped"))?;
        answer
            .await
            .map_err(|_| AppError::internal("the delivery bookkeeping was abandoned"))?
            .map_err(AppError::internal)
    }
}

/// One transaction for the batch; if it fails, each result alone, so one bad row only fails
/// itself (its lease then runs out and the message is retried).
async fn write_finished(state: &AppState, worker: &str, batch: Vec<Finished>) {
    let (work, replies): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .map(|f| ((f.notification, f.outcome, f.writes), f.reply))
        .unzip();
    let started = std::time::Instant::now();
    let result = {
        let (work, worker) = (work.clone(), worker.to_owned());
        state
            .store
            .write(move |conn| record_finished(conn, &worker, &work))
            .await
    };
    // Every delivery of the batch holds its permit until this commits.
    metrics::histogram!("doorstep_push_results_write_seconds")
        .record(started.elapsed().as_secs_f64());
    match result {
        Ok(()) => {
            for reply in replies {
                let _ = reply.send(Ok(()));
            }
        }
        Err(e) if work.len() == 1 => {
            for reply in replies {
                let _ = reply.send(Err(e.to_string()));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, results = work.len(), "writing a batch of delivery results failed; writing them one by one");
            for (one, reply) in work.into_iter().zip(replies) {
                let worker = worker.to_owned();
                let result = state
                    .store
                    .write(move |conn| record_finished(conn, &worker, std::slice::from_ref(&one)))
                    .await;
                let _ = reply.send(result.map_err(|e| e.to_string()));
            }
        }
    }
}

/// The per-subscription results and the notification's outcome commit together. Leases and
/// attempt results may lose their last fraction of a second in a database crash (see
/// [`store::relax_commit`]): the message is then sent again, never lost.
fn record_finished(
    conn: &mut store::DbConn,
    worker: &str,
    work: &[(String, Outcome, Vec<DeliveryWrite>)],
) -> Result<(), AppError> {
    store::relax_commit(conn)?;
    let results: Vec<push::DeliveryResult<'_>> = work
        .iter()
        .flat_map(|(id, _, writes)| {
            writes.iter().map(move |w| push::DeliveryResult {
                notification: id,
                subscription: &w.subscription,
                status: w.status,
                code: w.code,
                error: w.error.as_deref(),
                sent_at: w.sent_at,
            })
        })
        .collect();
    push::record_deliveries(conn, &results)?;
    for (_, _, writes) in work {
        for w in writes.iter().filter(|w| w.gone) {
            push::remove_subscription(conn, &w.subscription)?;
        }
    }
    let ends: Vec<(&str, &Outcome)> = work
        .iter()
        .map(|(id, outcome, _)| (id.as_str(), outcome))
        .collect();
    push::finish_attempts(conn, worker, &ends)?;
    Ok(())
}

/// One subscription's result of a push attempt, written with the notification's outcome.
#[derive(Clone)]
struct DeliveryWrite {
    subscription: String,
    status: &'static str,
    code: Option<u16>,
    error: Option<String>,
    sent_at: Option<i64>,
    /// The push service said the subscription no longer exists: forget it.
    gone: bool,
}

/// Email: to the recipient's account address. Off (failed, with the reason) when `smtp.url`
/// is unset.
async fn email_attempt(
    state: &AppState,
    row: &NotificationRow,
    now_ms: i64,
) -> Result<Attempt, AppError> {
    let Some(mailer) = &state.mailer else {
        return Ok(Attempt::Failed {
            status: DeliveryStatus::Failed,
            error: "email is not configured on this server (smtp.url is unset)".into(),
        });
    };
    let Some(recipient) = row.recipient_id else {
        return Ok(Attempt::Failed {
            status: DeliveryStatus::Failed,
            error: "an email needs a recipient".into(),
        });
    };
    let Some((address, name)) = state
        .store
        .read(move |conn| Ok(store::accounts::email_of(conn, &recipient.to_string())?))
        .await?
    else {
        return Ok(Attempt::Failed {
            status: DeliveryStatus::Failed,
            error: "the recipient's account is gone or disabled".into(),
        });
    };
    let payload: serde_json::Value =
        serde_json::from_slice(&stamp_sent_at(&row.payload, now_ms)).unwrap_or_default();
    Ok(mailer.send(&address, &name, &row.id, &payload).await)
}

/// SMS or a voice call through the provider: the text (or the spoken alert) in the recipient's
/// language, composed now from the alert as it stands. An SMS past the organisation's monthly
/// ceiling is not sent (push and email carry on); a call is made only if the alert is still
/// unacknowledged when it falls due.
async fn phone_attempt(
    state: &AppState,
    row: &NotificationRow,
    now_ms: i64,
) -> Result<Attempt, AppError> {
    let failed = |error: &str| {
        Ok(Attempt::Failed {
            status: DeliveryStatus::Failed,
            error: error.to_owned(),
        })
    };
    let Some(twilio) = state.twilio.clone() else {
        return failed("SMS and calls are not configured on this server ([sms] is unset)");
    };
    if row.message_type == MessageType::Incident {
        return incident_sms(state, &twilio, row, now_ms).await;
    }
    let (Some(recipient), Some(alert_id)) = (row.recipient_id, row.alert_id) else {
        return failed("an SMS or call needs a recipient and an alert");
    };
    let Some(public_url) = state.settings.sms_callback_base() else {
        return failed("sms.public_url is unset: the provider could not report back");
    };
    let channel = row.channel;
    let monthly_limit = state.settings.sms.monthly_limit;
    let found = state
        .store
        .read(move |conn| {
            let alert = store::alerts::find(conn, alert_id)?;
            let person = store::accounts::find(conn, recipient)?;
            let canvasser = match &alert {
                Some(a) => store::outings::display_name(conn, &a.canvasser_id.to_string())?,
                None => String::new(),
            };
            let used = match (&alert, channel) {
                (Some(a), Channel::Sms) if monthly_limit > 0 => {
                    let month = crate::domain::time::month_start_ms(now_ms);
                    store::notifications::sms_sent_since(conn, &a.org_id.to_string(), month)?
                }
                _ => 0,
            };
            Ok((alert, person, canvasser, used))
        })
        .await?;
    let (Some(alert), Some(person), canvasser, used) = found else {
        return failed("the alert or the recipient is gone");
    };
    let Some(phone) = person
        .phone
        .clone()
        .filter(|_| person.disabled_at.is_none())
    else {
        return failed("the recipient has no phone number (or is disabled)");
    };
    let language = crate::domain::sms::Language::of(&person.language);
    // A missed check-in opens `grace_s` after the check-in was due.
    let grace_ms = serde_json::from_str::<crate::domain::policy::EscalationPolicy>(&alert.policy)
        .map_or(0, |p| p.grace_s.saturating_mul(1000));
    let overdue_min = (now_ms - alert.opened_at + grace_ms) / 60_000;
    let link = format!("{public_url}/app/alerts/{}", alert.id);
    let facts = crate::domain::sms::Facts {
        message_type: row.message_type,
        name: &canvasser,
        overdue_min: Some(overdue_min),
        link: Some(&link),
        code: (row.message_type != MessageType::AllClear)
            .then_some(alert.ack_code.as_deref())
            .flatten(),
        resolution: alert.resolution.as_deref(),
    };
    let sent = match channel {
        Channel::Sms => {
            if monthly_limit > 0 && used >= monthly_limit {
                return failed(&format!(
                    "the organisation's monthly SMS ceiling ({monthly_limit}) is reached: push and email carry on"
                ));
            }
            let Some(text) = crate::domain::sms::text(&facts, language) else {
                return failed("this message does not go by SMS");
            };
            let callback = format!("{public_url}/api/v1/sms/status");
            twilio
                .send_sms(&phone, &text, &callback, now_ms / 1000)
                .await
        }
        _ => {
            if alert.status != crate::domain::escalation::AlertStatus::Open {
                return failed("not called: the alert was acknowledged or resolved first");
            }
            let gather = format!(
                "{public_url}/api/v1/voice/gather?alert={}&recipient={recipient}",
                alert.id
            );
            let twiml = crate::domain::sms::call_twiml(
                &crate::domain::sms::spoken(&facts, language),
                language,
                &gather,
            );
            let callback = format!("{public_url}/api/v1/voice/status");
            twilio.call(&phone, &twiml, &callback, now_ms / 1000).await
        }
    };
    provider_answered(state, row, sent).await
}

/// Keeps the provider's id of an accepted message or call (its status callbacks name it).
async fn provider_answered(
    state: &AppState,
    row: &NotificationRow,
    sent: crate::push::twilio::Sent,
) -> Result<Attempt, AppError> {
    match sent {
        crate::push::twilio::Sent::Accepted { sid } => {
            let id = row.id.clone();
            state
                .store
                .write(move |conn| Ok(store::notifications::set_provider_sid(conn, &id, &sid)?))
                .await?;
            Ok(Attempt::Delivered)
        }
        crate::push::twilio::Sent::NotSent(attempt) => Ok(attempt),
    }
}

/// An SMS that a new incident was reported: its category and where to read it (behind a login:
/// never the report's words or position).
async fn incident_sms(
    state: &AppState,
    twilio: &crate::push::twilio::Twilio,
    row: &NotificationRow,
    now_ms: i64,
) -> Result<Attempt, AppError> {
    let failed = |error: &str| {
        Ok(Attempt::Failed {
            status: DeliveryStatus::Failed,
            error: error.to_owned(),
        })
    };
    let incident_id = serde_json::from_str::<serde_json::Value>(&row.payload)
        .ok()
        .and_then(|p| p["incident_id"].as_str().map(str::to_owned));
    let (Some(recipient), Some(incident_id)) = (row.recipient_id, incident_id) else {
        return failed("an incident SMS needs a recipient and an incident");
    };
    let public_url = state.settings.sms_callback_base().unwrap_or_default();
    let found = state
        .store
        .read(move |conn| {
            let incident = store::incidents::find(conn, &incident_id)?;
            let person = store::accounts::find(conn, recipient)?;
            let reporter = match &incident {
                Some(i) => store::outings::display_name(conn, &i.reporter_id)?,
                None => String::new(),
            };
            Ok((incident, person, reporter))
        })
        .await?;
    let (Some(incident), Some(person), reporter) = found else {
        return failed("the incident or the recipient is gone");
    };
    let Some(phone) = person
        .phone
        .clone()
        .filter(|_| person.disabled_at.is_none())
    else {
        return failed("the recipient has no phone number (or is disabled)");
    };
    let link = format!("{public_url}/app/incidents/{}", incident.id);
    let text = crate::domain::sms::incident_text(
        &reporter,
        incident.category.label(),
        &link,
        crate::domain::sms::Language::of(&person.language),
    );
    let callback = format!("{public_url}/api/v1/sms/status");
    let sent = twilio
        .send_sms(&phone, &text, &callback, now_ms / 1000)
        .await;
    provider_answered(state, row, sent).await
}

/// Webhook: the organisation's (no recipient, signed with its secret) or the recipient's own
/// (signed with the server's webhook secret). The address is read at delivery time, so a
/// removed webhook stops receiving.
async fn webhook_attempt(
    state: &AppState,
    row: &NotificationRow,
    now_ms: i64,
) -> Result<Attempt, AppError> {
    let (recipient, alert_id, outing_id) = (row.recipient_id, row.alert_id, row.outing_id);
    // An incident's event names the incident (its id is in the stored push payload).
    let incident_id = (row.message_type == MessageType::Incident)
        .then(|| serde_json::from_str::<serde_json::Value>(&row.payload).ok())
        .flatten()
        .and_then(|p| p["incident_id"].as_str().map(str::to_owned));
    let found = state
        .store
        .read(move |conn| {
            let alert = match alert_id {
                Some(id) => store::alerts::find(conn, id)?,
                None => None,
            };
            let mut view = match &alert {
                Some(alert) => {
                    let name = store::outings::display_name(conn, &alert.canvasser_id.to_string())?;
                    Some(crate::service::outings::alert_view(conn, alert, name)?)
                }
                None => None,
            };
            let incident = match &incident_id {
                Some(id) => store::incidents::find(conn, id)?,
                None => None,
            };
            let org_id = alert
                .as_ref()
                .map(|a| a.org_id.to_string())
                .or_else(|| incident.as_ref().map(|i| i.org_id.clone()));
            let target = match &recipient {
                Some(user) => store::accounts::webhook_of(conn, &user.to_string())?,
                None => match &org_id {
                    Some(org) => {
                        store::orgs::webhook_of(conn, org)?.map(|(url, secret)| (url, Some(secret)))
                    }
                    None => None,
                },
            };
            let incident = incident.map(|i| crate::wire::incident_event(&i));
            let account = match recipient {
                Some(id) => store::accounts::find(conn, id)?
                    .map(|u| store::accounts::Account::try_from(&u))
                    .transpose()?,
                None => None,
            };
            let person = account.as_ref().map(
                |a| serde_json::json!({"id": a.id, "display_name": a.display_name, "role": a.role}),
            );
            // The person's webhook gets the delivery record as they would in the API.
            if let Some(account) = &account {
                view = view
                    .map(|v| crate::service::outings::deliveries_for(v, account.id, account.role));
            }
            Ok((view, incident, target, person, outing_id))
        })
        .await?;
    let (view, incident, target, person, outing_id) = found;
    let (url, secret) = match target {
        Some((url, Some(secret))) => (url, secret),
        Some((_, None)) => {
            return Ok(Attempt::Failed {
                status: DeliveryStatus::Failed,
                error: "this webhook has no signing secret of its own yet: save it again in the channel settings".into(),
            })
        }
        None => {
            return Ok(Attempt::Failed {
                status: DeliveryStatus::Failed,
                error: "the webhook was removed before delivery".into(),
            })
        }
    };
    let sent_at = crate::domain::time::rfc3339(crate::domain::time::from_millis(now_ms));
    let body = match incident {
        Some(incident) => serde_json::json!({
            "event_id": row.id,
            "type": row.message_type,
            "incident": incident,
            "recipient": person,
            "sent_at": sent_at,
        }),
        None => serde_json::json!({
            "event_id": row.id,
            "type": row.message_type,
            "alert": view,
            "outing_id": outing_id,
            "recipient": person,
            "sent_at": sent_at,
        }),
    };
    let body = serde_json::to_vec(&body).map_err(|e| AppError::internal(e.to_string()))?;
    Ok(state
        .webhooks
        .send(&url, &secret, &row.id, body, now_ms / 1000)
        .await)
}

/// Web Push: to every subscription of the recipient not yet done. Reaching one of the
/// person's devices is reaching the person.
async fn webpush_attempt(
    client: &PushClient,
    row: &NotificationRow,
    subscriptions: Vec<push::SubscriptionRow>,
    done: Vec<String>,
    now_ms: i64,
    writes: &mut Vec<DeliveryWrite>,
) -> Attempt {
    if row.recipient_id.is_none() {
        return Attempt::Failed {
            status: DeliveryStatus::Failed,
            error: "a push needs a recipient".into(),
        };
    }
    if subscriptions.is_empty() && done.is_empty() {
        count(Channel::Webpush, "no_subscription");
        return Attempt::Failed {
            status: DeliveryStatus::NoSubscription,
            error: crate::service::notify::NO_SUBSCRIPTION.into(),
        };
    }
    let targets: Vec<_> = subscriptions
        .into_iter()
        .filter(|s| !done.contains(&s.id))
        .collect();
    let payload = stamp_sent_at(&row.payload, now_ms);
    let ttl_s = u32::try_from(((row.expires_at - now_ms) / 1000).max(0)).unwrap_or(u32::MAX);
    let urgent = !row.message_type.is_routine();
    let topic = topic_of(row);
    let message = Message {
        payload: &payload,
        ttl_s,
        urgent,
        topic: topic.as_deref(),
    };
    let now_s = now_ms / 1000;
    let results =
        futures_util::future::join_all(targets.iter().map(|s| client.send(s, &message, now_s)))
            .await;

    let mut delivered = false;
    let mut retry_after: Option<u64> = None;
    let mut retryable = false;
    let mut errors = Vec::new();
    for (subscription, result) in targets.iter().zip(&results) {
        let sub_id = subscription.id.clone();
        let (status, code, error, sent_at): (
            &'static str,
            Option<u16>,
            Option<String>,
            Option<i64>,
        ) = match result {
            SendResult::Delivered(code) => {
                delivered = true;
                ("sent", Some(*code), None, Some(now_ms))
            }
            SendResult::Gone(code) => (
                "gone",
                Some(*code),
                Some(format!("subscription gone ({code})")),
                None,
            ),
            SendResult::Retry {
                status,
                retry_after_s,
                error,
            } => {
                retryable = true;
                retry_after = retry_after.max(*retry_after_s);
                ("retry", *status, Some(error.clone()), None)
            }
            SendResult::Failed { status, error } => ("failed", *status, Some(error.clone()), None),
        };
        if let Some(e) = &error {
            errors.push(e.clone());
        }
        count(Channel::Webpush, status);
        writes.push(DeliveryWrite {
            subscription: sub_id,
            status,
            code,
            error,
            sent_at,
            gone: matches!(result, SendResult::Gone(_)),
        });
    }
    let already_delivered = !done.is_empty() && targets.is_empty();
    let last_error = errors.first().cloned();
    if delivered || already_delivered {
        return Attempt::Delivered;
    }
    if retryable {
        return Attempt::Retry {
            retry_after_s: retry_after,
            error: last_error.unwrap_or_else(|| "push service unavailable".into()),
        };
    }
    Attempt::Failed {
        status: DeliveryStatus::Failed,
        error: last_error.unwrap_or_else(|| "every subscription refused the message".into()),
    }
}
