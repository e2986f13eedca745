//! The geofenced area of an outing, and whether a reported position lies in it.
//!
//! An area arrives as JSON and is one of:
//! - a GeoJSON (RFC 7946) `Polygon` or `MultiPolygon` geometry, positions as `[lon, lat]`;
//! - `{"type": "Circle", "center": [lon, lat], "radius_m": R}` (not GeoJSON, our own shape).
//!
//! [`parse_area`] validates everything a hostile client could send wrong and reports every
//! problem it finds as a [`FieldError`] rooted at `area` (e.g. `area.coordinates[0][3]`), so the
//! client can point at the offending position. The work it does is bounded by `max_vertices`
//! (see [`parse_area`]) and by a cap on the number of errors reported.
//!
//! Geometry is interpreted in plain lon/lat (planar edges between positions, as GeoJSON does);
//! areas crossing the antimeridian are not supported (they are read as going the long way
//! round) but never cause a panic.

use geo::algorithm::validation::{InvalidPolygon, RingRole};
use geo::coordinate_position::CoordPos;
use geo::dimensions::Dimensions;
use geo::kernels::{Kernel, Orientation, RobustKernel};
use geo::{
    Coord, Distance, Haversine, Intersects, LineString, MultiPolygon, Point, Polygon,
    PreparedGeometry, Relate, Validation,
};
use serde_json::{json, Map, Value};

use crate::domain::field_error::FieldError;

/// Largest accepted circle radius: an outing covers a neighbourhood, not a region.
pub const MAX_CIRCLE_RADIUS_M: f64 = 50_000.0;

/// Most linear rings (exteriors and holes, over all polygons) in an area. Checking that
/// holes don't overlap, and that polygons don't, is quadratic in their number with a high
/// constant (a DE-9IM relate per pair); 100 rings is far more than any canvassing turf
/// needs, and keeps that check to tens of milliseconds.
pub const MAX_RINGS: usize = 100;

/// Stop collecting errors past this many: a hostile body with a million bad rings must not
/// produce a million-entry error response (or the work of building it).
const MAX_REPORTED_ERRORS: usize = 20;

/// Unknown member names are echoed in the error's field path; keep that path short.
const MAX_ECHOED_KEY_CHARS: usize = 64;

/// Which GeoJSON type the client sent, so [`to_geojson`] gives back the same type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolygonKind {
    /// `"type": "Polygon"`: [`Area::Polygons`] then holds exactly one polygon.
    Polygon,
    /// `"type": "MultiPolygon"`.
    MultiPolygon,
}

/// A validated outing area.
///
/// A single `Polygon` is stored as a one-element `MultiPolygon` (so containment code has one
/// path) and `kind` remembers what the client sent. Positions are in geo's `x = lon, y = lat`.
/// Altitudes and a `bbox` member are accepted on input but not kept: they mean nothing to a
/// 2D geofence.
#[derive(Debug, Clone, PartialEq)]
pub enum Area {
    Polygons {
        polygons: MultiPolygon<f64>,
        kind: PolygonKind,
    },
    Circle {
        center: Point<f64>,
        radius_m: f64,
    },
}

impl serde::Serialize for Area {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        to_geojson(self).serialize(serializer)
    }
}

/// Parses and validates an `area` JSON value (see the module docs for the accepted shapes).
///
/// `max_vertices` caps the total number of positions over all rings (closing positions
/// included), and [`MAX_RINGS`] the rings; both are counted from array lengths before any
/// position is looked at. Together they bound the cost of the validity
/// check, which is quadratic in the vertices of a ring (geo's simplicity test) and in the
/// number of rings: keep `max_vertices` in the low thousands. (Measured, release build:
/// about 60-90 ms for a 2,000-vertex ring or for 100 polygons all touching at one point.)
pub fn parse_area(value: &Value, max_vertices: usize) -> Result<Area, Vec<FieldError>> {
    parse(value, max_vertices, Geometry::Check)
}

/// An area stored by [`parse_area`] earlier, read back without repeating the validity check
/// (quadratic in the vertices: tens of milliseconds for a large polygon, on every check-in
/// otherwise). `None` for anything unreadable: that means "no geofence", not an error.
pub fn parse_stored_area(value: &Value) -> Option<Area> {
    parse(value, STORED_MAX_VERTICES, Geometry::Trusted).ok()
}

/// The vertex cap for reading stored areas: a later, lower `limits.max_area_vertices` must not
/// turn off the geofence of an outing already running.
const STORED_MAX_VERTICES: usize = 100_000;

/// Whether to check a polygon area's geometry (validity, simplicity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Geometry {
    Check,
    Trusted,
}

fn parse(value: &Value, max_vertices: usize, geometry: Geometry) -> Result<Area, Vec<FieldError>> {
    let mut errs = Errors::default();
    let Some(obj) = value.as_object() else {
        errs.push(
            "area",
            "must be an object: a GeoJSON Polygon or MultiPolygon geometry, or a Circle",
        );
        return Err(errs.0);
    };
    let Some(kind) = area_type(obj, &mut errs) else {
        return Err(errs.0);
    };
    check_members(obj, kind, &mut errs);

    let area = match kind {
        AreaType::Circle => parse_circle(obj, &mut errs),
        AreaType::Polygon | AreaType::MultiPolygon => {
            parse_polygons(obj, kind, max_vertices, geometry, &mut errs)
        }
    };
    match area {
        Some(area) if errs.0.is_empty() => Ok(area),
        _ => Err(errs.0),
    }
}

/// The GeoJSON (or Circle) value of an area; what [`parse_area`] accepted, minus altitudes and
/// `bbox`. `parse_area(&to_geojson(&a), n) == Ok(a)` for every accepted `a` with at most `n`
/// vertices.
pub fn to_geojson(area: &Area) -> Value {
    match area {
        Area::Circle { center, radius_m } => json!({
            "type": "Circle",
            "center": [center.x(), center.y()],
            "radius_m": radius_m,
        }),
        // `kind` and the polygon count disagree only if the value was built by hand; emit a
        // MultiPolygon then rather than dropping polygons.
        Area::Polygons {
            polygons,
            kind: PolygonKind::Polygon,
        } if polygons.0.len() == 1 => json!({
            "type": "Polygon",
            "coordinates": polygons.0.iter().map(polygon_coordinates).next(),
        }),
        Area::Polygons { polygons, .. } => json!({
            "type": "MultiPolygon",
            "coordinates": polygons.0.iter().map(polygon_coordinates).collect::<Vec<_>>(),
        }),
    }
}

/// Whether a reported position counts as inside the area.
///
/// True when the point is inside or on the boundary, or when the accuracy circle reported by
/// the phone reaches the area (distance from the point to the area ≤ `accuracy_m`): we only
/// flag someone as outside when they are outside even in the most favourable reading of
/// their fix. A missing, negative or NaN accuracy counts as 0; a non-finite position is never
/// inside.
///
/// Circle: haversine distance to the centre ≤ radius + accuracy.
/// Polygons: distance to the nearest edge, measured on a local equirectangular projection
/// centred on the point. That projection maps the lon/lat straight edges to straight lines
/// (so it measures the same edges the containment test uses) and is within a fraction of a
/// percent of the true distance over the few kilometres an accuracy circle spans; far-away
/// edges are measured less accurately, which never matters because they are compared with
/// an accuracy radius, not reported.
pub fn contains(area: &Area, lat: f64, lon: f64, accuracy_m: Option<f64>) -> bool {
    if !lat.is_finite() || !lon.is_finite() {
        return false;
    }
    // `max` maps NaN to 0 as well as negative values.
    let accuracy = accuracy_m.unwrap_or(0.0).max(0.0);
    let point = Point::new(lon, lat);
    match area {
        Area::Circle { center, radius_m } => {
            Haversine.distance(*center, point) <= radius_m + accuracy
        }
        Area::Polygons { polygons, .. } => {
            polygons.intersects(&point)
                || (accuracy > 0.0 && distance_to_edges_m(polygons, lat, lon) <= accuracy)
        }
    }
}

/// Distance in metres from (lat, lon) to the nearest edge of any ring (see [`contains`]).
fn distance_to_edges_m(polygons: &MultiPolygon<f64>, lat: f64, lon: f64) -> f64 {
    let metres_per_degree = Haversine.radius().to_radians();
    let metres_per_degree_lon = metres_per_degree * lat.to_radians().cos();
    let project = |c: Coord<f64>| Coord {
        x: (c.x - lon) * metres_per_degree_lon,
        y: (c.y - lat) * metres_per_degree,
    };
    polygons
        .0
        .iter()
        .flat_map(|p| std::iter::once(p.exterior()).chain(p.interiors()))
        .flat_map(LineString::lines)
        .map(|edge| distance_from_origin(project(edge.start), project(edge.end)))
        .fold(f64::INFINITY, f64::min)
}

/// Euclidean distance from the origin to the segment a–b.
fn distance_from_origin(a: Coord<f64>, b: Coord<f64>) -> f64 {
    let d = b - a;
    let len2 = d.x * d.x + d.y * d.y;
    let t = if len2 > 0.0 {
        // Parameter of the origin's projection on the line, clamped onto the segment.
        (-(a.x * d.x + a.y * d.y) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let p = a + d * t;
    p.x.hypot(p.y)
}

fn polygon_coordinates(polygon: &Polygon<f64>) -> Vec<Vec<[f64; 2]>> {
    std::iter::once(polygon.exterior())
        .chain(polygon.interiors())
        .map(|ring| ring.coords().map(|c| [c.x, c.y]).collect())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Parsing

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AreaType {
    Polygon,
    MultiPolygon,
    Circle,
}

/// Field errors with a cap (see [`MAX_REPORTED_ERRORS`]).
#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        if !self.full() {
            self.0.push(FieldError::new(field, message));
        }
    }

    fn full(&self) -> bool {
        self.0.len() >= MAX_REPORTED_ERRORS
    }
}

fn area_type(obj: &Map<String, Value>, errs: &mut Errors) -> Option<AreaType> {
    const EXPECTED: &str = r#"must be "Polygon", "MultiPolygon" or "Circle""#;
    let name = match obj.get("type") {
        None => {
            errs.push("area.type", format!("is required and {EXPECTED}"));
            return None;
        }
        Some(Value::String(name)) => name.as_str(),
        Some(_) => {
            errs.push("area.type", format!("must be a string: {EXPECTED}"));
            return None;
        }
    };
    // Only ever echo names we know: the client's string may be anything, of any length.
    let message = match name {
        "Polygon" => return Some(AreaType::Polygon),
        "MultiPolygon" => return Some(AreaType::MultiPolygon),
        "Circle" => return Some(AreaType::Circle),
        "Feature" => "a GeoJSON Feature is not accepted: send its geometry (a Polygon or \
                      MultiPolygon) as the area"
            .to_owned(),
        "FeatureCollection" => "a GeoJSON FeatureCollection is not accepted: send a single \
                                Polygon or MultiPolygon geometry as the area"
            .to_owned(),
        "Point" | "MultiPoint" | "LineString" | "MultiLineString" | "GeometryCollection" => {
            format!("a {name} does not describe an area: {EXPECTED}")
        }
        _ => format!("{EXPECTED} (case-sensitive)"),
    };
    errs.push("area.type", message);
    None
}

/// Rejects members we don't know. RFC 7946 allows "foreign members", but a typo like
/// `radius` for `radius_m` must not silently give a different area.
fn check_members(obj: &Map<String, Value>, kind: AreaType, errs: &mut Errors) {
    let allowed: &[&str] = match kind {
        AreaType::Polygon | AreaType::MultiPolygon => &["type", "coordinates", "bbox"],
        AreaType::Circle => &["type", "center", "radius_m"],
    };
    for key in obj.keys().filter(|k| !allowed.contains(&k.as_str())) {
        let shown: String = key.chars().take(MAX_ECHOED_KEY_CHARS).collect();
        errs.push(
            format!("area.{shown}"),
            format!("is not an allowed member; allowed: {}", allowed.join(", ")),
        );
    }
    if let Some(bbox) = obj.get("bbox") {
        if kind != AreaType::Circle && !is_valid_bbox(bbox) {
            errs.push(
                "area.bbox",
                "must be an array of 4 or 6 finite numbers (it is optional; it is ignored)",
            );
        }
    }
}

fn is_valid_bbox(bbox: &Value) -> bool {
    bbox.as_array().is_some_and(|items| {
        matches!(items.len(), 4 | 6)
            && items
                .iter()
                .all(|v| v.as_f64().is_some_and(|n| n.is_finite()))
    })
}

fn parse_circle(obj: &Map<String, Value>, errs: &mut Errors) -> Option<Area> {
    let center = match obj.get("center") {
        None => {
            errs.push("area.center", "is required: a [lon, lat] position");
            None
        }
        Some(v) => match position(v) {
            Ok(c) => Some(Point::from(c)),
            Err(message) => {
                errs.push("area.center", message);
                None
            }
        },
    };
    let radius_m = match obj.get("radius_m").map(Value::as_f64) {
        None => {
            errs.push(
                "area.radius_m",
                "is required: the circle's radius in metres",
            );
            None
        }
        Some(Some(r)) if r.is_finite() && r > 0.0 && r <= MAX_CIRCLE_RADIUS_M => Some(r),
        Some(_) => {
            errs.push(
                "area.radius_m",
                format!(
                    "must be a number of metres greater than 0 and at most {MAX_CIRCLE_RADIUS_M}"
                ),
            );
            None
        }
    };
    Some(Area::Circle {
        center: center?,
        radius_m: radius_m?,
    })
}

fn parse_polygons(
    obj: &Map<String, Value>,
    kind: AreaType,
    max_vertices: usize,
    geometry: Geometry,
    errs: &mut Errors,
) -> Option<Area> {
    const PATH: &str = "area.coordinates";
    let Some(coordinates) = obj.get("coordinates") else {
        errs.push(PATH, "is required");
        return None;
    };
    let Some(items) = coordinates.as_array() else {
        errs.push(PATH, "must be an array");
        return None;
    };

    // Count before parsing, from array lengths alone, so an oversized area costs next to
    // nothing to reject.
    let (rings, vertices) = match kind {
        AreaType::Polygon => count(coordinates),
        _ => items
            .iter()
            .map(count)
            .fold((0, 0), |(r, v), (r2, v2)| (r + r2, v + v2)),
    };
    // Every polygon needs a ring: this also bounds a list of empty polygons.
    if kind == AreaType::MultiPolygon && items.len() > MAX_RINGS {
        errs.push(
            PATH,
            format!(
                "has {} polygons; at most {MAX_RINGS} linear rings (exteriors and holes) are \
                 allowed in total",
                items.len()
            ),
        );
        return None;
    }
    if rings > MAX_RINGS {
        errs.push(
            PATH,
            format!(
                "has {rings} linear rings (exteriors and holes) in total; at most {MAX_RINGS} \
                 are allowed"
            ),
        );
        return None;
    }
    if vertices > max_vertices {
        errs.push(
            PATH,
            format!("has {vertices} positions in total; at most {max_vertices} are allowed"),
        );
        return None;
    }

    let (polygons, kind) = match kind {
        AreaType::Polygon => (
            vec![polygon(coordinates, PATH, errs)?],
            PolygonKind::Polygon,
        ),
        _ => {
            if items.is_empty() {
                errs.push(PATH, "must contain at least one polygon");
                return None;
            }
            let mut polygons = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                if errs.full() {
                    return None;
                }
                if let Some(p) = polygon(item, &format!("{PATH}[{i}]"), errs) {
                    polygons.push(p);
                }
            }
            (polygons, PolygonKind::MultiPolygon)
        }
    };
    // Any structural error above means some polygon is missing: don't check the geometry of
    // a partial area.
    if !errs.0.is_empty() {
        return None;
    }
    let polygons = MultiPolygon::new(polygons);
    if geometry == Geometry::Check {
        check_geometry(&polygons, kind, errs);
    }
    Some(Area::Polygons { polygons, kind })
}

/// Rings and positions in a Polygon's `coordinates` (an array of rings), from lengths only.
/// Something that is not an array counts as one ring (an error to report later).
fn count(polygon: &Value) -> (usize, usize) {
    match polygon.as_array() {
        Some(rings) => (
            rings.len(),
            rings
                .iter()
                .map(|ring| ring.as_array().map_or(0, Vec::len))
                .sum(),
        ),
        None => (1, 0),
    }
}

/// One polygon: an array of linear rings, exterior first, then holes.
fn polygon(value: &Value, path: &str, errs: &mut Errors) -> Option<Polygon<f64>> {
    let Some(rings) = value.as_array() else {
        errs.push(path, "must be an array of linear rings");
        return None;
    };
    if rings.is_empty() {
        errs.push(path, "must contain at least one linear ring (the exterior)");
        return None;
    }
    let mut parsed = Vec::new();
    let mut ok = true;
    for (i, ring) in rings.iter().enumerate() {
        if errs.full() {
            return None;
        }
        match linear_ring(ring, &format!("{path}[{i}]"), errs) {
            Some(r) => parsed.push(r),
            None => ok = false,
        }
    }
    if !ok {
        return None;
    }
    let mut rings = parsed.into_iter();
    let exterior = rings.next()?;
    Some(Polygon::new(exterior, rings.collect()))
}

/// A closed ring of at least 4 positions. Reports at most one bad position per ring.
fn linear_ring(value: &Value, path: &str, errs: &mut Errors) -> Option<LineString<f64>> {
    let Some(items) = value.as_array() else {
        errs.push(
            path,
            "must be an array of [lon, lat] positions (a linear ring)",
        );
        return None;
    };
    if items.len() < 4 {
        errs.push(
            path,
            format!(
                "has {} positions; a linear ring needs at least 4 (the last repeating the first)",
                items.len()
            ),
        );
        return None;
    }
    // Bounded by `max_vertices`, counted before parsing.
    let mut coords = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match position(item) {
            Ok(c) => coords.push(c),
            Err(message) => {
                errs.push(format!("{path}[{i}]"), message);
                return None;
            }
        }
    }
    if coords.first() != coords.last() {
        errs.push(
            path,
            "is not closed: the last position must repeat the first",
        );
        return None;
    }
    Some(LineString::new(coords))
}

/// A GeoJSON position: `[lon, lat]` or `[lon, lat, altitude]` (altitude dropped).
fn position(value: &Value) -> Result<Coord<f64>, &'static str> {
    let Some(items) = value.as_array() else {
        return Err("must be a [lon, lat] position");
    };
    if !matches!(items.len(), 2 | 3) {
        return Err("must have 2 or 3 numbers: [lon, lat] or [lon, lat, altitude]");
    }
    let mut numbers = [0.0; 3];
    for (slot, item) in numbers.iter_mut().zip(items) {
        match item.as_f64() {
            Some(n) if n.is_finite() => *slot = n,
            Some(_) => return Err("must contain finite numbers"),
            None => return Err("must contain only numbers"),
        }
    }
    let [lon, lat, _] = numbers;
    if !(-180.0..=180.0).contains(&lon) {
        return Err("longitude (the first number) must be between -180 and 180");
    }
    if !(-90.0..=90.0).contains(&lat) {
        return Err("latitude (the second number) must be between -90 and 90");
    }
    Ok(Coord { x: lon, y: lat })
}

// ---------------------------------------------------------------------------------------------
// Geometry validity

/// Checks what geo's OGC validation checks (simple rings, holes inside the exterior, rings
/// not crossing, polygons not overlapping), plus that no ring is flat (zero area), which geo
/// lets through for a ring that folds back on itself.
///
/// Each polygon is checked alone first, and stops at its first problem: the relate
/// operations behind the hole and overlap checks assume simple rings, so they only run on
/// polygons that passed the ring checks.
fn check_geometry(polygons: &MultiPolygon<f64>, kind: PolygonKind, errs: &mut Errors) {
    let polygon_path = |i: usize| match kind {
        PolygonKind::Polygon => "area.coordinates".to_owned(),
        PolygonKind::MultiPolygon => format!("area.coordinates[{i}]"),
    };
    let ring_path = |i: usize, ring: usize| format!("{}[{ring}]", polygon_path(i));

    let mut all_valid = true;
    for (i, polygon) in polygons.0.iter().enumerate() {
        let flat_ring = std::iter::once(polygon.exterior())
            .chain(polygon.interiors())
            .position(is_flat);
        if let Some(ring) = flat_ring {
            errs.push(
                ring_path(i, ring),
                "encloses no area: its positions are all on one line",
            );
            all_valid = false;
        } else if let Err(problem) = polygon.check_validation() {
            let (ring, message) = describe(&problem);
            errs.push(ring_path(i, ring), message);
            all_valid = false;
        }
    }
    if !all_valid {
        return;
    }

    // Same rules as geo's MultiPolygon validation: interiors must not overlap and
    // boundaries may only touch at points. Relate is costly, so it only runs on pairs that
    // intersect at all, on prepared geometries (built once, not once per pair).
    let prepared: Vec<_> = polygons.0.iter().map(PreparedGeometry::from).collect();
    let pairs = polygons.0.iter().zip(&prepared).enumerate();
    for (i, (a, prepared_a)) in pairs.clone() {
        for (j, (b, prepared_b)) in pairs.clone().skip(i + 1) {
            if errs.full() {
                return;
            }
            if !a.intersects(b) {
                continue;
            }
            let matrix = prepared_a.relate(prepared_b);
            if matrix.get(CoordPos::Inside, CoordPos::Inside) == Dimensions::TwoDimensional {
                errs.push(polygon_path(j), format!("overlaps polygon {i}"));
            } else if matrix.get(CoordPos::OnBoundary, CoordPos::OnBoundary)
                == Dimensions::OneDimensional
            {
                errs.push(
                    polygon_path(j),
                    format!("shares an edge with polygon {i}; polygons may only touch at points"),
                );
            }
        }
    }
}

/// Whether every position of the ring lies on one line (exact, robust orientation test).
fn is_flat(ring: &LineString<f64>) -> bool {
    let mut coords = ring.coords().copied();
    let Some(first) = coords.next() else {
        return true;
    };
    let Some(second) = coords.find(|&c| c != first) else {
        return true;
    };
    coords.all(|c| RobustKernel::orient2d(first, second, c) == Orientation::Collinear)
}

/// The ring (index in the JSON array, 0 = exterior) a validation problem is about, and a
/// message in the client's terms. geo's own messages count holes from 0, which would not
/// match the JSON indices in our field paths.
fn describe(problem: &InvalidPolygon) -> (usize, String) {
    let index = |role: &RingRole| match role {
        RingRole::Exterior => 0,
        RingRole::Interior(i) => i + 1,
    };
    match problem {
        InvalidPolygon::TooFewPointsInRing(role) => (
            index(role),
            "needs at least 3 distinct positions".to_owned(),
        ),
        InvalidPolygon::SelfIntersection(role) => {
            (index(role), "crosses or touches itself".to_owned())
        }
        InvalidPolygon::NonFiniteCoord(role, _) => {
            (index(role), "contains a non-finite coordinate".to_owned())
        }
        InvalidPolygon::InteriorRingNotContainedInExteriorRing(role) => (
            index(role),
            "is a hole but is not inside the exterior ring (ring 0)".to_owned(),
        ),
        // Two rings: name the later one, the one drawn into the other.
        InvalidPolygon::IntersectingRingsOnALine(first, role) => (
            index(role),
            format!(
                "touches ring {} along a line; rings may only touch at points",
                index(first)
            ),
        ),
        InvalidPolygon::IntersectingRingsOnAnArea(first, role) => {
            (index(role), format!("overlaps ring {}", index(first)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAX: usize = 1_000;

    /// A lon/lat box as a closed counter-clockwise ring.
    fn ring(west: f64, south: f64, east: f64, north: f64) -> Value {
        json!([
            [west, south],
            [east, south],
            [east, north],
            [west, north],
            [west, south]
        ])
    }

    fn square() -> Value {
        // ~680 m × 1.1 km in Berlin.
        json!({"type": "Polygon", "coordinates": [ring(13.40, 52.52, 13.41, 52.53)]})
    }

    /// A Polygon of one ring given as a JSON array of positions.
    fn one_ring(positions: Value) -> Value {
        json!({"type": "Polygon", "coordinates": [positions]})
    }

    fn parse(value: &Value) -> Result<Area, Vec<FieldError>> {
        parse_area(value, MAX)
    }

    fn errors(value: &Value) -> Vec<FieldError> {
        match parse(value) {
            Ok(area) => panic!("accepted {value}: {area:?}"),
            Err(errors) => errors,
        }
    }

    /// The single error of a rejected value, or a panic listing them.
    fn error(value: &Value) -> FieldError {
        let errors = errors(value);
        assert_eq!(errors.len(), 1, "{errors:#?}");
        errors.into_iter().next().unwrap()
    }

    fn assert_error(value: &Value, field: &str, message_part: &str) {
        let e = error(value);
        assert_eq!(e.field, field, "{e:?}");
        assert!(
            e.message.contains(message_part),
            "{:?} does not contain {message_part:?}",
            e.message
        );
    }

    fn with(mut value: Value, key: &str, member: Value) -> Value {
        value[key] = member;
        value
    }

    // --- Accepted shapes and round trips ---

    #[test]
    fn polygon_is_accepted_and_round_trips() {
        let area = parse(&square()).unwrap();
        let Area::Polygons { polygons, kind } = &area else {
            panic!("{area:?}")
        };
        assert_eq!(*kind, PolygonKind::Polygon);
        assert_eq!(polygons.0.len(), 1);
        assert_eq!(to_geojson(&area), square());
    }

    #[test]
    fn polygon_with_hole_round_trips() {
        let value = json!({
            "type": "Polygon",
            "coordinates": [ring(0.0, 0.0, 1.0, 1.0), ring(0.25, 0.25, 0.75, 0.75)],
        });
        let area = parse(&value).unwrap();
        assert_eq!(to_geojson(&area), value);
    }

    #[test]
    fn multipolygon_round_trips() {
        let value = json!({
            "type": "MultiPolygon",
            "coordinates": [[ring(0.0, 0.0, 1.0, 1.0)], [ring(2.0, 0.0, 3.0, 1.0)]],
        });
        let area = parse(&value).unwrap();
        let Area::Polygons { polygons, kind } = &area else {
            panic!("{area:?}")
        };
        assert_eq!((*kind, polygons.0.len()), (PolygonKind::MultiPolygon, 2));
        assert_eq!(to_geojson(&area), value);
    }

    #[test]
    fn single_element_multipolygon_stays_a_multipolygon() {
        let value = json!({"type": "MultiPolygon", "coordinates": [[ring(0.0, 0.0, 1.0, 1.0)]]});
        assert_eq!(to_geojson(&parse(&value).unwrap()), value);
    }

    #[test]
    fn circle_round_trips() {
        let value = json!({"type": "Circle", "center": [13.4, 52.52], "radius_m": 250.5});
        let area = parse(&value).unwrap();
        assert_eq!(
            area,
            Area::Circle {
                center: Point::new(13.4, 52.52),
                radius_m: 250.5
            }
        );
        assert_eq!(to_geojson(&area), value);
        assert_eq!(serde_json::to_value(&area).unwrap(), value);
    }

    #[test]
    fn altitude_and_bbox_are_accepted_and_dropped() {
        let value = json!({
            "type": "Polygon",
            "bbox": [0.0, 0.0, 1.0, 1.0],
            "coordinates": [[
                [0.0, 0.0, 30.0], [1.0, 0.0, 30.0], [1.0, 1.0, 31.0], [0.0, 0.0, 30.0]
            ]],
        });
        let area = parse(&value).unwrap();
        assert_eq!(
            to_geojson(&area),
            one_ring(json!([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]))
        );
        let circle = json!({"type": "Circle", "center": [1.0, 2.0, 3.0], "radius_m": 10.0});
        assert!(parse(&circle).is_ok());
    }

    #[test]
    fn integer_coordinates_are_accepted() {
        let value = one_ring(json!([[0, 0], [1, 0], [1, 1], [0, 0]]));
        assert!(parse(&value).is_ok());
    }

    #[test]
    fn extreme_but_valid_coordinates_are_accepted() {
        let value = json!({"type": "Polygon", "coordinates": [ring(-180.0, -90.0, 180.0, 90.0)]});
        let area = parse(&value).unwrap();
        assert!(contains(&area, 90.0, 180.0, None));
        assert!(contains(&area, 0.0, 0.0, Some(1.0)));
    }

    #[test]
    fn hole_touching_exterior_at_a_point_is_valid() {
        let value = json!({
            "type": "Polygon",
            "coordinates": [
                ring(0.0, 0.0, 4.0, 4.0),
                [[0.0, 2.0], [2.0, 1.0], [3.0, 2.0], [2.0, 3.0], [0.0, 2.0]],
            ],
        });
        assert!(parse(&value).is_ok());
    }

    #[test]
    fn multipolygon_touching_at_a_point_is_valid() {
        let value = json!({
            "type": "MultiPolygon",
            "coordinates": [[ring(0.0, 0.0, 1.0, 1.0)], [ring(1.0, 1.0, 2.0, 2.0)]],
        });
        assert!(parse(&value).is_ok());
    }

    #[test]
    fn consecutive_duplicate_positions_are_tolerated() {
        // RFC 7946 does not forbid them and phones' drawing tools produce them.
        let value = one_ring(json!([
            [0.0, 0.0],
            [1.0, 0.0],
            [1.0, 0.0],
            [1.0, 1.0],
            [0.0, 0.0]
        ]));
        assert_eq!(to_geojson(&parse(&value).unwrap()), value);
    }

    #[test]
    fn winding_order_is_not_enforced() {
        let clockwise = one_ring(json!([
            [0.0, 0.0],
            [0.0, 1.0],
            [1.0, 1.0],
            [1.0, 0.0],
            [0.0, 0.0]
        ]));
        let area = parse(&clockwise).unwrap();
        assert!(contains(&area, 0.5, 0.5, None));
        assert_eq!(to_geojson(&area), clockwise);
    }

    // --- Rejections: shape of the value ---

    #[test]
    fn rejects_non_objects() {
        for value in [json!(null), json!([1, 2]), json!("Polygon"), json!(3)] {
            assert_error(&value, "area", "must be an object");
        }
    }

    #[test]
    fn rejects_missing_or_non_string_type() {
        assert_error(&json!({"coordinates": []}), "area.type", "is required");
        assert_error(&json!({"type": 7}), "area.type", "must be a string");
    }

    #[test]
    fn rejects_feature_with_a_hint() {
        let feature = json!({"type": "Feature", "geometry": square(), "properties": {}});
        assert_error(&feature, "area.type", "send its geometry");
        assert_error(
            &json!({"type": "FeatureCollection", "features": []}),
            "area.type",
            "FeatureCollection is not accepted",
        );
    }

    #[test]
    fn rejects_other_geometry_types() {
        for kind in [
            "Point",
            "MultiPoint",
            "LineString",
            "MultiLineString",
            "GeometryCollection",
        ] {
            let value = json!({"type": kind, "coordinates": [0.0, 0.0]});
            assert_error(&value, "area.type", "does not describe an area");
        }
    }

    #[test]
    fn rejects_unknown_type_without_echoing_it() {
        let long = "x".repeat(10_000);
        let e = error(&json!({"type": long}));
        assert_eq!(e.field, "area.type");
        assert!(!e.message.contains("xxx"));
        assert_error(&json!({"type": "polygon"}), "area.type", "case-sensitive");
    }

    #[test]
    fn rejects_unknown_members() {
        assert_error(
            &with(square(), "properties", json!({})),
            "area.properties",
            "not an allowed member",
        );
        let circle = json!({"type": "Circle", "center": [0.0, 0.0], "radius": 10.0});
        let errors = errors(&circle);
        assert_eq!(
            errors.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(),
            ["area.radius", "area.radius_m"]
        );
        assert_error(
            &json!({"type": "Circle", "center": [0, 0], "radius_m": 10, "bbox": [0, 0, 1, 1]}),
            "area.bbox",
            "not an allowed member",
        );
    }

    #[test]
    fn long_unknown_member_names_are_truncated_in_the_path() {
        let e = error(&with(square(), &"k".repeat(1_000), json!(1)));
        assert_eq!(
            e.field,
            format!("area.{}", "k".repeat(MAX_ECHOED_KEY_CHARS))
        );
    }

    #[test]
    fn rejects_malformed_bbox() {
        for bbox in [json!([0, 0, 1]), json!("0,0,1,1"), json!([0, 0, 1, "1"])] {
            assert_error(&with(square(), "bbox", bbox), "area.bbox", "4 or 6");
        }
        assert!(parse(&with(square(), "bbox", json!([0, 0, 0, 1, 1, 1]))).is_ok());
    }

    #[test]
    fn rejects_missing_or_non_array_coordinates() {
        assert_error(
            &json!({"type": "Polygon"}),
            "area.coordinates",
            "is required",
        );
        assert_error(
            &json!({"type": "MultiPolygon", "coordinates": {}}),
            "area.coordinates",
            "must be an array",
        );
    }

    #[test]
    fn rejects_polygon_without_rings() {
        assert_error(
            &json!({"type": "Polygon", "coordinates": []}),
            "area.coordinates",
            "at least one linear ring",
        );
        assert_error(
            &json!({"type": "MultiPolygon", "coordinates": []}),
            "area.coordinates",
            "at least one polygon",
        );
        assert_error(
            &json!({"type": "MultiPolygon", "coordinates": [[]]}),
            "area.coordinates[0]",
            "at least one linear ring",
        );
        assert_error(
            &json!({"type": "MultiPolygon", "coordinates": [7]}),
            "area.coordinates[0]",
            "array of linear rings",
        );
    }

    #[test]
    fn rejects_short_ring() {
        let value = one_ring(json!([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]]));
        assert_error(&value, "area.coordinates[0]", "at least 4");
        assert_error(
            &json!({"type": "Polygon", "coordinates": [{"a": 1}]}),
            "area.coordinates[0]",
            "linear ring",
        );
    }

    #[test]
    fn rejects_unclosed_ring() {
        let value = one_ring(json!([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]));
        assert_error(&value, "area.coordinates[0]", "not closed");
    }

    fn with_position(position: Value) -> Value {
        json!({"type": "Polygon", "coordinates": [[[0.0, 0.0], [1.0, 0.0], position, [0.0, 0.0]]]})
    }

    #[test]
    fn rejects_bad_positions_naming_the_index() {
        let cases = [
            (json!("1,1"), "[lon, lat] position"),
            (json!([1.0]), "2 or 3 numbers"),
            (json!([1.0, 1.0, 1.0, 1.0]), "2 or 3 numbers"),
            (json!([1.0, "1"]), "only numbers"),
            (json!([1.0, null]), "only numbers"),
            (json!([180.5, 1.0]), "longitude"),
            (json!([-181, 1.0]), "longitude"),
            (json!([1.0, 90.01]), "latitude"),
            (json!([1.0, -91]), "latitude"),
            (json!([1.0, 1.0, "high"]), "only numbers"),
        ];
        for (position, message) in cases {
            assert_error(&with_position(position), "area.coordinates[0][2]", message);
        }
    }

    #[test]
    fn swapped_lat_lon_gets_a_useful_message() {
        // [lat, lon] for a place at lon 100: the "latitude" 100 is out of range.
        assert_error(
            &with_position(json!([13.4, 100.0])),
            "area.coordinates[0][2]",
            "latitude",
        );
    }

    #[test]
    fn multipolygon_errors_name_polygon_ring_and_position() {
        let value = json!({
            "type": "MultiPolygon",
            "coordinates": [
                [ring(0.0, 0.0, 1.0, 1.0)],
                [ring(2.0, 0.0, 3.0, 1.0), [[2.2, 0.2], [2.8, 0.2], [2.8, 200.0], [2.2, 0.2]]],
            ],
        });
        assert_error(&value, "area.coordinates[1][1][2]", "latitude");
    }

    #[test]
    fn reports_every_structural_error_at_once() {
        let value = json!({
            "type": "MultiPolygon",
            "extra": true,
            "coordinates": [[[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]]], [[[0.0, 500.0]]]],
        });
        let fields: Vec<_> = errors(&value).into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "area.extra",
                "area.coordinates[0][0]",
                "area.coordinates[1][0]"
            ]
        );
    }

    #[test]
    fn error_count_is_capped() {
        let bad_ring = json!([[0, 0], [1, 1], [0, 0]]);
        let rings: Vec<Value> = (0..MAX_RINGS).map(|_| bad_ring.clone()).collect();
        let value = json!({"type": "Polygon", "coordinates": rings});
        assert_eq!(errors(&value).len(), MAX_REPORTED_ERRORS);
        let keys: Map<String, Value> = (0..100).map(|i| (format!("k{i}"), json!(i))).collect();
        let mut value = square();
        value.as_object_mut().unwrap().extend(keys);
        assert_eq!(errors(&value).len(), MAX_REPORTED_ERRORS);
    }

    #[test]
    fn rejects_too_many_vertices_before_looking_at_them() {
        // 3 rings of 500 garbage "positions" each: one error, about the count.
        let garbage: Vec<Value> = (0..500).map(|_| json!("not a position")).collect();
        let value =
            json!({"type": "Polygon", "coordinates": [garbage.clone(), garbage.clone(), garbage]});
        assert_error(
            &value,
            "area.coordinates",
            "1500 positions in total; at most 1000",
        );

        // The count includes closing positions, over all rings and polygons.
        let square = json!({"type": "Polygon", "coordinates": [ring(0.0, 0.0, 1.0, 1.0)]});
        assert!(parse_area(&square, 5).is_ok());
        assert_error_with(parse_area(&square, 4), "area.coordinates", "at most 4");
        let multi = json!({
            "type": "MultiPolygon",
            "coordinates": [[ring(0.0, 0.0, 1.0, 1.0)], [ring(2.0, 0.0, 3.0, 1.0)]],
        });
        assert!(parse_area(&multi, 10).is_ok());
        assert_error_with(
            parse_area(&multi, 9),
            "area.coordinates",
            "has 10 positions",
        );
    }

    #[test]
    fn rejects_too_many_rings() {
        let polygon = |i: usize| json!([ring(i as f64, 0.0, i as f64 + 0.5, 1.0)]);
        let many = |n: usize| {
            let polygons = (0..n).map(polygon).collect::<Vec<_>>();
            json!({"type": "MultiPolygon", "coordinates": polygons})
        };
        assert!(parse(&many(MAX_RINGS)).is_ok());
        assert_error(&many(MAX_RINGS + 1), "area.coordinates", "has 101 polygons");
        let with_hole = |i: usize| {
            let x = i as f64;
            json!([ring(x, 0.0, x + 0.5, 1.0), ring(x + 0.1, 0.1, x + 0.2, 0.2)])
        };
        let holey = (0..60).map(with_hole).collect::<Vec<_>>();
        assert_error(
            &json!({"type": "MultiPolygon", "coordinates": holey}),
            "area.coordinates",
            "has 120 linear rings",
        );
        let hole = |i: usize| ring(0.1 + i as f64 * 0.5, 0.1, 0.3 + i as f64 * 0.5, 0.2);
        let holes = |n: usize| {
            let mut rings = vec![ring(0.0, 0.0, 90.0, 1.0)];
            rings.extend((0..n).map(hole));
            json!({"type": "Polygon", "coordinates": rings})
        };
        assert!(parse(&holes(MAX_RINGS - 1)).is_ok());
        assert_error(
            &holes(MAX_RINGS),
            "area.coordinates",
            "has 101 linear rings",
        );
        // Counted before anything else is looked at.
        let empties = json!({"type": "MultiPolygon", "coordinates": vec![json!([]); 100_000]});
        assert_error(
            &empties,
            "area.coordinates",
            "has 100000 polygons; at most 100",
        );
        let junk = json!({"type": "Polygon", "coordinates": vec![json!(1); 100_000]});
        assert_error(&junk, "area.coordinates", "has 100000 linear rings");
    }

    fn assert_error_with(result: Result<Area, Vec<FieldError>>, field: &str, message_part: &str) {
        let errors = result.unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert_eq!(errors[0].field, field);
        assert!(errors[0].message.contains(message_part), "{errors:?}");
    }

    // --- Rejections: geometry ---

    #[test]
    fn rejects_self_intersecting_ring() {
        let bow_tie = one_ring(json!([
            [0.0, 0.0],
            [1.0, 1.0],
            [1.0, 0.0],
            [0.0, 1.0],
            [0.0, 0.0]
        ]));
        assert_error(&bow_tie, "area.coordinates[0]", "crosses or touches itself");
    }

    #[test]
    fn rejects_flat_ring() {
        let line = one_ring(json!([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [0.0, 0.0]]));
        assert_error(&line, "area.coordinates[0]", "encloses no area");
        let diagonal = one_ring(json!([[0.1, 0.1], [0.2, 0.2], [0.3, 0.3], [0.1, 0.1]]));
        assert_error(&diagonal, "area.coordinates[0]", "encloses no area");
        let flat_hole = json!({
            "type": "Polygon",
            "coordinates": [
                ring(0.0, 0.0, 1.0, 1.0),
                [[0.2, 0.5], [0.4, 0.5], [0.6, 0.5], [0.2, 0.5]],
            ],
        });
        assert_error(&flat_hole, "area.coordinates[1]", "encloses no area");
    }

    #[test]
    fn rejects_ring_with_too_few_distinct_positions() {
        let value = one_ring(json!([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]));
        assert_error(&value, "area.coordinates[0]", "encloses no area");
        let value = one_ring(json!([[0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 0.0]]));
        assert!(parse(&value).is_err());
    }

    #[test]
    fn rejects_hole_outside_exterior() {
        let value = json!({
            "type": "Polygon",
            "coordinates": [ring(0.0, 0.0, 1.0, 1.0), ring(2.0, 2.0, 3.0, 3.0)],
        });
        assert_error(
            &value,
            "area.coordinates[1]",
            "not inside the exterior ring",
        );
    }

    #[test]
    fn rejects_hole_crossing_exterior() {
        let value = json!({
            "type": "Polygon",
            "coordinates": [ring(0.0, 0.0, 1.0, 1.0), ring(0.5, 0.5, 1.5, 0.8)],
        });
        assert_eq!(error(&value).field, "area.coordinates[1]");
    }

    #[test]
    fn rejects_overlapping_holes() {
        let value = json!({
            "type": "Polygon",
            "coordinates": [
                ring(0.0, 0.0, 1.0, 1.0),
                ring(0.1, 0.1, 0.5, 0.5),
                ring(0.3, 0.3, 0.7, 0.7),
            ],
        });
        let e = error(&value);
        assert_eq!(e.field, "area.coordinates[2]");
        assert_eq!(e.message, "overlaps ring 1");
    }

    #[test]
    fn rejects_hole_sharing_an_edge_with_the_exterior() {
        let value = json!({
            "type": "Polygon",
            "coordinates": [ring(0.0, 0.0, 1.0, 1.0), ring(0.0, 0.2, 0.5, 0.5)],
        });
        assert_error(&value, "area.coordinates[1]", "touches ring 0 along a line");
    }

    #[test]
    fn rejects_overlapping_multipolygon() {
        let value = json!({
            "type": "MultiPolygon",
            "coordinates": [[ring(0.0, 0.0, 1.0, 1.0)], [ring(0.5, 0.5, 1.5, 1.5)]],
        });
        assert_error(&value, "area.coordinates[1]", "overlaps polygon 0");
        let nested = json!({
            "type": "MultiPolygon",
            "coordinates": [[ring(0.0, 0.0, 1.0, 1.0)], [ring(0.2, 0.2, 0.4, 0.4)]],
        });
        assert_error(&nested, "area.coordinates[1]", "overlaps polygon 0");
        let duplicate = json!({
            "type": "MultiPolygon",
            "coordinates": [[ring(0.0, 0.0, 1.0, 1.0)], [ring(0.0, 0.0, 1.0, 1.0)]],
        });
        assert_error(&duplicate, "area.coordinates[1]", "overlaps polygon 0");
    }

    #[test]
    fn rejects_multipolygon_sharing_an_edge() {
        let value = json!({
            "type": "MultiPolygon",
            "coordinates": [[ring(0.0, 0.0, 1.0, 1.0)], [ring(1.0, 0.0, 2.0, 1.0)]],
        });
        assert_error(
            &value,
            "area.coordinates[1]",
            "shares an edge with polygon 0",
        );
    }

    #[test]
    fn invalid_polygon_in_multipolygon_names_it() {
        let value = json!({
            "type": "MultiPolygon",
            "coordinates": [
                [ring(0.0, 0.0, 1.0, 1.0)],
                [[[5.0, 5.0], [6.0, 6.0], [6.0, 5.0], [5.0, 6.0], [5.0, 5.0]]],
            ],
        });
        assert_error(
            &value,
            "area.coordinates[1][0]",
            "crosses or touches itself",
        );
    }

    // --- Rejections: circle ---

    #[test]
    fn rejects_bad_circles() {
        let circle = |center: Value, radius_m: Value| {
            let mut value = json!({"type": "Circle", "center": center});
            value["radius_m"] = radius_m;
            value
        };
        assert_error(
            &json!({"type": "Circle", "radius_m": 10}),
            "area.center",
            "is required",
        );
        assert_error(
            &json!({"type": "Circle", "center": [0, 0]}),
            "area.radius_m",
            "is required",
        );
        assert_error(
            &circle(json!([0, 95]), json!(10)),
            "area.center",
            "latitude",
        );
        assert_error(
            &circle(json!([200, 0]), json!(10)),
            "area.center",
            "longitude",
        );
        assert_error(
            &circle(json!({"lat": 0, "lon": 0}), json!(10)),
            "area.center",
            "[lon, lat]",
        );
        assert_error(&circle(json!([0]), json!(10)), "area.center", "2 or 3");
        for radius in [
            json!(0),
            json!(-1.0),
            json!(50_000.001),
            json!(1e300),
            json!("10"),
            json!(null),
        ] {
            assert_error(
                &circle(json!([0, 0]), radius),
                "area.radius_m",
                "greater than 0",
            );
        }
        assert!(parse(&circle(json!([0, 0]), json!(50_000))).is_ok());
        assert!(parse(&circle(json!([0, 0]), json!(0.001))).is_ok());
        let both = errors(&circle(json!([0, 95]), json!(0)));
        assert_eq!(both.len(), 2);
    }

    // --- contains ---

    /// Degrees of longitude spanning `metres` east-west at `lat`, on geo's spherical Earth.
    fn east(lat: f64, metres: f64) -> f64 {
        metres / (Haversine.radius().to_radians() * lat.to_radians().cos())
    }

    fn north(metres: f64) -> f64 {
        metres / Haversine.radius().to_radians()
    }

    #[test]
    fn polygon_inside_outside_and_boundary() {
        let area = parse(&square()).unwrap();
        assert!(contains(&area, 52.525, 13.405, None));
        assert!(!contains(&area, 52.535, 13.405, None));
        // Boundary counts as inside: edge and vertex.
        assert!(contains(&area, 52.525, 13.41, None));
        assert!(contains(&area, 52.52, 13.40, None));
        assert!(contains(&area, 52.53, 13.41, Some(0.0)));
    }

    #[test]
    fn polygon_accuracy_allowance_on_both_sides() {
        let area = parse(&square()).unwrap();
        // 100 m east of the east edge, and 100 m north of the north edge.
        let lat = 52.525;
        let lon = 13.41 + east(lat, 100.0);
        assert!(!contains(&area, lat, lon, None));
        assert!(!contains(&area, lat, lon, Some(98.0)));
        assert!(contains(&area, lat, lon, Some(102.0)));
        let lat = 52.53 + north(100.0);
        assert!(!contains(&area, lat, 13.405, Some(99.0)));
        assert!(contains(&area, lat, 13.405, Some(101.0)));
        // Diagonally off a corner: the nearest point is the vertex, ~141 m away.
        let (lat, lon) = (52.53 + north(100.0), 13.41 + east(52.53, 100.0));
        assert!(!contains(&area, lat, lon, Some(139.0)));
        assert!(contains(&area, lat, lon, Some(143.0)));
    }

    #[test]
    fn edge_distance_agrees_with_haversine_at_city_scale() {
        let area = parse(&square()).unwrap();
        let Area::Polygons { polygons, .. } = &area else {
            unreachable!()
        };
        for (lat, lon, foot) in [
            (52.525, 13.42, Point::new(13.41, 52.525)),
            (52.5, 13.405, Point::new(13.405, 52.52)),
            (52.525, 13.37, Point::new(13.40, 52.525)),
        ] {
            let expected = Haversine.distance(Point::new(lon, lat), foot);
            let got = distance_to_edges_m(polygons, lat, lon);
            assert!(
                (got - expected).abs() < expected * 0.002 + 0.5,
                "{got} vs {expected}"
            );
        }
    }

    #[test]
    fn holes_are_outside_and_their_boundary_inside() {
        let value = json!({
            "type": "Polygon",
            "coordinates": [ring(13.40, 52.52, 13.42, 52.54), ring(13.405, 52.525, 13.415, 52.535)],
        });
        let area = parse(&value).unwrap();
        assert!(contains(&area, 52.522, 13.402, None));
        assert!(!contains(&area, 52.53, 13.41, None));
        assert!(contains(&area, 52.525, 13.41, None), "hole boundary");
        // Centre of the hole is ~555 m from its north and south edges and ~340 m from the
        // east and west ones.
        let to_side = Haversine.distance(Point::new(13.41, 52.53), Point::new(13.405, 52.53));
        assert!(!contains(&area, 52.53, 13.41, Some(to_side - 2.0)));
        assert!(contains(&area, 52.53, 13.41, Some(to_side + 2.0)));
    }

    #[test]
    fn multipolygon_contains_any_member() {
        let value = json!({
            "type": "MultiPolygon",
            "coordinates": [[ring(0.0, 0.0, 1.0, 1.0)], [ring(2.0, 0.0, 3.0, 1.0)]],
        });
        let area = parse(&value).unwrap();
        assert!(contains(&area, 0.5, 0.5, None));
        assert!(contains(&area, 0.5, 2.5, None));
        assert!(!contains(&area, 0.5, 1.5, None));
        // 1.5 is ~55.6 km from both.
        assert!(contains(&area, 0.5, 1.5, Some(56_000.0)));
    }

    #[test]
    fn circle_inside_outside_and_accuracy() {
        let area =
            parse(&json!({"type": "Circle", "center": [13.40, 52.52], "radius_m": 500})).unwrap();
        assert!(contains(&area, 52.52, 13.40, None));
        let lat_400 = 52.52 + north(400.0);
        let lat_600 = 52.52 + north(600.0);
        assert!(contains(&area, lat_400, 13.40, None));
        assert!(!contains(&area, lat_600, 13.40, None));
        assert!(!contains(&area, lat_600, 13.40, Some(98.0)));
        assert!(contains(&area, lat_600, 13.40, Some(102.0)));
        let lon_600 = 13.40 + east(52.52, 600.0);
        assert!(!contains(&area, 52.52, lon_600, Some(98.0)));
        assert!(contains(&area, 52.52, lon_600, Some(102.0)));
    }

    #[test]
    fn odd_accuracy_and_positions_are_handled() {
        let area = parse(&square()).unwrap();
        let circle = parse(&json!({"type": "Circle", "center": [0, 0], "radius_m": 10})).unwrap();
        for a in [&area, &circle] {
            assert!(!contains(a, f64::NAN, 13.405, None));
            assert!(!contains(a, 52.525, f64::INFINITY, Some(f64::INFINITY)));
            // Far away: NaN and negative accuracies count as 0; infinite reaches everything.
            assert!(!contains(a, -45.0, -100.0, Some(f64::NAN)));
            assert!(!contains(a, -45.0, -100.0, Some(-1e9)));
            assert!(contains(a, -45.0, -100.0, Some(f64::INFINITY)));
            assert!(contains(a, -45.0, -100.0, Some(f64::MAX)));
        }
        // Inside stays inside with a NaN accuracy.
        assert!(contains(&area, 52.525, 13.405, Some(f64::NAN)));
    }

    #[test]
    fn poles_and_antimeridian_do_not_panic() {
        let near_pole =
            json!({"type": "Polygon", "coordinates": [ring(-180.0, 89.0, 180.0, 90.0)]});
        let area = parse(&near_pole).unwrap();
        assert!(contains(&area, 90.0, 0.0, None));
        assert!(!contains(&area, -90.0, 0.0, Some(1000.0)));
        assert!(contains(&area, 88.99, 0.0, Some(2_000.0)));
        // Meant to span the antimeridian; read as spanning the globe the other way.
        let wrapped = json!({"type": "Polygon", "coordinates": [ring(179.0, 0.0, -179.0, 1.0)]});
        let area = parse(&wrapped).unwrap();
        assert!(contains(&area, 0.5, 0.0, None));
        let _ = contains(&area, 0.5, 179.5, Some(10.0));
        let circle =
            parse(&json!({"type": "Circle", "center": [180, 90], "radius_m": 50000})).unwrap();
        assert!(contains(&circle, 90.0, -180.0, None));
        assert!(contains(&circle, 89.9, 0.0, None));
    }

    #[test]
    fn large_valid_polygon_parses() {
        let n = 995;
        let coords: Vec<Value> = (0..=n)
            .map(|i| {
                let t = std::f64::consts::TAU * (i % n) as f64 / n as f64;
                json!([13.4 + 0.01 * t.cos(), 52.5 + 0.01 * t.sin()])
            })
            .collect();
        let value = json!({"type": "Polygon", "coordinates": [coords]});
        let area = parse(&value).unwrap();
        assert!(contains(&area, 52.5, 13.4, None));
        assert_eq!(parse(&to_geojson(&area)).unwrap(), area);
    }

    #[test]
    fn hand_built_inconsistent_kind_serializes_as_multipolygon() {
        let Area::Polygons { polygons, .. } = parse(&square()).unwrap() else {
            unreachable!()
        };
        let mut two = polygons.clone();
        two.0.extend(polygons.0);
        let area = Area::Polygons {
            polygons: two,
            kind: PolygonKind::Polygon,
        };
        assert_eq!(to_geojson(&area)["type"], "MultiPolygon");
    }

    // --- Properties ---

    /// JSON values built from the vocabulary of areas, to reach deep into the parser.
    fn json_ish() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            (-200.0f64..200.0).prop_map(Value::from),
            (-3i32..4).prop_map(Value::from),
            prop_oneof![
                Just("Polygon"),
                Just("MultiPolygon"),
                Just("Circle"),
                Just("Feature"),
                Just("Point"),
                Just(""),
            ]
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(6, 256, 8, |inner| {
            let key = prop_oneof![
                Just("type".to_owned()),
                Just("coordinates".to_owned()),
                Just("center".to_owned()),
                Just("radius_m".to_owned()),
                Just("bbox".to_owned()),
                "[a-z]{0,3}",
            ];
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                proptest::collection::btree_map(key, inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Closed rings on a coarse grid: lots of collinear, repeated and touching positions.
    fn grid_ring() -> impl Strategy<Value = Value> {
        proptest::collection::vec((0i32..4, 0i32..4), 3..7).prop_map(|mut points| {
            points.push(points[0]);
            Value::from(
                points
                    .into_iter()
                    .map(|(x, y)| json!([f64::from(x), f64::from(y)]))
                    .collect::<Vec<_>>(),
            )
        })
    }

    fn grid_polygons() -> impl Strategy<Value = Value> {
        let polygon = || proptest::collection::vec(grid_ring(), 1..4);
        prop_oneof![
            polygon().prop_map(|rings| json!({"type": "Polygon", "coordinates": rings})),
            proptest::collection::vec(polygon(), 1..4)
                .prop_map(|polys| json!({"type": "MultiPolygon", "coordinates": polys})),
        ]
    }

    /// A valid star-shaped polygon around (lat, lon) or a circle; always accepted.
    fn valid_area() -> impl Strategy<Value = Value> {
        let star = (
            -170.0f64..170.0,
            -80.0f64..80.0,
            3usize..16,
            proptest::collection::vec((0.0f64..0.5, 0.001f64..0.05), 16),
        )
            .prop_map(|(lon, lat, n, spokes)| {
                let mut coords: Vec<Value> = spokes[..n]
                    .iter()
                    .enumerate()
                    .map(|(i, (jitter, r))| {
                        let t = std::f64::consts::TAU * (i as f64 + jitter) / n as f64;
                        json!([lon + r * t.cos(), lat + r * t.sin()])
                    })
                    .collect();
                coords.push(coords[0].clone());
                json!({"type": "Polygon", "coordinates": [coords]})
            });
        let circle = (-180.0f64..=180.0, -90.0f64..=90.0, 0.1f64..=50_000.0).prop_map(
            |(lon, lat, r)| json!({"type": "Circle", "center": [lon, lat], "radius_m": r}),
        );
        prop_oneof![star, circle]
    }

    /// An accepted area and a position near it (within ~0.1°).
    fn area_and_nearby_point() -> impl Strategy<Value = (Area, f64, f64)> {
        (valid_area(), -0.1f64..0.1, -0.1f64..0.1).prop_filter_map(
            "accepted area",
            |(value, dlat, dlon)| {
                let area = parse(&value).ok()?;
                let (lon, lat) = match &area {
                    Area::Circle { center, .. } => (center.x(), center.y()),
                    Area::Polygons { polygons, .. } => {
                        let c = polygons.0.first()?.exterior().0.first()?;
                        (c.x, c.y)
                    }
                };
                Some((
                    area,
                    (lat + dlat).clamp(-90.0, 90.0),
                    (lon + dlon).clamp(-180.0, 180.0),
                ))
            },
        )
    }

    fn accuracy() -> impl Strategy<Value = f64> {
        prop_oneof![
            0.0f64..100.0,
            0.0f64..20_000.0,
            Just(0.0),
            Just(f64::INFINITY)
        ]
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_json_ish_input(value in json_ish(), max in 0usize..64) {
            if let Ok(area) = parse_area(&value, max) {
                prop_assert_eq!(parse_area(&to_geojson(&area), max), Ok(area));
            }
        }

        #[test]
        fn parse_never_panics_on_degenerate_grids(
            value in grid_polygons(),
            lat in -1.0f64..5.0,
            lon in -1.0f64..5.0,
            acc in proptest::option::of(-10.0f64..1e6),
        ) {
            if let Ok(area) = parse_area(&value, 200) {
                let again = parse_area(&to_geojson(&area), 200);
                prop_assert_eq!(again.as_ref(), Ok(&area));
                let _ = contains(&area, lat, lon, acc);
            }
        }

        #[test]
        fn never_panics_on_arbitrary_numbers(
            numbers in proptest::collection::vec(any::<f64>(), 1..12),
            lat in any::<f64>(),
            lon in any::<f64>(),
            acc in proptest::option::of(any::<f64>()),
        ) {
            let json_number =
                |f: f64| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number);
            let positions: Vec<Value> = numbers
                .chunks(2)
                .map(|c| Value::Array(c.iter().copied().map(json_number).collect()))
                .collect();
            let mut ring = positions.clone();
            ring.extend(positions.first().cloned());
            for value in [
                json!({"type": "Polygon", "coordinates": [ring]}),
                json!({
                    "type": "Circle",
                    "center": positions[0],
                    "radius_m": json_number(numbers[0]),
                }),
            ] {
                if let Ok(area) = parse_area(&value, 100) {
                    let _ = contains(&area, lat, lon, acc);
                }
            }
        }

        #[test]
        fn valid_areas_are_accepted_and_round_trip(value in valid_area()) {
            let area = parse(&value);
            prop_assert!(area.is_ok(), "{value} rejected: {area:?}");
            prop_assert_eq!(to_geojson(area.as_ref().unwrap()), value);
        }

        #[test]
        fn inside_is_inside_for_every_accuracy(
            (area, lat, lon) in area_and_nearby_point(),
            acc in accuracy(),
        ) {
            if contains(&area, lat, lon, None) {
                prop_assert!(contains(&area, lat, lon, Some(acc)));
            }
        }

        #[test]
        fn contains_is_monotone_in_accuracy(
            (area, lat, lon) in area_and_nearby_point(),
            a in accuracy(),
            b in accuracy(),
        ) {
            let (small, large) = if a <= b { (a, b) } else { (b, a) };
            if contains(&area, lat, lon, Some(small)) {
                prop_assert!(contains(&area, lat, lon, Some(large)));
            }
        }

        /// The accuracy allowance matches the distance to the area: just short of the
        /// distance is outside, just over is inside (circles: exact haversine).
        #[test]
        fn circle_allowance_is_the_distance_to_the_rim(
            (area, lat, lon) in area_and_nearby_point(),
        ) {
            if let Area::Circle { center, radius_m } = area {
                let gap = Haversine.distance(center, Point::new(lon, lat)) - radius_m;
                if gap > 1.0 {
                    prop_assert!(!contains(&area, lat, lon, Some(gap - 0.5)));
                    prop_assert!(contains(&area, lat, lon, Some(gap + 0.5)));
                }
            }
        }
    }
}
