//! End-to-end tests over real HTTP against an in-process server, each on SQLite and PostgreSQL.

mod helpers;

mod accounts;
mod auth;
mod errors;
mod escalation;
mod ops;
mod outings;
mod push;
mod totp;
mod watch;

#[path = "../support/push_receiver.rs"]
mod push_receiver;
