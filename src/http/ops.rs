//! Operations endpoints at the root: `/healthz`, `/readyz`, `/metrics`.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::problem::{Problem, PROBLEM_JSON, PROBLEM_TYPE_BASE};
use crate::error::AppError;
use crate::scheduler::health;
use crate::state::AppState;
use crate::telemetry;

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready to serve: the database answers, its schema is current, the scheduler loop is alive
/// and keeps up (no deadline 5 s overdue). 503 otherwise, with the reason.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "ready: `database`, `migrations`, `scheduler`, `lag_ms`"),
              (status = 503, content_type = "application/problem+json",
               description = "not ready: `detail` says why; the same members as when ready")))]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let health = health::check(&state).await;
    let mut body = json!({
        "database": if health.database_reachable { "ok" } else { "unreachable" },
        "migrations": match health.migrations_current {
            Some(true) => "current",
            Some(false) => "pending",
            None => "unknown",
        },
        "scheduler": health.scheduler.as_str(),
        "lag_ms": health.lag_ms,
    });
    match health.reason().filter(|_| !health.ready()) {
        None => {
            body["status"] = json!("ready");
            HttpResponse::Ok().json(body)
        }
        // A problem document (so the error middleware passes it on as it is), with the
        // figures above as extension members.
        Some(reason) => {
            body["type"] = json!(format!("{PROBLEM_TYPE_BASE}not-ready"));
            body["title"] = json!("Not Ready");
            body["status"] = json!(503);
            body["detail"] = json!(reason);
            HttpResponse::ServiceUnavailable()
                .content_type(PROBLEM_JSON)
                .json(body)
        }
    }
}

/// Prometheus text format, for `Authorization: Bearer <server.metrics_token>` (404 without a
/// token configured, or when `server.metrics_bind` serves it elsewhere).
#[utoipa::path(get, path = "/metrics", tag = "operations", security(("bearer" = [])),
    responses((status = 200, content_type = "text/plain", description = "Prometheus text format"),
              (status = 401, description = "missing or wrong metrics token", body = Problem),
              (status = 404, description = "no metrics token configured", body = Problem)))]
pub async fn metrics_text(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, AppError> {
    let server = &state.settings.server;
    let expected = match (&server.metrics_token, &server.metrics_bind) {
        (Some(token), None) => token,
        _ => return Err(AppError::NotFound("page")),
    };
    let presented = super::extract::bearer_token(&req).unwrap_or_default();
    // Compared as digests: equal lengths, and no early exit on the secret's own bytes.
    use sha2::{Digest, Sha256};
    if Sha256::digest(presented.as_bytes()) != Sha256::digest(expected.as_bytes()) {
        return Err(AppError::Unauthorized("metrics token required".into()));
    }
    render_metrics(&state).await
}

/// `/metrics` on `server.metrics_bind`: no token (the address is the protection).
pub async fn metrics_on_private_bind(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    render_metrics(&state).await
}

async fn render_metrics(state: &AppState) -> Result<HttpResponse, AppError> {
    let gauges = state
        .store
        .read(|conn| Ok(crate::store::stats::gauges(conn)?))
        .await?;
    metrics::gauge!("doorstep_active_outings").set(gauges.active_outings as f64);
    metrics::gauge!("doorstep_open_alerts", "level" => "1").set(gauges.open_alerts_level1 as f64);
    metrics::gauge!("doorstep_open_alerts", "level" => "2").set(gauges.open_alerts_level2 as f64);
    let text = telemetry::metrics_handle()
        .map(|h| h.render())
        .unwrap_or_default();
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(text))
}
