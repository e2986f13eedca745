//! What the SMS and voice provider posts to us: replies (`/sms/inbound`), keys pressed in a call
//! (`/voice/gather`) and status callbacks (`/sms/status`, `/voice/status`). Each is a form post
//! signed with `X-Twilio-Signature` over the URL the provider called (`sms.public_url` + path
//! and query) and its parameters; an unsigned or mis-signed post is refused with 403 and
//! changes nothing. Replies and calls are answered with TwiML.

use actix_web::{web, HttpRequest, HttpResponse};

use crate::domain::ids::{AlertId, UserId};
use crate::domain::sms::{call_twiml, message_twiml, say_twiml, spoken, Facts, Language};
use crate::error::AppError;
use crate::push::twilio::{verify, SIGNATURE_HEADER};
use crate::service::phone::{self, Keypad};
use crate::state::AppState;
use crate::store;

/// The form's parameters, once the signature over them and the URL checks out.
fn verified(
    state: &AppState,
    request: &HttpRequest,
    body: &[u8],
) -> Result<Vec<(String, String)>, AppError> {
    let (Some(twilio), Some(public_url)) =
        (state.twilio.as_ref(), state.settings.sms_callback_base())
    else {
        return Err(AppError::NotFound("SMS endpoint"));
    };
    let params: Vec<(String, String)> = url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let url = format!(
        "{public_url}{}",
        request
            .uri()
            .path_and_query()
            .map_or(request.path(), |p| p.as_str())
    );
    let presented = request
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !verify(twilio.auth_token(), &url, &params, presented) {
        return Err(AppError::Forbidden(
            "the request is not signed by the SMS provider".into(),
        ));
    }
    Ok(params)
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn twiml(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(body)
}

/// An SMS reply: "OK 4821" acknowledges as the sender; anything else gets a polite answer.
pub async fn inbound(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let params = verified(&state, &request, &body)?;
    let from = param(&params, "From").unwrap_or_default().to_owned();
    let text = param(&params, "Body").unwrap_or_default().to_owned();
    let now_ms = state.clock.now_ms();
    let reply = state
        .store
        .write(move |conn| phone::sms_reply(conn, &from, &text, now_ms))
        .await?;
    state.changed();
    Ok(twiml(message_twiml(Some(&reply.text()))))
}

/// A key pressed in a call: 1 acknowledges as the person called; anything else hears the
/// alert again.
pub async fn gather(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let params = verified(&state, &request, &body)?;
    let query =
        web::Query::<std::collections::HashMap<String, String>>::from_query(request.query_string())
            .map_err(|_| AppError::BadRequest("the call names no alert".into()))?;
    let (Some(alert), Some(recipient)) = (
        query.get("alert").and_then(|a| a.parse::<AlertId>().ok()),
        query
            .get("recipient")
            .and_then(|r| r.parse::<UserId>().ok()),
    ) else {
        return Err(AppError::BadRequest("the call names no alert".into()));
    };
    let digits = param(&params, "Digits").unwrap_or_default().to_owned();
    let now_ms = state.clock.now_ms();
    let (outcome, again) = state
        .store
        .write(move |conn| {
            let outcome = phone::keypad(conn, alert, recipient, &digits, now_ms)?;
            // Said again: the alert as it stands.
            let again = match &outcome {
                Keypad::Again(_) => {
                    let row = store::alerts::find(conn, alert)?;
                    match row {
                        Some(row) => Some((
                            store::outings::display_name(conn, &row.canvasser_id.to_string())?,
                            row.kind.message_type(),
                        )),
                        None => None,
                    }
                }
                _ => None,
            };
            Ok((outcome, again))
        })
        .await?;
    state.changed();
    let answer = match outcome {
        Keypad::TookCharge(language) => say_twiml(
            match language {
                Language::English => "Thank you. You have taken charge of this alert. Goodbye.",
                Language::Welsh => "Diolch. Chi sydd yn gofalu am y rhybudd hwn. Hwyl fawr.",
            },
            language,
        ),
        Keypad::AlreadyHandled(language) => say_twiml(
            match language {
                Language::English => "Someone has already taken charge of this alert. Goodbye.",
                Language::Welsh => "Mae rhywun eisoes yn gofalu am y rhybudd hwn. Hwyl fawr.",
            },
            language,
        ),
        Keypad::Again(language) => {
            // An alert gone meanwhile gets the general words.
            let (name, message_type) = again.unwrap_or_else(|| {
                (
                    "a canvasser".to_owned(),
                    crate::domain::delivery::MessageType::Escalation,
                )
            });
            let facts = Facts {
                message_type,
                name: &name,
                overdue_min: None,
                link: None,
                code: None,
                resolution: None,
            };
            let url = format!(
                "{}{}",
                state.settings.sms_callback_base().unwrap_or_default(),
                request
                    .uri()
                    .path_and_query()
                    .map_or(request.path(), |p| p.as_str())
            );
            call_twiml(&spoken(&facts, language), language, &url)
        }
        Keypad::Unknown => "<Response><Hangup/></Response>".to_owned(),
    };
    Ok(twiml(answer))
}

/// A message's status (`MessageSid`, `MessageStatus`, `ErrorCode`).
pub async fn sms_status(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    status(state, request, body, "MessageSid", "MessageStatus").await
}

/// A call's status (`CallSid`, `CallStatus`).
pub async fn voice_status(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    status(state, request, body, "CallSid", "CallStatus").await
}

async fn status(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Bytes,
    sid_param: &'static str,
    status_param: &'static str,
) -> Result<HttpResponse, AppError> {
    let params = verified(&state, &request, &body)?;
    let (Some(sid), Some(status)) = (param(&params, sid_param), param(&params, status_param))
    else {
        return Err(AppError::BadRequest(format!(
            "{sid_param} and {status_param} are required"
        )));
    };
    let (sid, status, code) = (
        sid.to_owned(),
        status.to_owned(),
        param(&params, "ErrorCode").map(str::to_owned),
    );
    state
        .store
        .write(move |conn| phone::provider_status(conn, &sid, &status, code.as_deref()))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
