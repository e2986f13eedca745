//! The email channel: a plain-text message with the same facts as the push payload, sent
//! through the SMTP relay of `smtp.url`.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde_json::Value;

use super::attempt::Attempt;
use crate::config::{parse_smtp_url, Settings, SmtpTls};
use crate::domain::delivery::DeliveryStatus;

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    public_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot set up email: {0}")]
pub struct MailerError(String);

impl Mailer {
    /// The mailer of `smtp.*`, or `None` when `smtp.url` is unset (the email channel is off).
    pub fn from_settings(settings: &Settings) -> Result<Option<Mailer>, MailerError> {
        let (Some(url), Some(from)) = (&settings.smtp.url, &settings.smtp.from) else {
            return Ok(None);
        };
        let smtp = parse_smtp_url(url).map_err(MailerError)?;
        let tls_parameters =
            TlsParameters::new(smtp.host.clone()).map_err(|e| MailerError(e.to_string()))?;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
            .port(smtp.port)
            .timeout(Some(Duration::from_millis(
                settings.push.request_timeout_ms,
            )))
            .tls(match (smtp.implicit_tls, settings.smtp.tls) {
                (true, _) => Tls::Wrapper(tls_parameters),
                (false, SmtpTls::Required) => Tls::Required(tls_parameters),
                (false, SmtpTls::Opportunistic) => Tls::Opportunistic(tls_parameters),
                (false, SmtpTls::None) => Tls::None,
            });
        if let Some((user, pass)) = smtp.credentials {
            builder = builder.credentials(Credentials::new(user, pass));
        }
        Ok(Some(Mailer {
            transport: builder.build(),
            from: from
                .parse()
                .map_err(|e| MailerError(format!("smtp.from: {e}")))?,
            public_url: settings
                .server
                .public_url
                .as_ref()
                .map(|u| u.trim_end_matches('/').to_owned()),
        }))
    }

    /// One attempt to hand the message to the relay. The relay's 4xx answers and connection
    /// failures are retried; a 5xx (say, an unknown mailbox) is final.
    pub async fn send(&self, to: &str, name: &str, event_id: &str, payload: &Value) -> Attempt {
        let to = match to.parse::<lettre::Address>() {
            Ok(address) => Mailbox::new(Some(name.to_owned()), address),
            Err(e) => {
                return Attempt::Failed {
                    status: DeliveryStatus::Failed,
                    error: format!("the recipient's address is not usable: {e}"),
                }
            }
        };
        let (subject, text) = render(payload, self.public_url.as_deref());
        let message = match lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            // The same id on every retry: mail clients show one message.
            .message_id(Some(format!("<{event_id}@doorstep>")))
            .header(ContentType::TEXT_PLAIN)
            .body(text)
        {
            Ok(message) => message,
            Err(e) => {
                return Attempt::Failed {
                    status: DeliveryStatus::Failed,
                    error: format!("cannot build the email: {e}"),
                }
            }
        };
        match self.transport.send(message).await {
            Ok(_) => Attempt::Delivered,
            Err(e) if e.is_permanent() => Attempt::Failed {
                status: DeliveryStatus::Failed,
                error: format!("the mail server refused it: {e}"),
            },
            Err(e) => Attempt::Retry {
                retry_after_s: None,
                error: if e.is_timeout() {
                    "the mail server did not answer in time".into()
                } else {
                    format!("mail server: {e}")
                },
            },
        }
    }
}

/// Subject and plain-text body from the push payload: who, what, last position, links.
pub fn render(payload: &Value, public_url: Option<&str>) -> (String, String) {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let title = s(&payload["title"]);
    let mut text = format!("{title}\n\n{}\n\n", s(&payload["body"]));
    let who = payload["canvasser"]["name"].as_str().unwrap_or("unknown");
    text.push_str(&format!("Who: {who}\n"));
    text.push_str(&format!(
        "What: {} (level {})\n",
        s(&payload["type"]).replace('_', " "),
        payload["level"].as_i64().unwrap_or(0)
    ));
    let location = &payload["last_location"];
    match (location["lat"].as_f64(), location["lon"].as_f64()) {
        (Some(lat), Some(lon)) => {
            let accuracy = location["accuracy_m"]
                .as_f64()
                .map(|a| format!(" (±{} m)", a.round()))
                .unwrap_or_default();
            text.push_str(&format!(
                "Last position: {lat:.5}, {lon:.5}{accuracy} at {}\n",
                s(&location["recorded_at"])
            ));
            text.push_str(&format!(
                "Map: https://www.openstreetmap.org/?mlat={lat:.5}&mlon={lon:.5}#map=17/{lat:.5}/{lon:.5}\n"
            ));
        }
        _ => text.push_str("Last position: unknown\n"),
    }
    if let Some(due) = payload["due_at"].as_str() {
        text.push_str(&format!("Check-in was due: {due}\n"));
    }
    let path = s(&payload["url"]);
    text.push_str(&format!(
        "Open the alert: {}{path}\n",
        public_url.unwrap_or_default()
    ));
    if let Some(sent) = payload["sent_at"].as_str() {
        text.push_str(&format!("\nSent by Doorstep at {sent}.\n"));
    }
    (title, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_has_the_facts_of_the_push() {
        let payload = serde_json::json!({
            "type": "missed_checkin", "level": 1, "title": "Missed check-in: Jo Bloggs",
            "body": "Jo Bloggs did not check in by 10:00 UTC.",
            "canvasser": {"id": "u", "name": "Jo Bloggs"},
            "last_location": {"lat": 51.58, "lon": -0.02, "accuracy_m": 20.0, "recorded_at": "2026-11-27T10:00:00Z"},
            "due_at": "2026-11-27T10:00:00Z", "sent_at": "2026-11-27T10:01:00Z",
            "url": "/app/alerts/a1"
        });
        let (subject, text) = render(&payload, Some("https://d.example.org"));
        assert_eq!(subject, "Missed check-in: Jo Bloggs");
        assert!(text.contains("Who: Jo Bloggs"));
        assert!(text.contains("Last position: 51.58000, -0.02000 (±20 m)"));
        assert!(text.contains("mlat=51.58000&mlon=-0.02000"));
        assert!(text.contains("https://d.example.org/app/alerts/a1"));
    }
}
