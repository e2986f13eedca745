//! The scheduler's queries: due work, claimed so that replicas never process the same row at
//! the same time.

use diesel::dsl::min;
use diesel::prelude::*;

use super::alerts::AlertRow;
use super::outings::OutingRow;
use super::schema::{alerts, outings};
use super::DbConn;
use super::DbError;

// The scheduler's queries, as macros so the plan test below checks exactly what runs.
// `due!` has no `LIMIT`: PostgreSQL adds one (it bounds the rows locked); SQLite steps the
// cursor and stops, because SQLite re-prepares a statement with a bound `LIMIT` on every run
// (perf: 13% of the writer thread at 1,000 steps a second; see clippy.toml for `first()`).
macro_rules! due {
    ($table:ident, $row:ty, $now:expr) => {
        $table::table
            .filter($table::next_action_at.le($now))
            .order($table::next_action_at)
            .select(<$row>::as_select())
    };
}

/// The first `limit` rows a cursor yields.
fn first_rows<T>(
    rows: impl Iterator<Item = QueryResult<T>>,
    limit: i64,
) -> Result<Vec<T>, DbError> {
    Ok(rows
        .take(usize::try_from(limit).unwrap_or(0))
        .collect::<QueryResult<Vec<T>>>()?)
}
// `IS NOT NULL` is what lets SQLite answer the MIN from the partial index (which holds only
// rows with an action); without it SQLite scans the whole table, on every scheduler pass.
macro_rules! earliest_action {
    ($table:ident) => {
        $table::table
            .filter($table::next_action_at.is_not_null())
            .select(min($table::next_action_at))
    };
}

/// Outings with an action due at `now_ms`, oldest first. On PostgreSQL the rows are locked
/// `FOR UPDATE SKIP LOCKED` until the transaction ends: another replica skips them, and if
/// this process dies the locks vanish with its connection, so the work is taken over at once.
/// On SQLite the single writer connection is the claim.
pub fn claim_due_outings(
    conn: &mut DbConn,
    now_ms: i64,
    limit: i64,
) -> Result<Vec<OutingRow>, DbError> {
    // Served by outings_next_action (partial index on next_action_at).
    Ok(match conn {
        DbConn::Pg(pg) => due!(outings, OutingRow, now_ms)
            .limit(limit)
            .for_update()
            .skip_locked()
            .load(pg)?,
        DbConn::Sqlite(sqlite) => first_rows(
            due!(outings, OutingRow, now_ms)
                .load_iter::<OutingRow, diesel::connection::DefaultLoadingMode>(sqlite)?,
            limit,
        )?,
    })
}

/// Alerts with an action due at `now_ms`, oldest first, claimed like outings.
pub fn claim_due_alerts(
    conn: &mut DbConn,
    now_ms: i64,
    limit: i64,
) -> Result<Vec<AlertRow>, DbError> {
    // Served by alerts_next_action.
    Ok(match conn {
        DbConn::Pg(pg) => due!(alerts, AlertRow, now_ms)
            .limit(limit)
            .for_update()
            .skip_locked()
            .load(pg)?,
        DbConn::Sqlite(sqlite) => first_rows(
            due!(alerts, AlertRow, now_ms)
                .load_iter::<AlertRow, diesel::connection::DefaultLoadingMode>(sqlite)?,
            limit,
        )?,
    })
}

/// [`earliest_action`] on PostgreSQL (`$1`: the pass's time), public for the plan test.
pub const PG_EARLIEST_ACTION: &str = "SELECT LEAST(\
    (SELECT next_action_at FROM outings WHERE next_action_at IS NOT NULL \
       AND next_action_at > $1 ORDER BY next_action_at LIMIT 1), \
    (SELECT next_action_at FROM alerts WHERE next_action_at IS NOT NULL \
       AND next_action_at > $1 ORDER BY next_action_at LIMIT 1)) AS at";

/// The earliest pending action of any outing or alert, for a lane's sleep after a pass that
/// claimed what was due at `after_ms` and found less than a batch.
pub fn earliest_action(conn: &mut DbConn, after_ms: i64) -> Result<Option<i64>, DbError> {
    match conn {
        DbConn::Pg(pg) => {
            #[derive(QueryableByName)]
            struct Earliest {
                #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
                at: Option<i64>,
            }
            // Not a MIN, and not from the index's oldest end (`pg_stat_statements` and EXPLAIN
            // over PostgreSQL runs of 100k deadlines; the MIN was the database's largest cost):
            // - The planner answers a MIN either by walking the index to its first entry or by
            //   reading the whole index, and picks by its statistics. Analysed while most
            //   outings have no action (ended ones, or the bench's parked ones before they are
            //   armed), it believes the partial index almost empty and reads all of it: every
            //   live deadline, with a heap visit each, 5–26 ms a call at 100k. `ORDER BY ...
            //   LIMIT 1` (a literal limit) has only the first plan.
            // - Each step moves its row's action time on and leaves the old entry behind until
            //   vacuum removes it: a walk from the oldest end stepped over pages of them, up to
            //   15 ms a call between two vacuums at 1,000 steps a second. What was due at
            //   `after_ms` this pass took, or another lane holds; a row that becomes due at or
            //   before it afterwards (an offline check-in with an old deadline, written on
            //   another replica; one written here wakes the lanes) is claimed by the next pass,
            //   which the poll interval bounds.
            let found: Earliest = diesel::sql_query(PG_EARLIEST_ACTION)
                .bind::<diesel::sql_types::BigInt, _>(after_ms)
                .get_result(pg)?;
            Ok(found.at)
        }
        // SQLite answers a MIN from the index's first entry (the plan test below) and removes
        // index entries as it goes: nothing to step over.
        DbConn::Sqlite(sqlite) => {
            let outing: Option<i64> = earliest_action!(outings).get_result(sqlite)?;
            let alert: Option<i64> = earliest_action!(alerts).get_result(sqlite)?;
            Ok(match (outing, alert) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            })
        }
    }
}

/// [`oldest_action`] on PostgreSQL: from each partial index's oldest end.
pub const PG_OLDEST_ACTION: &str = "SELECT LEAST(\
    (SELECT next_action_at FROM outings WHERE next_action_at IS NOT NULL \
       ORDER BY next_action_at LIMIT 1), \
    (SELECT next_action_at FROM alerts WHERE next_action_at IS NOT NULL \
       ORDER BY next_action_at LIMIT 1)) AS at";

/// The oldest pending action of any outing or alert, done or not: when it is well in the
/// past, the scheduler is behind (`/readyz`, the heartbeat). Read at most every few seconds,
/// so the walk from the index's oldest end (see [`earliest_action`]) costs little.
pub fn oldest_action(conn: &mut DbConn) -> Result<Option<i64>, DbError> {
    match conn {
        DbConn::Pg(pg) => {
            #[derive(QueryableByName)]
            struct Oldest {
                #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
                at: Option<i64>,
            }
            let found: Oldest = diesel::sql_query(PG_OLDEST_ACTION).get_result(pg)?;
            Ok(found.at)
        }
        DbConn::Sqlite(sqlite) => {
            let outing: Option<i64> = earliest_action!(outings).get_result(sqlite)?;
            let alert: Option<i64> = earliest_action!(alerts).get_result(sqlite)?;
            Ok(outing.into_iter().chain(alert).min())
        }
    }
}

/// Pushes a row's action back after a failure, so one broken row cannot block the queue.
pub fn postpone(
    conn: &mut DbConn,
    outing: Option<&str>,
    alert: Option<&str>,
    until_ms: i64,
) -> Result<(), DbError> {
    if let Some(id) = outing {
        diesel::update(outings::table.find(id))
            .set(outings::next_action_at.eq(until_ms))
            .execute(conn)?;
    }
    if let Some(id) = alert {
        diesel::update(alerts::table.find(id))
            .set(alerts::next_action_at.eq(until_ms))
            .execute(conn)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::sqlite::{Sqlite, SqliteConnection};
    use diesel_migrations::MigrationHarness;

    #[derive(QueryableByName)]
    struct PlanRow {
        #[diesel(sql_type = diesel::sql_types::Text)]
        detail: String,
    }

    fn sqlite_plan(conn: &mut SqliteConnection, sql: &str) -> String {
        let sql = sql.split(" -- binds").next().unwrap_or(sql);
        diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}"))
            .load::<PlanRow>(conn)
            .unwrap()
            .into_iter()
            .map(|r| r.detail)
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The scheduler runs these on every pass: each must be an index search, never a scan of
    /// every outing or alert (with a million live outings a scan takes longer than a pass may).
    #[test]
    fn the_scheduler_queries_search_their_partial_indexes() {
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        conn.run_pending_migrations(crate::store::SQLITE_MIGRATIONS)
            .unwrap();
        let queries = [
            (
                diesel::debug_query::<Sqlite, _>(&earliest_action!(outings)).to_string(),
                "outings_next_action",
            ),
            (
                diesel::debug_query::<Sqlite, _>(&earliest_action!(alerts)).to_string(),
                "alerts_next_action",
            ),
            (
                diesel::debug_query::<Sqlite, _>(&due!(outings, OutingRow, 0i64)).to_string(),
                "outings_next_action",
            ),
            (
                diesel::debug_query::<Sqlite, _>(&due!(alerts, AlertRow, 0i64)).to_string(),
                "alerts_next_action",
            ),
        ];
        for (sql, index) in queries {
            let plan = sqlite_plan(&mut conn, &sql);
            assert!(
                plan.contains(&format!("USING COVERING INDEX {index}"))
                    || plan.contains(&format!("USING INDEX {index}")),
                "{sql}\nplan: {plan}"
            );
            assert!(!plan.contains("SCAN"), "{sql}\nplan: {plan}");
        }
    }
}
