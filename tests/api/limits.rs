//! Limits that hold under concurrency, answers read to a bound, private files, and the rest of
//! the hardening of issue 23. Each test here failed on the main branch before it.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::flood_endpoint::{rss_bytes, FloodEndpoint};
use crate::helpers::{spawn_app, spawn_app_with, wait_for, Backend, TestApp, PASSWORD};
use crate::on_both_backends;
use crate::outings::org;
use crate::push_receiver::PushReceiver;
use crate::smtp_sink::SmtpSink;
use crate::webhook_receiver::{verify, WebhookReceiver};

on_both_backends!(
    concurrent_wrong_passwords_are_capped,
    sixty_logins_from_one_office_address_succeed,
    guesses_from_one_address_do_not_lock_out_another,
    a_client_cannot_choose_its_address_behind_the_proxy,
    a_distributed_guesser_is_slowed_not_the_owner_locked_out,
    a_huge_error_body_is_read_to_a_bound,
    every_ssrf_form_is_refused,
    files_are_owner_only,
    personal_webhooks_have_their_own_secrets,
    a_push_endpoint_is_not_taken_over,
    push_tests_are_limited,
    smtp_needs_starttls_by_default,
    docs_page_csp_and_hsts,
    organisers_cannot_probe_emails,
);

/// A login from `address` (the server believes `X-Forwarded-For` in these tests).
async fn login_from(
    app: &TestApp,
    email: &str,
    password: &str,
    address: &str,
) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/auth/login"))
        .header("x-forwarded-for", address)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

async fn behind_proxy(backend: Backend) -> TestApp {
    spawn_app_with(backend, |s| s.server.trust_forwarded_for = true).await
}

async fn concurrent_wrong_passwords_are_capped(backend: Backend) {
    let app = behind_proxy(backend).await;
    let admin = app.admin().await;
    let guesses = (0..40).map(|i| {
        let (app, email) = (&app, admin.email.clone());
        async move {
            login_from(app, &email, &format!("wrong guess {i}"), "203.0.113.7")
                .await
                .status()
        }
    });
    let answers = futures_util::future::join_all(guesses).await;
    let checked = answers
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let refused = answers
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(checked, 10, "the limit is 10: {answers:?}");
    assert_eq!(refused, 30, "{answers:?}");
}

async fn sixty_logins_from_one_office_address_succeed(backend: Backend) {
    let app = behind_proxy(backend).await;
    let admin = app.admin().await;
    for i in 0..60 {
        let resp = login_from(&app, &admin.email, PASSWORD, "198.51.100.20").await;
        assert_eq!(resp.status(), StatusCode::OK, "volunteer {i}");
    }
}

async fn guesses_from_one_address_do_not_lock_out_another(backend: Backend) {
    let app = behind_proxy(backend).await;
    let admin = app.admin().await;
    for _ in 0..10 {
        let resp = login_from(&app, &admin.email, "guess guess", "203.0.113.66").await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let resp = login_from(&app, &admin.email, PASSWORD, "203.0.113.66").await;
    assert_eq!(
        resp.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the guessing address is refused for this account"
    );
    let resp = login_from(&app, &admin.email, PASSWORD, "198.51.100.9").await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "the right password from elsewhere still works"
    );
}

/// Behind a proxy that appends to `X-Forwarded-For` (nginx's `$proxy_add_x_forwarded_for`),
/// the client's own entries come first: varying them must not escape the per-address limit.
async fn a_client_cannot_choose_its_address_behind_the_proxy(backend: Backend) {
    let app = behind_proxy(backend).await;
    let admin = app.admin().await;
    for i in 0..10 {
        let forged = format!("198.51.100.{i}, 203.0.113.66");
        let resp = login_from(&app, &admin.email, "guess guess", &forged).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let resp = login_from(&app, &admin.email, PASSWORD, "198.51.100.200, 203.0.113.66").await;
    assert_eq!(
        resp.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the proxy saw one address: its guesses count together"
    );
    let resp = login_from(&app, &admin.email, PASSWORD, "203.0.113.66, 198.51.100.9").await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "another address of the proxy's still works"
    );
}

async fn a_distributed_guesser_is_slowed_not_the_owner_locked_out(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.server.trust_forwarded_for = true;
        s.auth.login_slow_after_failures = 5;
        s.auth.login_slow_interval_ms = 1_500;
    })
    .await;
    let admin = app.admin().await;
    for i in 0..5 {
        let resp = login_from(&app, &admin.email, "guess guess", &format!("203.0.113.{i}")).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    // Under attack: one attempt per 1.5 s on the account, from anywhere.
    let resp = login_from(&app, &admin.email, "guess guess", "203.0.113.50").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = login_from(&app, &admin.email, "guess guess", "203.0.113.51").await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    // The owner, from their own address, gets in after waiting that long.
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    let resp = login_from(&app, &admin.email, PASSWORD, "198.51.100.30").await;
    assert_eq!(resp.status(), StatusCode::OK);
}

async fn a_huge_error_body_is_read_to_a_bound(backend: Backend) {
    let flood = FloodEndpoint::start().await;
    let app = spawn_app_with(backend, |s| {
        s.push.allow_private_endpoints = true;
        s.push.poll_interval_ms = 50;
        s.push.request_timeout_ms = 5_000;
    })
    .await;
    let admin = app.admin().await;
    let org = org(&app, &admin, "Party").await;
    let before = rss_bytes();

    // A push endpoint that answers garbage: the caller's own test push goes there.
    let receiver = PushReceiver::start().await;
    let mut subscription = receiver.subscription("flooded");
    subscription["endpoint"] = json!(flood.url);
    let (status, body) = app
        .post(
            "/api/v1/push/subscriptions",
            Some(&org.organiser.token),
            subscription,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _) = app
        .post("/api/v1/push/test", Some(&org.organiser.token), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // And an organisation webhook that does the same, for a panic.
    let (status, body) = app
        .put(
            &format!("/api/v1/orgs/{}/webhook", org.id),
            &org.organiser.token,
            json!({"url": flood.url, "secret": "a webhook secret of some length"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, outing) = app
        .post(
            "/api/v1/outings",
            Some(&org.canvasser.token),
            json!({"checkin_interval_s": 600}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = app
        .post(
            &format!("/api/v1/outings/{}/panic", outing["id"].as_str().unwrap()),
            Some(&org.canvasser.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    wait_for(20, "both answers to be hung up on", || async {
        (flood.finished() >= 2).then_some(())
    })
    .await;
    // The client hung up after a few KiB (what the socket buffers hold besides), not after
    // reading 200 MiB.
    assert!(
        flood.most_written() < 32 * 1024 * 1024,
        "{} bytes were taken",
        flood.most_written()
    );
    let grown = rss_bytes().saturating_sub(before);
    eprintln!(
        "flood: {} bytes taken of {} declared; RSS grew by {} KiB",
        flood.most_written(),
        crate::flood_endpoint::DECLARED_BYTES,
        grown / 1024
    );
    assert!(grown < 150 * 1024 * 1024, "RSS grew by {grown} bytes");
}

async fn every_ssrf_form_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let org = org(&app, &admin, "Party").await;
    let receiver = PushReceiver::start().await;
    for url in [
        "https://[::ffff:0:7f00:1]/",
        "https://[64:ff9b:1::a00:1]/",
        "https://[::ffff:127.0.0.1]/",
        "https://[64:ff9b::7f00:1]/",
        "https://[fd00::1]/",
        "https://0.0.0.1/",
        "https://192.0.2.10/",
        "https://[2001:db8::1]/",
    ] {
        let mut subscription = receiver.subscription("x");
        subscription["endpoint"] = json!(url);
        let (status, body) = app
            .post(
                "/api/v1/push/subscriptions",
                Some(&org.organiser.token),
                subscription,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {body}");
        let (status, body) = app
            .put(
                "/api/v1/me/channels",
                &org.organiser.token,
                json!({"email": false, "webhook_url": url}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {body}");
        let (status, body) = app
            .put(
                &format!("/api/v1/orgs/{}/webhook", org.id),
                &org.organiser.token,
                json!({"url": url, "secret": "a webhook secret of some length"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {body}");
    }
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

async fn files_are_owner_only(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        let fresh = s.server.data_dir.join("fresh");
        if backend == Backend::Sqlite {
            s.database.url = format!("sqlite://{}", fresh.join("doorstep.db").display());
        }
        s.server.data_dir = fresh;
    })
    .await;
    let admin = app.admin().await;
    app.create_org(&admin.token, "Party").await;
    let data = app.dir.path().join("fresh");
    assert_eq!(mode(&data), 0o700, "the data folder");
    let mut files = vec![data.join("vapid-private.key")];
    if backend == Backend::Sqlite {
        for name in ["doorstep.db", "doorstep.db-wal", "doorstep.db-shm"] {
            files.push(data.join(name));
        }
    }
    for file in files {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
}

async fn personal_webhooks_have_their_own_secrets(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.push.allow_private_endpoints = true;
        s.push.poll_interval_ms = 50;
    })
    .await;
    let admin = app.admin().await;
    let org = org(&app, &admin, "Party").await;
    let second = app
        .create_user(
            &admin.token,
            doorstep::domain::account::Role::Organiser,
            Some(&org.id),
            "Second Organiser",
        )
        .await;
    let mut receivers = Vec::new();
    let mut secrets = Vec::new();
    for user in [&org.organiser, &second] {
        let receiver = WebhookReceiver::start("unknown until set").await;
        let (status, body) = app
            .put(
                "/api/v1/me/channels",
                &user.token,
                json!({"email": false, "webhook_url": receiver.url}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let secret = body["webhook_secret"]
            .as_str()
            .expect("shown once")
            .to_owned();
        assert!(secret.len() >= 32);
        receiver.set_secret(&secret);
        // Never shown again, and the same URL keeps its secret.
        let (_, channels) = app.get("/api/v1/me/channels", &user.token).await;
        assert!(channels.get("webhook_secret").is_none(), "{channels}");
        let (_, again) = app
            .put(
                "/api/v1/me/channels",
                &user.token,
                json!({"email": false, "webhook_url": receiver.url}),
            )
            .await;
        assert!(again.get("webhook_secret").is_none(), "{again}");
        receivers.push(receiver);
        secrets.push(secret);
    }
    assert_ne!(secrets[0], secrets[1], "each user has their own secret");

    let (_, outing) = app
        .post(
            "/api/v1/outings",
            Some(&org.canvasser.token),
            json!({"checkin_interval_s": 600}),
        )
        .await;
    let (status, _) = app
        .post(
            &format!("/api/v1/outings/{}/panic", outing["id"].as_str().unwrap()),
            Some(&org.canvasser.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    for (i, receiver) in receivers.iter().enumerate() {
        let request = wait_for(10, "the panic webhook", || async {
            receiver.requests().into_iter().next()
        })
        .await;
        assert!(request.verified, "signed with its owner's secret");
        let header = request.signature.clone().unwrap();
        let now = chrono::Utc::now().timestamp();
        assert!(verify(secrets[i].as_bytes(), &header, &request.body, now).is_ok());
        assert!(
            verify(secrets[1 - i].as_bytes(), &header, &request.body, now).is_err(),
            "the other user's secret cannot have made it (nor forge it)"
        );
    }
}

async fn a_push_endpoint_is_not_taken_over(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.push.allow_private_endpoints = true).await;
    let admin = app.admin().await;
    let org = org(&app, &admin, "Party").await;
    let receiver = PushReceiver::start().await;
    let subscription = receiver.subscription("olive-phone");
    let (status, _) = app
        .post(
            "/api/v1/push/subscriptions",
            Some(&org.organiser.token),
            subscription.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = app
        .post(
            "/api/v1/push/subscriptions",
            Some(&org.canvasser.token),
            subscription.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (_, mine) = app
        .get("/api/v1/push/subscriptions", &org.organiser.token)
        .await;
    assert_eq!(mine["items"].as_array().map(Vec::len), Some(1), "{mine}");
    let (_, theirs) = app
        .get("/api/v1/push/subscriptions", &org.canvasser.token)
        .await;
    assert_eq!(
        theirs["items"].as_array().map(Vec::len),
        Some(0),
        "{theirs}"
    );
    // The owner re-posting it is an update, as before.
    let (status, _) = app
        .post(
            "/api/v1/push/subscriptions",
            Some(&org.organiser.token),
            subscription,
        )
        .await;
    assert!(status.is_success());
}

async fn push_tests_are_limited(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    for _ in 0..6 {
        let (status, _) = app
            .post("/api/v1/push/test", Some(&admin.token), json!({}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    let resp = app
        .client
        .post(app.url("/api/v1/push/test"))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().contains_key("retry-after"));
}

async fn smtp_needs_starttls_by_default(backend: Backend) {
    let smtp = SmtpSink::start().await;
    let url = smtp.url();
    let app = spawn_app_with(backend, move |s| {
        s.push.poll_interval_ms = 50;
        s.push.request_timeout_ms = 2_000;
        s.smtp.url = Some(url);
        s.smtp.from = Some("Doorstep <alerts@doorstep.test>".into());
    })
    .await;
    let admin = app.admin().await;
    let org = org(&app, &admin, "Party").await;
    let (status, _) = app
        .put(
            "/api/v1/me/channels",
            &org.organiser.token,
            json!({"email": true, "webhook_url": null}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, outing) = app
        .post(
            "/api/v1/outings",
            Some(&org.canvasser.token),
            json!({"checkin_interval_s": 600}),
        )
        .await;
    let (_, alert) = app
        .post(
            &format!("/api/v1/outings/{}/panic", outing["id"].as_str().unwrap()),
            Some(&org.canvasser.token),
            json!({}),
        )
        .await;
    let alert_id = alert["id"].as_str().unwrap().to_owned();
    // The relay offers no STARTTLS: the mail is not sent in plain text.
    let error = wait_for(15, "the email attempt", || async {
        app.outbox(Some(&alert_id), None)
            .await
            .into_iter()
            .find(|r| r.channel.as_str() == "email" && r.attempts > 0)
            .and_then(|r| r.last_error)
    })
    .await;
    assert!(!error.is_empty());
    assert!(smtp.mails().is_empty(), "nothing went out in plain text");
}

async fn docs_page_csp_and_hsts(backend: Backend) {
    let app = spawn_app(backend).await;
    let resp = app
        .client
        .get(app.url("/api/v1/docs/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let csp = resp.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!resp.headers().contains_key("strict-transport-security"));

    let app = spawn_app_with(backend, |s| {
        s.server.public_url = Some("https://doorstep.example.org".into())
    })
    .await;
    let resp = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(
        resp.headers()["strict-transport-security"],
        "max-age=31536000"
    );
}

async fn organisers_cannot_probe_emails(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let ours = org(&app, &admin, "Ours").await;
    let theirs = org(&app, &admin, "Theirs").await;
    let body = |email: &str| json!({"email": email, "password": PASSWORD, "display_name": "New Person", "role": "canvasser"});
    // Someone else's member, and an address nobody has but that is unusable: the same answer.
    let (status, taken) = app
        .post(
            "/api/v1/users",
            Some(&ours.organiser.token),
            body(&theirs.canvasser.email),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{taken}");
    assert_eq!(taken["errors"][0]["field"], "email");
    assert!(!taken.to_string().contains("exists"), "{taken}");
    // Admins are told plainly.
    let mut plain = body(&theirs.canvasser.email);
    plain["org_id"] = Value::from(theirs.id.clone());
    let (status, answer) = app.post("/api/v1/users", Some(&admin.token), plain).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
}
