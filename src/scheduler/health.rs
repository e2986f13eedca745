//! Whether the scheduler keeps its promise, as `/readyz` and the heartbeat (`monitoring`) see
//! it: its loop alive in this process, the database reachable with its schema current, and no
//! deadline 5 s overdue. Everything is read from the database and the loop's own signals;
//! nothing is kept for it.

use crate::state::AppState;
use crate::store::{self, Store};

/// A deadline this overdue and not yet handled means the scheduler is behind: a missed
/// check-in is promised to be noticed within a second.
pub const MAX_LAG_MS: i64 = 5_000;

/// The scheduler of this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedulerState {
    /// Its loop ran a pass recently and nothing is overdue.
    Ok,
    /// `scheduler.enabled = false`: another replica runs it (nothing is overdue).
    Disabled,
    /// Its task is gone (ended, aborted, panicked).
    Stopped,
    /// Its task lives but has not finished a pass for too long.
    Stalled,
    /// A deadline is [`MAX_LAG_MS`] or more overdue (whoever runs the scheduler).
    Behind,
}

impl SchedulerState {
    pub fn as_str(self) -> &'static str {
        match self {
            SchedulerState::Ok => "ok",
            SchedulerState::Disabled => "disabled",
            SchedulerState::Stopped => "stopped",
            SchedulerState::Stalled => "stalled",
            SchedulerState::Behind => "behind",
        }
    }
}

/// What [`check`] found.
#[derive(Debug, Clone)]
pub struct Health {
    /// The database answered.
    pub database_reachable: bool,
    /// Every embedded migration is applied (`None` when the database did not answer).
    pub migrations_current: Option<bool>,
    pub scheduler: SchedulerState,
    /// How overdue the oldest pending deadline is, ms (0 when none is; `None` when unknown).
    pub lag_ms: Option<i64>,
}

impl Health {
    /// Ready to serve (`/readyz`): a replica that does not run the scheduler is ready as long
    /// as the scheduler elsewhere keeps up.
    pub fn ready(&self) -> bool {
        self.database_reachable
            && self.migrations_current == Some(true)
            && matches!(
                self.scheduler,
                SchedulerState::Ok | SchedulerState::Disabled
            )
    }

    /// The heartbeat's question: is this process's scheduler doing its job?
    pub fn scheduler_healthy(&self) -> bool {
        self.ready() && self.scheduler == SchedulerState::Ok
    }

    /// Why it is not healthy, in words for an operator (`None` when it is).
    pub fn reason(&self) -> Option<String> {
        if !self.database_reachable {
            return Some("the database does not answer".into());
        }
        if self.migrations_current != Some(true) {
            return Some("database migrations are pending".into());
        }
        match self.scheduler {
            SchedulerState::Ok => None,
            SchedulerState::Disabled => {
                Some("the scheduler is disabled in this process (scheduler.enabled)".into())
            }
            SchedulerState::Stopped => Some("the scheduler loop is not running".into()),
            SchedulerState::Stalled => {
                Some("the scheduler loop has not finished a pass recently".into())
            }
            SchedulerState::Behind => Some(format!(
                "the scheduler is behind: a deadline is {} ms overdue (limit {MAX_LAG_MS} ms)",
                self.lag_ms.unwrap_or_default()
            )),
        }
    }
}

/// Looks: one read of the database (migrations, the oldest pending deadline) and the loop's
/// signals.
pub async fn check(state: &AppState) -> Health {
    let probe = state
        .store
        .read(|conn| {
            let current = Store::migrations_current(conn)?;
            let oldest = store::schedule::oldest_action(conn)?;
            Ok((current, oldest))
        })
        .await;
    let now = state.clock.now_ms();
    let (database_reachable, migrations_current, lag_ms) = match probe {
        Ok((current, oldest)) => (
            true,
            Some(current),
            Some(oldest.map_or(0, |at| now.saturating_sub(at).max(0))),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "health check: the database does not answer");
            (false, None, None)
        }
    };
    let settings = &state.settings.scheduler;
    let scheduler = if settings.enabled && !state.scheduler.is_running() {
        SchedulerState::Stopped
    } else if settings.enabled && !passed_recently(state) {
        SchedulerState::Stalled
    } else if lag_ms.is_some_and(|lag| lag >= MAX_LAG_MS) {
        SchedulerState::Behind
    } else if !settings.enabled {
        SchedulerState::Disabled
    } else {
        SchedulerState::Ok
    };
    Health {
        database_reachable,
        migrations_current,
        scheduler,
        lag_ms,
    }
}

/// The loop passes at least every poll interval; a pass over a storm may take a few seconds.
fn passed_recently(state: &AppState) -> bool {
    let last = state.scheduler.last_pass_ms();
    let allowed = 10_000 + 5 * state.settings.scheduler.poll_interval_ms as i64;
    last > 0 && state.clock.now_ms() - last <= allowed
}
