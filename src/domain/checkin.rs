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
                "is more than 5 minutes ahead of the server's clock; check the phone's date and \
                 time",
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
    (PIN_MIN_DIGITS..=PIN_MAX_DIGITS).contains(&pin.len())
        && pin.bytes().all(|b| b.is_ascii_digit())
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
        errors.push(FieldError::new("duress_pin", "must differ from safe_pin"));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;
    use std::cell::Cell;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap()
    }

    fn assert_field<T: std::fmt::Debug>(result: Result<T, FieldError>, field: &str) {
        match result {
            Ok(v) => panic!("accepted {v:?}"),
            Err(e) => assert_eq!(e.field, field, "{e:?}"),
        }
    }

    const NON_FINITE: [f64; 3] = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY];

    #[test]
    fn latitude_range() {
        for ok in [-90.0, -0.0, 0.0, 45.5, 90.0] {
            assert_eq!(Latitude::parse(ok).unwrap().get(), ok);
        }
        for bad in [-90.000_001, 90.000_001, 180.0, -1e300]
            .into_iter()
            .chain(NON_FINITE)
        {
            assert_field(Latitude::parse(bad), "lat");
        }
    }

    #[test]
    fn longitude_range() {
        for ok in [-180.0, 0.0, 13.4, 180.0] {
            assert_eq!(Longitude::parse(ok).unwrap().get(), ok);
        }
        for bad in [-180.000_001, 180.000_001, 360.0]
            .into_iter()
            .chain(NON_FINITE)
        {
            assert_field(Longitude::parse(bad), "lon");
        }
    }

    #[test]
    fn accuracy_is_finite_and_not_negative() {
        for ok in [0.0, 3.5, 10_000.0, f64::MAX] {
            assert_eq!(AccuracyM::parse(ok).unwrap().get(), ok);
        }
        // -0 is accepted as 0 and never printed as "-0".
        let zero = AccuracyM::parse(-0.0).unwrap().get();
        assert!(zero == 0.0 && zero.is_sign_positive());
        for bad in [-0.001, -5.0].into_iter().chain(NON_FINITE) {
            assert_field(AccuracyM::parse(bad), "accuracy_m");
        }
    }

    #[test]
    fn battery_range() {
        for ok in [0.0, 1.0, 55.5, 100.0] {
            assert_eq!(BatteryPct::parse(ok).unwrap().get(), ok);
        }
        for bad in [-1.0, 100.01, 255.0].into_iter().chain(NON_FINITE) {
            assert_field(BatteryPct::parse(bad), "battery_pct");
        }
    }

    #[test]
    fn interval_bounds() {
        let min = CheckinInterval::DEFAULT_MIN_S;
        assert_eq!(CheckinInterval::parse(60, min).unwrap().as_secs(), 60);
        assert_eq!(
            CheckinInterval::parse(86_400, min).unwrap().as_time_delta(),
            TimeDelta::hours(24)
        );
        for bad in [59, 0, -60, 86_401, i64::MIN, i64::MAX] {
            assert_field(CheckinInterval::parse(bad, min), "checkin_interval_s");
        }
        let e = CheckinInterval::parse(10, 300).unwrap_err();
        assert_eq!(e.message, "must be between 300 and 86400 seconds");
    }

    #[test]
    fn interval_minimum_is_at_least_one_second() {
        assert!(CheckinInterval::parse(1, 0).is_ok());
        assert!(CheckinInterval::parse(0, 0).is_err());
        assert!(CheckinInterval::parse(0, -100).is_err());
    }

    #[test]
    fn misconfigured_minimum_above_max_accepts_nothing() {
        for v in [86_400, 90_000, 100_000] {
            assert!(CheckinInterval::parse(v, 90_000).is_err());
        }
    }

    #[test]
    fn recorded_at_window() {
        let now = now();
        for ok in [
            now,
            now + TimeDelta::minutes(5),
            now - TimeDelta::days(7),
            now - TimeDelta::hours(3),
        ] {
            assert_eq!(RecordedAt::parse(ok, now).unwrap().get(), ok);
        }
        let ahead = RecordedAt::parse(now + TimeDelta::minutes(5) + TimeDelta::seconds(1), now);
        assert!(ahead.as_ref().unwrap_err().message.contains("ahead"));
        assert_field(ahead, "recorded_at");
        let old = RecordedAt::parse(now - TimeDelta::days(7) - TimeDelta::seconds(1), now);
        assert!(old.as_ref().unwrap_err().message.contains("7 days"));
        assert_field(old, "recorded_at");
    }

    #[test]
    fn recorded_at_saturates_at_the_ends_of_time() {
        let (min, max) = (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC);
        assert!(RecordedAt::parse(max, max).is_ok());
        assert!(RecordedAt::parse(min, min).is_ok());
        assert!(RecordedAt::parse(max, min).is_err());
        assert!(RecordedAt::parse(min, max).is_err());
    }

    #[test]
    fn recorded_at_from_rfc3339() {
        let now = now();
        assert_eq!(
            RecordedAt::parse_rfc3339("2025-06-01T13:58:00+02:00", now)
                .unwrap()
                .get(),
            now - TimeDelta::minutes(2)
        );
        for bad in [
            "",
            "yesterday",
            "2025-06-01 11:58:00",
            "2025-06-01T11:58:00",
        ] {
            assert_field(RecordedAt::parse_rfc3339(bad, now), "recorded_at");
        }
        assert_field(
            RecordedAt::parse_rfc3339("2025-06-01T12:06:00Z", now),
            "recorded_at",
        );
    }

    #[test]
    fn kind_names() {
        assert_eq!(CheckinKind::default(), CheckinKind::Ok);
        assert_eq!(CheckinKind::parse("ok").unwrap(), CheckinKind::Ok);
        assert_eq!(
            CheckinKind::parse("need_help").unwrap(),
            CheckinKind::NeedHelp
        );
        for bad in ["OK", "needHelp", "need-help", "", "help"] {
            assert_field(CheckinKind::parse(bad), "kind");
        }
        for kind in [CheckinKind::Ok, CheckinKind::NeedHelp] {
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json, kind.as_str());
            assert_eq!(serde_json::from_value::<CheckinKind>(json).unwrap(), kind);
        }
        assert!(serde_json::from_value::<CheckinKind>(serde_json::json!("NeedHelp")).is_err());
    }

    #[test]
    fn position_collects_every_error() {
        let p = Position::parse(52.5, 13.4, Some(8.0)).unwrap();
        assert_eq!((p.lat.get(), p.lon.get()), (52.5, 13.4));
        assert_eq!(p.accuracy_m.map(AccuracyM::get), Some(8.0));
        assert_eq!(Position::parse(52.5, 13.4, None).unwrap().accuracy_m, None);
        let fields: Vec<_> = Position::parse(f64::NAN, 200.0, Some(-1.0))
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["lat", "lon", "accuracy_m"]);
        assert_eq!(Position::parse(0.0, 200.0, None).unwrap_err().len(), 1);
    }

    #[test]
    fn values_serialize_as_plain_json() {
        let p = Position::parse(52.5, 13.4, None).unwrap();
        assert_eq!(
            serde_json::to_value(p).unwrap(),
            serde_json::json!({"lat": 52.5, "lon": 13.4, "accuracy_m": null})
        );
        let interval = CheckinInterval::parse(900, 60).unwrap();
        assert_eq!(serde_json::to_value(interval).unwrap(), 900);
    }

    // --- Display order ---

    #[test]
    fn display_orders_by_recorded_time_then_receipt() {
        let now = now();
        let early = DisplayOrder::new(Some(now - TimeDelta::minutes(30)), now);
        let late = DisplayOrder::new(Some(now - TimeDelta::minutes(10)), now);
        assert!(late > early, "same batch: recorded order");
        let same_recorded_later_receipt = DisplayOrder::new(
            Some(now - TimeDelta::minutes(10)),
            now + TimeDelta::seconds(1),
        );
        assert!(same_recorded_later_receipt > late);
        let without = DisplayOrder::new(None, now);
        assert_eq!(without.recorded_at(), now);
        assert_eq!(without.received_at(), now);
    }

    #[test]
    fn fast_phone_clock_cannot_outrank_a_later_checkin() {
        let batch_received = now();
        // The batch phone's clock is 4 minutes fast (within the 5 minutes tolerated).
        let batch_item =
            DisplayOrder::new(Some(batch_received + TimeDelta::minutes(4)), batch_received);
        assert_eq!(batch_item.recorded_at(), batch_received);
        let live = DisplayOrder::new(
            Some(batch_received + TimeDelta::minutes(1)),
            batch_received + TimeDelta::minutes(1),
        );
        assert!(live > batch_item);
    }

    // --- PINs ---

    #[test]
    fn pin_pair_rules() {
        assert_eq!(validate_pin_pair("1234", "4321"), Ok(()));
        assert_eq!(validate_pin_pair("12345678", "0000"), Ok(()));
        let fields = |safe: &str, duress: &str| -> Vec<(String, String)> {
            validate_pin_pair(safe, duress)
                .unwrap_err()
                .into_iter()
                .map(|e| (e.field, e.message))
                .collect()
        };
        let format = "must be 4 to 8 digits (0-9)".to_owned();
        assert_eq!(fields("123", "4321"), [("safe_pin".into(), format.clone())]);
        assert_eq!(
            fields("1234", "123456789"),
            [("duress_pin".into(), format.clone())]
        );
        assert_eq!(
            fields("12a4", ""),
            [
                ("safe_pin".into(), format.clone()),
                ("duress_pin".into(), format)
            ]
        );
        assert_eq!(
            fields("1234", "1234"),
            [("duress_pin".into(), "must differ from safe_pin".into())]
        );
        for bad in [" 1234", "1234 ", "１２３４", "12-34", "+1234", "1e10"] {
            assert!(validate_pin_pair(bad, "5678").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pin_errors_never_echo_the_pin() {
        for (safe, duress) in [("98765", "98765"), ("98x76", "5678"), ("1234", "98x76")] {
            for e in validate_pin_pair(safe, duress).unwrap_err() {
                assert!(!e.message.contains("987"), "{e:?}");
            }
        }
    }

    fn classify(has_pins: bool, presented: Option<&str>) -> PinCheck {
        classify_pin(has_pins, presented, |p| p == "1111", |p| p == "9999")
    }

    #[test]
    fn pin_classification() {
        assert_eq!(classify(false, None), PinCheck::NotSet);
        assert_eq!(classify(false, Some("9999")), PinCheck::NotSet);
        assert_eq!(classify(true, None), PinCheck::Missing);
        assert_eq!(classify(true, Some("")), PinCheck::Missing);
        assert_eq!(classify(true, Some("1111")), PinCheck::Safe);
        assert_eq!(classify(true, Some("9999")), PinCheck::Duress);
        assert_eq!(classify(true, Some("2222")), PinCheck::Wrong);
        assert_eq!(classify(true, Some(" 1111")), PinCheck::Wrong);
        assert_eq!(classify(true, Some("abc")), PinCheck::Wrong);
    }

    #[test]
    fn duress_wins_when_both_match() {
        assert_eq!(
            classify_pin(true, Some("1234"), |_| true, |_| true),
            PinCheck::Duress
        );
    }

    #[test]
    fn both_matchers_always_run_on_a_well_formed_pin() {
        for (pin, expected) in [
            ("1111", PinCheck::Safe),
            ("9999", PinCheck::Duress),
            ("5555", PinCheck::Wrong),
        ] {
            let calls = Cell::new(0);
            let result = classify_pin(
                true,
                Some(pin),
                |p| {
                    calls.set(calls.get() + 1);
                    p == "1111"
                },
                |p| {
                    calls.set(calls.get() + 1);
                    p == "9999"
                },
            );
            assert_eq!((result, calls.get()), (expected, 2), "{pin}");
        }
    }

    #[test]
    fn malformed_pin_is_never_hashed() {
        let huge = "1".repeat(1_000_000);
        for pin in [huge.as_str(), "12", "12ab", "123456789"] {
            let result = classify_pin(
                true,
                Some(pin),
                |_| panic!("safe matcher called"),
                |_| panic!("duress matcher called"),
            );
            assert_eq!(result, PinCheck::Wrong);
        }
    }

    // --- Properties ---

    fn any_float() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>(),
            -200.0f64..200.0,
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(-0.0),
            Just(90.0),
            Just(-90.0),
            Just(180.0),
            Just(-180.0),
            Just(100.0),
        ]
    }

    proptest! {
        #[test]
        fn float_values_accept_exactly_their_range(v in any_float()) {
            let within = |min: f64, max: f64| v.is_finite() && (min..=max).contains(&v);
            prop_assert_eq!(Latitude::parse(v).is_ok(), within(-90.0, 90.0));
            prop_assert_eq!(Longitude::parse(v).is_ok(), within(-180.0, 180.0));
            prop_assert_eq!(AccuracyM::parse(v).is_ok(), v.is_finite() && v >= 0.0);
            prop_assert_eq!(BatteryPct::parse(v).is_ok(), within(0.0, 100.0));
            if let Ok(lat) = Latitude::parse(v) {
                prop_assert_eq!(lat.get(), v);
            }
        }

        #[test]
        fn interval_accepts_exactly_its_range(
            v in prop_oneof![any::<i64>(), -10i64..100_000],
            min in prop_oneof![any::<i64>(), -10i64..1_000],
        ) {
            let expected = v >= min.max(1) && v <= CheckinInterval::MAX_S;
            prop_assert_eq!(CheckinInterval::parse(v, min).is_ok(), expected);
        }

        #[test]
        fn recorded_at_accepts_exactly_its_window(
            now_s in -100_000_000_000i64..100_000_000_000,
            offset_s in prop_oneof![any::<i64>(), -700_000i64..400],
        ) {
            let Some(now) = DateTime::from_timestamp(now_s, 0) else { return Ok(()) };
            let Some(value) = DateTime::from_timestamp(now_s.saturating_add(offset_s), 0) else {
                return Ok(());
            };
            let expected = (-7 * 86_400..=300).contains(&offset_s);
            prop_assert_eq!(RecordedAt::parse(value, now).is_ok(), expected);
        }

        #[test]
        fn rfc3339_never_panics(s in "\\PC{0,40}", digits in "[0-9T:Z+.-]{0,30}") {
            let _ = RecordedAt::parse_rfc3339(&s, now());
            let _ = RecordedAt::parse_rfc3339(&digits, now());
        }

        #[test]
        fn kind_parse_never_panics(s in "\\PC{0,20}") {
            let parsed = CheckinKind::parse(&s);
            prop_assert_eq!(parsed.is_ok(), s == "ok" || s == "need_help");
        }

        #[test]
        fn pin_pair_accepts_exactly_distinct_well_formed_pins(
            safe in prop_oneof!["[0-9]{0,10}", "\\PC{0,10}"],
            duress in prop_oneof!["[0-9]{0,10}", "\\PC{0,10}"],
        ) {
            let well_formed =
                |p: &str| (4..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_digit());
            let expected = well_formed(&safe) && well_formed(&duress) && safe != duress;
            prop_assert_eq!(validate_pin_pair(&safe, &duress).is_ok(), expected);
            prop_assert!(validate_pin_pair(&safe, &safe).is_err());
        }

        #[test]
        fn classify_is_consistent_with_the_matchers(
            has_pins in any::<bool>(),
            presented in proptest::option::of(prop_oneof!["[0-9]{0,9}", "\\PC{0,9}"]),
            safe in "[0-9]{4,8}",
            duress in "[0-9]{4,8}",
        ) {
            let presented = presented.as_deref();
            let result = classify_pin(has_pins, presented, |p| p == safe, |p| p == duress);
            let expected = match presented {
                _ if !has_pins => PinCheck::NotSet,
                None | Some("") => PinCheck::Missing,
                Some(p) if p == duress => PinCheck::Duress,
                Some(p) if p == safe => PinCheck::Safe,
                Some(_) => PinCheck::Wrong,
            };
            prop_assert_eq!(result, expected);
        }

        /// An item of an offline batch never sorts after a check-in that was received later
        /// and recorded (by a right clock) after the batch arrived, whatever the batch
        /// phone's clock said.
        #[test]
        fn batch_never_outranks_a_later_live_checkin(
            batch_recorded in proptest::collection::vec(
                proptest::option::of(-700_000i64..=300), 1..10),
            live_after_s in 1i64..100_000,
            live_recorded_after_batch_s in proptest::option::of(0i64..100_000),
        ) {
            let batch_received = now();
            let live_received = batch_received + TimeDelta::seconds(live_after_s);
            let live = DisplayOrder::new(
                live_recorded_after_batch_s.map(|s| batch_received + TimeDelta::seconds(s)),
                live_received,
            );
            for offset in batch_recorded {
                let item = DisplayOrder::new(
                    offset.map(|s| batch_received + TimeDelta::seconds(s)),
                    batch_received,
                );
                prop_assert!(item < live, "{item:?} >= {live:?}");
                prop_assert!(item.recorded_at() <= item.received_at());
            }
        }

        /// Among check-ins whose phone clocks were not ahead, display order is recorded order.
        #[test]
        fn display_order_follows_recorded_time(
            a_recorded in -700_000i64..0,
            b_recorded in -700_000i64..0,
            a_received in 0i64..100,
            b_received in 0i64..100,
        ) {
            let at = |s: i64| now() + TimeDelta::seconds(s);
            let a = DisplayOrder::new(Some(at(a_recorded)), at(a_received));
            let b = DisplayOrder::new(Some(at(b_recorded)), at(b_received));
            if a_recorded < b_recorded {
                prop_assert!(a < b);
            }
        }
    }
}
