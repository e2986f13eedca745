//! Organisations and their escalation policy.

use diesel::prelude::*;

use super::native::on_backend;
use super::schema::organisations;
use super::DbConn;
use super::DbError;
use chrono_tz::Tz;

use crate::domain::ids::OrgId;
use crate::domain::policy::EscalationPolicy;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = organisations, treat_none_as_default_value = false)]
pub struct OrgRow {
    pub id: String,
    pub name: String,
    pub escalation_policy: Option<String>,
    pub require_totp: bool,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<String>,
    pub created_at: i64,
    pub timezone: String,
}

#[derive(Debug, Clone)]
pub struct Organisation {
    pub id: OrgId,
    pub name: String,
    /// `None` when the organisation follows the server's default policy.
    pub custom_policy: Option<EscalationPolicy>,
    /// The zone its people's times are read in.
    pub timezone: Tz,
}

impl Organisation {
    pub fn policy(&self, server_default: &EscalationPolicy) -> EscalationPolicy {
        self.custom_policy.unwrap_or(*server_default)
    }
}

impl TryFrom<OrgRow> for Organisation {
    type Error = DbError;

    fn try_from(row: OrgRow) -> Result<Self, DbError> {
        let custom_policy = parse_policy(&row.id, row.escalation_policy.as_deref())?;
        let timezone = row
            .timezone
            .parse::<Tz>()
            .map_err(|_| DbError::corrupt(format!("stored time zone {:?}", row.timezone)))?;
        Ok(Organisation {
            id: super::accounts::parse_id(&row.id, "organisation")?,
            name: row.name,
            custom_policy,
            timezone,
        })
    }
}

/// An organisation's stored custom policy (`escalation_policy`, JSON); `None` when it follows
/// the server's default.
pub fn parse_policy(org: &str, stored: Option<&str>) -> Result<Option<EscalationPolicy>, DbError> {
    stored
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| DbError::corrupt(format!("stored policy of org {org}: {e}")))
}

pub fn insert(
    conn: &mut DbConn,
    name: &str,
    timezone: Tz,
    now_ms: i64,
) -> Result<Organisation, DbError> {
    let row = OrgRow {
        id: OrgId::new().to_string(),
        name: name.to_owned(),
        escalation_policy: None,
        require_totp: false,
        webhook_url: None,
        webhook_secret: None,
        created_at: now_ms,
        timezone: timezone.name().to_owned(),
    };
    diesel::insert_into(organisations::table)
        .values(&row)
        .execute(conn)?;
    Organisation::try_from(row)
}

pub fn find(conn: &mut DbConn, id: OrgId) -> Result<Option<Organisation>, DbError> {
    let id = id.to_string();
    on_backend!(conn, c => organisations::table
        .find(&id)
        .select(OrgRow::as_select())
        .get_result(c)
        .optional())?
    .map(Organisation::try_from)
    .transpose()
}

pub fn set_policy(conn: &mut DbConn, id: OrgId, policy: &EscalationPolicy) -> Result<(), DbError> {
    let json = serde_json::to_string(policy)
        .map_err(|e| DbError::corrupt(format!("serialising policy: {e}")))?;
    diesel::update(organisations::table.find(id.to_string()))
        .set(organisations::escalation_policy.eq(Some(json)))
        .execute(conn)?;
    Ok(())
}

/// Whether an organisation requires two-factor authentication of its organisers.
pub fn require_totp(conn: &mut DbConn, id: OrgId) -> Result<Option<bool>, DbError> {
    Ok(organisations::table
        .find(id.to_string())
        .select(organisations::require_totp)
        .get_result(conn)
        .optional()?)
}

pub fn set_require_totp(conn: &mut DbConn, id: OrgId, required: bool) -> Result<(), DbError> {
    diesel::update(organisations::table.find(id.to_string()))
        .set(organisations::require_totp.eq(required))
        .execute(conn)?;
    Ok(())
}

/// The organisation's webhook: `(url, secret)`, when it has one.
pub fn webhook_of(conn: &mut DbConn, org: &str) -> Result<Option<(String, String)>, DbError> {
    let row: Option<(Option<String>, Option<String>)> = organisations::table
        .find(org)
        .select((organisations::webhook_url, organisations::webhook_secret))
        .get_result(conn)
        .optional()?;
    Ok(match row {
        Some((Some(url), Some(secret))) => Some((url, secret)),
        _ => None,
    })
}

/// Sets (or with `None`, removes) the organisation's webhook.
pub fn set_webhook(
    conn: &mut DbConn,
    org: OrgId,
    webhook: Option<(&str, &str)>,
) -> Result<(), DbError> {
    let (url, secret) = match webhook {
        Some((url, secret)) => (Some(url), Some(secret)),
        None => (None, None),
    };
    diesel::update(organisations::table.find(org.to_string()))
        .set((
            organisations::webhook_url.eq(url),
            organisations::webhook_secret.eq(secret),
        ))
        .execute(conn)?;
    Ok(())
}

/// Renames an organisation and/or moves it to another time zone.
pub fn update(
    conn: &mut DbConn,
    id: OrgId,
    name: Option<&str>,
    timezone: Option<Tz>,
) -> Result<(), DbError> {
    let id = id.to_string();
    if let Some(name) = name {
        diesel::update(organisations::table.find(&id))
            .set(organisations::name.eq(name))
            .execute(conn)?;
    }
    if let Some(timezone) = timezone {
        diesel::update(organisations::table.find(&id))
            .set(organisations::timezone.eq(timezone.name()))
            .execute(conn)?;
    }
    Ok(())
}
