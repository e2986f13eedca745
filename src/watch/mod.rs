//! Live alert events for watchers. Every replica follows the `alert_events` log (written in the
//! same transactions as the alert changes) and fans new events out to its own SSE clients
//! through a broadcast channel. A slow client lags behind on its own receiver and is dropped; it
//! never holds up the others.

use std::collections::HashMap;
use std::time::Duration;

use actix_web::web;
use tokio::sync::{broadcast, Notify};

use crate::state::AppState;
use crate::store;

/// How far back each poll looks, so events that commit late are still seen once.
const WINDOW_MS: i64 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertEvent {
    pub event: String,
    pub alert_id: String,
    pub org_id: String,
}

pub struct EventHub {
    sender: broadcast::Sender<AlertEvent>,
    wake: Notify,
}

impl Default for EventHub {
    fn default() -> Self {
        // Room for a storm's worth of events per client before it is considered too slow.
        let (sender, _) = broadcast::channel(4096);
        EventHub {
            sender,
            wake: Notify::new(),
        }
    }
}

impl EventHub {
    pub fn subscribe(&self) -> broadcast::Receiver<AlertEvent> {
        self.sender.subscribe()
    }

    /// A local write recorded events: publish without waiting for the next poll.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// Follows the event log until the task is dropped.
pub async fn run(state: web::Data<AppState>) {
    // seq → when it was seen; forgotten once it has left the window.
    let mut seen: HashMap<i64, i64> = HashMap::new();
    let started = state.clock.now_ms();
    let mut last_prune = started;
    loop {
        let now = state.clock.now_ms();
        // Events from before this process started are history, not news.
        let since = (now - WINDOW_MS).max(started - 1_000);
        match state
            .store
            .read(move |conn| store::events::recent(conn, since, 10_000))
            .await
        {
            Ok(rows) => {
                for row in rows {
                    if seen.insert(row.seq, now).is_none()
                        && state.watch.sender.receiver_count() > 0
                    {
                        let _ = state.watch.sender.send(AlertEvent {
                            event: row.event,
                            alert_id: row.alert_id,
                            org_id: row.org_id,
                        });
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read alert events"),
        }
        seen.retain(|_, at| now - *at < 2 * WINDOW_MS);
        if now - last_prune > 3_600_000 {
            last_prune = now;
            let before = now - 24 * 3_600_000;
            let _ = state
                .store
                .write(move |conn| store::events::prune(conn, before))
                .await;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = state.watch.wake.notified() => {}
        }
    }
}
