//! The hot statements' fast path: run on the backend's own connection, as statements diesel
//! keeps prepared.
//!
//! Two costs showed in profiles of the SQLite writer (the thread every write goes through):
//!
//! - `DbConn` (diesel's `MultiConnection`) renders every statement's SQL text on every run,
//!   to forward it to the backend connection: identifier quoting and string building for each
//!   column, each time. [`on_backend!`] runs a query on the `SqliteConnection` or
//!   `PgConnection` inside instead, where a statement with a static query id is found in the
//!   statement cache by its type, without rendering anything.
//! - diesel's `UPDATE` is never cached (a changeset may skip `None` fields, so its SQL can
//!   vary): SQLite parsed and planned the outing update, 23 columns, on every check-in, a
//!   third of the writer's time. [`UpdateRow`] is an update whose SQL cannot vary (row
//!   changesets here set every column: `treat_none_as_null`), so it is cached.

use std::marker::PhantomData;

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, Text};
use diesel::{QueryResult, RunQueryDsl};

/// Runs `$body` with `$c` bound to the backend connection inside a `DbConn`. The body is
/// compiled once per backend, so the same query DSL serves both.
macro_rules! on_backend {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::store::DbConn::Pg($c) => $body,
            $crate::store::DbConn::Sqlite($c) => $body,
        }
    };
}
pub(crate) use on_backend;

/// `UPDATE <table> SET <changeset> WHERE id = ? [AND <column> = ?]`, cached by diesel as one
/// prepared statement per marker type `R` (its query id; diesel's changesets have none). Only
/// for changesets that always render the same SQL (row changesets with `treat_none_as_null`,
/// or tuples of `eq`s), and one call site per marker: the cache assumes one id, one SQL text.
pub struct UpdateRow<'a, R, C> {
    table: &'static str,
    changeset: C,
    id: &'a str,
    also: Option<(&'static str, &'a str)>,
    row: PhantomData<R>,
}

impl<'a, R, C> UpdateRow<'a, R, C> {
    pub fn new(table: &'static str, changeset: C, id: &'a str) -> Self {
        UpdateRow {
            table,
            changeset,
            id,
            also: None,
            row: PhantomData,
        }
    }

    /// Updates the row only while `column` still holds `value` (a lease holder, say).
    pub fn only_if(mut self, column: &'static str, value: &'a str) -> Self {
        self.also = Some((column, value));
        self
    }
}

impl<R: 'static, C> QueryId for UpdateRow<'_, R, C> {
    type QueryId = UpdateRowId<R>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

/// The query id of an [`UpdateRow`] of rows `R`.
pub struct UpdateRowId<R>(PhantomData<R>);

impl<DB, R, C> QueryFragment<DB> for UpdateRow<'_, R, C>
where
    DB: Backend + HasSqlType<Text>,
    C: QueryFragment<DB>,
    str: ToSql<Text, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE ");
        out.push_identifier(self.table)?;
        out.push_sql(" SET ");
        self.changeset.walk_ast(out.reborrow())?;
        out.push_sql(" WHERE ");
        out.push_identifier("id")?;
        out.push_sql(" = ");
        out.push_bind_param::<Text, str>(self.id)?;
        if let Some((column, value)) = self.also {
            out.push_sql(" AND ");
            out.push_identifier(column)?;
            out.push_sql(" = ");
            out.push_bind_param::<Text, str>(value)?;
        }
        Ok(())
    }
}

impl<R, C, Conn> RunQueryDsl<Conn> for UpdateRow<'_, R, C> {}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::connection::{InstrumentationEvent, SimpleConnection};
    use diesel::prelude::*;
    use std::sync::{Arc, Mutex};

    diesel::table! {
        things (id) {
            id -> Text,
            label -> Nullable<Text>,
            count -> BigInt,
        }
    }

    #[derive(Debug, PartialEq, Queryable, AsChangeset)]
    #[diesel(table_name = things, treat_none_as_null = true)]
    struct Thing {
        id: String,
        label: Option<String>,
        count: i64,
    }

    /// The point of `UpdateRow`: the same statement, prepared once, whatever the values
    /// (including `None`, which must be written as NULL, not skipped).
    #[test]
    fn an_update_row_writes_every_column_and_is_prepared_once() {
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        conn.batch_execute(
            "CREATE TABLE things (id TEXT PRIMARY KEY, label TEXT, count BIGINT NOT NULL);
             INSERT INTO things VALUES ('a', 'x', 1), ('b', 'y', 2);",
        )
        .unwrap();
        let cached = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen = cached.clone();
        conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::CacheQuery { sql, .. } = event {
                if sql.starts_with("UPDATE") {
                    seen.lock().unwrap().push(sql.to_owned());
                }
            }
        });
        for n in 0..3 {
            let row = Thing {
                id: "a".into(),
                label: (n < 2).then(|| format!("v{n}")),
                count: 10 + n,
            };
            let updated = UpdateRow::<Thing, _>::new("things", (&row).as_changeset(), &row.id)
                .execute(&mut conn)
                .unwrap();
            assert_eq!(updated, 1);
        }
        let rows: Vec<Thing> = things::table.order(things::id).load(&mut conn).unwrap();
        assert_eq!(
            rows,
            vec![
                Thing {
                    id: "a".into(),
                    label: None,
                    count: 12
                },
                Thing {
                    id: "b".into(),
                    label: Some("y".into()),
                    count: 2
                },
            ]
        );
        let cached = cached.lock().unwrap();
        assert_eq!(
            *cached,
            vec!["UPDATE `things` SET `label` = ?, `count` = ? WHERE `id` = ?".to_owned()],
            "prepared and cached once, on the first run"
        );
    }
}
