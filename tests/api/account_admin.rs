//! The accounts an organiser needs: list, edit, passwords, disable and enable, and policy
//! changes in the audit log; the check-in ceiling.

use std::time::Duration;

use doorstep::domain::account::Role;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with, wait_for, Backend, TestApp, PASSWORD};
use crate::on_both_backends;
use crate::outings::org;
use crate::watch::EventStream;

on_both_backends!(
    organisers_list_and_edit_their_people,
    passwords_change_and_reset_and_end_logins,
    a_disabled_user_stops_at_once_while_their_outing_escalates,
    policy_changes_are_audited,
    checkins_have_a_per_user_ceiling,
);

async fn organisers_list_and_edit_their_people(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let ours = org(&app, &admin, "Ours").await;
    let theirs = org(&app, &admin, "Theirs").await;

    let (status, page) = app.get("/api/v1/users", &ours.organiser.token).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let ids: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&ours.canvasser.id.as_str()));
    assert!(ids.contains(&ours.organiser.id.as_str()));
    assert!(!ids.contains(&theirs.canvasser.id.as_str()), "{page}");
    assert!(
        !ids.contains(&ours.police.id.as_str()),
        "police belong to no org"
    );
    let (_, canvassers) = app
        .get(
            "/api/v1/users?role=canvasser&limit=1",
            &ours.organiser.token,
        )
        .await;
    assert_eq!(canvassers["items"].as_array().unwrap().len(), 1);
    assert_eq!(canvassers["items"][0]["role"], "canvasser");
    assert_eq!(canvassers["items"][0]["disabled"], false);
    assert_eq!(canvassers["items"][0]["language"], "en");
    let cursor = canvassers["next_cursor"].as_str().expect("a second page");
    let (_, second) = app
        .get(
            &format!("/api/v1/users?role=canvasser&limit=1&cursor={cursor}"),
            &ours.organiser.token,
        )
        .await;
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_ne!(second["items"][0]["id"], canvassers["items"][0]["id"]);
    let (status, _) = app
        .get(
            &format!("/api/v1/users?org_id={}", theirs.id),
            &ours.organiser.token,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.get("/api/v1/users", &ours.canvasser.token).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, all) = app
        .get(&format!("/api/v1/users?org_id={}", theirs.id), &admin.token)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(all.to_string().contains(&theirs.canvasser.id));

    // Edit: phone in E.164, language, name; null clears the phone.
    let path = format!("/api/v1/users/{}", ours.canvasser.id);
    let (status, user) = app
        .call(
            reqwest::Method::PATCH,
            &path,
            Some(&ours.organiser.token),
            Some(json!({"phone": "+447700900123", "language": "cy", "display_name": "Jo B"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["phone"], "+447700900123");
    assert_eq!(user["language"], "cy");
    assert_eq!(user["display_name"], "Jo B");
    for (body, field) in [
        (json!({"phone": "07700 900123"}), "phone"),
        (json!({"language": "fr"}), "language"),
        (json!({"display_name": ""}), "display_name"),
    ] {
        let (status, problem) = app
            .call(
                reqwest::Method::PATCH,
                &path,
                Some(&ours.organiser.token),
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["errors"][0]["field"], field);
    }
    let (status, user) = app
        .call(
            reqwest::Method::PATCH,
            &path,
            Some(&ours.canvasser.token),
            Some(json!({"phone": null})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "themselves: {user}");
    assert!(user["phone"].is_null());
    for (token, target) in [
        (&theirs.organiser.token, &ours.canvasser.id),
        (&ours.canvasser.token, &ours.other_canvasser.id),
    ] {
        let (status, _) = app
            .call(
                reqwest::Method::PATCH,
                &format!("/api/v1/users/{target}"),
                Some(token),
                Some(json!({"language": "en"})),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

async fn login_status(app: &TestApp, email: &str, password: &str) -> StatusCode {
    app.post(
        "/api/v1/auth/login",
        None,
        json!({"email": email, "password": password}),
    )
    .await
    .0
}

async fn passwords_change_and_reset_and_end_logins(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let org = org(&app, &admin, "Party").await;
    let other_login = app.login(&org.canvasser.email, PASSWORD).await;
    let this_login = app.login(&org.canvasser.email, PASSWORD).await;

    // Their own: the current password is needed; every other login ends.
    let change = |current: &str| json!({"current_password": current, "new_password": "a brand new passphrase"});
    let (status, _) = app
        .post(
            "/api/v1/me/password",
            Some(&this_login.access),
            change("wrong one"),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .post(
            "/api/v1/me/password",
            Some(&this_login.access),
            change(PASSWORD),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.get("/api/v1/me", &this_login.access).await;
    assert_eq!(status, StatusCode::OK, "the login that changed it goes on");
    let (status, _) = app.get("/api/v1/me", &other_login.access).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the other login ended");
    let (status, _) = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": other_login.refresh}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        login_status(&app, &org.canvasser.email, PASSWORD).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login_status(&app, &org.canvasser.email, "a brand new passphrase").await,
        StatusCode::OK
    );

    // A forgotten one: the organiser resets a canvasser's; the member's logins end.
    let (status, _) = app
        .post(
            &format!("/api/v1/users/{}/password", org.canvasser.id),
            Some(&org.organiser.token),
            json!({"new_password": "set by the organiser"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.get("/api/v1/me", &this_login.access).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        login_status(&app, &org.canvasser.email, "set by the organiser").await,
        StatusCode::OK
    );
    // Not another organiser's (an admin's job), nor a too-short one.
    let second = app
        .create_user(&admin.token, Role::Organiser, Some(&org.id), "Dee")
        .await;
    let (status, _) = app
        .post(
            &format!("/api/v1/users/{}/password", second.id),
            Some(&org.organiser.token),
            json!({"new_password": "set by the organiser"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, problem) = app
        .post(
            &format!("/api/v1/users/{}/password", second.id),
            Some(&admin.token),
            json!({"new_password": "short"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "new_password");
}

async fn a_disabled_user_stops_at_once_while_their_outing_escalates(backend: Backend) {
    let app = spawn_app_with(backend, crate::helpers::fast).await;
    let admin = app.admin().await;
    let org = org(&app, &admin, "Party").await;
    // Missed at the deadline, straight to level 1.
    let (status, body) = app
        .put(
            &format!("/api/v1/orgs/{}/escalation-policy", org.id),
            &org.organiser.token,
            json!({"reminder_before_s": 0, "grace_s": 0, "police_after_s": 600,
                   "repeat_s": 0, "ack_timeout_s": 600}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A second organiser with a stream open, and a canvasser out on a 3 s deadline.
    let second = app
        .create_user(&admin.token, Role::Organiser, Some(&org.id), "Dee")
        .await;
    let mut stream = EventStream::open(&app, &second.token, false).await;
    let mut watcher = EventStream::open(&app, &org.organiser.token, false).await;
    let (status, outing) = app
        .post(
            "/api/v1/outings",
            Some(&org.canvasser.token),
            json!({"checkin_interval_s": 3}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let outing_id = outing["id"].as_str().unwrap().to_owned();

    for user in [&second, &org.canvasser] {
        let (status, _) = app
            .post(
                &format!("/api/v1/users/{}/disable", user.id),
                Some(&org.organiser.token),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    let (status, _) = app.get("/api/v1/me", &second.token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the token stops");
    assert!(
        stream.ends_within(Duration::from_secs(2)).await,
        "the stream of a disabled account ended"
    );
    assert_eq!(
        login_status(&app, &second.email, PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "a disabled account logs in as a wrong password would"
    );
    // The canvasser's outing still escalates.
    let (event, alert) = watcher
        .next(Duration::from_secs(15))
        .await
        .expect("the missed check-in");
    assert_eq!(event, "alert.opened");
    assert_eq!(alert["outing_id"], outing_id.as_str());
    assert_eq!(alert["kind"], "missed_checkin");
    // The admin sees who did it; enabling lets them in again.
    let (_, audit) = app.get("/api/v1/audit", &admin.token).await;
    assert!(audit.to_string().contains("account.disable"), "{audit}");
    let (status, _) = app
        .post(
            &format!("/api/v1/users/{}/enable", second.id),
            Some(&org.organiser.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        login_status(&app, &second.email, PASSWORD).await,
        StatusCode::OK
    );
    // Nobody disables themselves.
    let (status, _) = app
        .post(
            &format!("/api/v1/users/{}/disable", org.organiser.id),
            Some(&org.organiser.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

async fn policy_changes_are_audited(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let org = org(&app, &admin, "Party").await;
    let (status, _) = app
        .put(
            &format!("/api/v1/orgs/{}/escalation-policy", org.id),
            &org.organiser.token,
            json!({"reminder_before_s": 60, "grace_s": 120, "police_after_s": 900,
                   "repeat_s": 300, "ack_timeout_s": 900}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let entry = wait_for(5, "the policy entry", || async {
        let (_, audit) = app.get("/api/v1/audit", &org.organiser.token).await;
        audit["items"]
            .as_array()
            .and_then(|items| items.iter().find(|e| e["action"] == "policy").cloned())
    })
    .await;
    assert_eq!(entry["actor"]["id"], org.organiser.id.as_str());
    assert_eq!(entry["detail"]["new"]["police_after_s"], 900);
    assert_eq!(
        entry["detail"]["old"]["police_after_s"], 600,
        "the default before"
    );
}

async fn checkins_have_a_per_user_ceiling(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.limits.checkins_per_minute = 5).await;
    let admin = app.admin().await;
    let org = org(&app, &admin, "Party").await;
    let (_, outing) = app
        .post(
            "/api/v1/outings",
            Some(&org.canvasser.token),
            json!({"checkin_interval_s": 600}),
        )
        .await;
    let path = format!(
        "/api/v1/outings/{}/checkins",
        outing["id"].as_str().unwrap()
    );
    for _ in 0..5 {
        let (status, _) = app
            .post(
                &path,
                Some(&org.canvasser.token),
                json!({"lat": 51.5, "lon": -0.1}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let resp = app
        .client
        .post(app.url(&path))
        .bearer_auth(&org.canvasser.token)
        .json(&json!({"lat": 51.5, "lon": -0.1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().contains_key("retry-after"));
}
