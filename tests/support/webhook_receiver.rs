//! A test-only webhook receiver on 127.0.0.1, written the way docs/webhooks.md tells a real
//! receiver to be written: it verifies `Doorstep-Signature` over the raw body with the shared
//! secret, rejects signatures older than five minutes (replays), and processes each
//! `Doorstep-Event-Id` once, answering 2xx again for a repeat. Answers can be scripted
//! (e.g. 500 then 200).
#![allow(dead_code)]

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// The replay window of docs/webhooks.md.
pub const MAX_AGE_S: i64 = 300;

#[derive(Debug, PartialEq, Eq)]
pub enum Rejected {
    Malformed,
    BadSignature,
    TooOld,
}

/// The verification docs/webhooks.md describes: parse `t=..,v1=..`, recompute
/// HMAC-SHA256(secret, "<t>.<raw body>"), compare in constant time, and refuse a `t` more
/// than five minutes from now.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now_s: i64) -> Result<(), Rejected> {
    let mut t = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => signatures.push(v.to_owned()),
            _ => {}
        }
    }
    let t = t.ok_or(Rejected::Malformed)?;
    if signatures.is_empty() {
        return Err(Rejected::Malformed);
    }
    let valid = signatures.iter().any(|sig| {
        let Ok(sig) = hex::decode(sig) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        mac.verify_slice(&sig).is_ok()
    });
    if !valid {
        return Err(Rejected::BadSignature);
    }
    if (now_s - t).abs() > MAX_AGE_S {
        return Err(Rejected::TooOld);
    }
    Ok(())
}

pub fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Request {
    pub event_id: Option<String>,
    pub signature: Option<String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    pub verified: bool,
    pub status: u16,
}

impl Request {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

#[derive(Default)]
struct State {
    secret: Vec<u8>,
    script: VecDeque<u16>,
    requests: Vec<Request>,
    /// Event ids processed (answered 2xx for the first time).
    processed: Vec<String>,
    seen: HashSet<String>,
}

pub struct WebhookReceiver {
    pub url: String,
    state: Arc<Mutex<State>>,
    server: ServerHandle,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Arc<Mutex<State>>>,
) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (event_id, signature) = (header("Doorstep-Event-Id"), header("Doorstep-Signature"));
    let mut state = lock(&state);
    let verified = signature
        .as_deref()
        .is_some_and(|s| verify(&state.secret, s, &body, now_s()).is_ok());
    let status = if !verified {
        401
    } else {
        state.script.pop_front().unwrap_or(200)
    };
    if status / 100 == 2 {
        if let Some(id) = &event_id {
            if state.seen.insert(id.clone()) {
                state.processed.push(id.clone());
            }
        }
    }
    state.requests.push(Request {
        event_id,
        signature,
        content_type: header("Content-Type"),
        body: body.to_vec(),
        verified,
        status,
    });
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).finish()
}

impl WebhookReceiver {
    pub async fn start(secret: &str) -> WebhookReceiver {
        let state = Arc::new(Mutex::new(State {
            secret: secret.as_bytes().to_vec(),
            ..State::default()
        }));
        let data = web::Data::new(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::post().to(receive))
        })
        .workers(1)
        .bind(("127.0.0.1", 0))
        .expect("webhook receiver binds");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        WebhookReceiver {
            url: format!("http://127.0.0.1:{port}/hook"),
            state,
            server: handle,
        }
    }

    /// Verifies with this secret from now on (a personal webhook's, known once it is set).
    #[allow(dead_code)]
    pub fn set_secret(&self, secret: &str) {
        lock(&self.state).secret = secret.as_bytes().to_vec();
    }

    /// The next answers to verified requests, in order; then 200.
    pub fn script(&self, statuses: &[u16]) {
        lock(&self.state).script.extend(statuses);
    }

    pub fn requests(&self) -> Vec<Request> {
        lock(&self.state).requests.clone()
    }

    /// Event ids processed, each once, in order.
    pub fn processed(&self) -> Vec<String> {
        lock(&self.state).processed.clone()
    }

    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&[Request]) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if check(&self.requests()) {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "webhook receiver: timed out waiting for {what}: {:?}",
                    self.requests()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn stop(&self) {
        self.server.stop(false).await;
    }
}
