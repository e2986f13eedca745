//! Two-factor state of users: the TOTP secret, the last step accepted, recovery codes.

use diesel::prelude::*;

use super::schema::{recovery_codes, users};
use super::DbError;
use super::{new_id, DbConn};
use crate::domain::ids::UserId;

/// What proved the second factor, to be spent exactly once.
#[derive(Debug, Clone)]
pub enum Proof {
    /// A TOTP code of this time step.
    Step(i64),
    /// This recovery code (its row id).
    RecoveryCode(String),
}

/// Stores a new, not yet enabled secret (replacing a pending one). False when TOTP is
/// already enabled, in which case nothing changes.
pub fn set_pending_secret(conn: &mut DbConn, user: UserId, secret: &str) -> Result<bool, DbError> {
    let updated = diesel::update(
        users::table
            .find(user.to_string())
            .filter(users::totp_enabled.eq(false)),
    )
    .set(users::totp_secret.eq(Some(secret)))
    .execute(conn)?;
    Ok(updated == 1)
}

/// Enables TOTP with the pending `secret` confirmed by a code of `step`, replacing any recovery
/// codes with `code_hashes`. False when the state moved underneath (enabled meanwhile, secret
/// replaced by a new enrollment, or the step was already used): nothing changes then.
pub fn enable(
    conn: &mut DbConn,
    user: UserId,
    secret: &str,
    step: i64,
    code_hashes: &[String],
) -> Result<bool, DbError> {
    let updated = diesel::update(
        users::table
            .find(user.to_string())
            .filter(users::totp_enabled.eq(false))
            .filter(users::totp_secret.eq(secret))
            .filter(
                users::totp_last_step
                    .is_null()
                    .or(users::totp_last_step.lt(step)),
            ),
    )
    .set((
        users::totp_enabled.eq(true),
        users::totp_last_step.eq(Some(step)),
    ))
    .execute(conn)?;
    if updated != 1 {
        return Ok(false);
    }
    diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user.to_string())))
        .execute(conn)?;
    for hash in code_hashes {
        diesel::insert_into(recovery_codes::table)
            .values((
                recovery_codes::id.eq(new_id()),
                recovery_codes::user_id.eq(user.to_string()),
                recovery_codes::code_hash.eq(hash),
            ))
            .execute(conn)?;
    }
    Ok(true)
}

/// Turns TOTP off: forgets the secret and every recovery code. The last accepted step is kept,
/// so codes seen before can never be replayed after a later re-enrollment either.
pub fn disable(conn: &mut DbConn, user: UserId) -> Result<(), DbError> {
    diesel::update(users::table.find(user.to_string()))
        .set((
            users::totp_enabled.eq(false),
            users::totp_secret.eq(None::<String>),
        ))
        .execute(conn)?;
    diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user.to_string())))
        .execute(conn)?;
    Ok(())
}

/// Unused recovery codes of a user: (id, argon2 hash).
pub fn unused_recovery_codes(
    conn: &mut DbConn,
    user: UserId,
) -> Result<Vec<(String, String)>, DbError> {
    // Served by recovery_codes_user.
    Ok(recovery_codes::table
        .filter(recovery_codes::user_id.eq(user.to_string()))
        .filter(recovery_codes::used_at.is_null())
        .select((recovery_codes::id, recovery_codes::code_hash))
        .load(conn)?)
}

/// Spends a proof. Conditional updates make it single-use even under concurrency: of two
/// logins presenting the same code (or the same step) at once, exactly one gets `true`.
pub fn spend(conn: &mut DbConn, user: UserId, proof: &Proof, now_ms: i64) -> Result<bool, DbError> {
    let updated = match proof {
        Proof::Step(step) => diesel::update(
            users::table
                .find(user.to_string())
                .filter(users::totp_enabled.eq(true))
                .filter(
                    users::totp_last_step
                        .is_null()
                        .or(users::totp_last_step.lt(*step)),
                ),
        )
        .set(users::totp_last_step.eq(Some(*step)))
        .execute(conn)?,
        Proof::RecoveryCode(id) => diesel::update(
            recovery_codes::table
                .find(id)
                .filter(recovery_codes::user_id.eq(user.to_string()))
                .filter(recovery_codes::used_at.is_null()),
        )
        .set(recovery_codes::used_at.eq(Some(now_ms)))
        .execute(conn)?,
    };
    Ok(updated == 1)
}
