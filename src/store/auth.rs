//! Logins (sessions), refresh-token rotation with reuse detection, and login rate limiting.

use diesel::prelude::*;

use super::accounts::UserRow;
use super::schema::{login_attempts, organisations, refresh_tokens, sessions, users};
use super::DbError;
use super::{new_id, DbConn};
use crate::auth::tokens::{hash_refresh_token, new_refresh_token};
use crate::domain::ids::{SessionId, UserId};

/// Starts a login and returns its first refresh token (plaintext, shown to the client once).
pub fn create_session(
    conn: &mut DbConn,
    user: UserId,
    now_ms: i64,
    refresh_ttl_ms: i64,
) -> Result<(SessionId, String), DbError> {
    let session = SessionId::new();
    diesel::insert_into(sessions::table)
        .values((
            sessions::id.eq(session.to_string()),
            sessions::user_id.eq(user.to_string()),
            sessions::created_at.eq(now_ms),
            sessions::expires_at.eq(now_ms + refresh_ttl_ms),
        ))
        .execute(conn)?;
    let token = insert_refresh_token(conn, session, now_ms, refresh_ttl_ms)?;
    Ok((session, token))
}

fn insert_refresh_token(
    conn: &mut DbConn,
    session: SessionId,
    now_ms: i64,
    ttl_ms: i64,
) -> Result<String, DbError> {
    let token = new_refresh_token();
    diesel::insert_into(refresh_tokens::table)
        .values((
            refresh_tokens::id.eq(new_id()),
            refresh_tokens::session_id.eq(session.to_string()),
            refresh_tokens::token_hash.eq(hash_refresh_token(&token)),
            refresh_tokens::created_at.eq(now_ms),
            refresh_tokens::expires_at.eq(now_ms + ttl_ms),
        ))
        .execute(conn)?;
    Ok(token)
}

pub enum RefreshOutcome {
    Rotated {
        user: Box<UserRow>,
        session: SessionId,
        refresh_token: String,
    },
    /// A spent token came back: someone holds a copy. The whole login has been revoked.
    Reused,
    Invalid,
}

/// Spends `presented` and issues its successor in the same login. Must run in a transaction
/// that commits even for `Reused`, so the revocation sticks.
pub fn rotate_refresh_token(
    conn: &mut DbConn,
    presented: &str,
    now_ms: i64,
    refresh_ttl_ms: i64,
) -> Result<RefreshOutcome, DbError> {
    let hash = hash_refresh_token(presented);
    // Served by the unique index on refresh_tokens.token_hash.
    let found: Option<(String, String, i64, Option<i64>)> = refresh_tokens::table
        .filter(refresh_tokens::token_hash.eq(&hash))
        .select((
            refresh_tokens::id,
            refresh_tokens::session_id,
            refresh_tokens::expires_at,
            refresh_tokens::spent_at,
        ))
        .get_result(conn)
        .optional()?;
    let Some((token_id, session_id, expires_at, spent_at)) = found else {
        return Ok(RefreshOutcome::Invalid);
    };
    if spent_at.is_some() {
        revoke_session(conn, &session_id, "refresh token reused", now_ms)?;
        return Ok(RefreshOutcome::Reused);
    }
    if expires_at <= now_ms {
        return Ok(RefreshOutcome::Invalid);
    }
    let Some(user) = active_session_user(conn, &session_id, now_ms)? else {
        return Ok(RefreshOutcome::Invalid);
    };
    // Conditional spend: of two concurrent refreshes with one token, exactly one wins; the
    // other is treated as reuse.
    let spent = diesel::update(
        refresh_tokens::table
            .find(&token_id)
            .filter(refresh_tokens::spent_at.is_null()),
    )
    .set(refresh_tokens::spent_at.eq(now_ms))
    .execute(conn)?;
    if spent != 1 {
        revoke_session(conn, &session_id, "refresh token reused", now_ms)?;
        return Ok(RefreshOutcome::Reused);
    }
    let session: SessionId = super::accounts::parse_id(&session_id, "session")?;
    let refresh_token = insert_refresh_token(conn, session, now_ms, refresh_ttl_ms)?;
    Ok(RefreshOutcome::Rotated {
        user: Box::new(user),
        session,
        refresh_token,
    })
}

fn revoke_session(
    conn: &mut DbConn,
    session_id: &str,
    reason: &str,
    now_ms: i64,
) -> Result<(), DbError> {
    diesel::update(
        sessions::table
            .find(session_id)
            .filter(sessions::revoked_at.is_null()),
    )
    .set((
        sessions::revoked_at.eq(now_ms),
        sessions::revoked_reason.eq(reason),
    ))
    .execute(conn)?;
    Ok(())
}

/// Ends the login a refresh token belongs to. Unknown tokens are ignored: logout is idempotent.
pub fn logout(conn: &mut DbConn, presented: &str, now_ms: i64) -> Result<(), DbError> {
    let session: Option<String> = refresh_tokens::table
        .filter(refresh_tokens::token_hash.eq(hash_refresh_token(presented)))
        .select(refresh_tokens::session_id)
        .get_result(conn)
        .optional()?;
    if let Some(session) = session {
        revoke_session(conn, &session, "logout", now_ms)?;
    }
    Ok(())
}

/// The user of a live login (not revoked, not expired, account not disabled).
pub fn active_session_user(
    conn: &mut DbConn,
    session_id: &str,
    now_ms: i64,
) -> Result<Option<UserRow>, DbError> {
    Ok(active_session(conn, session_id, now_ms)?.map(|(user, _, _)| user))
}

/// The user of a live login, whether their organisation requires two-factor authentication,
/// and when the login expires. Authenticated requests pass through here (or through the
/// replica's short memo of its answers, `auth::session_cache`), so a revoked login stops
/// working long before its access token expires.
pub fn active_session(
    conn: &mut DbConn,
    session_id: &str,
    now_ms: i64,
) -> Result<Option<(UserRow, bool, i64)>, DbError> {
    // Primary-key lookups on sessions, users and organisations.
    let found: Option<(UserRow, Option<bool>, i64)> = sessions::table
        .inner_join(users::table.left_join(organisations::table))
        .filter(sessions::id.eq(session_id))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now_ms))
        .filter(users::disabled_at.is_null())
        .select((
            UserRow::as_select(),
            organisations::require_totp.nullable(),
            sessions::expires_at,
        ))
        .get_result(conn)
        .optional()?;
    Ok(found.map(|(user, required, expires_at)| (user, required.unwrap_or(false), expires_at)))
}

/// Attempts in `bucket` since `since_ms`, and the oldest of them (to compute Retry-After).
pub fn recent_attempts(
    conn: &mut DbConn,
    bucket: &str,
    since_ms: i64,
) -> Result<(i64, Option<i64>), DbError> {
    // Served by login_attempts_bucket_time.
    let (count, oldest) = login_attempts::table
        .filter(login_attempts::bucket.eq(bucket))
        .filter(login_attempts::attempted_at.gt(since_ms))
        .select((
            diesel::dsl::count_star(),
            diesel::dsl::min(login_attempts::attempted_at),
        ))
        .get_result::<(i64, Option<i64>)>(conn)?;
    Ok((count, oldest))
}

/// Records an attempt and forgets this bucket's attempts that no longer count.
pub fn record_attempt(
    conn: &mut DbConn,
    bucket: &str,
    now_ms: i64,
    succeeded: bool,
    forget_before_ms: i64,
) -> Result<String, DbError> {
    diesel::delete(
        login_attempts::table
            .filter(login_attempts::bucket.eq(bucket))
            .filter(login_attempts::attempted_at.lt(forget_before_ms)),
    )
    .execute(conn)?;
    let id = new_id();
    diesel::insert_into(login_attempts::table)
        .values((
            login_attempts::id.eq(&id),
            login_attempts::bucket.eq(bucket),
            login_attempts::attempted_at.eq(now_ms),
            login_attempts::succeeded.eq(succeeded),
        ))
        .execute(conn)?;
    Ok(id)
}

/// Serialises, until the end of the transaction, every writer that counts in one of `buckets`,
/// so that counting and recording an attempt is atomic under concurrent requests. SQLite has
/// one writer already; PostgreSQL takes a transaction-scoped advisory lock per bucket (in a
/// fixed order, so two writers never wait on each other crosswise).
pub fn lock_buckets(conn: &mut DbConn, buckets: &[&str]) -> Result<(), DbError> {
    if let DbConn::Pg(pg) = conn {
        let mut sorted: Vec<&str> = buckets.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        for bucket in sorted {
            diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind::<diesel::sql_types::Text, _>(bucket)
                .execute(pg)?;
        }
    }
    Ok(())
}

/// Takes one of `max` slots in `bucket` per `window_ms`, atomically (see [`lock_buckets`]).
/// `Err(retry_after_ms)` when the bucket is full.
pub fn take_slot(
    conn: &mut DbConn,
    bucket: &str,
    now_ms: i64,
    window_ms: i64,
    max: i64,
) -> Result<Result<(), i64>, DbError> {
    lock_buckets(conn, &[bucket])?;
    let (count, oldest) = recent_attempts(conn, bucket, now_ms - window_ms)?;
    if count >= max {
        let until = oldest.unwrap_or(now_ms) + window_ms;
        return Ok(Err((until - now_ms).max(1)));
    }
    record_attempt(conn, bucket, now_ms, false, now_ms - window_ms)?;
    Ok(Ok(()))
}

/// Forgets one attempt (by id): a login that turned out right is not counted by address.
pub fn forget_attempt(conn: &mut DbConn, id: &str) -> Result<(), DbError> {
    diesel::delete(login_attempts::table.find(id)).execute(conn)?;
    Ok(())
}

/// Ends every live login of `user` but `except` (the caller's own, after changing their own
/// password). Returns how many ended.
pub fn revoke_sessions_of(
    conn: &mut DbConn,
    user: &str,
    except: Option<&str>,
    reason: &str,
    now_ms: i64,
) -> Result<usize, DbError> {
    let mut query = diesel::update(sessions::table)
        .filter(sessions::user_id.eq(user))
        .filter(sessions::revoked_at.is_null())
        .into_boxed();
    if let Some(keep) = except {
        query = query.filter(sessions::id.ne(keep));
    }
    Ok(query
        .set((
            sessions::revoked_at.eq(now_ms),
            sessions::revoked_reason.eq(reason),
        ))
        .execute(conn)?)
}
