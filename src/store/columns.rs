//! Typed text columns: the closed value sets of the domain (kinds, statuses, channels, message
//! types, roles, levels) are read and written as their wire names, so a row carries the enum
//! and a stored value outside the set is an error when it is read, in one place.

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Text;

use crate::domain::account::Role;
use crate::domain::caution::Level as CautionLevel;
use crate::domain::delivery::{Channel, DeliveryStatus, MessageType};
use crate::domain::escalation::{AlertKind, AlertStatus, OutingStatus};
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
