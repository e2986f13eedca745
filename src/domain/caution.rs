//! The do-not-knock register's rules: levels, what a caution may say, who may mark, see and
//! retire one, and the geometry (a circle against a position or an outing's area), with the
//! grid cells that let storage find a position's cautions without a scan.

use geo::{BoundingRect, Distance, Haversine, Point};

use super::account::Role;
use super::area::{self, Area};
use super::field_error::FieldErrors;
use super::ids::{OrgId, UserId};

pub const MIN_RADIUS_M: f64 = 10.0;
pub const MAX_RADIUS_M: f64 = 500.0;
pub const MAX_REASON_CHARS: usize = 500;
/// A caution lapses after this unless renewed: what was true of a door in spring may not be
/// by the autumn.
pub const DEFAULT_LIFETIME_MS: i64 = 90 * 86_400_000;
/// The longest an author may set at once (renewal extends again).
pub const MAX_LIFETIME_MS: i64 = 366 * 86_400_000;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    serde::Serialize,
    utoipa::ToSchema,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[serde(rename_all = "snake_case")]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum Level {
    DoNotKnock,
    PairsOnly,
    Note,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::DoNotKnock => "do_not_knock",
            Level::PairsOnly => "pairs_only",
            Level::Note => "note",
        }
    }

    pub fn parse(raw: &str) -> Option<Level> {
        [Level::DoNotKnock, Level::PairsOnly, Level::Note]
            .into_iter()
            .find(|l| l.as_str() == raw)
    }
}

/// A validated new caution.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCaution {
    pub lat: f64,
    pub lon: f64,
    pub radius_m: f64,
    pub level: Level,
    pub reason: String,
    pub expires_at_ms: i64,
}

/// Checks a request to mark a caution; `expires_at_ms` defaults to 90 days from `now_ms`.
pub fn parse_new(
    lat: f64,
    lon: f64,
    radius_m: f64,
    level: &str,
    reason: &str,
    expires_at_ms: Option<i64>,
    now_ms: i64,
) -> Result<NewCaution, Vec<super::field_error::FieldError>> {
    let mut errors = FieldErrors::new();
    if !(-90.0..=90.0).contains(&lat) || !lat.is_finite() {
        errors.push("lat", "must be between -90 and 90");
    }
    if !(-180.0..=180.0).contains(&lon) || !lon.is_finite() {
        errors.push("lon", "must be between -180 and 180");
    }
    if !(MIN_RADIUS_M..=MAX_RADIUS_M).contains(&radius_m) {
        errors.push("radius_m", "must be between 10 and 500");
    }
    let level = Level::parse(level);
    if level.is_none() {
        errors.push("level", "must be one of do_not_knock, pairs_only, note");
    }
    let reason = super::incident::parse_text(&mut errors, "reason", reason, MAX_REASON_CHARS);
    let expires_at_ms = expires_at_ms.unwrap_or(now_ms + DEFAULT_LIFETIME_MS);
    if expires_at_ms <= now_ms {
        errors.push("expires_at", "must be in the future");
    } else if expires_at_ms > now_ms + MAX_LIFETIME_MS {
        errors.push("expires_at", "must be at most a year ahead (renew it then)");
    }
    match (level, reason) {
        (Some(level), Some(reason)) if errors.is_empty() => Ok(NewCaution {
            lat,
            lon,
            radius_m,
            level,
            reason,
            expires_at_ms,
        }),
        _ => Err(errors.0),
    }
}

/// Organisers of the organisation and its assigned police contacts mark cautions.
pub fn may_mark(role: Role, viewer_org: Option<OrgId>, police_orgs: &[OrgId], org: OrgId) -> bool {
    match role {
        Role::Organiser => viewer_org == Some(org),
        Role::Police => police_orgs.contains(&org),
        Role::Canvasser | Role::Admin => false,
    }
}

/// Members of the organisation (canvassers and organisers) and its police contacts see them.
pub fn may_see(role: Role, viewer_org: Option<OrgId>, police_orgs: &[OrgId], org: OrgId) -> bool {
    match role {
        Role::Organiser | Role::Canvasser => viewer_org == Some(org),
        Role::Police => police_orgs.contains(&org),
        Role::Admin => false,
    }
}

/// Organisers of the organisation, and whoever marked it, retire or renew a caution.
pub fn may_retire(
    viewer: UserId,
    role: Role,
    viewer_org: Option<OrgId>,
    org: OrgId,
    author: UserId,
) -> bool {
    viewer == author || (role == Role::Organiser && viewer_org == Some(org))
}

/// A caution's circle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Circle {
    pub lat: f64,
    pub lon: f64,
    pub radius_m: f64,
}

/// Whether a position lies within the circle.
pub fn covers(circle: &Circle, lat: f64, lon: f64) -> bool {
    lat.is_finite()
        && lon.is_finite()
        && Haversine.distance(Point::new(circle.lon, circle.lat), Point::new(lon, lat))
            <= circle.radius_m
}

/// Whether the circle lies within or touches an outing's area.
pub fn touches(circle: &Circle, area: &Area) -> bool {
    area::contains(area, circle.lat, circle.lon, Some(circle.radius_m))
}

/// Grid cells are 0.001° of latitude by 0.001° of longitude (about 111 m by 70 m in
/// Britain): small enough that a check-in's own cell holds only the few cautions around it
/// (10,000 over a town's 100 km² put about four in a cell), large enough that a 500 m
/// caution is indexed under at most a few hundred. A cell is one integer: row and column
/// packed.
pub const CELL_DEGREES: f64 = 0.001;
const COLUMNS: i64 = 360_001;

fn row_of(lat: f64) -> i64 {
    ((lat.clamp(-90.0, 90.0) + 90.0) / CELL_DEGREES).floor() as i64
}

fn column_of(lon: f64) -> i64 {
    ((lon.clamp(-180.0, 180.0) + 180.0) / CELL_DEGREES).floor() as i64
}

/// The cell a position lies in.
pub fn cell_of(lat: f64, lon: f64) -> i64 {
    row_of(lat) * COLUMNS + column_of(lon)
}

/// The cells of a box (south-west and north-east corners), row by row; `None` when it spans
/// more than `max` cells (the caller then filters the organisation's cautions directly).
fn cells_of_box(south: f64, west: f64, north: f64, east: f64, max: usize) -> Option<Vec<i64>> {
    let (r0, r1) = (row_of(south), row_of(north));
    let (c0, c1) = (column_of(west), column_of(east));
    let count = usize::try_from((r1 - r0 + 1) * (c1 - c0 + 1)).ok()?;
    if count > max {
        return None;
    }
    Some(
        (r0..=r1)
            .flat_map(|r| (c0..=c1).map(move |c| r * COLUMNS + c))
            .collect(),
    )
}

/// Degrees of latitude and longitude that `metres` spans at `lat` (generously: the box must
/// hold the whole circle).
fn degrees_for(metres: f64, lat: f64) -> (f64, f64) {
    let per_degree = Haversine.radius().to_radians();
    let dlat = metres / per_degree;
    let cos = lat.to_radians().cos().abs().max(0.01);
    (dlat * 1.01, (dlat / cos) * 1.01)
}

/// Every cell the circle touches: what storage indexes a caution under (a 500 m circle spans
/// at most 11 × 17 cells in Britain).
pub fn cells_of_circle(circle: &Circle) -> Vec<i64> {
    let (dlat, dlon) = degrees_for(circle.radius_m, circle.lat);
    cells_of_box(
        circle.lat - dlat,
        circle.lon - dlon,
        circle.lat + dlat,
        circle.lon + dlon,
        usize::MAX,
    )
    .unwrap_or_default()
}

/// The cells an area's bounding box (grown by the largest radius) covers, or `None` when
/// there are more than `max`.
pub fn cells_near_area(area: &Area, max: usize) -> Option<Vec<i64>> {
    let (south, west, north, east) = match area {
        Area::Circle { center, radius_m } => {
            let (dlat, dlon) = degrees_for(radius_m + MAX_RADIUS_M, center.y());
            (
                center.y() - dlat,
                center.x() - dlon,
                center.y() + dlat,
                center.x() + dlon,
            )
        }
        Area::Polygons { polygons, .. } => {
            let rect = polygons.bounding_rect()?;
            let mid = (rect.min().y + rect.max().y) / 2.0;
            let (dlat, dlon) = degrees_for(MAX_RADIUS_M, mid);
            (
                rect.min().y - dlat,
                rect.min().x - dlon,
                rect.max().y + dlat,
                rect.max().x + dlon,
            )
        }
    };
    cells_of_box(south, west, north, east, max)
}

/// The cells within `metres` of a position, or `None` when there are more than `max`.
pub fn cells_near(lat: f64, lon: f64, metres: f64, max: usize) -> Option<Vec<i64>> {
    let (dlat, dlon) = degrees_for(metres, lat);
    cells_of_box(lat - dlat, lon - dlon, lat + dlat, lon + dlon, max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000_000;

    #[test]
    fn a_valid_caution_gets_ninety_days() {
        let c = parse_new(
            51.5,
            -0.12,
            50.0,
            "do_not_knock",
            " Dog at the gate ",
            None,
            NOW,
        )
        .unwrap();
        assert_eq!(c.level, Level::DoNotKnock);
        assert_eq!(c.reason, "Dog at the gate");
        assert_eq!(c.expires_at_ms, NOW + DEFAULT_LIFETIME_MS);
    }

    #[test]
    fn each_bad_field_is_named() {
        let fields = |r: Result<NewCaution, Vec<super::super::field_error::FieldError>>| {
            r.unwrap_err()
                .into_iter()
                .map(|e| e.field)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            fields(parse_new(91.0, 0.0, 50.0, "note", "x", None, NOW)),
            ["lat"]
        );
        assert_eq!(
            fields(parse_new(0.0, 181.0, 50.0, "note", "x", None, NOW)),
            ["lon"]
        );
        assert_eq!(
            fields(parse_new(0.0, 0.0, 9.0, "note", "x", None, NOW)),
            ["radius_m"]
        );
        assert_eq!(
            fields(parse_new(0.0, 0.0, 501.0, "note", "x", None, NOW)),
            ["radius_m"]
        );
        assert_eq!(
            fields(parse_new(0.0, 0.0, 50.0, "avoid", "x", None, NOW)),
            ["level"]
        );
        assert_eq!(
            fields(parse_new(0.0, 0.0, 50.0, "note", " ", None, NOW)),
            ["reason"]
        );
        let long = "x".repeat(501);
        assert_eq!(
            fields(parse_new(0.0, 0.0, 50.0, "note", &long, None, NOW)),
            ["reason"]
        );
        assert_eq!(
            fields(parse_new(0.0, 0.0, 50.0, "note", "x", Some(NOW - 1), NOW)),
            ["expires_at"]
        );
        assert_eq!(
            fields(parse_new(
                0.0,
                0.0,
                50.0,
                "note",
                "x",
                Some(NOW + 400 * 86_400_000),
                NOW
            )),
            ["expires_at"]
        );
        assert!(parse_new(f64::NAN, 0.0, 50.0, "note", "x", None, NOW).is_err());
    }

    #[test]
    fn who_may_mark_see_and_retire() {
        let (org, other) = (OrgId::new(), OrgId::new());
        let (author, someone) = (UserId::new(), UserId::new());
        assert!(may_mark(Role::Organiser, Some(org), &[], org));
        assert!(!may_mark(Role::Organiser, Some(other), &[], org));
        assert!(!may_mark(Role::Canvasser, Some(org), &[], org));
        assert!(may_mark(Role::Police, None, &[org], org));
        assert!(!may_mark(Role::Police, None, &[other], org));
        assert!(!may_mark(Role::Admin, None, &[], org));
        assert!(may_see(Role::Canvasser, Some(org), &[], org));
        assert!(!may_see(Role::Canvasser, Some(other), &[], org));
        assert!(may_see(Role::Police, None, &[org], org));
        assert!(!may_see(Role::Admin, None, &[], org));
        assert!(may_retire(author, Role::Police, None, org, author));
        assert!(may_retire(someone, Role::Organiser, Some(org), org, author));
        assert!(!may_retire(
            someone,
            Role::Organiser,
            Some(other),
            org,
            author
        ));
        assert!(!may_retire(
            someone,
            Role::Canvasser,
            Some(org),
            org,
            author
        ));
    }

    #[test]
    fn a_circle_covers_positions_within_its_radius() {
        let c = Circle {
            lat: 51.5,
            lon: -0.12,
            radius_m: 100.0,
        };
        assert!(covers(&c, 51.5, -0.12));
        // 0.0008° of latitude is about 89 m; 0.001° about 111 m.
        assert!(covers(&c, 51.5008, -0.12));
        assert!(!covers(&c, 51.501, -0.12));
        assert!(!covers(&c, f64::NAN, -0.12));
    }

    #[test]
    fn a_circle_touches_an_area_it_overlaps_or_lies_in() {
        let square = area::parse_area(
            &json!({"type": "Polygon", "coordinates": [[[-0.13, 51.49], [-0.11, 51.49],
                [-0.11, 51.51], [-0.13, 51.51], [-0.13, 51.49]]]}),
            100,
        )
        .unwrap();
        let inside = Circle {
            lat: 51.5,
            lon: -0.12,
            radius_m: 20.0,
        };
        // 51.512 is about 222 m north of the edge at 51.51.
        let near = Circle {
            lat: 51.512,
            lon: -0.12,
            radius_m: 250.0,
        };
        let far = Circle {
            lat: 51.512,
            lon: -0.12,
            radius_m: 150.0,
        };
        assert!(touches(&inside, &square));
        assert!(touches(&near, &square));
        assert!(!touches(&far, &square));
    }

    #[test]
    fn a_position_finds_every_circle_that_covers_it_in_its_own_cell() {
        // Wherever a covered position lies, its cell is one the circle was indexed under.
        for (lat, lon, radius) in [
            (51.5, -0.12, 500.0),
            (51.505, -0.1249, 10.0),
            (60.15, -1.14, 500.0),
            (-33.86, 151.2, 300.0),
            (0.0, 0.0, 500.0),
        ] {
            let circle = Circle {
                lat,
                lon,
                radius_m: radius,
            };
            let cells = cells_of_circle(&circle);
            assert!(cells.len() <= 250, "{} cells", cells.len());
            for i in 0..72 {
                let bearing = f64::from(i) * 5.0_f64.to_radians();
                for fraction in [0.0, 0.5, 0.99] {
                    let d = radius * fraction;
                    let (dlat, dlon) = degrees_for(d, lat);
                    let (plat, plon) = (
                        lat + dlat / 1.01 * bearing.cos(),
                        lon + dlon / 1.01 * bearing.sin(),
                    );
                    if covers(&circle, plat, plon) {
                        assert!(
                            cells.contains(&cell_of(plat, plon)),
                            "{lat},{lon} r{radius} at {plat},{plon}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn an_area_lists_the_cells_its_cautions_can_be_in_unless_there_are_too_many() {
        let square = area::parse_area(
            &json!({"type": "Polygon", "coordinates": [[[-0.13, 51.49], [-0.11, 51.49],
                [-0.11, 51.51], [-0.13, 51.51], [-0.13, 51.49]]]}),
            100,
        )
        .unwrap();
        let cells = cells_near_area(&square, 2_000).unwrap();
        let edge = Circle {
            lat: 51.512,
            lon: -0.12,
            radius_m: 250.0,
        };
        assert!(cells_of_circle(&edge).iter().any(|c| cells.contains(c)));
        assert!(cells_near_area(&square, 3).is_none());
        assert!(cells_near(51.5, -0.12, 1_000.0, 2_000)
            .unwrap()
            .contains(&cell_of(51.5, -0.12)));
        assert!(cells_near(51.5, -0.12, 5_500.0, 2_000).is_none());
    }
}
