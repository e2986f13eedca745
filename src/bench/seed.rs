//! Seeding the benchmark database directly (it measures the service, not the seeding), and
//! reading outcomes back.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use diesel::prelude::*;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use rand::RngCore;

use crate::domain::account::Role;
use crate::domain::ids::{OrgId, OutingId};
use crate::store::outings::OutingRow;
use crate::store::schema::notifications;
use crate::store::{self, Store};

pub const PASSWORD: &str = "benchmark password";
const PER_ORG: usize = 100;
const MARK: &str = "bench";

pub struct Seeded {
    pub client_emails: Vec<String>,
}

/// Drops a schema made by [`fresh_postgres_schema`] (given its database URL), so runs leave
/// nothing behind.
pub fn drop_postgres_schema(server_url: &str, database_url: &str) -> Result<(), String> {
    use diesel::Connection;
    let Some(schema) = database_url.rsplit("search_path%3D").next().filter(|s| {
        s.starts_with("doorstep_bench_") && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    }) else {
        return Err(format!("not a bench schema URL: {database_url}"));
    };
    let mut conn = diesel::PgConnection::establish(server_url).map_err(|e| e.to_string())?;
    diesel::sql_query(format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&mut conn)
        .map_err(|e| e.to_string())?;
    Ok(())
}

pub fn fresh_postgres_schema(url: &str) -> Result<String, String> {
    use diesel::Connection;
    let schema = format!("doorstep_bench_{}", uuid::Uuid::new_v4().simple());
    let mut conn = diesel::PgConnection::establish(url).map_err(|e| e.to_string())?;
    diesel::sql_query(format!("CREATE SCHEMA {schema}"))
        .execute(&mut conn)
        .map_err(|e| e.to_string())?;
    let sep = if url.contains('?') { '&' } else { '?' };
    Ok(format!("{url}{sep}options=-c%20search_path%3D{schema}"))
}

fn subscription_keys() -> (String, String) {
    let mut secret = [0u8; 32];
    loop {
        rand::rng().fill_bytes(&mut secret);
        if let Ok(key) = p256::SecretKey::from_slice(&secret) {
            let mut auth = [0u8; 16];
            rand::rng().fill_bytes(&mut auth);
            let public = key.public_key().to_encoded_point(false);
            return (
                URL_SAFE_NO_PAD.encode(public.as_bytes()),
                URL_SAFE_NO_PAD.encode(auth),
            );
        }
    }
}

/// A push subscription of `user` at `endpoint` (on the bench's receiver), with fresh keys.
fn subscribe(
    conn: &mut store::DbConn,
    user: crate::domain::ids::UserId,
    endpoint: &str,
    now: i64,
) -> Result<(), crate::error::AppError> {
    let (p256dh, auth) = subscription_keys();
    store::push::save_subscription(conn, user, endpoint, &p256dh, &auth, None, now)?;
    Ok(())
}

/// Organisations of 100 canvassers, each with an organiser subscribed to the receiver; one
/// parked outing per canvasser (no deadline until armed); and `clients` canvassers with a
/// known password for the HTTP load.
pub async fn seed(
    store: &Store,
    outings: usize,
    clients: usize,
    receiver_origin: &str,
    subscribe_canvassers: bool,
    cautions: usize,
) -> Result<Seeded, String> {
    let hash = crate::auth::password::hash(PASSWORD).map_err(|e| e.to_string())?;
    let origin = receiver_origin.to_owned();
    let policy = r#"{"reminder_before_s":0,"grace_s":0,"police_after_s":3600,"repeat_s":0,"ack_timeout_s":3600}"#;
    let orgs = outings.div_ceil(PER_ORG).max(1);
    let now = chrono::Utc::now().timestamp_millis();
    let base = now - 3_600_000;
    for chunk_start in (0..orgs).step_by(50) {
        let (hash, origin) = (hash.clone(), origin.clone());
        store
            .write(move |conn| {
                for o in chunk_start..(chunk_start + 50).min(orgs) {
                    let org = store::orgs::insert(
                        conn,
                        &format!("Bench org {o}"),
                        chrono_tz::Europe::London,
                        now,
                    )?;
                    diesel::update(store::schema::organisations::table.find(org.id.to_string()))
                        .set(store::schema::organisations::escalation_policy.eq(Some(policy)))
                        .execute(conn)?;
                    let organiser = insert_user(
                        conn,
                        &format!("org{o}"),
                        &hash,
                        Role::Organiser,
                        org.id,
                        now,
                    )?;
                    subscribe(conn, organiser.id, &format!("{origin}/push/org{o}"), now)?;
                    for c in (o * PER_ORG)..((o + 1) * PER_ORG).min(outings) {
                        let canvasser = insert_user(
                            conn,
                            &format!("c{c}"),
                            &hash,
                            Role::Canvasser,
                            org.id,
                            now,
                        )?;
                        if subscribe_canvassers {
                            subscribe(conn, canvasser.id, &format!("{origin}/push/c{c}"), now)?;
                        }
                        store::outings::insert_outing(
                            conn,
                            &parked(c, canvasser.id, org.id, base),
                            &[],
                        )?;
                    }
                }
                Ok(())
            })
            .await
            .map_err(|e| e.to_string())?;
    }
    let client_emails: Vec<String> = (0..clients)
        .map(|i| format!("client{i}@bench.invalid"))
        .collect();
    let emails = client_emails.clone();
    store
        .write(move |conn| {
            let org = store::orgs::insert(conn, "Bench clients", chrono_tz::Europe::London, now)?;
            let mut author = None;
            for email in &emails {
                let local = email.split('@').next().unwrap_or("client");
                author = Some(insert_user(conn, local, &hash, Role::Canvasser, org.id, now)?.id);
            }
            if let Some(author) = author {
                for i in 0..cautions {
                    insert_caution(conn, i, org.id, author, now)?;
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| e.to_string())?;
    Ok(Seeded { client_emails })
}

/// The `i`th of the bench's cautions: spread evenly (a low-discrepancy sequence) over a
/// 10 × 10 km square centred on the check-in clients' positions (51.5, -0.12), radii 10 to
/// 108 m, all of level `note` (a `do_not_knock` would add a push to the measure).
fn insert_caution(
    conn: &mut store::DbConn,
    i: usize,
    org: OrgId,
    author: crate::domain::ids::UserId,
    now: i64,
) -> Result<(), crate::error::AppError> {
    let fraction = |x: f64| x - x.floor();
    let n = i as f64 + 1.0;
    let circle = crate::domain::caution::Circle {
        lat: 51.455 + 0.09 * fraction(n * 0.754_877_666),
        lon: -0.192 + 0.144 * fraction(n * 0.569_840_291),
        radius_m: 10.0 + (i % 50) as f64 * 2.0,
    };
    let row = store::cautions::CautionRow {
        id: store::new_id(),
        org_id: org.to_string(),
        lat: circle.lat,
        lon: circle.lon,
        radius_m: circle.radius_m,
        level: crate::domain::caution::Level::Note,
        reason: "Bench caution".into(),
        created_by: author.to_string(),
        created_at: now,
        expires_at: now + crate::domain::caution::DEFAULT_LIFETIME_MS,
    };
    store::cautions::insert(
        conn,
        &row,
        &crate::domain::caution::cells_of_circle(&circle),
    )?;
    Ok(())
}

fn insert_user(
    conn: &mut store::DbConn,
    local: &str,
    hash: &str,
    role: Role,
    org: OrgId,
    now: i64,
) -> Result<store::accounts::Account, crate::error::AppError> {
    let email = format!("{local}@bench.invalid");
    let name = format!("Bench {local}");
    Ok(store::accounts::insert(
        conn,
        store::accounts::NewUser {
            email: &email,
            password_hash: hash.to_owned(),
            display_name: &name,
            role,
            org_id: Some(org),
            phone: None,
            now_ms: now,
        },
    )?)
}

fn parked(i: usize, canvasser: crate::domain::ids::UserId, org: OrgId, base: i64) -> OutingRow {
    OutingRow {
        id: OutingId::new(),
        canvasser_id: canvasser,
        org_id: org,
        status: crate::domain::escalation::OutingStatus::Active,
        // The index orders the deadlines when they are armed.
        started_at: base + i as i64,
        ended_at: None,
        checkin_interval_s: 3600,
        next_checkin_due_at: None,
        planned_end_at: None,
        area: None,
        solo: true,
        note: Some(MARK.into()),
        last_checkin_id: None,
        last_checkin_recorded_at: None,
        last_checkin_received_at: None,
        check_on_me_due_at: None,
        check_on_me_note: None,
        welfare_due_at: None,
        welfare_note: None,
        welfare_token_hash: None,
        last_received_at: base,
        inside_area: None,
        low_battery_notified: false,
        outside_area_notified: false,
        reminder_sent_for: None,
        open_alert_id: None,
        next_action_at: None,
        claimed_by: None,
        claimed_until: None,
        created_at: base,
        updated_at: base,
    }
}

/// The deadlines a run arms: the first `due` parked outings in seeding order, spread evenly
/// over the run. Loaded before the clock starts (on PostgreSQL a million ids take seconds).
pub struct DeadlinePlan {
    /// Outing ids, earliest deadline first, with their deadline's offset from the first.
    pub outings: Vec<(String, i64)>,
    base: i64,
    spread_ms: i64,
    count: i64,
}

/// Plans deadlines for the first `due` parked outings (all, when `due` is larger), spread
/// over `spread_s`; the others stay live with no deadline.
pub async fn plan_deadlines(
    store: &Store,
    spread_s: u64,
    due: usize,
) -> Result<DeadlinePlan, String> {
    let limit = i64::try_from(due).unwrap_or(i64::MAX);
    let rows: Vec<(String, i64)> = store
        .read(move |conn| {
            use store::schema::outings;
            Ok(outings::table
                .filter(outings::note.eq(MARK))
                .order(outings::started_at.asc())
                .limit(limit)
                .select((outings::id, outings::started_at))
                .load(conn)?)
        })
        .await
        .map_err(|e| e.to_string())?;
    let base = rows.first().map(|r| r.1).unwrap_or(0);
    let count = i64::try_from(rows.len()).unwrap_or(i64::MAX).max(1);
    let spread_ms = i64::try_from(spread_s).unwrap_or(0) * 1000;
    let outings = rows
        .into_iter()
        .map(|(id, started_at)| (id, (started_at - base) * spread_ms / count))
        .collect();
    Ok(DeadlinePlan {
        outings,
        base,
        spread_ms,
        count,
    })
}

/// How the deadlines were armed: chunks written, and the least time between a chunk's
/// commit and its first deadline (negative: armed after it fell due, so its lag is the
/// bench's, not the scheduler's).
#[derive(Debug, Clone, Copy)]
pub struct Arming {
    pub chunks: usize,
    pub late_chunks: usize,
    pub min_margin_ms: i64,
}

/// Deadlines armed per transaction: a second's worth at the bench's 1,000 a second.
const ARM_CHUNK: usize = 1_000;
/// A chunk is armed this long before its first deadline, like the check-ins that set
/// deadlines in the field, which come an interval ahead.
const ARM_LEAD_MS: i64 = 5_000;

/// Arms the plan's deadlines from `due_from_ms`, a chunk at a time, each committed
/// [`ARM_LEAD_MS`] before its first deadline. One transaction for a million deadlines took
/// 20 s on PostgreSQL, and the scheduler cannot see a deadline until it commits: the first
/// 20 s of deadlines were "late" by the bench's own doing.
pub async fn arm_ahead(
    store: Store,
    plan: DeadlinePlan,
    due_from_ms: i64,
) -> Result<Arming, String> {
    let mut arming = Arming {
        chunks: 0,
        late_chunks: 0,
        min_margin_ms: i64::MAX,
    };
    let (base, spread_ms, count) = (plan.base, plan.spread_ms, plan.count);
    for chunk in plan.outings.chunks(ARM_CHUNK) {
        let first_due = due_from_ms + chunk.first().map(|c| c.1).unwrap_or(0);
        let wait_ms = first_due - ARM_LEAD_MS - chrono::Utc::now().timestamp_millis();
        if wait_ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(wait_ms.unsigned_abs())).await;
        }
        // The ids are this bench's own UUIDs, safe to write into the statement.
        let ids = chunk
            .iter()
            .map(|(id, _)| format!("'{id}'"))
            .collect::<Vec<_>>()
            .join(",");
        let due = format!("({due_from_ms} + ((started_at - {base}) * {spread_ms}) / {count})");
        store
            .write(move |conn| {
                diesel::sql_query(format!(
                    "UPDATE outings SET next_checkin_due_at = {due}, next_action_at = {due} \
                     WHERE id IN ({ids})"
                ))
                .execute(conn)?;
                Ok(())
            })
            .await
            .map_err(|e| e.to_string())?;
        let margin = first_due - chrono::Utc::now().timestamp_millis();
        arming.chunks += 1;
        if margin < 0 {
            arming.late_chunks += 1;
        }
        arming.min_margin_ms = arming.min_margin_ms.min(margin);
    }
    Ok(arming)
}

pub struct Lags {
    pub step_lags_ms: Vec<f64>,
    /// Each step's due time and lag (for a soak's intervals).
    pub step_lags_by_due: Vec<(i64, f64)>,
    pub due_by_alert: HashMap<String, i64>,
    pub first_due_ms: i64,
    pub last_recorded_ms: i64,
    /// Per alert (dashless id) of a delivered push: when its outbox row was written and when
    /// the delivery worker began the attempt that sent it (`sent_at`), to split the push lag.
    pub push_stages_by_alert: HashMap<String, (i64, i64)>,
}

/// An escalation step's outbox row: alert, due time, written at, attempt that sent it began at.
type MissedStepRow = (Option<String>, Option<i64>, i64, Option<i64>);

pub async fn lags(store: &Store) -> Result<Lags, String> {
    store
        .read(|conn| {
            let rows: Vec<MissedStepRow> = notifications::table
                .filter(notifications::step.like("missed:%"))
                .select((
                    notifications::alert_id,
                    notifications::due_at,
                    notifications::created_at,
                    notifications::sent_at,
                ))
                .load(conn)?;
            let mut by_alert: HashMap<String, (i64, i64)> = HashMap::new();
            let mut push_stages_by_alert = HashMap::new();
            for (alert, due, created, sent) in rows {
                if let (Some(alert), Some(due)) = (alert, due) {
                    let key = alert.replace('-', "");
                    if let Some(sent) = sent {
                        push_stages_by_alert.insert(key.clone(), (created, sent));
                    }
                    let entry = by_alert.entry(key).or_insert((due, created));
                    entry.1 = entry.1.min(created);
                }
            }
            Ok(Lags {
                step_lags_ms: by_alert
                    .values()
                    .map(|(due, created)| (created - due) as f64)
                    .collect(),
                step_lags_by_due: by_alert
                    .values()
                    .map(|(due, created)| (*due, (created - due) as f64))
                    .collect(),
                first_due_ms: by_alert.values().map(|v| v.0).min().unwrap_or(0),
                last_recorded_ms: by_alert.values().map(|v| v.1).max().unwrap_or(0),
                due_by_alert: by_alert.into_iter().map(|(k, v)| (k, v.0)).collect(),
                push_stages_by_alert,
            })
        })
        .await
        .map_err(|e| e.to_string())
}
