//! Two-factor authentication: enrollment, login with TOTP and recovery codes, replay, rate
//! limits, organisations that require it, and turning it off.
//!
//! Codes are generated here with totp-rs from the secret the server returns, at the server's
//! clock; moving that clock forward by one step (30 s) gives a fresh code.

use doorstep::domain::account::Role;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use totp_rs::{Builder, Secret};

use crate::helpers::{spawn_app, spawn_app_with, Backend, TestApp, PASSWORD};
use crate::on_both_backends;

on_both_backends!(
    enroll_confirm_and_log_in_with_a_code,
    a_code_is_accepted_once_even_by_concurrent_logins,
    recovery_codes_work_once,
    a_wrong_password_with_a_right_code_looks_like_an_unknown_email,
    wrong_codes_count_against_the_email_limit,
    canvassers_cannot_enroll,
    organisation_can_require_totp_of_its_organisers,
    disable_with_a_code_or_a_recovery_code,
    totp_endpoints_are_in_the_openapi_document,
);

const LOGIN: &str = "/api/v1/auth/login";

fn code_at(secret: &str, at_s: i64) -> String {
    Builder::new()
        .with_secret(Secret::try_from_base32(secret).expect("base32 secret"))
        .build()
        .expect("standard TOTP")
        .generate(at_s as u64)
        .to_string()
}

fn now_s(app: &TestApp) -> i64 {
    app.state.clock.now().timestamp()
}

/// The code of the current step of the server's clock.
fn current_code(app: &TestApp, secret: &str) -> String {
    code_at(secret, now_s(app))
}

/// A six-digit code valid at no step near now.
fn wrong_code(app: &TestApp, secret: &str) -> String {
    let now = now_s(app);
    let near: Vec<String> = (-2..=2).map(|i| code_at(secret, now + 30 * i)).collect();
    (0..)
        .map(|n: u32| format!("{:06}", (n * 7919 + 123_456) % 1_000_000))
        .find(|c| !near.contains(c))
        .unwrap()
}

/// Moves the server's clock to the next TOTP step, so a new code is not a replay.
fn next_step(app: &TestApp) {
    app.state.clock.advance(chrono::Duration::seconds(30));
}

fn problem_type(body: &Value) -> &str {
    body["type"].as_str().unwrap_or_default()
}

async fn login_with(
    app: &TestApp,
    email: &str,
    password: &str,
    extra: Value,
) -> (StatusCode, Value) {
    let mut body = json!({"email": email, "password": password});
    for (k, v) in extra.as_object().expect("extra is an object") {
        body[k] = v.clone();
    }
    app.post(LOGIN, None, body).await
}

async fn enroll(app: &TestApp, token: &str) -> String {
    let (status, body) = app
        .post(
            "/api/v1/me/totp",
            Some(token),
            json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["secret"].as_str().expect("secret").to_owned()
}

/// Enrolls and confirms; returns the secret and the recovery codes. The clock is then one step
/// on, so the next code is fresh.
async fn enable_totp(app: &TestApp, token: &str) -> (String, Vec<String>) {
    let secret = enroll(app, token).await;
    let (status, body) = app
        .post(
            "/api/v1/me/totp/confirm",
            Some(token),
            json!({"code": current_code(app, &secret)}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let codes = body["recovery_codes"]
        .as_array()
        .expect("recovery codes")
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    next_step(app);
    (secret, codes)
}

async fn organiser_in_new_org(app: &TestApp, admin: &str) -> (String, crate::helpers::TestUser) {
    let org = app.create_org(admin, "Riverside Greens").await;
    let organiser = app
        .create_user(admin, Role::Organiser, Some(&org), "Olive")
        .await;
    (org, organiser)
}

async fn enroll_confirm_and_log_in_with_a_code(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let (_, organiser) = organiser_in_new_org(&app, &admin.token).await;
    let token = organiser.token.as_str();

    let (status, me) = app.get("/api/v1/me", token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["totp_enabled"], false);

    let (status, enrolled) = app
        .post(
            "/api/v1/me/totp",
            Some(token),
            json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{enrolled}");
    let first_secret = enrolled["secret"].as_str().unwrap().to_owned();
    let url = enrolled["otpauth_url"].as_str().unwrap();
    assert!(url.starts_with("otpauth://totp/Doorstep:"), "{url}");
    assert!(url.contains(&format!("secret={first_secret}")), "{url}");
    assert!(url.contains("issuer=Doorstep"), "{url}");

    // Pending, not enabled: the password alone still logs in.
    let (status, _) = login_with(&app, &organiser.email, PASSWORD, json!({})).await;
    assert_eq!(status, StatusCode::OK);

    // Enrolling again before confirming replaces the secret.
    let secret = enroll(&app, token).await;
    assert_ne!(secret, first_secret);
    let old_code = current_code(&app, &first_secret);
    if old_code != current_code(&app, &secret) {
        let (status, problem) = app
            .post(
                "/api/v1/me/totp/confirm",
                Some(token),
                json!({"code": old_code}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    }

    let (status, problem) = app
        .post(
            "/api/v1/me/totp/confirm",
            Some(token),
            json!({"code": wrong_code(&app, &secret)}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "code");

    let (status, confirmed) = app
        .post(
            "/api/v1/me/totp/confirm",
            Some(token),
            json!({"code": current_code(&app, &secret)}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{confirmed}");
    let codes = confirmed["recovery_codes"].as_array().unwrap();
    assert_eq!(codes.len(), 10);
    let mut distinct: Vec<&str> = codes.iter().map(|c| c.as_str().unwrap()).collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 10, "recovery codes are distinct");
    for code in &distinct {
        assert_eq!(code.len(), 14, "{code}");
        assert_eq!(code.matches('-').count(), 2, "{code}");
    }

    // Enabled now: enrolling or confirming again is a conflict.
    let (status, _) = app
        .post(
            "/api/v1/me/totp",
            Some(token),
            json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = app
        .post(
            "/api/v1/me/totp/confirm",
            Some(token),
            json!({"code": current_code(&app, &secret)}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, me) = app.get("/api/v1/me", token).await;
    assert_eq!(me["totp_enabled"], true);

    // The code that confirmed is spent; a fresh step gives a fresh code.
    next_step(&app);

    let (status, problem) = login_with(&app, &organiser.email, PASSWORD, json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");
    assert!(
        problem_type(&problem).ends_with("/totp-required"),
        "{problem}"
    );

    let code = current_code(&app, &secret);
    let (status, tokens) =
        login_with(&app, &organiser.email, PASSWORD, json!({"totp_code": code})).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let (status, _) = app
        .get("/api/v1/me", tokens["access_token"].as_str().unwrap())
        .await;
    assert_eq!(status, StatusCode::OK);

    // The same code again, still within its step: a replay.
    let (status, problem) =
        login_with(&app, &organiser.email, PASSWORD, json!({"totp_code": code})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        problem_type(&problem).ends_with("/totp-invalid"),
        "{problem}"
    );

    let (status, problem) = login_with(
        &app,
        &organiser.email,
        PASSWORD,
        json!({"totp_code": wrong_code(&app, &secret)}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        problem_type(&problem).ends_with("/totp-invalid"),
        "{problem}"
    );

    for bad in ["", "12345", "1234567", "abcdef"] {
        let (status, problem) =
            login_with(&app, &organiser.email, PASSWORD, json!({"totp_code": bad})).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{bad:?}");
        assert!(
            problem_type(&problem).ends_with("/totp-invalid"),
            "{problem}"
        );
    }

    // Both kinds of code at once is a malformed request.
    let (status, problem) = login_with(
        &app,
        &organiser.email,
        PASSWORD,
        json!({"totp_code": "123456", "recovery_code": "abcd-efgh-jkmn"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    // Unknown fields are still refused.
    let (status, _) = login_with(&app, &organiser.email, PASSWORD, json!({"otp": "123456"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // The next step's code works (with spaces, as apps display it).
    next_step(&app);
    let code = current_code(&app, &secret);
    let spaced = format!("{} {}", &code[..3], &code[3..]);
    let (status, body) = login_with(
        &app,
        &organiser.email,
        PASSWORD,
        json!({"totp_code": spaced}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn a_code_is_accepted_once_even_by_concurrent_logins(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let (secret, _) = enable_totp(&app, &admin.token).await;
    let code = current_code(&app, &secret);
    let body = json!({"email": admin.email, "password": PASSWORD, "totp_code": code});
    let (a, b) = tokio::join!(
        app.post(LOGIN, None, body.clone()),
        app.post(LOGIN, None, body.clone())
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::UNAUTHORIZED],
        "{} / {}",
        a.1,
        b.1
    );
}

async fn recovery_codes_work_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let (_, codes) = enable_totp(&app, &admin.token).await;

    let (status, body) = login_with(
        &app,
        &admin.email,
        PASSWORD,
        json!({"recovery_code": codes[0]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, problem) = login_with(
        &app,
        &admin.email,
        PASSWORD,
        json!({"recovery_code": codes[0]}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a recovery code works once"
    );
    assert!(
        problem_type(&problem).ends_with("/totp-invalid"),
        "{problem}"
    );

    // Typed without dashes and in capitals, as people do.
    let typed = codes[1].replace('-', "").to_uppercase();
    let (status, body) = login_with(
        &app,
        &admin.email,
        PASSWORD,
        json!({"recovery_code": typed}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    for bad in ["zzzz-zzzz-zzzz", "not a code", ""] {
        let (status, problem) =
            login_with(&app, &admin.email, PASSWORD, json!({"recovery_code": bad})).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{bad:?}");
        assert!(
            problem_type(&problem).ends_with("/totp-invalid"),
            "{problem}"
        );
    }
}

async fn a_wrong_password_with_a_right_code_looks_like_an_unknown_email(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let (secret, codes) = enable_totp(&app, &admin.token).await;
    let code = current_code(&app, &secret);

    let (wrong_status, wrong) = login_with(
        &app,
        &admin.email,
        "not the password",
        json!({"totp_code": code}),
    )
    .await;
    let (wrong_rc_status, wrong_rc) = login_with(
        &app,
        &admin.email,
        "not the password",
        json!({"recovery_code": codes[0]}),
    )
    .await;
    let (bare_status, bare) = login_with(&app, &admin.email, "not the password", json!({})).await;
    let (unknown_status, unknown) = login_with(
        &app,
        "nobody@example.org",
        "not the password",
        json!({"totp_code": code}),
    )
    .await;
    for status in [wrong_status, wrong_rc_status, bare_status, unknown_status] {
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        wrong, unknown,
        "nothing tells that the password was wrong but 2FA is on"
    );
    assert_eq!(wrong_rc, unknown);
    assert_eq!(bare, unknown);
    assert!(
        problem_type(&unknown).ends_with("/unauthorized"),
        "{unknown}"
    );

    // A wrong password spends nothing: the code and the recovery code still work.
    let (status, body) = login_with(&app, &admin.email, PASSWORD, json!({"totp_code": code})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = login_with(
        &app,
        &admin.email,
        PASSWORD,
        json!({"recovery_code": codes[0]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn wrong_codes_count_against_the_email_limit(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.auth.login_max_failures_per_email = 3).await;
    let admin = app.admin().await;
    let (secret, _) = enable_totp(&app, &admin.token).await;
    // A missing code is a step of the normal flow, not a failure.
    for _ in 0..4 {
        let (status, problem) = login_with(&app, &admin.email, PASSWORD, json!({})).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(
            problem_type(&problem).ends_with("/totp-required"),
            "{problem}"
        );
    }
    for _ in 0..3 {
        let (status, problem) = login_with(
            &app,
            &admin.email,
            PASSWORD,
            json!({"totp_code": wrong_code(&app, &secret)}),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(
            problem_type(&problem).ends_with("/totp-invalid"),
            "{problem}"
        );
    }
    let (status, problem) = login_with(
        &app,
        &admin.email,
        PASSWORD,
        json!({"totp_code": current_code(&app, &secret)}),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{problem}");
}

async fn canvassers_cannot_enroll(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let (org, organiser) = organiser_in_new_org(&app, &admin.token).await;
    let canvasser = app
        .create_user(&organiser.token, Role::Canvasser, Some(&org), "Cass")
        .await;
    let (status, problem) = app
        .post(
            "/api/v1/me/totp",
            Some(&canvasser.token),
            json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    let (status, _) = app
        .post(
            "/api/v1/me/totp/confirm",
            Some(&canvasser.token),
            json!({"code": "123456"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, me) = app.get("/api/v1/me", &canvasser.token).await;
    assert_eq!(me["totp_enabled"], false);

    // Police and admins may.
    let police = app
        .create_user(&admin.token, Role::Police, None, "PC Plod")
        .await;
    enroll(&app, &police.token).await;
    enroll(&app, &admin.token).await;
}

async fn organisation_can_require_totp_of_its_organisers(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let (org, organiser) = organiser_in_new_org(&app, &admin.token).await;
    let canvasser = app
        .create_user(&organiser.token, Role::Canvasser, Some(&org), "Cass")
        .await;
    let (_, outsider) = organiser_in_new_org(&app, &admin.token).await;
    let police = app
        .create_user(&admin.token, Role::Police, None, "PC Plod")
        .await;
    let (status, _) = app
        .post(
            &format!("/api/v1/orgs/{org}/police-contacts"),
            Some(&admin.token),
            json!({"user_id": police.id}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let security = format!("/api/v1/orgs/{org}/security");

    // Who may see and change the setting.
    let (status, body) = app.get(&security, &organiser.token).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"require_totp": false}))
    );
    for (who, token, expected) in [
        ("canvasser", canvasser.token.as_str(), StatusCode::FORBIDDEN),
        (
            "assigned police",
            police.token.as_str(),
            StatusCode::FORBIDDEN,
        ),
        (
            "another org's organiser",
            outsider.token.as_str(),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let (status, _) = app.get(&security, token).await;
        assert_eq!(status, expected, "GET by {who}");
        let (status, _) = app
            .put(&security, token, json!({"require_totp": true}))
            .await;
        assert_eq!(status, expected, "PUT by {who}");
    }
    let (status, problem) = app
        .put(&security, &admin.token, json!({"require_totp": "yes"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let (status, body) = app
        .put(&security, &admin.token, json!({"require_totp": true}))
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"require_totp": true}))
    );
    let (_, body) = app.get(&security, &admin.token).await;
    assert_eq!(body, json!({"require_totp": true}));

    // The organiser without TOTP: already-issued tokens and fresh logins alike are held at
    // the enrollment door.
    let fresh = app.login(&organiser.email, PASSWORD).await;
    for token in [organiser.token.as_str(), fresh.access.as_str()] {
        let (status, problem) = app
            .post(
                "/api/v1/users",
                Some(token),
                json!({"email": "new@example.org", "password": PASSWORD,
                       "display_name": "New", "role": "canvasser"}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
        assert!(
            problem_type(&problem).ends_with("/totp-enrollment-required"),
            "{problem}"
        );
        let (status, problem) = app.get(&format!("/api/v1/orgs/{org}"), token).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(
            problem_type(&problem).ends_with("/totp-enrollment-required"),
            "{problem}"
        );
        let (status, me) = app.get("/api/v1/me", token).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(me["totp_enabled"], false);
    }
    // Canvassers are never asked; the other organisation is not affected.
    let (status, _) = app
        .get(&format!("/api/v1/orgs/{org}"), &canvasser.token)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.get("/api/v1/outings", &canvasser.token).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.get("/api/v1/outings", &outsider.token).await;
    assert_eq!(status, StatusCode::OK);

    // Enrolling and confirming is allowed, and lifts the hold.
    let (secret, codes) = enable_totp(&app, &organiser.token).await;
    let (status, body) = app
        .post(
            "/api/v1/users",
            Some(&organiser.token),
            json!({"email": "new@example.org", "password": PASSWORD,
                   "display_name": "New", "role": "canvasser"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _) = app
        .get(&format!("/api/v1/orgs/{org}"), &organiser.token)
        .await;
    assert_eq!(status, StatusCode::OK);

    // It cannot be turned off while the organisation requires it.
    let (status, problem) = app
        .call(
            Method::DELETE,
            "/api/v1/me/totp",
            Some(&organiser.token),
            Some(json!({"password": PASSWORD, "code": current_code(&app, &secret)})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    let (status, problem) = app
        .call(
            Method::DELETE,
            "/api/v1/me/totp",
            Some(&organiser.token),
            Some(json!({"password": PASSWORD, "code": codes[0]})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");

    // Once the organisation stops requiring it, the organiser may turn it off.
    let (status, _) = app
        .put(&security, &organiser.token, json!({"require_totp": false}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, problem) = app
        .call(
            Method::DELETE,
            "/api/v1/me/totp",
            Some(&organiser.token),
            Some(json!({"password": PASSWORD, "code": current_code(&app, &secret)})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{problem}");
    app.login(&organiser.email, PASSWORD).await;
}

async fn disable_with_a_code_or_a_recovery_code(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let delete = |token: String, code: String| {
        let app = &app;
        async move {
            app.call(
                Method::DELETE,
                "/api/v1/me/totp",
                Some(&token),
                Some(json!({"password": PASSWORD, "code": code })),
            )
            .await
        }
    };

    let (status, _) = delete(admin.token.clone(), "123456".into()).await;
    assert_eq!(status, StatusCode::CONFLICT, "nothing to disable yet");

    let (secret, codes) = enable_totp(&app, &admin.token).await;
    let (status, problem) = delete(admin.token.clone(), wrong_code(&app, &secret)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "code");
    let (status, _) = delete(admin.token.clone(), "zzzz-zzzz-zzzz".into()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // A recovery code turns it off.
    let (status, problem) = delete(admin.token.clone(), codes[0].clone()).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{problem}");
    let (_, me) = app.get("/api/v1/me", &admin.token).await;
    assert_eq!(me["totp_enabled"], false);
    app.login(&admin.email, PASSWORD).await;
    let (status, _) = delete(admin.token.clone(), codes[1].clone()).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Enabled again: the old recovery codes are gone; a TOTP code turns it off.
    let (secret, _) = enable_totp(&app, &admin.token).await;
    let (status, problem) = login_with(
        &app,
        &admin.email,
        PASSWORD,
        json!({"recovery_code": codes[1]}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");
    let (status, problem) = delete(admin.token.clone(), current_code(&app, &secret)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{problem}");
    app.login(&admin.email, PASSWORD).await;

    // Wrong codes are rate limited like failed logins.
    let app = spawn_app_with(backend, |s| s.auth.login_max_failures_per_email = 2).await;
    let admin = app.admin().await;
    let (secret, _) = enable_totp(&app, &admin.token).await;
    for _ in 0..2 {
        let (status, _) = app
            .call(
                Method::DELETE,
                "/api/v1/me/totp",
                Some(&admin.token),
                Some(json!({"password": PASSWORD, "code": wrong_code(&app, &secret)})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let (status, _) = app
        .call(
            Method::DELETE,
            "/api/v1/me/totp",
            Some(&admin.token),
            Some(json!({"password": PASSWORD, "code": current_code(&app, &secret)})),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

async fn totp_endpoints_are_in_the_openapi_document(backend: Backend) {
    let app = spawn_app(backend).await;
    let doc: Value = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (path, method) in [
        ("/api/v1/me/totp", "post"),
        ("/api/v1/me/totp", "delete"),
        ("/api/v1/me/totp/confirm", "post"),
        ("/api/v1/orgs/{id}/security", "get"),
        ("/api/v1/orgs/{id}/security", "put"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing from the OpenAPI document"
        );
    }
    let login = &doc["components"]["schemas"]["LoginRequest"]["properties"];
    assert!(login["totp_code"].is_object() && login["recovery_code"].is_object());
}
