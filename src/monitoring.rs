//! The dead-man's switch: every `monitoring.heartbeat_s`, GET `monitoring.heartbeat_url` while
//! the scheduler is healthy (`scheduler::health`), or the URL with `monitoring.fail_suffix`
//! appended when it is not. An outside check (Healthchecks, hosted or self-hosted) then
//! notices what Doorstep cannot report itself: the process gone, the host down, the network
//! cut, as well as a scheduler that is stuck or behind.
//!
//! The request is made like every outbound one (`push::outbound`): proxies only by
//! `push.proxy`, no redirects, the address guard unless `push.allow_private_endpoints`, and
//! the answer read to 4 KiB. The URL holds the check's secret: it is never logged.

use std::time::Duration;

use actix_web::web;
use url::Url;

use crate::config::Settings;
use crate::push::outbound;
use crate::scheduler::health;
use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum HeartbeatError {
    #[error("monitoring.heartbeat_url: {0}")]
    Url(String),
    #[error("the heartbeat's HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Where and how often to report.
pub struct Heartbeat {
    client: reqwest::Client,
    ok: Url,
    fail: Url,
    every: Duration,
}

impl Heartbeat {
    /// `None` when `monitoring.heartbeat_url` is unset.
    pub fn from_settings(settings: &Settings) -> Result<Option<Heartbeat>, HeartbeatError> {
        let monitoring = &settings.monitoring;
        let Some(raw) = &monitoring.heartbeat_url else {
            return Ok(None);
        };
        let ok = crate::push::ssrf::check_url(raw, settings.push.allow_private_endpoints)
            .map_err(|e| HeartbeatError::Url(e.to_string()))?;
        let fail = with_suffix(&ok, &monitoring.fail_suffix);
        let client = outbound::client_builder(&settings.push)?.build()?;
        Ok(Some(Heartbeat {
            client,
            ok,
            fail,
            every: Duration::from_secs(monitoring.heartbeat_s),
        }))
    }
}

/// `url` with `suffix` appended to its path (`https://hc-ping.com/<uuid>` →
/// `https://hc-ping.com/<uuid>/fail`), its query kept.
fn with_suffix(url: &Url, suffix: &str) -> Url {
    let mut fail = url.clone();
    let path = format!("{}{suffix}", url.path().trim_end_matches('/'));
    fail.set_path(&path);
    fail
}

/// Reports every `heartbeat_s` until the task is dropped. The first report goes one interval
/// after the start, once the scheduler has had time to make its first pass.
pub async fn run(state: web::Data<AppState>, heartbeat: Heartbeat) {
    let mut ticks = tokio::time::interval_at(
        tokio::time::Instant::now() + heartbeat.every,
        heartbeat.every,
    );
    // A slow answer delays the next report; it does not make a burst of them afterwards.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_healthy = true;
    loop {
        ticks.tick().await;
        let health = health::check(&state).await;
        let healthy = health.scheduler_healthy();
        if healthy != was_healthy {
            match health.reason() {
                Some(reason) => tracing::warn!(%reason, "heartbeat: reporting a failure"),
                None => tracing::info!("heartbeat: the scheduler is healthy again"),
            }
            was_healthy = healthy;
        }
        let url = if healthy {
            &heartbeat.ok
        } else {
            &heartbeat.fail
        };
        let result = match heartbeat.client.get(url.clone()).send().await {
            Ok(answer) => {
                let status = answer.status();
                // Read to the bound and dropped: a receiver cannot make us hold more.
                drop(outbound::read_bounded(answer).await);
                if status.is_success() {
                    "sent"
                } else {
                    tracing::warn!(status = status.as_u16(), "heartbeat: the check refused it");
                    "refused"
                }
            }
            Err(e) => {
                tracing::warn!(error = %without_url(e), "heartbeat: cannot reach the check");
                "unreachable"
            }
        };
        metrics::counter!(
            "doorstep_heartbeats_total",
            "report" => if healthy { "ok" } else { "fail" },
            "result" => result
        )
        .increment(1);
    }
}

/// The error and its causes, without its URL (which holds the check's secret).
fn without_url(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_failure_url_appends_the_suffix_to_the_path() {
        let url = |s: &str| Url::parse(s).unwrap();
        assert_eq!(
            with_suffix(&url("https://hc-ping.com/0b5c"), "/fail").as_str(),
            "https://hc-ping.com/0b5c/fail"
        );
        assert_eq!(
            with_suffix(&url("https://hc.example.org/ping/0b5c/?rid=1"), "/fail").as_str(),
            "https://hc.example.org/ping/0b5c/fail?rid=1"
        );
        assert_eq!(
            with_suffix(&url("https://hc.example.org"), "/down").as_str(),
            "https://hc.example.org/down"
        );
    }
}
