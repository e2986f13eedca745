//! A short-lived memo of logins this replica has just confirmed live.
//!
//! Every authenticated request checks its login in the database, so that a revoked login stops
//! working before its access token expires. Under load that check was half of a check-in's
//! server CPU (a blocking-pool hop and a query per request; see docs/benchmarks.md). The memo
//! keeps a confirmed answer for `auth.session_cache_ms` (default 1 s; 0 turns it off):
//!
//! - on this replica a revocation is still immediate: logout, a reused refresh token, and
//!   changes to two-factor settings clear the memo;
//! - on another replica a revocation takes effect within `session_cache_ms`;
//! - a login whose session expires is never served past its expiry.
//!
//! It holds no state a restart would lose: it is only ever a copy of a database answer.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::domain::caller::Caller;
use crate::domain::ids::SessionId;

/// Bounds the memory: past this many logins the memo starts again empty.
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone)]
pub struct ConfirmedLogin {
    pub caller: Caller,
    /// The organisation requires a second factor.
    pub org_requires_totp: bool,
    pub totp_enabled: bool,
}

struct Entry {
    login: ConfirmedLogin,
    confirmed_at_ms: i64,
    session_expires_at_ms: i64,
}

pub struct SessionCache {
    ttl_ms: i64,
    entries: Mutex<HashMap<SessionId, Entry>>,
}

impl SessionCache {
    pub fn new(ttl_ms: u64) -> SessionCache {
        SessionCache {
            ttl_ms: i64::try_from(ttl_ms).unwrap_or(i64::MAX),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The login as last confirmed, if that was less than the TTL ago and it has not expired.
    pub fn get(&self, session: SessionId, now_ms: i64) -> Option<ConfirmedLogin> {
        if self.ttl_ms == 0 {
            return None;
        }
        let entries = self.entries.lock().ok()?;
        let entry = entries.get(&session)?;
        let fresh = now_ms >= entry.confirmed_at_ms
            && now_ms - entry.confirmed_at_ms < self.ttl_ms
            && now_ms < entry.session_expires_at_ms;
        fresh.then(|| entry.login.clone())
    }

    pub fn put(
        &self,
        session: SessionId,
        login: ConfirmedLogin,
        session_expires_at_ms: i64,
        now_ms: i64,
    ) {
        if self.ttl_ms == 0 {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_ENTRIES {
                entries.retain(|_, e| now_ms - e.confirmed_at_ms < self.ttl_ms);
                if entries.len() >= MAX_ENTRIES {
                    entries.clear();
                }
            }
            entries.insert(
                session,
                Entry {
                    login,
                    confirmed_at_ms: now_ms,
                    session_expires_at_ms,
                },
            );
        }
    }

    /// Forget everything: called after any change that can end or restrict a login.
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::account::Role;

    fn login() -> ConfirmedLogin {
        ConfirmedLogin {
            caller: Caller {
                id: uuid::Uuid::new_v4().into(),
                role: Role::Canvasser,
                org_id: None,
                display_name: "A".into(),
                email: "a@example.org".into(),
                session_id: uuid::Uuid::new_v4().into(),
            },
            org_requires_totp: false,
            totp_enabled: false,
        }
    }

    #[test]
    fn serves_only_fresh_unexpired_confirmations() {
        let cache = SessionCache::new(1_000);
        let sid: SessionId = uuid::Uuid::new_v4().into();
        assert!(cache.get(sid, 0).is_none());
        cache.put(sid, login(), 1_500, 100);
        assert!(cache.get(sid, 100).is_some());
        assert!(cache.get(sid, 1_099).is_some());
        assert!(cache.get(sid, 1_100).is_none(), "older than the TTL");
        cache.put(sid, login(), 1_500, 1_200);
        assert!(cache.get(sid, 1_499).is_some());
        assert!(cache.get(sid, 1_500).is_none(), "the session expired");
        assert!(cache.get(sid, 50).is_none(), "a clock that went back");
    }

    #[test]
    fn clear_forgets_everything_and_zero_disables() {
        let cache = SessionCache::new(1_000);
        let sid: SessionId = uuid::Uuid::new_v4().into();
        cache.put(sid, login(), 10_000, 0);
        cache.clear();
        assert!(cache.get(sid, 1).is_none());
        let off = SessionCache::new(0);
        off.put(sid, login(), 10_000, 0);
        assert!(off.get(sid, 0).is_none());
    }
}
