use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{spawn_app, spawn_app_with, Backend};
use crate::on_both_backends;

on_both_backends!(health_readiness_and_metrics, openapi_document_and_docs_page);

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
