//! Use cases: each composes domain rules and storage inside one transaction. Handlers parse and
//! render; services decide and persist.

pub mod accounts;
pub mod alerts;
pub mod checkins;
pub mod notify;
pub mod outings;
pub mod pins;
pub mod retention;
