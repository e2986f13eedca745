//! Sends one encrypted, signed Web Push message to one subscription and classifies the answer.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::encryption::Encryptor;
use super::retry::parse_retry_after;
use super::ssrf::{self, GuardedResolver};
use super::vapid::{origin_of, Vapid};
use crate::config::PushSettings;
use crate::store::push::SubscriptionRow;

/// How one attempt ended, classified once: permanent or transient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendResult {
    Delivered(u16),
    /// 404/410: the subscription no longer exists; forget it.
    Gone(u16),
    /// 429, 5xx, timeouts, refused connections: try again later.
    Retry {
        status: Option<u16>,
        retry_after_s: Option<u64>,
        error: String,
    },
    /// Any other refusal: trying again would not help.
    Failed {
        status: Option<u16>,
        error: String,
    },
}

pub struct Message<'a> {
    pub payload: &'a [u8],
    pub ttl_s: u32,
    pub urgent: bool,
    /// Replaces an undelivered older message with the same topic (≤ 32 base64url chars).
    pub topic: Option<&'a str>,
}

pub struct PushClient {
    http: reqwest::Client,
    encryptor: Encryptor,
    vapid: Arc<Vapid>,
    allow_private: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot build the push HTTP client: {0}")]
pub struct ClientError(String);

impl PushClient {
    pub fn new(settings: &PushSettings, vapid: Arc<Vapid>) -> Result<PushClient, ClientError> {
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.request_timeout_ms))
            .connect_timeout(Duration::from_millis(
                settings.request_timeout_ms.min(5_000),
            ))
            // A redirect could lead anywhere, including inside: push services do not redirect.
            .redirect(reqwest::redirect::Policy::none())
            // Every delivery in flight may hold a connection to the same push service: keep
            // them all, or each burst past the idle limit opens (and closes) new ones.
            .pool_max_idle_per_host(settings.concurrency);
        if !settings.allow_private_endpoints {
            builder = builder.dns_resolver(Arc::new(GuardedResolver));
        }
        Ok(PushClient {
            http: builder.build().map_err(|e| ClientError(e.to_string()))?,
            encryptor: Encryptor::new().map_err(|e| ClientError(e.to_string()))?,
            vapid,
            allow_private: settings.allow_private_endpoints,
        })
    }

    pub fn vapid(&self) -> &Vapid {
        &self.vapid
    }

    pub async fn send(
        &self,
        subscription: &SubscriptionRow,
        message: &Message<'_>,
        now_s: i64,
    ) -> SendResult {
        // Checked again at send time: the rules or DNS may have changed since registration.
        let url = match ssrf::check_url(&subscription.endpoint, self.allow_private) {
            Ok(url) => url,
            Err(e) => {
                return SendResult::Failed {
                    status: None,
                    error: format!("endpoint refused: {e}"),
                }
            }
        };
        if let Err(e) = ssrf::check_resolved(&url, self.allow_private).await {
            return SendResult::Failed {
                status: None,
                error: format!("endpoint refused: {e}"),
            };
        }
        let body = match self.encrypt(subscription, message.payload) {
            Ok(body) => body,
            Err(e) => {
                return SendResult::Failed {
                    status: None,
                    error: format!("cannot encrypt for this subscription: {e}"),
                }
            }
        };
        let authorization = match self.vapid.authorization(&origin_of(&url), now_s) {
            Ok(header) => header,
            Err(e) => {
                return SendResult::Retry {
                    status: None,
                    retry_after_s: None,
                    error: e.to_string(),
                }
            }
        };
        let mut request = self
            .http
            .post(url)
            .header("TTL", message.ttl_s.to_string())
            .header("Urgency", if message.urgent { "high" } else { "normal" })
            .header("Content-Encoding", "aes128gcm")
            .header("Content-Type", "application/octet-stream")
            .header("Authorization", authorization)
            .body(body);
        if let Some(topic) = message.topic {
            request = request.header("Topic", topic);
        }
        match request.send().await {
            Ok(response) => classify(
                response.status().as_u16(),
                response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, now_s)),
                response.text().await.unwrap_or_default(),
            ),
            Err(e) => SendResult::Retry {
                status: None,
                retry_after_s: None,
                error: if e.is_timeout() {
                    "push service did not answer in time".into()
                } else if e.is_connect() {
                    "cannot connect to the push service".into()
                } else {
                    format!("request failed: {e}")
                },
            },
        }
    }
}

impl PushClient {
    /// The encrypted body of `payload` for `subscription` (keys as registered: base64url).
    fn encrypt(&self, subscription: &SubscriptionRow, payload: &[u8]) -> Result<Vec<u8>, String> {
        let decode = |key: &str| {
            URL_SAFE_NO_PAD
                .decode(key.trim_end_matches('='))
                .map_err(|_| "its keys are not base64url".to_owned())
        };
        let (p256dh, auth) = (decode(&subscription.p256dh)?, decode(&subscription.auth)?);
        self.encryptor
            .encrypt(&p256dh, &auth, payload)
            .map_err(|e| e.to_string())
    }
}

fn classify(status: u16, retry_after_s: Option<u64>, body: String) -> SendResult {
    let mut detail = body;
    detail.truncate(200);
    match status {
        200..=299 => SendResult::Delivered(status),
        404 | 410 => SendResult::Gone(status),
        408 | 425 | 429 | 500..=599 => SendResult::Retry {
            status: Some(status),
            retry_after_s,
            error: format!("push service answered {status} {detail}")
                .trim()
                .to_owned(),
        },
        _ => SendResult::Failed {
            status: Some(status),
            error: format!("push service refused it: {status} {detail}")
                .trim()
                .to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_once() {
        assert_eq!(
            classify(201, None, String::new()),
            SendResult::Delivered(201)
        );
        assert_eq!(classify(410, None, String::new()), SendResult::Gone(410));
        assert_eq!(classify(404, None, String::new()), SendResult::Gone(404));
        assert!(matches!(
            classify(429, Some(3), String::new()),
            SendResult::Retry {
                retry_after_s: Some(3),
                ..
            }
        ));
        assert!(matches!(
            classify(503, None, String::new()),
            SendResult::Retry { .. }
        ));
        assert!(matches!(
            classify(400, None, "bad".into()),
            SendResult::Failed {
                status: Some(400),
                ..
            }
        ));
        assert!(matches!(
            classify(413, None, String::new()),
            SendResult::Failed { .. }
        ));
    }
}
