//! The incident log and the do-not-knock register (api.md, "Field safety").

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, Backend, TestApp};
use crate::on_both_backends;
use crate::outings::{org, Org};
use crate::push_receiver::PushReceiver;
use crate::webhook_receiver::WebhookReceiver;

on_both_backends!(
    incidents_are_seen_by_exactly_who_the_contract_says,
    incidents_are_append_only_and_a_changed_entry_breaks_the_export_chain,
    a_new_incident_pushes_the_organisers_and_when_shared_the_police,
    a_new_incident_reaches_the_org_webhook_and_the_personal_webhooks_it_may,
    bad_incident_input_names_the_field,
    the_export_reads_in_the_organisations_time_zone_and_utc,
    cautions_visibility_expiry_and_retirement,
    a_pairs_only_caution_refuses_a_solo_outing_and_start_lists_cautions,
    a_checkin_answers_with_its_cautions_and_do_not_knock_pushes_once,
    bad_caution_input_names_the_field,
    cautions_left_unindexed_by_a_grid_change_are_indexed_again,
);

async fn app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |s| {
        s.push.allow_private_endpoints = true;
        s.push.poll_interval_ms = 50;
    })
    .await
}

async fn report(app: &TestApp, token: &str, body: Value) -> Value {
    let (status, incident) = app.post("/api/v1/incidents", Some(token), body).await;
    assert_eq!(status, StatusCode::CREATED, "{incident}");
    incident
}

fn threat(shared: bool) -> Value {
    json!({"category": "threat", "description": "Shouted at and followed to the gate",
           "lat": 51.5072, "lon": -0.1276, "share_with_police": shared})
}

async fn incidents_are_seen_by_exactly_who_the_contract_says(backend: Backend) {
    let app = app(backend).await;
    let admin = app.admin().await;
    let party = org(&app, &admin, "Party").await;
    let rival = org(&app, &admin, "Rival").await;
    let shared = report(&app, &party.canvasser.token, threat(true)).await;
    let unshared = report(&app, &party.canvasser.token, threat(false)).await;
    assert_eq!(shared["status"], "open");
    assert_eq!(shared["reporter"]["id"], party.canvasser.id.as_str());
    assert_eq!(shared["location"], json!({"lat": 51.5072, "lon": -0.1276}));
    assert_eq!(shared["entries"], json!([]));
    assert_eq!(shared["hash"].as_str().unwrap().len(), 64);
    let (s, u) = (
        shared["id"].as_str().unwrap(),
        unshared["id"].as_str().unwrap(),
    );

    let ids = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let can_read = |token: String, id: String| {
        let app = &app;
        async move { app.get(&format!("/api/v1/incidents/{id}"), &token).await.0 }
    };
    // The reporter and the organisers: both.
    for who in [&party.canvasser, &party.organiser] {
        let (status, page) = app.get("/api/v1/incidents", &who.token).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ids(&page), [u, s], "newest first");
        assert_eq!(can_read(who.token.clone(), s.into()).await, StatusCode::OK);
        assert_eq!(can_read(who.token.clone(), u.into()).await, StatusCode::OK);
    }
    // The police contact: the shared one only.
    let (_, page) = app.get("/api/v1/incidents", &party.police.token).await;
    assert_eq!(ids(&page), [s]);
    assert_eq!(
        can_read(party.police.token.clone(), s.into()).await,
        StatusCode::OK
    );
    assert_eq!(
        can_read(party.police.token.clone(), u.into()).await,
        StatusCode::NOT_FOUND
    );
    // Another canvasser of the party, another organisation's organiser and police: nothing.
    for who in [&party.other_canvasser, &rival.organiser, &rival.police] {
        let (_, page) = app.get("/api/v1/incidents", &who.token).await;
        assert_eq!(ids(&page), Vec::<String>::new());
        assert_eq!(
            can_read(who.token.clone(), s.into()).await,
            StatusCode::NOT_FOUND
        );
        let (status, _) = app
            .post(
                &format!("/api/v1/incidents/{s}/entries"),
                Some(&who.token),
                json!({"text": "seen"}),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    // Police add to a shared incident but do not close it; the reporter does.
    let (status, _) = app
        .post(
            &format!("/api/v1/incidents/{s}/entries"),
            Some(&party.police.token),
            json!({"text": "Crime reference 42/1234"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = app
        .post(
            &format!("/api/v1/incidents/{s}/close"),
            Some(&party.police.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Reads of the position by others are audited; the reporter's own are not.
    let (_, audit) = app.get("/api/v1/audit", &party.organiser.token).await;
    let incident_reads: Vec<&Value> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "incident")
        .collect();
    assert!(!incident_reads.is_empty(), "{audit}");
    assert!(incident_reads
        .iter()
        .all(|r| r["actor"]["id"] != party.canvasser.id.as_str()));
    assert!(incident_reads
        .iter()
        .any(|r| r["actor"]["id"] == party.police.id.as_str()));
}

async fn incidents_are_append_only_and_a_changed_entry_breaks_the_export_chain(backend: Backend) {
    let app = app(backend).await;
    let admin = app.admin().await;
    let party = org(&app, &admin, "Party").await;
    let incident = report(&app, &party.canvasser.token, threat(true)).await;
    let id = incident["id"].as_str().unwrap().to_owned();
    let first_hash = incident["hash"].as_str().unwrap().to_owned();
    let (status, after) = app
        .post(
            &format!("/api/v1/incidents/{id}/entries"),
            Some(&party.organiser.token),
            json!({"text": "Called the police contact"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{after}");
    let entry_hash = after["entries"][0]["hash"].as_str().unwrap().to_owned();
    assert_eq!(
        after["hash"],
        entry_hash.as_str(),
        "the head is the last entry"
    );
    assert_ne!(entry_hash, first_hash);
    // No route edits or deletes anything.
    for method in [
        reqwest::Method::PUT,
        reqwest::Method::PATCH,
        reqwest::Method::DELETE,
    ] {
        for path in [
            format!("/api/v1/incidents/{id}"),
            format!("/api/v1/incidents/{id}/entries"),
            format!(
                "/api/v1/incidents/{id}/entries/{}",
                after["entries"][0]["id"].as_str().unwrap()
            ),
        ] {
            let (status, _) = app
                .call(
                    method.clone(),
                    &path,
                    Some(&party.organiser.token),
                    Some(json!({"text": "x"})),
                )
                .await;
            assert!(
                status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}: {status}"
            );
        }
    }
    let (status, closed) = app
        .post(
            &format!("/api/v1/incidents/{id}/close"),
            Some(&party.organiser.token),
            json!({"note": "Handed to the police"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(closed["status"], "closed");
    assert_eq!(closed["entries"][1]["kind"], "close");
    let (status, _) = app
        .post(
            &format!("/api/v1/incidents/{id}/entries"),
            Some(&party.canvasser.token),
            json!({"text": "late"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "closed is closed");

    let export = |app: &TestApp| {
        let req = app
            .client
            .get(app.url(&format!("/api/v1/incidents/{id}/export")))
            .bearer_auth(&party.organiser.token);
        async move {
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            assert!(resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"));
            resp.text().await.unwrap()
        }
    };
    let html = export(&app).await;
    assert!(html.contains("Chain of entries: intact"), "{html}");
    assert!(html.contains(&entry_hash));
    assert!(html.contains("Called the police contact"));
    assert!(html.contains("Olive Organiser"));
    assert!(html.contains("UTC"));
    assert!(!html.contains("BROKEN"));

    // Someone with the database changes an entry behind the API's back.
    let entry_id = after["entries"][0]["id"].as_str().unwrap().to_owned();
    app.state
        .store
        .write(move |conn| {
            use diesel::prelude::*;
            use doorstep::store::schema::incident_entries;
            diesel::update(incident_entries::table.find(entry_id))
                .set(incident_entries::text.eq("Nothing happened"))
                .execute(conn)
                .map_err(doorstep::error::AppError::from)?;
            Ok(())
        })
        .await
        .unwrap();
    let html = export(&app).await;
    assert!(html.contains("Chain of entries: BROKEN"), "{html}");
    assert!(html.contains("Nothing happened"));
}

async fn a_new_incident_pushes_the_organisers_and_when_shared_the_police(backend: Backend) {
    let app = app(backend).await;
    let push = PushReceiver::start().await;
    let admin = app.admin().await;
    let party = org(&app, &admin, "Party").await;
    for (who, name) in [
        (&party.organiser, "olive"),
        (&party.police, "pc"),
        (&party.other_canvasser, "sam"),
        (&party.canvasser, "jo"),
    ] {
        let (status, _) = app
            .post(
                "/api/v1/push/subscriptions",
                Some(&who.token),
                push.subscription(name),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let unshared = report(&app, &party.canvasser.token, threat(false)).await;
    let got = push.wait_for("olive", 1, Duration::from_secs(8)).await;
    assert_eq!(got[0].payload["type"], "incident");
    assert_eq!(got[0].payload["incident_id"], unshared["id"]);
    assert!(got[0].payload["title"].as_str().unwrap().contains("Threat"));
    let shared = report(&app, &party.canvasser.token, threat(true)).await;
    let got = push.wait_for("pc", 1, Duration::from_secs(8)).await;
    assert_eq!(got.len(), 1, "the police hear of the shared one only");
    assert_eq!(got[0].payload["incident_id"], shared["id"]);
    push.wait_for("olive", 2, Duration::from_secs(8)).await;
    // Nobody else is told: not the reporter, not another canvasser.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(push.received_for("sam").is_empty());
    assert!(push.received_for("jo").is_empty());
    assert_eq!(push.received_for("pc").len(), 1);
}

const ORG_SECRET: &str = "an organisation secret of 32 chars";

async fn a_new_incident_reaches_the_org_webhook_and_the_personal_webhooks_it_may(backend: Backend) {
    let app = app(backend).await;
    let admin = app.admin().await;
    let party = org(&app, &admin, "Party").await;
    let org_hook = WebhookReceiver::start(ORG_SECRET).await;
    let police_hook = WebhookReceiver::start("not yet known").await;
    let (status, body) = app
        .put(
            &format!("/api/v1/orgs/{}/webhook", party.id),
            &party.organiser.token,
            json!({"url": org_hook.url, "secret": ORG_SECRET}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .put(
            "/api/v1/me/channels",
            &party.police.token,
            json!({"email": false, "webhook_url": police_hook.url}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    police_hook.set_secret(
        body["webhook_secret"]
            .as_str()
            .expect("the webhook's secret"),
    );

    // Not shared: the organisation's webhook hears of it; the police contact's does not.
    let unshared = report(&app, &party.canvasser.token, threat(false)).await;
    org_hook
        .wait_for("the org webhook", Duration::from_secs(8), |r| {
            r.iter().any(|r| r.status == 200)
        })
        .await;
    let request = org_hook.requests().remove(0);
    assert!(request.verified, "signed with the organisation's secret");
    let event = request.json();
    assert_eq!(event["type"], "incident");
    assert_eq!(event["event_id"].as_str(), request.event_id.as_deref());
    assert!(event["recipient"].is_null());
    assert_eq!(event["incident"]["id"], unshared["id"]);
    assert_eq!(event["incident"]["category"], "threat");
    assert_eq!(event["incident"]["share_with_police"], false);
    // The report's words and position stay behind a login.
    let text = event.to_string();
    assert!(!text.contains("Shouted"), "{text}");
    assert!(!text.contains("51.5072"), "{text}");
    assert!(event.get("alert").is_none());

    // Shared: the police contact's own webhook names them.
    let shared = report(&app, &party.canvasser.token, threat(true)).await;
    police_hook
        .wait_for("the police webhook", Duration::from_secs(8), |r| {
            r.iter().any(|r| r.status == 200)
        })
        .await;
    org_hook
        .wait_for("the second org event", Duration::from_secs(8), |r| {
            r.iter().filter(|r| r.status == 200).count() == 2
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let police_events = police_hook.requests();
    assert_eq!(
        police_events.len(),
        1,
        "the unshared incident never reached the police"
    );
    assert!(police_events[0].verified);
    let event = police_events[0].json();
    assert_eq!(event["incident"]["id"], shared["id"]);
    assert_eq!(event["recipient"]["id"], party.police.id.as_str());
    org_hook.stop().await;
    police_hook.stop().await;
}

async fn the_export_reads_in_the_organisations_time_zone_and_utc(backend: Backend) {
    let app = app(backend).await;
    let admin = app.admin().await;
    let party = org(&app, &admin, "Party").await;
    let (status, body) = app
        .get(
            &format!("/api/v1/orgs/{}", party.id),
            &party.organiser.token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["timezone"], "Europe/London", "the default zone");
    // Bad zones and the wrong people are refused.
    let path = format!("/api/v1/orgs/{}", party.id);
    let (status, body) = app
        .patch(
            &path,
            &party.organiser.token,
            json!({"timezone": "Mars/Olympus"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["field"], "timezone");
    let (status, _) = app
        .patch(
            &path,
            &party.canvasser.token,
            json!({"timezone": "Europe/Dublin"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let other = org(&app, &admin, "Other").await;
    let (status, _) = app
        .patch(
            &path,
            &other.organiser.token,
            json!({"timezone": "Europe/Dublin"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Summer in London: 18:42 UTC is 19:42 BST; in winter the same clock reads GMT.
    let mut summer = threat(false);
    summer["occurred_at"] = json!("2026-06-12T18:42:05Z");
    let incident = report(&app, &party.canvasser.token, summer).await;
    let export = |id: String| {
        let app = &app;
        let token = party.organiser.token.clone();
        async move {
            let response = app
                .client
                .get(format!("{}/api/v1/incidents/{id}/export", app.address))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.text().await.unwrap()
        }
    };
    let html = export(incident["id"].as_str().unwrap().to_owned()).await;
    assert!(
        html.contains("2026-06-12 19:42:05 BST (18:42:05 UTC)"),
        "{html}"
    );
    let mut winter = threat(false);
    winter["occurred_at"] = json!("2025-12-12T18:42:05Z");
    let incident = report(&app, &party.canvasser.token, winter).await;
    let html = export(incident["id"].as_str().unwrap().to_owned()).await;
    assert!(
        html.contains("2025-12-12 18:42:05 GMT (18:42:05 UTC)"),
        "{html}"
    );

    // Another zone, set by the organiser.
    let (status, body) = app
        .patch(
            &path,
            &party.organiser.token,
            json!({"timezone": "America/New_York"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["timezone"], "America/New_York");
    let html = export(incident["id"].as_str().unwrap().to_owned()).await;
    assert!(
        html.contains("2025-12-12 13:42:05 EST (18:42:05 UTC)"),
        "{html}"
    );
}

async fn bad_incident_input_names_the_field(backend: Backend) {
    let app = app(backend).await;
    let admin = app.admin().await;
    let party = org(&app, &admin, "Party").await;
    let cases = [
        (
            json!({"category": "rudeness", "description": "x", "share_with_police": false}),
            "category",
        ),
        (
            json!({"category": "threat", "description": "  ", "share_with_police": false}),
            "description",
        ),
        (
            json!({"category": "threat", "description": "x".repeat(4001), "share_with_police": false}),
            "description",
        ),
        (
            json!({"category": "threat", "description": "x", "lat": 91.0, "lon": 0.0, "share_with_police": false}),
            "lat",
        ),
        (
            json!({"category": "threat", "description": "x", "lat": 51.0, "share_with_police": false}),
            "lon",
        ),
        (
            json!({"category": "threat", "description": "x", "outing_id": "nope", "share_with_police": false}),
            "outing_id",
        ),
        (
            json!({"category": "threat", "description": "x", "outing_id": uuid::Uuid::new_v4(), "share_with_police": false}),
            "outing_id",
        ),
        (
            json!({"category": "threat", "description": "x", "occurred_at": "2099-01-01T00:00:00Z", "share_with_police": false}),
            "occurred_at",
        ),
        (
            json!({"category": "threat", "description": "x", "share_with_police": false, "severity": 3}),
            "severity",
        ),
    ];
    for (body, field) in cases {
        let (status, problem) = app
            .post(
                "/api/v1/incidents",
                Some(&party.canvasser.token),
                body.clone(),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {problem}"
        );
        assert!(problem.to_string().contains(field), "{field}: {problem}");
    }
    let (status, _) = app
        .post("/api/v1/incidents", Some(&party.police.token), threat(true))
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "police do not report for a party"
    );
    let incident = report(&app, &party.canvasser.token, threat(true)).await;
    let (status, problem) = app
        .post(
            &format!(
                "/api/v1/incidents/{}/entries",
                incident["id"].as_str().unwrap()
            ),
            Some(&party.canvasser.token),
            json!({"text": ""}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["field"], "text");
}

fn caution(level: &str, lat: f64, lon: f64, radius: f64) -> Value {
    json!({"lat": lat, "lon": lon, "radius_m": radius, "level": level,
           "reason": "Aggressive dog loose in the front garden"})
}

async fn mark(app: &TestApp, org: &Org, token: &str, body: Value) -> Value {
    let (status, c) = app
        .post(
            &format!("/api/v1/orgs/{}/cautions", org.id),
            Some(token),
            body,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    c
}

async fn cautions_visibility_expiry_and_retirement(backend: Backend) {
    let app = app(backend).await;
    let admin = app.admin().await;
    let party = org(&app, &admin, "Party").await;
    let rival = org(&app, &admin, "Rival").await;
    let by_organiser = mark(
        &app,
        &party,
        &party.organiser.token,
        caution("note", 51.5, -0.12, 50.0),
    )
    .await;
    assert_eq!(
        by_organiser["created_by"]["id"],
        party.organiser.id.as_str()
    );
    let by_police = mark(
        &app,
        &party,
        &party.police.token,
        caution("do_not_knock", 51.6, -0.12, 50.0),
    )
    .await;
    // A canvasser does not mark; another organisation's people do not see the register.
    let (status, _) = app
        .post(
            &format!("/api/v1/orgs/{}/cautions", party.id),
            Some(&party.canvasser.token),
            caution("note", 51.5, -0.12, 50.0),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for who in [&rival.organiser, &rival.police] {
        let (status, _) = app
            .get(&format!("/api/v1/orgs/{}/cautions", party.id), &who.token)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let list = |token: String, query: &'static str| {
        let app = &app;
        let path = format!("/api/v1/orgs/{}/cautions{query}", party.id);
        async move {
            let (status, page) = app.get(&path, &token).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            page["items"].as_array().unwrap().len()
        }
    };
    assert_eq!(list(party.canvasser.token.clone(), "").await, 2);
    assert_eq!(list(party.police.token.clone(), "").await, 2);
    assert_eq!(
        list(
            party.canvasser.token.clone(),
            "?near=51.5003,-0.12&within_m=0"
        )
        .await,
        1
    );
    assert_eq!(
        list(
            party.canvasser.token.clone(),
            "?near=51.52,-0.12&within_m=0"
        )
        .await,
        0
    );
    assert_eq!(
        list(
            party.canvasser.token.clone(),
            "?near=51.52,-0.12&within_m=3000"
        )
        .await,
        1
    );

    // Expiry: 90 days on by default; a lapsed caution is not listed until renewed.
    let created =
        chrono::DateTime::parse_from_rfc3339(by_organiser["created_at"].as_str().unwrap()).unwrap();
    let expires =
        chrono::DateTime::parse_from_rfc3339(by_organiser["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!((expires - created).num_days(), 90);
    // A caution set to lapse in two seconds is not listed once the clock passes it, until
    // renewed (for another 90 days).
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let mut short = caution("note", 51.7, -0.12, 50.0);
    short["expires_at"] = json!(soon);
    let short = mark(&app, &party, &party.organiser.token, short).await;
    assert_eq!(list(party.canvasser.token.clone(), "").await, 3);
    app.state.clock.advance(chrono::Duration::seconds(5));
    assert_eq!(list(party.canvasser.token.clone(), "").await, 2);
    let short_id = short["id"].as_str().unwrap();
    let (status, renewed) = app
        .post(
            &format!("/api/v1/orgs/{}/cautions/{short_id}/renew", party.id),
            Some(&party.organiser.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    assert_eq!(list(party.canvasser.token.clone(), "").await, 3);
    let (status, _) = app
        .delete(
            &format!("/api/v1/orgs/{}/cautions/{short_id}", party.id),
            &party.organiser.token,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let id = by_organiser["id"].as_str().unwrap();

    // Retiring: not a canvasser; the police author may retire their own; organisers any.
    let police_id = by_police["id"].as_str().unwrap();
    let (status, _) = app
        .delete(
            &format!("/api/v1/orgs/{}/cautions/{id}", party.id),
            &party.canvasser.token,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .delete(
            &format!("/api/v1/orgs/{}/cautions/{id}", party.id),
            &party.police.token,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "not the police contact's own"
    );
    let (status, _) = app
        .delete(
            &format!("/api/v1/orgs/{}/cautions/{police_id}", party.id),
            &party.police.token,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app
        .delete(
            &format!("/api/v1/orgs/{}/cautions/{id}", party.id),
            &party.organiser.token,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(list(party.organiser.token.clone(), "").await, 0);
    let (status, _) = app
        .delete(
            &format!("/api/v1/orgs/{}/cautions/{id}", party.id),
            &party.organiser.token,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Every change is in the audit log.
    let (_, audit) = app
        .get("/api/v1/audit?limit=200", &party.organiser.token)
        .await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["action"].as_str())
        .collect();
    for action in ["caution.marked", "caution.renewed", "caution.retired"] {
        assert!(actions.contains(&action), "{action}: {actions:?}");
    }
}

async fn a_pairs_only_caution_refuses_a_solo_outing_and_start_lists_cautions(backend: Backend) {
    let app = app(backend).await;
    let admin = app.admin().await;
    let party = org(&app, &admin, "Party").await;
    // 200 m around Westminster; the caution's 100 m circle reaches into it from 250 m out.
    let area = json!({"type": "Circle", "center": [-0.1276, 51.5072], "radius_m": 200.0});
    mark(
        &app,
        &party,
        &party.organiser.token,
        caution("pairs_only", 51.5072 + 0.00225, -0.1276, 100.0),
    )
    .await;
    mark(
        &app,
        &party,
        &party.organiser.token,
        caution("note", 51.60, -0.1276, 100.0),
    )
    .await;
    let (status, problem) = app
        .post(
            "/api/v1/outings",
            Some(&party.canvasser.token),
            json!({"checkin_interval_s": 900, "area": area}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "companions");
    let (status, outing) = app
        .post("/api/v1/outings", Some(&party.canvasser.token),
              json!({"checkin_interval_s": 900, "area": area, "companions": [party.other_canvasser.id]}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{outing}");
    let cautions = outing["cautions"].as_array().unwrap();
    assert_eq!(cautions.len(), 1, "the far one is not listed: {outing}");
    assert_eq!(cautions[0]["level"], "pairs_only");
    assert!(
        outing["id"].is_string() && outing["status"] == "active",
        "still the Outing"
    );
}

async fn a_checkin_answers_with_its_cautions_and_do_not_knock_pushes_once(backend: Backend) {
    let app = app(backend).await;
    let push = PushReceiver::start().await;
    let admin = app.admin().await;
    let party = org(&app, &admin, "Party").await;
    let (status, _) = app
        .post(
            "/api/v1/push/subscriptions",
            Some(&party.canvasser.token),
            push.subscription("jo"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let dnk = mark(
        &app,
        &party,
        &party.organiser.token,
        caution("do_not_knock", 51.5, -0.12, 50.0),
    )
    .await;
    mark(
        &app,
        &party,
        &party.organiser.token,
        caution("note", 51.5, -0.12, 300.0),
    )
    .await;
    let (status, outing) = app
        .post(
            "/api/v1/outings",
            Some(&party.canvasser.token),
            json!({"checkin_interval_s": 900}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let path = format!(
        "/api/v1/outings/{}/checkins",
        outing["id"].as_str().unwrap()
    );
    let check_in = |lat: f64| {
        let (app, path, token) = (&app, path.clone(), party.canvasser.token.clone());
        async move {
            let (status, body) = app
                .post(
                    &path,
                    Some(&token),
                    json!({"lat": lat, "lon": -0.12, "accuracy_m": 5}),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            body
        }
    };
    // 200 m away: inside the note's 300 m, outside the do-not-knock's 50 m.
    let far = check_in(51.5018).await;
    let levels: Vec<&str> = far["checkin"]["cautions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["level"].as_str().unwrap())
        .collect();
    assert_eq!(levels, ["note"]);
    assert!(far["checkin"]["id"].is_string(), "still the Checkin");
    let near = check_in(51.5001).await;
    assert_eq!(near["checkin"]["cautions"].as_array().unwrap().len(), 2);
    let got = push.wait_for("jo", 1, Duration::from_secs(8)).await;
    assert_eq!(got[0].payload["type"], "caution");
    assert_eq!(got[0].payload["caution_id"], dnk["id"]);
    assert!(got[0].payload["body"]
        .as_str()
        .unwrap()
        .contains("Aggressive dog"));
    // Still inside: no second push for the same caution on the same outing.
    check_in(51.50005).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(push.received_for("jo").len(), 1);
    // Away from every caution: none.
    let away = check_in(51.51).await;
    assert_eq!(away["checkin"]["cautions"], json!([]));
}

async fn bad_caution_input_names_the_field(backend: Backend) {
    let app = app(backend).await;
    let admin = app.admin().await;
    let party = org(&app, &admin, "Party").await;
    let base = caution("note", 51.5, -0.12, 50.0);
    let with = |key: &str, value: Value| {
        let mut body = base.clone();
        body[key] = value;
        body
    };
    for (body, field) in [
        (with("lat", json!(95.0)), "lat"),
        (with("lon", json!(-200.0)), "lon"),
        (with("radius_m", json!(5.0)), "radius_m"),
        (with("radius_m", json!(501.0)), "radius_m"),
        (with("level", json!("avoid")), "level"),
        (with("reason", json!("")), "reason"),
        (with("reason", json!("x".repeat(501))), "reason"),
        (
            with("expires_at", json!("2000-01-01T00:00:00Z")),
            "expires_at",
        ),
        (with("resident", json!("Mr Smith")), "resident"),
    ] {
        let (status, problem) = app
            .post(
                &format!("/api/v1/orgs/{}/cautions", party.id),
                Some(&party.organiser.token),
                body.clone(),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {problem}"
        );
        assert!(problem.to_string().contains(field), "{field}: {problem}");
    }
    for query in [
        "?near=north",
        "?near=51.5",
        "?near=91,0",
        "?within_m=10",
        "?near=51.5,-0.1&within_m=-1",
    ] {
        let (status, problem) = app
            .get(
                &format!("/api/v1/orgs/{}/cautions{query}", party.id),
                &party.canvasser.token,
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}: {problem}"
        );
    }
}

async fn cautions_left_unindexed_by_a_grid_change_are_indexed_again(backend: Backend) {
    let app = app(backend).await;
    let admin = app.admin().await;
    let party = org(&app, &admin, "Party").await;
    mark(
        &app,
        &party,
        &party.organiser.token,
        caution("do_not_knock", 51.5, -0.12, 40.0),
    )
    .await;
    let path = format!(
        "/api/v1/orgs/{}/cautions?near=51.5001,-0.12&within_m=0",
        party.id
    );
    let token = party.canvasser.token.clone();
    let near = || async {
        let (status, body) = app.get(&path, &token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["items"].as_array().map_or(0, Vec::len)
    };
    assert_eq!(near().await, 1);
    // What the grid migration does: the cells go; the position finds nothing until re-indexed.
    app.state
        .store
        .write(|conn| {
            use diesel::prelude::*;
            diesel::delete(doorstep::store::schema::caution_cells::table)
                .execute(conn)
                .map_err(doorstep::error::AppError::from)?;
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(near().await, 0);
    let indexed = app
        .state
        .store
        .write(doorstep::service::cautions::index_unindexed)
        .await
        .unwrap();
    assert_eq!(indexed, 1);
    assert_eq!(near().await, 1);
    let again = app
        .state
        .store
        .write(doorstep::service::cautions::index_unindexed)
        .await
        .unwrap();
    assert_eq!(again, 0, "a no-op once every caution is indexed");
}
