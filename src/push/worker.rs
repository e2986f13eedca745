//! The delivery worker: drains the outbox to push services. Rows are leased, so several
//! replicas share the work and a dead replica's rows are taken over when its lease runs out.
//! Each delivery runs in its own task under a concurrency bound: a slow push service holds up
//! only its own messages.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use rand::Rng;
use tokio::sync::{Notify, Semaphore};

use super::payload::stamp_sent_at;
use super::retry::backoff_ms;
use super::sender::{Message, PushClient, SendResult};
use crate::error::AppError;
use crate::state::AppState;
use crate::store::notifications::NotificationRow;
use crate::store::push::{self, Outcome};

/// Wakes the worker when new outbox rows are committed.
#[derive(Default)]
pub struct PushSignals {
    wake: Notify,
}

impl PushSignals {
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// Runs the worker until the task is dropped.
pub async fn run(state: web::Data<AppState>, client: Arc<PushClient>) {
    let worker_id = format!("push-{}", uuid::Uuid::new_v4().simple());
    let settings = state.settings.push.clone();
    let permits = Arc::new(Semaphore::new(settings.concurrency));
    let poll = Duration::from_millis(settings.poll_interval_ms);
    let lease_ms = i64::try_from(settings.request_timeout_ms).unwrap_or(10_000) * 3 + 30_000;
    loop {
        let available = permits.available_permits();
        if available > 0 {
            let now_ms = state.clock.now_ms();
            let worker = worker_id.clone();
            let claimed = state
                .store
                .write(move |conn| {
                    push::claim_pending(conn, &worker, now_ms, now_ms + lease_ms, available as i64)
                })
                .await;
            match claimed {
                Ok(rows) => {
                    for row in rows {
                        let Ok(permit) = permits.clone().acquire_owned().await else {
                            return;
                        };
                        let (state, client, worker) =
                            (state.clone(), client.clone(), worker_id.clone());
                        tokio::spawn(async move {
                            if let Err(e) = deliver(&state, &client, &worker, row).await {
                                tracing::warn!(error = %e, "push delivery bookkeeping failed; the lease will expire and it will be retried");
                            }
                            drop(permit);
                            state.push.wake();
                        });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "push worker cannot claim work"),
            }
        }
        let earliest = state
            .store
            .read(push::earliest_pending)
            .await
            .ok()
            .flatten();
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
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = state.push.wake.notified() => {}
        }
    }
}

fn topic_of(row: &NotificationRow) -> Option<String> {
    // A UUID without dashes is 32 base64url characters: the most a Topic may have.
    let subject = row.alert_id.as_deref().or(row.outing_id.as_deref())?;
    uuid::Uuid::parse_str(subject)
        .ok()
        .map(|u| u.simple().to_string())
}

fn count(status: &str) {
    metrics::counter!("doorstep_push_deliveries_total", "status" => status.to_owned()).increment(1);
}

/// One attempt at one notification: to every subscription of the recipient not yet done.
async fn deliver(
    state: &AppState,
    client: &PushClient,
    worker: &str,
    row: NotificationRow,
) -> Result<(), AppError> {
    let now_ms = state.clock.now_ms();
    let finish = |outcome: Outcome| {
        let (id, worker) = (row.id.clone(), worker.to_owned());
        async move {
            state
                .store
                .write(move |conn| push::finish_attempt(conn, &id, &worker, &outcome))
                .await
        }
    };
    if now_ms > row.expires_at {
        count("expired");
        finish(Outcome {
            status: "failed",
            next_attempt_at: now_ms,
            sent_at: None,
            last_error: Some("expired before it could be delivered".into()),
        })
        .await?;
        return Ok(());
    }
    let (alert_id, recipient, notification) = (
        row.alert_id.clone(),
        row.recipient_id.clone(),
        row.id.clone(),
    );
    let is_all_clear = row.message_type == "all_clear";
    let (subscriptions, done, resolved) = state
        .store
        .read(move |conn| {
            let subscriptions = push::subscriptions_of(conn, &recipient)?;
            let done: Vec<String> = push::deliveries_of(conn, &notification)?
                .into_iter()
                .filter(|d| d.status != "retry")
                .map(|d| d.subscription_id)
                .collect();
            let resolved = match (&alert_id, is_all_clear) {
                (Some(alert), false) => push::alert_resolved(conn, alert)?,
                _ => false,
            };
            Ok((subscriptions, done, resolved))
        })
        .await?;
    if resolved {
        count("superseded");
        finish(Outcome {
            status: "failed",
            next_attempt_at: now_ms,
            sent_at: None,
            last_error: Some("the alert was resolved before delivery".into()),
        })
        .await?;
        return Ok(());
    }
    if subscriptions.is_empty() && done.is_empty() {
        count("no_subscription");
        finish(Outcome {
            status: "no_subscription",
            next_attempt_at: now_ms,
            sent_at: None,
            last_error: Some("the recipient has no push subscription".into()),
        })
        .await?;
        return Ok(());
    }
    let targets: Vec<_> = subscriptions
        .into_iter()
        .filter(|s| !done.contains(&s.id))
        .collect();
    let payload = stamp_sent_at(&row.payload, now_ms);
    let ttl_s = u32::try_from(((row.expires_at - now_ms) / 1000).max(0)).unwrap_or(u32::MAX);
    let urgent = !matches!(
        row.message_type.as_str(),
        "checkin_reminder" | "test" | "left_area" | "low_battery"
    );
    let topic = topic_of(&row);
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
        let (sub_id, note) = (subscription.id.clone(), row.id.clone());
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
        count(status);
        let gone = matches!(result, SendResult::Gone(_));
        state
            .store
            .write(move |conn| {
                push::record_delivery(
                    conn,
                    &note,
                    &sub_id,
                    status,
                    code,
                    error.as_deref(),
                    sent_at,
                )?;
                if gone {
                    push::remove_subscription(conn, &sub_id)?;
                }
                Ok(())
            })
            .await?;
    }
    let already_delivered = !done.is_empty() && targets.is_empty();
    let last_error = errors.first().cloned();
    if delivered || already_delivered {
        // Reaching one of the person's devices is reaching the person.
        finish(Outcome {
            status: "sent",
            next_attempt_at: now_ms,
            sent_at: Some(now_ms),
            last_error: None,
        })
        .await?;
        return Ok(());
    }
    if retryable {
        let failures = u32::try_from(row.attempts + 1).unwrap_or(u32::MAX);
        let jitter = rand::rng().random::<f64>();
        let next = now_ms + backoff_ms(failures, retry_after, jitter);
        if next <= row.expires_at {
            finish(Outcome {
                status: "pending",
                next_attempt_at: next,
                sent_at: None,
                last_error,
            })
            .await?;
            return Ok(());
        }
    }
    let last_error = last_error.or_else(|| Some("every subscription refused the message".into()));
    finish(Outcome {
        status: "failed",
        next_attempt_at: now_ms,
        sent_at: None,
        last_error,
    })
    .await?;
    Ok(())
}
