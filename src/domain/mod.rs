//! Pure domain rules and types: no I/O here, so every rule is unit-tested directly.

pub mod account;
pub mod area;
pub mod caller;
pub mod caution;
pub mod checkin;
pub mod checks;
pub mod deadline;
pub mod delivery;
pub mod escalation;
pub mod field_error;
pub mod handoff;
pub mod ids;
pub mod incident;
pub mod management;
pub mod outing;
pub mod pins;
pub mod policy;
pub mod sms;
pub mod time;
pub mod visibility;
