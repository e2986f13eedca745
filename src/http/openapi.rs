//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    alerts, audit, auth, cautions, channels, checks, handoff, incidents, ops, orgs, outings, push,
    totp, users, watch,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Doorstep API",
        description = "Safety check-ins and escalation for canvassers. Errors are RFC 9457 problem details.",
    ),
    paths(
        auth::login, auth::refresh, auth::logout, auth::me,
        totp::enroll, totp::confirm, totp::disable,
        users::create_user, users::list_users, users::patch_user, users::change_own_password,
        users::reset_password, users::disable_user, users::enable_user,
        orgs::create_org, orgs::get_org, orgs::update_org, orgs::put_policy,
        orgs::get_security, orgs::put_security,
        orgs::add_police_contact, orgs::remove_police_contact,
        outings::start_outing, outings::get_outing, outings::list_outings, outings::list_checkins,
        outings::check_in, outings::check_in_batch, outings::panic, outings::end_outing,
        outings::put_pins,
        checks::change_outing, checks::check_on_me, checks::welfare_check, checks::welfare_reply,
        checks::all_clear,
        alerts::list_alerts, alerts::get_alert, alerts::acknowledge, alerts::resolve,
        handoff::create_handoff, handoff::revoke_handoff, handoff::handoff_page,
        incidents::report_incident, incidents::list_incidents, incidents::get_incident, incidents::add_incident_entry,
        incidents::close_incident, incidents::export_incident,
        cautions::mark_caution, cautions::list_cautions, cautions::retire_caution, cautions::renew_caution,
        push::vapid_public_key, push::subscribe, push::list_subscriptions, push::unsubscribe,
        push::test_push,
        channels::get_channels, channels::put_channels, channels::sms_test, channels::put_org_webhook,
        channels::delete_org_webhook,
        watch::overdue, watch::planned, watch::stream, audit::list,
        ops::healthz, ops::readyz, ops::metrics_text,
    ),
    components(schemas(crate::http::problem::Problem, crate::domain::field_error::FieldError)),
    modifiers(&BearerAuth, &DescribedResponses),
    tags(
        (name = "auth", description = "Login, token refresh, logout, the caller, two-factor authentication"),
        (name = "users", description = "Accounts"),
        (name = "organisations", description = "Organisations, escalation policy, security settings, police contacts"),
        (name = "outings", description = "Outings, check-ins, panic, PINs"),
        (name = "alerts", description = "Alerts: list, view, acknowledge, resolve, hand over to the police"),
        (name = "handoff", description = "The hand-off page a link opens, without an account"),
        (name = "incidents", description = "The incident log shared with the party and the police"),
        (name = "cautions", description = "The do-not-knock register"),
        (name = "push", description = "Web Push: VAPID key, subscriptions, test"),
        (name = "channels", description = "Email and signed webhooks: alerts that get through when push does not"),
        (name = "watch", description = "The live board and stream for organisers and police"),
        (name = "audit", description = "Who read whose location"),
        (name = "operations", description = "Health, readiness, metrics"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// OpenAPI requires every response to be described. Where a handler's annotation gives only a
/// status and a body, the description is what that status means in this API (see the
/// Conventions of docs/api.md).
struct DescribedResponses;

fn meaning(status: &str) -> &'static str {
    match status {
        "200" => "OK",
        "201" => "Created",
        "202" => "Accepted: the work is queued",
        "204" => "Done; no body",
        "400" => "Malformed JSON or wrong content type",
        "401" => "No, invalid or expired token",
        "403" => "Authenticated, but not allowed",
        "404" => "Unknown, or not visible to the caller",
        "409" => "Conflicts with the current state",
        "413" => "Request body too large",
        "422" => "Invalid input: `errors` names each field",
        "429" => "Rate limited: see Retry-After",
        "503" => "Storage unavailable",
        _ => "See the problem details",
    }
}

impl Modify for DescribedResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                for (status, response) in operation.responses.responses.iter_mut() {
                    if let utoipa::openapi::RefOr::T(response) = response {
                        if response.description.is_empty() {
                            response.description = meaning(status).to_owned();
                        }
                    }
                }
            }
        }
    }
}
