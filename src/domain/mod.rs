//! Pure domain rules and types: no I/O here, so every rule is unit-tested directly.

pub mod account;
pub mod area;
pub mod checkin;
pub mod deadline;
pub mod field_error;
pub mod ids;
pub mod policy;
pub mod time;
