//! Doorstep: check-ins and escalation that keep canvassers safe.
//!
//! Layout by role: `domain` (pure rules), `store` (the only SQL), `http` (routes, extractors,
//! errors), `auth` (credentials), `config`, `startup`.

pub mod admin;
pub mod allocator;
pub mod auth;
pub mod bench;
pub mod config;
pub mod domain;
pub mod error;
pub mod files;
pub mod http;
pub mod push;
pub mod scheduler;
pub mod service;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod vapid;
pub mod watch;
