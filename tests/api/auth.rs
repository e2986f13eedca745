use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use doorstep::auth::tokens::JwtKeys;
use doorstep::domain::account::Role;
use doorstep::domain::ids::{SessionId, UserId};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with, Backend, PASSWORD, TEST_JWT_SECRET};
use crate::on_both_backends;

on_both_backends!(
    login_ok_wrong_and_unknown_are_indistinguishable,
    refresh_rotates_and_reuse_revokes_the_whole_login,
    forged_and_expired_tokens_are_refused,
    logout_ends_the_login,
    login_is_rate_limited_per_email_and_per_address,
);

async fn login_ok_wrong_and_unknown_are_indistinguishable(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;

    let (status, body) = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": admin.email, "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(body["refresh_token"]
        .as_str()
        .is_some_and(|t| t.len() >= 40));

    // Email case and surrounding space do not matter.
    let (status, _) = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": format!(" {} ", admin.email.to_uppercase()), "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let (wrong_status, wrong) = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": admin.email, "password": "not the password"}),
        )
        .await;
    let (unknown_status, unknown) = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "nobody@example.org", "password": "not the password"}),
        )
        .await;
    assert_eq!(wrong_status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown_status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong, unknown,
        "wrong password and unknown email must look the same"
    );
    assert_eq!(wrong["status"], 401);
}

async fn refresh_rotates_and_reuse_revokes_the_whole_login(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let first = app.login(&admin.email, PASSWORD).await;

    let (status, second) = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": first.refresh}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let second_refresh = second["refresh_token"].as_str().unwrap().to_owned();
    let second_access = second["access_token"].as_str().unwrap().to_owned();
    assert_ne!(second_refresh, first.refresh, "refresh tokens rotate");
    let (status, me) = app.get("/api/v1/me", &second_access).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["id"], admin.id.as_str());

    let (status, third) = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": second_refresh}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let third_refresh = third["refresh_token"].as_str().unwrap().to_owned();
    let third_access = third["access_token"].as_str().unwrap().to_owned();

    // The first token is spent: presenting it again means a copy exists somewhere.
    let (status, problem) = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": first.refresh}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");

    // ...so every token of that login is dead, including the newest ones.
    let (status, _) = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": third_refresh}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app.get("/api/v1/me", &third_access).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app.get("/api/v1/me", &first.access).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Another login of the same user is unaffected.
    let other = app.login(&admin.email, PASSWORD).await;
    let (status, _) = app.get("/api/v1/me", &other.access).await;
    assert_eq!(status, StatusCode::OK);

    let (status, _) = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": "made-up"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn forged_and_expired_tokens_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let (status, me) = app.get("/api/v1/me", &admin.token).await;
    assert_eq!(status, StatusCode::OK);
    let user: UserId = me["id"].as_str().unwrap().parse().unwrap();
    let now = chrono::Utc::now().timestamp();

    // The session id must be real for a token to be accepted at all; take it from a real token.
    let payload = admin.token.split('.').nth(1).unwrap();
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    let session: SessionId = claims["sid"].as_str().unwrap().parse().unwrap();

    let server_keys = JwtKeys::from_secrets(&[TEST_JWT_SECRET.to_vec()], 900);
    let fresh = server_keys
        .issue(user, session, Role::Admin, None, now)
        .unwrap();
    let (status, _) = app.get("/api/v1/me", &fresh).await;
    assert_eq!(status, StatusCode::OK, "a correctly signed token works");

    let expired = server_keys
        .issue(user, session, Role::Admin, None, now - 3600)
        .unwrap();
    let wrong_key = JwtKeys::from_secrets(&[vec![7u8; 32]], 900)
        .issue(user, session, Role::Admin, None, now)
        .unwrap();
    let mut parts: Vec<String> = admin.token.split('.').map(str::to_owned).collect();
    let tampered_claims = claims.to_string().replace("\"admin\"", "\"police\"");
    parts[1] = URL_SAFE_NO_PAD.encode(tampered_claims);
    let tampered = parts.join(".");
    let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let alg_none = format!("{none_header}.{payload}.");
    let hs512_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS512","typ":"JWT","kid":"x"}"#);
    let other_alg = format!("{hs512_header}.{payload}.{}", parts[2]);

    for (name, token) in [
        ("expired", expired.as_str()),
        ("wrong key", wrong_key.as_str()),
        ("tampered", tampered.as_str()),
        ("alg none", alg_none.as_str()),
        ("other alg", other_alg.as_str()),
        ("garbage", "not-a-token"),
        ("empty", ""),
    ] {
        let resp = app
            .client
            .get(app.url("/api/v1/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let problem = crate::helpers::expect_problem(resp, StatusCode::UNAUTHORIZED).await;
        assert!(problem["detail"].is_string(), "{name}");
    }
    let resp = app.client.get(app.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    crate::helpers::expect_problem(resp, StatusCode::UNAUTHORIZED).await;
}

async fn logout_ends_the_login(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let tokens = app.login(&admin.email, PASSWORD).await;
    // The login is confirmed live (and memoised by the replica) before it ends.
    let (status, _) = app.get("/api/v1/me", &tokens.access).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .post(
            "/api/v1/auth/logout",
            None,
            json!({"refresh_token": tokens.refresh}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": tokens.refresh}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app.get("/api/v1/me", &tokens.access).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the access token dies with its login"
    );
    // Logging out twice, or with an unknown token, is harmless.
    let (status, _) = app
        .post(
            "/api/v1/auth/logout",
            None,
            json!({"refresh_token": tokens.refresh}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

async fn login_is_rate_limited_per_email_and_per_address(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.auth.login_max_failures_per_email = 3;
        s.auth.login_max_per_address = 8;
    })
    .await;
    let admin = app.admin().await; // one successful login from this address
    for _ in 0..3 {
        let (status, _) = app
            .post(
                "/api/v1/auth/login",
                None,
                json!({"email": admin.email, "password": "guess guess"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // The email is now locked, even with the right password.
    let resp = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"email": admin.email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let retry_after: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry_after), "{retry_after}");
    crate::helpers::expect_problem(resp, StatusCode::TOO_MANY_REQUESTS).await;

    // Other emails from the same address go on until the address budget (8 failures) is
    // spent: 3 so far (the admin's successful login does not count), 5 more allowed.
    for i in 0..5 {
        let (status, _) = app
            .post(
                "/api/v1/auth/login",
                None,
                json!({"email": format!("x{i}@example.org"), "password": "guess guess"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let (status, problem) = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "fresh@example.org", "password": "guess guess"}),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{problem}");
}
