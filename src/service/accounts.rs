//! Managing accounts: list, edit, passwords, disable and enable. Every change that can end or
//! restrict a login ends the account's logins in the same transaction; the caller then clears
//! this replica's session memo (other replicas follow within `auth.session_cache_ms`).

use serde_json::json;

use crate::domain::account::Role;
use crate::domain::caller::Caller;
use crate::domain::ids::{OrgId, UserId};
use crate::domain::management::{may_change, sees_account, Change, Decision, Person};
use crate::error::AppError;
use crate::store::accounts::UserRow;
use crate::store::audit::Action;
use crate::store::{self, DbConn};

fn person_of_caller(caller: &Caller) -> Person {
    Person {
        id: caller.id,
        role: caller.role,
        org_id: caller.org_id,
    }
}

fn person_of_row(row: &UserRow) -> Result<Person, AppError> {
    let account = store::accounts::Account::try_from(row)?;
    Ok(Person {
        id: account.id,
        role: account.role,
        org_id: account.org_id,
    })
}

/// Loads `target` for `change` by `caller`, or the refusal (404 when they may not see it).
pub fn authorised_target(
    conn: &mut DbConn,
    caller: &Caller,
    target: UserId,
    change: Change,
) -> Result<UserRow, AppError> {
    let row = store::accounts::find(conn, target)?.ok_or(AppError::NotFound("user"))?;
    match may_change(&person_of_caller(caller), &person_of_row(&row)?, change) {
        Decision::Allowed => Ok(row),
        Decision::Forbidden(why) => Err(AppError::Forbidden(why.into())),
        Decision::Hidden => Err(AppError::NotFound("user")),
    }
}

/// The accounts `caller` may list: admins any organisation's (or all), organisers their own.
pub fn list(
    conn: &mut DbConn,
    caller: &Caller,
    org: Option<OrgId>,
    role: Option<Role>,
    after: Option<(i64, String)>,
    limit: i64,
) -> Result<Vec<UserRow>, AppError> {
    let org = match caller.role {
        Role::Admin => org,
        Role::Organiser => {
            let own = caller
                .org_id
                .ok_or_else(|| AppError::Forbidden("you belong to no organisation".into()))?;
            if org.is_some_and(|o| o != own) {
                return Err(AppError::NotFound("organisation"));
            }
            Some(own)
        }
        _ => {
            return Err(AppError::Forbidden(
                "the list of accounts is for admins and organisers".into(),
            ))
        }
    };
    let rows = store::accounts::list(conn, org, role, after, limit)?;
    let me = person_of_caller(caller);
    let mut visible = Vec::with_capacity(rows.len());
    for row in rows {
        if sees_account(&me, &person_of_row(&row)?) {
            visible.push(row);
        }
    }
    Ok(visible)
}

/// Writes an account action to the audit log.
pub fn audit(
    conn: &mut DbConn,
    caller: &Caller,
    action: &str,
    target: &UserRow,
    detail: serde_json::Value,
    now_ms: i64,
) -> Result<(), AppError> {
    Ok(store::audit::record_action(
        conn,
        &Action {
            actor_id: caller.id.to_string(),
            actor_role: caller.role.as_str(),
            action,
            subject_id: Some(target.id.clone()),
            org_id: target.org_id.clone(),
            detail,
        },
        now_ms,
    )?)
}

/// Sets a new password for `target` and ends their logins (all of them, or all but the
/// caller's own when they changed their own).
pub fn set_password(
    conn: &mut DbConn,
    caller: &Caller,
    target: &UserRow,
    hash: &str,
    now_ms: i64,
) -> Result<(), AppError> {
    let id = store::accounts::parse_id(&target.id, "user")?;
    store::accounts::set_password_hash(conn, id, hash)?;
    let own = target.id == caller.id.to_string();
    let keep = own.then(|| caller.session_id.to_string());
    store::auth::revoke_sessions_of(conn, &target.id, keep.as_deref(), "password", now_ms)?;
    audit(
        conn,
        caller,
        "account.password",
        target,
        json!({"own": own}),
        now_ms,
    )
}

/// Disables (ending every login at once) or enables an account. An outing it has open keeps
/// its deadlines and escalates as before: the scheduler does not look at the account.
pub fn set_disabled(
    conn: &mut DbConn,
    caller: &Caller,
    target: &UserRow,
    disabled: bool,
    now_ms: i64,
) -> Result<(), AppError> {
    let id = store::accounts::parse_id(&target.id, "user")?;
    store::accounts::set_disabled(conn, id, disabled.then_some(now_ms))?;
    if disabled {
        store::auth::revoke_sessions_of(conn, &target.id, None, "disabled", now_ms)?;
    }
    audit(
        conn,
        caller,
        if disabled {
            "account.disable"
        } else {
            "account.enable"
        },
        target,
        json!({}),
        now_ms,
    )
}
