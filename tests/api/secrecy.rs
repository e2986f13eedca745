//! Secrecy under an adversary: the person under duress (canvasser or organiser) sees no trace
//! of the alert about them; streams end with their login; PINs cannot be guessed or replaced;
//! `/metrics` is not public; a second factor cannot be enrolled with a token alone.
//!
//! Each test here failed on the main branch before these defences (issue 22).

use std::time::Duration;

use doorstep::domain::account::Role;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with, wait_for, Backend, TestApp, TestUser, PASSWORD};
use crate::on_both_backends;
use crate::outings::{org, Org};
use crate::watch::EventStream;

on_both_backends!(
    duress_leaves_no_trace_for_the_canvasser,
    duress_leaves_no_trace_for_an_organiser_who_canvasses,
    metrics_need_a_token,
    metrics_on_a_private_bind,
    stream_ends_at_logout_and_at_token_expiry,
    wrong_pins_lock_and_silently_alert_the_organisers,
    concurrent_wrong_pins_are_not_all_checked,
    changing_pins_needs_the_current_pin,
    totp_enrolment_needs_the_password,
);

const SAFE: &str = "2468";
const DURESS: &str = "1357";

async fn set_pins(app: &TestApp, token: &str) {
    let (status, body) = app
        .put(
            "/api/v1/me/pins",
            token,
            json!({"safe_pin": SAFE, "duress_pin": DURESS}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}

async fn start(app: &TestApp, token: &str) -> String {
    let (status, outing) = app
        .post(
            "/api/v1/outings",
            Some(token),
            json!({"checkin_interval_s": 600, "start_location": {"lat": 51.5, "lon": -0.1}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{outing}");
    outing["id"].as_str().unwrap().to_owned()
}

/// The open alert of `outing` as `viewer` (another organiser) sees it.
async fn open_alert_seen_by(app: &TestApp, viewer: &str, outing: &str) -> Value {
    let (status, seen) = app.get(&format!("/api/v1/outings/{outing}"), viewer).await;
    assert_eq!(status, StatusCode::OK);
    assert!(seen["open_alert"].is_object(), "{seen}");
    seen["open_alert"].clone()
}

/// Calls every read the owner can make and checks that none shows the hidden alert: no id,
/// no kind, no cursor, no count. Returns the paths read, for the failure messages.
async fn assert_no_trace(app: &TestApp, owner: &str, outing: &str, alert_id: &str, kind: &str) {
    let mut paths = vec![
        "/api/v1/me".to_owned(),
        "/api/v1/me/channels".to_owned(),
        "/api/v1/push/subscriptions".to_owned(),
        "/api/v1/outings".to_owned(),
        "/api/v1/outings?status=active".to_owned(),
        "/api/v1/outings?status=overdue".to_owned(),
        "/api/v1/outings?status=ended".to_owned(),
        format!("/api/v1/outings/{outing}"),
        format!("/api/v1/outings/{outing}/checkins"),
        "/api/v1/alerts".to_owned(),
        "/api/v1/alerts?limit=1".to_owned(),
        "/api/v1/alerts?status=open".to_owned(),
        "/api/v1/alerts?status=open&limit=1".to_owned(),
    ];
    let (_, me) = app.get("/api/v1/me", owner).await;
    if me["role"] == "organiser" {
        paths.extend([
            "/api/v1/watch/overdue".to_owned(),
            "/api/v1/audit".to_owned(),
            "/api/v1/audit?limit=1".to_owned(),
            format!("/api/v1/audit?subject_id={}", me["id"].as_str().unwrap()),
            format!("/api/v1/orgs/{}", me["org_id"].as_str().unwrap()),
        ]);
    }
    for path in &paths {
        let resp = app
            .client
            .get(app.url(path))
            .bearer_auth(owner)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let headers = format!("{:?}", resp.headers());
        let text = resp.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {text}");
        for secret in [alert_id, kind] {
            assert!(!text.contains(secret), "{path} shows {secret}: {text}");
            assert!(!headers.contains(secret), "{path} headers show {secret}");
        }
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if path.starts_with("/api/v1/alerts") || path.starts_with("/api/v1/audit") {
            let items = body["items"].as_array().unwrap();
            assert!(
                !(items.is_empty() && body["next_cursor"].is_string()),
                "{path}: an empty page with a cursor: {text}"
            );
        }
        if path.starts_with("/api/v1/alerts") {
            assert!(
                body["items"].as_array().unwrap().is_empty(),
                "{path}: {text}"
            );
            assert!(body["next_cursor"].is_null(), "{path}: {text}");
        }
        if path == "/api/v1/watch/overdue" {
            assert!(
                body["items"].as_array().unwrap().is_empty(),
                "{path}: {text}"
            );
        }
        if path.starts_with("/api/v1/audit") {
            for row in body["items"].as_array().unwrap() {
                assert_ne!(row["alert_id"], alert_id, "{path}: {row}");
            }
        }
    }
    let (status, _) = app.get(&format!("/api/v1/alerts/{alert_id}"), owner).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the alert itself");
    let (status, _) = app
        .post(
            &format!("/api/v1/alerts/{alert_id}/ack"),
            Some(owner),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "acknowledging it");
    // Nothing was sent to the owner's own devices or channels.
    let me_id = me["id"].as_str().unwrap().to_owned();
    let rows = app.outbox(Some(alert_id), None).await;
    assert!(!rows.is_empty(), "the alert went to someone");
    assert!(
        rows.iter()
            .all(|r| r.recipient_id.map(|u| u.to_string()).as_deref() != Some(me_id.as_str())),
        "a message about the alert was addressed to its owner"
    );
}

async fn duress_leaves_no_trace_for_the_canvasser(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let org = org(&app, &admin, "Party").await;
    let owner = &org.canvasser.token;
    set_pins(&app, owner).await;
    // An earlier, visible alert: a page of one must not carry a cursor to the hidden one.
    let earlier = start(&app, owner).await;
    let (status, _) = app
        .post(
            &format!("/api/v1/outings/{earlier}/panic"),
            Some(owner),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = app
        .post(
            &format!("/api/v1/outings/{earlier}/end"),
            Some(owner),
            json!({"pin": SAFE}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let panic_alert = app.outbox(None, Some(&earlier)).await;
    assert!(!panic_alert.is_empty());
    let (_, panics) = app.get("/api/v1/alerts", &org.organiser.token).await;
    let panic_id = panics["items"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) = app
        .post(
            &format!("/api/v1/alerts/{panic_id}/resolve"),
            Some(&org.organiser.token),
            json!({"outcome": "safe"}),
        )
        .await;
    assert!(status.is_success() || status == StatusCode::CONFLICT);

    let outing = start(&app, owner).await;
    let (status, answer) = app
        .post(
            &format!("/api/v1/outings/{outing}/checkins"),
            Some(owner),
            json!({"lat": 51.5, "lon": -0.1, "pin": DURESS}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let alert = open_alert_seen_by(&app, &org.organiser.token, &outing).await;
    assert_eq!(alert["kind"], "duress");
    let alert_id = alert["id"].as_str().unwrap().to_owned();
    assert!(!answer.to_string().contains(&alert_id));
    // The police read it (an audited read of the owner's location).
    let (status, _) = app
        .get(&format!("/api/v1/alerts/{alert_id}"), &org.police.token)
        .await;
    assert_eq!(status, StatusCode::OK);

    // The owner's alert list: the earlier panic, no cursor, nothing else.
    let (_, page) = app.get("/api/v1/alerts?limit=1", owner).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(page["items"][0]["id"], panic_id.as_str());
    assert!(
        page["next_cursor"].is_null(),
        "a cursor past the last visible alert: {page}"
    );
    // Every other read of theirs: no trace (the earlier alert is visible, so list only the
    // outing's own state here).
    let (_, seen) = app.get(&format!("/api/v1/outings/{outing}"), owner).await;
    assert_eq!(seen["status"], "active");
    assert!(seen["open_alert"].is_null());
    let (status, _) = app.get(&format!("/api/v1/alerts/{alert_id}"), owner).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let rows = app.outbox(Some(&alert_id), None).await;
    assert!(rows.iter().all(
        |r| r.recipient_id.map(|u| u.to_string()).as_deref() != Some(org.canvasser.id.as_str())
    ));

    // A second canvasser with nothing but a duress alert: every read shows nothing.
    let other = &org.other_canvasser.token;
    set_pins(&app, other).await;
    let outing = start(&app, other).await;
    let (status, _) = app
        .post(
            &format!("/api/v1/outings/{outing}/end"),
            Some(other),
            json!({"pin": DURESS}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, seen) = app
        .get(&format!("/api/v1/outings/{outing}"), &org.organiser.token)
        .await;
    let alert_id = seen["open_alert"]["id"].as_str().unwrap().to_owned();
    assert_no_trace(&app, other, &outing, &alert_id, "duress").await;
}

/// An organiser of `org` who also canvasses.
async fn second_organiser(app: &TestApp, admin: &TestUser, org: &Org) -> TestUser {
    app.create_user(
        &admin.token,
        Role::Organiser,
        Some(&org.id),
        "Dee Organiser",
    )
    .await
}

async fn duress_leaves_no_trace_for_an_organiser_who_canvasses(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let org = org(&app, &admin, "Party").await;
    let owner = second_organiser(&app, &admin, &org).await;
    set_pins(&app, &owner.token).await;
    // The owner watches the stream of their own organisation.
    let mut owner_stream = EventStream::open(&app, &owner.token, false).await;
    let mut other_stream = EventStream::open(&app, &org.organiser.token, false).await;

    let outing = start(&app, &owner.token).await;
    let (status, _) = app
        .post(
            &format!("/api/v1/outings/{outing}/end"),
            Some(&owner.token),
            json!({"pin": DURESS, "lat": 51.5, "lon": -0.1}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (event, alert) = other_stream
        .next(Duration::from_secs(10))
        .await
        .expect("the other organiser hears of it");
    assert_eq!(event, "alert.opened");
    assert_eq!(alert["kind"], "duress");
    let alert_id = alert["id"].as_str().unwrap().to_owned();

    // The other organiser and the police read the alert: audited reads of the owner.
    for reader in [&org.organiser.token, &org.police.token] {
        let (status, _) = app.get(&format!("/api/v1/alerts/{alert_id}"), reader).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = app.get("/api/v1/watch/overdue", reader).await;
        assert_eq!(status, StatusCode::OK);
    }
    // Control: the other organiser sees it on the board and in the audit log.
    let (_, board) = app.get("/api/v1/watch/overdue", &org.organiser.token).await;
    assert!(board.to_string().contains(&alert_id), "{board}");
    let (_, audit) = app.get("/api/v1/audit", &org.organiser.token).await;
    assert!(audit.to_string().contains(&alert_id), "{audit}");

    assert_no_trace(&app, &owner.token, &outing, &alert_id, "duress").await;

    // The owner's stream carried nothing about it: the next event it delivers is a visible
    // alert raised afterwards.
    let visible = start(&app, &org.canvasser.token).await;
    let (status, _) = app
        .post(
            &format!("/api/v1/outings/{visible}/panic"),
            Some(&org.canvasser.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (event, alert) = owner_stream
        .next(Duration::from_secs(10))
        .await
        .expect("the owner's stream is live");
    assert_eq!(event, "alert.opened");
    assert_eq!(alert["kind"], "panic", "the first event is not the duress");
    assert_ne!(alert["id"], alert_id.as_str());
}

async fn metrics_need_a_token(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.server.metrics_token = None).await;
    let resp = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND, "no token configured");

    let app = spawn_app_with(backend, |s| {
        s.server.metrics_token = Some("scrape-secret".into())
    })
    .await;
    let resp = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("guess")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("scrape-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains(r#"doorstep_open_alerts{level="2"}"#));
}

async fn metrics_on_a_private_bind(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.server.metrics_bind = Some("127.0.0.1:0".into());
        s.server.metrics_token = Some("unused".into());
    })
    .await;
    let resp = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("unused")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::NOT_FOUND,
        "served on the private address instead"
    );
    let private = app.metrics_address.clone().expect("metrics address");
    let resp = app
        .client
        .get(format!("{private}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("doorstep_active_outings"));
    let resp = app
        .client
        .get(format!("{private}/api/v1/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND, "only /metrics there");
}

async fn stream_ends_at_logout_and_at_token_expiry(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.auth.access_ttl_s = 3).await;
    let admin = app.admin().await;
    let org = org(&app, &admin, "Party").await;

    // Logout ends the open stream.
    let tokens = app.login(&org.organiser.email, PASSWORD).await;
    let mut stream = EventStream::open(&app, &tokens.access, true).await;
    let (status, _) = app
        .post(
            "/api/v1/auth/logout",
            None,
            json!({"refresh_token": tokens.refresh}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(
        stream.ends_within(Duration::from_secs(2)).await,
        "the stream outlived its login"
    );

    // So does the expiry of the access token it was opened with (3 s here).
    let tokens = app.login(&org.police.email, PASSWORD).await;
    let mut stream = EventStream::open(&app, &tokens.access, false).await;
    assert!(
        stream.ends_within(Duration::from_secs(6)).await,
        "the stream outlived its access token"
    );
    // A new stream with a fresh token works.
    let (status, refreshed) = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": tokens.refresh}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    EventStream::open(&app, refreshed["access_token"].as_str().unwrap(), true).await;
}

async fn checkin_with_pin(app: &TestApp, token: &str, outing: &str, pin: &str) -> StatusCode {
    app.post(
        &format!("/api/v1/outings/{outing}/checkins"),
        Some(token),
        json!({"lat": 51.5, "lon": -0.1, "pin": pin}),
    )
    .await
    .0
}

async fn wrong_pins_lock_and_silently_alert_the_organisers(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let org = org(&app, &admin, "Party").await;
    let owner = &org.canvasser.token;
    set_pins(&app, owner).await;
    let outing = start(&app, owner).await;

    // Four wrong, one right: the run starts again.
    for _ in 0..4 {
        assert_eq!(
            checkin_with_pin(&app, owner, &outing, "0000").await,
            StatusCode::FORBIDDEN
        );
    }
    assert_eq!(
        checkin_with_pin(&app, owner, &outing, SAFE).await,
        StatusCode::CREATED
    );
    // Five wrong in a row (at different prompts): refused, and the fifth raises the alarm.
    for _ in 0..3 {
        assert_eq!(
            checkin_with_pin(&app, owner, &outing, "9999").await,
            StatusCode::FORBIDDEN
        );
    }
    for _ in 0..2 {
        let (status, _) = app
            .post(
                &format!("/api/v1/outings/{outing}/end"),
                Some(owner),
                json!({"pin": "1111"}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    // The sixth, even the right PIN, at any prompt: 429 with Retry-After.
    for (path, body) in [
        (
            format!("/api/v1/outings/{outing}/checkins"),
            json!({"lat": 51.5, "lon": -0.1, "pin": "0000"}),
        ),
        (
            format!("/api/v1/outings/{outing}/end"),
            json!({"pin": SAFE}),
        ),
    ] {
        let resp = app
            .client
            .post(app.url(&path))
            .bearer_auth(owner)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS, "{path}");
        let retry: u64 = resp.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((800..=900).contains(&retry), "{retry}");
    }
    // A check-in without a PIN still works: the outing goes on.
    let (status, _) = app
        .post(
            &format!("/api/v1/outings/{outing}/checkins"),
            Some(owner),
            json!({"lat": 51.5, "lon": -0.1}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    // The organisers have a wrong_pins alert at level 1; the phone has nothing.
    let alert = open_alert_seen_by(&app, &org.organiser.token, &outing).await;
    assert_eq!(alert["kind"], "wrong_pins");
    assert_eq!(alert["level"], 1);
    let alert_id = alert["id"].as_str().unwrap().to_owned();
    let rows = app.outbox(Some(&alert_id), None).await;
    assert!(rows
        .iter()
        .any(|r| r.recipient_id.map(|u| u.to_string()).as_deref()
            == Some(org.organiser.id.as_str())
            && r.message_type.as_str() == "wrong_pins"));
    // Police only once it escalates.
    let (_, police_alerts) = app.get("/api/v1/alerts", &org.police.token).await;
    assert!(!police_alerts.to_string().contains(&alert_id));
    assert_no_trace(&app, owner, &outing, &alert_id, "wrong_pins").await;
}

async fn concurrent_wrong_pins_are_not_all_checked(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let org = org(&app, &admin, "Party").await;
    let owner = org.canvasser.token.clone();
    set_pins(&app, &owner).await;
    let outing = start(&app, &owner).await;
    let guesses = (0..20).map(|i| {
        let (app, owner, outing) = (&app, owner.clone(), outing.clone());
        async move { checkin_with_pin(app, &owner, &outing, &format!("{:04}", 3000 + i)).await }
    });
    let answers = futures_util::future::join_all(guesses).await;
    let checked = answers
        .iter()
        .filter(|s| **s == StatusCode::FORBIDDEN)
        .count();
    let refused = answers
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(checked, 5, "{answers:?}");
    assert_eq!(refused, 15, "{answers:?}");
    let alert = wait_for(5, "the wrong_pins alert", || async {
        let (_, seen) = app
            .get(&format!("/api/v1/outings/{outing}"), &org.organiser.token)
            .await;
        seen["open_alert"]
            .is_object()
            .then(|| seen["open_alert"].clone())
    })
    .await;
    assert_eq!(alert["kind"], "wrong_pins");
}

async fn changing_pins_needs_the_current_pin(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let org = org(&app, &admin, "Party").await;
    let owner = &org.canvasser.token;
    set_pins(&app, owner).await;
    let change = |current: Option<&str>| {
        let mut body = json!({"safe_pin": "8642", "duress_pin": "7531"});
        if let Some(c) = current {
            body["current_pin"] = json!(c);
        }
        body
    };
    let (status, problem) = app.put("/api/v1/me/pins", owner, change(None)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "current_pin");
    let (status, _) = app
        .put("/api/v1/me/pins", owner, change(Some("0000")))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The duress PIN answers as the safe PIN would, changes nothing, and raises duress.
    let outing = start(&app, owner).await;
    let (status, _) = app
        .put("/api/v1/me/pins", owner, change(Some(DURESS)))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let alert = open_alert_seen_by(&app, &org.organiser.token, &outing).await;
    assert_eq!(alert["kind"], "duress");
    let (_, seen) = app.get(&format!("/api/v1/outings/{outing}"), owner).await;
    assert!(seen["open_alert"].is_null());
    // The PINs did not change: the old safe PIN is still the current one.
    let (status, _) = app.put("/api/v1/me/pins", owner, change(Some(SAFE))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app
        .post(
            &format!("/api/v1/outings/{outing}/end"),
            Some(owner),
            json!({"pin": "8642"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "the new safe PIN ends the outing");
}

async fn totp_enrolment_needs_the_password(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let org = org(&app, &admin, "Party").await;
    let token = &org.organiser.token;
    let (status, _) = app.post("/api/v1/me/totp", Some(token), json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = app
        .post(
            "/api/v1/me/totp",
            Some(token),
            json!({"password": "stolen token only"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = app
        .post(
            "/api/v1/me/totp",
            Some(token),
            json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Disabling needs it too (checked before the code).
    let (status, _) = app
        .call(
            Method::DELETE,
            "/api/v1/me/totp",
            Some(token),
            Some(json!({"code": "123456"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = app
        .call(
            Method::DELETE,
            "/api/v1/me/totp",
            Some(token),
            Some(json!({"password": "wrong", "code": "123456"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
