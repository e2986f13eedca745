//! Web Push: the message every channel carries, built in one place.

pub mod payload;
