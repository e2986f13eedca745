//! The hourly retention job.

use crate::service::retention;

/// Runs the purge hourly until the task is dropped.
pub async fn run(state: actix_web::web::Data<crate::state::AppState>) {
    loop {
        let now_ms = state.clock.now_ms();
        let days = state.settings.privacy.location_retention_days;
        let incident_days = state.settings.privacy.incident_retention_days;
        match state
            .store
            .write(move |conn| retention::purge(conn, now_ms, days, incident_days))
            .await
        {
            Ok(purged) if purged != retention::Purged::default() => {
                tracing::info!(
                    checkins = purged.checkins,
                    alerts = purged.alerts,
                    notifications = purged.notifications,
                    "location retention applied"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "location retention failed; retrying in an hour"),
        }
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    }
}
