//! Two `doorstep serve` processes on one PostgreSQL database: every escalation step is
//! recorded exactly once, and no step is processed by both.

#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use diesel::prelude::*;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_doorstep");

struct Server(Child, String);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn doorstep(dir: &std::path::Path, database_url: &str) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_remove("RUST_LOG")
        .env("DOORSTEP_SERVER__BIND", "127.0.0.1:0")
        .env("DOORSTEP_DATABASE__URL", database_url)
        .env(
            "DOORSTEP_AUTH__JWT_SECRET",
            URL_SAFE_NO_PAD.encode(helpers::TEST_JWT_SECRET),
        )
        .env("DOORSTEP_LIMITS__MIN_CHECKIN_INTERVAL_S", "1")
        .env("DOORSTEP_SERVER__METRICS_TOKEN", "replicas-test")
        .env("DOORSTEP_SCHEDULER__POLL_INTERVAL_MS", "50")
        // Small batches so both replicas get a share of the storm.
        .env("DOORSTEP_SCHEDULER__BATCH_SIZE", "3");
    cmd
}

fn serve(dir: &std::path::Path, database_url: &str) -> Server {
    let mut child = doorstep(dir, database_url)
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("doorstep serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("listening line");
    let address = line
        .trim()
        .strip_prefix("doorstep listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    Server(child, address)
}

async fn call(
    client: &reqwest::Client,
    server: &Server,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> Value {
    let mut req = client.post(format!("{}{path}", server.1)).json(&body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

async fn put(client: &reqwest::Client, server: &Server, path: &str, token: &str, body: Value) {
    let resp = client
        .put(format!("{}{path}", server.1))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("request");
    assert!(resp.status().is_success());
}

/// Sum of `doorstep_escalation_steps_total` over all its label sets.
async fn steps_fired(client: &reqwest::Client, server: &Server) -> u64 {
    let text = client
        .get(format!("{}/metrics", server.1))
        .bearer_auth("replicas-test")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with("doorstep_escalation_steps_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_record_every_step_exactly_once() {
    if !helpers::postgres_available() {
        return;
    }
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let database_url = helpers::fresh_database_url(helpers::Backend::Postgres, dir_a.path());

    let out = doorstep(dir_a.path(), &database_url)
        .args([
            "admin",
            "create",
            "--email",
            "admin@example.org",
            "--password",
            helpers::PASSWORD,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Both start together: migrations are serialised by the advisory lock.
    let a = serve(dir_a.path(), &database_url);
    let b = serve(dir_b.path(), &database_url);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();

    let admin = call(
        &client,
        &a,
        "/api/v1/auth/login",
        None,
        json!({"email": "admin@example.org", "password": helpers::PASSWORD}),
    )
    .await;
    let admin = admin["access_token"].as_str().unwrap().to_owned();
    let org = call(
        &client,
        &b,
        "/api/v1/orgs",
        Some(&admin),
        json!({"name": "Party"}),
    )
    .await;
    let org_id = org["id"].as_str().unwrap().to_owned();
    let user = |role: &str, n: usize| {
        json!({"email": format!("{role}{n}@example.org"), "password": helpers::PASSWORD,
               "display_name": format!("{role} {n}"), "role": role,
               "org_id": if role == "police" { Value::Null } else { json!(org_id) }})
    };
    call(
        &client,
        &a,
        "/api/v1/users",
        Some(&admin),
        user("organiser", 0),
    )
    .await;
    let police = call(
        &client,
        &a,
        "/api/v1/users",
        Some(&admin),
        user("police", 0),
    )
    .await;
    call(
        &client,
        &b,
        &format!("/api/v1/orgs/{org_id}/police-contacts"),
        Some(&admin),
        json!({"user_id": police["id"]}),
    )
    .await;
    let organiser = call(
        &client,
        &a,
        "/api/v1/auth/login",
        None,
        json!({"email": "organiser0@example.org", "password": helpers::PASSWORD}),
    )
    .await;
    let organiser = organiser["access_token"].as_str().unwrap().to_owned();
    put(&client, &a, &format!("/api/v1/orgs/{org_id}/escalation-policy"), &organiser,
        json!({"reminder_before_s": 1, "grace_s": 1, "police_after_s": 2, "repeat_s": 1, "ack_timeout_s": 60})).await;

    // Twelve canvassers start outings through either replica, deadlines in the same second.
    const CANVASSERS: usize = 12;
    for n in 0..CANVASSERS {
        let server = if n % 2 == 0 { &a } else { &b };
        call(
            &client,
            server,
            "/api/v1/users",
            Some(&organiser),
            user("canvasser", n),
        )
        .await;
        let token = call(
            &client,
            server,
            "/api/v1/auth/login",
            None,
            json!({"email": format!("canvasser{n}@example.org"), "password": helpers::PASSWORD}),
        )
        .await;
        let token = token["access_token"].as_str().unwrap().to_owned();
        call(
            &client,
            server,
            "/api/v1/outings",
            Some(&token),
            json!({"checkin_interval_s": 2}),
        )
        .await;
    }

    // Reminder at 1 s, missed at 3 s, level 2 at 5 s, repeats every second meanwhile.
    let url = database_url.clone();
    let outbox = move || -> Vec<(String, String, String, String, i32)> {
        let mut conn = diesel::PgConnection::establish(&url).expect("connect");
        doorstep::store::schema::notifications::table
            .select((
                doorstep::store::schema::notifications::dedupe_key,
                doorstep::store::schema::notifications::step,
                doorstep::store::schema::notifications::recipient_id.assume_not_null(),
                diesel::dsl::sql::<diesel::sql_types::Text>("COALESCE(alert_id, outing_id)"),
                doorstep::store::schema::notifications::level,
            ))
            .load(&mut conn)
            .expect("outbox")
    };
    helpers::wait_for(20, "every alert at level 2 with repeats", || {
        let outbox = outbox.clone();
        async move {
            let rows = tokio::task::spawn_blocking(outbox).await.unwrap();
            let escalated = rows
                .iter()
                .filter(|r| r.1 == "escalate:2")
                .map(|r| r.3.clone())
                .collect::<BTreeSet<_>>();
            (escalated.len() == CANVASSERS).then_some(())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Freeze both replicas' view: read their counters, then stop them before reading the outbox.
    let fired_a = steps_fired(&client, &a).await;
    let fired_b = steps_fired(&client, &b).await;
    drop(a);
    drop(b);
    let rows = tokio::task::spawn_blocking(outbox).await.unwrap();

    // Exactly once per (subject, step, recipient).
    let keys: BTreeSet<&String> = rows.iter().map(|r| &r.0).collect();
    assert_eq!(keys.len(), rows.len());
    let mut recipients_per_step: BTreeMap<(String, String, i32), usize> = BTreeMap::new();
    for r in &rows {
        *recipients_per_step
            .entry((r.3.clone(), r.1.clone(), r.4))
            .or_default() += 1;
    }
    for ((_, step, level), n) in &recipients_per_step {
        // Level 0: the canvasser; 1: + the organiser; 2: + the police contact.
        assert_eq!(*n, *level as usize + 1, "{step} at level {level}");
    }
    // Each alert's repeats are numbered without gaps: no step was skipped or done twice.
    let mut repeats: BTreeMap<&String, Vec<u32>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.1.starts_with("repeat:")) {
        repeats
            .entry(&r.3)
            .or_default()
            .push(r.1[7..].parse().unwrap());
    }
    for seqs in repeats.values_mut() {
        seqs.sort_unstable();
        seqs.dedup();
        assert_eq!(*seqs, (1..=seqs.len() as u32).collect::<Vec<_>>());
    }
    // No step was processed by both replicas: the steps they fired add up to the steps stored.
    let distinct_steps = recipients_per_step.len() as u64;
    eprintln!("replica A fired {fired_a} steps, replica B {fired_b}, {distinct_steps} distinct steps stored");
    assert!(fired_a + fired_b >= distinct_steps.saturating_sub(2 * CANVASSERS as u64));
    assert!(
        fired_a + fired_b <= distinct_steps,
        "a step was processed twice"
    );
}
