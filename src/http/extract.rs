//! Request extractors: JSON bodies parsed strictly into typed requests, and the authenticated
//! caller.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use crate::domain::account::Role;
use crate::error::AppError;
use crate::state::AppState;
use crate::store;

/// A JSON request body. Wrong content type or malformed JSON → 400; too large → 413; a value
/// of the wrong type, a missing or an unknown field → 422 naming the field.
pub struct ApiJson<T>(pub T);

/// The raw bytes of a JSON request body, checked for content type and size (for handlers that
/// also need the bytes, e.g. to fingerprint an idempotent request).
pub struct RawJson(pub web::Bytes);

/// Like [`ApiJson`], but an empty body (no `Content-Type` needed) means `T::default()`: for
/// actions such as the panic button whose body is optional.
pub struct OptionalJson<T>(pub T);

type BodyFuture<T> = Pin<Box<dyn Future<Output = Result<T, AppError>>>>;

fn read_body(
    req: &HttpRequest,
    payload: &mut Payload,
    allow_empty: bool,
) -> BodyFuture<Option<web::Bytes>> {
    let limit = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.settings.server.max_body_bytes)
        .unwrap_or(64 * 1024);
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    let content_type_ok = content_type.as_deref().is_some_and(|v| {
        v == "application/json" || (v.starts_with("application/") && v.ends_with("+json"))
    });
    let declared_length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let mut payload = payload.take();
    Box::pin(async move {
        if declared_length.is_some_and(|n| n > limit) {
            return Err(AppError::PayloadTooLarge { limit });
        }
        let mut body = web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk
                .map_err(|e| AppError::BadRequest(format!("cannot read request body: {e}")))?;
            if body.len() + chunk.len() > limit {
                return Err(AppError::PayloadTooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        if allow_empty && body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        if !content_type_ok {
            return Err(AppError::BadRequest(
                "Content-Type must be application/json".into(),
            ));
        }
        Ok(Some(body.freeze()))
    })
}

impl<T: DeserializeOwned + 'static> FromRequest for ApiJson<T> {
    type Error = AppError;
    type Future = BodyFuture<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_body(req, payload, false);
        Box::pin(async move {
            let body = body.await?.unwrap_or_default();
            parse_json(&body).map(ApiJson)
        })
    }
}

impl FromRequest for RawJson {
    type Error = AppError;
    type Future = BodyFuture<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_body(req, payload, false);
        Box::pin(async move { Ok(RawJson(body.await?.unwrap_or_default())) })
    }
}

impl<T: DeserializeOwned + Default + 'static> FromRequest for OptionalJson<T> {
    type Error = AppError;
    type Future = BodyFuture<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_body(req, payload, true);
        Box::pin(async move {
            match body.await? {
                None => Ok(OptionalJson(T::default())),
                Some(body) => parse_json(&body).map(OptionalJson),
            }
        })
    }
}

/// Strict JSON parsing with the path of the failing field.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, AppError> {
    use serde_json::error::Category;
    // serde would also read a struct from an array; the contract's bodies are objects.
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Err(AppError::BadRequest("malformed JSON: empty body".into())),
        Some(b'{') => {}
        Some(_) => {
            return Err(match serde_json::from_slice::<serde_json::Value>(body) {
                Ok(_) => AppError::field("body", "must be a JSON object"),
                Err(e) => AppError::BadRequest(format!("malformed JSON: {e}")),
            })
        }
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value: Result<T, _> = serde_path_to_error::deserialize(&mut deserializer);
    let value = match value {
        Ok(value) => value,
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            return Err(match inner.classify() {
                Category::Data => {
                    let message = strip_position(&inner.to_string());
                    AppError::field(field_of(&path, &message), message)
                }
                Category::Syntax | Category::Eof | Category::Io => {
                    AppError::BadRequest(format!("malformed JSON: {inner}"))
                }
            });
        }
    };
    deserializer
        .end()
        .map_err(|e| AppError::BadRequest(format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// serde names unknown and missing fields in its message, with the path at their parent.
fn field_of(path: &str, message: &str) -> String {
    let named = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    match (path, named) {
        (".", Some(name)) => name.to_owned(),
        // For an unknown field the path already ends at the field itself.
        (path, Some(name)) if path == name || path.ends_with(&format!(".{name}")) => {
            path.to_owned()
        }
        (parent, Some(name)) => format!("{parent}.{name}"),
        (".", None) => "body".to_owned(),
        (path, None) => path.to_owned(),
    }
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

pub use crate::domain::caller::Caller;

/// The HTTP answer to a caller in the wrong role (an inherent impl beside the extractor:
/// the domain type knows nothing of HTTP errors).
impl Caller {
    pub fn require_role(&self, allowed: &[Role]) -> Result<(), AppError> {
        if allowed.contains(&self.role) {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "a {} may not do this",
                self.role.as_str()
            )))
        }
    }
}

pub fn bearer_token(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        })
}

/// What an organiser of an organisation that requires TOTP may still do before enabling it:
/// see who they are and enroll. (`POST /auth/logout` needs no access token at all.)
fn allowed_before_totp_enrollment(req: &HttpRequest) -> bool {
    use actix_web::http::Method;
    matches!(
        (req.method(), req.path()),
        (&Method::GET, "/api/v1/me")
            | (&Method::POST, "/api/v1/me/totp")
            | (&Method::POST, "/api/v1/me/totp/confirm")
            | (&Method::POST, "/api/v1/auth/logout")
    )
}

impl FromRequest for Caller {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer_token(req);
        let allowed_before_enrollment = allowed_before_totp_enrollment(req);
        Box::pin(async move {
            let state = state.ok_or_else(|| AppError::internal("application state missing"))?;
            let token =
                token.ok_or_else(|| AppError::Unauthorized("missing bearer token".into()))?;
            caller_from_token(&state, &token, allowed_before_enrollment).await
        })
    }
}

/// Parses a path id; anything that is not a UUID cannot name a resource, so it is a 404.
pub fn path_id<T: std::str::FromStr>(raw: &str, what: &'static str) -> Result<T, AppError> {
    raw.parse().map_err(|_| AppError::NotFound(what))
}

/// The caller behind a bearer token given some other way (the SSE stream's `?access_token=`,
/// since browsers' `EventSource` cannot set headers). Same checks as the header.
use crate::auth::session_cache::ConfirmedLogin;

pub async fn caller_from_token(
    state: &AppState,
    token: &str,
    allowed_before_enrollment: bool,
) -> Result<Caller, AppError> {
    let claims = state.keys.verify(token).map_err(|reason| {
        tracing::debug!(%reason, "access token refused");
        AppError::Unauthorized("invalid or expired access token".into())
    })?;
    let now_ms = state.clock.now_ms();
    let login = match state.sessions.get(claims.sid, now_ms) {
        Some(login) => login,
        None => {
            let session = claims.sid.to_string();
            let (row, org_requires_totp, expires_at_ms) = state
                .store
                .read(move |conn| Ok(store::auth::active_session(conn, &session, now_ms)?))
                .await?
                .ok_or_else(|| AppError::Unauthorized("login has ended".into()))?;
            let account = store::accounts::Account::try_from(&row)?;
            let login = ConfirmedLogin {
                caller: Caller {
                    id: account.id,
                    role: account.role,
                    org_id: account.org_id,
                    display_name: account.display_name,
                    email: account.email,
                    session_id: claims.sid,
                },
                org_requires_totp,
                totp_enabled: row.totp_enabled,
            };
            state
                .sessions
                .put(claims.sid, login.clone(), expires_at_ms, now_ms);
            login
        }
    };
    if login.caller.id != claims.sub {
        return Err(AppError::Unauthorized("invalid access token".into()));
    }
    // Canvassers are never asked for a second factor: check-in must stay one tap.
    if login.org_requires_totp
        && login.caller.role == Role::Organiser
        && !login.totp_enabled
        && !allowed_before_enrollment
    {
        return Err(AppError::TotpEnrollmentRequired);
    }
    Ok(login.caller)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        inner: Option<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        count: u32,
    }

    fn field(body: &str) -> String {
        match parse_json::<Body>(body.as_bytes()) {
            Err(AppError::Validation(errors)) => errors[0].field.clone(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn names_the_field() {
        assert_eq!(field(r#"{"name": 3}"#), "name");
        assert_eq!(field(r#"{"name": "a", "grace_s": 3}"#), "grace_s");
        assert_eq!(field(r#"{}"#), "name");
        assert_eq!(
            field(r#"{"name": "a", "inner": {"count": -1}}"#),
            "inner.count"
        );
        assert_eq!(field(r#"{"name": "a", "inner": {"x": 1}}"#), "inner.x");
    }

    #[test]
    fn malformed_is_bad_request() {
        for body in ["", "{", r#"{"name": "a"} trailing"#, "nul"] {
            assert!(
                matches!(
                    parse_json::<Body>(body.as_bytes()),
                    Err(AppError::BadRequest(_))
                ),
                "{body}"
            );
        }
    }
}
