//! The scheduler: notices due check-ins and alert timers and records their escalation steps.
//!
//! Deadlines live in the database (`outings.next_action_at`, `alerts.next_action_at`, both
//! indexed). The loop sleeps until the earliest one, is woken early when a request writes new
//! work, and polls at a short bounded interval so it also sees work written by other replicas.
//! Each pass claims due rows in batches and hands each to its use case
//! (`service::escalation::fire_outing`, `fire_alert`) inside one transaction, then commits.

use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_web::web;

use crate::error::AppError;
use crate::service::escalation;
use crate::service::notify::Lookups;
use crate::state::AppState;
use crate::store::{self, DbConn};

pub use signals::SchedulerSignals;
use signals::{COALESCE_MS, MAX_LANES};

pub mod health;
pub mod retention;
pub mod signals;

/// Runs the scheduler until the task is dropped: one lane on SQLite (one writer), several on
/// PostgreSQL, each claiming its own rows (`FOR UPDATE SKIP LOCKED` keeps them apart, as it
/// does replicas).
pub async fn run(state: web::Data<AppState>) {
    let lanes = lane_count(&state);
    let batch = state.settings.scheduler.batch_size;
    // Several lanes claim small batches, so that what falls due is shared out rather than
    // taken whole by the first lane to look; a commit per few dozen steps is still cheap.
    let claim = if lanes > 1 {
        (batch / lanes as i64).clamp(1, LANE_CLAIM_MAX)
    } else {
        batch
    };
    futures_util::future::join_all((0..lanes).map(|slot| lane(&state, claim, slot))).await;
}

/// Most rows one lane claims per transaction when several lanes share the work.
const LANE_CLAIM_MAX: i64 = 16;

fn lane_count(state: &AppState) -> usize {
    let lanes = match state.store.backend() {
        store::Backend::Sqlite => 1,
        // Leave at least half the pool to requests and the delivery worker.
        store::Backend::Postgres => state
            .settings
            .scheduler
            .concurrency
            .min((state.settings.database.pool_size as usize / 2).max(1)),
    };
    lanes.clamp(1, MAX_LANES)
}

/// One lane: processes what is due, then sleeps until the earliest deadline (at most the poll
/// interval) or until woken. A lane that finds a full batch wakes another to help, so every
/// lane works through a backlog while a trickle keeps only one busy.
async fn lane(state: &AppState, claim: i64, slot: usize) {
    let poll = Duration::from_millis(state.settings.scheduler.poll_interval_ms);
    let Some(planned) = state.scheduler.planned.get(slot) else {
        return;
    };
    loop {
        // Busy: every wake-up counts until the next plan is published.
        planned.store(i64::MAX, Ordering::SeqCst);
        // Everything due by now is this pass's to take (or another lane's, holding it).
        let pass_at = state.clock.now_ms();
        let done = match run_batch(state, claim).await {
            Ok(done) => done,
            Err(e) => {
                tracing::error!(error = %e, "scheduler pass failed");
                0
            }
        };
        state
            .scheduler
            .heartbeat_ms
            .store(state.clock.now_ms(), Ordering::Relaxed);
        if done >= claim as usize {
            state.scheduler.wake.notify_one();
            tokio::task::yield_now().await;
            continue;
        }
        let earliest = state
            .store
            .read(move |conn| Ok(store::schedule::earliest_action(conn, pass_at)?))
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "scheduler cannot read its next deadline");
                None
            });
        let now = state.clock.now_ms();
        let wait = sleep_before_next_pass(earliest, now, poll);
        if wait.is_zero() {
            // Due already (rows another lane holds, or just fell due): yield and go on.
            tokio::task::yield_now().await;
            continue;
        }
        let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
        planned.store(now.saturating_add(wait_ms), Ordering::SeqCst);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = state.scheduler.wake.notified() => {}
        }
    }
}

/// How long a lane sleeps before its next pass: until the earliest deadline plus
/// [`COALESCE_MS`], so that one pass takes every deadline of that window (nothing when the
/// earliest is already that late: a backlog, or rows another lane holds), and never longer
/// than `poll` (work another replica may have written). A lane that has just finished a
/// small pass usually finds the next deadline due already, a millisecond ago; going at once
/// made a pass, with its round trips on PostgreSQL, for every one or two steps at 1,000
/// deadlines a second.
fn sleep_before_next_pass(earliest_ms: Option<i64>, now_ms: i64, poll: Duration) -> Duration {
    match earliest_ms {
        Some(at) => {
            let ms = at.saturating_add(COALESCE_MS).saturating_sub(now_ms).max(0);
            Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX)).min(poll)
        }
        None => poll,
    }
}

/// Claims and processes one batch of at most `batch` rows; a batch that fails is retried row by
/// row. Returns how many rows it took.
async fn run_batch(state: &AppState, batch: i64) -> Result<usize, AppError> {
    let default_policy = state.settings.escalation;
    // The time is read once the write connection is ours, so steps are stamped (and lag is
    // measured) when they are actually recorded, not when the pass began.
    let clock = state.clock.clone();
    let now_ms = state.clock.now_ms();
    let started = std::time::Instant::now();
    let result = state
        .store
        .write(move |conn| process_batch(conn, clock.now_ms(), batch, &default_policy))
        .await;
    // A step counts from when its batch began; its messages leave only after the commit.
    metrics::histogram!("doorstep_scheduler_batch_seconds").record(started.elapsed().as_secs_f64());
    let done = match result {
        Ok(done) => done,
        Err(e) => {
            tracing::warn!(error = %e, "scheduler batch failed; retrying its rows one by one");
            process_one_by_one(state, now_ms, batch, &default_policy).await?
        }
    };
    if done > 0 {
        state.push.wake();
        state.watch.wake();
    }
    Ok(done)
}

fn process_batch(
    conn: &mut DbConn,
    now_ms: i64,
    limit: i64,
    default_policy: &crate::domain::policy::EscalationPolicy,
) -> Result<usize, AppError> {
    // Policies, organisers, police, channels and last positions are read once per batch, not
    // once per step; the batch's writes are made together (a statement per kind on
    // PostgreSQL), the outings' before the alerts are claimed, whose steps read them.
    let mut lookups = Lookups::deferring_writes();
    let outings = store::schedule::claim_due_outings(conn, now_ms, limit)?;
    let mut done = outings.len();
    lookups.prefetch_people(conn, outings.iter().map(|o| o.canvasser_id))?;
    lookups.prefetch_locations(
        conn,
        outings.iter().filter_map(|o| o.last_checkin_id.as_deref()),
    )?;
    for outing in outings {
        escalation::fire_outing(conn, &mut lookups, outing, now_ms, default_policy)?;
    }
    lookups.flush(conn)?;
    let alerts = store::schedule::claim_due_alerts(conn, now_ms, limit)?;
    done = done.max(alerts.len());
    lookups.prefetch_people(conn, alerts.iter().map(|a| a.canvasser_id))?;
    for alert in alerts {
        escalation::fire_alert(conn, &mut lookups, alert, now_ms)?;
    }
    lookups.flush(conn)?;
    Ok(done)
}

/// The slow path after a failed batch: each row in its own transaction; a row that fails again
/// is postponed and logged, so one bad row never blocks everyone else's alerts.
async fn process_one_by_one(
    state: &AppState,
    now_ms: i64,
    limit: i64,
    default_policy: &crate::domain::policy::EscalationPolicy,
) -> Result<usize, AppError> {
    let (outing_ids, alert_ids) = state
        .store
        .read(move |conn| {
            let outings = store::schedule::claim_due_outings(conn, now_ms, limit)?;
            let alerts = store::schedule::claim_due_alerts(conn, now_ms, limit)?;
            Ok((
                outings.into_iter().map(|o| o.id).collect::<Vec<_>>(),
                alerts.into_iter().map(|a| a.id).collect::<Vec<_>>(),
            ))
        })
        .await?;
    let policy = *default_policy;
    let count = outing_ids.len().max(alert_ids.len());
    for id in outing_ids {
        let key = id;
        let result = state
            .store
            .write(
                move |conn| match store::outings::find_for_update(conn, key)? {
                    Some(row) if row.next_action_at.is_some_and(|at| at <= now_ms) => {
                        escalation::fire_outing(conn, &mut Lookups::default(), row, now_ms, &policy)
                    }
                    _ => Ok(()),
                },
            )
            .await;
        if let Err(e) = result {
            tracing::error!(outing = %id, error = %e, "scheduler cannot process outing; postponed 5 s");
            state
                .store
                .write(move |conn| {
                    Ok(store::schedule::postpone(
                        conn,
                        Some(&id.to_string()),
                        None,
                        now_ms + 5_000,
                    )?)
                })
                .await?;
        }
    }
    for id in alert_ids {
        let key = id;
        let result = state
            .store
            .write(
                move |conn| match store::alerts::find_for_update(conn, key)? {
                    Some(row) if row.next_action_at.is_some_and(|at| at <= now_ms) => {
                        escalation::fire_alert(conn, &mut Lookups::default(), row, now_ms)
                    }
                    _ => Ok(()),
                },
            )
            .await;
        if let Err(e) = result {
            tracing::error!(alert = %id, error = %e, "scheduler cannot process alert; postponed 5 s");
            state
                .store
                .write(move |conn| {
                    Ok(store::schedule::postpone(
                        conn,
                        None,
                        Some(&id.to_string()),
                        now_ms + 5_000,
                    )?)
                })
                .await?;
        }
    }
    Ok(count)
}

/// Fires every step that is due at the state's clock now, batch after batch, and says how
/// many were fired: the scheduler's own pass, called directly. Tests that move the clock
/// (`Clock::advance`) with `scheduler.enabled = false` use it to escalate without waiting for
/// real deadlines.
pub async fn run_due_now(state: &AppState) -> Result<usize, AppError> {
    let batch = state.settings.scheduler.batch_size;
    let mut fired = 0;
    loop {
        let done = run_batch(state, batch).await?;
        fired += done;
        if done == 0 {
            return Ok(fired);
        }
    }
}

/// Runs the loop on its own task. While the task lives the loop counts as running
/// ([`SchedulerSignals::is_running`]); [`SchedulerSignals::halt`] aborts it.
pub fn spawn(state: web::Data<AppState>) -> tokio::task::JoinHandle<()> {
    state.scheduler.set_running(true);
    // Moved into the task, so it is dropped with the task's future however that ends (even
    // aborted before its first poll, or unwound by a panic).
    let running = Running(state.clone());
    let task = tokio::spawn(async move {
        let running = running;
        run(running.0.clone()).await
    });
    state.scheduler.set_task(task.abort_handle());
    task
}

/// Marks the scheduler running for as long as its task's future exists.
struct Running(web::Data<AppState>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.scheduler.set_running(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn a_lane_sleeps_to_the_deadline_plus_the_coalescing_window_at_most_the_poll() {
        let poll = Duration::from_millis(500);
        let ms = |m: u64| Duration::from_millis(m);
        let window = COALESCE_MS as u64;
        assert_eq!(
            sleep_before_next_pass(Some(1_000 - COALESCE_MS - 100), 1_000, poll),
            ms(0),
            "later than the window: a backlog"
        );
        assert_eq!(
            sleep_before_next_pass(Some(1_000 - COALESCE_MS), 1_000, poll),
            ms(0),
            "the window has just passed"
        );
        assert_eq!(
            sleep_before_next_pass(Some(990), 1_000, poll),
            ms(window - 10),
            "due 10 ms ago: the rest of its window"
        );
        assert_eq!(
            sleep_before_next_pass(Some(1_000), 1_000, poll),
            ms(window),
            "due now"
        );
        assert_eq!(
            sleep_before_next_pass(Some(1_001), 1_000, poll),
            ms(1 + COALESCE_MS as u64)
        );
        assert_eq!(
            sleep_before_next_pass(Some(1_100), 1_000, poll),
            ms(100 + COALESCE_MS as u64)
        );
        assert_eq!(
            sleep_before_next_pass(Some(1_490), 1_000, poll),
            poll,
            "capped"
        );
        assert_eq!(
            sleep_before_next_pass(None, 1_000, poll),
            poll,
            "nothing live"
        );
        assert_eq!(
            sleep_before_next_pass(Some(i64::MAX), 0, poll),
            poll,
            "no overflow"
        );
    }
}
