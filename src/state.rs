//! What every request handler and background job shares.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::auth::tokens::JwtKeys;
use crate::config::Settings;
use crate::store::Store;

/// The service's clock. Real time plus an offset that tests can move forward, so time-based
/// behaviour (expiry, retention) is tested without waiting.
#[derive(Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        let offset = self.offset_ms.load(Ordering::Relaxed);
        crate::domain::time::from_millis(Utc::now().timestamp_millis().saturating_add(offset))
    }

    pub fn now_ms(&self) -> i64 {
        self.now().timestamp_millis()
    }

    /// Moves this clock forward (tests only; production never calls it).
    pub fn advance(&self, by: chrono::Duration) {
        self.offset_ms
            .fetch_add(by.num_milliseconds(), Ordering::Relaxed);
    }
}

pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub keys: JwtKeys,
    pub clock: Clock,
    pub scheduler: crate::scheduler::SchedulerSignals,
    pub push: crate::push::worker::PushSignals,
    pub push_client: std::sync::Arc<crate::push::sender::PushClient>,
    /// `None` when `smtp.url` is unset: the email channel is off.
    pub mailer: Option<std::sync::Arc<crate::push::email::Mailer>>,
    pub webhooks: std::sync::Arc<crate::push::webhook::WebhookClient>,
    pub watch: crate::watch::EventHub,
    /// Logins confirmed live in the last `auth.session_cache_ms`.
    pub sessions: crate::auth::session_cache::SessionCache,
}

impl AppState {
    /// A request committed a change that may bring work forward (a new deadline, outbox rows):
    /// let the scheduler and the delivery worker look now instead of at their next poll.
    pub fn changed(&self) {
        self.scheduler.wake();
        self.push.wake();
        self.watch.wake();
    }
}
