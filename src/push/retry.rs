//! When to try a failed delivery again: first retry within a second or two, then exponential
//! backoff with jitter capped at a minute, never earlier than the push service's Retry-After.

/// Delay before attempt `failures + 1`, in milliseconds. `jitter` is in [0, 1) (random in
/// production, fixed in tests) and spreads retries ±20 % so a recovering service is not hit by
/// every sender at once.
pub fn backoff_ms(failures: u32, retry_after_s: Option<u64>, jitter: f64) -> i64 {
    let exponent = failures.saturating_sub(1).min(6);
    let base_ms = (1_000_i64 << exponent).min(60_000);
    let factor = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
    let delay = (base_ms as f64 * factor) as i64;
    let honoured = retry_after_s
        .map(|s| i64::try_from(s.min(24 * 3600)).unwrap_or(0) * 1000)
        .unwrap_or(0);
    delay.max(honoured)
}

/// `Retry-After`: delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now_s: i64) -> Option<u64> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(seconds);
    }
    chrono::DateTime::parse_from_rfc2822(value)
        .ok()
        .map(|at| u64::try_from((at.timestamp() - now_s).max(0)).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_retry_within_two_seconds_then_doubling_capped_at_a_minute() {
        assert!((800..=1200).contains(&backoff_ms(1, None, 0.5)));
        assert_eq!(backoff_ms(1, None, 0.5), 1000);
        assert_eq!(backoff_ms(2, None, 0.5), 2000);
        assert_eq!(backoff_ms(3, None, 0.5), 4000);
        assert_eq!(backoff_ms(7, None, 0.5), 60_000);
        assert_eq!(backoff_ms(50, None, 0.5), 60_000);
        assert!(backoff_ms(50, None, 0.99) <= 72_000);
        assert_eq!(backoff_ms(0, None, 0.5), 1000);
    }

    #[test]
    fn retry_after_is_honoured() {
        assert_eq!(backoff_ms(1, Some(5), 0.5), 5000);
        assert_eq!(
            backoff_ms(7, Some(5), 0.5),
            60_000,
            "never sooner than our own backoff"
        );
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("3", 0), Some(3));
        assert_eq!(parse_retry_after(" 120 ", 0), Some(120));
        let now = chrono::DateTime::parse_from_rfc2822("Wed, 21 Oct 2015 07:28:00 GMT")
            .unwrap()
            .timestamp();
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(30)
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(0)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
