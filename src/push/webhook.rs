//! The webhook channel: the Alert as JSON, POSTed to an organisation's or a user's URL and
//! signed so the receiver can tell it came from us (see docs/webhooks.md).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::attempt::Attempt;
use super::retry::parse_retry_after;
use super::ssrf;
use crate::config::Settings;
use crate::domain::delivery::DeliveryStatus;

pub const SIGNATURE_HEADER: &str = "Doorstep-Signature";
pub const EVENT_ID_HEADER: &str = "Doorstep-Event-Id";
/// Shortest and longest organisation webhook secret.
pub const SECRET_CHARS: std::ops::RangeInclusive<usize> = 16..=256;

/// `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
pub fn signature(secret: &[u8], t: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail; if it ever did, an empty signature
    // fails verification at the receiver rather than taking the worker down.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return format!("t={t},v1=");
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

pub struct WebhookClient {
    http: reqwest::Client,
    allow_private: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("cannot build the webhook HTTP client: {0}")]
    Client(String),
    #[error("webhook signing key {path}: {source}")]
    Key {
        path: String,
        source: std::io::Error,
    },
}

impl WebhookClient {
    pub fn new(settings: &Settings) -> Result<WebhookClient, WebhookError> {
        let push = &settings.push;
        let builder = super::outbound::client_builder(push)
            .map_err(|e| WebhookError::Client(e.to_string()))?;
        Ok(WebhookClient {
            http: builder
                .build()
                .map_err(|e| WebhookError::Client(e.to_string()))?,
            allow_private: push.allow_private_endpoints,
        })
    }

    /// One attempt: 2xx is delivered; any other answer, a timeout or a refused connection is
    /// retried (honouring `Retry-After`); an address the SSRF rules refuse is final.
    pub async fn send(
        &self,
        url: &str,
        secret: &str,
        event_id: &str,
        body: Vec<u8>,
        now_s: i64,
    ) -> Attempt {
        // Checked again at send time: the rules or DNS may have changed since it was set.
        let parsed = match ssrf::check_url(url, self.allow_private) {
            Ok(url) => url,
            Err(e) => {
                return Attempt::Failed {
                    status: DeliveryStatus::Failed,
                    error: format!("webhook address refused: {e}"),
                }
            }
        };
        if let Err(e) = ssrf::check_resolved(&parsed, self.allow_private).await {
            return Attempt::Failed {
                status: DeliveryStatus::Failed,
                error: format!("webhook address refused: {e}"),
            };
        }
        let signed = signature(secret.as_bytes(), now_s, &body);
        let request = self
            .http
            .post(parsed)
            .header("Content-Type", "application/json")
            .header(SIGNATURE_HEADER, signed)
            .header(EVENT_ID_HEADER, event_id)
            .body(body);
        match request.send().await {
            Ok(response) if response.status().is_success() => Attempt::Delivered,
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after_s = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, now_s));
                let mut detail = super::outbound::read_bounded(response).await;
                detail.truncate(200);
                Attempt::Retry {
                    retry_after_s,
                    error: format!("webhook answered {status} {detail}")
                        .trim()
                        .to_owned(),
                }
            }
            Err(e) => Attempt::Retry {
                retry_after_s: None,
                error: if e.is_timeout() {
                    "webhook did not answer in time".into()
                } else if e.is_connect() {
                    "cannot connect to the webhook".into()
                } else {
                    format!("webhook request failed: {e}")
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Python: hmac.new(b"secret", b"1700000000.{}", hashlib.sha256).hexdigest()
        let s = signature(b"secret", 1_700_000_000, b"{}");
        assert!(s.starts_with("t=1700000000,v1="));
        assert_eq!(s.len(), "t=1700000000,v1=".len() + 64);
        assert_ne!(s, signature(b"secret", 1_700_000_001, b"{}"));
        assert_ne!(s, signature(b"other", 1_700_000_000, b"{}"));
    }
}
