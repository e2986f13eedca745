//! Alerts that get through when push does not: email through a real local SMTP sink and signed
//! webhooks to a local receiver that verifies every signature.

use std::time::Duration;

use doorstep::domain::account::Role;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{fast, spawn_app, spawn_app_with, wait_for, Backend, TestApp, TestUser};
use crate::on_both_backends;
use crate::outings::{org, Org};
use crate::push_receiver::PushReceiver;
use crate::smtp_sink::SmtpSink;
use crate::webhook_receiver::{self, Rejected, WebhookReceiver};

on_both_backends!(
    a_missed_checkin_reaches_an_organiser_by_push_email_and_the_org_webhook,
    a_police_contact_without_push_gets_the_escalation_by_email,
    an_smtp_server_that_is_down_is_retried_until_the_mail_arrives,
    a_webhook_answering_500_then_200_is_delivered_once_under_one_event_id,
    a_replayed_signature_older_than_five_minutes_is_rejected,
    channels_are_validated_and_authorised,
    without_smtp_email_is_recorded_as_failed_with_the_reason,
);

const ORG_SECRET: &str = "an organisation secret of 32 chars";

async fn channels_app(backend: Backend, smtp: &SmtpSink) -> TestApp {
    let url = smtp.url();
    spawn_app_with(backend, move |s| {
        fast(s);
        s.push.allow_private_endpoints = true;
        s.push.poll_interval_ms = 50;
        s.push.request_timeout_ms = 2_000;
        s.smtp.url = Some(url);
        s.smtp.from = Some("Doorstep <alerts@doorstep.test>".into());
        // The sink speaks plain SMTP on loopback.
        s.smtp.tls = doorstep::config::SmtpTls::None;
    })
    .await
}

async fn fast_policy(app: &TestApp, org: &Org, police_after_s: i64) {
    let (status, body) = app
        .put(
            &format!("/api/v1/orgs/{}/escalation-policy", org.id),
            &org.organiser.token,
            json!({"reminder_before_s": 1, "grace_s": 1, "police_after_s": police_after_s,
                   "repeat_s": 0, "ack_timeout_s": 60}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn enable_email(app: &TestApp, user: &TestUser) {
    let (status, body) = app
        .put(
            "/api/v1/me/channels",
            &user.token,
            json!({"email": true, "webhook_url": null}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn set_org_webhook(app: &TestApp, org: &Org, url: &str) {
    let (status, body) = app
        .put(
            &format!("/api/v1/orgs/{}/webhook", org.id),
            &org.organiser.token,
            json!({"url": url, "secret": ORG_SECRET}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"url": url}), "the secret is never echoed");
}

async fn start_outing(app: &TestApp, org: &Org) -> String {
    let (status, outing) = app
        .post(
            "/api/v1/outings",
            Some(&org.canvasser.token),
            json!({"checkin_interval_s": 2, "start_location": {"lat": 51.58, "lon": -0.02, "accuracy_m": 20}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{outing}");
    outing["id"].as_str().unwrap().to_owned()
}

async fn alert(app: &TestApp, token: &str, alert_id: &str) -> Value {
    let (status, body) = app.get(&format!("/api/v1/alerts/{alert_id}"), token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The delivery record's rows for a recipient (None: the organisation's webhook) and channel.
fn record<'a>(alert: &'a Value, recipient: Option<&str>, channel: &str) -> Vec<&'a Value> {
    alert["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["channel"] == channel)
        .filter(|n| match recipient {
            Some(id) => n["recipient"]["id"] == id,
            None => n["recipient"].is_null(),
        })
        .collect()
}

async fn a_missed_checkin_reaches_an_organiser_by_push_email_and_the_org_webhook(backend: Backend) {
    let smtp = SmtpSink::start().await;
    let push = PushReceiver::start().await;
    let hook = WebhookReceiver::start(ORG_SECRET).await;
    let app = channels_app(backend, &smtp).await;
    let personal = WebhookReceiver::start("not yet known").await;
    let admin = app.admin().await;
    let org = org(&app, &admin, "Party").await;
    fast_policy(&app, &org, 60).await;
    let (status, _) = app
        .post(
            "/api/v1/push/subscriptions",
            Some(&org.organiser.token),
            push.subscription("olive"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = app
        .put(
            "/api/v1/me/channels",
            &org.organiser.token,
            json!({"email": true, "webhook_url": personal.url}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    personal.set_secret(
        body["webhook_secret"]
            .as_str()
            .expect("the new webhook's secret"),
    );
    let (_, channels) = app.get("/api/v1/me/channels", &org.organiser.token).await;
    assert_eq!(
        channels,
        json!({"email": true, "webhook_url": personal.url, "sms": false, "voice": false})
    );
    set_org_webhook(&app, &org, &hook.url).await;

    let outing_id = start_outing(&app, &org).await;

    // Push.
    let pushed = push
        .wait_for("olive", 1, Duration::from_secs(8))
        .await
        .remove(0);
    assert_eq!(pushed.payload["type"], "missed_checkin");
    let alert_id = pushed.payload["alert_id"].as_str().unwrap().to_owned();

    // Email, with the same facts as the push.
    let mail = smtp
        .wait_for(&org.organiser.email, 1, Duration::from_secs(8))
        .await
        .remove(0);
    assert_eq!(mail.from, "alerts@doorstep.test");
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Missed check-in: Jo Bloggs")
    );
    let text = mail.body();
    assert!(text.contains("Who: Jo Bloggs"), "{text}");
    assert!(
        text.contains("Last position: 51.58000, -0.02000 (±20 m)"),
        "{text}"
    );
    assert!(
        text.contains("openstreetmap.org/?mlat=51.58000&mlon=-0.02000"),
        "{text}"
    );
    assert!(text.contains(&format!("/app/alerts/{alert_id}")), "{text}");
    // Reminders go by push only: the only mails are alert steps.
    assert!(smtp
        .mails()
        .iter()
        .all(|m| !m.data.contains("Check-in due soon")));

    // The organisation's webhook: one signed request, no recipient, the Alert of the contract.
    hook.wait_for("the org webhook", Duration::from_secs(8), |r| {
        r.iter().any(|r| r.status == 200)
    })
    .await;
    let request = hook.requests().remove(0);
    assert!(request.verified, "signature verifies with the org secret");
    assert_eq!(request.content_type.as_deref(), Some("application/json"));
    let body = request.json();
    assert_eq!(body["type"], "missed_checkin");
    assert_eq!(body["event_id"].as_str(), request.event_id.as_deref());
    assert_eq!(body["outing_id"], outing_id.as_str());
    assert!(body["recipient"].is_null());
    assert!(body["sent_at"].is_string());
    assert_eq!(body["alert"]["id"], alert_id.as_str());
    assert_eq!(body["alert"]["kind"], "missed_checkin");
    assert_eq!(body["alert"]["level"], 1);
    assert_eq!(body["alert"]["canvasser"]["display_name"], "Jo Bloggs");
    assert_eq!(body["alert"]["last_location"]["lat"], 51.58);

    // The personal webhook, signed with the server's webhook secret, names its recipient.
    personal
        .wait_for("the personal webhook", Duration::from_secs(8), |r| {
            r.iter().any(|r| r.status == 200)
        })
        .await;
    let request = personal.requests().remove(0);
    assert!(request.verified);
    assert_eq!(request.json()["recipient"]["id"], org.organiser.id.as_str());

    // The delivery record: a row per channel.
    let seen = wait_for(8, "every channel recorded as sent", || async {
        let seen = alert(&app, &org.organiser.token, &alert_id.to_string()).await;
        let sent = |recipient: Option<&str>, channel: &str| {
            record(&seen, recipient, channel)
                .iter()
                .any(|n| n["status"] == "sent")
        };
        let organiser = Some(org.organiser.id.as_str());
        (sent(organiser, "webpush")
            && sent(organiser, "email")
            && sent(organiser, "webhook")
            && sent(None, "webhook"))
        .then_some(seen)
    })
    .await;
    assert_eq!(
        record(&seen, None, "webhook").len(),
        1,
        "one org webhook row per step"
    );
    // The canvasser enabled nothing: push only.
    let canvasser = Some(org.canvasser.id.as_str());
    assert_eq!(record(&seen, canvasser, "webpush").len(), 1);
    assert!(record(&seen, canvasser, "email").is_empty());

    let text = app.metrics().await;
    for channel in ["webpush", "email", "webhook"] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("doorstep_deliveries_total")
                    && l.contains(&format!("channel=\"{channel}\""))
                    && l.contains("status=\"sent\"")),
            "{channel} in /metrics"
        );
    }
}

async fn a_police_contact_without_push_gets_the_escalation_by_email(backend: Backend) {
    let smtp = SmtpSink::start().await;
    let app = channels_app(backend, &smtp).await;
    let admin = app.admin().await;
    let org = org(&app, &admin, "Party").await;
    fast_policy(&app, &org, 2).await;
    enable_email(&app, &org.police).await;
    // No push subscription anywhere.
    start_outing(&app, &org).await;

    let mail = smtp
        .wait_for(&org.police.email, 1, Duration::from_secs(12))
        .await
        .remove(0);
    let subject = mail.header("Subject").unwrap_or_default();
    assert!(
        subject.starts_with("Escalated (level 2): Jo Bloggs"),
        "{subject}"
    );
    let text = mail.body();
    assert!(text.contains("Last position: 51.58000, -0.02000"), "{text}");
    assert!(text.contains("level 2"), "{text}");

    let alert_id = app
        .outbox(None, None)
        .await
        .into_iter()
        .find(|r| {
            r.channel.as_str() == "email"
                && r.recipient_id.map(|u| u.to_string()).as_deref() == Some(org.police.id.as_str())
        })
        .and_then(|r| r.alert_id)
        .expect("the police email row");
    let seen = wait_for(8, "the police email recorded as sent", || async {
        let seen = alert(&app, &org.organiser.token, &alert_id.to_string()).await;
        record(&seen, Some(&org.police.id), "email")
            .iter()
            .any(|n| n["status"] == "sent" && n["level"] == 2)
            .then_some(seen)
    })
    .await;
    let pushes = record(&seen, Some(&org.police.id), "webpush");
    assert!(
        pushes.iter().all(|n| n["status"] == "no_subscription"),
        "{pushes:?}"
    );
}

async fn an_smtp_server_that_is_down_is_retried_until_the_mail_arrives(backend: Backend) {
    let smtp = SmtpSink::start().await;
    let app = channels_app(backend, &smtp).await;
    let admin = app.admin().await;
    let org = org(&app, &admin, "Party").await;
    fast_policy(&app, &org, 60).await;
    enable_email(&app, &org.organiser).await;
    smtp.go_down().await;
    start_outing(&app, &org).await;

    let organiser = org.organiser.id.clone();
    let email_row = || async {
        app.outbox(None, None).await.into_iter().find(|r| {
            r.channel.as_str() == "email"
                && r.recipient_id.map(|u| u.to_string()).as_deref() == Some(&organiser)
        })
    };
    let failed_once = wait_for(10, "a failed email attempt", || async {
        email_row().await.filter(|r| r.attempts >= 2)
    })
    .await;
    assert_eq!(
        failed_once.status.as_str(),
        "pending",
        "still to be retried"
    );
    assert!(
        failed_once.last_error.is_some(),
        "the failure is recorded: {failed_once:?}"
    );
    assert!(smtp.mails().is_empty());

    smtp.come_back().await;
    let mails = smtp
        .wait_for(&org.organiser.email, 1, Duration::from_secs(10))
        .await;
    assert_eq!(
        mails[0].header("Subject").as_deref(),
        Some("Missed check-in: Jo Bloggs")
    );
    let row = wait_for(5, "the email row sent", || async {
        email_row().await.filter(|r| r.status.as_str() == "sent")
    })
    .await;
    assert!(row.attempts >= 3, "{row:?}");
    assert!(row.last_error.is_none());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        smtp.mails_to(&org.organiser.email).len(),
        1,
        "delivered once"
    );
}

async fn a_webhook_answering_500_then_200_is_delivered_once_under_one_event_id(backend: Backend) {
    let smtp = SmtpSink::start().await;
    let hook = WebhookReceiver::start(ORG_SECRET).await;
    hook.script(&[500]);
    let app = channels_app(backend, &smtp).await;
    let admin = app.admin().await;
    let org = org(&app, &admin, "Party").await;
    fast_policy(&app, &org, 60).await;
    set_org_webhook(&app, &org, &hook.url).await;
    start_outing(&app, &org).await;

    hook.wait_for("a 500 then a 200", Duration::from_secs(10), |r| {
        r.iter().any(|r| r.status == 200)
    })
    .await;
    let requests = hook.requests();
    assert_eq!(
        requests.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![500, 200]
    );
    assert!(requests.iter().all(|r| r.verified));
    let id = requests[0].event_id.clone().expect("event id");
    assert_eq!(requests[1].event_id.as_deref(), Some(id.as_str()));
    assert_eq!(
        requests[0].json()["event_id"],
        requests[1].json()["event_id"]
    );
    assert_eq!(hook.processed(), vec![id.clone()], "processed once");

    let row = wait_for(5, "the webhook row sent", || async {
        app.outbox(None, None)
            .await
            .into_iter()
            .find(|r| r.id == id && r.status.as_str() == "sent")
    })
    .await;
    assert_eq!(row.attempts, 2);
    assert!(row.recipient_id.is_none());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(hook.requests().len(), 2, "nothing more after the 200");
}

async fn a_replayed_signature_older_than_five_minutes_is_rejected(backend: Backend) {
    let smtp = SmtpSink::start().await;
    let hook = WebhookReceiver::start(ORG_SECRET).await;
    let app = channels_app(backend, &smtp).await;
    let admin = app.admin().await;
    let org = org(&app, &admin, "Party").await;
    set_org_webhook(&app, &org, &hook.url).await;
    let outing_id = start_outing(&app, &org).await;
    let (status, body) = app
        .post(
            &format!("/api/v1/outings/{outing_id}/panic"),
            Some(&org.canvasser.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    hook.wait_for("the panic webhook", Duration::from_secs(8), |r| {
        !r.is_empty()
    })
    .await;
    let captured = hook.requests().remove(0);
    assert_eq!(captured.json()["type"], "panic");
    let header = captured.signature.clone().unwrap();
    let t: i64 = header
        .split(',')
        .find_map(|p| p.strip_prefix("t="))
        .unwrap()
        .parse()
        .unwrap();
    let now = webhook_receiver::now_s();
    assert!((now - t).abs() <= 5, "signed at send time");
    let secret = ORG_SECRET.as_bytes();
    // As received: valid.
    assert_eq!(
        webhook_receiver::verify(secret, &header, &captured.body, now),
        Ok(())
    );
    // The same request replayed more than five minutes later: too old.
    assert_eq!(
        webhook_receiver::verify(secret, &header, &captured.body, t + 301),
        Err(Rejected::TooOld)
    );
    // Still accepted just inside the window.
    assert_eq!(
        webhook_receiver::verify(secret, &header, &captured.body, t + 299),
        Ok(())
    );
    // Rewriting t to dodge the rule breaks the signature, which covers t.
    let rewritten = header.replace(&format!("t={t}"), &format!("t={}", t + 1000));
    assert_eq!(
        webhook_receiver::verify(secret, &rewritten, &captured.body, t + 1000),
        Err(Rejected::BadSignature)
    );
    // A tampered body or another secret does not verify.
    let mut tampered = captured.body.clone();
    tampered.push(b' ');
    assert_eq!(
        webhook_receiver::verify(secret, &header, &tampered, now),
        Err(Rejected::BadSignature)
    );
    assert_eq!(
        webhook_receiver::verify(b"another secret entirely", &header, &captured.body, now),
        Err(Rejected::BadSignature)
    );
    // Our signer and the documented verifier agree on the format.
    let signed_old = doorstep::push::webhook::signature(secret, t - 301, &captured.body);
    assert_eq!(
        webhook_receiver::verify(secret, &signed_old, &captured.body, t),
        Err(Rejected::TooOld)
    );
}

async fn channels_are_validated_and_authorised(backend: Backend) {
    // Default address rules: https and public only.
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let org = org(&app, &admin, "Party").await;
    let other_org = crate::outings::org(&app, &admin, "Other").await;

    let (_, channels) = app.get("/api/v1/me/channels", &org.canvasser.token).await;
    assert_eq!(
        channels,
        json!({"email": false, "webhook_url": null, "sms": false, "voice": false})
    );
    for bad in [
        "http://hooks.example.org/x",
        "https://127.0.0.1/x",
        "https://169.254.169.254/latest",
        "https://localhost/x",
        "not a url",
    ] {
        let (status, body) = app
            .put(
                "/api/v1/me/channels",
                &org.canvasser.token,
                json!({"email": true, "webhook_url": bad}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
    }
    let (status, body) = app
        .put(
            "/api/v1/me/channels",
            &org.canvasser.token,
            json!({"email": true, "webhook_url": "https://8.8.8.8/hook"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, channels) = app.get("/api/v1/me/channels", &org.canvasser.token).await;
    assert_eq!(
        channels,
        json!({"email": true, "webhook_url": "https://8.8.8.8/hook", "sms": false, "voice": false})
    );

    let path = format!("/api/v1/orgs/{}/webhook", org.id);
    let good = json!({"url": "https://8.8.8.8/hook", "secret": ORG_SECRET});
    // Members who can see the org but may not change it: 403. Others: 404.
    for user in [&org.canvasser, &org.police] {
        let (status, _) = app.put(&path, &user.token, good.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = app.delete(&path, &user.token).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let (status, _) = app
        .put(&path, &other_org.organiser.token, good.clone())
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.delete(&path, &other_org.organiser.token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let outsider = app
        .create_user(&admin.token, Role::Police, None, "PC Elsewhere")
        .await;
    let (status, _) = app.put(&path, &outsider.token, good.clone()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    for (body, field) in [
        (
            json!({"url": "https://8.8.8.8/hook", "secret": "short"}),
            "secret",
        ),
        (
            json!({"url": "https://8.8.8.8/hook", "secret": "x".repeat(257)}),
            "secret",
        ),
        (
            json!({"url": "http://8.8.8.8/hook", "secret": ORG_SECRET}),
            "url",
        ),
        (
            json!({"url": "https://10.0.0.1/hook", "secret": ORG_SECRET}),
            "url",
        ),
    ] {
        let (status, problem) = app.put(&path, &org.organiser.token, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert!(problem.to_string().contains(field), "{problem}");
    }
    let (status, body) = app.put(&path, &admin.token, good.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"url": "https://8.8.8.8/hook"}));
    let (status, body) = app.put(&path, &org.organiser.token, good).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!body.to_string().contains(ORG_SECRET));
    let (status, _) = app.delete(&path, &org.organiser.token).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // In the OpenAPI document.
    let (_, doc) = app
        .call(reqwest::Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    for p in ["/api/v1/me/channels", "/api/v1/orgs/{id}/webhook"] {
        assert!(doc["paths"][p].is_object(), "{p} documented");
    }
}

async fn without_smtp_email_is_recorded_as_failed_with_the_reason(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        fast(s);
        s.push.poll_interval_ms = 50;
    })
    .await;
    let admin = app.admin().await;
    let org = org(&app, &admin, "Party").await;
    enable_email(&app, &org.organiser).await;
    let outing_id = start_outing(&app, &org).await;
    let (status, panic) = app
        .post(
            &format!("/api/v1/outings/{outing_id}/panic"),
            Some(&org.canvasser.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{panic}");
    let alert_id = panic["id"].as_str().unwrap().to_owned();
    let seen = wait_for(8, "the email row settled", || async {
        let seen = alert(&app, &org.organiser.token, &alert_id.to_string()).await;
        record(&seen, Some(&org.organiser.id), "email")
            .iter()
            .any(|n| n["status"] == "failed")
            .then_some(seen)
    })
    .await;
    let row = record(&seen, Some(&org.organiser.id), "email")[0];
    assert!(
        row["last_error"]
            .as_str()
            .unwrap()
            .contains("smtp.url is unset"),
        "{row}"
    );
}
