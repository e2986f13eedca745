//! The PWA under `/app/`: embedded files with the right types and a strict CSP.

use reqwest::StatusCode;

use crate::helpers::{expect_problem, spawn_app, Backend};
use crate::on_both_backends;

on_both_backends!(app_shell_service_worker_and_unknown_files);

async fn app_shell_service_worker_and_unknown_files(backend: Backend) {
    let app = spawn_app(backend).await;

    // The shell: HTML under the app's CSP (no inline script or style, nothing from elsewhere).
    let resp = app.client.get(app.url("/app/")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "{:?}",
        resp.headers()["content-type"]
    );
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("http"),
        "{csp}"
    );
    let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
    let page = resp.text().await.unwrap();
    assert!(page.contains(r#"<script type="module" src="/app/app.js">"#));
    assert!(
        !page.contains("https://"),
        "the app loads nothing from the internet"
    );

    // Revalidation with the ETag: 304, no body.
    let again = app
        .client
        .get(app.url("/app/"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

    // Links in push messages (/app/alerts/<id>) load the same shell.
    let resp = app
        .client
        .get(app.url("/app/alerts/8a1c1d0e-4b7e-4c38-9d4e-0d5e6f7a8b9c"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["etag"].to_str().unwrap(), etag);

    // The service worker is JavaScript, served from the scope it controls.
    let resp = app.client.get(app.url("/app/sw.js")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    let resp = app
        .client
        .get(app.url("/app/manifest.webmanifest"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/manifest+json"
    );

    // Unknown files are a problem+json 404, not the shell.
    for path in [
        "/app/x",
        "/app/x.js",
        "/app/../Cargo.toml",
        "/app/alerts/a/b",
    ] {
        let resp = app.client.get(app.url(path)).send().await.unwrap();
        expect_problem(resp, StatusCode::NOT_FOUND).await;
    }

    // The site root leads to the app.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = client.get(app.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(resp.headers()["location"], "/app/");
}
