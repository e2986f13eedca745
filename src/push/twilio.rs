//! SMS and voice calls through Twilio's REST API: Programmable Messaging (`Messages.json`) and
//! Voice (`Calls.json`), form-encoded, HTTP Basic with the account SID and auth token, with
//! `StatusCallback` URLs; and the check of `X-Twilio-Signature` on what Twilio posts back.
//! No well-kept Rust client exists (the crates on crates.io are unmaintained or partial): this
//! is the two calls Doorstep makes, on the shared outbound client (address guard, bounded
//! answers). A second provider is a module beside this one.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use super::attempt::Attempt;
use super::retry::parse_retry_after;
use crate::config::{PushSettings, SmsSettings};
use crate::domain::delivery::DeliveryStatus;

pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";

/// `base64(HMAC-SHA1(auth token, URL + each POST parameter's name and value, sorted by name))`:
/// Twilio's signature of a request it makes to us.
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()) else {
        return String::new();
    };
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `presented` is Twilio's signature of this request (constant time).
pub fn verify(auth_token: &str, url: &str, params: &[(String, String)], presented: &str) -> bool {
    let Ok(presented) = base64::engine::general_purpose::STANDARD.decode(presented.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()) else {
        return false;
    };
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac.verify_slice(&presented).is_ok()
}

/// What the provider answered to a message or call: accepted with its id, or an attempt outcome.
pub enum Sent {
    Accepted { sid: String },
    NotSent(Attempt),
}

/// The provider account, when one is configured.
pub struct Twilio {
    http: reqwest::Client,
    api_base: String,
    account_sid: String,
    auth_token: String,
    from: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TwilioError {
    #[error("cannot build the SMS provider's HTTP client: {0}")]
    Client(String),
    #[error("sms.provider {0:?} is not supported (only \"twilio\")")]
    Provider(String),
}

impl Twilio {
    /// `None` when SMS is not configured (the channels are then off).
    pub fn from_settings(
        sms: &SmsSettings,
        push: &PushSettings,
    ) -> Result<Option<Twilio>, TwilioError> {
        let Some(provider) = &sms.provider else {
            return Ok(None);
        };
        if provider != "twilio" {
            return Err(TwilioError::Provider(provider.clone()));
        }
        let (Some(account_sid), Some(auth_token), Some(from)) =
            (&sms.account_sid, &sms.auth_token, &sms.from)
        else {
            return Ok(None);
        };
        // The provider's API is an outside service like a push service: the same guards (a
        // test's fake on loopback needs push.allow_private_endpoints).
        let http = super::outbound::client_builder(push)
            .and_then(|b| b.build())
            .map_err(|e| TwilioError::Client(e.to_string()))?;
        Ok(Some(Twilio {
            http,
            api_base: sms.api_base.trim_end_matches('/').to_owned(),
            account_sid: account_sid.clone(),
            auth_token: auth_token.clone(),
            from: from.clone(),
        }))
    }

    pub fn auth_token(&self) -> &str {
        &self.auth_token
    }

    /// Sends an SMS (`Messages.json`).
    pub async fn send_sms(&self, to: &str, body: &str, status_callback: &str, now_s: i64) -> Sent {
        let form = [
            ("To", to),
            ("From", self.from.as_str()),
            ("Body", body),
            ("StatusCallback", status_callback),
        ];
        self.post("Messages.json", &form, now_s).await
    }

    /// Places a call (`Calls.json`) that speaks `twiml` (a `<Response>` with `<Say>` and
    /// `<Gather>`).
    pub async fn call(&self, to: &str, twiml: &str, status_callback: &str, now_s: i64) -> Sent {
        let form = [
            ("To", to),
            ("From", self.from.as_str()),
            ("Twiml", twiml),
            ("StatusCallback", status_callback),
            ("StatusCallbackEvent", "completed"),
        ];
        self.post("Calls.json", &form, now_s).await
    }

    async fn post(&self, resource: &str, form: &[(&str, &str)], now_s: i64) -> Sent {
        let url = format!(
            "{}/2010-04-01/Accounts/{}/{resource}",
            self.api_base, self.account_sid
        );
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter())
            .finish();
        let request = self
            .http
            .post(url)
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body);
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                return Sent::NotSent(Attempt::Retry {
                    retry_after_s: None,
                    error: if e.is_timeout() {
                        "the SMS provider did not answer in time".into()
                    } else {
                        format!("cannot reach the SMS provider: {e}")
                    },
                })
            }
        };
        let status = response.status();
        let retry_after_s = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, now_s));
        let answer = super::outbound::read_bounded(response).await;
        if status.is_success() {
            let sid = serde_json::from_str::<serde_json::Value>(&answer)
                .ok()
                .and_then(|v| v["sid"].as_str().map(str::to_owned));
            return match sid {
                Some(sid) => Sent::Accepted { sid },
                None => Sent::NotSent(Attempt::Retry {
                    retry_after_s: None,
                    error: "the SMS provider's answer had no sid".into(),
                }),
            };
        }
        let message = serde_json::from_str::<serde_json::Value>(&answer)
            .ok()
            .and_then(|v| {
                v["message"]
                    .as_str()
                    .map(|m| format!("{m} (code {})", v["code"]))
            })
            .unwrap_or_else(|| answer.chars().take(200).collect());
        // 429 and 5xx are the provider's trouble: try again. Another 4xx (a number that cannot
        // take SMS, a bad request) will not get better: final, and shown in the record.
        if status.as_u16() == 429 || status.is_server_error() {
            Sent::NotSent(Attempt::Retry {
                retry_after_s,
                error: format!("the SMS provider answered {}: {message}", status.as_u16()),
            })
        } else {
            Sent::NotSent(Attempt::Failed {
                status: DeliveryStatus::Failed,
                error: format!(
                    "the SMS provider refused it ({}): {message}",
                    status.as_u16()
                ),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn documented() -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    }

    /// Twilio's documented example (its request-validation docs and every official SDK's
    /// tests): auth token `12345`, this URL and these parameters.
    #[test]
    fn the_signature_matches_twilios_documented_example() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(
            signature("12345", url, &documented()),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
        assert!(verify(
            "12345",
            url,
            &documented(),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        // The order the parameters came in does not matter; any change does.
        let mut shuffled = documented();
        shuffled.reverse();
        assert!(verify(
            "12345",
            url,
            &shuffled,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        let mut changed = documented();
        changed[2].1 = "9999".into();
        assert!(!verify(
            "12345",
            url,
            &changed,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        assert!(!verify(
            "12345",
            &format!("{url}&x=1"),
            &documented(),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        assert!(!verify(
            "54321",
            url,
            &documented(),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        assert!(!verify("12345", url, &documented(), "not base64 !"));
        assert!(!verify("12345", url, &documented(), ""));
    }
}
