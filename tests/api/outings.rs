use doorstep::domain::account::Role;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, Backend, TestApp, TestUser};
use crate::on_both_backends;

on_both_backends!(
    happy_path_start_checkin_view_end,
    idempotent_retry_and_batch_retry_store_once,
    conflicts_ended_outing_and_second_open_outing,
    other_organisation_gets_404_on_every_outing_route,
    bad_input_table_is_4xx_problem_naming_the_field,
    pins_safe_wrong_and_duress,
    panic_and_police_visibility,
    companions_and_solo_policy,
);

/// An organisation with an organiser, a canvasser, another canvasser and a police contact.
pub struct Org {
    pub id: String,
    pub organiser: TestUser,
    pub canvasser: TestUser,
    pub other_canvasser: TestUser,
    pub police: TestUser,
}

pub async fn org(app: &TestApp, admin: &TestUser, name: &str) -> Org {
    let id = app.create_org(&admin.token, name).await;
    let organiser = app
        .create_user(&admin.token, Role::Organiser, Some(&id), "Olive Organiser")
        .await;
    let canvasser = app
        .create_user(&organiser.token, Role::Canvasser, None, "Jo Bloggs")
        .await;
    let other_canvasser = app
        .create_user(&organiser.token, Role::Canvasser, None, "Sam Other")
        .await;
    let police = app
        .create_user(&admin.token, Role::Police, None, "PC Contact")
        .await;
    let (status, _) = app
        .post(
            &format!("/api/v1/orgs/{id}/police-contacts"),
            Some(&admin.token),
            json!({"user_id": police.id}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    Org {
        id,
        organiser,
        canvasser,
        other_canvasser,
        police,
    }
}

/// A circle of 200 m around Westminster.
fn area() -> Value {
    json!({"type": "Circle", "center": [-0.1276, 51.5072], "radius_m": 200.0})
}

async fn start(app: &TestApp, token: &str, body: Value) -> Value {
    let (status, outing) = app.post("/api/v1/outings", Some(token), body).await;
    assert_eq!(status, StatusCode::CREATED, "{outing}");
    outing
}

async fn happy_path_start_checkin_view_end(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let org = org(&app, &admin, "Party").await;
    let outing = start(
        &app,
        &org.canvasser.token,
        json!({"checkin_interval_s": 900, "area": area(), "note": "Ward 3, odd numbers",
               "start_location": {"lat": 51.5072, "lon": -0.1276, "accuracy_m": 10}}),
    )
    .await;
    let id = outing["id"].as_str().unwrap();
    assert_eq!(outing["status"], "active");
    assert_eq!(outing["solo"], true);
    assert_eq!(outing["canvasser"]["display_name"], "Jo Bloggs");
    assert_eq!(outing["area"], area());
    assert_eq!(outing["inside_area"], true);
    assert_eq!(outing["last_checkin"]["lat"], 51.5072);
    assert!(outing["open_alert"].is_null());
    let started =
        chrono::DateTime::parse_from_rfc3339(outing["started_at"].as_str().unwrap()).unwrap();
    let due = chrono::DateTime::parse_from_rfc3339(outing["next_checkin_due_at"].as_str().unwrap())
        .unwrap();
    assert_eq!((due - started).num_seconds(), 900);

    // A check-in 1 km away: outside the area (accuracy 20 m does not reach it).
    let (status, body) = app
        .post(
            &format!("/api/v1/outings/{id}/checkins"),
            Some(&org.canvasser.token),
            json!({"lat": 51.5162, "lon": -0.1276, "accuracy_m": 20, "battery_pct": 80}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["checkin"]["lat"], 51.5162);
    assert_eq!(body["outing"]["inside_area"], false);
    assert_eq!(body["outing"]["last_checkin"]["id"], body["checkin"]["id"]);

    // The organiser sees it with live location; the trail is newest first.
    let (status, seen) = app
        .get(&format!("/api/v1/outings/{id}"), &org.organiser.token)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seen["last_checkin"]["lat"], 51.5162);
    let (status, trail) = app
        .get(
            &format!("/api/v1/outings/{id}/checkins?limit=1"),
            &org.organiser.token,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(trail["items"].as_array().unwrap().len(), 1);
    assert_eq!(trail["items"][0]["lat"], 51.5162);
    let cursor = trail["next_cursor"].as_str().unwrap();
    let (_, rest) = app
        .get(
            &format!("/api/v1/outings/{id}/checkins?limit=1&cursor={cursor}"),
            &org.organiser.token,
        )
        .await;
    assert_eq!(
        rest["items"][0]["lat"], 51.5072,
        "second page: the start location"
    );

    let (status, list) = app
        .get("/api/v1/outings?status=active", &org.organiser.token)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"][0]["id"], id);
    let (_, mine) = app.get("/api/v1/outings", &org.canvasser.token).await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    let (_, others) = app.get("/api/v1/outings", &org.other_canvasser.token).await;
    assert_eq!(others["items"].as_array().unwrap().len(), 0);

    let (status, ended) = app
        .post(
            &format!("/api/v1/outings/{id}/end"),
            Some(&org.canvasser.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{ended}");
    assert_eq!(ended["status"], "ended");
    assert!(ended["ended_at"].is_string());
    let (_, list) = app
        .get("/api/v1/outings?status=ended", &org.organiser.token)
        .await;
    assert_eq!(list["items"][0]["id"], id);
    let (_, list) = app
        .get("/api/v1/outings?status=active", &org.organiser.token)
        .await;
    assert!(list["items"].as_array().unwrap().is_empty());
}

async fn trail_len(app: &TestApp, token: &str, id: &str) -> usize {
    let (status, trail) = app
        .get(&format!("/api/v1/outings/{id}/checkins?limit=500"), token)
        .await;
    assert_eq!(status, StatusCode::OK);
    trail["items"].as_array().unwrap().len()
}

async fn idempotent_retry_and_batch_retry_store_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let org = org(&app, &admin, "Party").await;
    let outing = start(
        &app,
        &org.canvasser.token,
        json!({"checkin_interval_s": 600}),
    )
    .await;
    let id = outing["id"].as_str().unwrap();
    let path = format!("/api/v1/outings/{id}/checkins");

    let send = |key: &'static str, lat: f64| {
        app.client
            .post(app.url(&path))
            .bearer_auth(&org.canvasser.token)
            .header("Idempotency-Key", key)
            .json(&json!({"lat": lat, "lon": -0.1}))
            .send()
    };
    let first = send("key-1", 51.5).await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let retry = send("key-1", 51.5).await.unwrap();
    assert_eq!(retry.status(), StatusCode::CREATED);
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(first, retry, "a retry returns the first response");
    assert_eq!(trail_len(&app, &org.canvasser.token, id).await, 1);
    // The same key for a different request is refused, not silently replayed.
    let clash = send("key-1", 52.0).await.unwrap();
    assert_eq!(clash.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let other = send("key-2", 51.5).await.unwrap();
    assert_eq!(other.status(), StatusCode::CREATED);
    assert_eq!(trail_len(&app, &org.canvasser.token, id).await, 2);

    // Offline queue: three check-ins recorded earlier, sent out of order, then sent again.
    let now = chrono::Utc::now();
    let at = |mins: i64| (now - chrono::Duration::minutes(mins)).to_rfc3339();
    let batch = json!({"checkins": [
        {"lat": 51.51, "lon": -0.1, "recorded_at": at(10), "client_id": "c-b"},
        {"lat": 51.50, "lon": -0.1, "recorded_at": at(20), "client_id": "c-a"},
        {"lat": 51.52, "lon": -0.1, "recorded_at": at(5), "client_id": "c-c"},
    ]});
    let (status, stored) = app
        .post(
            &format!("{path}/batch"),
            Some(&org.canvasser.token),
            batch.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{stored}");
    assert_eq!(stored["stored"], 3);
    // The live check-in sent just now stays the latest: queued ones are older.
    assert_eq!(
        stored["outing"]["last_checkin"]["id"],
        other_id(&app, &org, id).await
    );
    let (status, again) = app
        .post(&format!("{path}/batch"), Some(&org.canvasser.token), batch)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(again["stored"], 0);
    assert_eq!(again["duplicates"], 3);
    assert_eq!(trail_len(&app, &org.canvasser.token, id).await, 5);

    // Stored in recorded_at order: the trail (newest first) shows c-c, c-b, c-a after the live ones.
    let (_, trail) = app
        .get(&format!("{path}?limit=500"), &org.canvasser.token)
        .await;
    let lats: Vec<f64> = trail["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["lat"].as_f64().unwrap())
        .collect();
    assert_eq!(lats[2..], [51.52, 51.51, 51.50]);
}

async fn other_id(app: &TestApp, org: &Org, outing: &str) -> Value {
    let (_, trail) = app
        .get(
            &format!("/api/v1/outings/{outing}/checkins?limit=1"),
            &org.canvasser.token,
        )
        .await;
    trail["items"][0]["id"].clone()
}

async fn conflicts_ended_outing_and_second_open_outing(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let org = org(&app, &admin, "Party").await;
    let outing = start(
        &app,
        &org.canvasser.token,
        json!({"checkin_interval_s": 600}),
    )
    .await;
    let id = outing["id"].as_str().unwrap();
    let (status, problem) = app
        .post(
            "/api/v1/outings",
            Some(&org.canvasser.token),
            json!({"checkin_interval_s": 600}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");

    let (status, _) = app
        .post(
            &format!("/api/v1/outings/{id}/end"),
            Some(&org.canvasser.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    for (path, body) in [
        (
            format!("/api/v1/outings/{id}/checkins"),
            json!({"lat": 51.5, "lon": 0.0}),
        ),
        (
            format!("/api/v1/outings/{id}/checkins/batch"),
            json!({"checkins": [{"lat": 51.5, "lon": 0.0, "recorded_at": chrono::Utc::now().to_rfc3339(), "client_id": "x"}]}),
        ),
        (format!("/api/v1/outings/{id}/end"), json!({})),
    ] {
        let (status, problem) = app.post(&path, Some(&org.canvasser.token), body).await;
        assert_eq!(status, StatusCode::CONFLICT, "{path}: {problem}");
        assert_eq!(problem["status"], 409);
    }
    // Once ended, a new outing may start.
    start(
        &app,
        &org.canvasser.token,
        json!({"checkin_interval_s": 600}),
    )
    .await;
}

async fn other_organisation_gets_404_on_every_outing_route(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let ours = org(&app, &admin, "Ours").await;
    let theirs = org(&app, &admin, "Theirs").await;
    let outing = start(
        &app,
        &ours.canvasser.token,
        json!({"checkin_interval_s": 600}),
    )
    .await;
    let id = outing["id"].as_str().unwrap();
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/api/v1/outings/{id}"), None),
        (Method::GET, format!("/api/v1/outings/{id}/checkins"), None),
        (
            Method::POST,
            format!("/api/v1/outings/{id}/checkins"),
            Some(json!({"lat": 1.0, "lon": 1.0})),
        ),
        (
            Method::POST,
            format!("/api/v1/outings/{id}/checkins/batch"),
            Some(
                json!({"checkins": [{"lat": 1.0, "lon": 1.0, "recorded_at": chrono::Utc::now().to_rfc3339(), "client_id": "a"}]}),
            ),
        ),
        (
            Method::POST,
            format!("/api/v1/outings/{id}/panic"),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("/api/v1/outings/{id}/end"),
            Some(json!({})),
        ),
    ];
    for user in [&theirs.organiser, &theirs.canvasser, &theirs.police, &admin] {
        for (method, path, body) in &routes {
            let (status, problem) = app
                .call(method.clone(), path, Some(&user.token), body.clone())
                .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {problem}");
        }
        let (_, list) = app.get("/api/v1/outings", &user.token).await;
        assert!(list["items"].as_array().unwrap().is_empty());
    }
    // A colleague in the same organisation who is not the canvasser: visible, not theirs → 403 to act.
    let (status, _) = app
        .post(
            &format!("/api/v1/outings/{id}/checkins"),
            Some(&ours.organiser.token),
            json!({"lat": 1.0, "lon": 1.0}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .get(
            &format!("/api/v1/outings/{id}"),
            &ours.other_canvasser.token,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "canvassers see only their own outings"
    );
    // And the outing is untouched.
    let (_, seen) = app
        .get(&format!("/api/v1/outings/{id}"), &ours.canvasser.token)
        .await;
    assert_eq!(seen["status"], "active");
    assert!(seen["open_alert"].is_null());
}

async fn bad_input_table_is_4xx_problem_naming_the_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let org = org(&app, &admin, "Party").await;
    let token = &org.canvasser.token;
    let now = chrono::Utc::now();
    let future = |mins: i64| (now + chrono::Duration::minutes(mins)).to_rfc3339();
    let past = |days: i64| (now - chrono::Duration::days(days)).to_rfc3339();
    let square = |ring: Value| json!({"type": "Polygon", "coordinates": [ring]});

    let start_cases: Vec<(Value, &str)> = vec![
        (json!({}), "checkin_interval_s"),
        (json!({"checkin_interval_s": 59}), "checkin_interval_s"),
        (json!({"checkin_interval_s": 86_401}), "checkin_interval_s"),
        (json!({"checkin_interval_s": "600"}), "checkin_interval_s"),
        (json!({"checkin_interval_s": 600, "grace_s": 5}), "grace_s"),
        (
            json!({"checkin_interval_s": 600, "planned_end_at": past(1)}),
            "planned_end_at",
        ),
        (
            json!({"checkin_interval_s": 600, "planned_end_at": "tomorrow"}),
            "planned_end_at",
        ),
        (
            json!({"checkin_interval_s": 600, "planned_end_at": future(60 * 24 * 8)}),
            "planned_end_at",
        ),
        (
            json!({"checkin_interval_s": 600, "area": {"type": "Point", "coordinates": [0, 0]}}),
            "area.type",
        ),
        (
            json!({"checkin_interval_s": 600, "area": square(json!([[0, 0], [0, 1], [1, 1], [1, 0]]))}),
            "area.coordinates[0]",
        ),
        (
            json!({"checkin_interval_s": 600, "area": square(json!([[0, 0], [0, 1], [0, 0]]))}),
            "area.coordinates[0]",
        ),
        (
            json!({"checkin_interval_s": 600, "area": square(json!([[0, 0], [0, 91], [1, 1], [0, 0]]))}),
            "area.coordinates[0][1]",
        ),
        (
            json!({"checkin_interval_s": 600, "area": {"type": "Circle", "center": [0, 0], "radius_m": 0}}),
            "area.radius_m",
        ),
        (
            json!({"checkin_interval_s": 600, "area": {"type": "Circle", "center": [200, 0], "radius_m": 50}}),
            "area.center",
        ),
        (json!({"checkin_interval_s": 600, "area": "here"}), "area"),
        (
            json!({"checkin_interval_s": 600, "companions": ["not-a-uuid"]}),
            "companions[0]",
        ),
        (
            json!({"checkin_interval_s": 600, "companions": [uuid::Uuid::new_v4()]}),
            "companions[0]",
        ),
        (
            json!({"checkin_interval_s": 600, "companions": [org.canvasser.id]}),
            "companions[0]",
        ),
        (
            json!({"checkin_interval_s": 600, "note": "x".repeat(501)}),
            "note",
        ),
        (
            json!({"checkin_interval_s": 600, "start_location": {"lat": 95, "lon": 0}}),
            "start_location.lat",
        ),
        (
            json!({"checkin_interval_s": 600, "start_location": {"lat": 0, "lon": 0, "alt": 3}}),
            "start_location.alt",
        ),
    ];
    for (body, field) in start_cases {
        assert_problem(&app, "/api/v1/outings", token, body, field).await;
    }

    let outing = start(&app, token, json!({"checkin_interval_s": 600})).await;
    let checkins = format!(
        "/api/v1/outings/{}/checkins",
        outing["id"].as_str().unwrap()
    );
    let checkin_cases: Vec<(Value, &str)> = vec![
        (json!({"lon": 0}), "lat"),
        (json!({"lat": 0}), "lon"),
        (json!({"lat": 90.5, "lon": 0}), "lat"),
        (json!({"lat": -91, "lon": 0}), "lat"),
        (json!({"lat": 0, "lon": 180.1}), "lon"),
        (json!({"lat": 0, "lon": -181}), "lon"),
        (json!({"lat": "51.5", "lon": 0}), "lat"),
        (json!({"lat": null, "lon": 0}), "lat"),
        (json!({"lat": 0, "lon": 0, "accuracy_m": -1}), "accuracy_m"),
        (
            json!({"lat": 0, "lon": 0, "battery_pct": 101}),
            "battery_pct",
        ),
        (
            json!({"lat": 0, "lon": 0, "battery_pct": -1}),
            "battery_pct",
        ),
        (
            json!({"lat": 0, "lon": 0, "recorded_at": future(6)}),
            "recorded_at",
        ),
        (
            json!({"lat": 0, "lon": 0, "recorded_at": "yesterday"}),
            "recorded_at",
        ),
        (
            json!({"lat": 0, "lon": 0, "recorded_at": past(8)}),
            "recorded_at",
        ),
        (json!({"lat": 0, "lon": 0, "kind": "fine"}), "kind"),
        (json!({"lat": 0, "lon": 0, "mood": "fine"}), "mood"),
    ];
    for (body, field) in checkin_cases {
        assert_problem(&app, &checkins, token, body, field).await;
    }
    let batch = format!("{checkins}/batch");
    let item =
        |lat: f64| json!({"lat": lat, "lon": 0, "recorded_at": now.to_rfc3339(), "client_id": "a"});
    let batch_cases: Vec<(Value, &str)> = vec![
        (json!({"checkins": []}), "checkins"),
        (json!({"checkins": vec![item(1.0); 501]}), "checkins"),
        (
            json!({"checkins": [item(1.0), item(99.0)]}),
            "checkins[1].lat",
        ),
        (
            json!({"checkins": [{"lat": 1, "lon": 0, "client_id": "a"}]}),
            "checkins[0].recorded_at",
        ),
        (
            json!({"checkins": [{"lat": 1, "lon": 0, "recorded_at": now.to_rfc3339()}]}),
            "checkins[0].client_id",
        ),
        (
            json!({"checkins": [{"lat": 1, "lon": 0, "recorded_at": now.to_rfc3339(), "client_id": ""}]}),
            "checkins[0].client_id",
        ),
    ];
    for (body, field) in batch_cases {
        assert_problem(&app, &batch, token, body, field).await;
    }
    let pins_cases: Vec<(Value, &str)> = vec![
        (json!({"safe_pin": "12", "duress_pin": "5678"}), "safe_pin"),
        (
            json!({"safe_pin": "1234", "duress_pin": "12a4"}),
            "duress_pin",
        ),
        (
            json!({"safe_pin": "1234", "duress_pin": "1234"}),
            "duress_pin",
        ),
        (
            json!({"safe_pin": "123456789", "duress_pin": "5678"}),
            "safe_pin",
        ),
    ];
    for (body, field) in pins_cases {
        let (status, problem) = app.put("/api/v1/me/pins", token, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["errors"][0]["field"], field);
    }
    let end = format!("/api/v1/outings/{}/end", outing["id"].as_str().unwrap());
    assert_problem(&app, &end, token, json!({"lat": 1.0}), "lon").await;
    let panic = format!("/api/v1/outings/{}/panic", outing["id"].as_str().unwrap());
    assert_problem(&app, &panic, token, json!({"lon": 1.0}), "lat").await;
    let (status, _) = app.get("/api/v1/outings?status=lost", token).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = app.get("/api/v1/outings?limit=0", token).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = app.get("/api/v1/outings?cursor=zzz", token).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn assert_problem(app: &TestApp, path: &str, token: &str, body: Value, field: &str) {
    let (status, problem) = app.post(path, Some(token), body.clone()).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{path} {body}: {problem}"
    );
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {problem}"))
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert!(
        fields.contains(&field),
        "{path} {body}: expected {field}, got {fields:?}"
    );
}

async fn pins_safe_wrong_and_duress(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let org = org(&app, &admin, "Party").await;
    let token = &org.canvasser.token;
    let (status, _) = app
        .put(
            "/api/v1/me/pins",
            token,
            json!({"safe_pin": "2468", "duress_pin": "1357"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, me) = app.get("/api/v1/me", token).await;
    assert_eq!(me["has_pins"], true);

    // A wrong PIN on a check-in or an end is refused and changes nothing.
    let outing = start(&app, token, json!({"checkin_interval_s": 600})).await;
    let id = outing["id"].as_str().unwrap().to_owned();
    let (status, _) = app
        .post(
            &format!("/api/v1/outings/{id}/checkins"),
            Some(token),
            json!({"lat": 1.0, "lon": 1.0, "pin": "0000"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .post(
            &format!("/api/v1/outings/{id}/end"),
            Some(token),
            json!({"pin": "0000"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, problem) = app
        .post(&format!("/api/v1/outings/{id}/end"), Some(token), json!({}))
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a PIN is required: {problem}"
    );

    // The safe PIN ends it.
    let (status, safe_end) = app
        .post(
            &format!("/api/v1/outings/{id}/end"),
            Some(token),
            json!({"pin": "2468"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // The duress PIN answers exactly like the safe PIN...
    let outing = start(&app, token, json!({"checkin_interval_s": 600})).await;
    let id = outing["id"].as_str().unwrap().to_owned();
    let (status, duress_end) = app
        .post(
            &format!("/api/v1/outings/{id}/end"),
            Some(token),
            json!({"pin": "1357"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let shape = |v: &Value| {
        let mut v = v.clone();
        for k in ["id", "started_at", "ended_at", "next_checkin_due_at"] {
            v[k] = Value::Null;
        }
        v
    };
    assert_eq!(shape(&safe_end), shape(&duress_end));
    assert!(duress_end["open_alert"].is_null());
    let (_, seen_by_canvasser) = app.get(&format!("/api/v1/outings/{id}"), token).await;
    assert!(
        seen_by_canvasser["open_alert"].is_null(),
        "the canvasser never sees the duress alert"
    );

    // ...and silently raises a duress alert that the organiser sees, at level 2.
    let (status, seen) = app
        .get(&format!("/api/v1/outings/{id}"), &org.organiser.token)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seen["open_alert"]["kind"], "duress", "{seen}");
    assert_eq!(seen["open_alert"]["level"], 2);
    assert_eq!(seen["open_alert"]["status"], "open");

    // A duress PIN on a check-in does the same.
    let outing = start(&app, token, json!({"checkin_interval_s": 600})).await;
    let id = outing["id"].as_str().unwrap().to_owned();
    let (status, body) = app
        .post(
            &format!("/api/v1/outings/{id}/checkins"),
            Some(token),
            json!({"lat": 51.5, "lon": -0.1, "pin": "1357"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(body["outing"]["open_alert"].is_null());
    let (_, seen) = app
        .get(&format!("/api/v1/outings/{id}"), &org.organiser.token)
        .await;
    assert_eq!(seen["open_alert"]["kind"], "duress");
    assert_eq!(seen["open_alert"]["last_location"]["lat"], 51.5);
}

async fn panic_and_police_visibility(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let org = org(&app, &admin, "Party").await;
    let outing = start(
        &app,
        &org.canvasser.token,
        json!({"checkin_interval_s": 600, "area": area(), "start_location": {"lat": 51.5072, "lon": -0.1276}}),
    )
    .await;
    let id = outing["id"].as_str().unwrap();

    // Police: the planned area, no live location, before any escalation.
    let (status, planned) = app
        .get(&format!("/api/v1/outings/{id}"), &org.police.token)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(planned["area"], area());
    assert!(planned["last_checkin"].is_null());
    assert!(planned["inside_area"].is_null());
    let (status, _) = app
        .get(&format!("/api/v1/outings/{id}/checkins"), &org.police.token)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the trail is live location");

    // Panic with no body at all.
    let resp = app
        .client
        .post(app.url(&format!("/api/v1/outings/{id}/panic")))
        .bearer_auth(&org.canvasser.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let alert: Value = resp.json().await.unwrap();
    assert_eq!(alert["kind"], "panic");
    assert_eq!(alert["level"], 2);
    assert_eq!(alert["status"], "open");
    assert_eq!(
        alert["last_location"]["lat"], 51.5072,
        "the last known position"
    );

    // Now police see the live location.
    let (_, seen) = app
        .get(&format!("/api/v1/outings/{id}"), &org.police.token)
        .await;
    assert_eq!(seen["last_checkin"]["lat"], 51.5072);
    assert_eq!(seen["open_alert"]["id"], alert["id"]);
    let (status, _) = app
        .get(&format!("/api/v1/outings/{id}/checkins"), &org.police.token)
        .await;
    assert_eq!(status, StatusCode::OK);

    // A second panic upgrades nothing new: still one alert.
    let (status, again) = app
        .post(
            &format!("/api/v1/outings/{id}/panic"),
            Some(&org.canvasser.token),
            json!({"lat": 51.508, "lon": -0.128}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(again["id"], alert["id"]);
    // A plain check-in does not clear a panic (only the safe PIN or a contact does).
    let (_, body) = app
        .post(
            &format!("/api/v1/outings/{id}/checkins"),
            Some(&org.canvasser.token),
            json!({"lat": 51.5072, "lon": -0.1276}),
        )
        .await;
    assert_eq!(body["outing"]["open_alert"]["id"], alert["id"]);
}

async fn companions_and_solo_policy(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let org = org(&app, &admin, "Party").await;
    let other = self::org(&app, &admin, "Other").await;
    let policy = json!({"reminder_before_s": 60, "grace_s": 120, "police_after_s": 300,
                        "repeat_s": 0, "ack_timeout_s": 600, "solo_max_checkin_interval_s": 1200});
    let (status, _) = app
        .put(
            &format!("/api/v1/orgs/{}/escalation-policy", org.id),
            &org.organiser.token,
            policy,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    assert_problem(
        &app,
        "/api/v1/outings",
        &org.canvasser.token,
        json!({"checkin_interval_s": 1800}),
        "checkin_interval_s",
    )
    .await;
    assert_problem(
        &app,
        "/api/v1/outings",
        &org.canvasser.token,
        json!({"checkin_interval_s": 1800, "companions": [other.canvasser.id]}),
        "companions[0]",
    )
    .await;
    let outing = start(
        &app,
        &org.canvasser.token,
        json!({"checkin_interval_s": 1800, "companions": [org.other_canvasser.id]}),
    )
    .await;
    assert_eq!(outing["solo"], false);
    assert_eq!(outing["companions"][0]["display_name"], "Sam Other");
    let id = outing["id"].as_str().unwrap();
    let (status, seen) = app
        .get(&format!("/api/v1/outings/{id}"), &org.other_canvasser.token)
        .await;
    assert_eq!(status, StatusCode::OK, "companions see the outing");
    assert_eq!(seen["id"], id);
    let (_, list) = app.get("/api/v1/outings", &org.other_canvasser.token).await;
    assert_eq!(list["items"][0]["id"], id);
    // A companion can raise the alarm, but cannot check in for the canvasser.
    let (status, _) = app
        .post(
            &format!("/api/v1/outings/{id}/checkins"),
            Some(&org.other_canvasser.token),
            json!({"lat": 1.0, "lon": 1.0}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, alert) = app
        .post(
            &format!("/api/v1/outings/{id}/panic"),
            Some(&org.other_canvasser.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(alert["canvasser"]["display_name"], "Jo Bloggs");
}
