//! Doorstep: check-ins and escalation that keep canvassers safe.
//!
//! Layout by role: `domain` (pure rules), `store` (the only SQL), `service` (use cases),
//! `http` (routes, extractors, DTOs), background work (`scheduler`, `push`, `watch`), and the
//! process around them (`config`, `startup`, `state`).

/// Bootstrap tasks run from the command line (`doorstep admin create`).
pub mod admin;
/// Process-wide settings of the C allocator (large blocks go back to the system).
pub mod allocator;
/// Credentials: Argon2id hashing, access and refresh tokens, TOTP, the live-login memo.
pub mod auth;
/// `doorstep bench` (the `bench` feature): a child server measured over loopback.
#[cfg(feature = "bench")]
pub mod bench;
/// The per-user check-in ceiling (a flood guard held per replica).
pub mod ceiling;
/// One typed `Settings` from defaults, TOML and `DOORSTEP_*` variables, validated at start.
pub mod config;
/// Pure rules and types, no I/O: ids, roles, visibility, escalation, PINs, areas, deadlines.
pub mod domain;
/// `AppError`, the use cases' error; `http::problem` maps it to problem+json at the edge.
pub mod error;
/// Owner-only folders and files (the data folder, the SQLite database, key files).
pub mod files;
/// The HTTP API: routes, extractors, handlers by resource, middleware, OpenAPI, the app.
pub mod http;
/// The dead-man's switch: a heartbeat GET to an outside check while the scheduler is healthy.
pub mod monitoring;
/// Outbound channels: payloads, Web Push (web-push, VAPID), email, webhooks, the outbox worker.
pub mod push;
/// The background loops: scheduler lanes (claim due rows, call `service::escalation`, commit)
/// and the hourly retention job.
pub mod scheduler;
/// Use cases: each composes domain rules and storage inside one transaction.
pub mod service;
/// `Application::build`: store, migrations, keys, listeners, background tasks.
pub mod startup;
/// What every handler and background job shares (`AppState`, the movable `Clock`).
pub mod state;
/// The only module with SQL: the pool, the SQLite writer, migrations, one module per table group.
pub mod store;
/// Logs (tracing) and metrics (Prometheus text).
pub mod telemetry;
/// VAPID key pairs (RFC 8292): the P-256 keys that identify this server to push services.
pub mod vapid;
/// The alert event hub behind `/watch/stream`: follows `alert_events` and fans out to streams.
pub mod watch;
/// The JSON documents Doorstep sends (API answers, webhook bodies, stream events), built from
/// stored rows under the viewer's visibility.
pub mod wire;
