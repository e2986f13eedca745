//! What an SMS and a voice call say, in English and Welsh, and how a reply is read: the texts
//! stay under 160 GSM-7 characters where they can (Welsh letters such as â need UCS-2, where a
//! message holds 70 before it is split), end with the code that acknowledges, and never say
//! more than a lock screen should.

use super::delivery::MessageType;

/// SMS cost money and buzz a pocket: about one alert, one person gets at most one every five
/// minutes, however often the alert repeats.
pub const MIN_REPEAT_MS: i64 = 5 * 60_000;

/// The language a user reads in (`en`, `cy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    English,
    Welsh,
}

impl Language {
    pub fn of(code: &str) -> Language {
        if code == "cy" {
            Language::Welsh
        } else {
            Language::English
        }
    }
}

/// What a message is about.
pub struct Facts<'a> {
    pub message_type: MessageType,
    pub name: &'a str,
    /// Minutes since the check-in was due, for a missed one.
    pub overdue_min: Option<i64>,
    /// Where to look: the alert's page.
    pub link: Option<&'a str>,
    /// The reply code, when the step may be acknowledged.
    pub code: Option<&'a str>,
    pub resolution: Option<&'a str>,
}

/// The SMS text of an alert step, or `None` for a message that does not go by SMS.
pub fn text(facts: &Facts<'_>, language: Language) -> Option<String> {
    let name = facts.name;
    let link = facts.link.map(|l| format!(" {l}")).unwrap_or_default();
    let reply = match (facts.code, language) {
        (Some(code), Language::English) => format!(" Reply OK {code} to take charge."),
        (Some(code), Language::Welsh) => format!(" Atebwch OK {code} i ofalu."),
        (None, _) => String::new(),
    };
    let short_reply = facts
        .code
        .map(|code| format!(" OK {code}?"))
        .unwrap_or_default();
    let overdue = facts.overdue_min.unwrap_or(0).max(0);
    let main = match (facts.message_type, language) {
        (MessageType::MissedCheckin, Language::English) => {
            format!("Doorstep: {name} is {overdue} min overdue checking in.")
        }
        (MessageType::MissedCheckin, Language::Welsh) => {
            format!("Doorstep: {name} {overdue} munud yn hwyr.")
        }
        (MessageType::Escalation, Language::English) => {
            format!("Doorstep ESCALATED: {name}, nobody has taken charge.")
        }
        (MessageType::Escalation, Language::Welsh) => {
            format!("Doorstep: neb yn gofalu am {name} eto.")
        }
        (MessageType::Panic, Language::English) => format!("Doorstep PANIC: {name} pressed panic."),
        (MessageType::Panic, Language::Welsh) => {
            format!("Doorstep PANIG: pwysodd {name} y botwm panig.")
        }
        (MessageType::Duress, Language::English) => {
            format!("Doorstep DURESS: {name} may be coerced. Do not call them.")
        }
        (MessageType::Duress, Language::Welsh) => {
            format!("Doorstep: efallai fod {name} dan orfodaeth. Peidiwch a'u ffonio.")
        }
        (MessageType::WrongPins, Language::English) => {
            format!("Doorstep: 5 wrong PINs on {name}'s phone. Do not call them.")
        }
        (MessageType::WrongPins, Language::Welsh) => {
            format!("Doorstep: 5 PIN anghywir ar ffon {name}. Peidiwch a'u ffonio.")
        }
        (MessageType::NeedHelp, Language::English) => format!("Doorstep: {name} asked for help."),
        (MessageType::NeedHelp, Language::Welsh) => {
            format!("Doorstep: mae {name} yn gofyn am help.")
        }
        (MessageType::AllClear, Language::English) => {
            let how = facts.resolution.unwrap_or("resolved").replace('_', " ");
            return Some(format!(
                "Doorstep all clear: {name}'s alert is over ({how})."
            ));
        }
        (MessageType::AllClear, Language::Welsh) => {
            return Some(format!("Doorstep: mae rhybudd {name} drosodd."));
        }
        _ => return None,
    };
    // One SMS where it can be: the full reply wording, else the short one, else without the
    // link (the code is what matters on the doorstep).
    [
        format!("{main}{link}{reply}"),
        format!("{main}{link}{short_reply}"),
        format!("{main}{reply}"),
    ]
    .into_iter()
    .find(|text| text.chars().count() <= SMS_CHARS)
    .or_else(|| Some(format!("{main}{short_reply}")))
}

/// One GSM-7 SMS.
pub const SMS_CHARS: usize = 160;

/// The SMS that an incident was reported: who, what kind, where to read it.
pub fn incident_text(reporter: &str, category: &str, link: &str, language: Language) -> String {
    match language {
        Language::English => {
            format!("Doorstep: {reporter} reported an incident ({category}). {link}")
        }
        Language::Welsh => {
            format!("Doorstep: adroddodd {reporter} ddigwyddiad ({category}). {link}")
        }
    }
}

/// What a call says before "press 1".
pub fn spoken(facts: &Facts<'_>, language: Language) -> String {
    let name = facts.name;
    match language {
        Language::English => {
            let what = match facts.message_type {
                MessageType::Panic => format!("{name} pressed the panic button."),
                MessageType::Duress => {
                    format!("{name} used their duress PIN and may be coerced. Do not call them.")
                }
                MessageType::WrongPins => {
                    format!("Five wrong PINs were typed on {name}'s phone. Do not call them.")
                }
                MessageType::NeedHelp => format!("{name} asked for help."),
                _ => format!("{name} has missed a check-in and nobody has taken charge."),
            };
            format!("This is Doorstep with an urgent alert. {what} Press 1 to take charge.")
        }
        Language::Welsh => {
            let what = match facts.message_type {
                MessageType::Panic => format!("Pwysodd {name} y botwm panig."),
                MessageType::Duress => {
                    format!("Defnyddiodd {name} eu PIN gorfodaeth. Peidiwch â'u ffonio.")
                }
                MessageType::WrongPins => {
                    format!("Teipiwyd pum PIN anghywir ar ffôn {name}. Peidiwch â'u ffonio.")
                }
                MessageType::NeedHelp => format!("Mae {name} yn gofyn am help."),
                _ => format!("Mae {name} wedi methu cofrestru a does neb wedi cymryd gofal."),
            };
            format!("Doorstep sydd yma gyda rhybudd brys. {what} Pwyswch 1 i gymryd gofal.")
        }
    }
}

/// The four digits of a reply ("OK 4821", "ok4821", "4821"), if it has them.
pub fn reply_code(body: &str) -> Option<String> {
    let digits: Vec<char> = body.chars().filter(char::is_ascii_digit).collect();
    (digits.len() == 4).then(|| digits.into_iter().collect())
}

/// Text for XML (a TwiML `<Say>` or `<Message>`).
pub fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// The TwiML of a call: the alert spoken (a Welsh voice for `cy`), then one key: 1 at
/// `gather_url` acknowledges, anything else says it again.
pub fn call_twiml(spoken: &str, language: Language, gather_url: &str) -> String {
    let (lang, voice) = match language {
        Language::English => ("en-GB", "Polly.Amy"),
        Language::Welsh => ("cy-GB", "Polly.Gwyneth"),
    };
    format!(
        "<Response><Gather numDigits=\"1\" timeout=\"10\" method=\"POST\" action=\"{action}\">\
         <Say language=\"{lang}\" voice=\"{voice}\">{text}</Say></Gather>\
         <Say language=\"{lang}\" voice=\"{voice}\">{text}</Say></Response>",
        action = xml_escape(gather_url),
        text = xml_escape(spoken),
    )
}

/// A TwiML answer that speaks once and hangs up.
pub fn say_twiml(text: &str, language: Language) -> String {
    let (lang, voice) = match language {
        Language::English => ("en-GB", "Polly.Amy"),
        Language::Welsh => ("cy-GB", "Polly.Gwyneth"),
    };
    format!(
        "<Response><Say language=\"{lang}\" voice=\"{voice}\">{}</Say></Response>",
        xml_escape(text)
    )
}

/// A TwiML answer to an inbound SMS: one reply message, or none.
pub fn message_twiml(reply: Option<&str>) -> String {
    match reply {
        Some(text) => format!(
            "<Response><Message>{}</Message></Response>",
            xml_escape(text)
        ),
        None => "<Response></Response>".to_owned(),
    }
}

/// Whether every character is in the GSM 03.38 basic set (then 160 fit in one SMS).
pub fn is_gsm7(text: &str) -> bool {
    const BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
    text.chars().all(|c| BASIC.contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(message_type: MessageType) -> Facts<'static> {
        Facts {
            message_type,
            name: "Jo Bloggs",
            overdue_min: Some(7),
            link: Some(
                "https://doorstep.example.org/app/alerts/01a25398-640c-751b-a4aa-dfad1dd69f59",
            ),
            code: Some("4821"),
            resolution: Some("false_alarm"),
        }
    }

    #[test]
    fn alert_texts_fit_one_sms_and_end_with_the_code() {
        for t in [
            MessageType::MissedCheckin,
            MessageType::Escalation,
            MessageType::Panic,
            MessageType::Duress,
            MessageType::WrongPins,
            MessageType::NeedHelp,
        ] {
            for language in [Language::English, Language::Welsh] {
                let text = text(&facts(t), language).unwrap();
                assert!(is_gsm7(&text), "{text}");
                assert!(
                    text.chars().count() <= 160,
                    "{} chars: {text}",
                    text.chars().count()
                );
                assert!(text.contains("4821"), "{text}");
                assert!(text.contains("Jo Bloggs"));
            }
        }
        let missed = text(&facts(MessageType::MissedCheckin), Language::English).unwrap();
        assert!(missed.contains("7 min overdue"), "{missed}");
        assert!(missed.ends_with("Reply OK 4821 to take charge."));
        let clear = text(&facts(MessageType::AllClear), Language::English).unwrap();
        assert!(
            clear.contains("false alarm") && !clear.contains("4821"),
            "{clear}"
        );
        assert!(text(&facts(MessageType::CheckinReminder), Language::English).is_none());
        assert!(text(&facts(MessageType::Test), Language::Welsh).is_none());
    }

    #[test]
    fn an_incident_sms_names_the_category_and_the_link_only() {
        let text = incident_text(
            "Jo Bloggs",
            "Threat",
            "https://d.example/app/incidents/1",
            Language::English,
        );
        assert_eq!(
            text,
            "Doorstep: Jo Bloggs reported an incident (Threat). https://d.example/app/incidents/1"
        );
        assert!(is_gsm7(&text));
    }

    #[test]
    fn silent_kinds_say_not_to_call() {
        for language in [Language::English, Language::Welsh] {
            for t in [MessageType::Duress, MessageType::WrongPins] {
                let sms = text(&facts(t), language).unwrap();
                assert!(
                    sms.contains("Do not call") || sms.contains("Peidiwch"),
                    "{sms}"
                );
                let call = spoken(&facts(t), language);
                assert!(
                    call.contains("Do not call") || call.contains("Peidiwch"),
                    "{call}"
                );
            }
        }
    }

    #[test]
    fn a_reply_is_read_for_its_four_digits() {
        assert_eq!(reply_code("OK 4821").as_deref(), Some("4821"));
        assert_eq!(reply_code("ok4821").as_deref(), Some("4821"));
        assert_eq!(reply_code(" 4821 \n").as_deref(), Some("4821"));
        assert_eq!(reply_code("OK"), None);
        assert_eq!(reply_code("OK 48211"), None);
        assert_eq!(reply_code("call me on 07700 900123"), None);
    }

    #[test]
    fn twiml_escapes_and_speaks_welsh_in_a_welsh_voice() {
        let twiml = call_twiml(
            "Jo & <Co>",
            Language::Welsh,
            "https://x/voice/gather?a=1&b=2",
        );
        assert!(twiml.contains("Jo &amp; &lt;Co&gt;"), "{twiml}");
        assert!(
            twiml.contains("action=\"https://x/voice/gather?a=1&amp;b=2\""),
            "{twiml}"
        );
        assert!(twiml.contains("language=\"cy-GB\" voice=\"Polly.Gwyneth\""));
        assert!(twiml.contains("<Gather numDigits=\"1\""));
        assert_eq!(message_twiml(None), "<Response></Response>");
        assert!(say_twiml("Thank you", Language::English).contains("Thank you"));
    }
}
