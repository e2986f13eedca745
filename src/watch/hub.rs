//! The fan-out of alert events to this replica's live watchers.

use tokio::sync::{broadcast, Notify};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertEvent {
    pub event: String,
    pub alert_id: String,
    pub org_id: String,
}

pub struct EventHub {
    pub(crate) sender: broadcast::Sender<AlertEvent>,
    pub(crate) wake: Notify,
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
