//! SMS and voice calls (api.md, "SMS and voice") against a local fake of Twilio's API that
//! checks what Twilio checks and signs what it posts back as Twilio does.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{fast, start_app, test_settings, Backend, TestApp};
use crate::on_both_backends;
use crate::outings::{org, Org};
use crate::twilio_fake::{self, TwilioFake};

on_both_backends!(
    police_with_only_sms_get_level_2_by_sms_and_a_reply_with_the_code_acknowledges,
    a_call_follows_an_unacknowledged_level_2_step_and_keypad_1_acknowledges,
    the_monthly_ceiling_stops_sms_and_a_refused_number_is_final,
);

const POLICE_PHONE: &str = "+447700900222";
const ORGANISER_PHONE: &str = "+447700900333";

/// A server whose `sms.public_url` is its own address (the provider calls back there).
async fn app(
    backend: Backend,
    fake: &TwilioFake,
    customise: impl FnOnce(&mut doorstep::config::Settings),
) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = test_settings(backend, dir.path());
    fast(&mut settings);
    // The provider needs the address before the server has one: take a free port from the
    // system for it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    settings.server.bind = format!("127.0.0.1:{port}");
    settings.push.allow_private_endpoints = true;
    settings.push.poll_interval_ms = 50;
    settings.sms.provider = Some("twilio".into());
    settings.sms.account_sid = Some(twilio_fake::ACCOUNT_SID.into());
    settings.sms.auth_token = Some(twilio_fake::AUTH_TOKEN.into());
    settings.sms.from = Some(twilio_fake::FROM.into());
    settings.sms.api_base = fake.api_base.clone();
    settings.sms.public_url = Some(format!("http://127.0.0.1:{port}"));
    customise(&mut settings);
    start_app(settings, backend, dir)
}

async fn policy(app: &TestApp, party: &Org, extra: Value) {
    let mut body = json!({"reminder_before_s": 0, "grace_s": 1, "police_after_s": 2,
                          "repeat_s": 0, "ack_timeout_s": 600});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (status, answer) = app
        .put(
            &format!("/api/v1/orgs/{}/escalation-policy", party.id),
            &party.organiser.token,
            body,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

/// Gives the user a phone and turns on `channels` (`sms`, `voice`).
async fn phone_channels(
    app: &TestApp,
    user: &crate::helpers::TestUser,
    phone: &str,
    sms: bool,
    voice: bool,
) {
    let (status, body) = app
        .put(
            "/api/v1/me/channels",
            &user.token,
            json!({"email": false, "webhook_url": null, "sms": sms}),
        )
        .await;
    if sms {
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "no phone yet: {body}"
        );
        assert_eq!(body["errors"][0]["field"], "sms");
    }
    let (status, body) = app
        .patch(
            &format!("/api/v1/users/{}", user.id),
            &user.token,
            json!({"phone": phone}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .put(
            "/api/v1/me/channels",
            &user.token,
            json!({"email": false, "webhook_url": null, "sms": sms, "voice": voice}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = app.get("/api/v1/me/channels", &user.token).await;
    assert_eq!(body["sms"], sms);
    assert_eq!(body["voice"], voice);
}

async fn start(app: &TestApp, token: &str, interval_s: i64) -> String {
    let (status, outing) = app
        .post(
            "/api/v1/outings",
            Some(token),
            json!({"checkin_interval_s": interval_s,
                   "start_location": {"lat": 51.5, "lon": -0.12, "accuracy_m": 10}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{outing}");
    outing["id"].as_str().unwrap().to_owned()
}

async fn alert_of(app: &TestApp, token: &str, outing: &str) -> Value {
    let (_, seen) = app.get(&format!("/api/v1/outings/{outing}"), token).await;
    let id = seen["open_alert"]["id"]
        .as_str()
        .expect("an open alert")
        .to_owned();
    let (status, alert) = app.get(&format!("/api/v1/alerts/{id}"), token).await;
    assert_eq!(status, StatusCode::OK);
    alert
}

fn code_in(text: &str) -> String {
    let after = text
        .split("Reply OK ")
        .nth(1)
        .expect("the SMS asks for a reply");
    after.chars().take(4).collect()
}

async fn police_with_only_sms_get_level_2_by_sms_and_a_reply_with_the_code_acknowledges(
    backend: Backend,
) {
    let fake = TwilioFake::start().await;
    let app = app(backend, &fake, |_| {}).await;
    let admin = app.admin().await;
    let party = org(&app, &admin, "Party").await;
    policy(&app, &party, json!({})).await;
    phone_channels(&app, &party.police, POLICE_PHONE, true, false).await;
    let outing = start(&app, &party.canvasser.token, 2).await;

    // Missed, then level 2: the police contact, with SMS alone, gets the escalation by SMS.
    let sent = fake
        .wait_for("the police SMS", |s| s.iter().any(|m| m.to == POLICE_PHONE))
        .await;
    let sms = sent.iter().find(|m| m.to == POLICE_PHONE).unwrap().clone();
    assert_eq!(sms.resource, "Messages.json");
    assert_eq!(sms.from, twilio_fake::FROM);
    assert!(
        sms.body.contains("ESCALATED") && sms.body.contains("Jo Bloggs"),
        "{}",
        sms.body
    );
    assert!(sms.body.chars().count() <= 160, "{}", sms.body);
    assert!(sms.status_callback.ends_with("/api/v1/sms/status"));
    assert_eq!(
        sent.iter().filter(|m| m.to == POLICE_PHONE).count(),
        1,
        "once per step"
    );
    let alert = alert_of(&app, &party.organiser.token, &outing).await;
    let code = code_in(&sms.body);
    let inbound = format!("{}/api/v1/sms/inbound", app.address);

    // Refused, changing nothing: unsigned or mis-signed, a wrong code, an unknown number.
    let (status, _) = fake
        .post_signed(
            &inbound,
            &[("From", POLICE_PHONE), ("Body", &format!("OK {code}"))],
            Some("bm90IGEgc2lnbmF0dXJl"),
        )
        .await;
    assert_eq!(status, 403, "a mis-signed post");
    let unsigned = app
        .client
        .post(&inbound)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("From=%2B447700900222&Body=OK+{code}"))
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), StatusCode::FORBIDDEN, "an unsigned post");
    let wrong = if code == "0000" { "1111" } else { "0000" };
    let (status, answer) = fake
        .reply(&inbound, POLICE_PHONE, &format!("OK {wrong}"))
        .await;
    assert_eq!(status, 200);
    assert!(
        answer.contains("<Message>") && answer.contains("does not match"),
        "{answer}"
    );
    let (status, answer) = fake
        .reply(&inbound, "+447700900999", &format!("OK {code}"))
        .await;
    assert_eq!(status, 200);
    assert!(answer.contains("does not match"), "{answer}");
    let (_, unchanged) = app
        .get(
            &format!("/api/v1/alerts/{}", alert["id"].as_str().unwrap()),
            &party.organiser.token,
        )
        .await;
    assert_eq!(unchanged["status"], "open", "{unchanged}");

    // The right code from the right phone takes charge, as that person.
    let (status, answer) = fake
        .reply(&inbound, POLICE_PHONE, &format!("ok {code}"))
        .await;
    assert_eq!(status, 200);
    assert!(answer.contains("you have taken charge"), "{answer}");
    let (_, acknowledged) = app
        .get(
            &format!("/api/v1/alerts/{}", alert["id"].as_str().unwrap()),
            &party.organiser.token,
        )
        .await;
    assert_eq!(acknowledged["status"], "acknowledged", "{acknowledged}");
    assert_eq!(
        acknowledged["acknowledged_by"]["id"],
        party.police.id.as_str()
    );
    assert_eq!(acknowledged["note"], "Acknowledged by SMS reply");

    // The delivery record has the SMS row; the provider's callbacks move it.
    let row = |alert: &Value| {
        alert["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["channel"] == "sms" && n["recipient"]["id"] == party.police.id.as_str())
            .cloned()
            .expect("the police SMS row")
    };
    assert_eq!(row(&acknowledged)["status"], "sent");
    let (status, _) = fake.report(&sms, "undelivered").await;
    assert_eq!(status, 204);
    let (_, after) = app
        .get(
            &format!("/api/v1/alerts/{}", alert["id"].as_str().unwrap()),
            &party.organiser.token,
        )
        .await;
    assert_eq!(row(&after)["status"], "failed");
    assert!(row(&after)["last_error"]
        .as_str()
        .unwrap()
        .contains("undelivered"));
    let (status, _) = fake.report(&sms, "delivered").await;
    assert_eq!(status, 204);
    let (_, after) = app
        .get(
            &format!("/api/v1/alerts/{}", alert["id"].as_str().unwrap()),
            &party.organiser.token,
        )
        .await;
    assert_eq!(row(&after)["status"], "sent");
    // A new incident shared with the police reaches them by SMS too: its category and link,
    // never the report's words.
    let (status, incident) = app
        .post(
            "/api/v1/incidents",
            Some(&party.canvasser.token),
            json!({"category": "threat", "description": "Shouted at and followed to the gate",
                   "share_with_police": true}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{incident}");
    let sent = fake
        .wait_for("the incident SMS", |s| {
            s.iter().any(|m| m.body.contains("reported an incident"))
        })
        .await;
    let text = &sent
        .iter()
        .find(|m| m.body.contains("reported an incident"))
        .unwrap()
        .body;
    assert!(
        text.contains("(Threat)") && text.contains(incident["id"].as_str().unwrap()),
        "{text}"
    );
    assert!(!text.contains("Shouted"), "{text}");
    // A status callback must be signed too.
    let (status, _) = fake
        .post_signed(
            &sms.status_callback,
            &[("MessageSid", &sms.sid), ("MessageStatus", "failed")],
            Some("AAAA"),
        )
        .await;
    assert_eq!(status, 403);
    fake.stop().await;
}

async fn a_call_follows_an_unacknowledged_level_2_step_and_keypad_1_acknowledges(backend: Backend) {
    let fake = TwilioFake::start().await;
    let app = app(backend, &fake, |_| {}).await;
    let admin = app.admin().await;
    let party = org(&app, &admin, "Party").await;
    policy(
        &app,
        &party,
        json!({"police_after_s": 600, "voice_after_s": 1}),
    )
    .await;
    phone_channels(&app, &party.organiser, ORGANISER_PHONE, false, true).await;

    // A panic opens at level 2: a call follows a second later, the alert still unacknowledged.
    let outing = start(&app, &party.canvasser.token, 3600).await;
    let (status, alert) = app
        .post(
            &format!("/api/v1/outings/{outing}/panic"),
            Some(&party.canvasser.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{alert}");
    let alert_id = alert["id"].as_str().unwrap().to_owned();
    let sent = fake
        .wait_for("the call", |s| s.iter().any(|c| c.resource == "Calls.json"))
        .await;
    let call = sent
        .iter()
        .find(|c| c.resource == "Calls.json")
        .unwrap()
        .clone();
    assert_eq!(call.to, ORGANISER_PHONE);
    assert!(
        call.body.contains("<Gather numDigits=\"1\""),
        "{}",
        call.body
    );
    assert!(
        call.body.contains("pressed the panic button"),
        "{}",
        call.body
    );
    assert!(call.status_callback.ends_with("/api/v1/voice/status"));
    // Any other key says it again; 1 takes charge.
    let (status, answer) = fake.press(&call, "5").await;
    assert_eq!(status, 200);
    assert!(answer.contains("<Gather"), "{answer}");
    let (_, still) = app
        .get(
            &format!("/api/v1/alerts/{alert_id}"),
            &party.organiser.token,
        )
        .await;
    assert_eq!(still["status"], "open");
    let (status, answer) = fake.press(&call, "1").await;
    assert_eq!(status, 200);
    assert!(answer.contains("taken charge"), "{answer}");
    let (_, acknowledged) = app
        .get(
            &format!("/api/v1/alerts/{alert_id}"),
            &party.organiser.token,
        )
        .await;
    assert_eq!(acknowledged["status"], "acknowledged", "{acknowledged}");
    assert_eq!(
        acknowledged["acknowledged_by"]["id"],
        party.organiser.id.as_str()
    );
    assert_eq!(acknowledged["note"], "Acknowledged by phone (keypad 1)");
    let (status, _) = fake.report(&call, "completed").await;
    assert_eq!(status, 204);
    // A forged keypad post does nothing.
    let (status, _) = fake
        .post_signed(
            &format!(
                "{}/api/v1/voice/gather?alert={alert_id}&recipient={}",
                app.address, party.organiser.id
            ),
            &[("Digits", "1")],
            Some("AAAA"),
        )
        .await;
    assert_eq!(status, 403);

    // Acknowledged before the call falls due: no call.
    policy(
        &app,
        &party,
        json!({"police_after_s": 600, "voice_after_s": 2}),
    )
    .await;
    let other = start(&app, &party.other_canvasser.token, 3600).await;
    let (_, alert) = app
        .post(
            &format!("/api/v1/outings/{other}/panic"),
            Some(&party.other_canvasser.token),
            json!({}),
        )
        .await;
    let other_alert = alert["id"].as_str().unwrap().to_owned();
    let (status, _) = app
        .post(
            &format!("/api/v1/alerts/{other_alert}/ack"),
            Some(&party.organiser.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let calls = fake
        .sent()
        .iter()
        .filter(|c| c.resource == "Calls.json")
        .count();
    assert_eq!(calls, 1, "no call for the alert acknowledged in time");
    let (_, record) = app
        .get(
            &format!("/api/v1/alerts/{other_alert}"),
            &party.organiser.token,
        )
        .await;
    let voice = record["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["channel"] == "voice")
        .cloned()
        .expect("the voice row");
    assert_eq!(voice["status"], "failed", "{voice}");
    assert!(voice["last_error"]
        .as_str()
        .unwrap()
        .contains("acknowledged"));
    fake.stop().await;
}

async fn the_monthly_ceiling_stops_sms_and_a_refused_number_is_final(backend: Backend) {
    let fake = TwilioFake::start().await;
    let app = app(backend, &fake, |s| s.sms.monthly_limit = 1).await;
    let admin = app.admin().await;
    let party = org(&app, &admin, "Party").await;
    policy(&app, &party, json!({"police_after_s": 600})).await;
    phone_channels(&app, &party.organiser, ORGANISER_PHONE, true, false).await;
    // The first alert's SMS goes; the month's ceiling is then reached for the second.
    let first = start(&app, &party.canvasser.token, 3600).await;
    app.post(
        &format!("/api/v1/outings/{first}/panic"),
        Some(&party.canvasser.token),
        json!({}),
    )
    .await;
    fake.wait_for("the first SMS", |s| s.len() == 1).await;
    let second = start(&app, &party.other_canvasser.token, 3600).await;
    let (_, alert) = app
        .post(
            &format!("/api/v1/outings/{second}/panic"),
            Some(&party.other_canvasser.token),
            json!({}),
        )
        .await;
    let second_alert = alert["id"].as_str().unwrap().to_owned();
    let row = crate::helpers::wait_for(8, "the second SMS row to fail", || async {
        let (_, alert) = app
            .get(
                &format!("/api/v1/alerts/{second_alert}"),
                &party.organiser.token,
            )
            .await;
        alert["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["channel"] == "sms" && n["status"] == "failed")
            .cloned()
    })
    .await;
    assert!(
        row["last_error"]
            .as_str()
            .unwrap()
            .contains("monthly SMS ceiling"),
        "{row}"
    );
    assert_eq!(fake.sent().len(), 1, "nothing more was sent");
    // Push still went (the organiser has no device: its row says so; it was not held back).
    let (_, alert) = app
        .get(
            &format!("/api/v1/alerts/{second_alert}"),
            &party.organiser.token,
        )
        .await;
    assert!(alert["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["channel"] == "webpush"));
    fake.stop().await;

    // A number the provider refuses (400): final at once, with the provider's words.
    let fake = TwilioFake::start().await;
    fake.reject_number(POLICE_PHONE);
    let app = self::app(backend, &fake, |_| {}).await;
    let admin = app.admin().await;
    let party = org(&app, &admin, "Party").await;
    phone_channels(&app, &party.organiser, POLICE_PHONE, true, false).await;
    let outing = start(&app, &party.canvasser.token, 3600).await;
    let (_, alert) = app
        .post(
            &format!("/api/v1/outings/{outing}/panic"),
            Some(&party.canvasser.token),
            json!({}),
        )
        .await;
    let alert_id = alert["id"].as_str().unwrap().to_owned();
    let row = crate::helpers::wait_for(8, "the refused SMS row", || async {
        let (_, alert) = app
            .get(
                &format!("/api/v1/alerts/{alert_id}"),
                &party.organiser.token,
            )
            .await;
        alert["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["channel"] == "sms" && n["status"] == "failed")
            .cloned()
    })
    .await;
    assert_eq!(row["attempts"], 1, "not retried: {row}");
    assert!(
        row["last_error"]
            .as_str()
            .unwrap()
            .contains("not a valid phone number"),
        "{row}"
    );
    fake.stop().await;
}
