//! Web Push: the message every channel carries, built in one place.

pub mod payload;
pub mod retry;
pub mod sender;
pub mod ssrf;
pub mod vapid;
pub mod worker;
