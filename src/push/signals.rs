//! The wake-up request handlers and the scheduler give the delivery worker when they queue
//! messages.

use tokio::sync::Notify;

/// Wakes the worker when new outbox rows are committed.
#[derive(Default)]
pub struct PushSignals {
    pub(crate) wake: Notify,
}

impl PushSignals {
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}
