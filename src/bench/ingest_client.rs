//! The ingest measurement's clients: one HTTP/1.1 keep-alive connection per canvasser, on
//! hyper's client connection directly.
//!
//! The load generator shares the machine's two cores with the server it measures, so every
//! microsecond it spends on a request is taken from the server. Through `reqwest` a check-in
//! cost the generator 25–31 µs of CPU (its pool, URL parsing, redirect and timeout layers,
//! a JSON value serialised per request); a connection of our own with its headers made once
//! does the same exchange for less (benchmarks.md, item 37). The server sees the same
//! request either way: method, path, `Host`, bearer token, JSON body, optional
//! `Idempotency-Key`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;

/// How long one check-in may take before it counts as failed (`reqwest`'s timeout was the
/// same).
const TIMEOUT: Duration = Duration::from_secs(30);

/// One canvasser checking in over a connection of their own.
pub struct IngestClient {
    authority: String,
    path: String,
    host: HeaderValue,
    authorization: HeaderValue,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl IngestClient {
    /// `server` is the server's base address (`http://127.0.0.1:PORT`).
    pub fn new(server: &str, token: &str, outing: &str) -> Result<Self, String> {
        let authority = server
            .strip_prefix("http://")
            .ok_or_else(|| format!("not an http:// address: {server}"))?
            .trim_end_matches('/')
            .to_owned();
        Ok(IngestClient {
            host: HeaderValue::from_str(&authority).map_err(|e| e.to_string())?,
            authorization: HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|e| e.to_string())?,
            path: format!("/api/v1/outings/{outing}/checkins"),
            authority,
            sender: None,
        })
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let stream = tokio::net::TcpStream::connect(&self.authority)
            .await
            .map_err(|_| "cannot connect".to_owned())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake ({e})"))?;
        tokio::spawn(async move {
            // Ends when the connection closes; the next check-in then opens another.
            let _ = connection.await;
        });
        Ok(sender)
    }

    /// Sends the `i`-th check-in (positions vary a little, as a walk would); its latency in ms
    /// when it was stored (201), why not otherwise.
    pub async fn checkin(&mut self, i: u64, keyed: bool) -> Result<f64, String> {
        let body = format!(
            r#"{{"lat":{},"lon":-0.12,"accuracy_m":10,"battery_pct":80}}"#,
            51.5 + (i % 100) as f64 * 1e-5
        );
        let mut request = hyper::Request::post(self.path.as_str())
            .header(HOST, self.host.clone())
            .header(AUTHORIZATION, self.authorization.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if keyed {
            request = request.header("Idempotency-Key", uuid::Uuid::new_v4().simple().to_string());
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;

        let started = Instant::now();
        let mut sender = match self.sender.take() {
            Some(sender) if !sender.is_closed() => sender,
            _ => self.connect().await?,
        };
        let exchange = async {
            sender
                .ready()
                .await
                .map_err(|e| format!("request error ({e})"))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| format!("request error ({e})"))?;
            let status = response.status().as_u16();
            response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("reading the answer ({e})"))?;
            Ok::<u16, String>(status)
        };
        let status = tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| "timeout".to_owned())??;
        // Kept for the next check-in only after a complete exchange.
        self.sender = Some(sender);
        match status {
            201 => Ok(started.elapsed().as_secs_f64() * 1000.0),
            other => Err(format!("HTTP {other}")),
        }
    }
}
