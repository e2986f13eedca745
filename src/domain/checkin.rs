//! The values a check-in carries, each validated once at the boundary.
//!
//! Every type here has private fields and a `parse` constructor that returns a
//! [`FieldError`] naming the request field (`lat`, `battery_pct`, ...), so a value of the type
//! is proof it was checked. The HTTP layer deserializes raw numbers, calls `parse` on each
//! and collects all errors of a request. For nested bodies (a batch), rewrite
//! `FieldError::field`, e.g. to `checkins[3].lat`.
//!
//! Also here: how check-ins are ordered for display ([`DisplayOrder`]) and the pure part of
//! the safe / duress PIN logic ([`classify_pin`], [`validate_pin_pair`]).

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::field_error::FieldError;

/// `Ok` when `value` is finite and within `min..=max`, else an error on `field`.
fn finite_within(
    value: f64,
    min: f64,
    max: f64,
    field: &str,
    message: &str,
) -> Result<f64, FieldError> {
    if value.is_finite() && (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(FieldError::new(field, message))
    }
}

/// WGS84 latitude in degrees, in [-90, 90].
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize)]
#[serde(transparent)]
pub struct Latitude(f64);

impl Latitude {
    pub const FIELD: &'static str = "lat";

    pub fn parse(value: f64) -> Result<Self, FieldError> {
        finite_within(
            value,
            -90.0,
            90.0,
            Self::FIELD,
            "must be a number between -90 and 90",
        )
        .map(Self)
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

/// WGS84 longitude in degrees, in [-180, 180].
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize)]
#[serde(transparent)]
pub struct Longitude(f64);

impl Longitude {
    pub const FIELD: &'static str = "lon";

    pub fn parse(value: f64) -> Result<Self, FieldError> {
        finite_within(
            value,
            -180.0,
            180.0,
            Self::FIELD,
            "must be a number between -180 and 180",
        )
        .map(Self)
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

/// Radius in metres of the phone's confidence circle around a fix; finite and ≥ 0.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize)]
#[serde(transparent)]
pub struct AccuracyM(f64);

impl AccuracyM {
    pub const FIELD: &'static str = "accuracy_m";

    pub fn parse(value: f64) -> Result<Self, FieldError> {
        finite_within(
            value,
            0.0,
            f64::MAX,
            Self::FIELD,
            "must be a finite number of metres, 0 or more",
        )
        // -0.0 passes the range check; store it as 0 so it never prints as "-0".
        .map(|v| Self(v + 0.0))
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

/// Phone battery level in percent, in [0, 100]. Fractions are kept as sent.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize)]
#[serde(transparent)]
pub struct BatteryPct(f64);

impl BatteryPct {
    pub const FIELD: &'static str = "battery_pct";

    pub fn parse(value: f64) -> Result<Self, FieldError> {
        finite_within(
            value,
            0.0,
            100.0,
            Self::FIELD,
            "must be a number between 0 and 100",
        )
        .map(|v| Self(v + 0.0))
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

/// Seconds between expected check-ins, in `[min_s, MAX_S]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct CheckinInterval(i64);

impl CheckinInterval {
    pub const FIELD: &'static str = "checkin_interval_s";
    /// Default for the configured minimum (`min_checkin_interval_s`).
    pub const DEFAULT_MIN_S: i64 = 60;
    /// 24 hours: beyond that nobody would notice a missing canvasser in time.
    pub const MAX_S: i64 = 86_400;

    /// `min_s` is the configured minimum; values below 1 count as 1, because an interval of
    /// 0 would make every outing overdue the moment it starts.
    pub fn parse(value_s: i64, min_s: i64) -> Result<Self, FieldError> {
        let min_s = min_s.max(1);
        if (min_s..=Self::MAX_S).contains(&value_s) {
            Ok(Self(value_s))
        } else {
            Err(FieldError::new(
                Self::FIELD,
                format!("must be between {min_s} and {} seconds", Self::MAX_S),
            ))
        }
    }

    pub fn as_secs(self) -> i64 {
        self.0
    }

    pub fn as_time_delta(self) -> TimeDelta {
        // In range by construction: at most 86_400 seconds.
        TimeDelta::seconds(self.0)
    }
}

/// When the phone says it recorded a check-in (its own clock): at most
/// [`RecordedAt::MAX_AHEAD`] after the server's now and at most [`RecordedAt::MAX_AGE`]
/// before it.
///
/// Only used to order and show check-ins; deadlines run from receipt time (see
/// `crate::domain::deadline`), since the phone's clock is not to be trusted with safety.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct RecordedAt(DateTime<Utc>);

impl RecordedAt {
    pub const FIELD: &'static str = "recorded_at";
    /// Tolerated phone clock drift into the future.
    pub const MAX_AHEAD: TimeDelta = TimeDelta::minutes(5);
    /// Older than this is a broken clock or a replay, not a queue that waited for signal.
    pub const MAX_AGE: TimeDelta = TimeDelta::days(7);

    pub fn parse(value: DateTime<Utc>, now: DateTime<Utc>) -> Result<Self, FieldError> {
        let latest = now
            .checked_add_signed(Self::MAX_AHEAD)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let earliest = now
            .checked_sub_signed(Self::MAX_AGE)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        if value > latest {
            Err(FieldError::new(
                Self::FIELD,
                "is more than 5 minutes ahead of the server's clock; check the phone's date and time",
            ))
        } else if value < earliest {
            Err(FieldError::new(
                Self::FIELD,
                "is more than 7 days before the server's clock; check the phone's date and time",
            ))
        } else {
            Ok(Self(value))
        }
    }

    /// Parses an RFC 3339 timestamp (e.g. `2025-06-01T10:00:00Z`), then as [`Self::parse`].
    pub fn parse_rfc3339(value: &str, now: DateTime<Utc>) -> Result<Self, FieldError> {
        let parsed = DateTime::parse_from_rfc3339(value).map_err(|_| {
            FieldError::new(
                Self::FIELD,
                "must be an RFC 3339 timestamp with a time zone, e.g. 2025-06-01T10:00:00Z",
            )
        })?;
        Self::parse(parsed.with_timezone(&Utc), now)
    }

    pub fn get(self) -> DateTime<Utc> {
        self.0
    }
}

/// What the canvasser reports: all fine, or asking for help now.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum CheckinKind {
    #[default]
    Ok,
    NeedHelp,
}

impl CheckinKind {
    pub const FIELD: &'static str = "kind";

    pub fn parse(value: &str) -> Result<Self, FieldError> {
        match value {
            "ok" => Ok(Self::Ok),
            "need_help" => Ok(Self::NeedHelp),
            // Don't echo the value: it may be anything, of any length.
            _ => Err(FieldError::new(
                Self::FIELD,
                r#"must be "ok" or "need_help""#,
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::NeedHelp => "need_help",
        }
    }
}

/// A validated fix.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Position {
    pub lat: Latitude,
    pub lon: Longitude,
    pub accuracy_m: Option<AccuracyM>,
}

impl Position {
    /// Validates all three, reporting every bad field.
    pub fn parse(lat: f64, lon: f64, accuracy_m: Option<f64>) -> Result<Self, Vec<FieldError>> {
        let lat = Latitude::parse(lat);
        let lon = Longitude::parse(lon);
        let accuracy_m = accuracy_m.map(AccuracyM::parse).transpose();
        match (lat, lon, accuracy_m) {
            (Ok(lat), Ok(lon), Ok(accuracy_m)) => Ok(Self {
                lat,
                lon,
                accuracy_m,
            }),
            (lat, lon, accuracy_m) => Err([lat.err(), lon.err(), accuracy_m.err()]
                .into_iter()
                .flatten()
                .collect()),
        }
    }
}

/// Sort key for showing check-ins ("latest check-in", history): by recorded time, ties
/// broken by receipt time. Deadlines ignore this and use receipt time only.
///
/// The recorded time is clamped to the receipt time (a phone cannot have recorded a
/// check-in after we received it), and a check-in without `recorded_at` counts as recorded
/// when received. Hence an item of an offline batch never sorts after a check-in received
/// later than the batch, as long as that check-in was recorded after the batch arrived
/// (true of any live check-in from a phone whose clock is right): a fast phone clock cannot
/// make a queued check-in look newer than one that arrived after it.
///
/// In SQL: `ORDER BY MIN(recorded_at, received_at), received_at` (or store the clamped
/// value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DisplayOrder {
    // Field order is the sort order (derived `Ord`).
    recorded_at: DateTime<Utc>,
    received_at: DateTime<Utc>,
}

impl DisplayOrder {
    pub fn new(recorded_at: Option<DateTime<Utc>>, received_at: DateTime<Utc>) -> Self {
        Self {
            recorded_at: recorded_at.map_or(received_at, |r| r.min(received_at)),
            received_at,
        }
    }

    /// The recorded time to show: the phone's, clamped to the receipt time.
    pub fn recorded_at(self) -> DateTime<Utc> {
        self.recorded_at
    }

    pub fn received_at(self) -> DateTime<Utc> {
        self.received_at
    }
}

// ---------------------------------------------------------------------------------------------
// PINs

/// Outcome of the PIN presented with a check-in.
///
/// A canvasser may set a safe PIN and a duress PIN. Under coercion they check in with the
/// duress PIN: the check-in looks normal to whoever is watching, and escalates silently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PinCheck {
    /// The canvasser has no PINs; any presented PIN is ignored.
    NotSet,
    Safe,
    Duress,
    /// A PIN was presented that is neither.
    Wrong,
    /// PINs are set but none (or an empty one) was presented.
    Missing,
}

pub const PIN_MIN_DIGITS: usize = 4;
pub const PIN_MAX_DIGITS: usize = 8;

fn is_well_formed_pin(pin: &str) -> bool {
    (PIN_MIN_DIGITS..=PIN_MAX_DIGITS).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit())
}

/// Classifies a presented PIN. The matchers compare against the stored (hashed) PINs.
///
/// - A malformed PIN (not 4–8 ASCII digits, compared exactly: no trimming) is `Wrong`
///   without calling the matchers, so a huge hostile string is never hashed.
/// - Both matchers always run, so a safe and a duress PIN take the same time to check and
///   the response time cannot tell an onlooker which one was typed.
/// - Should both match (prevented by [`validate_pin_pair`]), duress wins: when in doubt, raise
///   the alarm.
pub fn classify_pin(
    has_pins: bool,
    presented: Option<&str>,
    matches_safe: impl Fn(&str) -> bool,
    matches_duress: impl Fn(&str) -> bool,
) -> PinCheck {
    if !has_pins {
        return PinCheck::NotSet;
    }
    let Some(pin) = presented.filter(|p| !p.is_empty()) else {
        return PinCheck::Missing;
    };
    if !is_well_formed_pin(pin) {
        return PinCheck::Wrong;
    }
    let safe = matches_safe(pin);
    let duress = matches_duress(pin);
    if duress {
        PinCheck::Duress
    } else if safe {
        PinCheck::Safe
    } else {
        PinCheck::Wrong
    }
}

/// Validates a new safe / duress PIN pair: each 4–8 ASCII digits, and different.
/// Messages never contain the PINs.
pub fn validate_pin_pair(safe: &str, duress: &str) -> Result<(), Vec<FieldError>> {
    const MESSAGE: &str = "must be 4 to 8 digits (0-9)";
    let mut errors = Vec::new();
    let safe_ok = is_well_formed_pin(safe);
    let duress_ok = is_well_formed_pin(duress);
    if !safe_ok {
        errors.push(FieldError::new("safe_pin", MESSAGE));
    }
    if !duress_ok {
        errors.push(FieldError::new("duress_pin", MESSAGE));
    }
    if safe_ok && duress_ok && safe == duress {
        errors.push(FieldError::new(
            "duress_pin",
            "must differ from safe_pin",
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}
