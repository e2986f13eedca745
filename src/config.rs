//! One typed `Settings`, built from built-in defaults, an optional TOML file and
//! `DOORSTEP_SECTION__KEY` environment variables (which win), then validated as a whole so the
//! service refuses to start on half a config.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::domain::policy::EscalationPolicy;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub auth: AuthSettings,
    pub push: PushSettings,
    pub limits: LimitSettings,
    pub escalation: EscalationPolicy,
    pub privacy: PrivacySettings,
    pub smtp: SmtpSettings,
    pub webhooks: WebhookSettings,
    pub scheduler: SchedulerSettings,
    pub sms: SmsSettings,
    pub monitoring: MonitoringSettings,
}

/// The dead-man's switch: an outside check (Healthchecks, say) that hears from Doorstep every
/// `heartbeat_s` while its scheduler is healthy, and notices when it stops hearing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitoringSettings {
    /// GET every `heartbeat_s` while the scheduler is healthy (its loop alive, the database
    /// reachable, no deadline 5 s overdue). Unset: no heartbeat. Follows the outbound address
    /// rules of push endpoints (`https://` to a public address unless
    /// `push.allow_private_endpoints`).
    pub heartbeat_url: Option<String>,
    /// Seconds between two heartbeats.
    pub heartbeat_s: u64,
    /// Appended to the URL's path when the scheduler is not healthy (Healthchecks: `/fail`).
    pub fail_suffix: String,
}

impl Default for MonitoringSettings {
    fn default() -> Self {
        Self {
            heartbeat_url: None,
            heartbeat_s: 60,
            fail_suffix: "/fail".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerSettings {
    /// Run the scheduler in this process (every replica may; they share the work safely).
    pub enabled: bool,
    /// Longest sleep between passes, so work written by other replicas is seen promptly.
    pub poll_interval_ms: u64,
    /// Rows claimed per transaction.
    pub batch_size: i64,
    /// Batches processed at once on PostgreSQL, each in its own transaction on its own
    /// connection (`FOR UPDATE SKIP LOCKED` keeps them apart, as it does replicas). SQLite has
    /// one writer, so there it is always 1.
    pub concurrency: usize,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            poll_interval_ms: 500,
            batch_size: 200,
            concurrency: 4,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Listen address, `host:port`. Port 0 picks a free port (tests).
    pub bind: String,
    /// Folder for generated keys and the default SQLite file.
    pub data_dir: PathBuf,
    /// Largest accepted request body, bytes.
    pub max_body_bytes: usize,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    /// Believe the last `X-Forwarded-For` entry (the one the proxy in front appended) for the
    /// client address; only behind such a proxy.
    pub trust_forwarded_for: bool,
    /// Browser origins allowed to call the API cross-origin (CORS). Empty: none (the default;
    /// the app served by Doorstep itself is same-origin and needs nothing here).
    pub cors_allowed_origins: Vec<String>,
    /// Where people reach the app, e.g. `https://doorstep.example.org`: makes the links in
    /// alert emails absolute. Unset: emails carry the path only.
    pub public_url: Option<String>,
    /// Bearer token a Prometheus scraper sends for `GET /metrics`. Unset (and no
    /// `metrics_bind`): `/metrics` answers 404. The figures move with alerts (open alerts by
    /// level), so they are not public.
    pub metrics_token: Option<String>,
    /// Serve `/metrics` without a token on this address instead (`host:port`, for a scraper
    /// on a private network); the main listener then answers 404 there.
    pub metrics_bind: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `sqlite://PATH` (relative paths are relative to the working directory) or `postgres://...`.
    pub url: String,
    /// Connections in the pool (PostgreSQL; SQLite readers).
    pub pool_size: u32,
    /// Keep PostgreSQL statements prepared by name on each connection (diesel's statement
    /// cache). `false` behind PgBouncer in transaction pooling mode, where the next
    /// transaction may run on another server connection that never saw the statement: each
    /// statement is then sent with its parameters in one round (unnamed). No effect on SQLite.
    pub statement_cache: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    pub access_ttl_s: i64,
    pub refresh_ttl_s: i64,
    /// Base64url HMAC key (≥ 32 bytes) for access tokens. Unset: generated once into
    /// `<data_dir>/jwt-signing.key`. Several replicas must share one key.
    pub jwt_secret: Option<String>,
    /// Keys that still verify tokens after a rotation (base64url), newest first.
    pub jwt_previous_secrets: Vec<String>,
    /// Failed logins allowed per client address within `login_window_s` (logins that
    /// succeed are not counted: a campaign office or a phone network shares one address).
    pub login_max_per_address: u32,
    /// Failed logins allowed per account and client address within `login_window_s`: an
    /// address that fails against an account is refused for it; others are not.
    pub login_max_failures_per_email: u32,
    /// Past this many failed logins on one account within `login_window_s`, from anywhere,
    /// the account takes one attempt per `login_slow_interval_ms` (a distributed guesser).
    pub login_slow_after_failures: u32,
    pub login_slow_interval_ms: u64,
    pub login_window_s: i64,
    /// How long a replica may reuse its own confirmation that a login is live (0 = check the
    /// database on every request). A revocation on another replica takes effect within it.
    pub session_cache_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PushSettings {
    /// Base64url raw P-256 private key (32 bytes).
    pub vapid_private_key: Option<String>,
    /// PEM file holding the VAPID private key.
    pub vapid_key_file: Option<PathBuf>,
    /// VAPID `sub` claim: a `mailto:` or `https:` contact for push services.
    pub subject: String,
    pub allow_private_endpoints: bool,
    /// Run the delivery worker in this process.
    pub worker_enabled: bool,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// Time allowed for one push service request.
    pub request_timeout_ms: u64,
    /// Longest sleep between outbox polls.
    pub poll_interval_ms: u64,
    /// Outbound proxy for push services, webhooks and the SMS provider (`http://host:port`).
    /// Unset: proxy environment variables are ignored. A proxy resolves names itself, so the
    /// address guard cannot see where it connects: it must enforce the same rules.
    pub proxy: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    pub min_checkin_interval_s: i64,
    /// Most vertices accepted in an outing's area.
    pub max_area_vertices: usize,
    /// Check-in requests (live or batch) per user per minute, per replica: a ceiling no phone
    /// reaches (429 beyond it). 0 turns it off.
    pub checkins_per_minute: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacySettings {
    pub location_retention_days: i64,
    /// A closed incident (with its entries and position) is kept this long, then removed
    /// whole. Seven years by default: the usual keeping period for evidence of a crime
    /// that may be prosecuted late.
    pub incident_retention_days: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpSettings {
    /// `smtp://host:port` (STARTTLS, see `tls`) or `smtps://host:port` (implicit TLS), with
    /// optional `user:pass@`. Unset: the email channel is off.
    pub url: Option<String>,
    /// Sender of alert emails, e.g. `Doorstep <alerts@example.org>`.
    pub from: Option<String>,
    /// For `smtp://`: `required` (the default: a relay that does not offer STARTTLS, or an
    /// attacker who strips it, gets no mail), `opportunistic` (plain text when not offered),
    /// or `none` (plain text always; a relay on the same host).
    pub tls: SmtpTls,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    #[default]
    Required,
    Opportunistic,
    None,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// No longer used: each personal webhook is signed with its owner's own secret, and each
    /// organisation's with the organisation's. Accepted (and ignored, with a warning at
    /// start) so that older configuration files still start.
    pub signing_secret: Option<String>,
}

impl Settings {
    /// Where the SMS provider reaches this server (`sms.public_url`, else `server.public_url`),
    /// without a trailing slash: the base of its callback URLs and of the URLs it signs.
    pub fn sms_callback_base(&self) -> Option<String> {
        self.sms
            .public_url
            .as_deref()
            .or(self.server.public_url.as_deref())
            .map(|u| u.trim_end_matches('/').to_owned())
    }
}

/// SMS and voice calls through a provider (Twilio's API). Unset (`provider` none or no
/// credentials): the channels are off, and their delivery rows are recorded as failed with
/// the reason.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmsSettings {
    /// `twilio`, or none.
    pub provider: Option<String>,
    pub account_sid: Option<String>,
    pub auth_token: Option<String>,
    /// The sending number, E.164.
    pub from: Option<String>,
    /// The provider's API root (a test points it at a local fake).
    pub api_base: String,
    /// Where the provider reaches Doorstep for replies, keypad digits and status callbacks
    /// (`https://doorstep.example.org`); the signature of each is checked against it.
    pub public_url: Option<String>,
    /// SMS an organisation may send in a calendar month (UTC); 0 = no ceiling. Beyond it,
    /// SMS rows are recorded as failed with the reason; push, email and calls carry on.
    pub monthly_limit: i64,
}

impl Default for SmsSettings {
    fn default() -> Self {
        Self {
            provider: None,
            account_sid: None,
            auth_token: None,
            from: None,
            api_base: "https://api.twilio.com".into(),
            public_url: None,
            monthly_limit: 0,
        }
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("data"),
            max_body_bytes: 64 * 1024,
            workers: 0,
            trust_forwarded_for: false,
            cors_allowed_origins: Vec::new(),
            public_url: None,
            metrics_token: None,
            metrics_bind: None,
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: "sqlite://data/doorstep.db".into(),
            pool_size: 8,
            statement_cache: true,
        }
    }
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            access_ttl_s: 900,
            refresh_ttl_s: 2_592_000,
            jwt_secret: None,
            jwt_previous_secrets: Vec::new(),
            login_max_per_address: 30,
            login_max_failures_per_email: 10,
            login_slow_after_failures: 20,
            login_slow_interval_ms: 1_000,
            login_window_s: 300,
            session_cache_ms: 1_000,
        }
    }
}

impl Default for PushSettings {
    fn default() -> Self {
        Self {
            vapid_private_key: None,
            vapid_key_file: None,
            subject: "mailto:safety@doorstep.invalid".into(),
            allow_private_endpoints: false,
            worker_enabled: true,
            concurrency: 64,
            request_timeout_ms: 10_000,
            poll_interval_ms: 250,
            proxy: None,
        }
    }
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            min_checkin_interval_s: 60,
            max_area_vertices: 2_000,
            checkins_per_minute: 120,
        }
    }
}

impl Default for PrivacySettings {
    fn default() -> Self {
        Self {
            location_retention_days: 30,
            incident_retention_days: 2555,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Parse(String),
    #[error("invalid configuration key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

/// Which storage a database URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DatabaseSettings {
    pub fn kind(&self) -> Result<DatabaseKind, ConfigError> {
        if let Some(path) = self.url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(ConfigError::Invalid {
                    key: "database.url",
                    message: "sqlite:// needs a file path, e.g. sqlite://data/doorstep.db".into(),
                });
            }
            Ok(DatabaseKind::Sqlite(PathBuf::from(path)))
        } else if self.url.starts_with("postgres://") || self.url.starts_with("postgresql://") {
            Ok(DatabaseKind::Postgres(self.url.clone()))
        } else {
            Err(ConfigError::Invalid {
                key: "database.url",
                message: "must start with sqlite:// or postgres://".into(),
            })
        }
    }
}

impl Settings {
    /// Defaults, then `config/default.toml` when present (or `file`, which must exist), then env.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        match file {
            Some(path) => {
                if !path.exists() {
                    return Err(ConfigError::MissingFile(path.to_path_buf()));
                }
                figment = figment.merge(Toml::file(path));
            }
            None => {
                let default = Path::new("config/default.toml");
                if default.exists() {
                    figment = figment.merge(Toml::file(default));
                }
            }
        }
        // Only `DOORSTEP_<SECTION>__<KEY>` is configuration. Other `DOORSTEP_*` variables are
        // someone else's: Kubernetes gives every pod `DOORSTEP_PORT`, `DOORSTEP_SERVICE_HOST`,
        // `DOORSTEP_PORT_8080_TCP_ADDR`... for a Service named `doorstep`.
        let ignored = ignored_environment(std::env::vars_os().map(|(name, _)| name));
        if !ignored.is_empty() {
            tracing::warn!(
                variables = %ignored.join(", "),
                "ignoring DOORSTEP_* environment variables that are not DOORSTEP_<SECTION>__<KEY> \
                 settings"
            );
        }
        figment = figment.merge(
            Env::prefixed(ENV_PREFIX)
                .filter(|key| is_setting_key(key.as_str()))
                .split("__"),
        );
        let settings: Settings = figment
            .extract()
            .map_err(|e| ConfigError::Parse(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        fn bad(key: &'static str, message: impl Into<String>) -> ConfigError {
            ConfigError::Invalid {
                key,
                message: message.into(),
            }
        }
        self.server
            .bind
            .parse::<SocketAddr>()
            .map_err(|e| bad("server.bind", format!("not a socket address: {e}")))?;
        for origin in &self.server.cors_allowed_origins {
            let parsed = url::Url::parse(origin)
                .map_err(|e| bad("server.cors_allowed_origins", format!("{origin:?}: {e}")))?;
            if parsed.origin().ascii_serialization() != origin.trim_end_matches('/') {
                return Err(bad(
                    "server.cors_allowed_origins",
                    format!("{origin:?} is not an origin (scheme://host[:port], no path)"),
                ));
            }
        }
        if self.server.max_body_bytes < 1024 {
            return Err(bad("server.max_body_bytes", "must be at least 1024"));
        }
        self.database.kind()?;
        if self.database.pool_size == 0 {
            return Err(bad("database.pool_size", "must be at least 1"));
        }
        if self.auth.access_ttl_s < 30 || self.auth.access_ttl_s > 86_400 {
            return Err(bad("auth.access_ttl_s", "must be between 30 and 86400"));
        }
        if self.auth.refresh_ttl_s < self.auth.access_ttl_s {
            return Err(bad(
                "auth.refresh_ttl_s",
                "must not be shorter than auth.access_ttl_s",
            ));
        }
        if self.auth.session_cache_ms > 10_000 {
            return Err(bad(
                "auth.session_cache_ms",
                "must be at most 10000: a revoked login must stop working quickly",
            ));
        }
        if self.auth.login_window_s <= 0 {
            return Err(bad("auth.login_window_s", "must be positive"));
        }
        if let Some(secret) = &self.auth.jwt_secret {
            decode_secret(secret).map_err(|m| bad("auth.jwt_secret", m))?;
        }
        for secret in &self.auth.jwt_previous_secrets {
            decode_secret(secret).map_err(|m| bad("auth.jwt_previous_secrets", m))?;
        }
        if !(self.push.subject.starts_with("mailto:") || self.push.subject.starts_with("https://"))
        {
            return Err(bad("push.subject", "must be a mailto: or https:// URI"));
        }
        if !(1..=10_000).contains(&self.push.concurrency) {
            return Err(bad("push.concurrency", "must be between 1 and 10000"));
        }
        if !(100..=120_000).contains(&self.push.request_timeout_ms) {
            return Err(bad(
                "push.request_timeout_ms",
                "must be between 100 and 120000",
            ));
        }
        if !(10..=5_000).contains(&self.push.poll_interval_ms) {
            return Err(bad("push.poll_interval_ms", "must be between 10 and 5000"));
        }
        if self.push.vapid_private_key.is_some() && self.push.vapid_key_file.is_some() {
            return Err(bad(
                "push.vapid_key_file",
                "set either push.vapid_private_key or push.vapid_key_file, not both",
            ));
        }
        if self.limits.min_checkin_interval_s < 1 {
            return Err(bad("limits.min_checkin_interval_s", "must be at least 1"));
        }
        if self.limits.max_area_vertices < 4 {
            return Err(bad("limits.max_area_vertices", "must be at least 4"));
        }
        if let Err(errors) = self.escalation.validate(self.limits.min_checkin_interval_s) {
            let detail = errors
                .iter()
                .map(|e| format!("escalation.{}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(bad("escalation", detail));
        }
        if !(10..=1000).contains(&self.scheduler.poll_interval_ms) {
            return Err(bad(
                "scheduler.poll_interval_ms",
                "must be between 10 and 1000 (a missed check-in must be noticed within a second)",
            ));
        }
        if !(1..=10_000).contains(&self.scheduler.batch_size) {
            return Err(bad("scheduler.batch_size", "must be between 1 and 10000"));
        }
        if !(1..=64).contains(&self.scheduler.concurrency) {
            return Err(bad("scheduler.concurrency", "must be between 1 and 64"));
        }
        if self.privacy.location_retention_days < 1 {
            return Err(bad("privacy.location_retention_days", "must be at least 1"));
        }
        if self.privacy.incident_retention_days < 1 {
            return Err(bad("privacy.incident_retention_days", "must be at least 1"));
        }
        if !(1..=3_600).contains(&self.monitoring.heartbeat_s) {
            return Err(bad("monitoring.heartbeat_s", "must be between 1 and 3600"));
        }
        if !self.monitoring.fail_suffix.starts_with('/') || self.monitoring.fail_suffix.len() < 2 {
            return Err(bad(
                "monitoring.fail_suffix",
                "must be a path segment such as /fail",
            ));
        }
        if let Some(url) = &self.monitoring.heartbeat_url {
            // The address rules of push endpoints and webhooks: a request this process makes
            // on its own is a request that must not reach inside by mistake.
            crate::push::ssrf::check_url(url, self.push.allow_private_endpoints).map_err(|e| {
                bad(
                    "monitoring.heartbeat_url",
                    format!("{e} (push.allow_private_endpoints lifts the address rules)"),
                )
            })?;
        }
        if self.smtp.url.is_some() && self.smtp.from.is_none() {
            return Err(bad("smtp.from", "is required when smtp.url is set"));
        }
        if let Some(url) = &self.smtp.url {
            parse_smtp_url(url).map_err(|m| bad("smtp.url", m))?;
        }
        if let Some(from) = &self.smtp.from {
            from.parse::<lettre::message::Mailbox>()
                .map_err(|e| bad("smtp.from", format!("not an email address: {e}")))?;
        }
        if let Some(public) = &self.server.public_url {
            let parsed = url::Url::parse(public)
                .map_err(|e| bad("server.public_url", format!("{public:?}: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(bad("server.public_url", "must be an http(s) URL"));
            }
        }
        Ok(())
    }
}

/// The prefix of environment variables that configure Doorstep.
const ENV_PREFIX: &str = "DOORSTEP_";

/// Whether what follows `DOORSTEP_` names a setting: `<SECTION>__<KEY>`. A name with `__`
/// is always read (an unknown section or key is then refused, as in the file); one without
/// (`PORT`, `SERVICE_HOST`, `PORT_8080_TCP_ADDR`, a tool's own `BIN`) is not Doorstep's.
fn is_setting_key(key: &str) -> bool {
    key.contains("__")
}

/// The `DOORSTEP_*` variable names among `names` that are not settings (ignored, with a
/// warning at start), sorted.
pub fn ignored_environment(names: impl Iterator<Item = std::ffi::OsString>) -> Vec<String> {
    let mut ignored: Vec<String> = names
        .filter_map(|name| name.into_string().ok())
        .filter(|name| {
            name.get(..ENV_PREFIX.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(ENV_PREFIX))
                && !is_setting_key(&name[ENV_PREFIX.len()..])
        })
        .collect();
    ignored.sort();
    ignored
}

/// Decodes a configured secret; at least 32 bytes so HS256 keeps its strength.
pub fn decode_secret(secret: &str) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(secret.trim().trim_end_matches('='))
        .map_err(|e| format!("not base64url: {e}"))?;
    if bytes.len() < 32 {
        return Err("must decode to at least 32 bytes".into());
    }
    Ok(bytes)
}

/// What `smtp.url` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpUrl {
    pub host: String,
    pub port: u16,
    /// `smtps://`: TLS from the first byte. Otherwise STARTTLS when the server offers it.
    pub implicit_tls: bool,
    pub credentials: Option<(String, String)>,
}

pub fn parse_smtp_url(raw: &str) -> Result<SmtpUrl, String> {
    let url = url::Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
    let (implicit_tls, default_port) = match url.scheme() {
        "smtp" => (false, 587),
        "smtps" => (true, 465),
        other => {
            return Err(format!(
                "scheme must be smtp:// or smtps://, not {other}://"
            ))
        }
    };
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("needs a host, e.g. smtp://mail.example.org:587")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let credentials = match (url.username(), url.password()) {
        ("", None) => None,
        (user, pass) => Some((decode(user), decode(pass.unwrap_or("")))),
    };
    Ok(SmtpUrl {
        host,
        port: url.port().unwrap_or(default_port),
        implicit_tls,
        credentials,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls() {
        assert_eq!(
            parse_smtp_url("smtp://127.0.0.1:2525").unwrap(),
            SmtpUrl {
                host: "127.0.0.1".into(),
                port: 2525,
                implicit_tls: false,
                credentials: None
            }
        );
        let u = parse_smtp_url("smtps://al%40x:p%3Ass@mail.example.org").unwrap();
        assert!(u.implicit_tls);
        assert_eq!(u.port, 465);
        assert_eq!(u.credentials, Some(("al@x".into(), "p:ss".into())));
        assert!(parse_smtp_url("http://mail.example.org").is_err());
        assert!(parse_smtp_url("nonsense").is_err());
    }

    #[test]
    fn only_section_key_variables_are_settings() {
        let names = [
            "DOORSTEP_PORT",
            "DOORSTEP_SERVICE_HOST",
            "DOORSTEP_PORT_8080_TCP_ADDR",
            "DOORSTEP_SERVER__BIND",
            "DOORSTEP_SERVER__NOPE",
            "doorstep_bin",
            "PATH",
            "DOORSTEP",
        ]
        .map(std::ffi::OsString::from);
        assert_eq!(
            ignored_environment(names.into_iter()),
            vec![
                "DOORSTEP_PORT",
                "DOORSTEP_PORT_8080_TCP_ADDR",
                "DOORSTEP_SERVICE_HOST",
                "doorstep_bin"
            ]
        );
    }

    #[test]
    fn the_heartbeat_url_follows_the_outbound_address_rules() {
        let mut s = Settings::default();
        for url in [
            "http://hc.example.org/ping/x",
            "https://127.0.0.1/ping/x",
            "https://[::1]/ping/x",
            "https://169.254.169.254/latest",
            "https://localhost/ping/x",
            "https://user:pw@hc.example.org/ping/x",
        ] {
            s.monitoring.heartbeat_url = Some(url.into());
            let err = s.validate().unwrap_err().to_string();
            assert!(err.contains("monitoring.heartbeat_url"), "{url}: {err}");
        }
        s.monitoring.heartbeat_url = Some("https://hc-ping.com/0b5c0f7e".into());
        s.validate().unwrap();
        s.monitoring.heartbeat_url = Some("http://127.0.0.1:9/ping".into());
        s.push.allow_private_endpoints = true;
        s.validate().unwrap();
        s.monitoring.fail_suffix = "fail".into();
        assert!(s.validate().is_err());
        s.monitoring.fail_suffix = "/fail".into();
        s.monitoring.heartbeat_s = 0;
        assert!(s.validate().is_err());
    }

    #[test]
    fn defaults_are_valid() {
        Settings::default().validate().unwrap();
    }

    #[test]
    fn bad_database_url_names_the_key() {
        let mut s = Settings::default();
        s.database.url = "mysql://x".into();
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("database.url"), "{err}");
    }

    #[test]
    fn bad_bind_names_the_key() {
        let mut s = Settings::default();
        s.server.bind = "nowhere".into();
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("server.bind"));
    }

    #[test]
    fn escalation_policy_is_checked_against_the_minimum_interval() {
        let mut s = Settings::default();
        s.escalation.police_after_s = 5;
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("police_after_s"), "{err}");
    }
}
