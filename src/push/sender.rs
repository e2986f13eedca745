//! Sends one encrypted, signed Web Push message to one subscription and classifies the answer.

use std::sync::Arc;
use std::time::Duration;

use super::retry::parse_retry_after;
use super::ssrf;
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
    /// One attempt's time (`push.request_timeout_ms`).
    timeout: Duration,
    vapid: Arc<Vapid>,
    allow_private: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot build the push HTTP client: {0}")]
pub struct ClientError(String);

impl PushClient {
    pub fn new(settings: &PushSettings, vapid: Arc<Vapid>) -> Result<PushClient, ClientError> {
        let builder = super::outbound::client_builder(settings)
            .map_err(|e| ClientError(e.to_string()))?
            // Every delivery in flight may hold a connection to the same push service: keep
            // them all, or each burst past the idle limit opens (and closes) new ones.
            .pool_max_idle_per_host(settings.concurrency);
        Ok(PushClient {
            http: builder.build().map_err(|e| ClientError(e.to_string()))?,
            timeout: Duration::from_millis(settings.request_timeout_ms),
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
        let resend = request.try_clone();
        let started = std::time::Instant::now();
        let sent = match request.send().await {
            // A kept-alive connection that the push service closed as we reused it: the
            // request went out on a dead connection and was never answered. Sent once more
            // at once, on a fresh connection, within what is left of the attempt's time:
            // the retry schedule would make the alert a second or more late. Delivery is at
            // least once anyway, and a repeat carries the same Topic, which replaces it.
            Err(e) if e.is_request() && !e.is_connect() && !e.is_timeout() => {
                let left = self.timeout.saturating_sub(started.elapsed());
                match resend {
                    Some(again) if !left.is_zero() => again.timeout(left).send().await,
                    _ => Err(e),
                }
            }
            other => other,
        };
        match sent {
            Ok(response) => classify(
                response.status().as_u16(),
                response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, now_s)),
                super::outbound::read_bounded(response).await,
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
        super::encryption::encrypt(
            &subscription.endpoint,
            &subscription.p256dh,
            &subscription.auth,
            payload,
        )
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
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Reads one HTTP/1.1 request (headers and a `content-length` body); false at end of stream.
    async fn read_request(socket: &mut tokio::net::TcpStream) -> bool {
        let mut seen = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&seen[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if seen.len() >= end + 4 + length {
                    return true;
                }
            }
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => seen.extend_from_slice(&chunk[..n]),
            }
        }
    }

    #[tokio::test]
    async fn a_kept_alive_connection_closed_under_a_request_is_sent_again_at_once() {
        // A push service that answers the first request on each connection, then reads the
        // second and hangs up without answering (as a server closing an idle connection just
        // as the client reuses it).
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let accepted = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    if read_request(&mut socket).await {
                        let _ = socket
                            .write_all(b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n")
                            .await;
                        read_request(&mut socket).await;
                    }
                });
            }
        });
        let settings = PushSettings {
            allow_private_endpoints: true,
            request_timeout_ms: 5_000,
            ..PushSettings::default()
        };
        let pair = crate::vapid::generate();
        let secret =
            p256::SecretKey::from_slice(&URL_SAFE_NO_PAD.decode(&pair.private_key).unwrap())
                .unwrap();
        let vapid = Arc::new(Vapid::from_secret(&secret, "mailto:a@b.c").unwrap());
        let client = PushClient::new(&settings, vapid).unwrap();
        let subscription = SubscriptionRow {
            id: "s".into(),
            user_id: "u".into(),
            endpoint: format!("http://{address}/push/1"),
            p256dh: pair.public_key.clone(),
            auth: URL_SAFE_NO_PAD.encode([7u8; 16]),
            expiration_time: None,
            created_at: 0,
            updated_at: 0,
        };
        let message = Message {
            payload: b"{}",
            ttl_s: 60,
            urgent: true,
            topic: None,
        };
        let now_s = chrono::Utc::now().timestamp();
        assert_eq!(
            client.send(&subscription, &message, now_s).await,
            SendResult::Delivered(201)
        );
        // Reuses the kept-alive connection, which the service closes under it.
        assert_eq!(
            client.send(&subscription, &message, now_s).await,
            SendResult::Delivered(201)
        );
        assert_eq!(
            connections.load(std::sync::atomic::Ordering::SeqCst),
            2,
            "the second message was sent again on a new connection"
        );
    }

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
