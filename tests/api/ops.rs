use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::heartbeat_receiver::HeartbeatReceiver;
use crate::helpers::{fast, spawn_app, spawn_app_with, Backend, TestApp};
use crate::on_both_backends;

on_both_backends!(
    health_readiness_and_metrics,
    openapi_document_and_docs_page,
    heartbeat_pings_while_healthy_and_fails_when_the_scheduler_stops,
    heartbeat_fails_when_the_database_is_gone,
    readyz_says_when_the_scheduler_is_behind,
);

/// Every test heartbeat waits at most this long for what it expects (heartbeat_s = 1).
const HEARTBEAT_WAIT: Duration = Duration::from_secs(6);

async fn heartbeat_app(backend: Backend, receiver: &HeartbeatReceiver) -> TestApp {
    let url = format!("{}/ping/check-1", receiver.base);
    spawn_app_with(backend, move |s| {
        fast(s);
        s.monitoring.heartbeat_url = Some(url);
        s.monitoring.heartbeat_s = 1;
        // The fake check listens on loopback, over http.
        s.push.allow_private_endpoints = true;
    })
    .await
}

async fn readyz(app: &TestApp) -> (StatusCode, Value) {
    let resp = app.client.get(app.url("/readyz")).send().await.unwrap();
    (resp.status(), resp.json().await.unwrap())
}

async fn heartbeat_pings_while_healthy_and_fails_when_the_scheduler_stops(backend: Backend) {
    let receiver = HeartbeatReceiver::start().await;
    let app = heartbeat_app(backend, &receiver).await;
    receiver.wait_for("/ping/check-1", 2, HEARTBEAT_WAIT).await;
    assert_eq!(
        receiver.count("/ping/check-1/fail"),
        0,
        "{:?}",
        receiver.paths()
    );
    let (status, body) = readyz(&app).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scheduler"], "ok");

    // The scheduler's task dies: the next reports are failures, and /readyz says why.
    app.state.scheduler.halt();
    receiver
        .wait_for("/ping/check-1/fail", 1, HEARTBEAT_WAIT)
        .await;
    let (status, body) = readyz(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["scheduler"], "stopped");
    assert!(
        body["detail"].as_str().unwrap().contains("not running"),
        "{body}"
    );
    let oks = receiver.count("/ping/check-1");
    receiver
        .wait_for("/ping/check-1/fail", 1, HEARTBEAT_WAIT)
        .await;
    assert_eq!(
        receiver.count("/ping/check-1"),
        oks,
        "no ping while the scheduler is stopped"
    );
}

async fn heartbeat_fails_when_the_database_is_gone(backend: Backend) {
    let receiver = HeartbeatReceiver::start().await;
    let app = heartbeat_app(backend, &receiver).await;
    receiver.wait_for("/ping/check-1", 1, HEARTBEAT_WAIT).await;
    // The tables Doorstep reads are gone (nothing refers to a row of them yet).
    app.state
        .store
        .write(|conn| {
            use diesel::connection::SimpleConnection;
            let sql = match conn {
                doorstep::store::DbConn::Pg(_) => "DROP TABLE outings CASCADE",
                doorstep::store::DbConn::Sqlite(_) => "DROP TABLE outings",
            };
            conn.batch_execute(sql)?;
            Ok(())
        })
        .await
        .expect("tables dropped");
    receiver
        .wait_for("/ping/check-1/fail", 1, HEARTBEAT_WAIT)
        .await;
    let (status, body) = readyz(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["database"], "unreachable");
}

/// With the scheduler off in this process (another replica's job) and the clock moved past a
/// deadline, nothing handles it: /readyz answers 503, "behind", until it is handled.
async fn readyz_says_when_the_scheduler_is_behind(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        fast(s);
        s.scheduler.enabled = false;
    })
    .await;
    let (status, body) = readyz(&app).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scheduler"], "disabled");

    let admin = app.admin().await;
    let org = crate::outings::org(&app, &admin, "Party").await;
    let (status, outing) = app
        .post(
            "/api/v1/outings",
            Some(&org.canvasser.token),
            json!({"checkin_interval_s": 900,
                   "start_location": {"lat": 51.5, "lon": -0.12, "accuracy_m": 8}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{outing}");
    assert_eq!(readyz(&app).await.0, StatusCode::OK, "nothing due yet");

    app.state.clock.advance(chrono::Duration::minutes(30));
    let (status, body) = readyz(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["scheduler"], "behind");
    assert!(body["lag_ms"].as_i64().unwrap() >= 5_000, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("behind"),
        "{body}"
    );

    // What was due is handled (the scheduler's own pass): ready again.
    doorstep::scheduler::run_due_now(&app.state).await.unwrap();
    let (status, body) = readyz(&app).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn health_readiness_and_metrics(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.server.metrics_token = Some("t".into())).await;
    let resp = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "not public");
    let resp = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");

    let ready: Value = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["migrations"], "current");

    let _ = app.client.get(app.url("/api/v1/me")).send().await.unwrap();
    let resp = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("t")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains(
            r#"doorstep_http_requests_total{method="GET",route="/api/v1/me",status="401"}"#
        ),
        "{text}"
    );
    assert!(text.contains("doorstep_http_request_duration_seconds_bucket"));
    assert!(text.contains("doorstep_active_outings"));
    assert!(text.contains(r#"doorstep_open_alerts{level="2"}"#));
}

async fn openapi_document_and_docs_page(backend: Backend) {
    let app = spawn_app(backend).await;
    let doc: Value = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/users",
        "/api/v1/orgs/{id}/escalation-policy",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    let resp = app
        .client
        .get(app.url("/api/v1/docs/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("swagger"),
        "docs page is served from the binary"
    );
    assert!(
        !page.contains("https://"),
        "docs page must not load anything from the internet"
    );
}
