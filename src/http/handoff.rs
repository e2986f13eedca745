//! The hand-off to the police: `POST`/`DELETE /api/v1/alerts/{id}/handoff` make and revoke a
//! capability link, and `GET /handoff/{token}` is the page it opens, without an account: one
//! printable, phone-sized HTML page that reloads itself every 15 s. The page's headers (its
//! own strict CSP, `noindex`, `no-store`) are set by `middleware::security_headers` for every
//! path under `/handoff/`, the 404 page included.

use std::fmt::Write as _;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::{path_id, Caller};
use super::problem::Problem;
use crate::domain::area::Area;
use crate::domain::escalation::{AlertKind, AlertStatus, OutingStatus};
use crate::domain::handoff::{self, age_text, distance_text, Frame};
use crate::domain::ids::AlertId;
use crate::domain::time::{from_millis, local_and_utc};
use crate::error::AppError;
use crate::service::handoff::{self as service, Fix, Page, TrailPoint, Visitor};
use crate::state::AppState;
use crate::store::handoff::Person;

/// A new hand-off link. The token in `url` is shown only here: the server keeps its hash.
#[derive(Serialize, ToSchema)]
pub struct HandoffLink {
    /// The page to give the police: `<public_url>/handoff/<token>`; opens without an account.
    pub url: String,
    /// When it stops working unless revoked sooner: 24 h from now, or an hour after the alert
    /// is resolved, whichever is first.
    pub expires_at: DateTime<Utc>,
    /// The same link as a QR code: an SVG document (`image/svg+xml`), for a phone to scan.
    pub qr_svg: String,
}

/// Where people reach this server: `server.public_url`, or else the request's own origin.
fn origin(req: &HttpRequest, state: &AppState) -> String {
    if let Some(url) = &state.settings.server.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    if state.settings.server.trust_forwarded_for {
        let info = req.connection_info();
        return format!("{}://{}", info.scheme(), info.host());
    }
    // Not behind a proxy the operator vouches for: the Host this request was sent to (never
    // X-Forwarded-Host, which anyone can set).
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| req.app_config().host().to_owned());
    let scheme = if req.app_config().secure() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}")
}

fn qr_svg(url: &str) -> Result<String, AppError> {
    let code = qrcode::QrCode::new(url.as_bytes())
        .map_err(|e| AppError::internal(format!("QR code of the hand-off link: {e}")))?;
    Ok(code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(240, 240)
        .quiet_zone(true)
        .build())
}

#[utoipa::path(post, path = "/api/v1/alerts/{id}/handoff", tag = "alerts", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 201, description = "a new hand-off link (the alert's previous one, if any, no longer opens)", body = HandoffLink),
              (status = 403, description = "the alert's canvasser or a companion: only organisers and police contacts hand an alert over", body = Problem),
              (status = 404, body = Problem),
              (status = 409, description = "the alert was resolved more than an hour ago", body = Problem)))]
pub async fn create_handoff(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let alert_id: AlertId = path_id(&id, "alert")?;
    let now_ms = state.clock.now_ms();
    let random: [u8; handoff::TOKEN_BYTES] = rand::random();
    let created = state
        .store
        .write(move |conn| service::create(conn, &caller, alert_id, random, now_ms))
        .await?;
    let url = format!("{}/handoff/{}", origin(&req, &state), created.token);
    let qr_svg = qr_svg(&url)?;
    Ok(HttpResponse::Created().json(HandoffLink {
        url,
        expires_at: from_millis(created.expires_at_ms),
        qr_svg,
    }))
}

#[utoipa::path(delete, path = "/api/v1/alerts/{id}/handoff", tag = "alerts", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204, description = "the alert's hand-off link no longer opens (also when it had none)"),
              (status = 403, description = "the alert's canvasser or a companion", body = Problem),
              (status = 404, body = Problem)))]
pub async fn revoke_handoff(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let alert_id: AlertId = path_id(&id, "alert")?;
    let now_ms = state.clock.now_ms();
    state
        .store
        .write(move |conn| service::revoke(conn, &caller, alert_id, now_ms))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/handoff/{token}", tag = "handoff",
    params(("token" = String, Path, description = "the token of a hand-off link")),
    responses((status = 200, description = "the hand-off page (HTML, no account needed; reloads itself every 15 s); the opening is written to the audit log with the client's address", content_type = "text/html"),
              (status = 404, description = "an HTML page saying the link has expired or was withdrawn (unknown, revoked and expired links alike)", content_type = "text/html"),
              (status = 503, body = Problem)))]
pub async fn handoff_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let raw = token.into_inner();
    // A malformed token names no link: answered at once, without a trip to the writer.
    if !handoff::is_token(&raw) {
        return Ok(gone());
    }
    let visitor = Visitor {
        address: super::auth::client_address(&req, &state),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    let now_ms = state.clock.now_ms();
    let page = state
        .store
        .write(move |conn| service::open(conn, &raw, &visitor, now_ms))
        .await?;
    Ok(match page {
        Some(page) => HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(render(&page)),
        None => gone(),
    })
}

/// The one answer for every link that opens nothing: it says no more than that.
fn gone() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/html; charset=utf-8")
        .body(GONE_PAGE)
}

const GONE_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow"><meta name="referrer" content="no-referrer">
<title>Link expired or withdrawn</title>
<style>body{font:18px/1.5 system-ui,sans-serif;margin:1.5em auto;max-width:36em;padding:0 1em;color:#111}</style>
</head><body>
<h1>This link has expired or was withdrawn</h1>
<p>Hand-off links stop working a day after they are made, an hour after the alert is over, or
when the organisation withdraws them. Ask the organisation that sent it for a new one.</p>
</body></html>
"#;

// ---------- the page ----------

/// Text for HTML: every byte of user text goes through here.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn kind_text(kind: AlertKind) -> &'static str {
    match kind {
        AlertKind::MissedCheckin => "Missed check-in",
        AlertKind::NeedHelp => "Asked for help",
        AlertKind::Panic => "PANIC",
        AlertKind::Duress => "DURESS (silent alarm)",
        AlertKind::WrongPins => "Wrong PINs typed on their phone",
    }
}

/// What the police must know before they call: the phone may be in the wrong hands.
fn silent_warning(kind: AlertKind) -> Option<&'static str> {
    match kind {
        AlertKind::Duress => Some(
            "Do not call or message them. They used their duress PIN: someone may be with them, \
             watching their phone, which shows nothing of this alert. Send help to their last \
             position.",
        ),
        AlertKind::WrongPins => Some(
            "Do not call or message them. Five wrong PINs in a row were typed on their phone: \
             someone else may have it. Their phone shows nothing of this alert.",
        ),
        _ => None,
    }
}

fn point_text(point: &TrailPoint, alert: AlertKind) -> String {
    match point.checkin_kind.as_deref() {
        Some("ok") => "Checked in: OK".to_owned(),
        Some("need_help") => "Asked for help".to_owned(),
        Some("panic") => "Panic".to_owned(),
        Some("end") => "Ended the outing".to_owned(),
        Some(other) => escape(other),
        None => format!("Position sent with the alert ({})", kind_text(alert)),
    }
}

fn tel(phone: &str) -> String {
    let digits: String = phone
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '+')
        .collect();
    format!(
        r#"<a class="tel" href="tel:{digits}">{}</a>"#,
        escape(phone)
    )
}

fn person_line(p: &Person) -> String {
    match &p.phone {
        Some(phone) => format!("{} — {}", escape(&p.display_name), tel(phone)),
        None => format!("{} — no phone number given", escape(&p.display_name)),
    }
}

fn osm(lat: f64, lon: f64) -> String {
    format!(
        "https://www.openstreetmap.org/?mlat={lat:.6}&amp;mlon={lon:.6}#map=18/{lat:.6}/{lon:.6}"
    )
}

fn coords_link(lat: f64, lon: f64) -> String {
    format!(
        r#"<a href="{}" rel="noreferrer noopener" target="_blank">{lat:.5}, {lon:.5}</a>"#,
        osm(lat, lon)
    )
}

fn accuracy_text(accuracy_m: Option<f64>) -> String {
    match accuracy_m {
        Some(a) if a.is_finite() => format!("±{} m", a.round()),
        _ => "accuracy unknown".to_owned(),
    }
}

fn area_text(area: &Option<Area>) -> String {
    match area {
        None => "None given.".to_owned(),
        Some(Area::Circle { center, radius_m }) => format!(
            "Within {} m of {}",
            radius_m.round(),
            coords_link(center.y(), center.x())
        ),
        Some(Area::Polygons { polygons, .. }) => {
            let points: usize = polygons
                .0
                .iter()
                .map(|p| p.exterior().0.len().saturating_sub(1))
                .sum();
            match polygons.0.len() {
                1 => format!("An area of {points} corners (drawn on the map)"),
                n => format!("{n} areas of {points} corners in all (drawn on the map)"),
            }
        }
    }
}

/// Points that the map must show: the area's extent, the trail, the last position.
fn map_points(page: &Page) -> Vec<(f64, f64)> {
    let mut points = Vec::new();
    match &page.area {
        Some(Area::Circle { center, radius_m }) => {
            let dlat = handoff::metres_in_lat_degrees(*radius_m);
            let dlon = dlat / center.y().to_radians().cos().max(0.01);
            points.push((center.y() - dlat, center.x() - dlon));
            points.push((center.y() + dlat, center.x() + dlon));
        }
        Some(Area::Polygons { polygons, .. }) => {
            for polygon in &polygons.0 {
                points.extend(polygon.exterior().0.iter().map(|c| (c.y, c.x)));
            }
        }
        None => {}
    }
    points.extend(
        page.trail
            .iter()
            .chain(page.before.as_ref())
            .filter_map(|p| Some((p.lat?, p.lon?))),
    );
    if let Some(fix) = page.last_position {
        points.push((fix.lat, fix.lon));
    }
    points
}

const MAP_W: f64 = 600.0;
const MAP_H: f64 = 400.0;

/// The map: the planned area, the trail since the alert (oldest to newest), the check-in before
/// it, and the last position with its accuracy, drawn in plain SVG (nothing fetched).
fn map_svg(page: &Page) -> Option<String> {
    let frame = Frame::fit(&map_points(page), 150.0, MAP_W, MAP_H, 24.0)?;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg id="map-svg" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {MAP_W} {MAP_H}" role="img" aria-labelledby="map-title map-desc"><title id="map-title">Map of the alert</title><desc id="map-desc">The planned area (blue), the trail since the alert opened (red, oldest to newest), the last check-in before the alert (grey) and the last known position (large red dot). North is up.</desc><rect width="{MAP_W}" height="{MAP_H}" fill="#f3f1ea"/>"##
    );
    match &page.area {
        Some(Area::Circle { center, radius_m }) => {
            let c = frame.project(center.y(), center.x());
            let _ = write!(
                svg,
                r##"<circle class="area" cx="{:.1}" cy="{:.1}" r="{:.1}" fill="#1f5fbf" fill-opacity="0.12" stroke="#1f5fbf" stroke-width="2" stroke-dasharray="8 5"/>"##,
                c.x,
                c.y,
                radius_m * frame.scale
            );
        }
        Some(Area::Polygons { polygons, .. }) => {
            let mut d = String::new();
            for polygon in &polygons.0 {
                for ring in std::iter::once(polygon.exterior()).chain(polygon.interiors()) {
                    for (i, c) in ring.0.iter().enumerate() {
                        let p = frame.project(c.y, c.x);
                        let _ =
                            write!(d, "{}{:.1} {:.1}", if i == 0 { "M" } else { "L" }, p.x, p.y);
                    }
                    d.push('Z');
                }
            }
            let _ = write!(
                svg,
                r##"<path class="area" d="{d}" fill="#1f5fbf" fill-opacity="0.12" fill-rule="evenodd" stroke="#1f5fbf" stroke-width="2" stroke-dasharray="8 5"/>"##
            );
        }
        None => {}
    }
    if let Some(before) = page.before.as_ref().and_then(|c| Some((c.lat?, c.lon?))) {
        let p = frame.project(before.0, before.1);
        let _ = write!(
            svg,
            r##"<circle class="before" cx="{:.1}" cy="{:.1}" r="6" fill="#6b6b6b" stroke="#fff" stroke-width="2"/>"##,
            p.x, p.y
        );
    }
    let trail: Vec<_> = page
        .trail
        .iter()
        .rev()
        .filter_map(|c| Some(frame.project(c.lat?, c.lon?)))
        .collect();
    if trail.len() > 1 {
        let points: Vec<String> = trail
            .iter()
            .map(|p| format!("{:.1},{:.1}", p.x, p.y))
            .collect();
        let _ = write!(
            svg,
            r##"<polyline class="trail" points="{}" fill="none" stroke="#b00020" stroke-width="3" stroke-linejoin="round"/>"##,
            points.join(" ")
        );
    }
    for p in &trail {
        let _ = write!(
            svg,
            r##"<circle class="trail-point" cx="{:.1}" cy="{:.1}" r="4" fill="#b00020"/>"##,
            p.x, p.y
        );
    }
    if let Some(fix) = page.last_position {
        let p = frame.project(fix.lat, fix.lon);
        if let Some(accuracy) = fix.accuracy_m.filter(|a| a.is_finite() && *a > 0.0) {
            let _ = write!(
                svg,
                r##"<circle class="accuracy" cx="{:.1}" cy="{:.1}" r="{:.1}" fill="#b00020" fill-opacity="0.1" stroke="#b00020" stroke-dasharray="3 3"/>"##,
                p.x,
                p.y,
                accuracy * frame.scale
            );
        }
        let _ = write!(
            svg,
            r##"<circle class="last" cx="{:.1}" cy="{:.1}" r="10" fill="#b00020" stroke="#fff" stroke-width="3"/>"##,
            p.x, p.y
        );
    }
    // North arrow and scale bar.
    let (metres, units) = frame.scale_bar(MAP_W / 4.0);
    let _ = write!(
        svg,
        r##"<g font-family="sans-serif" font-size="16" fill="#111"><path d="M{nx} 14l9 22h-18z" fill="#111"/><text x="{nx}" y="54" text-anchor="middle">N</text><rect x="16" y="{by}" width="{units:.1}" height="6" fill="#111"/><text x="16" y="{ty}">{label}</text></g></svg>"##,
        nx = MAP_W - 28.0,
        by = MAP_H - 20.0,
        ty = MAP_H - 28.0,
        label = distance_text(metres),
    );
    Some(svg)
}

fn trail_rows(page: &Page, when: &dyn Fn(i64) -> String) -> String {
    let row = |c: &TrailPoint, class: &str| {
        let position = match (c.lat, c.lon) {
            (Some(lat), Some(lon)) => coords_link(lat, lon),
            _ if c.purged => "removed by retention".to_owned(),
            _ => "no position".to_owned(),
        };
        format!(
            r#"<tr class="{class}"><td data-label="Time">{}<br><span class="age">{}</span></td><td data-label="What">{}</td><td data-label="Position">{position}<br>{}</td><td data-label="Battery">{}</td></tr>"#,
            escape(&when(c.recorded_at)),
            escape(&age_text(page.now_ms - c.recorded_at)),
            point_text(c, page.alert.kind),
            escape(&accuracy_text(c.accuracy_m)),
            c.battery_pct
                .map_or_else(|| "—".to_owned(), |b| format!("{b}%")),
        )
    };
    let mut rows = String::new();
    if page.trail.is_empty() {
        rows.push_str(r#"<tr><td colspan="4">Nothing since the alert opened.</td></tr>"#);
    }
    for c in &page.trail {
        rows.push_str(&row(c, "since"));
        rows.push('\n');
    }
    if let Some(c) = &page.before {
        rows.push_str(&format!(
            r#"<tr class="divider"><th colspan="4">Last check-in before the alert</th></tr>{}"#,
            row(c, "before")
        ));
    }
    rows
}

fn status_text(page: &Page, when: &dyn Fn(i64) -> String) -> String {
    let a = &page.alert;
    match a.status {
        AlertStatus::Open => "OPEN: nobody has taken charge yet".to_owned(),
        AlertStatus::Acknowledged => format!(
            "Acknowledged{}{}",
            page.acknowledged_by
                .as_deref()
                .map_or(String::new(), |n| format!(" by {}", escape(n))),
            a.acknowledged_at
                .map_or(String::new(), |t| format!(" at {}", escape(&when(t)))),
        ),
        AlertStatus::Resolved => format!(
            "Resolved{}{}",
            a.resolved_at
                .map_or(String::new(), |t| format!(" at {}", escape(&when(t)))),
            a.resolution.as_deref().map_or(String::new(), |r| format!(
                ": {}",
                escape(&r.replace('_', " "))
            )),
        ),
    }
}

fn position_block(page: &Page, when: &dyn Fn(i64) -> String) -> String {
    match page.last_position {
        Some(Fix {
            lat,
            lon,
            accuracy_m,
            recorded_at,
        }) => format!(
            r#"<p class="big" id="last-position">{} <span class="age">{}</span></p>
<dl><dt>Accuracy</dt><dd>{}</dd><dt>Recorded</dt><dd>{}</dd><dt>Open in</dt><dd><a href="geo:{lat:.6},{lon:.6}">maps app</a> · <a href="{}" rel="noreferrer noopener" target="_blank">OpenStreetMap</a></dd></dl>"#,
            coords_link(lat, lon),
            escape(&age_text(page.now_ms - recorded_at)),
            escape(&accuracy_text(accuracy_m)),
            escape(&when(recorded_at)),
            osm(lat, lon),
        ),
        None => r#"<p class="big" id="last-position">No known position.</p>"#.to_owned(),
    }
}

fn render(page: &Page) -> String {
    let zone = page.zone;
    let when = move |ms: i64| local_and_utc(from_millis(ms), zone);
    let a = &page.alert;
    let o = &page.outing;
    let warning = silent_warning(a.kind).map_or(String::new(), |w| {
        format!(
            r#"<p class="warning" id="silent" role="alert">{}</p>"#,
            escape(w)
        )
    });
    let companions = if page.companions.is_empty() {
        "<p>None: they are out alone.</p>".to_owned()
    } else {
        let items: Vec<String> = page
            .companions
            .iter()
            .map(|p| format!("<li>{}</li>", person_line(p)))
            .collect();
        format!(r#"<ul id="companion-list">{}</ul>"#, items.join(""))
    };
    let phone = page
        .person
        .phone
        .as_deref()
        .map_or_else(|| "not given".to_owned(), tel);
    let battery = match page.battery {
        Some((pct, at)) => format!(
            "{pct}% <span class=\"age\">({})</span>",
            escape(&age_text(page.now_ms - at))
        ),
        None => "not reported".to_owned(),
    };
    let note = o.note.as_deref().map_or_else(|| "none".to_owned(), escape);
    let outing_state = match o.status {
        OutingStatus::Active => match o.next_checkin_due_at {
            Some(due) => format!("active; next check-in due {}", escape(&when(due))),
            None => "active".to_owned(),
        },
        OutingStatus::Overdue => "OVERDUE: a check-in was missed".to_owned(),
        OutingStatus::Ended => format!(
            "ended{}",
            o.ended_at
                .map_or(String::new(), |t| format!(" {}", escape(&when(t))))
        ),
    };
    let organiser_note = a.note.as_deref().map_or(String::new(), |n| {
        format!("<dt>Note from the organisers</dt><dd>{}</dd>", escape(n))
    });
    let contact = page.contact.as_ref().map_or(String::new(), |p| {
        format!(
            r#"<section id="contact"><h2>Who handed this over</h2><p>{} ({})</p></section>"#,
            person_line(p),
            escape(&page.org_name)
        )
    });
    let map = map_svg(page).map_or_else(
        || "<p>No position or area to draw.</p>".to_owned(),
        |svg| {
            format!(
                r#"{svg}<p class="legend"><span class="key area-key"></span> planned area · <span class="key trail-key"></span> trail since the alert · <span class="key last-key"></span> last position · <span class="key before-key"></span> before the alert</p>"#
            )
        },
    );
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<meta name="referrer" content="no-referrer">
<meta http-equiv="refresh" content="15">
<title>Doorstep: alert hand-off</title>
<style>
body{{font:17px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:48em;padding:0 .8em 2em;color:#111;background:#fff}}
header{{background:#b00020;color:#fff;margin:0 -.8em;padding:.6em .8em}}
header.kind-missed_checkin,header.kind-wrong_pins{{background:#8a4b00}}
h1{{font-size:1.5em;margin:.2em 0}}h2{{font-size:1.15em;margin:1.2em 0 .3em;border-bottom:2px solid #111}}
dl{{display:grid;grid-template-columns:max-content 1fr;gap:.2em .8em;margin:.3em 0}}dt{{font-weight:600}}dd{{margin:0}}
.big{{font-size:1.25em;font-weight:600;margin:.3em 0}}.age{{color:#444;font-weight:normal;font-size:.9em}}
.warning{{border:3px solid #b00020;background:#fff0f0;padding:.6em;font-weight:700}}
a{{color:#0b4cb0}}a.tel{{font-weight:700;font-size:1.1em;white-space:nowrap}}
svg{{width:100%;height:auto;border:1px solid #999;display:block}}
table{{border-collapse:collapse;width:100%;font-size:.95em}}td,th{{border:1px solid #bbb;padding:.3em;text-align:left;vertical-align:top}}
tr.divider th{{background:#eee}}tr.before{{color:#444}}
.legend{{font-size:.9em}}.key{{display:inline-block;width:.9em;height:.9em;vertical-align:middle;border:1px solid #333}}
.area-key{{background:#c9d7ee}}.trail-key{{background:#b00020}}.last-key{{background:#b00020;border-radius:50%}}.before-key{{background:#6b6b6b;border-radius:50%}}
footer{{margin-top:1.5em;font-size:.9em;color:#333}}
@media (max-width:36em){{#trail table,#trail tbody,#trail tr,#trail td,#trail th{{display:block}}#trail thead{{display:none}}#trail tr{{border:1px solid #bbb;margin:.5em 0;padding:.3em .5em}}#trail td,#trail th{{border:none;padding:.1em 0}}#trail td::before{{content:attr(data-label) ": ";font-weight:600}}#trail td[colspan]::before{{content:none}}}}
@media print{{header{{background:none;color:#000;border-bottom:3px solid #000}}a{{color:#000}}footer .refresh{{display:none}}}}
</style></head><body>
<header class="kind-{kind_class}"><h1 id="alert-title">{kind}: {name}</h1>
<p id="alert-status">Level {level} · {status}</p></header>
{warning}
<section id="alert"><h2>The alert</h2><dl>
<dt>Opened</dt><dd>{opened} <span class="age">({opened_age})</span></dd>
<dt>Status</dt><dd>{status}</dd>{organiser_note}
</dl></section>
<section id="person"><h2>The person</h2><dl>
<dt>Name</dt><dd id="person-name">{name}</dd>
<dt>Phone</dt><dd id="person-phone">{phone}</dd>
<dt>Battery</dt><dd id="battery">{battery}</dd>
<dt>Organisation</dt><dd>{org}</dd>
<dt>Outing note</dt><dd id="outing-note">{note}</dd>
</dl></section>
<section id="position"><h2>Last known position</h2>{position}</section>
<section id="map"><h2>Map</h2>{map}</section>
<section id="companions"><h2>With them</h2>{companions}</section>
<section id="outing"><h2>The outing</h2><dl>
<dt>Started</dt><dd>{started}</dd>
<dt>Planned end</dt><dd>{planned_end}</dd>
<dt>Checks in every</dt><dd>{interval} min</dd>
<dt>Now</dt><dd>{outing_state}</dd>
<dt>Planned area</dt><dd id="area">{area}</dd>
</dl></section>
<section id="trail"><h2>Trail since the alert opened (newest first)</h2>
<table><thead><tr><th>Time</th><th>What</th><th>Position</th><th>Battery</th></tr></thead>
<tbody>{trail}</tbody></table></section>
{contact}
<footer><p>Updated {updated}.<span class="refresh"> This page reloads itself every 15 seconds.</span></p>
<p>This link stops working at {expires}, or sooner if withdrawn. Every opening of this page is recorded with the address it came from. Alert reference: <code>{alert_id}</code>.</p></footer>
</body></html>
"#,
        kind_class = a.kind.as_str(),
        kind = kind_text(a.kind),
        name = escape(&page.person.display_name),
        level = a.level(),
        status = status_text(page, &when),
        warning = warning,
        opened = escape(&when(a.opened_at)),
        opened_age = escape(&age_text(page.now_ms - a.opened_at)),
        organiser_note = organiser_note,
        phone = phone,
        battery = battery,
        org = escape(&page.org_name),
        note = note,
        position = position_block(page, &when),
        map = map,
        companions = companions,
        started = escape(&when(o.started_at)),
        planned_end = o
            .planned_end_at
            .map_or_else(|| "not given".to_owned(), |t| escape(&when(t))),
        interval = o.checkin_interval_s / 60,
        outing_state = outing_state,
        area = area_text(&page.area),
        trail = trail_rows(page, &when),
        contact = contact,
        updated = escape(&when(page.now_ms)),
        expires = escape(&when(page.expires_at_ms)),
        alert_id = a.id,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_text_is_escaped() {
        assert_eq!(
            escape(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        let p = Person {
            id: "u".into(),
            display_name: "<b>Jo</b>".into(),
            phone: Some("+44 7700\"><script>".into()),
        };
        let line = person_line(&p);
        assert!(
            !line.contains("<b>") && !line.contains("<script>"),
            "{line}"
        );
        assert!(line.contains(r#"href="tel:+447700""#), "{line}");
    }

    #[test]
    fn the_gone_page_says_nothing_but_that() {
        assert!(GONE_PAGE.contains("expired or was withdrawn"));
        assert!(!GONE_PAGE.contains("refresh"));
    }
}
