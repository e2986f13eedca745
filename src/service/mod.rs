//! Use cases: each composes domain rules and storage inside one transaction. Handlers parse and
//! render; services decide and persist.

pub mod accounts;
pub mod alerts;
pub mod cautions;
pub mod checkins;
pub mod checks;
pub mod escalation;
pub mod facts;
pub mod handoff;
pub mod incidents;
pub mod notify;
pub mod outings;
pub mod phone;
pub mod pins;
pub mod retention;

/// What a committed write may have brought forward.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changes {
    /// The earliest scheduler action the write set (epoch ms), if any.
    pub next_action_at: Option<i64>,
    /// It queued messages in the outbox.
    pub outbox: bool,
    /// It recorded alert events (the live board's feed).
    pub alert_events: bool,
}
