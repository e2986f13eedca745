//! `doorstep bench`: measures the service as users meet it, from a separate load-generating
//! process over loopback. The server under test is this same binary started as a child
//! process (`doorstep serve`); this process seeds the database, drives HTTP load, plays a push
//! service that timestamps arrivals, and reads outcomes back from the database.
//!
//! Figures: check-in ingest (throughput, p50/p99), detection lag (due → step recorded, and
//! due → push arrival) for N outings whose deadlines fall over a window or in one second (a
//! storm), push fan-out, the API's check-in latency during the storm, and the server's RSS.

mod ingest_client;
mod receiver;
mod seed;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use crate::config::DatabaseSettings;
use crate::store::Store;
use ingest_client::IngestClient;

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

#[derive(Debug, Clone, clap::Args)]
pub struct BenchOptions {
    /// `sqlite` (a fresh file) or `postgres` (a fresh schema in --postgres-url).
    #[arg(long, default_value = "sqlite")]
    pub backend: String,
    #[arg(long, default_value = DEFAULT_POSTGRES_URL)]
    pub postgres_url: String,
    /// Live outings whose deadlines fall during the run.
    #[arg(long, default_value_t = 10_000)]
    pub outings: usize,
    /// How many of the live outings get a deadline during the run (default: all of them).
    /// Fewer than `--outings` measures a run against a large table of live outings.
    #[arg(long)]
    pub due: Option<usize>,
    /// Seconds over which their deadlines are spread; 0 = all in the same second (a storm).
    #[arg(long, default_value_t = 10)]
    pub spread_s: u64,
    /// Concurrent check-in clients.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Seconds of the ingest measurement.
    #[arg(long, default_value_t = 10)]
    pub ingest_s: u64,
    /// Check-ins per second sent while the steps fire (open loop: a steady load like real
    /// canvassers', whose latency shows whether the API stays responsive).
    #[arg(long, default_value_t = 200)]
    pub during_rate: u64,
    /// Send a fresh `Idempotency-Key` with every check-in, as the app does (so a retry after a
    /// lost answer is not stored twice); without it, the plain request of other clients.
    #[arg(long)]
    pub idempotency_keys: bool,
    /// Subscribe every canvasser's phone too, as in the field: a missed check-in then sends
    /// two pushes (the canvasser's and the organiser's) instead of one and a `no_subscription`.
    #[arg(long)]
    pub subscribe_canvassers: bool,
    /// Cautions (the do-not-knock register) marked in the check-in clients' organisation,
    /// scattered over 10 × 10 km around their positions: every check-in looks its position up
    /// among them, so the ingest figures show what the register costs a check-in.
    #[arg(long, default_value_t = 0)]
    pub cautions: usize,
    /// A soak's figures every this many seconds while the deadlines fire (0 = none): server
    /// RSS, WAL written, and the p99 of check-ins, steps and pushes in each interval. With
    /// `--outings 60000 --spread-s 600 --during-rate 1000 --sample-s 60`: 1,000 check-ins/s and
    /// 100 deadlines/s for ten minutes, a row a minute.
    #[arg(long, default_value_t = 0)]
    pub sample_s: u64,
    /// Database connections of the server under test (`database.pool_size`).
    #[arg(long, default_value_t = 16)]
    pub pool_size: u32,
    /// Append the results as a section of this Markdown file.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// Latency summary in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    pub count: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

fn summarise(mut values_ms: Vec<f64>) -> Summary {
    if values_ms.is_empty() {
        return Summary::default();
    }
    values_ms.sort_by(f64::total_cmp);
    let at = |q: f64| values_ms[((values_ms.len() - 1) as f64 * q).round() as usize];
    Summary {
        count: values_ms.len(),
        p50: at(0.50),
        p99: at(0.99),
        max: at(1.0),
    }
}

struct Server {
    child: Child,
    address: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time used so far, in seconds: by the whole server, and by its SQLite writer thread.
#[derive(Debug, Clone, Copy, Default)]
struct CpuTimes {
    process_s: f64,
    writer_s: f64,
}

impl CpuTimes {
    fn since(self, earlier: CpuTimes) -> CpuTimes {
        CpuTimes {
            process_s: self.process_s - earlier.process_s,
            writer_s: self.writer_s - earlier.writer_s,
        }
    }
}

/// The machine line of a run section: cores, the CPU's name and, because VMs of one name
/// differ twofold in speed here, its family/model/stepping, clock and cache sizes, so that
/// runs from different machines can be told apart.
fn describe_machine(cores: usize, cpuinfo: &str, caches: &[(String, String)]) -> String {
    let field = |name: &str| {
        cpuinfo.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == name).then(|| value.trim().to_owned())
        })
    };
    let mut details = Vec::new();
    if let (Some(family), Some(model), Some(stepping)) =
        (field("cpu family"), field("model"), field("stepping"))
    {
        details.push(format!("family {family} model {model} stepping {stepping}"));
    }
    if let Some(mhz) = field("cpu MHz").and_then(|m| m.parse::<f64>().ok()) {
        details.push(format!("{mhz:.0} MHz"));
    }
    let caches: Vec<String> = caches
        .iter()
        .map(|(level, size)| format!("{level} {size}"))
        .collect();
    if !caches.is_empty() {
        details.push(caches.join(", "));
    }
    let name = field("model name").unwrap_or_default();
    if details.is_empty() {
        format!("{cores} cores, {name}")
    } else {
        format!("{cores} cores, {name} ({})", details.join("; "))
    }
}

/// cpu0's data and unified caches from sysfs, as ("L2", "2048K"); empty where not exposed.
fn cpu0_caches() -> Vec<(String, String)> {
    let mut caches = Vec::new();
    for index in 0..8 {
        let dir = format!("/sys/devices/system/cpu/cpu0/cache/index{index}");
        let read = |file: &str| {
            std::fs::read_to_string(format!("{dir}/{file}"))
                .ok()
                .map(|v| v.trim().to_owned())
        };
        let (Some(level), Some(kind), Some(size)) = (read("level"), read("type"), read("size"))
        else {
            break;
        };
        if kind != "Instruction" {
            caches.push((format!("L{level}"), size));
        }
    }
    caches
}

/// utime + stime of a /proc stat line, in seconds (fields 14 and 15, after the `(comm)`).
fn stat_cpu_s(stat: &str) -> f64 {
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // The kernel's USER_HZ is 100 on every Linux this runs on.
    (ticks(11) + ticks(12)) / 100.0
}

impl Server {
    fn cpu(&self) -> CpuTimes {
        let pid = self.child.id();
        let process_s = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| stat_cpu_s(&s))
            .unwrap_or(0.0);
        let mut writer_s = 0.0;
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for task in tasks.flatten() {
                let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
                if comm.trim() == "doorstep-writer" {
                    writer_s += std::fs::read_to_string(task.path().join("stat"))
                        .map(|s| stat_cpu_s(&s))
                        .unwrap_or(0.0);
                }
            }
        }
        CpuTimes {
            process_s,
            writer_s,
        }
    }

    fn rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap_or(0.0)
    }
}

/// The child server's `/metrics` token (loopback only, for this run).
const BENCH_METRICS_TOKEN: &str = "bench-metrics";

fn start_server(
    pool_size: u32,
    database_url: &str,
    data_dir: &std::path::Path,
    jwt_secret: &str,
) -> Result<Server, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .arg("serve")
        .env("DOORSTEP_SERVER__BIND", "127.0.0.1:0")
        .env("DOORSTEP_SERVER__DATA_DIR", data_dir)
        .env("DOORSTEP_DATABASE__URL", database_url)
        .env("DOORSTEP_DATABASE__POOL_SIZE", pool_size.to_string())
        .env("DOORSTEP_AUTH__JWT_SECRET", jwt_secret)
        .env("DOORSTEP_SERVER__METRICS_TOKEN", BENCH_METRICS_TOKEN)
        .env("DOORSTEP_AUTH__LOGIN_MAX_PER_ADDRESS", "1000000")
        // The clients log in once; a long run (1M deadlines over 1,000 s) outlasts the default
        // 15-minute access token.
        .env("DOORSTEP_AUTH__ACCESS_TTL_S", "86400")
        .env("DOORSTEP_PUSH__ALLOW_PRIVATE_ENDPOINTS", "true")
        .env("DOORSTEP_LIMITS__MIN_CHECKIN_INTERVAL_S", "1")
        // The bench's clients check in thousands of times a second as few users.
        .env("DOORSTEP_LIMITS__CHECKINS_PER_MINUTE", "0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("starting the server: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let address = line
        .trim()
        .strip_prefix("doorstep listening on ")
        .ok_or_else(|| format!("unexpected server output {line:?}"))?
        .to_owned();
    Ok(Server { child, address })
}

async fn post(
    client: &reqwest::Client,
    url: String,
    token: Option<&str>,
    body: Value,
) -> Result<Value, String> {
    let mut req = client.post(url).json(&body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        Ok(body)
    } else {
        Err(format!("{status}: {body}"))
    }
}

/// The `i`-th check-in of a canvasser (positions vary a little, as a walk would).
fn checkin_request(
    client: &reqwest::Client,
    server: &str,
    token: &str,
    outing: &str,
    i: u64,
    keyed: bool,
) -> reqwest::RequestBuilder {
    let request = client
        .post(format!("{server}/api/v1/outings/{outing}/checkins"))
        .bearer_auth(token)
        .json(&json!({"lat": 51.5 + (i % 100) as f64 * 1e-5, "lon": -0.12, "accuracy_m": 10, "battery_pct": 80}));
    if keyed {
        request.header("Idempotency-Key", uuid::Uuid::new_v4().simple().to_string())
    } else {
        request
    }
}

/// Failed check-ins by reason (an HTTP status, or what went wrong with the request).
#[derive(Debug, Default)]
struct Failures(std::collections::BTreeMap<String, usize>);

impl Failures {
    fn add(&mut self, reason: String) {
        *self.0.entry(reason).or_default() += 1;
    }

    fn merge(&mut self, other: Failures) {
        for (reason, n) in other.0 {
            *self.0.entry(reason).or_default() += n;
        }
    }
}

impl std::fmt::Display for Failures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total: usize = self.0.values().sum();
        write!(f, "{total}")?;
        if total > 0 {
            let reasons: Vec<String> = self.0.iter().map(|(r, n)| format!("{r} ×{n}")).collect();
            write!(f, ": {}", reasons.join(", "))?;
        }
        Ok(())
    }
}

/// Sends a check-in; its latency in ms when it was stored (201), why not otherwise.
async fn timed_checkin(request: reqwest::RequestBuilder) -> Result<f64, String> {
    let started = Instant::now();
    match request.send().await {
        Ok(r) if r.status().as_u16() == 201 => {
            let _ = r.bytes().await;
            Ok(started.elapsed().as_secs_f64() * 1000.0)
        }
        Ok(r) => Err(format!("HTTP {}", r.status().as_u16())),
        Err(e) if e.is_timeout() => Err("timeout".into()),
        Err(e) if e.is_connect() => Err("cannot connect".into()),
        Err(e) => Err(format!("request error ({e})")),
    }
}

/// Runs `clients` canvassers checking in as fast as they can until `stop`, each on a
/// connection of its own ([`IngestClient`]); returns latencies (ms) and the failures.
async fn drive_checkins(
    server: String,
    canvassers: Arc<Vec<(String, String)>>,
    stop: Instant,
    keyed: bool,
) -> (Vec<f64>, Failures) {
    let mut tasks = Vec::new();
    for (token, outing) in canvassers.iter() {
        let client = IngestClient::new(&server, token, outing);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = Failures::default();
            let mut client = match client {
                Ok(client) => client,
                Err(reason) => {
                    failures.add(reason);
                    return (latencies, failures);
                }
            };
            let mut i = 0u64;
            while Instant::now() < stop {
                i += 1;
                match client.checkin(i, keyed).await {
                    Ok(ms) => latencies.push(ms),
                    Err(reason) => failures.add(reason),
                }
            }
            (latencies, failures)
        }));
    }
    let mut all = Vec::new();
    let mut failures = Failures::default();
    for task in tasks {
        match task.await {
            Ok((l, f)) => {
                all.extend(l);
                failures.merge(f);
            }
            Err(e) => failures.add(format!("client task ({e})")),
        }
    }
    (all, failures)
}

/// Sends `rate` check-ins per second (spread over the canvassers, each request on its own
/// task, not waiting for answers) until `stop`; returns latencies (ms) and failures.
async fn drive_checkins_at_rate(
    client: reqwest::Client,
    server: String,
    canvassers: Arc<Vec<(String, String)>>,
    rate: u64,
    stop: Instant,
    keyed: bool,
) -> (Vec<(i64, f64)>, Failures) {
    let mut requests = tokio::task::JoinSet::new();
    let tick = Duration::from_millis(10);
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = 0u64;
    let started = Instant::now();
    while Instant::now() < stop && !canvassers.is_empty() {
        ticker.tick().await;
        let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
        while sent < due {
            let (token, outing) = &canvassers[(sent as usize) % canvassers.len()];
            let request = checkin_request(&client, &server, token, outing, sent, keyed);
            requests.spawn(async move {
                let at_ms = chrono::Utc::now().timestamp_millis();
                (at_ms, timed_checkin(request).await)
            });
            sent += 1;
        }
    }
    let mut latencies = Vec::new();
    let mut failures = Failures::default();
    while let Some(done) = requests.join_next().await {
        match done {
            Ok((at_ms, Ok(ms))) => latencies.push((at_ms, ms)),
            Ok((_, Err(reason))) => failures.add(reason),
            Err(e) => failures.add(format!("client task ({e})")),
        }
    }
    (latencies, failures)
}

/// A soak's table: a row per interval, with what the machine held at its end and the p99 of
/// the check-ins sent, the steps due and the pushes due in it.
fn soak_table(
    rows: &[SoakRow],
    sample_s: u64,
    started_ms: i64,
    checkins: &[(i64, f64)],
    lags: &seed::Lags,
    arrivals: &[(String, i64)],
    wal_is_a_position: bool,
) -> String {
    if rows.is_empty() || sample_s == 0 {
        return String::new();
    }
    let width = (sample_s * 1000) as i64;
    let bucket = |at: i64| ((at - started_ms).max(0) / width) as usize;
    let mut checkin_ms = vec![Vec::new(); rows.len()];
    let mut step_ms = vec![Vec::new(); rows.len()];
    let mut push_ms = vec![Vec::new(); rows.len()];
    for (at, ms) in checkins {
        if let Some(b) = checkin_ms.get_mut(bucket(*at)) {
            b.push(*ms);
        }
    }
    for (due, lag) in &lags.step_lags_by_due {
        if let Some(b) = step_ms.get_mut(bucket(*due)) {
            b.push(*lag);
        }
    }
    for (topic, at) in arrivals {
        if let Some(due) = lags.due_by_alert.get(topic) {
            if let Some(b) = push_ms.get_mut(bucket(*due)) {
                b.push((*at - *due) as f64);
            }
        }
    }
    let mut text = format!(
        "\nEvery {sample_s} s while the deadlines fired:\n\n\
         | at | server RSS | WAL (SQLite: file; PostgreSQL: written since the last row) | check-ins, p99 | steps due, lag p99 | pushes, lag p99 |\n|---|---|---|---|---|---|\n"
    );
    let mut previous_wal = None;
    for (i, row) in rows.iter().enumerate() {
        let wal = match previous_wal {
            Some(before) if wal_is_a_position && row.wal_bytes >= before => row.wal_bytes - before,
            _ => row.wal_bytes,
        };
        previous_wal = Some(row.wal_bytes);
        let (c, s, p) = (
            summarise(checkin_ms[i].clone()),
            summarise(step_ms[i].clone()),
            summarise(push_ms[i].clone()),
        );
        text.push_str(&format!(
            "| {} s | {:.0} MB | {:.1} MB | {} × {:.1} ms | {} × {:.0} ms | {} × {:.0} ms |\n",
            (i as u64 + 1) * sample_s,
            row.rss_mb,
            wal as f64 / 1_048_576.0,
            c.count,
            c.p99,
            s.count,
            s.p99,
            p.count,
            p.p99
        ));
    }
    text
}

/// One interval of a soak: what the machine held at its end, and the p99s of its work.
struct SoakRow {
    rss_mb: f64,
    wal_bytes: i64,
}

/// Bytes of WAL: SQLite's `-wal` file as it stands; PostgreSQL's WAL position (bytes ever
/// written: rows show the difference).
async fn wal_bytes(store: &Store, sqlite_path: Option<&std::path::Path>) -> i64 {
    if let Some(path) = sqlite_path {
        let wal = format!("{}-wal", path.display());
        return std::fs::metadata(wal).map_or(0, |m| m.len() as i64);
    }
    store
        .read(|conn| {
            #[derive(diesel::QueryableByName)]
            struct Lsn {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                bytes: i64,
            }
            use diesel::RunQueryDsl;
            Ok(
                diesel::sql_query("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint AS bytes")
                    .get_result::<Lsn>(conn)
                    .map(|l| l.bytes)
                    .unwrap_or(0),
            )
        })
        .await
        .unwrap_or(0)
}

/// CPU time this (load-generating) process has used so far, in seconds.
fn own_cpu_s() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .map(|s| stat_cpu_s(&s))
        .unwrap_or(0.0)
}

fn writer_share(backend: &str, us: f64) -> String {
    if backend == "sqlite" {
        format!(" ({us:.0} µs)")
    } else {
        String::new()
    }
}

/// `doorstep_deliveries_total` of the Web Push channel by status, from the server's
/// `/metrics` ("sent 10000, retry 12"), or why it could not be read.
fn push_attempts(text: &str) -> String {
    let counts: Vec<String> = text
        .lines()
        .filter(|l| {
            l.starts_with("doorstep_deliveries_total{") && l.contains("channel=\"webpush\"")
        })
        .filter_map(|l| {
            let status = l.split("status=\"").nth(1)?.split('"').next()?;
            let value = l.rsplit(' ').next()?;
            Some(format!("{status} {value}"))
        })
        .collect();
    if counts.is_empty() {
        "none counted".to_owned()
    } else {
        counts.join(", ")
    }
}

/// How many observations a Prometheus histogram of seconds holds, and how many of them took
/// longer than 100 ms and than 1 s ("812, 3 > 100 ms, 0 > 1 s").
fn slow_share(text: &str, name: &str) -> String {
    let value = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    let (Some(count), Some(under_100ms), Some(under_1s)) = (
        value(&format!("{name}_count")),
        value(&format!("{name}_bucket{{le=\"0.1\"}}")),
        value(&format!("{name}_bucket{{le=\"1\"}}")),
    ) else {
        return format!("{name}: none recorded");
    };
    format!(
        "{count:.0}, {:.0} > 100 ms, {:.0} > 1 s",
        count - under_100ms,
        count - under_1s
    )
}

/// A histogram's count and how many fell in each of its buckets, e.g. `1000: ≤ 10 ms 900,
/// ≤ 25 ms 80, ≤ 50 ms 20` (empty buckets left out).
fn bucket_shares(text: &str, name: &str) -> String {
    let prefix = format!("{name}_bucket{{le=\"");
    let mut below = 0.0;
    let mut parts = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(&prefix) else {
            continue;
        };
        let Some((bound, count)) = rest.split_once("\"} ") else {
            continue;
        };
        let Ok(cumulative) = count.trim().parse::<f64>() else {
            continue;
        };
        let in_bucket = cumulative - below;
        below = cumulative;
        if in_bucket < 0.5 {
            continue;
        }
        let label = match bound.parse::<f64>() {
            Ok(s) if s < 1.0 => format!("≤ {} ms", s * 1000.0),
            Ok(s) => format!("≤ {s} s"),
            Err(_) => "more".to_owned(),
        };
        parts.push(format!("{label} {in_bucket:.0}"));
    }
    if parts.is_empty() {
        return format!("{name}: none recorded");
    }
    format!("{below:.0}: {}", parts.join(", "))
}

pub struct Report {
    pub text: String,
}

pub async fn run(opts: BenchOptions) -> Result<Report, String> {
    let data_dir =
        std::env::temp_dir().join(format!("doorstep-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&data_dir).map_err(|e| e.to_string())?;
    let database_url = match opts.backend.as_str() {
        "sqlite" => format!("sqlite://{}", data_dir.join("bench.db").display()),
        "postgres" => seed::fresh_postgres_schema(&opts.postgres_url)?,
        other => return Err(format!("--backend must be sqlite or postgres, not {other}")),
    };
    let jwt_secret = URL_SAFE_NO_PAD.encode([9u8; 32]);
    let store = Store::connect(&DatabaseSettings {
        url: database_url.clone(),
        pool_size: 4,
        ..Default::default()
    })
    .map_err(|e| e.to_string())?;
    store.migrate().map_err(|e| e.to_string())?;
    // PostgreSQL's settings decide much of what it can do: part of the run's record.
    let database_settings = match store.postgres_settings() {
        Ok(settings) if !settings.is_empty() => {
            let shown: Vec<String> = settings
                .iter()
                .map(|(name, value)| format!("{name} {value}"))
                .collect();
            format!(" PostgreSQL: {}.", shown.join(", "))
        }
        Ok(_) => String::new(),
        Err(e) => format!(" (PostgreSQL's settings could not be read: {e}.)"),
    };

    let receiver = receiver::Receiver::start().await?;
    eprintln!("seeding {} outings ...", opts.outings);
    let seeded_at = Instant::now();
    let seeded = seed::seed(
        &store,
        opts.outings,
        opts.clients,
        &receiver.origin(),
        opts.subscribe_canvassers,
        opts.cautions,
    )
    .await?;
    let seed_s = seeded_at.elapsed().as_secs_f64();

    let server = start_server(opts.pool_size, &database_url, &data_dir, &jwt_secret)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = server.rss_mb();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(opts.clients * 2)
        // Under the server's 5 s keep-alive: a connection the server is closing for idleness
        // must not be picked for the next request (reqwest keeps them 90 s by default). The
        // check-ins sent at a steady rate while the steps fired lost one or two requests a
        // run to that race ("error sending request"), which said nothing about the server.
        .pool_idle_timeout(Duration::from_secs(4))
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;

    // Ingest: each client a canvasser with an outing that will not fall due during the run.
    let mut canvassers = Vec::new();
    for email in &seeded.client_emails {
        let login = post(
            &client,
            format!("{}/api/v1/auth/login", server.address),
            None,
            json!({"email": email, "password": seed::PASSWORD}),
        )
        .await?;
        let token = login["access_token"].as_str().ok_or("no token")?.to_owned();
        let outing = post(
            &client,
            format!("{}/api/v1/outings", server.address),
            Some(&token),
            json!({"checkin_interval_s": 86_400}),
        )
        .await?;
        canvassers.push((
            token,
            outing["id"].as_str().ok_or("no outing id")?.to_owned(),
        ));
    }
    let canvassers = Arc::new(canvassers);
    eprintln!(
        "ingest: {} clients for {} s ...",
        opts.clients, opts.ingest_s
    );
    let started = Instant::now();
    let cpu_before = server.cpu();
    let load_cpu_before = own_cpu_s();
    let (ingest, ingest_failures) = drive_checkins(
        server.address.clone(),
        canvassers.clone(),
        Instant::now() + Duration::from_secs(opts.ingest_s),
        opts.idempotency_keys,
    )
    .await;
    let ingest_cpu = server.cpu().since(cpu_before);
    let load_cpu_us = (own_cpu_s() - load_cpu_before) * 1e6 / (ingest.len().max(1) as f64);
    let per_checkin_us = |s: f64| s * 1e6 / (ingest.len().max(1) as f64);
    let (ingest_cpu_us, ingest_writer_us) = (
        per_checkin_us(ingest_cpu.process_s),
        per_checkin_us(ingest_cpu.writer_s),
    );
    let ingest_rate = ingest.len() as f64 / started.elapsed().as_secs_f64();
    let ingest = summarise(ingest);

    let due = opts.due.unwrap_or(opts.outings).min(opts.outings);
    // Deadlines: due from 2 s from now, spread over the window (or all at once), armed a
    // chunk at a time ahead of them while the run goes on. `--due 0`: ingest (and the API
    // under a steady load) only.
    let plan = seed::plan_deadlines(&store, opts.spread_s, due).await?;
    let due_from_ms = chrono::Utc::now().timestamp_millis() + 2_000;
    let arming = tokio::spawn(seed::arm_ahead(store.clone(), plan, due_from_ms));
    eprintln!(
        "deadlines: {} outings due from +2 s over {} s, armed 5 s ahead ...",
        due, opts.spread_s
    );
    let storm_started = Instant::now();
    let storm_started_ms = chrono::Utc::now().timestamp_millis();
    let cpu_before_steps = server.cpu();
    // Check-in latency while the steps fire.
    let during = tokio::spawn(drive_checkins_at_rate(
        client.clone(),
        server.address.clone(),
        canvassers.clone(),
        opts.during_rate,
        Instant::now() + Duration::from_secs(opts.spread_s + 6),
        opts.idempotency_keys,
    ));
    let expected = if opts.subscribe_canvassers {
        due * 2
    } else {
        due
    };
    // Progress is read from the bench's own receiver, not the database: a step's push arrives
    // after the step is recorded. Polling `COUNT(*)` of alerts every 200 ms cost PostgreSQL
    // 15 ms a count at 100k alerts, and more as the table grew: on two shared cores, the
    // measurement slowed what it measured.
    let deadline = Instant::now() + Duration::from_secs(opts.spread_s + 600);
    let sqlite_path = (opts.backend == "sqlite").then(|| data_dir.join("bench.db"));
    let mut soak: Vec<SoakRow> = Vec::new();
    let mut next_sample = storm_started + Duration::from_secs(opts.sample_s.max(1));
    while receiver.count() < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if opts.sample_s > 0 && Instant::now() >= next_sample {
            next_sample += Duration::from_secs(opts.sample_s);
            soak.push(SoakRow {
                rss_mb: server.rss_mb(),
                wal_bytes: wal_bytes(&store, sqlite_path.as_deref()).await,
            });
        }
    }
    let fire_s = storm_started.elapsed().as_secs_f64();
    let arming = arming.await.map_err(|e| e.to_string())??;
    let arming_row = if arming.chunks == 0 {
        "none".to_owned()
    } else if arming.late_chunks == 0 {
        format!(
            "{} transactions of up to 1,000, each committed at least {} ms before its first deadline",
            arming.chunks, arming.min_margin_ms
        )
    } else {
        format!(
            "{} transactions of up to 1,000; **{} committed after their first deadline** (by up to {} ms): those lags are the bench's",
            arming.chunks,
            arming.late_chunks,
            -arming.min_margin_ms
        )
    };
    // Includes the check-ins driven meanwhile; those are counted and costed separately below.
    let steps_cpu = server.cpu().since(cpu_before_steps);
    let (during_timed, during_failures) = during.await.map_err(|e| e.to_string())?;
    let during = summarise(during_timed.iter().map(|(_, ms)| *ms).collect());
    // CPU per escalation step and its push, less what the check-ins driven meanwhile cost.
    let step_count = due.max(1) as f64;
    let step_cpu_us =
        ((steps_cpu.process_s * 1e6) - during.count as f64 * ingest_cpu_us).max(0.0) / step_count;
    let step_writer_us =
        ((steps_cpu.writer_s * 1e6) - during.count as f64 * ingest_writer_us).max(0.0) / step_count;
    let rss_loaded = server.rss_mb();
    let lags = seed::lags(&store).await?;
    let steps_per_s = if lags.last_recorded_ms > lags.first_due_ms {
        lags.step_lags_ms.len() as f64
            / ((lags.last_recorded_ms - lags.first_due_ms.max(due_from_ms)) as f64 / 1000.0)
                .max(opts.spread_s as f64)
                .max(0.001)
    } else {
        0.0
    };
    let step_lag = summarise(lags.step_lags_ms.clone());
    let soak_table = soak_table(
        &soak,
        opts.sample_s,
        storm_started_ms,
        &during_timed,
        &lags,
        &receiver.arrivals(),
        opts.backend == "postgres",
    );
    let arrivals = receiver.arrivals();
    let push_lag = summarise(
        arrivals
            .iter()
            .filter_map(|(topic, at_ms)| {
                lags.due_by_alert
                    .get(topic)
                    .map(|due| (*at_ms - *due) as f64)
            })
            .collect(),
    );
    // Where a late push spent its time: waiting in the outbox for the delivery worker (row
    // written → attempt begun), or being encrypted, signed and sent (attempt begun → arrival).
    let (outbox_waits, sends): (Vec<f64>, Vec<f64>) = arrivals
        .iter()
        .filter_map(|(topic, at_ms)| {
            lags.push_stages_by_alert
                .get(topic)
                .map(|(created, sent)| ((sent - created) as f64, (*at_ms - *sent) as f64))
        })
        .unzip();
    let (outbox_wait, send) = (summarise(outbox_waits), summarise(sends));
    let fan_out = receiver.rate();
    // The server's own count of push attempts by outcome: a retried push arrives a second or
    // more late, which the lag figures show but do not explain.
    let metrics_text = match client
        .get(format!("{}/metrics", server.address))
        .bearer_auth(BENCH_METRICS_TOKEN)
        .send()
        .await
    {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(e) => format!("# metrics unreadable: {e}"),
    };
    let attempts = push_attempts(&metrics_text);
    let worker_waits = format!(
        "{}; {}",
        slow_share(&metrics_text, "doorstep_push_claim_seconds"),
        slow_share(&metrics_text, "doorstep_push_results_write_seconds")
    );
    let delivery_times = bucket_shares(&metrics_text, "doorstep_push_delivery_seconds");
    let batch_times = bucket_shares(&metrics_text, "doorstep_scheduler_batch_seconds");
    drop(server);
    let _ = std::fs::remove_dir_all(&data_dir);
    drop(store);
    if opts.backend == "postgres" {
        if let Err(e) = seed::drop_postgres_schema(&opts.postgres_url, &database_url) {
            eprintln!("could not drop the bench schema: {e}");
        }
    }

    let machine = describe_machine(
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        &std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default(),
        &cpu0_caches(),
    );
    let mode = if opts.spread_s == 0 {
        "storm: every deadline in the same second".to_owned()
    } else {
        format!("deadlines spread over {} s", opts.spread_s)
    };
    let mode = if due == 0 {
        "ingest only (no deadlines)".to_owned()
    } else if due < opts.outings {
        format!("{due} of them due, {mode}")
    } else {
        mode
    };
    let due_arg = match opts.due {
        Some(n) if n < opts.outings => format!(" --due {n}"),
        _ => String::new(),
    };
    // A non-default database URL is part of the command (its password masked).
    let url_arg = if opts.postgres_url != DEFAULT_POSTGRES_URL && opts.backend == "postgres" {
        let shown = match url::Url::parse(&opts.postgres_url) {
            Ok(mut url) if url.password().is_some() => {
                let _ = url.set_password(Some("***"));
                url.to_string()
            }
            Ok(url) => url.to_string(),
            Err(_) => "(unparsable URL)".to_owned(),
        };
        format!(" --postgres-url '{shown}'")
    } else {
        String::new()
    };
    let keys_arg = if opts.idempotency_keys {
        " --idempotency-keys"
    } else {
        ""
    };
    let subscribe_arg = if opts.subscribe_canvassers {
        " --subscribe-canvassers"
    } else {
        ""
    };
    let cautions_arg = if opts.cautions > 0 {
        format!(" --cautions {}", opts.cautions)
    } else {
        String::new()
    };
    let cautions_arg = if opts.sample_s > 0 {
        format!("{cautions_arg} --sample-s {}", opts.sample_s)
    } else {
        cautions_arg
    };
    let keyed = if opts.idempotency_keys {
        ", each with an Idempotency-Key"
    } else {
        ""
    };
    let text = format!(
        "### {backend}, {outings} outings, {mode}\n\n\
         Run {date} on {machine}. Command: `doorstep bench --backend {backend} --outings {outings} --spread-s {spread} --clients {clients} --ingest-s {ingest_s} --during-rate {during_rate}{due_arg}{keys_arg}{subscribe_arg}{cautions_arg}{url_arg}`.{database_settings}\n\n\
         | measure | figure |\n|---|---|\n\
         | seeding (direct inserts, not measured as API) | {seed_s:.1} s |\n\
         | check-in ingest, {clients} clients × {ingest_s} s{keyed} | **{ingest_rate:.0} check-ins/s**, p50 {ip50:.1} ms, p99 {ip99:.1} ms, max {imax:.1} ms, {ingest_failures} failed |\n\
         | detection lag (due → step recorded), {steps} steps | p50 {sp50:.0} ms, p99 **{sp99:.0} ms**, max {smax:.0} ms; {steps_per_s:.0} steps/s |\n\
         | push arrival lag (due → encrypted, signed push at a loopback receiver), {pushes} pushes | p50 {pp50:.0} ms, p99 **{pp99:.0} ms**, max {pmax:.0} ms |\n\
         | push lag by stage: outbox row written → delivery attempt begun; attempt begun → arrival | p50 {wp50:.0} ms, p99 {wp99:.0} ms, max {wmax:.0} ms; p50 {tp50:.0} ms, p99 {tp99:.0} ms, max {tmax:.0} ms |\n\
         | push fan-out (encrypted + VAPID-signed, loopback) | **{fan_out:.0} pushes/s** |\n\
         | push attempts by outcome (the server's `doorstep_deliveries_total`) | {attempts} |\n\
         | delivery worker: claims; result writes (the server's histograms) | {worker_waits} |\n\
         | scheduler: time from a batch's start to its commit (the server's histogram) | {batch_times} |\n\
         | delivery worker: time from claim to result written, per message | {delivery_times} |\n\
         | check-in latency while the steps fire, {during_rate} check-ins/s | p50 {dp50:.1} ms, p99 **{dp99:.1} ms** ({dcount} check-ins, {during_failures} failed) |\n\
         | server CPU per check-in {cpu_note} | {ingest_cpu_us:.0} µs{ingest_writer} |\n\
         | load generator CPU per check-in (same cores) | {load_cpu_us:.0} µs |\n\
         | server CPU per step with its push {cpu_note} | {step_cpu_us:.0} µs{step_writer} |\n\
         | server RSS idle / after the run | {rss_idle:.0} MB / {rss_loaded:.0} MB |\n\
         | deadlines armed (by the bench, 5 s ahead, as check-ins would) | {arming_row} |\n\
         | time from arming to every step and push done | {fire_s:.1} s |\n",
        backend = opts.backend,
        outings = opts.outings,
        spread = opts.spread_s,
        clients = opts.clients,
        ingest_s = opts.ingest_s,
        during_rate = opts.during_rate,
        // PostgreSQL has no writer thread: every connection writes.
        cpu_note = if opts.backend == "sqlite" {
            "(of it, SQLite writer thread)"
        } else {
            "(Doorstep's; PostgreSQL's own is on top)"
        },
        ingest_writer = writer_share(&opts.backend, ingest_writer_us),
        step_writer = writer_share(&opts.backend, step_writer_us),
        date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        ip50 = ingest.p50,
        ip99 = ingest.p99,
        imax = ingest.max,
        steps = step_lag.count,
        sp50 = step_lag.p50,
        sp99 = step_lag.p99,
        smax = step_lag.max,
        pushes = push_lag.count,
        wp50 = outbox_wait.p50,
        wp99 = outbox_wait.p99,
        wmax = outbox_wait.max,
        tp50 = send.p50,
        tp99 = send.p99,
        tmax = send.max,
        pp50 = push_lag.p50,
        pp99 = push_lag.p99,
        pmax = push_lag.max,
        dp50 = during.p50,
        dp99 = during.p99,
        dcount = during.count,
    );
    // Without deadlines there are no steps or pushes to report.
    let text = if due == 0 {
        let step_rows = [
            "| detection lag",
            "| push arrival lag",
            "| push fan-out",
            "| push attempts",
            "| delivery worker",
            "| server CPU per step",
            "| deadlines armed",
            "| time from arming",
        ];
        text.lines()
            .filter(|l| !step_rows.iter().any(|r| l.starts_with(r)))
            .map(|l| format!("{}\n", l.replace("while the steps fire", "afterwards")))
            .collect()
    } else {
        text
    };
    let text = format!("{text}{soak_table}");
    if let Some(path) = &opts.output {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        writeln!(file, "\n{text}").map_err(|e| e.to_string())?;
    }
    Ok(Report { text })
}

#[cfg(test)]
mod tests {
    use super::describe_machine;

    #[test]
    fn the_machine_line_names_the_cpu_model_clock_and_caches() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 167\n\
                       model name\t: Intel(R) Xeon(R) Processor\nstepping\t: 1\ncpu MHz\t\t: 2599.998\n";
        let caches = [
            ("L1".to_owned(), "48K".to_owned()),
            ("L2".to_owned(), "2048K".to_owned()),
        ];
        assert_eq!(
            describe_machine(2, cpuinfo, &caches),
            "2 cores, Intel(R) Xeon(R) Processor (family 6 model 167 stepping 1; 2600 MHz; L1 48K, L2 2048K)"
        );
        assert_eq!(
            describe_machine(4, "model name\t: Some CPU\n", &[]),
            "4 cores, Some CPU"
        );
    }
}
