//! What every request handler and background job shares.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::auth::tokens::JwtKeys;
use crate::config::Settings;
use crate::service::Changes;
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
    pub scheduler: crate::scheduler::signals::SchedulerSignals,
    pub push: crate::push::signals::PushSignals,
    pub push_client: std::sync::Arc<crate::push::sender::PushClient>,
    /// `None` when `smtp.url` is unset: the email channel is off.
    pub mailer: Option<std::sync::Arc<crate::push::email::Mailer>>,
    pub webhooks: std::sync::Arc<crate::push::webhook::WebhookClient>,
    /// `None` when `[sms]` is not configured: the SMS and voice channels are off.
    pub twilio: Option<std::sync::Arc<crate::push::twilio::Twilio>>,
    pub watch: crate::watch::hub::EventHub,
    /// Logins confirmed live in the last `auth.session_cache_ms`.
    pub sessions: crate::auth::session_cache::SessionCache,
    /// Live check-ins wait here to be written many to a transaction.
    pub checkins: crate::service::checkins::CheckinBatcher,
    /// `limits.checkins_per_minute` per user.
    pub checkin_ceiling: crate::ceiling::CheckinCeiling,
}

impl AppState {
    /// A request committed a change that may bring work forward (a new deadline, outbox rows):
    /// let the scheduler and the delivery worker look now instead of at their next poll.
    pub fn changed(&self) {
        self.scheduler.wake();
        self.push.wake();
        self.watch.wake();
    }

    /// A request committed `changes`: wake only the loops that have something new to see.
    /// Check-ins arrive thousands of times a second and almost always move a deadline later;
    /// waking the scheduler, the delivery worker and the event hub for each one cost each a
    /// pass of queries per check-in.
    pub fn committed(&self, changes: Changes) {
        if let Some(at) = changes.next_action_at {
            self.scheduler.wake_unless_planned(at);
        }
        if changes.outbox {
            self.push.wake();
        }
        if changes.alert_events {
            self.watch.wake();
        }
    }
}
