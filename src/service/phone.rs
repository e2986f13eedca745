//! What comes back from the phone network: an SMS reply with an alert's code, a key pressed
//! in a call, and the provider's word on a message or call. Each acknowledges as the person
//! whose number it is, exactly as the app's button would.

use crate::domain::caller::Caller;
use crate::domain::delivery::DeliveryStatus;
use crate::domain::escalation::AlertStatus;
use crate::domain::ids::{AlertId, SessionId, UserId};
use crate::domain::sms::{reply_code, Language};
use crate::error::AppError;
use crate::service::alerts;
use crate::store::accounts::{Account, UserRow};
use crate::store::{self, DbConn};

/// What to answer an SMS reply with (the provider sends it back to the sender).
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// Acknowledged: "you have taken charge".
    TookCharge { name: String, language: Language },
    /// Someone had already taken charge.
    AlreadyHandled { name: String, language: Language },
    /// Not a code of an alert this number was told of (or no account has this number).
    NoMatch { language: Language },
}

impl Reply {
    pub fn text(&self) -> String {
        match self {
            Reply::TookCharge { name, language: Language::English } => {
                format!("Doorstep: thank you, you have taken charge of {name}'s alert.")
            }
            Reply::TookCharge { name, language: Language::Welsh } => {
                format!("Doorstep: diolch, chi sydd yn gofalu am rybudd {name}.")
            }
            Reply::AlreadyHandled { name, language: Language::English } => {
                format!("Doorstep: someone has already taken charge of {name}'s alert.")
            }
            Reply::AlreadyHandled { name, language: Language::Welsh } => {
                format!("Doorstep: mae rhywun eisoes yn gofalu am rybudd {name}.")
            }
            Reply::NoMatch { language: Language::English } => "Doorstep: sorry, this reply does not match an alert sent to you. Reply OK and the 4-digit code in the alert.".into(),
            Reply::NoMatch { language: Language::Welsh } => "Doorstep: mae'n ddrwg gennym, nid yw'r ateb yn cyfateb i rybudd. Atebwch OK a'r cod 4 digid.".into(),
        }
    }
}

/// The person as the alert use cases see an actor: their own role and organisation (a
/// reply is a login of its own, on no session).
fn actor(row: &UserRow) -> Result<Caller, AppError> {
    let account = Account::try_from(row)?;
    Ok(Caller {
        id: account.id,
        role: account.role,
        org_id: account.org_id,
        display_name: account.display_name,
        email: account.email,
        session_id: SessionId::new(),
    })
}

fn acknowledge(
    conn: &mut DbConn,
    who: &Caller,
    alert: AlertId,
    how: &str,
    now_ms: i64,
) -> Result<bool, AppError> {
    match alerts::acknowledge_by_contact(conn, who, alert, Some(how.to_owned()), now_ms) {
        Ok(_) => Ok(true),
        // Acknowledged already (or resolved meanwhile): nothing to take.
        Err(AppError::Conflict(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// An SMS from `from` saying `body`: "OK 4821" acknowledges the alert with that code that this
/// number's person was told of. Anything else changes nothing.
pub fn sms_reply(
    conn: &mut DbConn,
    from: &str,
    body: &str,
    now_ms: i64,
) -> Result<Reply, AppError> {
    let people = store::accounts::with_phone(conn, from)?;
    let language = people
        .first()
        .map_or(Language::English, |p| Language::of(&p.language));
    let Some(code) = reply_code(body) else {
        return Ok(Reply::NoMatch { language });
    };
    for person in &people {
        let who = actor(person)?;
        // The newest first: a code names one alert of the few one person holds.
        if let Some(alert) = store::alerts::told_with_code(conn, who.id, &code)?
            .into_iter()
            .next()
        {
            let name = store::outings::display_name(conn, &alert.canvasser_id.to_string())?;
            let language = Language::of(&person.language);
            if alert.status != AlertStatus::Open {
                return Ok(Reply::AlreadyHandled { name, language });
            }
            return Ok(
                if acknowledge(conn, &who, alert.id, "Acknowledged by SMS reply", now_ms)? {
                    Reply::TookCharge { name, language }
                } else {
                    Reply::AlreadyHandled { name, language }
                },
            );
        }
    }
    Ok(Reply::NoMatch { language })
}

/// What a call's keypad did.
#[derive(Debug, PartialEq, Eq)]
pub enum Keypad {
    TookCharge(Language),
    AlreadyHandled(Language),
    /// Not 1: the call says the alert again.
    Again(Language),
    /// The call names no alert of this person's (stale or forged parameters).
    Unknown,
}

/// Digits pressed in the call about `alert` to `recipient`: 1 acknowledges as them.
pub fn keypad(
    conn: &mut DbConn,
    alert: AlertId,
    recipient: UserId,
    digits: &str,
    now_ms: i64,
) -> Result<Keypad, AppError> {
    let Some(person) = store::accounts::find(conn, recipient)? else {
        return Ok(Keypad::Unknown);
    };
    let language = Language::of(&person.language);
    let told = store::notifications::for_subject(conn, Some(&alert.to_string()), None)?
        .iter()
        .any(|n| n.recipient_id == Some(recipient));
    if !told {
        return Ok(Keypad::Unknown);
    }
    if digits.trim() != "1" {
        return Ok(Keypad::Again(language));
    }
    let who = actor(&person)?;
    Ok(
        if acknowledge(
            conn,
            &who,
            alert,
            "Acknowledged by phone (keypad 1)",
            now_ms,
        )? {
            Keypad::TookCharge(language)
        } else {
            Keypad::AlreadyHandled(language)
        },
    )
}

/// The provider's status of a message or call (`MessageStatus` / `CallStatus`): the delivery
/// row follows it. Intermediate states (queued, ringing…) change nothing.
pub fn provider_status(
    conn: &mut DbConn,
    sid: &str,
    status: &str,
    error_code: Option<&str>,
) -> Result<bool, AppError> {
    let Some(row) = store::notifications::find_by_provider_sid(conn, sid)? else {
        return Ok(false);
    };
    let failed = |what: &str| match error_code {
        Some(code) if !code.is_empty() => format!("the provider reported {what} (error {code})"),
        _ => format!("the provider reported {what}"),
    };
    let (new, error) = match status {
        "delivered" | "sent" | "completed" | "in-progress" | "answered" => {
            (DeliveryStatus::Sent, None)
        }
        "failed" | "undelivered" | "busy" | "no-answer" | "canceled" => {
            (DeliveryStatus::Failed, Some(failed(status)))
        }
        _ => return Ok(true),
    };
    store::notifications::set_provider_outcome(conn, &row.id, new, error.as_deref())?;
    Ok(true)
}
