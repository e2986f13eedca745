//! Users and police assignments.

use diesel::prelude::*;

use super::schema::{police_assignments, users};
use super::DbConn;
use super::DbError;
use crate::domain::account::Role;
use crate::domain::ids::{OrgId, UserId};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users, treat_none_as_default_value = false)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub password_hash: String,
    pub display_name: String,
    pub role: Role,
    pub org_id: Option<String>,
    pub phone: Option<String>,
    pub safe_pin_hash: Option<String>,
    pub duress_pin_hash: Option<String>,
    pub totp_secret: Option<String>,
    pub totp_enabled: bool,
    pub totp_last_step: Option<i64>,
    pub email_alerts: bool,
    pub webhook_url: Option<String>,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
    pub language: String,
}

/// A user as the rest of the service sees it: typed ids and role.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: UserId,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub org_id: Option<OrgId>,
    pub phone: Option<String>,
    pub has_pins: bool,
    pub disabled: bool,
}

pub(crate) fn parse_id<T: std::str::FromStr>(raw: &str, what: &str) -> Result<T, DbError> {
    raw.parse()
        .map_err(|_| DbError::corrupt(format!("stored {what} id {raw:?} is not a UUID")))
}

impl TryFrom<&UserRow> for Account {
    type Error = DbError;

    fn try_from(row: &UserRow) -> Result<Self, DbError> {
        Ok(Account {
            id: parse_id(&row.id, "user")?,
            email: row.email.clone(),
            display_name: row.display_name.clone(),
            role: row.role,
            org_id: row
                .org_id
                .as_deref()
                .map(|o| parse_id(o, "organisation"))
                .transpose()?,
            phone: row.phone.clone(),
            has_pins: row.safe_pin_hash.is_some() && row.duress_pin_hash.is_some(),
            disabled: row.disabled_at.is_some(),
        })
    }
}

pub fn find_by_email(conn: &mut DbConn, email: &str) -> Result<Option<UserRow>, DbError> {
    // Served by the unique index on users.email.
    Ok(users::table
        .filter(users::email.eq(email))
        .select(UserRow::as_select())
        .get_result(conn)
        .optional()?)
}

pub fn find(conn: &mut DbConn, id: UserId) -> Result<Option<UserRow>, DbError> {
    Ok(users::table
        .find(id.to_string())
        .select(UserRow::as_select())
        .get_result(conn)
        .optional()?)
}

pub fn email_exists(conn: &mut DbConn, email: &str) -> Result<bool, DbError> {
    Ok(diesel::select(diesel::dsl::exists(
        users::table.filter(users::email.eq(email)),
    ))
    .get_result(conn)?)
}

pub struct NewUser<'a> {
    pub email: &'a str,
    pub password_hash: String,
    pub display_name: &'a str,
    pub role: Role,
    pub org_id: Option<OrgId>,
    pub phone: Option<&'a str>,
    pub now_ms: i64,
}

/// Inserts a user; a taken email is a 409 (checked first so the answer is clear, and guarded
/// by the unique index against a concurrent insert).
pub fn insert(conn: &mut DbConn, new: NewUser<'_>) -> Result<Account, DbError> {
    if email_exists(conn, new.email)? {
        return Err(DbError::Conflict(
            "a user with this email already exists".into(),
        ));
    }
    let row = UserRow {
        id: UserId::new().to_string(),
        email: new.email.to_owned(),
        password_hash: new.password_hash,
        display_name: new.display_name.to_owned(),
        role: new.role,
        org_id: new.org_id.map(|o| o.to_string()),
        phone: new.phone.map(str::to_owned),
        safe_pin_hash: None,
        duress_pin_hash: None,
        totp_secret: None,
        totp_enabled: false,
        totp_last_step: None,
        email_alerts: false,
        webhook_url: None,
        created_at: new.now_ms,
        disabled_at: None,
        language: "en".to_owned(),
    };
    diesel::insert_into(users::table)
        .values(&row)
        .execute(conn)
        .map_err(|e| match e {
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            ) => DbError::Conflict("a user with this email already exists".into()),
            other => other.into(),
        })?;
    Account::try_from(&row)
}

/// Organisations a police user is assigned to.
pub fn police_orgs(conn: &mut DbConn, police: UserId) -> Result<Vec<OrgId>, DbError> {
    // Served by police_assignments_user.
    police_assignments::table
        .filter(police_assignments::user_id.eq(police.to_string()))
        .select(police_assignments::org_id)
        .load::<String>(conn)?
        .iter()
        .map(|o| parse_id(o, "organisation"))
        .collect()
}

pub fn is_police_of(conn: &mut DbConn, police: UserId, org: OrgId) -> Result<bool, DbError> {
    Ok(diesel::select(diesel::dsl::exists(
        police_assignments::table
            .filter(police_assignments::org_id.eq(org.to_string()))
            .filter(police_assignments::user_id.eq(police.to_string())),
    ))
    .get_result(conn)?)
}

/// Adds an assignment; assigning twice is not an error (PUT-like semantics for a 204 API).
pub fn assign_police(
    conn: &mut DbConn,
    org: OrgId,
    police: UserId,
    now_ms: i64,
) -> Result<(), DbError> {
    if is_police_of(conn, police, org)? {
        return Ok(());
    }
    diesel::insert_into(police_assignments::table)
        .values((
            police_assignments::org_id.eq(org.to_string()),
            police_assignments::user_id.eq(police.to_string()),
            police_assignments::created_at.eq(now_ms),
        ))
        .execute(conn)?;
    Ok(())
}

/// Removes an assignment; returns whether there was one.
pub fn unassign_police(conn: &mut DbConn, org: OrgId, police: UserId) -> Result<bool, DbError> {
    let removed = diesel::delete(
        police_assignments::table
            .filter(police_assignments::org_id.eq(org.to_string()))
            .filter(police_assignments::user_id.eq(police.to_string())),
    )
    .execute(conn)?;
    Ok(removed > 0)
}

pub fn set_pins(
    conn: &mut DbConn,
    user: UserId,
    safe_hash: &str,
    duress_hash: &str,
) -> Result<(), DbError> {
    diesel::update(users::table.find(user.to_string()))
        .set((
            users::safe_pin_hash.eq(Some(safe_hash)),
            users::duress_pin_hash.eq(Some(duress_hash)),
        ))
        .execute(conn)?;
    Ok(())
}

/// A user's alert channels besides push: `(email alerts on, personal webhook)`.
pub fn channels(
    conn: &mut DbConn,
    user: UserId,
) -> Result<Option<(bool, Option<String>)>, DbError> {
    Ok(users::table
        .find(user.to_string())
        .select((users::email_alerts, users::webhook_url))
        .get_result(conn)
        .optional()?)
}

/// Sets the channels. A new or changed webhook URL gets `new_secret` (the caller shows it
/// once); the same URL keeps its secret; no URL clears both. Returns whether the secret was
/// set.
pub fn set_channels(
    conn: &mut DbConn,
    user: UserId,
    email_alerts: bool,
    webhook_url: Option<&str>,
    new_secret: &str,
) -> Result<bool, DbError> {
    let current: Option<(Option<String>, Option<String>)> = users::table
        .find(user.to_string())
        .select((users::webhook_url, users::webhook_secret))
        .get_result(conn)
        .optional()?;
    let keep = matches!(
        (&current, webhook_url),
        (Some((Some(old), Some(_))), Some(new)) if old == new
    );
    let secret = match webhook_url {
        None => None,
        Some(_) if keep => current.and_then(|(_, s)| s),
        Some(_) => Some(new_secret.to_owned()),
    };
    diesel::update(users::table.find(user.to_string()))
        .set((
            users::email_alerts.eq(email_alerts),
            users::webhook_url.eq(webhook_url),
            users::webhook_secret.eq(&secret),
        ))
        .execute(conn)?;
    Ok(webhook_url.is_some() && !keep)
}

/// Where to email a user, and their name: `(email, display name)`.
pub fn email_of(conn: &mut DbConn, user: &str) -> Result<Option<(String, String)>, DbError> {
    Ok(users::table
        .find(user)
        .filter(users::disabled_at.is_null())
        .select((users::email, users::display_name))
        .get_result(conn)
        .optional()?)
}

/// A user's personal webhook and the secret it is signed with (`None` for one set before
/// webhooks had their own secrets).
pub fn webhook_of(
    conn: &mut DbConn,
    user: &str,
) -> Result<Option<(String, Option<String>)>, DbError> {
    Ok(users::table
        .find(user)
        .filter(users::disabled_at.is_null())
        .select((users::webhook_url, users::webhook_secret))
        .get_result::<(Option<String>, Option<String>)>(conn)
        .optional()?
        .and_then(|(url, secret)| url.map(|u| (u, secret))))
}

/// Users of `org` (any organisation when `None`) with `role` (any when `None`), newest first,
/// after the cursor `(created_at, id)`.
pub fn list(
    conn: &mut DbConn,
    org: Option<OrgId>,
    role: Option<Role>,
    after: Option<(i64, String)>,
    limit: i64,
) -> Result<Vec<UserRow>, DbError> {
    let mut query = users::table
        .select(UserRow::as_select())
        .order((users::created_at.desc(), users::id.desc()))
        .limit(limit)
        .into_boxed();
    if let Some(org) = org {
        query = query.filter(users::org_id.eq(org.to_string()));
    }
    if let Some(role) = role {
        query = query.filter(users::role.eq(role));
    }
    if let Some((at, id)) = after {
        query = query.filter(
            users::created_at
                .lt(at)
                .or(users::created_at.eq(at).and(users::id.lt(id))),
        );
    }
    Ok(query.load(conn)?)
}

/// Changes what is given of a user's profile (`phone: Some(None)` clears the phone).
pub fn update_profile(
    conn: &mut DbConn,
    user: UserId,
    display_name: Option<&str>,
    phone: Option<Option<&str>>,
    language: Option<&str>,
) -> Result<(), DbError> {
    let id = user.to_string();
    if let Some(name) = display_name {
        diesel::update(users::table.find(&id))
            .set(users::display_name.eq(name))
            .execute(conn)?;
    }
    if let Some(phone) = phone {
        diesel::update(users::table.find(&id))
            .set(users::phone.eq(phone))
            .execute(conn)?;
    }
    if let Some(language) = language {
        diesel::update(users::table.find(&id))
            .set(users::language.eq(language))
            .execute(conn)?;
    }
    Ok(())
}

pub fn set_password_hash(conn: &mut DbConn, user: UserId, hash: &str) -> Result<(), DbError> {
    diesel::update(users::table.find(user.to_string()))
        .set(users::password_hash.eq(hash))
        .execute(conn)?;
    Ok(())
}

/// Disables (`Some(now)`) or enables (`None`) an account.
pub fn set_disabled(
    conn: &mut DbConn,
    user: UserId,
    disabled_at: Option<i64>,
) -> Result<(), DbError> {
    diesel::update(users::table.find(user.to_string()))
        .set(users::disabled_at.eq(disabled_at))
        .execute(conn)?;
    Ok(())
}

/// The account's phone number (E.164), if it has one.
pub fn phone_of(conn: &mut DbConn, user: UserId) -> Result<Option<String>, DbError> {
    Ok(users::table
        .find(user.to_string())
        .select(users::phone)
        .get_result::<Option<String>>(conn)
        .optional()?
        .flatten())
}

/// The accounts whose phone number is `phone` (E.164), enabled ones only.
pub fn with_phone(conn: &mut DbConn, phone: &str) -> Result<Vec<UserRow>, DbError> {
    Ok(users::table
        .filter(users::phone.eq(phone))
        .filter(users::disabled_at.is_null())
        .select(UserRow::as_select())
        .load(conn)?)
}

/// The account's phone number and whether it wants SMS and calls: `(phone, sms, voice)`.
pub fn phone_channels(
    conn: &mut DbConn,
    user: UserId,
) -> Result<(Option<String>, bool, bool), DbError> {
    Ok(users::table
        .find(user.to_string())
        .select((users::phone, users::sms_alerts, users::voice_alerts))
        .get_result::<(Option<String>, bool, bool)>(conn)
        .optional()?
        .unwrap_or((None, false, false)))
}

pub fn set_phone_channels(
    conn: &mut DbConn,
    user: UserId,
    sms: bool,
    voice: bool,
) -> Result<(), DbError> {
    diesel::update(users::table.find(user.to_string()))
        .set((users::sms_alerts.eq(sms), users::voice_alerts.eq(voice)))
        .execute(conn)?;
    Ok(())
}
