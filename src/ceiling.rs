//! The per-user check-in ceiling: far above what any phone sends (a check-in a minute, an
//! offline batch now and then), so it only ever stops a flood from a stolen token or a broken
//! client. Kept per replica in memory: it guards the server's capacity, and forgetting it on
//! restart only lets a flood through for one more minute.

use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::domain::ids::UserId;
use crate::error::AppError;

/// Past this many users tracked, those quiet for a minute are forgotten (bounds the memory).
const MAX_TRACKED: usize = 100_000;

pub struct CheckinCeiling {
    limiter: Option<DefaultKeyedRateLimiter<UserId>>,
}

impl CheckinCeiling {
    /// `per_minute` check-in requests per user (0: no ceiling, as in `doorstep bench`).
    pub fn new(per_minute: u32) -> CheckinCeiling {
        CheckinCeiling {
            limiter: NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n))),
        }
    }

    /// 429 with `Retry-After` beyond the ceiling.
    pub fn check(&self, user: UserId) -> Result<(), AppError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if limiter.len() > MAX_TRACKED {
            limiter.retain_recent();
        }
        match limiter.check_key(&user) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                use governor::clock::{Clock, DefaultClock};
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Err(AppError::RateLimited {
                    retry_after_s: wait.as_secs().max(1),
                })
            }
        }
    }
}
