use std::time::Duration;

use doorstep::domain::account::Role;
use doorstep::domain::delivery::{Channel, DeliveryStatus, MessageType};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{fast, spawn_app, spawn_app_with, wait_for, Backend, TestApp, TestUser};
use crate::on_both_backends;
use crate::outings::org;
use crate::push_receiver::{PushReceiver, Reply};

on_both_backends!(
    a_missed_checkin_arrives_decrypted_signed_with_the_right_headers,
    gone_subscriptions_are_removed,
    rate_limited_and_unavailable_pushes_are_retried,
    a_retry_goes_only_to_the_devices_that_missed_it,
    a_message_about_a_resolved_alert_is_not_sent,
    results_written_as_a_batch_count_attempts_and_respect_leases,
    a_receiver_that_is_down_gets_it_when_it_comes_back,
    a_slow_receiver_does_not_hold_up_others,
    subscriptions_are_validated_and_limited,
    internal_endpoints_are_refused_by_default,
);

async fn push_app(backend: Backend) -> TestApp {
    push_app_with_timeout(backend, 2_000).await
}

async fn push_app_with_timeout(backend: Backend, request_timeout_ms: u64) -> TestApp {
    spawn_app_with(backend, |s| {
        fast(s);
        s.push.allow_private_endpoints = true;
        s.push.poll_interval_ms = 50;
        s.push.request_timeout_ms = request_timeout_ms;
    })
    .await
}

async fn subscribe(app: &TestApp, user: &TestUser, rx: &PushReceiver, name: &str) -> String {
    let (status, body) = app
        .post(
            "/api/v1/push/subscriptions",
            Some(&user.token),
            rx.subscription(name),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn notification_status(
    app: &TestApp,
    recipient: &str,
    message_type: &str,
) -> Option<(String, i32, Option<String>)> {
    let (recipient, message_type) = (recipient.to_owned(), message_type.to_owned());
    app.state
        .store
        .read(move |conn| {
            use diesel::prelude::*;
            use doorstep::store::schema::notifications as n;
            Ok(n::table
                .filter(n::recipient_id.eq(recipient))
                .filter(n::message_type.eq(message_type))
                .select((n::status, n::attempts, n::last_error))
                .get_result::<(String, i32, Option<String>)>(conn)
                .optional()?)
        })
        .await
        .unwrap()
}

async fn a_missed_checkin_arrives_decrypted_signed_with_the_right_headers(backend: Backend) {
    let rx = PushReceiver::start().await;
    let app = push_app(backend).await;
    let admin = app.admin().await;
    let org = org(&app, &admin, "Party").await;
    let (status, _) = app
        .put(
            &format!("/api/v1/orgs/{}/escalation-policy", org.id),
            &org.organiser.token,
            json!({"reminder_before_s": 1, "grace_s": 1, "police_after_s": 60, "repeat_s": 0, "ack_timeout_s": 60}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    subscribe(&app, &org.canvasser, &rx, "jo").await;
    subscribe(&app, &org.organiser, &rx, "olive").await;
    // The police contact has no subscription.

    let (_, outing) = app
        .post(
            "/api/v1/outings",
            Some(&org.canvasser.token),
            json!({"checkin_interval_s": 2, "start_location": {"lat": 51.58, "lon": -0.02, "accuracy_m": 20}}),
        )
        .await;
    let outing_id = outing["id"].as_str().unwrap().to_owned();

    let reminder = rx.wait_for("jo", 1, Duration::from_secs(5)).await.remove(0);
    assert_eq!(reminder.payload["type"], "checkin_reminder");
    assert_eq!(reminder.payload["outing_id"], outing_id.as_str());
    assert_eq!(reminder.urgency.as_deref(), Some("normal"));
    assert_eq!(
        reminder.topic.as_deref(),
        Some(outing_id.replace('-', "").as_str())
    );
    assert!(
        reminder.ttl <= 2,
        "a reminder is useless after its deadline: TTL {}",
        reminder.ttl
    );

    let missed = rx
        .wait_for("olive", 1, Duration::from_secs(6))
        .await
        .remove(0);
    let alert_id = missed.payload["alert_id"].as_str().unwrap().to_owned();
    assert_eq!(missed.payload["type"], "missed_checkin");
    assert_eq!(missed.payload["level"], 1);
    assert_eq!(missed.payload["canvasser"]["id"], org.canvasser.id.as_str());
    assert_eq!(missed.payload["canvasser"]["name"], "Jo Bloggs");
    assert_eq!(missed.payload["last_location"]["lat"], 51.58);
    assert_eq!(missed.payload["last_location"]["accuracy_m"], 20.0);
    assert_eq!(missed.payload["title"], "Missed check-in: Jo Bloggs");
    assert_eq!(missed.payload["url"], format!("/app/alerts/{alert_id}"));
    assert!(missed.payload["sent_at"].is_string() && missed.payload["due_at"].is_string());
    assert_eq!(missed.urgency.as_deref(), Some("high"));
    assert_eq!(
        missed.topic.as_deref(),
        Some(alert_id.replace('-', "").as_str())
    );
    assert!(
        missed.ttl > 3600,
        "alerts wait for a phone that is off: TTL {}",
        missed.ttl
    );
    // VAPID: audience is the push service's origin with its port, signed by our key.
    assert_eq!(missed.vapid_aud, rx.origin());
    assert_eq!(missed.vapid_sub, app.state.settings.push.subject);
    let (_, key) = app
        .call(
            reqwest::Method::GET,
            "/api/v1/push/vapid-public-key",
            None,
            None,
        )
        .await;
    assert_eq!(missed.vapid_public_key, key["public_key"].as_str().unwrap());
    assert!(rx.rejections().is_empty(), "{:?}", rx.rejections());

    // The delivery record shows who was reached and who cannot be.
    let record = wait_for(5, "the delivery record", || async {
        let (_, alert) = app
            .get(&format!("/api/v1/alerts/{alert_id}"), &org.organiser.token)
            .await;
        let rows = alert["notifications"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let settled = rows.iter().all(|n| n["status"] != "pending");
        (settled && !rows.is_empty()).then_some(rows)
    })
    .await;
    let status_of = |id: &str| -> Value {
        record
            .iter()
            .find(|n| n["recipient"]["id"] == id)
            .map(|n| n["status"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(status_of(&org.organiser.id), "sent");
    assert_eq!(status_of(&org.canvasser.id), "sent");
    // Escalation is 60 s away here; the police contact is reached through the no_subscription
    // path in the next step of this test instead.
    let (_, _) = app
        .post(
            &format!("/api/v1/outings/{outing_id}/panic"),
            Some(&org.canvasser.token),
            json!({}),
        )
        .await;
    let police = wait_for(5, "police delivery status", || async {
        notification_status(&app, &org.police.id, "panic")
            .await
            .filter(|(s, _, _)| s != "pending")
    })
    .await;
    assert_eq!(
        police.0, "no_subscription",
        "someone who cannot be reached is visible as such"
    );
    // Known when the step was recorded: no delivery attempt was spent on it.
    assert_eq!(police.1, 0, "{police:?}");
    assert_eq!(
        police.2.as_deref(),
        Some("the recipient has no push subscription")
    );
}

async fn gone_subscriptions_are_removed(backend: Backend) {
    let rx = PushReceiver::start().await;
    let app = push_app(backend).await;
    let admin = app.admin().await;
    subscribe(&app, &admin, &rx, "old-phone").await;
    rx.script("old-phone", vec![Reply::Status(410)]);
    let (status, _) = app
        .post("/api/v1/push/test", Some(&admin.token), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    wait_for(5, "the subscription to be forgotten", || async {
        let (_, list) = app.get("/api/v1/push/subscriptions", &admin.token).await;
        list["items"].as_array().unwrap().is_empty().then_some(())
    })
    .await;
    let (_, attempts, error) = wait_for(5, "failed", || async {
        notification_status(&app, &admin.id, "test")
            .await
            .filter(|(s, _, _)| s == "failed")
    })
    .await;
    assert_eq!(attempts, 1);
    assert!(error.unwrap().contains("410"));
    assert_eq!(rx.attempts("old-phone").len(), 1, "never retried");
}

async fn rate_limited_and_unavailable_pushes_are_retried(backend: Backend) {
    let rx = PushReceiver::start().await;
    let app = push_app(backend).await;
    let admin = app.admin().await;
    subscribe(&app, &admin, &rx, "busy").await;
    rx.script(
        "busy",
        vec![
            Reply::RetryAfter {
                status: 429,
                seconds: 2,
            },
            Reply::Status(503),
        ],
    );
    app.post("/api/v1/push/test", Some(&admin.token), json!({}))
        .await;
    let received = rx.wait_for("busy", 1, Duration::from_secs(15)).await;
    assert_eq!(received[0].payload["type"], "test");
    let attempts = rx.attempts("busy");
    let codes: Vec<u16> = attempts.iter().map(|(code, _)| *code).collect();
    assert_eq!(codes, [429, 503, 201]);
    let waited = attempts[1].1 - attempts[0].1;
    assert!(
        waited >= Duration::from_millis(1_900),
        "Retry-After: 2 honoured, waited {waited:?}"
    );
    // The receiver has it; the worker records the outcome just after.
    let (_, attempts, _) = wait_for(5, "sent", || async {
        notification_status(&app, &admin.id, "test")
            .await
            .filter(|(s, _, _)| s == "sent")
    })
    .await;
    assert_eq!(attempts, 3);
}

/// When no device got a message, the retry goes to the devices that may still take it, not to
/// one that refused it for good (a 400 will not change), and nothing is sent twice.
async fn a_retry_goes_only_to_the_devices_that_missed_it(backend: Backend) {
    let rx = PushReceiver::start().await;
    let app = push_app(backend).await;
    let admin = app.admin().await;
    subscribe(&app, &admin, &rx, "phone").await;
    subscribe(&app, &admin, &rx, "laptop").await;
    rx.script("phone", vec![Reply::Status(400)]);
    rx.script(
        "laptop",
        vec![Reply::RetryAfter {
            status: 503,
            seconds: 1,
        }],
    );
    app.post("/api/v1/push/test", Some(&admin.token), json!({}))
        .await;
    rx.wait_for("laptop", 1, Duration::from_secs(8)).await;
    let (_, attempts, _) = wait_for(5, "sent", || async {
        notification_status(&app, &admin.id, "test")
            .await
            .filter(|(s, _, _)| s == "sent")
    })
    .await;
    assert_eq!(attempts, 2);
    let codes = |name: &str| -> Vec<u16> { rx.attempts(name).iter().map(|(c, _)| *c).collect() };
    assert_eq!(codes("laptop"), [503, 201]);
    assert_eq!(codes("phone"), [400], "a final refusal is not retried");
    assert!(rx.received_for("phone").is_empty());
}

/// A message about an alert that was resolved while the message waited for a retry is not
/// sent: the receiver would be told of a danger that is over.
async fn a_message_about_a_resolved_alert_is_not_sent(backend: Backend) {
    let rx = PushReceiver::start().await;
    let app = push_app(backend).await;
    let admin = app.admin().await;
    let org = org(&app, &admin, "Party").await;
    subscribe(&app, &org.organiser, &rx, "olive").await;
    rx.script(
        "olive",
        vec![Reply::RetryAfter {
            status: 429,
            seconds: 3,
        }],
    );
    let (_, outing) = app
        .post(
            "/api/v1/outings",
            Some(&org.canvasser.token),
            json!({"checkin_interval_s": 600}),
        )
        .await;
    let outing_id = outing["id"].as_str().unwrap().to_owned();
    let (status, alert) = app
        .post(
            &format!("/api/v1/outings/{outing_id}/panic"),
            Some(&org.canvasser.token),
            json!({"lat": 51.6, "lon": -0.1}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{alert}");
    let alert_id = alert["id"].as_str().unwrap().to_owned();
    wait_for(5, "the first attempt", || async {
        (!rx.attempts("olive").is_empty()).then_some(())
    })
    .await;
    let (status, resolved) = app
        .post(
            &format!("/api/v1/alerts/{alert_id}/resolve"),
            Some(&org.organiser.token),
            json!({"outcome": "safe"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{resolved}");
    let (_, _, error) = wait_for(8, "the panic message given up", || async {
        notification_status(&app, &org.organiser.id, "panic")
            .await
            .filter(|(s, _, _)| s == "failed")
    })
    .await;
    assert_eq!(
        error.as_deref(),
        Some("the alert was resolved before delivery")
    );
    assert!(
        rx.received_for("olive")
            .iter()
            .all(|p| p.payload["type"] != "panic"),
        "the panic message was never delivered"
    );
    assert_eq!(rx.attempts("olive")[0].0, 429);
}

/// The delivery worker writes the results that finish together in one go (on PostgreSQL one
/// statement for all of them): each notification's attempt is counted, a row leased to
/// another worker is left alone, and a device's record counts its attempts.
async fn results_written_as_a_batch_count_attempts_and_respect_leases(backend: Backend) {
    use doorstep::store::notifications::{insert_if_new, NotificationRow};
    use doorstep::store::push::{self, DeliveryResult, Outcome};

    let rx = PushReceiver::start().await;
    let app = push_app(backend).await;
    let admin = app.admin().await;
    let phone = subscribe(&app, &admin, &rx, "phone").await;
    let laptop = subscribe(&app, &admin, &rx, "laptop").await;
    // Due in a year: the running worker leaves them alone; this test claims them itself.
    let later = chrono::Utc::now().timestamp_millis() + 365 * 24 * 3600 * 1000;
    let user = admin.id.clone();
    let (finished, rows) = app
        .state
        .store
        .write(move |conn| {
            for n in ["n1", "n2", "n3", "n4"] {
                insert_if_new(
                    conn,
                    &NotificationRow {
                        id: format!("{n}-{user}"),
                        dedupe_key: format!("batch:{n}:{user}"),
                        alert_id: None,
                        outing_id: None,
                        recipient_id: Some(user.parse().unwrap()),
                        channel: Channel::Webpush,
                        step: "test".into(),
                        message_type: MessageType::Test,
                        level: 0,
                        payload: "{}".into(),
                        status: DeliveryStatus::Pending,
                        attempts: 0,
                        due_at: None,
                        created_at: later,
                        next_attempt_at: later,
                        expires_at: later + 3_600_000,
                        sent_at: None,
                        last_error: None,
                        claimed_by: None,
                        claimed_until: None,
                        provider_sid: None,
                    },
                )?;
            }
            let claimed = push::claim_pending(conn, "us", later, later + 60_000, 3)?;
            assert_eq!(claimed.len(), 3);
            let other = push::claim_pending(conn, "them", later, later + 60_000, 3)?;
            assert_eq!(other.len(), 1, "the fourth, leased to another worker");
            assert!(push::claim_pending(conn, "third", later, later + 60_000, 3)?.is_empty());
            assert_eq!(
                push::earliest_pending(conn)?,
                Some(later + 60_000),
                "every row is leased: the next due time is when the leases end"
            );
            let ids: Vec<String> = claimed.iter().chain(&other).map(|r| r.id.clone()).collect();
            let mut results = Vec::new();
            for id in &ids[..3] {
                for (subscription, status) in [(&phone, "sent"), (&laptop, "retry")] {
                    results.push(DeliveryResult {
                        notification: id,
                        subscription,
                        status,
                        code: Some(if status == "sent" { 201 } else { 503 }),
                        error: (status == "retry").then_some("busy"),
                        sent_at: (status == "sent").then_some(later),
                    });
                }
            }
            push::record_deliveries(conn, &results)?;
            // The laptop's second attempt at the first message.
            push::record_deliveries(conn, &results[1..2])?;
            let sent = Outcome {
                status: DeliveryStatus::Sent,
                next_attempt_at: later,
                sent_at: Some(later),
                last_error: None,
            };
            let ends: Vec<(&str, &Outcome)> = ids.iter().map(|id| (id.as_str(), &sent)).collect();
            let finished = push::finish_attempts(conn, "us", &ends)?;
            use diesel::prelude::*;
            use doorstep::store::schema::{notifications as n, push_deliveries as d};
            let rows: Vec<(String, String, i32, Option<String>, i64)> = n::table
                .filter(n::id.eq_any(&ids))
                .order(n::id)
                .select((
                    n::id,
                    n::status,
                    n::attempts,
                    n::claimed_by,
                    n::next_attempt_at,
                ))
                .load(conn)?;
            let deliveries: Vec<(String, String, String, i32, Option<i32>)> = d::table
                .filter(d::notification_id.eq_any(&ids))
                .select((
                    d::notification_id,
                    d::subscription_id,
                    d::status,
                    d::attempts,
                    d::last_status_code,
                ))
                .load(conn)?;
            assert_eq!(deliveries.len(), 6);
            for (notification, subscription, status, attempts, code) in &deliveries {
                let twice = *notification == ids[0] && *subscription == laptop;
                assert_eq!(attempts, &if twice { 2 } else { 1 }, "{deliveries:?}");
                let phone_row = *subscription == phone;
                assert_eq!(status, if phone_row { "sent" } else { "retry" });
                assert_eq!(*code, Some(if phone_row { 201 } else { 503 }));
            }
            Ok((finished, rows))
        })
        .await
        .unwrap();
    assert_eq!(
        finished, 3,
        "the row leased to another worker is not written"
    );
    let mut states: Vec<(&str, i32, Option<&str>)> = rows
        .iter()
        .map(|(_, status, attempts, claimed_by, _)| {
            (status.as_str(), *attempts, claimed_by.as_deref())
        })
        .collect();
    states.sort();
    assert_eq!(
        states,
        [
            ("pending", 0, Some("them")),
            ("sent", 1, None),
            ("sent", 1, None),
            ("sent", 1, None)
        ]
    );
}

async fn a_receiver_that_is_down_gets_it_when_it_comes_back(backend: Backend) {
    let rx = PushReceiver::start().await;
    let app = push_app(backend).await;
    let admin = app.admin().await;
    subscribe(&app, &admin, &rx, "phone").await;
    rx.go_down().await;
    app.post("/api/v1/push/test", Some(&admin.token), json!({}))
        .await;
    wait_for(5, "a failed attempt", || async {
        notification_status(&app, &admin.id, "test")
            .await
            .filter(|(s, attempts, _)| s == "pending" && *attempts >= 1)
    })
    .await;
    rx.come_back().await;
    let received = rx.wait_for("phone", 1, Duration::from_secs(15)).await;
    assert_eq!(received[0].payload["type"], "test");
    wait_for(5, "sent", || async {
        notification_status(&app, &admin.id, "test")
            .await
            .filter(|(s, _, _)| s == "sent")
    })
    .await;
}

async fn a_slow_receiver_does_not_hold_up_others(backend: Backend) {
    let rx = PushReceiver::start().await;
    // A patient client: the slow push service is answering, just slowly.
    let app = push_app_with_timeout(backend, 20_000).await;
    let admin = app.admin().await;
    let other = app.admin().await;
    subscribe(&app, &admin, &rx, "slow").await;
    subscribe(&app, &other, &rx, "fast").await;
    rx.script(
        "slow",
        vec![Reply::Slow {
            delay: Duration::from_secs(8),
        }],
    );
    app.post("/api/v1/push/test", Some(&admin.token), json!({}))
        .await;
    // Let the worker pick the slow one up first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.post("/api/v1/push/test", Some(&other.token), json!({}))
        .await;
    // Delivered while the slow one (8 s) is still in flight; a worker that sent one message
    // at a time could not deliver it before the slow one answered.
    rx.wait_for("fast", 1, Duration::from_secs(4)).await;
    assert!(
        rx.received_for("slow").is_empty(),
        "the slow one is still in flight"
    );
    rx.wait_for("slow", 1, Duration::from_secs(15)).await;
}

async fn subscriptions_are_validated_and_limited(backend: Backend) {
    let rx = PushReceiver::start().await;
    let app = push_app(backend).await;
    let admin = app.admin().await;
    let other = app.create_user(&admin.token, Role::Police, None, "P").await;
    let good = rx.subscription("a");
    let (status, first) = app
        .post(
            "/api/v1/push/subscriptions",
            Some(&admin.token),
            good.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, again) = app
        .post(
            "/api/v1/push/subscriptions",
            Some(&admin.token),
            good.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "the same endpoint again updates it");
    assert_eq!(again["id"], first["id"]);

    let mut cases = Vec::new();
    let mut bad = good.clone();
    bad["keys"]["p256dh"] = json!("AAAA");
    cases.push((bad, "keys.p256dh"));
    let mut bad = good.clone();
    // 65 bytes starting with 4 but not a point on the curve.
    bad["keys"]["p256dh"] = json!(base64_url(&[&[4u8][..], &[1u8; 64][..]].concat()));
    cases.push((bad, "keys.p256dh"));
    let mut bad = good.clone();
    bad["keys"]["auth"] = json!(base64_url(&[7u8; 15]));
    cases.push((bad, "keys.auth"));
    let mut bad = good.clone();
    bad["keys"]["auth"] = json!("not base64!");
    cases.push((bad, "keys.auth"));
    let mut bad = good.clone();
    bad["endpoint"] = json!("ftp://example.com/x");
    cases.push((bad, "endpoint"));
    let mut bad = good.clone();
    bad["expirationTime"] = json!(-5);
    cases.push((bad, "expirationTime"));
    let mut bad = good.clone();
    bad["keys"]["extra"] = json!(1);
    cases.push((bad, "keys.extra"));
    for (body, field) in cases {
        let (status, problem) = app
            .post("/api/v1/push/subscriptions", Some(&admin.token), body)
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }

    for i in 1..10 {
        let (status, _) = app
            .post(
                "/api/v1/push/subscriptions",
                Some(&admin.token),
                rx.subscription(&format!("n{i}")),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, _) = app
        .post(
            "/api/v1/push/subscriptions",
            Some(&admin.token),
            rx.subscription("n10"),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "at most 10 per user");
    let (_, list) = app.get("/api/v1/push/subscriptions", &admin.token).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 10);

    let id = first["id"].as_str().unwrap();
    let (status, _) = app
        .delete(&format!("/api/v1/push/subscriptions/{id}"), &other.token)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not theirs");
    let (status, _) = app
        .delete(&format!("/api/v1/push/subscriptions/{id}"), &admin.token)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app
        .delete(&format!("/api/v1/push/subscriptions/{id}"), &admin.token)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

async fn internal_endpoints_are_refused_by_default(backend: Backend) {
    let rx = PushReceiver::start().await;
    let app = spawn_app(backend).await; // default: allow_private_endpoints = false
    let admin = app.admin().await;
    let template = rx.subscription("x");
    for endpoint in [
        rx.subscription("x")["endpoint"]
            .as_str()
            .unwrap()
            .to_owned(), // http://127.0.0.1:port
        "https://127.0.0.1/push".into(),
        "https://10.1.2.3/push".into(),
        "https://172.20.0.5/push".into(),
        "https://192.168.0.10/push".into(),
        "https://169.254.169.254/latest/meta-data".into(),
        "https://100.100.100.200/push".into(),
        "https://0.0.0.0/push".into(),
        "https://224.0.0.251/push".into(),
        "https://[::1]/push".into(),
        "https://[fe80::1]/push".into(),
        "https://[fd00::1]/push".into(),
        "https://[ff02::1]/push".into(),
        "https://[::ffff:127.0.0.1]/push".into(),
        "https://[::ffff:192.168.0.1]/push".into(),
        "https://localhost/push".into(),
        "https://localhost:8443/push".into(),
        "http://push.example.com/push".into(),
        "ftp://push.example.com/push".into(),
        "file:///etc/passwd".into(),
    ] {
        let mut body = template.clone();
        body["endpoint"] = json!(endpoint);
        let (status, problem) = app
            .post("/api/v1/push/subscriptions", Some(&admin.token), body)
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{endpoint}: {problem}"
        );
        assert_eq!(problem["errors"][0]["field"], "endpoint", "{endpoint}");
    }
    let (_, list) = app.get("/api/v1/push/subscriptions", &admin.token).await;
    assert!(list["items"].as_array().unwrap().is_empty());
}
