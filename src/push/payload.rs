//! The push message of the contract, built in one place for every step and channel.
//!
//! The payload is stored on the outbox row when the step is recorded; `sent_at` is stamped
//! when a delivery is attempted.

use serde::Serialize;

use crate::domain::delivery::MessageType;
use crate::domain::time::{from_millis, rfc3339};

/// The largest decrypted payload we send (the contract's limit).
pub const MAX_PAYLOAD_BYTES: usize = 3000;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CanvasserRef {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Location {
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: Option<f64>,
    #[serde(skip)]
    pub recorded_at_ms: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
struct LocationJson {
    lat: f64,
    lon: f64,
    accuracy_m: Option<f64>,
    recorded_at: String,
}

/// Everything a message says.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    pub message_type: MessageType,
    pub alert_id: Option<&'a str>,
    pub outing_id: Option<&'a str>,
    pub level: u8,
    pub canvasser: Option<CanvasserRef>,
    pub last_location: Option<Location>,
    pub due_at_ms: Option<i64>,
    /// How the alert ended, for `all_clear`.
    pub resolution: Option<&'a str>,
    /// An `incident` report's id.
    pub incident_id: Option<&'a str>,
    /// A `caution`'s id.
    pub caution_id: Option<&'a str>,
    /// What the text says besides the canvasser: an incident's category, a caution's reason,
    /// a welfare check's question, why an alert opened.
    pub note: Option<&'a str>,
    /// A `welfare_check`'s answer token (for the notification's "I'm OK" / "I need help").
    pub reply_token: Option<&'a str>,
}

impl Message<'_> {
    /// A message of this type that says nothing else yet.
    pub fn of(message_type: MessageType) -> Self {
        Message {
            message_type,
            alert_id: None,
            outing_id: None,
            level: 0,
            canvasser: None,
            last_location: None,
            due_at_ms: None,
            resolution: None,
            incident_id: None,
            caution_id: None,
            note: None,
            reply_token: None,
        }
    }
}

#[derive(Debug, Serialize)]
struct Payload<'a> {
    #[serde(rename = "type")]
    message_type: &'a str,
    alert_id: Option<&'a str>,
    outing_id: Option<&'a str>,
    level: u8,
    canvasser: Option<&'a CanvasserRef>,
    last_location: Option<LocationJson>,
    due_at: Option<String>,
    sent_at: Option<String>,
    title: String,
    body: String,
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    incident_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    caution_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_token: Option<&'a str>,
}

fn clock(ms: i64) -> String {
    from_millis(ms).format("%H:%M UTC").to_string()
}

fn seen(location: Option<&Location>) -> String {
    match location {
        Some(l) => {
            let accuracy = l
                .accuracy_m
                .map(|a| format!(" (±{} m)", a.round()))
                .unwrap_or_default();
            format!(
                "Last seen at {:.5}, {:.5}{accuracy} at {}.",
                l.lat,
                l.lon,
                clock(l.recorded_at_ms)
            )
        }
        None => "No known position.".to_owned(),
    }
}

/// Title and body for a person reading a notification on a lock screen.
fn texts(m: &Message<'_>) -> (String, String) {
    let name = m
        .canvasser
        .as_ref()
        .map(|c| c.name.as_str())
        .unwrap_or("A canvasser");
    let location = seen(m.last_location.as_ref());
    match m.message_type {
        MessageType::CheckinReminder => (
            "Check-in due soon".to_owned(),
            match m.due_at_ms {
                Some(due) => format!(
                    "Your next check-in is due at {}. Tap to check in.",
                    clock(due)
                ),
                None => "Your next check-in is due soon. Tap to check in.".to_owned(),
            },
        ),
        MessageType::MissedCheckin => (
            format!("Missed check-in: {name}"),
            match (m.due_at_ms, m.note) {
                (Some(due), Some(reason)) => format!(
                    "{name} did not check in by {}: \"{reason}\". {location}",
                    clock(due)
                ),
                (Some(due), None) => {
                    format!("{name} did not check in by {}. {location}", clock(due))
                }
                (None, Some(reason)) => {
                    format!("{name} has missed a check-in: \"{reason}\". {location}")
                }
                (None, None) => format!("{name} has missed a check-in. {location}"),
            },
        ),
        MessageType::WelfareCheck => (
            "Are you OK?".to_owned(),
            match m.note {
                Some(note) => format!("{note} Tap \"I'm OK\" or \"I need help\"."),
                None => "Your organiser asks if you are OK. Tap \"I'm OK\" or \"I need help\"."
                    .to_owned(),
            },
        ),
        MessageType::Escalation => (
            format!("Escalated (level {}): {name}", m.level),
            format!("Nobody has taken charge of the alert for {name}. {location}"),
        ),
        MessageType::Panic => (
            format!("PANIC: {name}"),
            format!("{name} pressed the panic button. {location}"),
        ),
        MessageType::Duress => (
            format!("Duress: {name}"),
            format!(
                "{name} used their duress PIN: they may be watched. Do not call them. {location}"
            ),
        ),
        MessageType::WrongPins => (
            format!("Wrong PINs: {name}"),
            format!(
                "Five wrong PINs in a row on {name}'s outing: someone may have their phone. \
                 Do not call them. {location}"
            ),
        ),
        MessageType::NeedHelp => (
            format!("{name} needs help"),
            format!("{name} asked for help. {location}"),
        ),
        MessageType::AllClear => (
            format!("All clear: {name}"),
            format!(
                "The alert for {name} is resolved ({}).",
                m.resolution.unwrap_or("resolved").replace('_', " ")
            ),
        ),
        MessageType::LeftArea => (
            format!("{name} left the planned area"),
            format!("{name} is outside the area planned for this outing. {location}"),
        ),
        MessageType::LowBattery => (
            format!("Low battery: {name}"),
            format!("{name}'s phone is at 15 % or less: check-ins may stop. {location}"),
        ),
        MessageType::Incident => (
            format!("Incident reported: {}", m.note.unwrap_or("incident")),
            format!("{name} reported an incident. Open it to read the report."),
        ),
        MessageType::Caution => (
            "Do not knock here".to_owned(),
            format!(
                "You are at a do-not-knock address: {}",
                m.note.unwrap_or("see the cautions list")
            ),
        ),
        MessageType::Test => (
            "Doorstep test".to_owned(),
            "Alerts will reach this device.".to_owned(),
        ),
    }
}

fn truncate(s: &mut String, max_chars: usize) {
    if let Some((i, _)) = s.char_indices().nth(max_chars) {
        s.truncate(i);
        s.push('…');
    }
}

/// The JSON payload, without `sent_at` (stamped at delivery by [`stamp_sent_at`]).
pub fn build(m: &Message<'_>) -> serde_json::Value {
    let (mut title, mut body) = texts(m);
    truncate(&mut title, 120);
    truncate(&mut body, 600);
    let url = match (m.alert_id, m.outing_id) {
        _ if m.incident_id.is_some() => {
            format!("/app/incidents/{}", m.incident_id.unwrap_or_default())
        }
        (Some(alert), _) => format!("/app/alerts/{alert}"),
        (None, Some(outing)) => format!("/app/outings/{outing}"),
        (None, None) => "/app/".to_owned(),
    };
    let mut canvasser = m.canvasser.clone();
    if let Some(c) = canvasser.as_mut() {
        truncate(&mut c.name, 100);
    }
    let payload = Payload {
        message_type: m.message_type.as_str(),
        alert_id: m.alert_id,
        outing_id: m.outing_id,
        level: m.level,
        canvasser: canvasser.as_ref(),
        last_location: m.last_location.map(|l| LocationJson {
            lat: l.lat,
            lon: l.lon,
            accuracy_m: l.accuracy_m,
            recorded_at: rfc3339(from_millis(l.recorded_at_ms)),
        }),
        due_at: m.due_at_ms.map(|ms| rfc3339(from_millis(ms))),
        sent_at: None,
        title,
        body,
        url,
        incident_id: m.incident_id,
        caution_id: m.caution_id,
        reply_token: m.reply_token,
    };
    serde_json::to_value(payload).unwrap_or(serde_json::Value::Null)
}

/// The payload as sent: `sent_at` set to the delivery attempt's time.
pub fn stamp_sent_at(stored: &str, now_ms: i64) -> Vec<u8> {
    match serde_json::from_str::<serde_json::Value>(stored) {
        Ok(mut value) => {
            value["sent_at"] = serde_json::Value::String(rfc3339(from_millis(now_ms)));
            serde_json::to_vec(&value).unwrap_or_else(|_| stored.as_bytes().to_vec())
        }
        Err(_) => stored.as_bytes().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(message_type: &str) -> Message<'static> {
        let message_type = MessageType::parse(message_type).unwrap();
        Message {
            alert_id: Some("a1"),
            outing_id: Some("o1"),
            level: 1,
            canvasser: Some(CanvasserRef {
                id: "u1".into(),
                name: "Jo Bloggs".into(),
            }),
            last_location: Some(Location {
                lat: 51.58,
                lon: -0.02,
                accuracy_m: Some(20.0),
                recorded_at_ms: 1_781_289_725_000,
            }),
            due_at_ms: Some(1_781_289_725_000),
            resolution: None,
            ..Message::of(message_type)
        }
    }

    #[test]
    fn payload_has_the_contract_fields_and_fits() {
        for t in [
            "checkin_reminder",
            "missed_checkin",
            "escalation",
            "panic",
            "duress",
            "need_help",
            "all_clear",
            "test",
        ] {
            let p = build(&message(t));
            for field in [
                "type",
                "alert_id",
                "outing_id",
                "level",
                "canvasser",
                "last_location",
                "due_at",
                "sent_at",
                "title",
                "body",
                "url",
            ] {
                assert!(p.get(field).is_some(), "{t}: {field}");
            }
            assert_eq!(p["type"], t);
            assert_eq!(p["url"], "/app/alerts/a1");
            assert!(serde_json::to_vec(&p).unwrap().len() <= MAX_PAYLOAD_BYTES);
        }
        let p = build(&message("missed_checkin"));
        assert_eq!(p["title"], "Missed check-in: Jo Bloggs");
        assert_eq!(p["canvasser"]["name"], "Jo Bloggs");
        assert_eq!(p["last_location"]["accuracy_m"], 20.0);
    }

    #[test]
    fn long_names_are_cut_to_fit() {
        let mut m = message("duress");
        m.canvasser = Some(CanvasserRef {
            id: "u".into(),
            name: "ж".repeat(5000),
        });
        let p = build(&m);
        assert!(serde_json::to_vec(&p).unwrap().len() <= MAX_PAYLOAD_BYTES);
    }

    #[test]
    fn sent_at_is_stamped() {
        let stored = build(&message("panic")).to_string();
        let sent: serde_json::Value = serde_json::from_slice(&stamp_sent_at(&stored, 0)).unwrap();
        assert_eq!(sent["sent_at"], "1970-01-01T00:00:00Z");
    }
}
