use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{expect_problem, spawn_app, Backend};
use crate::on_both_backends;

on_both_backends!(
    bad_bodies_are_problem_json_4xx,
    unknown_routes_are_problem_json_404
);

async fn bad_bodies_are_problem_json_4xx(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let post = |body: Vec<u8>, content_type: &'static str| {
        app.client
            .post(app.url("/api/v1/orgs"))
            .bearer_auth(&admin.token)
            .header("content-type", content_type)
            .body(body)
    };
    let json_type = "application/json";

    for (name, body) in [
        ("malformed", b"{\"name\": ".to_vec()),
        ("empty", Vec::new()),
        ("trailing garbage", b"{\"name\": \"x\"} {}".to_vec()),
        ("not utf-8", vec![b'{', b'"', 0xff, 0xfe, b'"', b'}']),
    ] {
        let resp = post(body, json_type).send().await.unwrap();
        let problem = expect_problem(resp, StatusCode::BAD_REQUEST).await;
        assert!(
            problem["detail"].as_str().unwrap().contains("JSON"),
            "{name}: {problem}"
        );
    }

    // Deep nesting is refused without exhausting the stack (a type error or the parser's limit).
    for body in [
        "[".repeat(50_000),
        format!("{{\"name\": {}", "[".repeat(50_000)),
    ] {
        let resp = post(body.into_bytes(), json_type).send().await.unwrap();
        assert!(resp.status().is_client_error());
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/problem+json"));
    }

    let resp = post(b"{\"name\": \"x\"}".to_vec(), "text/plain")
        .send()
        .await
        .unwrap();
    expect_problem(resp, StatusCode::BAD_REQUEST).await;
    let resp = app
        .client
        .post(app.url("/api/v1/orgs"))
        .bearer_auth(&admin.token)
        .body("{\"name\": \"x\"}")
        .send()
        .await
        .unwrap();
    expect_problem(resp, StatusCode::BAD_REQUEST).await;

    let big = serde_json::to_vec(&json!({"name": "x".repeat(70 * 1024)})).unwrap();
    let resp = post(big, json_type).send().await.unwrap();
    expect_problem(resp, StatusCode::PAYLOAD_TOO_LARGE).await;

    for (body, field) in [
        (json!({"name": "x", "nmae": "y"}), "nmae"),
        (json!({"name": 12}), "name"),
        (json!({}), "name"),
        (json!([1, 2]), "body"),
    ] {
        let resp = post(serde_json::to_vec(&body).unwrap(), json_type)
            .send()
            .await
            .unwrap();
        let problem = expect_problem(resp, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(problem["errors"][0]["field"], field, "{body}");
    }

    // A bad body on an endpoint that needs no token is checked the same way.
    let resp = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"email": "a@b.c", "password": "x", "remember": true}))
        .send()
        .await
        .unwrap();
    let problem = expect_problem(resp, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(problem["errors"][0]["field"], "remember");

    // The server is still healthy after all of that.
    let (status, _) = app.get("/api/v1/me", &admin.token).await;
    assert_eq!(status, StatusCode::OK);
}

async fn unknown_routes_are_problem_json_404(backend: Backend) {
    let app = spawn_app(backend).await;
    for path in [
        "/nothing",
        "/api/v1/nothing",
        "/api/v1/orgs/x/y/z",
        "/api/v2/me",
    ] {
        let resp = app.client.get(app.url(path)).send().await.unwrap();
        expect_problem(resp, StatusCode::NOT_FOUND).await;
    }
    let resp = app
        .client
        .delete(app.url("/api/v1/me"))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error());
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("application/problem+json"));
}
