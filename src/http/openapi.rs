//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, RefOr, Response};
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
    modifiers(&BearerAuth, &FrameworkResponses, &DescribedResponses),
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

/// What every operation of a kind answers whatever its handler says, and how errors are
/// typed, written into each operation so a client (or a fuzzer checking the document against
/// the server) finds them where it looks:
/// - every problem body is `application/problem+json` (RFC 9457), which is what the server
///   sends, not `application/json`;
/// - an operation that needs a token answers 401 without a valid one (the `Caller` extractor);
/// - one with a JSON body answers 400 (malformed JSON, wrong content type), 413 (too large)
///   and 422 (a field missing, unknown or of the wrong type: `ApiJson`);
/// - one with a query string answers 400 when it does not parse (`http::query_config`);
/// - one with a path parameter answers 404 when the segment does not parse
///   (`http::path_config`).
struct FrameworkResponses;

const PROBLEM_REF: &str = "#/components/schemas/Problem";

fn problem_content() -> Content {
    Content::new(Some(RefOr::Ref(utoipa::openapi::Ref::new(PROBLEM_REF))))
}

fn is_problem(content: &RefOr<Content>) -> bool {
    matches!(content, RefOr::T(Content { schema: Some(RefOr::Ref(r)), .. }) if r.ref_location == PROBLEM_REF)
}

fn add_framework_responses(operation: &mut Operation) {
    // Problem bodies as what they are.
    for response in operation.responses.responses.values_mut() {
        if let RefOr::T(response) = response {
            let typed_as_json = response
                .content
                .get("application/json")
                .is_some_and(is_problem);
            if typed_as_json {
                if let Some(content) = response.content.shift_remove("application/json") {
                    response
                        .content
                        .insert(super::problem::PROBLEM_JSON.to_owned(), content);
                }
            }
        }
    }
    let parameters_in = |place: ParameterIn| {
        operation.parameters.iter().flatten().any(|p| match p {
            RefOr::T(p) => p.parameter_in == place,
            RefOr::Ref(_) => false,
        })
    };
    let mut statuses = Vec::new();
    if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
        statuses.push("401");
    }
    if operation.request_body.is_some() {
        statuses.extend(["400", "413", "422"]);
    }
    if parameters_in(ParameterIn::Query) {
        statuses.push("400");
    }
    if parameters_in(ParameterIn::Path) {
        statuses.push("404");
    }
    for status in statuses {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| {
                let mut response = Response::new(meaning(status));
                response.content.insert(
                    super::problem::PROBLEM_JSON.to_owned(),
                    problem_content().into(),
                );
                RefOr::T(response)
            });
    }
}

impl Modify for FrameworkResponses {
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
                add_framework_responses(operation);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn document() -> Value {
        serde_json::to_value(ApiDoc::openapi()).expect("the document serialises")
    }

    /// The document names each value as it is sent (the fuzzer found `NoSubscription`
    /// documented where `no_subscription` was sent).
    #[test]
    fn closed_value_sets_are_documented_by_their_wire_names() {
        use crate::domain::delivery::{Channel, DeliveryStatus};
        use crate::domain::incident::IncidentStatus;
        let doc = document();
        let documented = |name: &str| doc["components"]["schemas"][name]["enum"].clone();
        let wire = |names: Vec<&str>| json!(names);
        assert_eq!(
            documented("Channel"),
            wire(Channel::ALL.iter().map(|c| c.as_str()).collect())
        );
        assert_eq!(
            documented("DeliveryStatus"),
            wire(DeliveryStatus::ALL.iter().map(|c| c.as_str()).collect())
        );
        assert_eq!(
            documented("IncidentStatus"),
            wire(IncidentStatus::ALL.iter().map(|c| c.as_str()).collect())
        );
    }

    /// Problem bodies are `application/problem+json`, and what the extractors answer for any
    /// operation is documented on each.
    #[test]
    fn problem_bodies_and_framework_statuses_are_documented() {
        let doc = document();
        let paths = doc["paths"].as_object().expect("paths");
        for (path, item) in paths {
            for (method, operation) in item.as_object().expect("path item") {
                for (status, response) in operation["responses"].as_object().expect("responses") {
                    let content = response["content"].as_object();
                    assert!(
                        content.is_none_or(|c| !c.contains_key("application/json")
                            || c["application/json"]["schema"]["$ref"] != PROBLEM_REF),
                        "{method} {path} {status}: a problem typed as application/json"
                    );
                }
            }
        }
        let start = &doc["paths"]["/api/v1/outings"]["post"]["responses"];
        for status in ["400", "401", "413", "422"] {
            assert!(
                start[status]["content"]["application/problem+json"].is_object(),
                "POST /outings {status}"
            );
        }
        let one = &doc["paths"]["/api/v1/outings/{id}"]["get"]["responses"];
        assert!(one["404"].is_object() && one["401"].is_object());
    }
}
