//! Typed text columns: the closed value sets of the domain (kinds, statuses, channels, message
//! types, roles, levels) are read and written as their wire names, so a row carries the enum
//! and a stored value outside the set is an error when it is read, in one place.

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql};
use diesel::pg::Pg;
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::Text;
use diesel::sqlite::Sqlite;
use std::io::Write;

use super::MultiBackend;

use crate::domain::account::Role;
use crate::domain::caution::Level as CautionLevel;
use crate::domain::delivery::{Channel, DeliveryStatus, MessageType};
use crate::domain::escalation::{AlertKind, AlertStatus, OutingStatus};
use crate::domain::ids::{AlertId, CheckinId, OrgId, OutingId, UserId};
use crate::domain::incident::{Category as IncidentCategory, IncidentStatus};

macro_rules! text_column {
    ($($ty:ty => $what:literal),+ $(,)?) => {$(
        impl<DB> ToSql<Text, DB> for $ty
        where
            DB: Backend,
            str: ToSql<Text, DB>,
        {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
                self.as_str().to_sql(out)
            }
        }

        impl<DB> FromSql<Text, DB> for $ty
        where
            DB: Backend,
            String: FromSql<Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
                let text = String::from_sql(bytes)?;
                <$ty>::parse(&text)
                    .ok_or_else(|| format!(concat!("stored ", $what, " {:?}"), text).into())
            }
        }
    )+};
}

text_column!(
    AlertKind => "alert kind",
    AlertStatus => "alert status",
    OutingStatus => "outing status",
    Channel => "delivery channel",
    DeliveryStatus => "delivery status",
    MessageType => "message type",
    Role => "role",
    CautionLevel => "caution level",
    IncidentCategory => "incident category",
    IncidentStatus => "incident status",
);

/// Identifiers are stored as the hyphenated text of their UUID (a portable column on both
/// backends); reading back anything else is an error.
macro_rules! id_column {
    ($($ty:ty => $what:literal),+ $(,)?) => {$(
        impl ToSql<Text, Sqlite> for $ty {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
                out.set_value(self.to_string());
                Ok(IsNull::No)
            }
        }

        impl ToSql<Text, Pg> for $ty {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
                let mut buffer = uuid::Uuid::encode_buffer();
                out.write_all(self.as_uuid().hyphenated().encode_lower(&mut buffer).as_bytes())?;
                Ok(IsNull::No)
            }
        }

        // Queries on the multi-backend connection hand the value to the backend in use.
        impl ToSql<Text, MultiBackend> for $ty {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, MultiBackend>) -> serialize::Result {
                out.set_value((Text, self));
                Ok(IsNull::No)
            }
        }

        impl<DB> FromSql<Text, DB> for $ty
        where
            DB: Backend,
            String: FromSql<Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
                let text = String::from_sql(bytes)?;
                text.parse::<$ty>()
                    .map_err(|_| format!(concat!("stored ", $what, " id {:?}"), text).into())
            }
        }
    )+};
}

id_column!(
    UserId => "user",
    OrgId => "organisation",
    OutingId => "outing",
    AlertId => "alert",
    CheckinId => "check-in",
);

#[cfg(test)]
mod tests {
    use diesel::prelude::*;
    use diesel::sql_query;
    use diesel::sql_types::Text;

    use super::*;

    #[derive(QueryableByName)]
    struct Read {
        #[diesel(sql_type = Text)]
        kind: AlertKind,
    }

    #[derive(QueryableByName)]
    struct ReadText {
        #[diesel(sql_type = Text)]
        id: String,
    }

    #[derive(QueryableByName)]
    struct ReadId {
        #[diesel(sql_type = Text)]
        id: OutingId,
    }

    #[test]
    fn an_id_reads_back_as_written_and_a_malformed_one_is_an_error() {
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        let id = OutingId::new();
        let text: ReadText = sql_query("SELECT ? AS id")
            .bind::<Text, _>(id)
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(text.id, id.to_string(), "stored as the hyphenated UUID");
        let read: ReadId = sql_query("SELECT ? AS id")
            .bind::<Text, _>(id)
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(read.id, id);
        let err = sql_query("SELECT 'not-a-uuid' AS id")
            .get_result::<ReadId>(&mut conn)
            .err()
            .unwrap();
        assert!(err.to_string().contains("stored outing id"), "{err}");
    }

    #[test]
    fn a_value_reads_back_as_written_and_an_unknown_one_is_an_error() {
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        let read: Read = sql_query("SELECT ? AS kind")
            .bind::<Text, _>(AlertKind::NeedHelp)
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(read.kind, AlertKind::NeedHelp);
        let err = sql_query("SELECT 'needhelp' AS kind")
            .get_result::<Read>(&mut conn)
            .err()
            .unwrap();
        assert!(err.to_string().contains("stored alert kind"), "{err}");
    }
}
