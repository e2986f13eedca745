//! HTTP: the route table, middleware, and the mapping of everything to problem+json.

pub mod alerts;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cautions;
pub mod channels;
pub mod checks;
pub mod extract;
pub mod handoff;
pub mod incidents;
pub mod middleware;
pub mod openapi;
pub mod ops;
pub mod orgs;
pub mod outings;
pub mod pagination;
pub mod problem;
pub mod push;
pub mod sms;
pub mod totp;
pub mod users;
pub mod watch;

use actix_web::{web, HttpRequest, HttpResponse};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::error::AppError;
use problem::problem_response;

/// Every route of the service, in one place.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(ops::healthz))
        .route("/readyz", web::get().to(ops::readyz))
        .route("/metrics", web::get().to(ops::metrics_text))
        .route("/", web::get().to(app::redirect_to_app))
        .route("/app", web::get().to(app::redirect_to_app))
        .route("/app/{path:.*}", web::get().to(app::asset))
        .route("/app/{path:.*}", web::head().to(app::asset))
        .route("/handoff/{token}", web::get().to(handoff::handoff_page))
        .service(
            SwaggerUi::new("/api/v1/docs/{_:.*}")
                .url("/api/v1/openapi.json", openapi::ApiDoc::openapi()),
        )
        .service(
            web::scope("/api/v1")
                .route("/auth/login", web::post().to(auth::login))
                .route("/auth/refresh", web::post().to(auth::refresh))
                .route("/auth/logout", web::post().to(auth::logout))
                .route("/me", web::get().to(auth::me))
                .route("/me/pins", web::put().to(outings::put_pins))
                .route("/me/totp", web::post().to(totp::enroll))
                .route("/me/totp", web::delete().to(totp::disable))
                .route("/me/totp/confirm", web::post().to(totp::confirm))
                .route("/me/channels", web::get().to(channels::get_channels))
                .route("/me/channels", web::put().to(channels::put_channels))
                .route("/users", web::post().to(users::create_user))
                .route("/users", web::get().to(users::list_users))
                .route("/users/{id}", web::patch().to(users::patch_user))
                .route(
                    "/users/{id}/password",
                    web::post().to(users::reset_password),
                )
                .route("/users/{id}/disable", web::post().to(users::disable_user))
                .route("/users/{id}/enable", web::post().to(users::enable_user))
                .route("/me/password", web::post().to(users::change_own_password))
                .route("/orgs", web::post().to(orgs::create_org))
                .route("/orgs/{id}", web::get().to(orgs::get_org))
                .route("/orgs/{id}", web::patch().to(orgs::update_org))
                .route(
                    "/orgs/{id}/escalation-policy",
                    web::put().to(orgs::put_policy),
                )
                .route("/orgs/{id}/security", web::get().to(orgs::get_security))
                .route("/orgs/{id}/security", web::put().to(orgs::put_security))
                .route(
                    "/orgs/{id}/webhook",
                    web::put().to(channels::put_org_webhook),
                )
                .route(
                    "/orgs/{id}/webhook",
                    web::delete().to(channels::delete_org_webhook),
                )
                .route(
                    "/orgs/{id}/police-contacts",
                    web::post().to(orgs::add_police_contact),
                )
                .route(
                    "/orgs/{id}/police-contacts/{user_id}",
                    web::delete().to(orgs::remove_police_contact),
                )
                .route(
                    "/orgs/{id}/cautions",
                    web::post().to(cautions::mark_caution),
                )
                .route(
                    "/orgs/{id}/cautions",
                    web::get().to(cautions::list_cautions),
                )
                .route(
                    "/orgs/{id}/cautions/{caution_id}",
                    web::delete().to(cautions::retire_caution),
                )
                .route(
                    "/orgs/{id}/cautions/{caution_id}/renew",
                    web::post().to(cautions::renew_caution),
                )
                .route("/incidents", web::post().to(incidents::report_incident))
                .route("/incidents", web::get().to(incidents::list_incidents))
                .route("/incidents/{id}", web::get().to(incidents::get_incident))
                .route(
                    "/incidents/{id}/entries",
                    web::post().to(incidents::add_incident_entry),
                )
                .route(
                    "/incidents/{id}/close",
                    web::post().to(incidents::close_incident),
                )
                .route(
                    "/incidents/{id}/export",
                    web::get().to(incidents::export_incident),
                )
                .route("/outings", web::post().to(outings::start_outing))
                .route("/outings", web::get().to(outings::list_outings))
                .route("/outings/{id}", web::get().to(outings::get_outing))
                .route("/outings/{id}/checkins", web::post().to(outings::check_in))
                .route(
                    "/outings/{id}/checkins",
                    web::get().to(outings::list_checkins),
                )
                .route(
                    "/outings/{id}/checkins/batch",
                    web::post().to(outings::check_in_batch),
                )
                .route("/outings/{id}/panic", web::post().to(outings::panic))
                .route("/outings/{id}/end", web::post().to(outings::end_outing))
                .route("/outings/{id}", web::patch().to(checks::change_outing))
                .route(
                    "/outings/{id}/check-on-me",
                    web::post().to(checks::check_on_me),
                )
                .route(
                    "/outings/{id}/welfare-check",
                    web::post().to(checks::welfare_check),
                )
                .route(
                    "/outings/{id}/welfare-reply",
                    web::post().to(checks::welfare_reply),
                )
                .route("/outings/{id}/all-clear", web::post().to(checks::all_clear))
                .route("/me/sms-test", web::post().to(channels::sms_test))
                .route("/sms/inbound", web::post().to(sms::inbound))
                .route("/sms/status", web::post().to(sms::sms_status))
                .route("/voice/gather", web::post().to(sms::gather))
                .route("/voice/status", web::post().to(sms::voice_status))
                .route("/alerts", web::get().to(alerts::list_alerts))
                .route("/alerts/{id}", web::get().to(alerts::get_alert))
                .route("/alerts/{id}/ack", web::post().to(alerts::acknowledge))
                .route("/alerts/{id}/resolve", web::post().to(alerts::resolve))
                .route(
                    "/alerts/{id}/handoff",
                    web::post().to(handoff::create_handoff),
                )
                .route(
                    "/alerts/{id}/handoff",
                    web::delete().to(handoff::revoke_handoff),
                )
                .route(
                    "/push/vapid-public-key",
                    web::get().to(push::vapid_public_key),
                )
                .route("/push/subscriptions", web::post().to(push::subscribe))
                .route(
                    "/push/subscriptions",
                    web::get().to(push::list_subscriptions),
                )
                .route(
                    "/push/subscriptions/{id}",
                    web::delete().to(push::unsubscribe),
                )
                .route("/push/test", web::post().to(push::test_push))
                .route("/watch/overdue", web::get().to(watch::overdue))
                .route("/watch/planned", web::get().to(watch::planned))
                .route("/watch/stream", web::get().to(watch::stream))
                .route("/audit", web::get().to(audit::list)),
        )
        .default_service(web::to(not_found));
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    problem_response(
        actix_web::http::StatusCode::NOT_FOUND,
        "not-found",
        "Not found",
        &format!("no route for {} {}", req.method(), req.path()),
    )
}

/// Query strings that do not parse are the client's mistake.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|err, _| AppError::BadRequest(format!("invalid query string: {err}")).into())
}

/// Path segments that do not parse name nothing.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|_, _| AppError::NotFound("resource").into())
}
