//! Delivery: the message every channel carries, built in one place, and the channels that
//! carry it (Web Push, email, signed webhooks) behind one outbox worker.

pub mod attempt;
pub mod email;
pub mod encryption;
pub mod outbound;
pub mod payload;
pub mod retry;
pub mod sender;
pub mod signals;
pub mod ssrf;
pub mod twilio;
pub mod vapid;
pub mod webhook;
pub mod worker;
