//! The `doorstep` binary as an operator uses it: bootstrap an admin, serve, log in over HTTP.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_doorstep");

fn doorstep(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_remove("RUST_LOG")
        .env("DOORSTEP_SERVER__BIND", "127.0.0.1:0");
    cmd
}

/// Kills the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(dir: &std::path::Path) -> (Server, String) {
    start_server_with(dir, &[])
}

fn start_server_with(dir: &std::path::Path, env: &[(&str, &str)]) -> (Server, String) {
    let mut child = doorstep(dir)
        .arg("serve")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("doorstep serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let server = Server(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("reading the listening line");
    let address = line
        .trim()
        .strip_prefix("doorstep listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (server, address)
}

#[test]
fn vapid_generate_prints_a_key_pair() {
    let out = Command::new(BIN)
        .args(["vapid", "generate"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("private_key = \"") && text.contains("public_key  = \"B"),
        "{text}"
    );
}

#[test]
fn bad_configuration_is_refused_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = doorstep(dir.path())
        .arg("migrate")
        .env("DOORSTEP_DATABASE__URL", "mysql://localhost/x")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("database.url"), "{err}");

    let out = doorstep(dir.path())
        .arg("migrate")
        .env("DOORSTEP_AUTH__ACCESS_TTL_S", "forever")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .to_lowercase()
        .contains("access_ttl_s"));

    let out = doorstep(dir.path())
        .args(["--config", "missing.toml", "migrate"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));

    std::fs::write(dir.path().join("typo.toml"), "[escalation]\ngrace = 10\n").unwrap();
    let out = doorstep(dir.path())
        .args(["--config", "typo.toml", "migrate"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a misspelt key must not be ignored");
    assert!(String::from_utf8_lossy(&out.stderr).contains("grace"));
}

/// Kubernetes gives every pod of a namespace with a Service named `doorstep` variables such as
/// `DOORSTEP_PORT=tcp://10.0.0.1:8080`: they are not settings, and must not stop the start
/// (a warning names them). A misspelt key of a real section is still refused.
#[tokio::test]
async fn foreign_doorstep_variables_are_ignored_but_unknown_keys_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = doorstep(dir.path())
        .arg("serve")
        .env("DOORSTEP_PORT", "tcp://10.0.0.1:8080")
        .env("DOORSTEP_SERVICE_HOST", "10.0.0.1")
        .env("DOORSTEP_PORT_8080_TCP_ADDR", "10.0.0.1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("doorstep serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let server = Server(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("reading the listening line");
    let address = line
        .trim()
        .strip_prefix("doorstep listening on ")
        .unwrap_or_else(|| panic!("the server did not start: {line:?}"))
        .to_owned();
    let ready = reqwest::get(format!("{address}/healthz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    drop(server);
    let mut log = String::new();
    std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut log).unwrap();
    assert!(
        log.contains("DOORSTEP_PORT, DOORSTEP_PORT_8080_TCP_ADDR, DOORSTEP_SERVICE_HOST"),
        "one warning naming them: {log}"
    );
    assert!(!log.contains("10.0.0.1"), "names only, not values: {log}");

    let out = doorstep(dir.path())
        .arg("migrate")
        .env("DOORSTEP_PORT", "tcp://10.0.0.1:8080")
        .env("DOORSTEP_SERVER__NOPE", "1")
        .output()
        .unwrap();
    assert!(!out.status.success(), "an unknown key of a section");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown field: found `nope`") && err.contains("SERVER.NOPE"),
        "{err}"
    );
    let out = doorstep(dir.path())
        .arg("migrate")
        .env("DOORSTEP_SEVER__BIND", "127.0.0.1:1")
        .output()
        .unwrap();
    assert!(!out.status.success(), "an unknown section");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown field: found `sever`"), "{err}");
}

#[tokio::test]
async fn admin_create_then_login_refresh_logout_over_http() {
    let dir = tempfile::tempdir().unwrap();
    // No config file at all: built-in defaults, SQLite under ./data.
    let out = doorstep(dir.path())
        .args([
            "admin",
            "create",
            "--email",
            "root@example.org",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(b"a long admin password\n")?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("data/doorstep.db").exists());

    let again = doorstep(dir.path())
        .args([
            "admin",
            "create",
            "--email",
            "ROOT@example.org",
            "--password",
            "another long one",
        ])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    let (_server, address) = start_server(dir.path());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let post = |path: &str, body: Value| client.post(format!("{address}{path}")).json(&body).send();

    let login: Value = post(
        "/api/v1/auth/login",
        json!({"email": "root@example.org", "password": "a long admin password"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let access = login["access_token"].as_str().expect("logged in");
    let me: Value = client
        .get(format!("{address}/api/v1/me"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "admin");

    let refreshed = post(
        "/api/v1/auth/refresh",
        json!({"refresh_token": login["refresh_token"]}),
    )
    .await
    .unwrap();
    assert_eq!(refreshed.status(), 200);
    let refreshed: Value = refreshed.json().await.unwrap();
    let logout = post(
        "/api/v1/auth/logout",
        json!({"refresh_token": refreshed["refresh_token"]}),
    )
    .await
    .unwrap();
    assert_eq!(logout.status(), 204);
    let after = post(
        "/api/v1/auth/refresh",
        json!({"refresh_token": refreshed["refresh_token"]}),
    )
    .await
    .unwrap();
    assert_eq!(after.status(), 401);

    // The signing key was generated once and kept, owner-only.
    let key = dir.path().join("data/jwt-signing.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}

/// At a terminal (a pseudo-terminal made by util-linux's `script`), `--password-stdin` prompts
/// and reads one line without echo; from a pipe it reads the whole input (the other tests).
#[test]
fn admin_create_prompts_for_the_password_at_a_terminal() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("temp dir");
    let command = format!("{BIN} admin create --email tty@example.org --password-stdin");
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs");
    // Typed once the prompt shows (echo is off by then).
    let mut stdout = child.stdout.take().expect("stdout");
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !String::from_utf8_lossy(&seen).contains("Password for the new admin:") {
        use std::io::Read;
        let n = stdout.read(&mut byte).expect("reading the prompt");
        assert!(n == 1, "no prompt: {}", String::from_utf8_lossy(&seen));
        seen.push(byte[0]);
    }
    // rpassword writes the prompt and only then turns echo off: typing in between would be
    // echoed by the terminal, whatever the program does. A person takes longer than this.
    std::thread::sleep(std::time::Duration::from_millis(300));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"typed at the terminal\n")
        .expect("typing");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).expect("the rest");
    let status = child.wait().expect("script ends");
    let text = format!("{}{rest}", String::from_utf8_lossy(&seen));
    assert!(status.success(), "{text}");
    assert!(text.contains("created"), "{text}");
    assert!(
        !text.contains("typed at the terminal"),
        "the password was echoed: {text}"
    );
}

/// The settings of the backup test's servers: 1-second check-in intervals, no per-user
/// ceiling (the test checks in as fast as it can), a fast scheduler.
const FAST: &[(&str, &str)] = &[
    ("DOORSTEP_LIMITS__MIN_CHECKIN_INTERVAL_S", "1"),
    ("DOORSTEP_LIMITS__CHECKINS_PER_MINUTE", "0"),
    ("DOORSTEP_SCHEDULER__POLL_INTERVAL_MS", "100"),
];

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = client.request(method, url);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.expect("request sent");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn login(client: &reqwest::Client, address: &str, email: &str) -> String {
    let (status, body) = call(
        client,
        reqwest::Method::POST,
        format!("{address}/api/v1/auth/login"),
        None,
        Some(json!({"email": email, "password": "a long enough password"})),
    )
    .await;
    assert_eq!(status, 200, "login of {email}: {body}");
    body["access_token"].as_str().expect("token").to_owned()
}

/// `doorstep backup --to FILE` while check-ins keep arriving; `serve` on the copy serves the
/// same outings and fires their deadlines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_check_ins_restores_to_a_working_server() {
    use reqwest::Method;
    let dir = tempfile::tempdir().unwrap();
    let out = doorstep(dir.path())
        .args(["admin", "create", "--email", "root@example.org"])
        .args(["--password", "a long enough password"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (server, address) = start_server_with(dir.path(), FAST);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let root = login(&client, &address, "root@example.org").await;
    let (status, org) = call(
        &client,
        Method::POST,
        format!("{address}/api/v1/orgs"),
        Some(&root),
        Some(json!({"name": "Party"})),
    )
    .await;
    assert_eq!(status, 201, "{org}");
    let org_id = org["id"].as_str().unwrap().to_owned();
    let (status, body) = call(
        &client,
        Method::PUT,
        format!("{address}/api/v1/orgs/{org_id}/escalation-policy"),
        Some(&root),
        Some(
            json!({"reminder_before_s": 1, "grace_s": 1, "police_after_s": 60,
                    "repeat_s": 0, "ack_timeout_s": 60}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(
        &client,
        Method::POST,
        format!("{address}/api/v1/users"),
        Some(&root),
        Some(
            json!({"email": "organiser@example.org", "password": "a long enough password",
            "display_name": "Olive Organiser", "role": "organiser", "org_id": org_id}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    // Three canvassers, an outing each (one open outing per canvasser), 4-second check-ins.
    let mut canvassers = Vec::new();
    for n in 0..3 {
        let email = format!("canvasser-{n}@example.org");
        let (status, body) = call(
            &client,
            Method::POST,
            format!("{address}/api/v1/users"),
            Some(&root),
            Some(json!({"email": email, "password": "a long enough password",
                "display_name": format!("Canvasser {n}"), "role": "canvasser",
                "org_id": org_id})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let token = login(&client, &address, &email).await;
        let (status, outing) = call(
            &client,
            Method::POST,
            format!("{address}/api/v1/outings"),
            Some(&token),
            Some(json!({"checkin_interval_s": 4,
                "start_location": {"lat": 51.5, "lon": -0.12, "accuracy_m": 8}})),
        )
        .await;
        assert_eq!(status, 201, "{outing}");
        canvassers.push((token, outing["id"].as_str().unwrap().to_owned()));
    }

    // Check-ins keep arriving, from every canvasser, before, during and after the backup.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut writers = Vec::new();
    for (token, outing) in canvassers.clone() {
        let (client, address, stop, sent) =
            (client.clone(), address.clone(), stop.clone(), sent.clone());
        writers.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (status, body) = call(
                    &client,
                    Method::POST,
                    format!("{address}/api/v1/outings/{outing}/checkins"),
                    Some(&token),
                    Some(json!({"lat": 51.5, "lon": -0.12, "accuracy_m": 5})),
                )
                .await;
                assert!(status == 200 || status == 201, "check-in: {status} {body}");
                sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }));
    }
    while sent.load(std::sync::atomic::Ordering::Relaxed) < 30 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = sent.load(std::sync::atomic::Ordering::Relaxed);
    let backup = dir.path().join("backup.db");
    let out = doorstep(dir.path())
        .args(["backup", "--to", "backup.db"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let during = sent.load(std::sync::atomic::Ordering::Relaxed) - before;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for writer in writers {
        writer.await.expect("check-ins kept succeeding");
    }
    eprintln!("check-ins: {before} before the backup, {during} while it ran");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the copy is owner-only");
    }
    // Never over an existing file.
    let len = std::fs::metadata(&backup).unwrap().len();
    let again = doorstep(dir.path())
        .args(["backup", "--to", "backup.db"])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    assert_eq!(
        std::fs::metadata(&backup).unwrap().len(),
        len,
        "left as it was"
    );
    drop(server);

    // Restore: serve on the copy (the same data folder: the same signing key).
    let restored_url = format!("sqlite://{}", backup.display());
    let mut env = FAST.to_vec();
    env.push(("DOORSTEP_DATABASE__URL", &restored_url));
    let (_restored, address) = start_server_with(dir.path(), &env);
    let organiser = login(&client, &address, "organiser@example.org").await;
    let (status, list) = call(
        &client,
        Method::GET,
        format!("{address}/api/v1/outings"),
        Some(&organiser),
        None,
    )
    .await;
    assert_eq!(status, 200, "{list}");
    let listed: std::collections::BTreeSet<String> = list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("a list: {list}"))
        .iter()
        .filter_map(|o| o["id"].as_str().map(str::to_owned))
        .collect();
    let ours: std::collections::BTreeSet<String> =
        canvassers.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(listed, ours, "the same outings");
    // Nobody checks in any more: each outing's deadline (4 s + 1 s grace after its last
    // check-in in the copy) fires on the restored server.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    for (_, outing) in &canvassers {
        loop {
            let (_, seen) = call(
                &client,
                Method::GET,
                format!("{address}/api/v1/outings/{outing}"),
                Some(&organiser),
                None,
            )
            .await;
            if seen["open_alert"]["kind"] == "missed_checkin" {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no missed check-in: {seen}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[test]
fn backup_refuses_postgresql_with_the_way_to_do_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = doorstep(dir.path())
        .args(["backup", "--to", "copy.db"])
        .env(
            "DOORSTEP_DATABASE__URL",
            "postgres://doorstep@db.invalid/doorstep",
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pg_dump"), "{err}");
    assert!(!dir.path().join("copy.db").exists());
}
