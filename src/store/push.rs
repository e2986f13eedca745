//! Push subscriptions, and the delivery worker's claims on the outbox.

use crate::domain::escalation::AlertStatus;
use diesel::prelude::*;

use crate::domain::delivery::{Channel, DeliveryStatus, MessageType};
use diesel::sql_types::{BigInt, Integer, Nullable, Text};

use super::native::{on_backend, UpdateRow};
use super::notifications::NotificationRow;
use super::schema::{notifications, push_deliveries, push_subscriptions};
use super::DbError;
use super::{new_id, DbConn};
use crate::domain::ids::UserId;

pub const MAX_SUBSCRIPTIONS_PER_USER: i64 = 10;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = push_subscriptions, treat_none_as_default_value = false)]
pub struct SubscriptionRow {
    pub id: String,
    pub user_id: String,
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
    pub expiration_time: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

pub enum Saved {
    Created(String),
    Updated(String),
}

/// Registers a subscription. The same endpoint again updates it (a browser re-subscribing, or
/// the device now used by someone else); at most `MAX_SUBSCRIPTIONS_PER_USER` per user.
pub fn save_subscription(
    conn: &mut DbConn,
    user: UserId,
    endpoint: &str,
    p256dh: &str,
    auth: &str,
    expiration_time: Option<i64>,
    now_ms: i64,
) -> Result<Saved, DbError> {
    let existing: Option<(String, String)> = push_subscriptions::table
        .filter(push_subscriptions::endpoint.eq(endpoint))
        .select((push_subscriptions::id, push_subscriptions::user_id))
        .get_result(conn)
        .optional()?;
    if let Some((_, owner)) = &existing {
        // An endpoint is one browser's: moving it to another account would silently stop the
        // first account's alerts on that device. On a shared device the browser must drop its
        // subscription (sign-out does) and make a new one.
        if *owner != user.to_string() {
            return Err(DbError::Conflict(
                "this browser's push subscription belongs to another account: sign that account out on this device, or subscribe afresh".into(),
            ));
        }
    }
    if let Some((id, _)) = existing {
        diesel::update(push_subscriptions::table.find(&id))
            .set((
                push_subscriptions::user_id.eq(user.to_string()),
                push_subscriptions::p256dh.eq(p256dh),
                push_subscriptions::auth.eq(auth),
                push_subscriptions::expiration_time.eq(expiration_time),
                push_subscriptions::updated_at.eq(now_ms),
            ))
            .execute(conn)?;
        return Ok(Saved::Updated(id));
    }
    let count: i64 = push_subscriptions::table
        .filter(push_subscriptions::user_id.eq(user.to_string()))
        .count()
        .get_result(conn)?;
    if count >= MAX_SUBSCRIPTIONS_PER_USER {
        return Err(DbError::Conflict(format!(
            "at most {MAX_SUBSCRIPTIONS_PER_USER} push subscriptions per user: delete one first"
        )));
    }
    let row = SubscriptionRow {
        id: new_id(),
        user_id: user.to_string(),
        endpoint: endpoint.to_owned(),
        p256dh: p256dh.to_owned(),
        auth: auth.to_owned(),
        expiration_time,
        created_at: now_ms,
        updated_at: now_ms,
    };
    diesel::insert_into(push_subscriptions::table)
        .values(&row)
        .execute(conn)?;
    Ok(Saved::Created(row.id))
}

pub fn subscriptions_of(conn: &mut DbConn, user: &str) -> Result<Vec<SubscriptionRow>, DbError> {
    // Served by push_subscriptions_user.
    Ok(on_backend!(conn, c => push_subscriptions::table
        .filter(push_subscriptions::user_id.eq(user))
        .order(push_subscriptions::created_at)
        .select(SubscriptionRow::as_select())
        .load(c))?)
}

/// Which of `users` have at least one push subscription, in one statement (served by
/// push_subscriptions_user). The scheduler asks before it records a push step: a message
/// for someone with no subscription is recorded as `no_subscription` at once instead of
/// taking a claim, a lease and a result write from the delivery worker.
pub fn subscribed_among(
    conn: &mut DbConn,
    users: &[String],
) -> Result<std::collections::HashSet<String>, DbError> {
    let mut found = std::collections::HashSet::new();
    // Bounded lists: SQLite allows 32,766 bound values a statement, PostgreSQL 65,535.
    for chunk in users.chunks(1000) {
        let ids: Vec<String> = push_subscriptions::table
            .filter(push_subscriptions::user_id.eq_any(chunk))
            .select(push_subscriptions::user_id)
            .distinct()
            .load(conn)?;
        found.extend(ids);
    }
    Ok(found)
}

/// Deletes a subscription of `user`; false when there is no such subscription of theirs.
pub fn delete_subscription(conn: &mut DbConn, user: UserId, id: &str) -> Result<bool, DbError> {
    Ok(diesel::delete(
        push_subscriptions::table
            .filter(push_subscriptions::id.eq(id))
            .filter(push_subscriptions::user_id.eq(user.to_string())),
    )
    .execute(conn)?
        > 0)
}

/// A push service said the subscription is gone (404/410).
pub fn remove_subscription(conn: &mut DbConn, id: &str) -> Result<(), DbError> {
    diesel::delete(push_subscriptions::table.find(id)).execute(conn)?;
    Ok(())
}

/// Claims up to `limit` pending notifications whose attempt is due, leasing them to `worker`
/// until `lease_until_ms`. A lease outlives a crash by at most its length: a replica that dies
/// mid-delivery leaves rows that another takes over when the lease runs out.
pub fn claim_pending(
    conn: &mut DbConn,
    worker: &str,
    now_ms: i64,
    lease_until_ms: i64,
    limit: i64,
) -> Result<Vec<NotificationRow>, DbError> {
    // Served by notifications_pending (partial index on next_attempt_at WHERE status = 'pending').
    match conn {
        DbConn::Pg(pg) => {
            // The outbox grows by thousands of rows in a burst (a storm of missed check-ins),
            // long before autovacuum analyses it: planning with the stale statistics chose a
            // bitmap scan of every pending row and a sort (11 ms per claim at 15,000 pending,
            // the worker's main cost). Walking the partial index in order and stopping at the
            // limit is right at every size, so the claim's transaction says so. The worker's
            // claims also commit without waiting for the WAL flush (see `relax_commit`): all
            // three settings go in one round trip.
            use diesel::connection::SimpleConnection;
            pg.batch_execute(
                "SET LOCAL enable_bitmapscan = off; SET LOCAL enable_seqscan = off; \
                 SET LOCAL synchronous_commit = off",
            )?;
            // Selected, locked and leased in one statement (one round trip, not two). The
            // status is a literal for the partial index (see `pending`). Unlike SQLite below,
            // the lease leaves the attempt time alone: the lease columns are in no index, so
            // PostgreSQL writes the leased row as a heap-only tuple on its own page (the
            // table's fillfactor leaves room) and adds no entry to any of its four indexes.
            // Moving the attempt time made every claim a full new row version in each index,
            // and left a dead entry at the head of `notifications_pending` for the next claims
            // to walk over. The price: a claim steps over the rows in flight (at most twice
            // `push.concurrency` a replica), and `earliest_pending` reads lease ends.
            let rows: Vec<NotificationRow> = diesel::sql_query(
                "UPDATE notifications SET claimed_by = $1, claimed_until = $2 \
                 WHERE id IN (SELECT id FROM notifications \
                   WHERE status = 'pending' AND next_attempt_at <= $3 \
                     AND (claimed_until IS NULL OR claimed_until <= $3) \
                   ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED) \
                 RETURNING *",
            )
            .bind::<Text, _>(worker)
            .bind::<BigInt, _>(lease_until_ms)
            .bind::<BigInt, _>(now_ms)
            .bind::<BigInt, _>(limit)
            .load(pg)?;
            // RETURNING has no order: oldest first.
            let mut rows = rows;
            rows.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
            Ok(rows)
        }
        DbConn::Sqlite(sqlite) => {
            // One writer: nothing to skip, and the claim and lease share its transaction.
            let mut rows: Vec<NotificationRow> = notifications::table
                .filter(pending())
                .filter(notifications::next_attempt_at.le(now_ms))
                .filter(
                    notifications::claimed_until
                        .is_null()
                        .or(notifications::claimed_until.le(now_ms)),
                )
                .order(notifications::next_attempt_at)
                .limit(limit)
                .select(NotificationRow::as_select())
                .load(sqlite)?;
            let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
            if !ids.is_empty() {
                diesel::update(notifications::table.filter(notifications::id.eq_any(&ids)))
                    .set((
                        notifications::claimed_by.eq(worker),
                        notifications::claimed_until.eq(lease_until_ms),
                        // A leased row is not due again before its lease ends: moving its
                        // attempt time there keeps it out of the way of the next claim (which
                        // would otherwise step over every delivery in flight) and of the
                        // worker's "what is due next". Finishing the attempt sets the real
                        // next time.
                        notifications::next_attempt_at.eq(lease_until_ms),
                    ))
                    .execute(sqlite)?;
            }
            for row in &mut rows {
                row.claimed_by = Some(worker.to_owned());
                row.claimed_until = Some(lease_until_ms);
                row.next_attempt_at = lease_until_ms;
            }
            Ok(rows)
        }
    }
}

/// `status = 'pending'` written as a literal, not a bound parameter: PostgreSQL can only use
/// the partial index `notifications_pending` (`WHERE status = 'pending'`) when it sees the
/// value while planning, and a prepared statement's generic plan does not. With a parameter,
/// every claim scanned the whole outbox.
fn pending() -> diesel::expression::SqlLiteral<diesel::sql_types::Bool> {
    diesel::dsl::sql::<diesel::sql_types::Bool>("notifications.status = 'pending'")
}

/// The earliest pending attempt (for the worker's sleep): a leased row's is its lease end.
pub fn earliest_pending(conn: &mut DbConn) -> Result<Option<i64>, DbError> {
    match conn {
        // A claim on PostgreSQL leaves the attempt time alone (see `claim_pending`). GREATEST
        // ignores a null lease. This reads every pending row, but the worker asks only when
        // its last claim found less than it could take: then the pending rows are those in
        // flight and those waiting for a retry.
        DbConn::Pg(pg) => Ok(notifications::table
            .filter(pending())
            .select(diesel::dsl::sql::<diesel::sql_types::Nullable<BigInt>>(
                "min(GREATEST(notifications.next_attempt_at, notifications.claimed_until))",
            ))
            .get_result(pg)?),
        DbConn::Sqlite(sqlite) => Ok(notifications::table
            .filter(pending())
            .select(diesel::dsl::min(notifications::next_attempt_at))
            .get_result(sqlite)?),
    }
}

/// Records the outcome of one attempt to one subscription: one statement, prepared once (an
/// upsert on the notification and subscription, counting attempts).
pub fn record_delivery(
    conn: &mut DbConn,
    notification: &str,
    subscription: &str,
    status: &str,
    status_code: Option<u16>,
    error: Option<&str>,
    sent_at: Option<i64>,
) -> Result<(), DbError> {
    let id = new_id();
    let upsert = DeliveryUpsert {
        id: &id,
        notification,
        subscription,
        status,
        code: status_code.map(i32::from),
        error,
        sent_at,
    };
    on_backend!(conn, c => upsert.execute(c))?;
    Ok(())
}

/// `INSERT ... ON CONFLICT (notification_id, subscription_id) DO UPDATE`, written out because
/// diesel never caches an upsert (it assumes the `SET` list may vary); this one never does.
struct DeliveryUpsert<'a> {
    id: &'a str,
    notification: &'a str,
    subscription: &'a str,
    status: &'a str,
    code: Option<i32>,
    error: Option<&'a str>,
    sent_at: Option<i64>,
}

impl diesel::query_builder::QueryId for DeliveryUpsert<'_> {
    type QueryId = DeliveryUpsert<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<DB> diesel::query_builder::QueryFragment<DB> for DeliveryUpsert<'_>
where
    DB: diesel::backend::Backend
        + diesel::sql_types::HasSqlType<Text>
        + diesel::sql_types::HasSqlType<Integer>
        + diesel::sql_types::HasSqlType<BigInt>,
    str: diesel::serialize::ToSql<Text, DB>,
    Option<i32>: diesel::serialize::ToSql<Nullable<Integer>, DB>,
    Option<i64>: diesel::serialize::ToSql<Nullable<BigInt>, DB>,
    for<'x> Option<&'x str>: diesel::serialize::ToSql<Nullable<Text>, DB>,
{
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, DB>,
    ) -> QueryResult<()> {
        out.push_sql(
            "INSERT INTO push_deliveries (id, notification_id, subscription_id, status, \
             attempts, last_status_code, last_error, sent_at) VALUES (",
        );
        out.push_bind_param::<Text, str>(self.id)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, str>(self.notification)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, str>(self.subscription)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, str>(self.status)?;
        out.push_sql(", 1, ");
        out.push_bind_param::<Nullable<Integer>, Option<i32>>(&self.code)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, Option<&'b str>>(&self.error)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<BigInt>, Option<i64>>(&self.sent_at)?;
        out.push_sql(
            ") ON CONFLICT (notification_id, subscription_id) DO UPDATE SET \
             status = excluded.status, attempts = push_deliveries.attempts + 1, \
             last_status_code = excluded.last_status_code, last_error = excluded.last_error, \
             sent_at = excluded.sent_at",
        );
        Ok(())
    }
}

impl<Conn> RunQueryDsl<Conn> for DeliveryUpsert<'_> {}

/// The notification's new state after an attempt; only the lease holder may write it.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: DeliveryStatus,
    pub next_attempt_at: i64,
    pub sent_at: Option<i64>,
    pub last_error: Option<String>,
}

/// Writes an attempt's outcome and releases the lease, if `worker` still holds it (one
/// statement). False when the lease ran out and another worker took the row over: its result
/// wins.
pub fn finish_attempt(
    conn: &mut DbConn,
    id: &str,
    worker: &str,
    outcome: &Outcome,
) -> Result<bool, DbError> {
    /// The query id of this update (one fixed SQL text).
    struct AttemptFinished;
    let update = UpdateRow::<AttemptFinished, _>::new(
        "notifications",
        (
            notifications::status.eq(outcome.status),
            notifications::attempts.eq(notifications::attempts + 1),
            notifications::next_attempt_at.eq(outcome.next_attempt_at),
            notifications::sent_at.eq(outcome.sent_at),
            notifications::last_error.eq(outcome.last_error.as_deref()),
            notifications::claimed_by.eq(None::<String>),
            notifications::claimed_until.eq(None::<i64>),
        )
            .as_changeset(),
        id,
    )
    .only_if("claimed_by", worker);
    Ok(on_backend!(conn, c => update.execute(c))? > 0)
}

/// One subscription's result of one attempt, for [`record_deliveries`].
#[derive(Debug, Clone)]
pub struct DeliveryResult<'a> {
    pub notification: &'a str,
    pub subscription: &'a str,
    pub status: &'a str,
    pub code: Option<u16>,
    pub error: Option<&'a str>,
    pub sent_at: Option<i64>,
}

/// [`record_delivery`] for many results at once. On PostgreSQL one statement for all of them
/// (each statement is a round trip there); on SQLite, in-process, one cached statement each.
/// A batch holds one attempt per notification, so no row is upserted twice.
pub fn record_deliveries(conn: &mut DbConn, results: &[DeliveryResult<'_>]) -> Result<(), DbError> {
    match conn {
        DbConn::Pg(pg) if results.len() > 1 => {
            let ids: Vec<String> = results.iter().map(|_| new_id()).collect();
            PgDeliveries {
                ids: ids.iter().map(String::as_str).collect(),
                notifications: results.iter().map(|r| r.notification).collect(),
                subscriptions: results.iter().map(|r| r.subscription).collect(),
                statuses: results.iter().map(|r| r.status).collect(),
                codes: results.iter().map(|r| r.code.map(i32::from)).collect(),
                errors: results.iter().map(|r| r.error).collect(),
                sent_at: results.iter().map(|r| r.sent_at).collect(),
            }
            .execute(pg)?;
        }
        _ => {
            for r in results {
                record_delivery(
                    conn,
                    r.notification,
                    r.subscription,
                    r.status,
                    r.code,
                    r.error,
                    r.sent_at,
                )?;
            }
        }
    }
    Ok(())
}

/// [`finish_attempt`] for many notifications at once (one statement on PostgreSQL). Returns
/// how many were still leased to `worker` (and so written).
pub fn finish_attempts(
    conn: &mut DbConn,
    worker: &str,
    ends: &[(&str, &Outcome)],
) -> Result<usize, DbError> {
    match conn {
        DbConn::Pg(pg) if ends.len() > 1 => Ok(PgAttemptsFinished {
            worker,
            ids: ends.iter().map(|(id, _)| *id).collect(),
            statuses: ends.iter().map(|(_, o)| o.status.as_str()).collect(),
            next_attempt_at: ends.iter().map(|(_, o)| o.next_attempt_at).collect(),
            sent_at: ends.iter().map(|(_, o)| o.sent_at).collect(),
            errors: ends.iter().map(|(_, o)| o.last_error.as_deref()).collect(),
        }
        .execute(pg)?),
        _ => {
            let mut written = 0;
            for (id, outcome) in ends {
                written += usize::from(finish_attempt(conn, id, worker, outcome)?);
            }
            Ok(written)
        }
    }
}

/// PostgreSQL: the upsert of [`DeliveryUpsert`] for a whole batch, its values as arrays
/// (`unnest`), so one prepared statement serves every batch size.
struct PgDeliveries<'a> {
    ids: Vec<&'a str>,
    notifications: Vec<&'a str>,
    subscriptions: Vec<&'a str>,
    statuses: Vec<&'a str>,
    codes: Vec<Option<i32>>,
    errors: Vec<Option<&'a str>>,
    sent_at: Vec<Option<i64>>,
}

impl diesel::query_builder::QueryId for PgDeliveries<'_> {
    type QueryId = PgDeliveries<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for PgDeliveries<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> QueryResult<()> {
        use diesel::sql_types::Array;
        out.push_sql(
            "INSERT INTO push_deliveries (id, notification_id, subscription_id, status, \
             attempts, last_status_code, last_error, sent_at) \
             SELECT v.id, v.notification_id, v.subscription_id, v.status, 1, v.code, v.error, \
             v.sent_at FROM unnest(",
        );
        out.push_bind_param::<Array<Text>, _>(&self.ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.notifications)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.subscriptions)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.statuses)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Integer>>, _>(&self.codes)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.errors)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<BigInt>>, _>(&self.sent_at)?;
        out.push_sql(
            ") AS v(id, notification_id, subscription_id, status, code, error, sent_at) \
             ON CONFLICT (notification_id, subscription_id) DO UPDATE SET \
             status = excluded.status, attempts = push_deliveries.attempts + 1, \
             last_status_code = excluded.last_status_code, last_error = excluded.last_error, \
             sent_at = excluded.sent_at",
        );
        Ok(())
    }
}

impl<Conn> RunQueryDsl<Conn> for PgDeliveries<'_> {}

/// PostgreSQL: [`finish_attempt`] for a whole batch in one prepared statement.
struct PgAttemptsFinished<'a> {
    worker: &'a str,
    ids: Vec<&'a str>,
    statuses: Vec<&'a str>,
    next_attempt_at: Vec<i64>,
    sent_at: Vec<Option<i64>>,
    errors: Vec<Option<&'a str>>,
}

impl diesel::query_builder::QueryId for PgAttemptsFinished<'_> {
    type QueryId = PgAttemptsFinished<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for PgAttemptsFinished<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> QueryResult<()> {
        use diesel::sql_types::Array;
        out.push_sql(
            "UPDATE notifications AS n SET status = v.status, attempts = n.attempts + 1, \
             next_attempt_at = v.next_attempt_at, sent_at = v.sent_at, \
             last_error = v.last_error, claimed_by = NULL, claimed_until = NULL \
             FROM unnest(",
        );
        out.push_bind_param::<Array<Text>, _>(&self.ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.statuses)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<BigInt>, _>(&self.next_attempt_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<BigInt>>, _>(&self.sent_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.errors)?;
        out.push_sql(
            ") AS v(id, status, next_attempt_at, sent_at, last_error) \
             WHERE n.id = v.id AND n.claimed_by = ",
        );
        out.push_bind_param::<Text, str>(self.worker)?;
        Ok(())
    }
}

impl<Conn> RunQueryDsl<Conn> for PgAttemptsFinished<'_> {}

/// What delivering a claimed notification needs to know, read for a whole claim at once.
#[derive(Debug, Clone, Default)]
pub struct DeliveryContext {
    /// Its alert has been resolved (anything but the all-clear is then pointless).
    pub alert_resolved: bool,
    /// A push's recipient's subscriptions (empty for other channels).
    pub subscriptions: Vec<SubscriptionRow>,
    /// Subscriptions an earlier attempt of this push already finished with.
    pub done: Vec<String>,
}

/// The [`DeliveryContext`] of each of `rows`, in order: three statements for the whole claim
/// instead of three per message.
pub fn delivery_contexts(
    conn: &mut DbConn,
    rows: &[NotificationRow],
) -> Result<Vec<DeliveryContext>, DbError> {
    use super::schema::alerts;
    use std::collections::{HashMap, HashSet};
    let alert_ids: Vec<String> = rows
        .iter()
        .filter(|r| r.message_type != MessageType::AllClear)
        .filter_map(|r| r.alert_id.map(|a| a.to_string()))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let resolved: HashSet<String> = if alert_ids.is_empty() {
        HashSet::new()
    } else {
        alerts::table
            .filter(alerts::id.eq_any(&alert_ids))
            .filter(alerts::status.eq(AlertStatus::Resolved))
            .select(alerts::id)
            .load::<String>(conn)?
            .into_iter()
            .collect()
    };
    let is_push = |r: &&NotificationRow| r.channel == Channel::Webpush && r.recipient_id.is_some();
    let recipients: Vec<String> = rows
        .iter()
        .filter(is_push)
        .filter_map(|r| r.recipient_id.map(|u| u.to_string()))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut subscriptions: HashMap<String, Vec<SubscriptionRow>> = HashMap::new();
    if !recipients.is_empty() {
        let found: Vec<SubscriptionRow> = push_subscriptions::table
            .filter(push_subscriptions::user_id.eq_any(&recipients))
            .order((push_subscriptions::user_id, push_subscriptions::created_at))
            .select(SubscriptionRow::as_select())
            .load(conn)?;
        for s in found {
            subscriptions.entry(s.user_id.clone()).or_default().push(s);
        }
    }
    // Only a push tried before can have delivery rows.
    let retried: Vec<&str> = rows
        .iter()
        .filter(is_push)
        .filter(|r| r.attempts > 0)
        .map(|r| r.id.as_str())
        .collect();
    let mut done: HashMap<String, Vec<String>> = HashMap::new();
    if !retried.is_empty() {
        let found: Vec<(String, String)> = push_deliveries::table
            .filter(push_deliveries::notification_id.eq_any(&retried))
            .filter(push_deliveries::status.ne("retry"))
            .select((
                push_deliveries::notification_id,
                push_deliveries::subscription_id,
            ))
            .load(conn)?;
        for (notification, subscription) in found {
            done.entry(notification).or_default().push(subscription);
        }
    }
    Ok(rows
        .iter()
        .map(|r| {
            let alert_resolved = r.message_type != MessageType::AllClear
                && r.alert_id
                    .is_some_and(|a| resolved.contains(&a.to_string()));
            let push = is_push(&r) && !alert_resolved;
            DeliveryContext {
                alert_resolved,
                subscriptions: match (&r.recipient_id, push) {
                    (Some(user), true) => subscriptions
                        .get(&user.to_string())
                        .cloned()
                        .unwrap_or_default(),
                    _ => Vec::new(),
                },
                done: if push {
                    done.remove(&r.id).unwrap_or_default()
                } else {
                    Vec::new()
                },
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::notifications::{insert_if_new, NotificationRow};
    use crate::store::Store;

    fn message(id: &str, due_ms: i64) -> NotificationRow {
        NotificationRow {
            id: id.into(),
            dedupe_key: format!("test:{id}"),
            alert_id: None,
            outing_id: None,
            recipient_id: None,
            channel: Channel::Webhook,
            step: "test".into(),
            message_type: MessageType::Test,
            level: 0,
            payload: "{}".into(),
            status: DeliveryStatus::Pending,
            attempts: 0,
            due_at: None,
            created_at: due_ms,
            next_attempt_at: due_ms,
            expires_at: due_ms + 3_600_000,
            sent_at: None,
            last_error: None,
            claimed_by: None,
            claimed_until: None,
            provider_sid: None,
        }
    }

    /// A leased message is neither claimed again nor reported as due until its lease ends, and
    /// is taken over by another worker after that (a worker that died mid-delivery).
    #[tokio::test]
    async fn a_lease_hides_a_message_until_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&crate::config::DatabaseSettings {
            url: format!("sqlite://{}", dir.path().join("l.db").display()),
            pool_size: 2,
            ..Default::default()
        })
        .unwrap();
        store.migrate().unwrap();
        store
            .write(|conn| {
                insert_if_new(conn, &message("a", 1_000))?;
                insert_if_new(conn, &message("b", 2_000))?;
                Ok(())
            })
            .await
            .unwrap();
        let claim = |worker: &'static str, now: i64| {
            let store = store.clone();
            async move {
                store
                    .write(move |conn| Ok(claim_pending(conn, worker, now, now + 10_000, 10)?))
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|r| r.id)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(claim("w1", 1_500).await, vec!["a"], "only what is due");
        assert_eq!(claim("w2", 2_500).await, vec!["b"], "a is leased to w1");
        let earliest = store
            .read(|conn| Ok(earliest_pending(conn)?))
            .await
            .unwrap();
        assert_eq!(
            earliest,
            Some(11_500),
            "the next due time is w1's lease end, not a's"
        );
        assert!(claim("w2", 11_499).await.is_empty());
        assert_eq!(claim("w2", 11_500).await, vec!["a"], "w1's lease ran out");
    }

    /// The delivery bookkeeping: one prepared statement each for a delivery and an attempt's
    /// end, attempts counted by the database, the lease respected, and the context read for
    /// a claim (what an earlier attempt finished with is not sent again).
    #[test]
    fn delivery_bookkeeping_is_one_prepared_statement_each_and_respects_the_lease() {
        let (mut conn, cached) = crate::store::sqlite_recording_prepared();
        let conn = &mut conn;
        // The bookkeeping alone: no user or account rows behind the recipient.
        diesel::connection::SimpleConnection::batch_execute(conn, "PRAGMA foreign_keys = OFF")
            .unwrap();
        let mut row = message("n1", 1_000);
        row.channel = Channel::Webpush;
        let user = crate::domain::ids::UserId::new();
        row.recipient_id = Some(user);
        insert_if_new(conn, &row).unwrap();
        for (id, created) in [("s1", 1), ("s2", 2)] {
            diesel::insert_into(push_subscriptions::table)
                .values(&SubscriptionRow {
                    id: id.into(),
                    user_id: user.to_string(),
                    endpoint: format!("https://push.example/{id}"),
                    p256dh: "k".into(),
                    auth: "a".into(),
                    expiration_time: None,
                    created_at: created,
                    updated_at: created,
                })
                .execute(conn)
                .unwrap();
        }
        let claimed = claim_pending(conn, "w1", 1_000, 61_000, 10).unwrap();
        let first = delivery_contexts(conn, &claimed).unwrap();
        assert_eq!(first.len(), 1);
        let ids = |subs: &[SubscriptionRow]| subs.iter().map(|s| s.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&first[0].subscriptions), ["s1", "s2"]);
        assert!(first[0].done.is_empty() && !first[0].alert_resolved);

        record_delivery(conn, "n1", "s1", "failed", Some(400), Some("bad"), None).unwrap();
        record_delivery(conn, "n1", "s2", "retry", Some(503), Some("busy"), None).unwrap();
        record_delivery(
            conn,
            "n1",
            "s2",
            "retry",
            Some(503),
            Some("still busy"),
            None,
        )
        .unwrap();
        let retry = Outcome {
            status: DeliveryStatus::Pending,
            next_attempt_at: 2_000,
            sent_at: None,
            last_error: Some("busy".into()),
        };
        assert!(
            !finish_attempt(conn, "n1", "w2", &retry).unwrap(),
            "w2 holds no lease"
        );
        let state = |conn: &mut DbConn| {
            notifications::table
                .find("n1")
                .select((
                    notifications::status,
                    notifications::attempts,
                    notifications::claimed_by,
                ))
                .get_result::<(String, i32, Option<String>)>(conn)
                .unwrap()
        };
        assert_eq!(state(conn), ("pending".into(), 0, Some("w1".into())));
        assert!(finish_attempt(conn, "n1", "w1", &retry).unwrap());
        assert_eq!(state(conn), ("pending".into(), 1, None));
        let s2: (String, i32, Option<String>) = push_deliveries::table
            .filter(push_deliveries::subscription_id.eq("s2"))
            .select((
                push_deliveries::status,
                push_deliveries::attempts,
                push_deliveries::last_error,
            ))
            .get_result(conn)
            .unwrap();
        assert_eq!(s2, ("retry".into(), 2, Some("still busy".into())));

        // The retry: s1 refused for good, so only s2 is still to do.
        let claimed = claim_pending(conn, "w1", 2_000, 62_000, 10).unwrap();
        let again = delivery_contexts(conn, &claimed).unwrap();
        assert_eq!(again[0].done, ["s1"]);
        assert_eq!(ids(&again[0].subscriptions), ["s1", "s2"]);

        let cached = cached.lock().unwrap();
        let count = |prefix: &str| cached.iter().filter(|q| q.starts_with(prefix)).count();
        assert_eq!(count("INSERT INTO push_deliveries"), 1, "{cached:?}");
        assert_eq!(
            count("UPDATE `notifications` SET `status`"),
            1,
            "{cached:?}"
        );
    }
}
