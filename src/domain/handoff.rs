//! Hand-off links: the rules of a capability URL that shows one alert to the police without an
//! account. Pure: the token's shape and hash, when a link stops working, and the geometry of
//! the page's map (a plain projection into an SVG frame; no tiles, nothing fetched).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

/// Random bytes in a token: 256 bits (the contract asks for at least 128).
pub const TOKEN_BYTES: usize = 32;

/// Characters of a token as it appears in a URL: base64url of [`TOKEN_BYTES`], no padding.
pub const TOKEN_CHARS: usize = 43;

/// A link works at most this long after it was made.
pub const LIFETIME_MS: i64 = 24 * 3_600_000;

/// ... and at most this long after its alert was resolved.
pub const AFTER_RESOLVED_MS: i64 = 3_600_000;

/// A token made from `bytes` (the caller draws them from a CSPRNG): base64url, no padding.
pub fn token_from_bytes(bytes: &[u8; TOKEN_BYTES]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `raw` has the shape of a token (length and alphabet): anything else names no link
/// and is answered like an unknown one, without a lookup. The last character of 32 bytes in
/// base64url carries 2 bits of padding zeros, so only 16 of the 64 characters can end one.
pub fn is_token(raw: &str) -> bool {
    raw.len() == TOKEN_CHARS
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && URL_SAFE_NO_PAD
            .decode(raw)
            .is_ok_and(|bytes| bytes.len() == TOKEN_BYTES)
}

/// What is stored for a token: its SHA-256, hex. The token has 256 random bits, so a fast hash
/// is enough: nobody can search for a preimage, and a copy of the table opens nothing.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The expiry stored with a link made at `created_at`: the 24-hour cap.
pub fn stored_expiry(created_at: i64) -> i64 {
    created_at.saturating_add(LIFETIME_MS)
}

/// When a link stops working: its stored cap, or an hour after its alert was resolved,
/// whichever is first. Worked out when the link is used, so resolving the alert needs no
/// write to the link.
pub fn expires_at(stored_expires_at: i64, alert_resolved_at: Option<i64>) -> i64 {
    match alert_resolved_at {
        Some(resolved) => stored_expires_at.min(resolved.saturating_add(AFTER_RESOLVED_MS)),
        None => stored_expires_at,
    }
}

/// Whether a link opens the page at `now`: not revoked and not expired.
pub fn is_live(
    stored_expires_at: i64,
    revoked_at: Option<i64>,
    alert_resolved_at: Option<i64>,
    now: i64,
) -> bool {
    revoked_at.is_none() && now < expires_at(stored_expires_at, alert_resolved_at)
}

/// "just now", "45 s ago", "12 min ago", "3 h 5 min ago", "2 d ago": how old a fix is.
pub fn age_text(age_ms: i64) -> String {
    let s = age_ms.max(0) / 1000;
    match s {
        0..=4 => "just now".to_owned(),
        5..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86_399 => match (s % 3600) / 60 {
            0 => format!("{} h ago", s / 3600),
            m => format!("{} h {m} min ago", s / 3600),
        },
        _ => format!("{} d ago", s / 86_400),
    }
}

/// Metres per degree of latitude (and of longitude at the equator), for a local map.
const METRES_PER_DEGREE: f64 = 111_320.0;

/// A local map frame: lon/lat projected equirectangularly around the middle latitude (exact
/// enough over the few kilometres of an outing), fitted into `width` × `height` SVG units
/// with `pad` units of margin, north up, the same scale both ways.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frame {
    pub width: f64,
    pub height: f64,
    /// SVG units per metre.
    pub scale: f64,
    /// The point at the frame's centre.
    centre_lat: f64,
    centre_lon: f64,
    /// cos of the centre latitude: metres per degree of longitude / metres per degree of lat.
    cos_lat: f64,
}

/// A point in the frame, in SVG units (y grows downwards).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Xy {
    pub x: f64,
    pub y: f64,
}

impl Frame {
    /// The frame that shows every one of `points` (lat, lon), and at least `min_span_m`
    /// metres across in each direction. `None` when there is no finite point.
    pub fn fit(
        points: &[(f64, f64)],
        min_span_m: f64,
        width: f64,
        height: f64,
        pad: f64,
    ) -> Option<Frame> {
        let finite: Vec<(f64, f64)> = points
            .iter()
            .copied()
            .filter(|(lat, lon)| {
                lat.is_finite() && lon.is_finite() && lat.abs() <= 90.0 && lon.abs() <= 180.0
            })
            .collect();
        let first = finite.first()?;
        let (mut min_lat, mut max_lat, mut min_lon, mut max_lon) =
            (first.0, first.0, first.1, first.1);
        for &(lat, lon) in &finite {
            min_lat = min_lat.min(lat);
            max_lat = max_lat.max(lat);
            min_lon = min_lon.min(lon);
            max_lon = max_lon.max(lon);
        }
        let centre_lat = (min_lat + max_lat) / 2.0;
        let centre_lon = (min_lon + max_lon) / 2.0;
        // Near the poles the projection means nothing; keep the arithmetic finite.
        let cos_lat = centre_lat.to_radians().cos().max(0.01);
        let span_y = ((max_lat - min_lat) * METRES_PER_DEGREE).max(min_span_m.max(1.0));
        let span_x = ((max_lon - min_lon) * METRES_PER_DEGREE * cos_lat).max(min_span_m.max(1.0));
        let inner_w = (width - 2.0 * pad).max(1.0);
        let inner_h = (height - 2.0 * pad).max(1.0);
        let scale = (inner_w / span_x).min(inner_h / span_y);
        Some(Frame {
            width,
            height,
            scale,
            centre_lat,
            centre_lon,
            cos_lat,
        })
    }

    pub fn project(&self, lat: f64, lon: f64) -> Xy {
        let dx = (lon - self.centre_lon) * METRES_PER_DEGREE * self.cos_lat;
        let dy = (lat - self.centre_lat) * METRES_PER_DEGREE;
        Xy {
            x: self.width / 2.0 + dx * self.scale,
            y: self.height / 2.0 - dy * self.scale,
        }
    }

    /// A scale bar no longer than `max_units`: a round length (1, 2 or 5 × 10ⁿ metres) and
    /// its length in SVG units.
    pub fn scale_bar(&self, max_units: f64) -> (f64, f64) {
        let max_m = max_units / self.scale;
        let mut metres = 1.0;
        for exponent in 0..8 {
            for step in [1.0, 2.0, 5.0] {
                let candidate = step * 10f64.powi(exponent);
                if candidate <= max_m {
                    metres = candidate;
                }
            }
        }
        (metres, metres * self.scale)
    }
}

/// A scale bar's label: "200 m", "1 km", "2.5 km" never arises (the bar is 1, 2 or 5 × 10ⁿ).
pub fn distance_text(metres: f64) -> String {
    if metres >= 1000.0 {
        format!("{} km", metres / 1000.0)
    } else {
        format!("{metres} m")
    }
}

/// The degrees of latitude `metres` span (for drawing a circle area's radius).
pub fn metres_in_lat_degrees(metres: f64) -> f64 {
    metres / METRES_PER_DEGREE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bits_of_base64url() {
        let token = token_from_bytes(&[0xAB; TOKEN_BYTES]);
        assert_eq!(token.len(), TOKEN_CHARS);
        assert!(is_token(&token));
        // 32 random bytes give a different token, of the same shape.
        let other = token_from_bytes(&[0x01; TOKEN_BYTES]);
        assert_ne!(token, other);
        assert!(is_token(&other));
    }

    #[test]
    fn anything_else_is_not_a_token() {
        let token = token_from_bytes(&[7; TOKEN_BYTES]);
        for bad in [
            String::new(),
            token[..42].to_owned(),
            format!("{token}A"),
            format!("{}=", &token[..42]),
            format!("{}+", &token[..42]),
            format!("{}/", &token[..42]),
            format!("{}.", &token[..42]),
            format!("{}é", &token[..41]),
            "../../../../etc/passwd/aaaaaaaaaaaaaaaaaaaaaaaa".to_owned(),
        ] {
            assert!(!is_token(&bad), "{bad:?}");
        }
        // The last character of 32 bytes has two zero bits: 'B' (000001) cannot end one.
        let mut not_canonical = token[..42].to_owned();
        not_canonical.push('B');
        assert!(!is_token(&not_canonical));
    }

    #[test]
    fn the_hash_is_sha256_hex_and_not_the_token() {
        let token = token_from_bytes(&[9; TOKEN_BYTES]);
        let hash = token_hash(&token);
        assert_eq!(hash.len(), 64);
        assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!hash.contains(&token));
        assert_eq!(hash, token_hash(&token));
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_link_expires_after_24_hours_or_an_hour_after_resolution() {
        let made = 1_000_000;
        let stored = stored_expiry(made);
        assert_eq!(stored, made + 24 * 3_600_000);
        assert_eq!(expires_at(stored, None), stored);
        // Resolved 2 h after it was made: 3 h after.
        assert_eq!(
            expires_at(stored, Some(made + 2 * 3_600_000)),
            made + 3 * 3_600_000
        );
        // Resolved 23.5 h after it was made: the 24-hour cap comes first.
        assert_eq!(
            expires_at(stored, Some(made + 23 * 3_600_000 + 1_800_000)),
            stored
        );
        // Resolved before it was made (a link for a resolved alert): an hour after that.
        assert_eq!(expires_at(stored, Some(made - 600_000)), made + 3_000_000);
    }

    #[test]
    fn live_until_expiry_and_never_after_revocation() {
        let made = 0;
        let stored = stored_expiry(made);
        assert!(is_live(stored, None, None, made));
        assert!(is_live(stored, None, None, stored - 1));
        assert!(!is_live(stored, None, None, stored), "expiry is exclusive");
        assert!(!is_live(stored, Some(made + 1), None, made + 2));
        let resolved = made + 600_000;
        assert!(is_live(stored, None, Some(resolved), resolved + 3_599_999));
        assert!(!is_live(stored, None, Some(resolved), resolved + 3_600_000));
    }

    #[test]
    fn ages_read_plainly() {
        assert_eq!(age_text(-5), "just now");
        assert_eq!(age_text(4_999), "just now");
        assert_eq!(age_text(45_000), "45 s ago");
        assert_eq!(age_text(12 * 60_000 + 30_000), "12 min ago");
        assert_eq!(age_text(3_600_000), "1 h ago");
        assert_eq!(age_text(3 * 3_600_000 + 5 * 60_000), "3 h 5 min ago");
        assert_eq!(age_text(2 * 86_400_000 + 1), "2 d ago");
    }

    #[test]
    fn the_frame_shows_every_point_north_up_at_one_scale() {
        // Two points ~1.1 km apart north-south in London.
        let points = [(51.50, -0.13), (51.51, -0.12)];
        let frame = Frame::fit(&points, 100.0, 600.0, 400.0, 20.0).unwrap();
        for (lat, lon) in points {
            let p = frame.project(lat, lon);
            assert!((20.0 - 1e-9..=580.0 + 1e-9).contains(&p.x), "{p:?}");
            assert!((20.0 - 1e-9..=380.0 + 1e-9).contains(&p.y), "{p:?}");
        }
        let south = frame.project(51.50, -0.13);
        let north = frame.project(51.51, -0.13);
        assert!(north.y < south.y, "north is up");
        let west = frame.project(51.50, -0.13);
        let east = frame.project(51.50, -0.12);
        assert!(east.x > west.x, "east is right");
        // Same scale both ways: 0.01° of longitude is cos(51.5°) of 0.01° of latitude.
        let ratio = (east.x - west.x) / (south.y - north.y);
        assert!(
            (ratio - 51.505f64.to_radians().cos()).abs() < 1e-3,
            "{ratio}"
        );
        // The centre maps to the middle.
        let mid = frame.project(51.505, -0.125);
        assert!((mid.x - 300.0).abs() < 1e-6 && (mid.y - 200.0).abs() < 1e-6);
    }

    #[test]
    fn one_point_gets_the_minimum_span_and_nonsense_is_left_out() {
        let frame = Frame::fit(
            &[(51.5, -0.1), (f64::NAN, 0.0), (95.0, 0.0)],
            200.0,
            600.0,
            400.0,
            20.0,
        )
        .unwrap();
        // 200 m fill the 360 units of inner height.
        assert!((frame.scale - 360.0 / 200.0).abs() < 1e-9);
        let p = frame.project(51.5, -0.1);
        assert!((p.x - 300.0).abs() < 1e-9 && (p.y - 200.0).abs() < 1e-9);
        assert!(Frame::fit(&[], 200.0, 600.0, 400.0, 20.0).is_none());
        assert!(Frame::fit(&[(f64::INFINITY, 0.0)], 200.0, 600.0, 400.0, 20.0).is_none());
    }

    #[test]
    fn the_scale_bar_is_round_and_fits() {
        let frame = Frame::fit(&[(51.5, -0.1)], 1000.0, 600.0, 400.0, 20.0).unwrap();
        // 0.36 units per metre: 150 units hold 416 m, so the bar is 200 m.
        let (metres, units) = frame.scale_bar(150.0);
        assert_eq!(metres, 200.0);
        assert!((units - 72.0).abs() < 1e-9);
        assert_eq!(distance_text(metres), "200 m");
        assert_eq!(distance_text(2000.0), "2 km");
        assert!((metres_in_lat_degrees(111_320.0) - 1.0).abs() < 1e-12);
    }
}
