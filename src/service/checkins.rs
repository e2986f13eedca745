//! Live check-ins (`POST /outings/{id}/checkins`), written many to a transaction.
//!
//! On PostgreSQL, concurrent check-ins queue to a [`CheckinBatcher`], which writes whatever
//! has queued as one transaction ([`record_live_batch`]): the outings read and locked in one
//! statement, the check-ins inserted in one, the outings updated in one, the idempotency
//! records read and written in one each. A check-in that does more than move its outing's
//! clock (raises or resolves an alert, leaves the area, a low battery, an unknown outing, a
//! second check-in of the same outing in the batch...) is written after those, one by one in
//! the same transaction, exactly as it would be alone ([`record_live`]). Nothing waits for a
//! batch to fill: an idle batcher writes the first check-in at once, and a batch grows only
//! while earlier ones are being written. Every caller hears back only after the commit.
//!
//! On SQLite each check-in goes to the writer thread on its own ([`record_live`]): its group
//! commit already shares one transaction among everything queued, and a statement costs no
//! round trip in-process.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use diesel::Connection;

use crate::domain::caller::Caller;
use crate::domain::checkin::PinCheck;
use crate::domain::escalation::OutingStatus;
use crate::domain::ids::OutingId;
use crate::error::AppError;
use crate::service::outings::{self as service, NewCheckin, OutingRules, Submission};
use crate::service::Changes;
use crate::store::outings::{CheckinRow, NewStoredResponse, OutingRow, StoredResponse};
use crate::store::{self, DbConn, Store};
use crate::wire::{CheckinAnswerView, CheckinResponse, CheckinView};

/// A validated live check-in, as the handler hands it over.
#[derive(Debug, Clone)]
pub struct LiveCheckin {
    pub caller: Caller,
    pub outing_id: OutingId,
    pub item: NewCheckin,
    /// The PIN typed with it, already checked against the account.
    pub pin: PinCheck,
    /// The `Idempotency-Key` header, and the hash of the request it came with.
    pub key: Option<String>,
    pub request_hash: String,
    pub now_ms: i64,
}

/// The response to a live check-in, and what the background loops must look at once it is
/// committed.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub changes: Changes,
}

fn replay(stored: &StoredResponse, request_hash: &str) -> Result<Answer, AppError> {
    if stored.request_hash != request_hash {
        return Err(AppError::field(
            "Idempotency-Key",
            "was already used for a different request",
        ));
    }
    Ok(Answer {
        status: stored.status,
        body: stored.body.clone(),
        changes: Changes::default(),
    })
}

/// The 201 body: the stored check-in with the cautions whose circle holds it, and the outing
/// as its canvasser now sees it; and whether it queued a push (a check-in inside a
/// `do_not_knock` caution tells the canvasser, once per outing and caution).
fn response_body(
    conn: &mut DbConn,
    caller: &Caller,
    outing: &OutingRow,
    checkin: &CheckinRow,
) -> Result<(String, bool), AppError> {
    let outing_view = service::view_with(conn, caller, outing, std::slice::from_ref(checkin))?
        .map(|(view, _)| view)
        .ok_or(AppError::NotFound("outing"))?;
    let cautions = match (checkin.lat, checkin.lon) {
        (Some(lat), Some(lon)) => crate::service::cautions::covering(
            conn,
            &outing.org_id.to_string(),
            lat,
            lon,
            checkin.received_at,
        )?,
        _ => Vec::new(),
    };
    let mut pushed = false;
    for caution in &cautions {
        if caution.level == crate::domain::caution::Level::DoNotKnock {
            crate::service::notify::caution_reached(conn, outing, caution, checkin.received_at)?;
            pushed = true;
        }
    }
    let body = serde_json::to_string(&CheckinResponse {
        checkin: CheckinAnswerView {
            checkin: CheckinView::from(checkin),
            cautions: crate::service::cautions::views(conn, &cautions)?,
        },
        outing: outing_view,
    })
    .map_err(|e| AppError::internal(format!("serialising response: {e}")))?;
    Ok((body, pushed))
}

/// One live check-in, on its own (inside the caller's transaction).
pub fn record_live(
    conn: &mut DbConn,
    live: &LiveCheckin,
    rules: &OutingRules,
) -> Result<Answer, AppError> {
    let caller = &live.caller;
    if let Some(key) = &live.key {
        // Lock the outing first so a concurrent retry waits for this one to commit (SQLite's
        // one writer already makes them take turns).
        if let DbConn::Pg(_) = conn {
            store::outings::find_for_update(conn, live.outing_id)?;
        }
        if let Some(stored) = store::outings::idempotent_response(conn, caller.id, key)? {
            return replay(&stored, &live.request_hash);
        }
    }
    let recorded = service::record_checkins(
        conn,
        caller,
        live.outing_id,
        Submission {
            items: vec![live.item.clone()],
            pin: live.pin,
            source: "live",
        },
        rules,
        live.now_ms,
    )?;
    let checkin = recorded
        .stored
        .first()
        .ok_or_else(|| AppError::internal("check-in not stored"))?;
    let (body, pushed) = response_body(conn, caller, &recorded.outing, checkin)?;
    let mut changes = recorded.changes;
    changes.outbox |= pushed;
    if let Some(key) = &live.key {
        store::outings::store_idempotent_response(
            conn,
            caller.id,
            key,
            &live.request_hash,
            201,
            &body,
            live.now_ms,
        )?;
    }
    Ok(Answer {
        status: 201,
        body,
        changes,
    })
}

/// The outing row a plain check-in leaves behind, or `None` when this check-in needs the full
/// path ([`record_live`]): the outing is unknown, not the caller's, ended or has an alert open,
/// or the check-in would do more than move the outing's clock.
fn plain_checkin(
    loaded: Option<&(OutingRow, Option<String>)>,
    live: &LiveCheckin,
    rules: &OutingRules,
) -> Option<(CheckinRow, OutingRow)> {
    let (outing, custom_policy) = loaded?;
    if outing.canvasser_id != live.caller.id
        || outing.status == OutingStatus::Ended
        || outing.open_alert_id.is_some()
        || live.item.client_id.is_some()
        || live.pin == PinCheck::Wrong
    {
        return None;
    }
    let policy = store::orgs::parse_policy(&outing.org_id.to_string(), custom_policy.as_deref())
        .ok()?
        .unwrap_or(rules.default_policy);
    let mut plan = service::plan_checkins(
        outing.clone(),
        None,
        vec![live.item.clone()],
        live.pin,
        live.caller.id,
        "live",
        live.now_ms,
    )
    .ok()?;
    if !plan.is_plain() {
        return None;
    }
    crate::service::facts::reschedule(&mut plan.outing, &policy).ok()?;
    // The batch writes only the columns a check-in moves; anything else changing means the
    // full path.
    if !store::outings::only_checkin_columns_differ(outing, &plan.outing) {
        return None;
    }
    let checkin = plan.stored.pop()?;
    Some((checkin, plan.outing))
}

/// Records a batch of live check-ins in the caller's transaction; one answer per check-in, in
/// order. An `Err` means the shared statements failed: nothing of the batch stands (the
/// transaction rolls back), and each check-in can be written again on its own.
pub fn record_live_batch(
    conn: &mut DbConn,
    batch: &[LiveCheckin],
    rules: &OutingRules,
) -> Result<Vec<Result<Answer, AppError>>, AppError> {
    let mut ids: Vec<String> = batch.iter().map(|l| l.outing_id.to_string()).collect();
    ids.sort_unstable();
    ids.dedup();
    let loaded: HashMap<String, (OutingRow, Option<String>)> =
        store::outings::find_many_for_update_with_policy(conn, &ids)?
            .into_iter()
            .map(|(outing, policy)| (outing.id.to_string(), (outing, policy)))
            .collect();
    let keyed: Vec<(String, String)> = batch
        .iter()
        .filter_map(|l| Some((l.caller.id.to_string(), l.key.clone()?)))
        .collect();
    let stored_responses = if keyed.is_empty() {
        HashMap::new()
    } else {
        store::outings::idempotent_responses(conn, &keyed)?
    };

    let mut answers: Vec<Option<Result<Answer, AppError>>> = batch.iter().map(|_| None).collect();
    let mut full_path = Vec::new();
    let mut seen_outings = HashSet::new();
    let mut seen_keys = HashSet::new();
    // Plain check-ins: their index in the batch, the rows to insert, the outings after them.
    let mut plain: Vec<usize> = Vec::new();
    let mut checkins: Vec<CheckinRow> = Vec::new();
    let mut outings: Vec<OutingRow> = Vec::new();
    for (i, live) in batch.iter().enumerate() {
        let outing_id = live.outing_id.to_string();
        let key = live
            .key
            .as_ref()
            .map(|k| (live.caller.id.to_string(), k.clone()));
        // A second check-in of an outing (or a second use of a key) in this batch must see
        // the first one's writes: it takes the full path, after them.
        let repeated = !seen_outings.insert(outing_id.clone())
            || key.as_ref().is_some_and(|k| !seen_keys.insert(k.clone()));
        if repeated {
            full_path.push(i);
            continue;
        }
        if let Some(stored) = key.as_ref().and_then(|k| stored_responses.get(k)) {
            answers[i] = Some(replay(stored, &live.request_hash));
            continue;
        }
        match plain_checkin(loaded.get(&outing_id), live, rules) {
            Some((checkin, outing)) => {
                plain.push(i);
                checkins.push(checkin);
                outings.push(outing);
            }
            None => full_path.push(i),
        }
    }

    if !plain.is_empty() {
        store::outings::insert_checkins(conn, &checkins)?;
        store::outings::update_after_checkins(conn, &outings)?;
        let mut bodies = Vec::with_capacity(plain.len());
        let mut pushes = Vec::with_capacity(plain.len());
        for ((i, checkin), outing) in plain.iter().zip(&checkins).zip(&outings) {
            let (body, pushed) = response_body(conn, &batch[*i].caller, outing, checkin)?;
            bodies.push(body);
            pushes.push(pushed);
        }
        let responses: Vec<NewStoredResponse<'_>> = plain
            .iter()
            .zip(&bodies)
            .filter_map(|(i, body)| {
                let live = &batch[*i];
                Some(NewStoredResponse {
                    user: live.caller.id.to_string(),
                    key: live.key.as_deref()?,
                    request_hash: &live.request_hash,
                    status: 201,
                    body,
                })
            })
            .collect();
        let now_ms = batch.iter().map(|l| l.now_ms).max().unwrap_or_default();
        store::outings::store_idempotent_responses(conn, &responses, now_ms)?;
        for (((i, outing), body), pushed) in plain.iter().zip(&outings).zip(bodies).zip(pushes) {
            answers[*i] = Some(Ok(Answer {
                status: 201,
                body,
                changes: Changes {
                    next_action_at: outing.next_action_at,
                    outbox: pushed,
                    ..Changes::default()
                },
            }));
        }
    }

    for i in full_path {
        // Its own savepoint: a check-in refused (or failing) rolls back alone.
        answers[i] = Some(conn.transaction(|conn| record_live(conn, &batch[i], rules)));
    }
    Ok(answers
        .into_iter()
        .map(|a| a.unwrap_or_else(|| Err(AppError::internal("check-in not answered"))))
        .collect())
}

/// Most check-ins one transaction takes: enough to amortise it, few enough that one batch
/// holds its outings' locks for milliseconds.
const BATCH_MAX: usize = 128;

struct Queued {
    live: LiveCheckin,
    reply: tokio::sync::oneshot::Sender<Result<Answer, AppError>>,
}

/// The queue live check-ins wait in while earlier batches are written.
pub struct CheckinBatcher {
    store: Store,
    rules: OutingRules,
    queue: tokio::sync::mpsc::UnboundedSender<Queued>,
    /// Taken when the loop starts (see [`CheckinBatcher::start`]).
    idle: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<Queued>>>,
}

impl CheckinBatcher {
    pub fn new(store: Store, rules: OutingRules) -> CheckinBatcher {
        let (queue, jobs) = tokio::sync::mpsc::unbounded_channel();
        CheckinBatcher {
            store,
            rules,
            queue,
            idle: std::sync::Mutex::new(Some(jobs)),
        }
    }

    /// Starts the batching loop on the current runtime (once; later calls do nothing). The
    /// server calls it from the runtime that outlives its workers, so check-ins still queued
    /// while it shuts down are written; a check-in arriving first starts it otherwise.
    pub fn start(&self) {
        let idle = match self.idle.lock() {
            Ok(mut idle) => idle.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(jobs) = idle {
            tokio::spawn(run(jobs, self.store.clone(), self.rules));
        }
    }

    /// Writes `live` (with whatever else is queued) and answers once it is committed.
    pub async fn record(&self, live: LiveCheckin) -> Result<Answer, AppError> {
        if self.store.backend() == store::Backend::Sqlite {
            // SQLite's writer already commits whatever has queued as one transaction, and
            // one-row statements cost no round trips there: each check-in goes straight to it
            // (measured: a batcher in front cost 25% of the throughput).
            let rules = self.rules;
            return self
                .store
                .write(move |conn| record_live(conn, &live, &rules))
                .await;
        }
        self.start();
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.queue
            .send(Queued { live, reply })
            .map_err(|_| AppError::internal("the check-in writer has stopped"))?;
        answer
            .await
            .map_err(|_| AppError::internal("the check-in was abandoned"))?
    }
}

/// Batches written at the same time (PostgreSQL): several overlap, so the database's cores
/// work while one batch waits for its commit to reach the disk.
const IN_FLIGHT: usize = 4;

async fn run(
    mut jobs: tokio::sync::mpsc::UnboundedReceiver<Queued>,
    store: Store,
    rules: OutingRules,
) {
    let permits = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    loop {
        // Waiting for a permit first lets check-ins gather while the batches in flight commit.
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = jobs.recv().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < BATCH_MAX {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        metrics::histogram!("doorstep_checkin_batch_size").record(batch.len() as f64);
        let store = store.clone();
        tokio::spawn(async move {
            write_batch(&store, rules, batch).await;
            drop(permit);
        });
    }
}

async fn write_batch(store: &Store, rules: OutingRules, batch: Vec<Queued>) {
    let (lives, replies): (Vec<LiveCheckin>, Vec<_>) =
        batch.into_iter().map(|q| (q.live, q.reply)).unzip();
    let lives = Arc::new(lives);
    let shared = lives.clone();
    match store
        .write(move |conn| record_live_batch(conn, &shared, &rules))
        .await
    {
        Ok(answers) => {
            for (reply, answer) in replies.into_iter().zip(answers) {
                // The caller may have gone (client hung up); the check-in stands regardless.
                let _ = reply.send(answer);
            }
        }
        Err(e) => {
            // Nothing of the batch was committed: write each on its own, so one bad row (or a
            // deadlock) costs the others nothing but time.
            tracing::warn!(error = %e, checkins = lives.len(), "a batch of check-ins failed; writing them one at a time");
            metrics::counter!("doorstep_checkin_batch_failures_total").increment(1);
            let mut alone = tokio::task::JoinSet::new();
            for (live, reply) in lives.iter().cloned().zip(replies) {
                let store = store.clone();
                alone.spawn(async move {
                    let answer = store
                        .write(move |conn| record_live(conn, &live, &rules))
                        .await;
                    let _ = reply.send(answer);
                });
            }
            while alone.join_next().await.is_some() {}
        }
    }
}
