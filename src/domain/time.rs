//! Time as the domain sees it: UTC instants, stored as epoch milliseconds.

use chrono::{DateTime, TimeZone, Utc};

pub type Instant = DateTime<Utc>;

/// Epoch milliseconds, the storage representation of every instant (portable across SQLite
/// and PostgreSQL, cheap to index and compare).
pub fn to_millis(t: Instant) -> i64 {
    t.timestamp_millis()
}

/// Out-of-range values clamp to the epoch rather than panic: storage is trusted, but a
/// corrupted row must not take the scheduler down.
pub fn from_millis(ms: i64) -> Instant {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// `t + seconds`, saturating instead of overflowing.
pub fn add_secs(t: Instant, seconds: i64) -> Instant {
    chrono::Duration::try_seconds(seconds)
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(if seconds >= 0 {
            DateTime::<Utc>::MAX_UTC
        } else {
            DateTime::<Utc>::MIN_UTC
        })
}

/// RFC 3339 in UTC with a `Z`, whole seconds unless sub-second precision is present.
pub fn rfc3339(t: Instant) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// The start of the calendar month (UTC) that `ms` falls in, as epoch milliseconds.
pub fn month_start_ms(ms: i64) -> i64 {
    use chrono::Datelike;
    let at = from_millis(ms);
    Utc.with_ymd_and_hms(at.year(), at.month(), 1, 0, 0, 0)
        .single()
        .map_or(ms, |t| t.timestamp_millis())
}

/// An IANA time zone name (`Europe/London`), as an organisation's `timezone`.
pub fn parse_timezone(
    field: &str,
    raw: &str,
) -> Result<chrono_tz::Tz, super::field_error::FieldError> {
    raw.parse::<chrono_tz::Tz>().map_err(|_| {
        super::field_error::FieldError::new(
            field,
            "must be an IANA time zone name, such as Europe/London",
        )
    })
}

/// A time as people read it in `zone` (`2026-06-12 19:42:05 BST`), right across clock
/// changes, followed by the same instant in UTC.
pub fn local_and_utc(at: Instant, zone: chrono_tz::Tz) -> String {
    let local = at.with_timezone(&zone);
    format!(
        "{} ({} UTC)",
        local.format("%Y-%m-%d %H:%M:%S %Z"),
        at.format("%H:%M:%S")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_round_trip() {
        let t = Utc.with_ymd_and_hms(2026, 6, 12, 18, 42, 5).unwrap();
        assert_eq!(from_millis(to_millis(t)), t);
        assert_eq!(rfc3339(t), "2026-06-12T18:42:05Z");
    }

    #[test]
    fn add_saturates() {
        let t = Utc::now();
        assert_eq!(add_secs(t, i64::MAX), DateTime::<Utc>::MAX_UTC);
        assert_eq!(add_secs(t, i64::MIN), DateTime::<Utc>::MIN_UTC);
    }
}
