//! Push subscriptions, and the delivery worker's claims on the outbox.

use diesel::prelude::*;

use super::native::{on_backend, UpdateRow};
use super::notifications::NotificationRow;
use super::schema::{notifications, push_deliveries, push_subscriptions};
use super::{new_id, DbConn};
use crate::domain::ids::UserId;
use crate::error::AppError;

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
) -> Result<Saved, AppError> {
    let existing: Option<String> = push_subscriptions::table
        .filter(push_subscriptions::endpoint.eq(endpoint))
        .select(push_subscriptions::id)
        .get_result(conn)
        .optional()?;
    if let Some(id) = existing {
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
        return Err(AppError::Conflict(format!(
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

pub fn subscriptions_of(conn: &mut DbConn, user: &str) -> Result<Vec<SubscriptionRow>, AppError> {
    // Served by push_subscriptions_user.
    Ok(on_backend!(conn, c => push_subscriptions::table
        .filter(push_subscriptions::user_id.eq(user))
        .order(push_subscriptions::created_at)
        .select(SubscriptionRow::as_select())
        .load(c))?)
}

/// Deletes a subscription of `user`; false when there is no such subscription of theirs.
pub fn delete_subscription(conn: &mut DbConn, user: UserId, id: &str) -> Result<bool, AppError> {
    Ok(diesel::delete(
        push_subscriptions::table
            .filter(push_subscriptions::id.eq(id))
            .filter(push_subscriptions::user_id.eq(user.to_string())),
    )
    .execute(conn)?
        > 0)
}

/// A push service said the subscription is gone (404/410).
pub fn remove_subscription(conn: &mut DbConn, id: &str) -> Result<(), AppError> {
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
) -> Result<Vec<NotificationRow>, AppError> {
    // Served by notifications_pending (partial index on next_attempt_at WHERE status = 'pending').
    macro_rules! due {
        () => {
            notifications::table
                .filter(pending())
                .filter(notifications::next_attempt_at.le(now_ms))
                // A lease "until T" has ended at T, the time its row becomes due again.
                .filter(
                    notifications::claimed_until
                        .is_null()
                        .or(notifications::claimed_until.le(now_ms)),
                )
                .order(notifications::next_attempt_at)
                .limit(limit)
                .select(NotificationRow::as_select())
        };
    }
    let mut rows: Vec<NotificationRow> = match conn {
        DbConn::Pg(pg) => due!().for_update().skip_locked().load(pg)?,
        DbConn::Sqlite(sqlite) => due!().load(sqlite)?,
    };
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    if !ids.is_empty() {
        diesel::update(notifications::table.filter(notifications::id.eq_any(&ids)))
            .set((
                notifications::claimed_by.eq(worker),
                notifications::claimed_until.eq(lease_until_ms),
                // A leased row is not due again before its lease ends: moving its attempt time
                // there keeps it out of the way of the next claim (which would otherwise step
                // over every delivery in flight) and of the worker's "what is due next".
                // Finishing the attempt sets the real next time.
                notifications::next_attempt_at.eq(lease_until_ms),
            ))
            .execute(conn)?;
    }
    for row in &mut rows {
        row.claimed_by = Some(worker.to_owned());
        row.claimed_until = Some(lease_until_ms);
    }
    Ok(rows)
}

/// `status = 'pending'` written as a literal, not a bound parameter: PostgreSQL can only use
/// the partial index `notifications_pending` (`WHERE status = 'pending'`) when it sees the
/// value while planning, and a prepared statement's generic plan does not. With a parameter,
/// every claim scanned the whole outbox.
fn pending() -> diesel::expression::SqlLiteral<diesel::sql_types::Bool> {
    diesel::dsl::sql::<diesel::sql_types::Bool>("notifications.status = 'pending'")
}

/// The earliest pending attempt (for the worker's sleep).
pub fn earliest_pending(conn: &mut DbConn) -> Result<Option<i64>, AppError> {
    Ok(notifications::table
        .filter(pending())
        .select(diesel::dsl::min(notifications::next_attempt_at))
        .get_result(conn)?)
}

/// Per-subscription delivery state of one notification.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = push_deliveries)]
pub struct DeliveryRow {
    pub id: String,
    pub notification_id: String,
    pub subscription_id: String,
    pub status: String,
    pub attempts: i32,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub sent_at: Option<i64>,
}

pub fn deliveries_of(conn: &mut DbConn, notification: &str) -> Result<Vec<DeliveryRow>, AppError> {
    Ok(on_backend!(conn, c => push_deliveries::table
        .filter(push_deliveries::notification_id.eq(notification))
        .select(DeliveryRow::as_select())
        .load(c))?)
}

/// Records the outcome of one attempt to one subscription.
pub fn record_delivery(
    conn: &mut DbConn,
    notification: &str,
    subscription: &str,
    status: &str,
    status_code: Option<u16>,
    error: Option<&str>,
    sent_at: Option<i64>,
) -> Result<(), AppError> {
    let existing: Option<(String, i32)> = on_backend!(conn, c => push_deliveries::table
        .filter(push_deliveries::notification_id.eq(notification))
        .filter(push_deliveries::subscription_id.eq(subscription))
        .select((push_deliveries::id, push_deliveries::attempts))
        .get_result(c)
        .optional())?;
    let code = status_code.map(i32::from);
    match existing {
        Some((id, attempts)) => {
            /// The query id of this update (one fixed SQL text).
            struct DeliveryAttempt;
            let update = UpdateRow::<DeliveryAttempt, _>::new(
                "push_deliveries",
                (
                    push_deliveries::status.eq(status),
                    push_deliveries::attempts.eq(attempts + 1),
                    push_deliveries::last_status_code.eq(code),
                    push_deliveries::last_error.eq(error),
                    push_deliveries::sent_at.eq(sent_at),
                )
                    .as_changeset(),
                &id,
            );
            on_backend!(conn, c => update.execute(c))?;
        }
        None => {
            let id = new_id();
            on_backend!(conn, c => diesel::insert_into(push_deliveries::table)
                .values((
                    push_deliveries::id.eq(&id),
                    push_deliveries::notification_id.eq(notification),
                    push_deliveries::subscription_id.eq(subscription),
                    push_deliveries::status.eq(status),
                    push_deliveries::attempts.eq(1),
                    push_deliveries::last_status_code.eq(code),
                    push_deliveries::last_error.eq(error),
                    push_deliveries::sent_at.eq(sent_at),
                ))
                .execute(c))?;
        }
    }
    Ok(())
}

/// The notification's new state after an attempt; only the lease holder may write it.
pub struct Outcome {
    pub status: &'static str,
    pub next_attempt_at: i64,
    pub sent_at: Option<i64>,
    pub last_error: Option<String>,
}

pub fn finish_attempt(
    conn: &mut DbConn,
    id: &str,
    worker: &str,
    outcome: &Outcome,
) -> Result<bool, AppError> {
    let current: Option<i32> = on_backend!(conn, c => notifications::table
        .find(id)
        .filter(notifications::claimed_by.eq(worker))
        .select(notifications::attempts)
        .get_result(c)
        .optional())?;
    let Some(attempts) = current else {
        // The lease ran out and another worker took the row over: its result wins.
        return Ok(false);
    };
    /// The query id of this update (one fixed SQL text).
    struct AttemptFinished;
    let update = UpdateRow::<AttemptFinished, _>::new(
        "notifications",
        (
            notifications::status.eq(outcome.status),
            notifications::attempts.eq(attempts + 1),
            notifications::next_attempt_at.eq(outcome.next_attempt_at),
            notifications::sent_at.eq(outcome.sent_at),
            notifications::last_error.eq(outcome.last_error.as_deref()),
            notifications::claimed_by.eq(None::<String>),
            notifications::claimed_until.eq(None::<i64>),
        )
            .as_changeset(),
        id,
    );
    on_backend!(conn, c => update.execute(c))?;
    Ok(true)
}

/// Whether the alert of a notification has been resolved (messages about it other than
/// `all_clear` are then pointless).
pub fn alert_resolved(conn: &mut DbConn, alert: &str) -> Result<bool, AppError> {
    use super::schema::alerts;
    let status: Option<String> = on_backend!(conn, c => alerts::table
        .find(alert)
        .select(alerts::status)
        .get_result(c)
        .optional())?;
    Ok(status.is_some_and(|s| s == "resolved"))
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
            channel: "webhook".into(),
            step: "test".into(),
            message_type: "test".into(),
            level: 0,
            payload: "{}".into(),
            status: "pending".into(),
            attempts: 0,
            due_at: None,
            created_at: due_ms,
            next_attempt_at: due_ms,
            expires_at: due_ms + 3_600_000,
            sent_at: None,
            last_error: None,
            claimed_by: None,
            claimed_until: None,
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
                    .write(move |conn| claim_pending(conn, worker, now, now + 10_000, 10))
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|r| r.id)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(claim("w1", 1_500).await, vec!["a"], "only what is due");
        assert_eq!(claim("w2", 2_500).await, vec!["b"], "a is leased to w1");
        let earliest = store.read(earliest_pending).await.unwrap();
        assert_eq!(
            earliest,
            Some(11_500),
            "the next due time is w1's lease end, not a's"
        );
        assert!(claim("w2", 11_499).await.is_empty());
        assert_eq!(claim("w2", 11_500).await, vec!["a"], "w1's lease ran out");
    }
}
