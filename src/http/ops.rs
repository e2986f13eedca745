//! Operations endpoints at the root: `/healthz`, `/readyz`, `/metrics`.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::problem::Problem;
use crate::error::AppError;
use crate::state::AppState;
use crate::store::Store;
use crate::telemetry;

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready to serve: the database answers, its schema is current, the scheduler loop is alive.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200), (status = 503, description = "not ready; the body says why")))]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let database = state.store.read(Store::migrations_current).await;
    let (ready, database, migrations) = match database {
        Ok(true) => (true, "ok", "current"),
        Ok(false) => (false, "ok", "pending"),
        Err(_) => (false, "unreachable", "unknown"),
    };
    // The scheduler is alive when it finished a pass recently (it passes at least every poll
    // interval, and a pass over a storm may take a few seconds).
    let scheduler = if !state.settings.scheduler.enabled {
        "disabled"
    } else {
        let last = state.scheduler.last_pass_ms();
        let allowed = 10_000 + 5 * state.settings.scheduler.poll_interval_ms as i64;
        if last > 0 && state.clock.now_ms() - last <= allowed {
            "ok"
        } else {
            "stalled"
        }
    };
    let ready = ready && scheduler != "stalled";
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "database": database,
        "migrations": migrations,
        "scheduler": scheduler,
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
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
