//! A test-only Web Push service ("push receiver") on 127.0.0.1.
//!
//! Tests hand its subscriptions to Doorstep, then assert on what arrived. It trusts nothing the
//! sender says: every message is really decrypted (RFC 8291, `aes128gcm`) with the receiver's own
//! subscription keys, and its VAPID token (RFC 8292) is really verified (ES256 signature by `k=`,
//! `aud` = the endpoint's origin *with* port, `exp` in the future and at most 24 h ahead, `sub`
//! a `mailto:` or `https:` URI). Requests that fail any check are answered 400/401/413 and listed
//! by `rejections()`, which tests should assert stays empty.
//!
//! Failures can be scripted per subscription (`410`, `429` + `Retry-After`, `503`, slow answers),
//! and the whole service can be taken down and brought back on the same port.
//!
//! What a request must look like (as real push services require):
//! `POST <origin>/push/<name>` with `Content-Encoding: aes128gcm`,
//! `Content-Type: application/octet-stream`, `TTL: <integer>`,
//! `Authorization: vapid t=<JWT>, k=<base64url, no padding, 65-byte uncompressed P-256 key>`,
//! optional `Urgency: very-low|low|normal|high` and `Topic: <1..=32 base64url chars>`;
//! body at most 4096 bytes whose plaintext is JSON.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

/// Push services refuse bodies larger than this (RFC 8030 §7.2 lets them; all big ones do).
const MAX_BODY_BYTES: usize = 4096;
/// RFC 8292 §2: `exp` must not be more than 24 hours after the request.
const MAX_EXP_AHEAD_S: i64 = 24 * 3600;

/// A message that was decrypted, verified and answered with a 2xx.
#[derive(Debug, Clone)]
pub struct ReceivedPush {
    pub subscription: String,
    pub payload: Value,
    pub ttl: u32,
    pub urgency: Option<String>,
    pub topic: Option<String>,
    pub vapid_aud: String,
    pub vapid_sub: String,
    pub vapid_exp: i64,
    pub vapid_public_key: String,
    pub received_at: Instant,
}

/// How to answer one (valid) request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 201 Created, with a `Location` header, like a real push service.
    Created,
    /// Any status. A 2xx counts as delivered; anything else does not.
    Status(u16),
    /// `status` with `Retry-After: seconds` (e.g. 429 or 503).
    RetryAfter { status: u16, seconds: u64 },
    /// Waits, then 201. Delivered only once it answers; if the sender hangs up first, the
    /// attempt is recorded with status 499 (nginx's "client closed request") and nothing arrives.
    Slow { delay: Duration },
}

/// Handle to one running receiver; cheap to clone and share between tasks.
#[derive(Clone)]
pub struct PushReceiver {
    shared: Arc<Shared>,
    control: Arc<Control>,
}

/// What the request handlers see.
struct Shared {
    origin: String,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    subscriptions: HashMap<String, Keys>,
    scripts: HashMap<String, VecDeque<Reply>>,
    received: Vec<ReceivedPush>,
    attempts: Vec<(String, u16, Instant)>,
    rejections: Vec<String>,
    next_message_id: u64,
}

/// One subscription's private half (what the browser keeps) and public JSON (what it hands out).
struct Keys {
    components: ece::EcKeyComponents,
    auth: [u8; 16],
    json: Value,
}

/// Owned only by test handles (not by the server), so dropping the last handle stops the server.
struct Control {
    port: u16,
    server: tokio::sync::Mutex<Option<ServerHandle>>,
}

impl Drop for Control {
    fn drop(&mut self) {
        // Best effort: the command is sent now; the server task finishes it if the runtime lives.
        if let Some(handle) = self.server.get_mut().take() {
            drop(handle.stop(false));
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn attempt(&self, name: &str, status: u16) {
        self.lock()
            .attempts
            .push((name.to_owned(), status, Instant::now()));
    }
}

impl PushReceiver {
    /// Starts a receiver on 127.0.0.1 (a free port) in the current tokio runtime.
    pub async fn start() -> PushReceiver {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|e| panic!("push receiver: cannot bind 127.0.0.1:0: {e}"));
        let port = listener
            .local_addr()
            .expect("push receiver: no local address")
            .port();
        let shared = Arc::new(Shared {
            origin: format!("http://127.0.0.1:{port}"),
            state: Mutex::new(State::default()),
        });
        let handle = serve(shared.clone(), listener);
        PushReceiver {
            shared,
            control: Arc::new(Control {
                port,
                server: tokio::sync::Mutex::new(Some(handle)),
            }),
        }
    }

    /// `http://127.0.0.1:PORT`: also the `aud` every VAPID token must carry.
    pub fn origin(&self) -> String {
        self.shared.origin.clone()
    }

    /// A browser-like `PushSubscription.toJSON()` for `name`. Keys are generated on the first
    /// call for a name; later calls for the same name return the same subscription.
    pub fn subscription(&self, name: &str) -> Value {
        assert!(
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b)),
            "push receiver: subscription name {name:?} must be non-empty [A-Za-z0-9-_.~] (it goes in the URL path)"
        );
        let endpoint = format!("{}/push/{name}", self.shared.origin);
        let mut state = self.shared.lock();
        let keys = state.subscriptions.entry(name.to_owned()).or_insert_with(|| {
            let (pair, auth) = ece::generate_keypair_and_auth_secret()
                .unwrap_or_else(|e| panic!("push receiver: cannot generate subscription keys: {e}"));
            let components = pair.raw_components().expect("push receiver: cannot export key pair");
            let public = pair.pub_as_raw().expect("push receiver: cannot export public key");
            let json = json!({
                "endpoint": endpoint,
                "expirationTime": null,
                "keys": { "p256dh": URL_SAFE_NO_PAD.encode(public), "auth": URL_SAFE_NO_PAD.encode(auth) },
            });
            Keys { components, auth, json }
        });
        keys.json.clone()
    }

    /// The next answers for `name`'s valid requests, in order (appended to any script left);
    /// once it runs out, every request gets `Created`. Rejected requests do not use up a reply.
    pub fn script(&self, name: &str, replies: Vec<Reply>) {
        for reply in &replies {
            let status = match reply {
                Reply::Status(s) | Reply::RetryAfter { status: s, .. } => *s,
                Reply::Created | Reply::Slow { .. } => 201,
            };
            assert!(
                StatusCode::from_u16(status).is_ok(),
                "push receiver: {reply:?} is not a valid HTTP status"
            );
        }
        self.shared
            .lock()
            .scripts
            .entry(name.to_owned())
            .or_default()
            .extend(replies);
    }

    /// Delivered messages (decrypted, verified, answered 2xx), in arrival order.
    pub fn received(&self) -> Vec<ReceivedPush> {
        self.shared.lock().received.clone()
    }

    pub fn received_for(&self, name: &str) -> Vec<ReceivedPush> {
        self.shared
            .lock()
            .received
            .iter()
            .filter(|m| m.subscription == name)
            .cloned()
            .collect()
    }

    /// Every request to `name`'s endpoint, as (status answered, when), in order. Includes
    /// rejections, scripted failures, 404s for unknown names, and 499 for abandoned slow answers.
    pub fn attempts(&self, name: &str) -> Vec<(u16, Instant)> {
        let state = self.shared.lock();
        state
            .attempts
            .iter()
            .filter(|a| a.0 == name)
            .map(|a| (a.1, a.2))
            .collect()
    }

    /// Why requests failed verification, as "<name>: <reason>". Should stay empty.
    pub fn rejections(&self) -> Vec<String> {
        self.shared.lock().rejections.clone()
    }

    /// Waits until `name` has at least `n` delivered messages and returns them all; panics with
    /// what did arrive (attempts, rejections) after `timeout`.
    pub async fn wait_for(&self, name: &str, n: usize, timeout: Duration) -> Vec<ReceivedPush> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.received_for(name);
            if got.len() >= n {
                return got;
            }
            if Instant::now() >= deadline {
                let statuses: Vec<u16> = self.attempts(name).iter().map(|a| a.0).collect();
                panic!(
                    "push receiver: waited {timeout:?} for {n} push(es) to {name:?} but got {}; \
                     statuses answered to {name:?}: {statuses:?}; rejections: {:?}",
                    got.len(),
                    self.rejections()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the server: connections are refused (open ones are dropped) until `come_back`.
    pub async fn go_down(&self) {
        let mut server = self.control.server.lock().await;
        let Some(handle) = server.take() else { return };
        handle.stop(false).await;
        // The listener is closed when stop() returns; make sure before tests rely on it.
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.control.port));
        let deadline = Instant::now() + Duration::from_secs(2);
        while TcpListener::bind(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "push receiver: port {} still busy after stop",
                self.control.port
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Serves again on the same port, with the same subscriptions, scripts and records.
    pub async fn come_back(&self) {
        let mut server = self.control.server.lock().await;
        if server.is_some() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        let listener = loop {
            // std sets SO_REUSEADDR on Unix, so TIME_WAIT leftovers do not block the bind.
            match TcpListener::bind((Ipv4Addr::LOCALHOST, self.control.port)) {
                Ok(listener) => break listener,
                Err(e) if Instant::now() >= deadline => {
                    panic!(
                        "push receiver: cannot bind port {} again: {e}",
                        self.control.port
                    )
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        *server = Some(serve(self.shared.clone(), listener));
    }
}

/// Runs an actix server on `listener`, as a task of the current tokio runtime.
fn serve(shared: Arc<Shared>, listener: TcpListener) -> ServerHandle {
    let data = web::Data::from(shared);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/push/{name}", web::post().to(handle_push))
    })
    .on_connect(|conn, extensions| {
        // Keep a duplicate of each connection's socket (see `sender_hung_up`).
        if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
            if let Ok(fd) = tcp.as_fd().try_clone_to_owned() {
                extensions.insert(PeerSocket(TcpStream::from(fd)));
            }
        }
    })
    .workers(1) // handlers are async; one worker serves many connections
    .disable_signals() // never react to Ctrl-C in tests
    .shutdown_timeout(0)
    .listen(listener)
    .unwrap_or_else(|e| panic!("push receiver: cannot listen: {e}"))
    .run();
    let handle = server.handle();
    tokio::spawn(async move {
        if let Err(e) = server.await {
            eprintln!("push receiver: server stopped with an error: {e}");
        }
    });
    handle
}

/// What a verified request carried.
struct Verified {
    payload: Value,
    ttl: u32,
    urgency: Option<String>,
    topic: Option<String>,
    aud: String,
    sub: String,
    exp: i64,
    k: String,
}

type Rejection = (u16, String);

async fn handle_push(
    req: HttpRequest,
    name: web::Path<String>,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let name = name.into_inner();
    let keys = shared
        .lock()
        .subscriptions
        .get(&name)
        .map(|k| (k.components.clone(), k.auth));
    let Some((components, auth)) = keys else {
        shared.attempt(&name, 404);
        return answer(404, "no such subscription", None);
    };
    let message = match verify(&req, &body, &components, &auth, &shared.origin) {
        Ok(message) => message,
        Err((status, reason)) => {
            let mut state = shared.lock();
            state.rejections.push(format!("{name}: {reason}"));
            state.attempts.push((name, status, Instant::now()));
            return answer(status, &reason, None);
        }
    };
    let reply = shared
        .lock()
        .scripts
        .get_mut(&name)
        .and_then(VecDeque::pop_front);
    let (status, retry_after) = match reply.unwrap_or(Reply::Created) {
        Reply::Created => (201, None),
        Reply::Status(status) => (status, None),
        Reply::RetryAfter { status, seconds } => (status, Some(seconds)),
        Reply::Slow { delay } => {
            // Until disarmed, leaving (sender hung up, or server stopped) records a 499.
            let mut guard = Abandoned {
                shared: &shared,
                name: &name,
                armed: true,
            };
            let until = Instant::now() + delay;
            while let Some(left) = until
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
            {
                if sender_hung_up(&req) {
                    return answer(499, "sender hung up", None);
                }
                tokio::time::sleep(left.min(Duration::from_millis(20))).await;
            }
            guard.armed = false;
            (201, None)
        }
    };
    let mut state = shared.lock();
    state.attempts.push((name.clone(), status, Instant::now()));
    if !(200..300).contains(&status) {
        return answer(status, "scripted failure", retry_after);
    }
    state.next_message_id += 1;
    let location = format!("{}/message/{}", shared.origin, state.next_message_id);
    state.received.push(ReceivedPush {
        subscription: name,
        payload: message.payload,
        ttl: message.ttl,
        urgency: message.urgency,
        topic: message.topic,
        vapid_aud: message.aud,
        vapid_sub: message.sub,
        vapid_exp: message.exp,
        vapid_public_key: message.k,
        received_at: Instant::now(),
    });
    let mut response = answer(status, "", retry_after);
    if let Ok(value) = location.parse() {
        response
            .headers_mut()
            .insert(actix_web::http::header::LOCATION, value);
    }
    response
}

/// A duplicate of a connection's socket. actix keeps running a handler after its client has
/// gone, so a slow answer peeks at the socket itself. It shares the connection's file description
/// (hence tokio's O_NONBLOCK): never change its blocking mode. Closed with the connection.
struct PeerSocket(TcpStream);

/// Whether the sender closed the connection (EOF or reset) while waiting for the answer.
fn sender_hung_up(req: &HttpRequest) -> bool {
    let Some(PeerSocket(socket)) = req.conn_data::<PeerSocket>() else {
        return false;
    };
    match socket.peek(&mut [0u8; 1]) {
        Ok(0) => true,
        Ok(_) => false, // a pipelined next request: still there
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

struct Abandoned<'a> {
    shared: &'a Shared,
    name: &'a str,
    armed: bool,
}

impl Drop for Abandoned<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.shared.attempt(self.name, 499);
        }
    }
}

/// A response; errors get the JSON body push services send (and web-push's `ErrorInfo` reads).
fn answer(status: u16, message: &str, retry_after: Option<u64>) -> HttpResponse {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(code);
    if let Some(seconds) = retry_after {
        response.insert_header(("Retry-After", seconds.to_string()));
    }
    if code.is_success() {
        return response.finish();
    }
    response.json(json!({
        "code": status,
        "errno": 999,
        "error": code.canonical_reason().unwrap_or("Error"),
        "message": message,
    }))
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Result<Option<&'a str>, Rejection> {
    match req.headers().get(name) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(|v| Some(v.trim()))
            .map_err(|_| (400, format!("{name} header is not ASCII"))),
    }
}

/// Every check a real push service makes, then decryption with the subscription's own keys.
fn verify(
    req: &HttpRequest,
    body: &[u8],
    components: &ece::EcKeyComponents,
    auth: &[u8; 16],
    origin: &str,
) -> Result<Verified, Rejection> {
    let bad = |reason: String| (400, reason);
    match header(req, "Content-Encoding")? {
        Some(v) if v.eq_ignore_ascii_case("aes128gcm") => {}
        other => {
            return Err(bad(format!(
                "Content-Encoding must be aes128gcm, got {other:?}"
            )))
        }
    }
    match header(req, "Content-Type")? {
        Some(v)
            if v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/octet-stream") => {}
        other => {
            return Err(bad(format!(
                "Content-Type must be application/octet-stream, got {other:?}"
            )))
        }
    }
    let ttl = match header(req, "TTL")? {
        Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => v
            .parse::<u32>()
            .map_err(|_| bad(format!("TTL {v:?} out of range")))?,
        other => {
            return Err(bad(format!(
                "TTL must be a non-negative integer, got {other:?}"
            )))
        }
    };
    let urgency = header(req, "Urgency")?.map(str::to_owned);
    if let Some(u) = &urgency {
        if !["very-low", "low", "normal", "high"].contains(&u.as_str()) {
            return Err(bad(format!(
                "Urgency must be very-low|low|normal|high, got {u:?}"
            )));
        }
    }
    let topic = header(req, "Topic")?.map(str::to_owned);
    if let Some(t) = &topic {
        if t.is_empty()
            || t.len() > 32
            || !t
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad(format!(
                "Topic must be 1..=32 base64url characters, got {t:?}"
            )));
        }
    }
    let (aud, sub, exp, k) = verify_vapid(header(req, "Authorization")?, origin)?;
    if body.len() > MAX_BODY_BYTES {
        return Err((
            413,
            format!(
                "body is {} bytes, over the {MAX_BODY_BYTES}-byte limit",
                body.len()
            ),
        ));
    }
    let plaintext = ece::decrypt(components, auth, body).map_err(|e| {
        bad(format!(
            "cannot decrypt the aes128gcm body with the subscription keys: {e}"
        ))
    })?;
    let payload = serde_json::from_slice(&plaintext).map_err(|e| {
        bad(format!(
            "decrypted payload is not JSON ({e}): {:?}",
            String::from_utf8_lossy(&plaintext)
        ))
    })?;
    Ok(Verified {
        payload,
        ttl,
        urgency,
        topic,
        aud,
        sub,
        exp,
        k,
    })
}

/// RFC 8292: `Authorization: vapid t=<ES256 JWT>, k=<signing public key>`. Returns (aud, sub, exp, k).
fn verify_vapid(
    authorization: Option<&str>,
    origin: &str,
) -> Result<(String, String, i64, String), Rejection> {
    let unauthorized = |reason: String| (401, reason);
    let value = authorization.ok_or_else(|| unauthorized("no Authorization header".into()))?;
    let (scheme, params) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("vapid") {
        return Err(unauthorized(format!(
            "Authorization scheme must be `vapid`, got {value:?}"
        )));
    }
    let (mut token, mut key) = (None, None);
    for param in params.split(',') {
        match param.trim().split_once('=') {
            Some(("t", v)) => token = Some(v.trim()),
            Some(("k", v)) => key = Some(v.trim()),
            _ => {}
        }
    }
    let (Some(token), Some(k)) = (token, key) else {
        return Err(unauthorized(format!(
            "Authorization must be `vapid t=<JWT>, k=<key>`, got {value:?}"
        )));
    };
    let k_bytes = URL_SAFE_NO_PAD
        .decode(k)
        .map_err(|e| unauthorized(format!("k= is not base64url without padding ({e}): {k:?}")))?;
    if k_bytes.len() != 65 || k_bytes[0] != 0x04 {
        return Err(unauthorized(format!(
            "k= must be a 65-byte uncompressed P-256 point, got {} bytes",
            k_bytes.len()
        )));
    }
    let x = URL_SAFE_NO_PAD.encode(&k_bytes[1..33]);
    let y = URL_SAFE_NO_PAD.encode(&k_bytes[33..65]);
    let decoding = DecodingKey::from_ec_components(&x, &y)
        .map_err(|e| unauthorized(format!("k= is not a usable P-256 key: {e}")))?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_required_spec_claims(&["exp", "aud", "sub"]);
    // exp and aud are checked below, with clearer messages.
    validation.validate_exp = false;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Value>(token, &decoding, &validation)
        .map_err(|e| {
            unauthorized(format!(
                "VAPID JWT rejected (signature by k=, alg ES256, claims): {e}"
            ))
        })?
        .claims;
    let aud = claims["aud"].as_str().unwrap_or_default().to_owned();
    if aud != origin {
        return Err(unauthorized(format!(
            "VAPID aud is {aud:?}, must be the endpoint origin {origin:?} (with port)"
        )));
    }
    let exp = claims["exp"].as_i64().ok_or_else(|| {
        unauthorized(format!(
            "VAPID exp must be an integer, got {}",
            claims["exp"]
        ))
    })?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if exp <= now || exp > now + MAX_EXP_AHEAD_S {
        return Err(unauthorized(format!(
            "VAPID exp {exp} is {} s from now: must be in (0, 24 h]",
            exp - now
        )));
    }
    let sub = claims["sub"].as_str().unwrap_or_default().to_owned();
    if !(sub.starts_with("mailto:") || sub.starts_with("https:")) {
        return Err(unauthorized(format!(
            "VAPID sub must be a mailto: or https: URI, got {:?}",
            claims["sub"]
        )));
    }
    Ok((aud, sub, exp, k.to_owned()))
}
