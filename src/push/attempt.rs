//! How one delivery attempt ended, shared by every channel and the worker that records it.

use crate::domain::delivery::{Channel, DeliveryStatus};

/// `doorstep_deliveries_total{channel, status}`: one count per attempt to one target (a push
/// subscription, a mailbox, a webhook).
pub fn count(channel: Channel, status: &str) {
    metrics::counter!("doorstep_deliveries_total", "channel" => channel.as_str(), "status" => status.to_owned())
        .increment(1);
}

/// How one attempt of one channel ended. The shared part of the worker turns it into the
/// row's next state: delivered, retried later with backoff, or given up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Delivered,
    /// Try again (not before `retry_after_s` when the receiver said so).
    Retry {
        retry_after_s: Option<u64>,
        error: String,
    },
    /// Final: `status` is `failed` or `no_subscription`.
    Failed {
        status: DeliveryStatus,
        error: String,
    },
}
