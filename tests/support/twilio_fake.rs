//! A local fake of Twilio's REST API for Doorstep's SMS and voice channels: it takes
//! `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` and `.../Calls.json` as Twilio
//! documents them (form-encoded; HTTP Basic with the account SID and auth token; `To`, `From`,
//! `Body` or `Twiml`, `StatusCallback`), refuses anything else as Twilio would (401 for bad
//! credentials, 400 for a missing field or a callback URL that is not absolute), records what
//! it accepted, and plays the provider's side back: status callbacks, SMS replies and keypad
//! digits, each signed with `X-Twilio-Signature` exactly as Twilio signs them
//! (base64 HMAC-SHA1 of the URL and the sorted parameters, keyed with the auth token).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpMessage, HttpRequest, HttpResponse, HttpServer};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::json;

pub const ACCOUNT_SID: &str = "AC00000000000000000000000000000001";
pub const AUTH_TOKEN: &str = "fake-auth-token-0123456789abcdef";
pub const FROM: &str = "+447700900001";

/// One accepted message or call.
#[derive(Debug, Clone)]
pub struct Sent {
    pub sid: String,
    /// `Messages.json` or `Calls.json`.
    pub resource: String,
    pub to: String,
    pub from: String,
    /// The SMS text, or the call's TwiML.
    pub body: String,
    pub status_callback: String,
}

#[derive(Default)]
struct State {
    sent: Vec<Sent>,
    refused: Vec<String>,
    /// Numbers that cannot take SMS (Twilio's 400, code 21211).
    invalid: Vec<String>,
}

pub struct TwilioFake {
    pub api_base: String,
    state: Arc<Mutex<State>>,
    server: ServerHandle,
    client: reqwest::Client,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Twilio's signature of a request to `url` with `params`.
pub fn sign(url: &str, params: &[(&str, &str)]) -> String {
    let mut sorted: Vec<&(&str, &str)> = params.iter().collect();
    sorted.sort();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(AUTH_TOKEN.as_bytes()).unwrap();
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

async fn create(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<Arc<Mutex<State>>>,
) -> HttpResponse {
    let (account, resource) = path.into_inner();
    let refuse = |state: &Mutex<State>, status: u16, code: u32, message: &str| {
        lock(state).refused.push(format!("{status} {message}"));
        HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
            .json(json!({"code": code, "message": message, "status": status}))
    };
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}"))
    );
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    if account != ACCOUNT_SID || auth != Some(expected.as_str()) {
        return refuse(&state, 401, 20003, "Authenticate");
    }
    if req.content_type() != "application/x-www-form-urlencoded" {
        return refuse(&state, 400, 20001, "not form-encoded");
    }
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let (Some(to), Some(from), Some(callback)) =
        (field("To"), field("From"), field("StatusCallback"))
    else {
        return refuse(
            &state,
            400,
            21604,
            "To, From and StatusCallback are required",
        );
    };
    if !callback.starts_with("http://") && !callback.starts_with("https://") {
        return refuse(&state, 400, 21609, "StatusCallback must be an absolute URL");
    }
    let body = match resource.as_str() {
        "Messages.json" => field("Body"),
        "Calls.json" => field("Twiml"),
        _ => return refuse(&state, 404, 20404, "not found"),
    };
    let Some(body) = body else {
        return refuse(&state, 400, 21602, "Body (or Twiml) is required");
    };
    if lock(&state).invalid.contains(&to) {
        return refuse(
            &state,
            400,
            21211,
            &format!("The 'To' number {to} is not a valid phone number."),
        );
    }
    let mut state = lock(&state);
    let prefix = if resource == "Messages.json" {
        "SM"
    } else {
        "CA"
    };
    let sid = format!("{prefix}{:032x}", state.sent.len() + 1);
    state.sent.push(Sent {
        sid: sid.clone(),
        resource,
        to,
        from,
        body,
        status_callback: callback,
    });
    HttpResponse::Created().json(json!({"sid": sid, "status": "queued"}))
}

impl TwilioFake {
    pub async fn start() -> TwilioFake {
        let state = Arc::new(Mutex::new(State::default()));
        let data = web::Data::new(state.clone());
        let server = HttpServer::new(move || {
            App::new().app_data(data.clone()).route(
                "/2010-04-01/Accounts/{account}/{resource}",
                web::post().to(create),
            )
        })
        .workers(1)
        .bind(("127.0.0.1", 0))
        .expect("the Twilio fake binds");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        TwilioFake {
            api_base: format!("http://127.0.0.1:{port}"),
            state,
            server: handle,
            client: reqwest::Client::new(),
        }
    }

    pub fn sent(&self) -> Vec<Sent> {
        lock(&self.state).sent.clone()
    }

    pub fn refused(&self) -> Vec<String> {
        lock(&self.state).refused.clone()
    }

    /// Messages to this number are refused as Twilio refuses an invalid number (400).
    pub fn reject_number(&self, number: &str) {
        lock(&self.state).invalid.push(number.to_owned());
    }

    pub async fn wait_for(&self, what: &str, check: impl Fn(&[Sent]) -> bool) -> Vec<Sent> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
        loop {
            let sent = self.sent();
            if check(&sent) {
                return sent;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "Twilio fake: timed out waiting for {what}: {sent:?} (refused: {:?})",
                self.refused()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Posts `params` to `url` as Twilio does: form-encoded, signed (or with `signature`).
    pub async fn post_signed(
        &self,
        url: &str,
        params: &[(&str, &str)],
        signature: Option<&str>,
    ) -> (u16, String) {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter())
            .finish();
        let sig = signature.map_or_else(|| sign(url, params), str::to_owned);
        let response = self
            .client
            .post(url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("X-Twilio-Signature", sig)
            .body(body)
            .send()
            .await
            .expect("Doorstep answers the provider");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    /// An SMS from `from` to our number, as Twilio posts it to the inbound webhook.
    pub async fn reply(&self, inbound_url: &str, from: &str, body: &str) -> (u16, String) {
        self.post_signed(
            inbound_url,
            &[
                ("AccountSid", ACCOUNT_SID),
                ("MessageSid", "SMreply0000000000000000000000001"),
                ("From", from),
                ("To", FROM),
                ("Body", body),
            ],
            None,
        )
        .await
    }

    /// The status callback of a message or call this fake accepted.
    pub async fn report(&self, sent: &Sent, status: &str) -> (u16, String) {
        let (sid_name, status_name) = if sent.resource == "Messages.json" {
            ("MessageSid", "MessageStatus")
        } else {
            ("CallSid", "CallStatus")
        };
        let mut params = vec![
            ("AccountSid", ACCOUNT_SID),
            (sid_name, sent.sid.as_str()),
            (status_name, status),
        ];
        if status == "undelivered" || status == "failed" {
            params.push(("ErrorCode", "30003"));
        }
        self.post_signed(&sent.status_callback, &params, None).await
    }

    /// Digits pressed in a call: posted to the `<Gather action>` of its TwiML.
    pub async fn press(&self, call: &Sent, digits: &str) -> (u16, String) {
        let action = call
            .body
            .split("action=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("the call's TwiML has a Gather action")
            .replace("&amp;", "&");
        self.post_signed(
            &action,
            &[
                ("AccountSid", ACCOUNT_SID),
                ("CallSid", call.sid.as_str()),
                ("Digits", digits),
                ("From", FROM),
                ("To", call.to.as_str()),
            ],
            None,
        )
        .await
    }

    pub async fn stop(&self) {
        self.server.stop(false).await;
    }
}

#[test]
fn the_fake_signs_as_twilio_documents() {
    // Twilio's documented example, signed with its token `12345`.
    let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
    let params = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+14158675309"),
        ("Digits", "1234"),
        ("From", "+14158675309"),
        ("To", "+18005551212"),
    ];
    let mut sorted: Vec<&(&str, &str)> = params.iter().collect();
    sorted.sort();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(b"12345").unwrap();
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    assert_eq!(
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()),
        "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    );
}
