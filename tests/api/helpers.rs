//! The test harness: a real server on port 0 with a fresh database per test, on SQLite or
//! PostgreSQL, and a real HTTP client.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use doorstep::config::Settings;
use doorstep::domain::account::Role;
use doorstep::startup::Application;
use doorstep::state::AppState;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// The JWT key every test server uses, so tests can forge tokens signed with it (or not).
pub const TEST_JWT_SECRET: [u8; 32] = [42u8; 32];
pub const PASSWORD: &str = "correct horse battery";
/// The `/metrics` token every test server has (a test that needs none sets it to `None`).
pub const METRICS_TOKEN: &str = "test-metrics-token";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs `$body(Backend)` once per backend as two tests, `sqlite` and `postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if $crate::helpers::postgres_available() {
                        super::$name($crate::helpers::Backend::Postgres).await
                    }
                }
            }
        )*
    };
}

/// The server URL PostgreSQL tests use; each test gets its own schema in it.
pub fn postgres_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Whether PostgreSQL tests can run. Under `CI=true` an unreachable server fails the test
/// loudly instead of skipping it.
pub fn postgres_available() -> bool {
    use diesel::Connection;
    match diesel::PgConnection::establish(&postgres_url()) {
        Ok(_) => true,
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "PostgreSQL at {} is required under CI=true: {e}",
                    postgres_url()
                );
            }
            eprintln!("SKIPPED: PostgreSQL at {} unreachable: {e}", postgres_url());
            false
        }
    }
}

/// Set (to a direct URL of the same server) when `TEST_DATABASE_URL` goes through PgBouncer in
/// transaction pooling mode (.ci/run): each test then gets a database of its own, made over
/// this URL, because a schema chosen by `search_path` for the session would not follow a
/// transaction onto another server connection.
fn postgres_admin_url() -> Option<String> {
    std::env::var("TEST_DATABASE_ADMIN_URL").ok()
}

/// A fresh, empty database: a temporary SQLite file, or a new schema on the PostgreSQL server
/// (a new database when `TEST_DATABASE_ADMIN_URL` is set).
pub fn fresh_database_url(backend: Backend, dir: &std::path::Path) -> String {
    match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.join("doorstep.db").display()),
        Backend::Postgres if postgres_admin_url().is_some() => {
            use diesel::{Connection, RunQueryDsl};
            let admin = postgres_admin_url().unwrap_or_default();
            let name = format!("doorstep_t_{}", uuid::Uuid::new_v4().simple());
            let mut conn = diesel::PgConnection::establish(&admin)
                .unwrap_or_else(|e| panic!("connecting to PostgreSQL at {admin}: {e}"));
            diesel::sql_query(format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .unwrap_or_else(|e| panic!("creating database {name}: {e}"));
            let mut url = url::Url::parse(&postgres_url()).expect("TEST_DATABASE_URL is a URL");
            url.set_path(&name);
            url.to_string()
        }
        Backend::Postgres => {
            use diesel::{Connection, RunQueryDsl};
            let schema = format!("doorstep_t_{}", uuid::Uuid::new_v4().simple());
            let mut conn = diesel::PgConnection::establish(&postgres_url())
                .unwrap_or_else(|e| panic!("connecting to PostgreSQL: {e}"));
            diesel::sql_query(format!("CREATE SCHEMA {schema}"))
                .execute(&mut conn)
                .unwrap_or_else(|e| panic!("creating schema {schema}: {e}"));
            let sep = if postgres_url().contains('?') {
                '&'
            } else {
                '?'
            };
            format!("{}{sep}options=-c%20search_path%3D{schema}", postgres_url())
        }
    }
}

pub fn test_settings(backend: Backend, dir: &std::path::Path) -> Settings {
    let mut settings = Settings::default();
    settings.server.bind = "127.0.0.1:0".into();
    settings.server.data_dir = dir.to_path_buf();
    settings.server.workers = 2;
    settings.database.url = fresh_database_url(backend, dir);
    settings.database.pool_size = 4;
    // TEST_STATEMENT_CACHE=false: as behind PgBouncer in transaction pooling mode (.ci/run).
    settings.database.statement_cache =
        std::env::var("TEST_STATEMENT_CACHE").map_or(true, |v| v != "false");
    settings.auth.jwt_secret = Some(URL_SAFE_NO_PAD.encode(TEST_JWT_SECRET));
    settings.server.metrics_token = Some(METRICS_TOKEN.to_owned());
    settings
}

pub struct TestApp {
    pub address: String,
    /// `http://127.0.0.1:PORT` of `server.metrics_bind`, when the test set it.
    #[allow(dead_code)]
    pub metrics_address: Option<String>,
    pub client: reqwest::Client,
    pub state: actix_web::web::Data<AppState>,
    pub server: actix_web::dev::ServerHandle,
    pub task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    #[allow(dead_code)]
    pub backend: Backend,
    pub dir: tempfile::TempDir,
}

pub struct Tokens {
    pub access: String,
    pub refresh: String,
}

/// A user created by the harness, logged in.
pub struct TestUser {
    pub id: String,
    pub email: String,
    pub token: String,
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(backend: Backend, customise: impl FnOnce(&mut Settings)) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        doorstep::telemetry::init_logging();
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = test_settings(backend, dir.path());
    customise(&mut settings);
    start_app(settings, backend, dir)
}

/// Starts a server on `settings` (a database another TestApp may already use).
pub fn start_app(settings: Settings, backend: Backend, dir: tempfile::TempDir) -> TestApp {
    let app = Application::build(settings).expect("application builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let metrics_address = app
        .metrics_port()
        .map(|port| format!("http://127.0.0.1:{port}"));
    let state = app.state();
    let server = app.server_handle();
    let task = tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        metrics_address,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client"),
        state,
        server,
        task: Some(task),
        backend,
        dir,
    }
}

/// Settings for fast escalation tests: 1-second minimum intervals.
pub fn fast(settings: &mut Settings) {
    settings.limits.min_checkin_interval_s = 1;
    settings.scheduler.poll_interval_ms = 100;
}

/// Polls `check` every 50 ms until it returns `Some`, for at most `secs` seconds.
pub async fn wait_for<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {secs} s waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl TestApp {
    /// Stops the server and its scheduler, and waits until both are gone.
    pub async fn stop(&mut self) {
        self.server.stop(true).await;
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// The outbox rows of an alert or an outing, oldest first.
    pub async fn outbox(
        &self,
        alert: Option<&str>,
        outing: Option<&str>,
    ) -> Vec<doorstep::store::notifications::NotificationRow> {
        let (alert, outing) = (alert.map(str::to_owned), outing.map(str::to_owned));
        self.state
            .store
            .read(move |conn| {
                Ok(doorstep::store::notifications::for_subject(
                    conn,
                    alert.as_deref(),
                    outing.as_deref(),
                )?)
            })
            .await
            .expect("outbox readable")
    }

    /// `/metrics` as the scraper reads it (with the test token).
    #[allow(dead_code)]
    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .expect("metrics request")
            .text()
            .await
            .unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Sends JSON (or nothing) with an optional bearer token; returns status and parsed body
    /// (`Value::Null` when the body is empty or not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, token, Some(body)).await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    pub async fn login(&self, email: &str, password: &str) -> Tokens {
        let (status, body) = self
            .post(
                "/api/v1/auth/login",
                None,
                json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "login of {email}: {body}");
        Tokens {
            access: body["access_token"].as_str().expect("access").to_owned(),
            refresh: body["refresh_token"].as_str().expect("refresh").to_owned(),
        }
    }

    /// A platform admin, created as `doorstep admin create` would, then logged in over HTTP.
    pub async fn admin(&self) -> TestUser {
        let email = format!("admin-{}@example.org", uuid::Uuid::new_v4().simple());
        let settings = (*self.state.settings).clone();
        let id = {
            let email = email.clone();
            tokio::task::spawn_blocking(move || {
                doorstep::admin::create_admin(&settings, &email, PASSWORD, "Admin")
            })
            .await
            .expect("join")
            .expect("admin created")
        };
        let tokens = self.login(&email, PASSWORD).await;
        TestUser {
            id: id.to_string(),
            email,
            token: tokens.access,
        }
    }

    pub async fn create_org(&self, admin_token: &str, name: &str) -> String {
        let (status, body) = self
            .post("/api/v1/orgs", Some(admin_token), json!({"name": name}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().expect("org id").to_owned()
    }

    /// Creates a user through `POST /users` with `creator_token`, then logs them in.
    pub async fn create_user(
        &self,
        creator_token: &str,
        role: Role,
        org_id: Option<&str>,
        display_name: &str,
    ) -> TestUser {
        let email = format!(
            "{}-{}@example.org",
            role.as_str(),
            uuid::Uuid::new_v4().simple()
        );
        let mut body = json!({
            "email": email, "password": PASSWORD, "display_name": display_name,
            "role": role.as_str(),
        });
        if let Some(org) = org_id {
            body["org_id"] = json!(org);
        }
        let (status, created) = self.post("/api/v1/users", Some(creator_token), body).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let tokens = self.login(&email, PASSWORD).await;
        TestUser {
            id: created["id"].as_str().expect("user id").to_owned(),
            email,
            token: tokens.access,
        }
    }
}

/// Asserts a problem+json error with the given status; returns the problem body.
pub async fn expect_problem(resp: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(resp.status(), status);
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("application/problem+json"),
        "content type {content_type}"
    );
    let body: Value = resp.json().await.expect("problem body is JSON");
    assert_eq!(body["status"], status.as_u16());
    assert!(body["type"].is_string() && body["title"].is_string());
    body
}
