//! "Check on me", "are you OK?", changing an outing, and the owner's all-clear (api.md, "Check
//! on me"), on a moved clock: the scheduler and delivery loops are off and run on demand.

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, Backend, TestApp};
use crate::on_both_backends;
use crate::outings::{org, Org};

on_both_backends!(
    check_on_me_fires_at_its_own_time_with_its_note_and_a_checkin_clears_it,
    the_earliest_pending_deadline_wins,
    an_unanswered_welfare_check_opens_a_level_1_alert_and_an_answered_one_does_not,
    patch_recomputes_the_deadline_and_refuses_rule_breaks,
    all_clear_with_the_safe_pin_resolves_with_the_duress_pin_escalates_and_wrong_pins_count,
);

const SAFE: &str = "2468";
const DURESS: &str = "1357";
/// The server default policy's grace.
const GRACE_S: i64 = 300;

async fn app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |s| {
        s.scheduler.enabled = false;
        s.push.worker_enabled = false;
    })
    .await
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

async fn outing(app: &TestApp, token: &str, id: &str) -> Value {
    let (status, body) = app.get(&format!("/api/v1/outings/{id}"), token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn at(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("not a time: {value}"))
}

async fn advance_and_run(app: &TestApp, seconds: i64) {
    app.state.clock.advance(chrono::Duration::seconds(seconds));
    doorstep::scheduler::run_due_now(&app.state).await.unwrap();
}

async fn check_in(app: &TestApp, token: &str, id: &str) {
    let (status, body) = app
        .post(
            &format!("/api/v1/outings/{id}/checkins"),
            Some(token),
            json!({"lat": 51.5, "lon": -0.12}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn check_on_me_fires_at_its_own_time_with_its_note_and_a_checkin_clears_it(backend: Backend) {
    let app = app(backend).await;
    let admin = app.admin().await;
    let party = org(&app, &admin, "Party").await;
    let id = start(&app, &party.canvasser.token, 900).await;
    let path = format!("/api/v1/outings/{id}/check-on-me");
    let now = app.state.clock.now();
    let (status, body) = app
        .post(
            &path,
            Some(&party.canvasser.token),
            json!({"in_s": 600, "note": "going into number 14"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let due = at(&body["due_at"]);
    assert!(
        (due - now - chrono::Duration::seconds(600))
            .num_seconds()
            .abs()
            <= 2
    );
    let seen = outing(&app, &party.canvasser.token, &id).await;
    assert_eq!(
        at(&seen["next_checkin_due_at"]),
        due,
        "the check-on-me rules"
    );

    // Others may not set it; bad input names its field.
    let (status, _) = app
        .post(
            &path,
            Some(&party.other_canvasser.token),
            json!({"in_s": 600}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .post(&path, Some(&party.organiser.token), json!({"in_s": 600}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for (body, field) in [
        (json!({"in_s": 3601}), "in_s"),
        (json!({"in_s": 5}), "in_s"),
        (json!({"in_s": 600, "note": "x".repeat(501)}), "note"),
    ] {
        let (status, problem) = app.post(&path, Some(&party.canvasser.token), body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["errors"][0]["field"], field);
    }

    // Nothing before its time (and its grace); then a missed check-in carrying the note.
    advance_and_run(&app, 600 + GRACE_S - 5).await;
    let seen = outing(&app, &party.organiser.token, &id).await;
    assert_eq!(seen["status"], "active", "{seen}");
    advance_and_run(&app, 10).await;
    let seen = outing(&app, &party.organiser.token, &id).await;
    assert_eq!(seen["status"], "overdue", "{seen}");
    assert_eq!(seen["open_alert"]["kind"], "missed_checkin");
    assert_eq!(seen["open_alert"]["level"], 1);
    assert_eq!(seen["open_alert"]["reason"], "going into number 14");
    let alert_id = seen["open_alert"]["id"].as_str().unwrap().to_owned();
    let rows = app.outbox(Some(&alert_id), None).await;
    let pushed = rows
        .iter()
        .find(|r| r.message_type.as_str() == "missed_checkin")
        .expect("the missed check-in is pushed");
    assert!(
        pushed.payload.contains("going into number 14"),
        "{}",
        pushed.payload
    );

    // Another outing: a check-in clears a pending check-on-me, and the regular interval rules.
    let other = start(&app, &party.other_canvasser.token, 900).await;
    let (status, _) = app
        .post(
            &format!("/api/v1/outings/{other}/check-on-me"),
            Some(&party.other_canvasser.token),
            json!({"in_s": 300}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    check_in(&app, &party.other_canvasser.token, &other).await;
    let seen = outing(&app, &party.other_canvasser.token, &other).await;
    let regular = app.state.clock.now() + chrono::Duration::seconds(900);
    assert!(
        (at(&seen["next_checkin_due_at"]) - regular)
            .num_seconds()
            .abs()
            <= 2
    );
    advance_and_run(&app, 300 + GRACE_S + 1).await;
    let seen = outing(&app, &party.organiser.token, &other).await;
    assert_eq!(seen["status"], "active", "cleared by the check-in: {seen}");
    assert!(seen["open_alert"].is_null());
}

async fn the_earliest_pending_deadline_wins(backend: Backend) {
    let app = app(backend).await;
    let admin = app.admin().await;
    let party = org(&app, &admin, "Party").await;
    // The regular deadline (2 min) comes before the check-on-me (10 min): it rules, and its
    // alert has no reason.
    let id = start(&app, &party.canvasser.token, 120).await;
    let regular = at(&outing(&app, &party.canvasser.token, &id).await["next_checkin_due_at"]);
    let (status, _) = app
        .post(
            &format!("/api/v1/outings/{id}/check-on-me"),
            Some(&party.canvasser.token),
            json!({"in_s": 600, "note": "number 3"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let seen = outing(&app, &party.canvasser.token, &id).await;
    assert_eq!(at(&seen["next_checkin_due_at"]), regular);
    advance_and_run(&app, 120 + GRACE_S + 1).await;
    let seen = outing(&app, &party.organiser.token, &id).await;
    assert_eq!(seen["open_alert"]["kind"], "missed_checkin", "{seen}");
    assert!(seen["open_alert"]["reason"].is_null(), "{seen}");
    // While overdue, a check-on-me is refused: check in first.
    let (status, _) = app
        .post(
            &format!("/api/v1/outings/{id}/check-on-me"),
            Some(&party.canvasser.token),
            json!({"in_s": 600}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

/// The reply token a `welfare_check` push carried (read from the outbox: the worker is off).
async fn reply_token(app: &TestApp, outing: &str) -> String {
    let rows = app.outbox(None, Some(outing)).await;
    let row = rows
        .iter()
        .rev()
        .find(|r| r.message_type.as_str() == "welfare_check")
        .expect("a welfare_check push");
    let payload: Value = serde_json::from_str(&row.payload).unwrap();
    assert_eq!(payload["type"], "welfare_check");
    payload["reply_token"]
        .as_str()
        .expect("a reply token")
        .to_owned()
}

async fn an_unanswered_welfare_check_opens_a_level_1_alert_and_an_answered_one_does_not(
    backend: Backend,
) {
    let app = app(backend).await;
    let admin = app.admin().await;
    let party = org(&app, &admin, "Party").await;
    let other_org = org(&app, &admin, "Other").await;
    let id = start(&app, &party.canvasser.token, 3600).await;
    let path = format!("/api/v1/outings/{id}/welfare-check");
    // Who may ask: organisers and the police contacts; not canvassers, not another org.
    let (status, _) = app
        .post(&path, Some(&party.other_canvasser.token), json!({}))
        .await;
    assert!(
        matches!(status, StatusCode::NOT_FOUND | StatusCode::FORBIDDEN),
        "{status}"
    );
    let (status, _) = app
        .post(&path, Some(&party.canvasser.token), json!({}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .post(&path, Some(&other_org.organiser.token), json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let now = app.state.clock.now();
    let (status, body) = app
        .post(
            &path,
            Some(&party.organiser.token),
            json!({"note": "Are you OK, Jo?"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let due = at(&body["due_at"]);
    assert!(
        (due - now - chrono::Duration::seconds(120))
            .num_seconds()
            .abs()
            <= 2
    );
    let token = reply_token(&app, &id).await;

    // Unanswered: past the reply time and the grace, a missed check-in at level 1 saying why.
    advance_and_run(&app, 120 + GRACE_S + 1).await;
    let seen = outing(&app, &party.organiser.token, &id).await;
    assert_eq!(seen["open_alert"]["kind"], "missed_checkin", "{seen}");
    assert_eq!(seen["open_alert"]["level"], 1);
    assert!(seen["open_alert"]["reason"]
        .as_str()
        .unwrap()
        .contains("Are you OK, Jo?"));
    // The question is spent with the alert: its token answers nothing now.
    let (status, _) = app
        .post(
            &format!("/api/v1/outings/{id}/welfare-reply"),
            None,
            json!({"token": token, "kind": "ok"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Answered from the notification (no login): no alert, the deadline restarts.
    let other = start(&app, &party.other_canvasser.token, 3600).await;
    let (status, _) = app
        .post(
            &format!("/api/v1/outings/{other}/welfare-check"),
            Some(&party.police.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "a police contact may ask");
    let token = reply_token(&app, &other).await;
    let reply = format!("/api/v1/outings/{other}/welfare-reply");
    let (status, _) = app
        .post(
            &reply,
            None,
            json!({"token": "not-the-token", "kind": "ok"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .post(
            &format!("/api/v1/outings/{id}/welfare-reply"),
            None,
            json!({"token": token, "kind": "ok"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a token answers its own outing only"
    );
    let (status, problem) = app
        .post(&reply, None, json!({"token": token, "kind": "fine"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["field"], "kind");
    let (status, body) = app
        .post(&reply, None, json!({"token": token, "kind": "ok"}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    advance_and_run(&app, 120 + GRACE_S + 1).await;
    let seen = outing(&app, &party.organiser.token, &other).await;
    assert_eq!(seen["status"], "active", "{seen}");
    assert!(seen["open_alert"].is_null());
    let (status, _) = app
        .post(&reply, None, json!({"token": token, "kind": "ok"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "answered once");

    // "I need help" from the notification raises need_help.
    let (status, _) = app
        .post(
            &format!("/api/v1/outings/{other}/welfare-check"),
            Some(&party.organiser.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let token = reply_token(&app, &other).await;
    let (status, _) = app
        .post(&reply, None, json!({"token": token, "kind": "need_help"}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let seen = outing(&app, &party.organiser.token, &other).await;
    assert_eq!(seen["open_alert"]["kind"], "need_help", "{seen}");
}

async fn patch_recomputes_the_deadline_and_refuses_rule_breaks(backend: Backend) {
    let app = app(backend).await;
    let admin = app.admin().await;
    let party = org(&app, &admin, "Party").await;
    let policy = json!({"reminder_before_s": 120, "grace_s": 300, "police_after_s": 600,
                        "repeat_s": 300, "ack_timeout_s": 900,
                        "solo_max_checkin_interval_s": 1800});
    let (status, body) = app
        .put(
            &format!("/api/v1/orgs/{}/escalation-policy", party.id),
            &party.organiser.token,
            policy,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = start(&app, &party.canvasser.token, 900).await;
    let started = at(&outing(&app, &party.canvasser.token, &id).await["started_at"]);
    let path = format!("/api/v1/outings/{id}");
    // A shorter interval moves the deadline earlier, from the last check-in.
    let (status, seen) = app
        .patch(
            &path,
            &party.canvasser.token,
            json!({"checkin_interval_s": 300}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    assert_eq!(seen["checkin_interval_s"], 300);
    assert_eq!(
        at(&seen["next_checkin_due_at"]),
        started + chrono::Duration::seconds(300)
    );
    // A planned end before that deadline caps it; null removes it again.
    let end = app.state.clock.now() + chrono::Duration::seconds(120);
    let (status, seen) = app
        .patch(
            &path,
            &party.canvasser.token,
            json!({"planned_end_at": end.to_rfc3339()}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    assert!(
        (at(&seen["next_checkin_due_at"]) - end)
            .num_milliseconds()
            .abs()
            < 1000
    );
    let (status, seen) = app
        .patch(
            &path,
            &party.canvasser.token,
            json!({"planned_end_at": null, "note": "Elm Street, odd numbers"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    assert!(seen["planned_end_at"].is_null());
    assert_eq!(seen["note"], "Elm Street, odd numbers");
    assert_eq!(
        at(&seen["next_checkin_due_at"]),
        started + chrono::Duration::seconds(300)
    );
    // The rules still hold, each refusal naming its field.
    for (body, field) in [
        (json!({"checkin_interval_s": 10}), "checkin_interval_s"),
        (json!({"checkin_interval_s": 3600}), "checkin_interval_s"),
        (
            json!({"planned_end_at": (app.state.clock.now() - chrono::Duration::seconds(60)).to_rfc3339()}),
            "planned_end_at",
        ),
        (json!({"note": "x".repeat(501)}), "note"),
    ] {
        let (status, problem) = app.patch(&path, &party.canvasser.token, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    let (status, _) = app
        .patch(&path, &party.canvasser.token, json!({"grace_s": 1}))
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown fields are refused"
    );
    let (status, _) = app
        .patch(
            &path,
            &party.organiser.token,
            json!({"checkin_interval_s": 600}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "only the canvasser changes it"
    );
    let (status, _) = app
        .patch(
            &path,
            &party.other_canvasser.token,
            json!({"checkin_interval_s": 600}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .post(
            &format!("{path}/end"),
            Some(&party.canvasser.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .patch(
            &path,
            &party.canvasser.token,
            json!({"checkin_interval_s": 600}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

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

async fn panic(app: &TestApp, party: &Org, id: &str) -> String {
    let (status, alert) = app
        .post(
            &format!("/api/v1/outings/{id}/panic"),
            Some(&party.canvasser.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{alert}");
    alert["id"].as_str().unwrap().to_owned()
}

async fn all_clear_with_the_safe_pin_resolves_with_the_duress_pin_escalates_and_wrong_pins_count(
    backend: Backend,
) {
    let app = app(backend).await;
    let admin = app.admin().await;
    let party = org(&app, &admin, "Party").await;
    set_pins(&app, &party.canvasser.token).await;
    let id = start(&app, &party.canvasser.token, 900).await;
    let path = format!("/api/v1/outings/{id}/all-clear");
    let token = party.canvasser.token.clone();

    // Nothing to cancel yet.
    let (status, _) = app.post(&path, Some(&token), json!({"pin": SAFE})).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // The safe PIN: resolved as a false alarm, all clear to everyone told.
    let alert = panic(&app, &party, &id).await;
    let (status, problem) = app.post(&path, Some(&token), json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "pin");
    let (status, _) = app.post(&path, Some(&token), json!({"pin": "0000"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .post(&path, Some(&party.organiser.token), json!({"pin": SAFE}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the owner's own alarm only");
    let (status, cleared) = app.post(&path, Some(&token), json!({"pin": SAFE})).await;
    assert_eq!(status, StatusCode::OK, "{cleared}");
    assert!(cleared["open_alert"].is_null());
    assert_eq!(cleared["status"], "active");
    let (_, seen) = app
        .get(&format!("/api/v1/alerts/{alert}"), &party.organiser.token)
        .await;
    assert_eq!(seen["status"], "resolved", "{seen}");
    assert_eq!(seen["resolution"], "false_alarm");
    let rows = app.outbox(Some(&alert), None).await;
    assert!(rows.iter().any(|r| r.message_type.as_str() == "all_clear"
        && r.recipient_id.map(|u| u.to_string()).as_deref() == Some(party.police.id.as_str())));

    // The duress PIN: the same answer, and the alert silently becomes duress.
    let alert = panic(&app, &party, &id).await;
    let (status, answer) = app.post(&path, Some(&token), json!({"pin": DURESS})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(answer["open_alert"].is_null(), "{answer}");
    assert_eq!(answer["status"], "active");
    let (_, seen) = app
        .get(&format!("/api/v1/alerts/{alert}"), &party.organiser.token)
        .await;
    assert_eq!(seen["kind"], "duress", "{seen}");
    assert_eq!(seen["status"], "open");
    let (status, _) = app.get(&format!("/api/v1/alerts/{alert}"), &token).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "hidden from the person under duress"
    );
    let (_, list) = app.get("/api/v1/alerts", &token).await;
    assert!(!list.to_string().contains(&alert), "{list}");
    // ...and the open duress alert is, to the phone, nothing to cancel.
    let (status, _) = app.post(&path, Some(&token), json!({"pin": SAFE})).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Wrong PINs at the all-clear prompt count towards the limit: the fifth locks it.
    let other = start(&app, &party.other_canvasser.token, 900).await;
    set_pins(&app, &party.other_canvasser.token).await;
    let other_path = format!("/api/v1/outings/{other}/all-clear");
    for _ in 0..5 {
        let (status, _) = app
            .post(
                &other_path,
                Some(&party.other_canvasser.token),
                json!({"pin": "9999"}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let (status, _) = app
        .post(
            &other_path,
            Some(&party.other_canvasser.token),
            json!({"pin": SAFE}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "locked after five wrong PINs"
    );
    let (_, board) = app
        .get("/api/v1/watch/overdue", &party.organiser.token)
        .await;
    assert!(board.to_string().contains("wrong_pins"), "{board}");
}
