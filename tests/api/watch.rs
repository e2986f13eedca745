use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{fast, spawn_app, spawn_app_with, wait_for, Backend, TestApp};
use crate::on_both_backends;
use crate::outings::{org, Org};

on_both_backends!(
    board_order_and_contents,
    sse_events_arrive_filtered_per_viewer,
    audit_rows_for_each_kind_of_read,
    retention_removes_exactly_the_old_trails,
    low_battery_and_left_area_notices_once_per_episode,
    cors_is_deny_by_default,
);

async fn fast_policy(app: &TestApp, org: &Org, police_after_s: i64) {
    let (status, body) = app
        .put(
            &format!("/api/v1/orgs/{}/escalation-policy", org.id),
            &org.organiser.token,
            json!({"reminder_before_s": 0, "grace_s": 1, "police_after_s": police_after_s, "repeat_s": 0, "ack_timeout_s": 60}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn start(app: &TestApp, token: &str, interval: i64) -> String {
    let (status, outing) = app
        .post(
            "/api/v1/outings",
            Some(token),
            json!({"checkin_interval_s": interval, "start_location": {"lat": 51.5, "lon": -0.1, "accuracy_m": 10}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{outing}");
    outing["id"].as_str().unwrap().to_owned()
}

async fn board_order_and_contents(backend: Backend) {
    let app = spawn_app_with(backend, fast).await;
    let admin = app.admin().await;
    let ours = org(&app, &admin, "Ours").await;
    let theirs = org(&app, &admin, "Theirs").await;
    fast_policy(&app, &ours, 60).await;
    let first = start(&app, &ours.canvasser.token, 1).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let second = start(&app, &ours.other_canvasser.token, 1).await;
    let board = wait_for(6, "both outings on the board", || async {
        let (status, board) = app
            .get("/api/v1/watch/overdue", &ours.organiser.token)
            .await;
        assert_eq!(status, StatusCode::OK);
        (board["items"].as_array().unwrap().len() == 2).then_some(board)
    })
    .await;
    let items = board["items"].as_array().unwrap();
    assert_eq!(
        items[0]["outing"]["id"],
        first.as_str(),
        "most overdue first"
    );
    assert_eq!(items[1]["outing"]["id"], second.as_str());
    assert!(items[0]["overdue_s"].as_i64().unwrap() >= items[1]["overdue_s"].as_i64().unwrap());
    for item in items {
        assert_eq!(item["outing"]["status"], "overdue");
        assert_eq!(item["alert"]["kind"], "missed_checkin");
        assert_eq!(
            item["outing"]["last_checkin"]["lat"], 51.5,
            "organisers see the last position"
        );
    }
    // Police see nothing below level 2; another organisation sees nothing; canvassers have no board.
    let (_, police_board) = app.get("/api/v1/watch/overdue", &ours.police.token).await;
    assert!(police_board["items"].as_array().unwrap().is_empty());
    let (_, other_board) = app
        .get("/api/v1/watch/overdue", &theirs.organiser.token)
        .await;
    assert!(other_board["items"].as_array().unwrap().is_empty());
    let (status, _) = app
        .get("/api/v1/watch/overdue", &ours.canvasser.token)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Panic: level 2, and now the police board shows it with the location.
    app.post(
        &format!("/api/v1/outings/{second}/panic"),
        Some(&ours.other_canvasser.token),
        json!({}),
    )
    .await;
    let (_, police_board) = app.get("/api/v1/watch/overdue", &ours.police.token).await;
    let items = police_board["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["outing"]["id"], second.as_str());
    assert_eq!(items[0]["alert"]["kind"], "panic");
    assert_eq!(items[0]["outing"]["last_checkin"]["lat"], 51.5);

    // The planned board: areas and times, never a position.
    let (status, planned) = app.get("/api/v1/watch/planned", &ours.police.token).await;
    assert_eq!(status, StatusCode::OK);
    let planned = planned["items"].as_array().unwrap();
    assert_eq!(planned.len(), 2);
    assert!(planned
        .iter()
        .all(|p| p.get("last_checkin").is_none() && p["canvasser"]["display_name"].is_string()));
    // No check-in's latitude anywhere (a number, not text: a timestamp may read "…:51.5…Z").
    fn has_number(value: &Value, wanted: f64) -> bool {
        match value {
            Value::Number(n) => n.as_f64() == Some(wanted),
            Value::Array(items) => items.iter().any(|v| has_number(v, wanted)),
            Value::Object(map) => map.values().any(|v| has_number(v, wanted)),
            _ => false,
        }
    }
    assert!(
        !planned.iter().any(|p| has_number(p, 51.5)),
        "no live location on the planned board"
    );
    let (status, _) = app
        .get("/api/v1/watch/planned", &ours.organiser.token)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// Reads server-sent events from a streaming response into (event, data) pairs.
pub(crate) struct EventStream {
    response: reqwest::Response,
    buffer: String,
}

impl EventStream {
    pub(crate) async fn open(app: &TestApp, token: &str, via_query: bool) -> EventStream {
        let request = if via_query {
            app.client
                .get(app.url(&format!("/api/v1/watch/stream?access_token={token}")))
        } else {
            app.client
                .get(app.url("/api/v1/watch/stream"))
                .bearer_auth(token)
        };
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let mut stream = EventStream {
            response,
            buffer: String::new(),
        };
        // The stream opens with a comment.
        stream.fill(Duration::from_secs(5)).await;
        assert!(
            stream.buffer.starts_with(": connected"),
            "{}",
            stream.buffer
        );
        stream.buffer.clear();
        stream
    }

    /// Whether the server ends the stream within `timeout` (anything it sends meanwhile, such
    /// as a heartbeat, is read and dropped).
    pub(crate) async fn ends_within(&mut self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            match tokio::time::timeout(left, self.response.chunk()).await {
                Ok(Ok(Some(_))) => continue,
                Ok(Ok(None)) | Ok(Err(_)) => return true,
                Err(_) => return false,
            }
        }
    }

    async fn fill(&mut self, timeout: Duration) -> bool {
        match tokio::time::timeout(timeout, self.response.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                self.buffer.push_str(&String::from_utf8_lossy(&chunk));
                true
            }
            _ => false,
        }
    }

    /// The next event (skipping comments), or None after `timeout` of silence.
    pub(crate) async fn next(&mut self, timeout: Duration) -> Option<(String, Value)> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = None;
                let mut data = None;
                for line in block.lines() {
                    if let Some(e) = line.strip_prefix("event: ") {
                        event = Some(e.to_owned());
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data = serde_json::from_str(d).ok();
                    }
                }
                if let (Some(event), Some(data)) = (event, data) {
                    return Some((event, data));
                }
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() || !self.fill(left).await {
                return None;
            }
        }
    }
}

async fn sse_events_arrive_filtered_per_viewer(backend: Backend) {
    let app = spawn_app_with(backend, fast).await;
    let admin = app.admin().await;
    let ours = org(&app, &admin, "Ours").await;
    let theirs = org(&app, &admin, "Theirs").await;
    fast_policy(&app, &ours, 2).await;
    let mut organiser = EventStream::open(&app, &ours.organiser.token, false).await;
    let mut police = EventStream::open(&app, &ours.police.token, true).await;
    let mut stranger = EventStream::open(&app, &theirs.organiser.token, false).await;
    let (status, _) = app.get("/api/v1/watch/stream", &ours.canvasser.token).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let resp = app
        .client
        .get(app.url("/api/v1/watch/stream?access_token=forged"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    let outing = start(&app, &ours.canvasser.token, 1).await;
    // Missed at ~2 s: the organiser hears of it.
    let (event, alert) = organiser
        .next(Duration::from_secs(6))
        .await
        .expect("alert.opened");
    assert_eq!(event, "alert.opened");
    assert_eq!(alert["outing_id"], outing.as_str());
    assert_eq!(alert["level"], 1);
    assert_eq!(alert["last_location"]["lat"], 51.5);
    let alert_id = alert["id"].as_str().unwrap().to_owned();
    // Level 2 two seconds later: now the police hear of it too; the stranger never does.
    let (event, alert) = organiser
        .next(Duration::from_secs(6))
        .await
        .expect("alert.escalated");
    assert_eq!(
        (event.as_str(), alert["level"].as_i64()),
        ("alert.escalated", Some(2))
    );
    let (event, alert) = police
        .next(Duration::from_secs(3))
        .await
        .expect("police: alert.escalated");
    assert_eq!(event, "alert.escalated");
    assert_eq!(alert["id"], alert_id.as_str());

    app.post(
        &format!("/api/v1/alerts/{alert_id}/ack"),
        Some(&ours.police.token),
        json!({}),
    )
    .await;
    let (event, alert) = organiser
        .next(Duration::from_secs(3))
        .await
        .expect("alert.acknowledged");
    assert_eq!(event, "alert.acknowledged");
    assert_eq!(alert["acknowledged_by"]["id"], ours.police.id.as_str());
    app.post(
        &format!("/api/v1/alerts/{alert_id}/resolve"),
        Some(&ours.organiser.token),
        json!({"outcome": "safe"}),
    )
    .await;
    let (event, _) = police
        .next(Duration::from_secs(3))
        .await
        .expect("police: acknowledged");
    assert_eq!(event, "alert.acknowledged");
    let (event, alert) = police
        .next(Duration::from_secs(3))
        .await
        .expect("police: resolved");
    assert_eq!(event, "alert.resolved");
    assert_eq!(alert["resolution"], "safe");
    assert!(
        stranger.next(Duration::from_millis(500)).await.is_none(),
        "another organisation hears nothing"
    );
}

async fn audit_rows_for_each_kind_of_read(backend: Backend) {
    let app = spawn_app_with(backend, fast).await;
    let admin = app.admin().await;
    let ours = org(&app, &admin, "Ours").await;
    let theirs = org(&app, &admin, "Theirs").await;
    fast_policy(&app, &ours, 60).await;
    let mut stream = EventStream::open(&app, &ours.organiser.token, false).await;
    let outing = start(&app, &ours.canvasser.token, 1).await;
    let (_, alert) = stream
        .next(Duration::from_secs(6))
        .await
        .expect("alert.opened");
    let alert_id = alert["id"].as_str().unwrap();

    // The canvasser reading their own outing is not audited.
    app.get(&format!("/api/v1/outings/{outing}"), &ours.canvasser.token)
        .await;
    for path in [
        format!("/api/v1/outings/{outing}"),
        format!("/api/v1/outings/{outing}/checkins"),
        format!("/api/v1/alerts/{alert_id}"),
        "/api/v1/watch/overdue".to_owned(),
        "/api/v1/outings".to_owned(),
    ] {
        let (status, _) = app.get(&path, &ours.organiser.token).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    let (status, audit) = app
        .get(
            &format!("/api/v1/audit?subject_id={}", ours.canvasser.id),
            &ours.organiser.token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    let entries = audit["items"].as_array().unwrap();
    let mut actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    actions.sort_unstable();
    assert_eq!(
        actions,
        [
            "alert",
            "outing",
            "outing.checkins",
            "outing.list",
            "watch.overdue",
            "watch.stream"
        ]
    );
    assert!(entries
        .iter()
        .all(|e| e["actor"]["id"] == ours.organiser.id.as_str()
            && e["subject_id"] == ours.canvasser.id.as_str()
            && e["subject_name"] == "Jo Bloggs"));

    let (_, all) = app.get("/api/v1/audit", &admin.token).await;
    let reads = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] != "policy")
        .count();
    assert_eq!(reads, 6, "the six reads, beside the policy change: {all}");
    let (_, other) = app.get("/api/v1/audit", &theirs.organiser.token).await;
    assert!(
        other["items"].as_array().unwrap().is_empty(),
        "another organisation's audit is not theirs to read"
    );
    for token in [&ours.canvasser.token, &ours.police.token] {
        let (status, _) = app.get("/api/v1/audit", token).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
}

async fn retention_removes_exactly_the_old_trails(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let ours = org(&app, &admin, "Ours").await;
    // An outing with a trail and a resolved panic alert, ended now.
    let old = start(&app, &ours.canvasser.token, 600).await;
    app.post(
        &format!("/api/v1/outings/{old}/checkins"),
        Some(&ours.canvasser.token),
        json!({"lat": 51.6, "lon": -0.2}),
    )
    .await;
    let (_, alert) = app
        .post(
            &format!("/api/v1/outings/{old}/panic"),
            Some(&ours.canvasser.token),
            json!({"lat": 51.61, "lon": -0.21}),
        )
        .await;
    let alert_id = alert["id"].as_str().unwrap().to_owned();
    app.post(
        &format!("/api/v1/alerts/{alert_id}/resolve"),
        Some(&ours.organiser.token),
        json!({"outcome": "false_alarm"}),
    )
    .await;
    let (status, _) = app
        .post(
            &format!("/api/v1/outings/{old}/end"),
            Some(&ours.canvasser.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // Another canvasser is still out: an active outing is never touched.
    let active = start(&app, &ours.other_canvasser.token, 600).await;

    let purge = |days_later: i64, retention_days: i64| {
        let now = chrono::Utc::now().timestamp_millis() + days_later * 86_400_000;
        app.state
            .store
            .write(move |conn| doorstep::service::retention::purge(conn, now, retention_days, 2555))
    };
    // Within the retention period: nothing goes.
    let purged = purge(0, 1).await.unwrap();
    assert_eq!(purged.checkins, 0);
    // Two days later with a one-day retention: the ended outing's trail goes.
    let purged = purge(2, 1).await.unwrap();
    assert_eq!(purged.checkins, 2, "start location and check-in");
    assert_eq!(purged.alerts, 1);
    assert!(
        purged.notifications >= 1,
        "the panic and all-clear texts held the position"
    );
    assert_eq!(purge(2, 1).await.unwrap().checkins, 0, "idempotent");

    let (_, trail) = app
        .get(
            &format!("/api/v1/outings/{old}/checkins"),
            &ours.organiser.token,
        )
        .await;
    let trail = trail["items"].as_array().unwrap();
    assert_eq!(trail.len(), 2, "the check-ins stay, without coordinates");
    assert!(trail
        .iter()
        .all(|c| c["lat"].is_null() && c["lon"].is_null() && c["recorded_at"].is_string()));
    let (_, alert) = app
        .get(&format!("/api/v1/alerts/{alert_id}"), &ours.organiser.token)
        .await;
    assert_eq!(alert["status"], "resolved");
    assert_eq!(alert["resolution"], "false_alarm");
    assert!(
        alert["last_location"].is_null(),
        "the alert keeps its record without the trail"
    );
    let (_, kept) = app
        .get(&format!("/api/v1/outings/{active}"), &ours.organiser.token)
        .await;
    assert_eq!(kept["last_checkin"]["lat"], 51.5);
}

async fn low_battery_and_left_area_notices_once_per_episode(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let ours = org(&app, &admin, "Ours").await;
    let (_, outing) = app
        .post(
            "/api/v1/outings",
            Some(&ours.canvasser.token),
            json!({"checkin_interval_s": 600, "area": {"type": "Circle", "center": [-0.1, 51.5], "radius_m": 100.0},
                   "start_location": {"lat": 51.5, "lon": -0.1}}),
        )
        .await;
    let id = outing["id"].as_str().unwrap().to_owned();
    let check_in = |lat: f64, battery: i64| {
        let path = format!("/api/v1/outings/{id}/checkins");
        let token = ours.canvasser.token.clone();
        let app = &app;
        async move {
            let (status, _) = app
                .post(
                    &path,
                    Some(&token),
                    json!({"lat": lat, "lon": -0.1, "battery_pct": battery}),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED);
        }
    };
    let notices = |kind: &'static str| {
        let app = &app;
        let id = id.clone();
        async move {
            app.outbox(None, Some(&id))
                .await
                .into_iter()
                .filter(|n| n.message_type.as_str() == kind)
                .filter_map(|n| n.recipient_id.map(|u| u.to_string()))
                .collect::<Vec<_>>()
        }
    };
    check_in(51.5, 14).await; // low
    check_in(51.5, 12).await; // still low: no second notice
    check_in(51.51, 11).await; // left the area (1 km north)
    check_in(51.511, 11).await; // still outside
    assert_eq!(
        notices("low_battery").await,
        std::slice::from_ref(&ours.organiser.id),
        "organisers only, once"
    );
    assert_eq!(
        notices("left_area").await,
        std::slice::from_ref(&ours.organiser.id)
    );
    check_in(51.5, 60).await; // back inside, charged: both episodes over
    check_in(51.52, 9).await; // out again, low again: new episodes
    assert_eq!(notices("low_battery").await.len(), 2);
    assert_eq!(notices("left_area").await.len(), 2);
    // Notices are not alerts: nothing escalates.
    let (_, seen) = app
        .get(&format!("/api/v1/outings/{id}"), &ours.organiser.token)
        .await;
    assert!(seen["open_alert"].is_null());
    assert_eq!(seen["inside_area"], false);
}

async fn cors_is_deny_by_default(backend: Backend) {
    let preflight = |app: &TestApp, origin: &str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/me"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "GET")
            .header("Access-Control-Request-Headers", "authorization")
            .send()
    };
    let app = spawn_app(backend).await;
    let resp = preflight(&app, "https://evil.example").await.unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    let app = spawn_app_with(backend, |s| {
        s.server.cors_allowed_origins = vec!["https://board.example.org".into()]
    })
    .await;
    let resp = preflight(&app, "https://board.example.org").await.unwrap();
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://board.example.org"
    );
    let resp = preflight(&app, "https://evil.example").await.unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    // Security headers on every response, errors included.
    let resp = app
        .client
        .get(app.url("/api/v1/nope"))
        .send()
        .await
        .unwrap();
    for header in [
        "x-content-type-options",
        "x-frame-options",
        "referrer-policy",
        "content-security-policy",
    ] {
        assert!(resp.headers().get(header).is_some(), "{header}");
    }
}
