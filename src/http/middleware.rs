//! Cross-cutting middleware: request metrics, security headers, and problem+json for errors
//! that the framework produces itself (405, unmatched routes inside scopes).

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers, Next};
use actix_web::Error;

use super::problem::{problem_response, PROBLEM_JSON};

/// Counts requests and records latency by method, route pattern and status.
pub async fn record_metrics(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let method = req.method().to_string();
    // The pattern, not the path: ids in paths would explode the label set.
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.call(req).await?;
    let status = response.status().as_u16().to_string();
    let elapsed = started.elapsed().as_secs_f64();
    metrics::counter!("doorstep_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("doorstep_http_request_duration_seconds", "method" => method, "route" => route).record(elapsed);
    Ok(response)
}

/// The app's policy: its own files only (no inline script or style, nothing from elsewhere).
pub const APP_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; worker-src 'self'; manifest-src 'self'; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";

/// Headers every response carries. API responses are never cached and never framed.
/// The API docs page (Swagger UI, served from the binary): its own files only, no inline
/// script; inline styles because the page sets them.
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// The hand-off page (`/handoff/<token>`, opened without an account, maybe on a shared
/// control-room screen): no script at all, its inline style and inline SVG only, nothing
/// fetched, never framed; not indexed, not cached, and its URL (the token) never sent on as a
/// referrer.
pub const HANDOFF_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let is_docs = req.path().starts_with("/api/v1/docs");
    let is_app = req.path().starts_with("/app/");
    let is_handoff = req.path().starts_with("/handoff/");
    // Browsers that reached us over https once keep to it (only when the operator says the
    // public address is https: HSTS over a plain-http deployment would lock users out).
    let hsts = req
        .app_data::<actix_web::web::Data<crate::state::AppState>>()
        .and_then(|state| state.settings.server.public_url.as_deref())
        .is_some_and(|url| url.starts_with("https://"));
    let mut response = next.call(req).await?;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if is_app {
        // The app's files carry their own Cache-Control (revalidated, see http/app.rs).
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(APP_CSP),
        );
        if !headers.contains_key(header::CACHE_CONTROL) {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
    } else if is_handoff {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(HANDOFF_CSP),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(
            header::HeaderName::from_static("x-robots-tag"),
            HeaderValue::from_static("noindex, nofollow"),
        );
    } else if is_docs {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(DOCS_CSP),
        );
    } else {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if hsts {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    Ok(response)
}

/// Turns any error response that is not already problem+json into one. HTML error pages made
/// on purpose (the hand-off page's 404, for a browser) are left as they are.
pub fn problem_errors() -> ErrorHandlers<BoxBody> {
    ErrorHandlers::new().default_handler(|res: ServiceResponse<BoxBody>| {
        let keep = res.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
            v.as_bytes().starts_with(PROBLEM_JSON.as_bytes())
                || v.as_bytes().starts_with(b"text/html")
        });
        if keep {
            return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
        }
        let status = res.status();
        let title = status.canonical_reason().unwrap_or("Error");
        let slug = title.to_ascii_lowercase().replace(' ', "-");
        let (req, _) = res.into_parts();
        let detail = format!("{} {}", req.method(), req.path());
        let response = problem_response(status, &slug, title, &detail);
        Ok(ErrorHandlerResponse::Response(
            ServiceResponse::new(req, response).map_into_right_body(),
        ))
    })
}

/// CORS: deny by default (no cross-origin browser access); allow exactly the configured origins.
pub fn cors(allowed_origins: &[String]) -> actix_cors::Cors {
    let mut cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "DELETE"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("idempotency-key"),
        ])
        .max_age(3600);
    for origin in allowed_origins {
        cors = cors.allowed_origin(origin.trim_end_matches('/'));
    }
    cors
}
