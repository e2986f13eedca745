//! The wake-ups the scheduler's lanes share with the request handlers: a write that brings a
//! deadline forward wakes a lane unless one already plans to look in time.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Mutex, PoisonError};

use tokio::sync::Notify;

/// Most lanes the scheduler runs (their plans are kept in a fixed array).
pub(crate) const MAX_LANES: usize = 16;

/// A lane sleeping until a deadline sleeps this much longer, so that the deadlines falling due
/// meanwhile are taken in the same pass. At 1,000 deadlines a second a pass per deadline was a
/// transaction, a claim and the per-batch lookups (policy, organisers, police...) for every
/// step; 25 ms more lag (against the promise of a second) makes that one pass per ~25 steps.
pub const COALESCE_MS: i64 = 25;

/// Shared between the loop and the request handlers.
pub struct SchedulerSignals {
    pub(crate) wake: Notify,
    /// When the loop last completed a pass (epoch ms; 0 = never).
    pub(crate) heartbeat_ms: AtomicI64,
    /// Per lane, when it will next look (epoch ms): `i64::MAX` while it is working, has not
    /// started, or is reading its next deadline (which may miss a write committing meanwhile).
    pub(crate) planned: [AtomicI64; MAX_LANES],
    /// The loop's task is running in this process: set when it is spawned, cleared when its
    /// future is dropped (ended, aborted, or unwound by a panic).
    running: AtomicBool,
    /// How to stop the loop's task ([`SchedulerSignals::halt`]).
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Default for SchedulerSignals {
    fn default() -> Self {
        SchedulerSignals {
            wake: Notify::new(),
            heartbeat_ms: AtomicI64::new(0),
            planned: std::array::from_fn(|_| AtomicI64::new(i64::MAX)),
            running: AtomicBool::new(false),
            task: Mutex::new(None),
        }
    }
}

impl SchedulerSignals {
    /// Asks the loop to look again now (a request wrote work that may be due soon).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Asks the loop to look again unless a lane already plans to look by `at_ms` plus the
    /// coalescing window ([`COALESCE_MS`]: what a lane would wait for anyway).
    /// Call it after the write that set `at_ms` has committed. A lane publishes its plan only
    /// after reading the deadlines, so a lane that plans to look by `at_ms` will either have
    /// seen this write or will read the deadlines again by then.
    pub fn wake_unless_planned(&self, at_ms: i64) {
        if !self
            .planned
            .iter()
            .map(|p| p.load(Ordering::SeqCst))
            // i64::MAX: busy, no plan.
            .any(|plan| plan != i64::MAX && plan <= at_ms.saturating_add(COALESCE_MS))
        {
            self.wake.notify_one();
        }
    }

    /// Whether the loop's task is alive (set by its guard in `scheduler::spawn`).
    pub(crate) fn set_running(&self, running: bool) {
        self.running.store(running, Ordering::SeqCst);
    }

    /// Keeps the handle [`SchedulerSignals::halt`] aborts.
    pub(crate) fn set_task(&self, task: tokio::task::AbortHandle) {
        *self.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
    }

    /// Whether the loop's task is alive in this process.
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    /// Stops this process's scheduler loop, as if its task had died. Tests use it to check
    /// what notices a dead scheduler (`/readyz`, the heartbeat).
    pub fn halt(&self) {
        if let Some(task) = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }

    pub fn last_pass_ms(&self) -> i64 {
        self.heartbeat_ms.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    fn woken(signals: &SchedulerSignals) -> bool {
        signals.wake.notified().now_or_never().is_some()
    }

    /// A check-in that moves a deadline later must not wake the scheduler when a lane already
    /// plans to look before that deadline; anything sooner, or a lane without a plan, wakes it.
    #[test]
    fn a_wake_is_skipped_only_when_a_lane_already_plans_to_look_in_time() {
        let signals = SchedulerSignals::default();
        signals.wake_unless_planned(5_000);
        assert!(woken(&signals), "no lane has a plan yet");
        assert!(!woken(&signals), "one wake-up, consumed");

        signals.planned[0].store(4_000, Ordering::SeqCst);
        signals.wake_unless_planned(5_000);
        assert!(!woken(&signals), "lane 0 looks at 4,000, before 5,000");
        signals.wake_unless_planned(4_000 - COALESCE_MS);
        assert!(
            !woken(&signals),
            "lane 0 looks within the coalescing window of it"
        );
        signals.wake_unless_planned(4_000 - COALESCE_MS - 1);
        assert!(woken(&signals), "sooner than any plan allows");

        signals.planned[0].store(i64::MAX, Ordering::SeqCst);
        signals.planned[3].store(4_000, Ordering::SeqCst);
        signals.wake_unless_planned(5_000);
        assert!(!woken(&signals), "any lane's plan will do");
        signals.planned[3].store(i64::MAX, Ordering::SeqCst);
        signals.wake_unless_planned(i64::MAX - 1);
        assert!(woken(&signals), "every lane busy: always wake");
    }
}
