//! End-to-end tests over real HTTP against an in-process server, each on SQLite and PostgreSQL.

mod helpers;

mod account_admin;
mod accounts;
mod app;
mod auth;
mod channels;
mod checkin_batch;
mod checks;
mod errors;
mod escalation;
mod field_safety;
mod handoff;
mod limits;
mod ops;
mod outings;
mod push;
mod secrecy;
mod sms;
mod totp;
mod watch;

#[path = "../support/flood_endpoint.rs"]
mod flood_endpoint;

#[path = "../support/heartbeat_receiver.rs"]
mod heartbeat_receiver;

#[path = "../support/push_receiver.rs"]
mod push_receiver;

#[path = "../support/smtp_sink.rs"]
mod smtp_sink;

#[path = "../support/webhook_receiver.rs"]
mod webhook_receiver;

#[path = "../support/twilio_fake.rs"]
mod twilio_fake;
