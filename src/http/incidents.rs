//! `/incidents`: the incident log shared with the party and the police, and its printable
//! evidence record.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::extract::{path_id, ApiJson, Caller, OptionalJson};
use super::pagination::{self, Page};
use super::problem::Problem;
use crate::domain::checkin::{Latitude, Longitude};
use crate::domain::field_error::FieldErrors;
use crate::domain::ids::OutingId;
use crate::domain::incident::{self, Category};
use crate::domain::time::{from_millis, local_and_utc, rfc3339};
use crate::error::AppError;
use crate::service::incidents::{self as service, NewIncident, Seen};
use crate::state::AppState;
use crate::store::DbConn;
use crate::wire::IncidentView;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    /// `verbal_abuse`, `threat`, `harassment`, `assault`, `damage` or `other`.
    pub category: String,
    /// 1–4000 characters.
    pub description: String,
    /// When it happened (default: now).
    #[serde(default)]
    pub occurred_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub lat: Option<f64>,
    #[serde(default)]
    pub lon: Option<f64>,
    #[serde(default)]
    pub outing_id: Option<String>,
    pub share_with_police: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EntryRequest {
    /// 1–4000 characters.
    pub text: String,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct CloseRequest {
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct IncidentQuery {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

fn parse_report(body: ReportRequest) -> Result<NewIncident, AppError> {
    let mut errors = FieldErrors::new();
    let category = Category::parse(&body.category);
    if category.is_none() {
        errors.push(
            "category",
            "must be one of verbal_abuse, threat, harassment, assault, damage, other",
        );
    }
    let description = incident::parse_text(
        &mut errors,
        "description",
        &body.description,
        incident::MAX_DESCRIPTION_CHARS,
    );
    let position = match (body.lat, body.lon) {
        (None, None) => None,
        (Some(lat), Some(lon)) => {
            let lat = Latitude::parse(lat).map_err(|e| errors.0.push(e)).ok();
            let lon = Longitude::parse(lon).map_err(|e| errors.0.push(e)).ok();
            lat.zip(lon).map(|(lat, lon)| (lat.get(), lon.get()))
        }
        (Some(_), None) => {
            errors.push("lon", "is required with lat");
            None
        }
        (None, Some(_)) => {
            errors.push("lat", "is required with lon");
            None
        }
    };
    let outing_id = match body.outing_id.as_deref() {
        None => None,
        Some(raw) => match raw.parse::<OutingId>() {
            Ok(id) => Some(id),
            Err(_) => {
                errors.push("outing_id", "must be an outing id");
                None
            }
        },
    };
    match (category, description) {
        (Some(category), Some(description)) if errors.is_empty() => Ok(NewIncident {
            category,
            description,
            occurred_at_ms: body.occurred_at.map(|t| t.timestamp_millis()),
            position,
            outing_id,
            share_with_police: body.share_with_police,
        }),
        _ => Err(AppError::Validation(errors.0)),
    }
}

/// The view, and an audit row when the caller reads someone else's position.
fn view_audited(
    conn: &mut DbConn,
    caller: &Caller,
    seen: &Seen,
    now_ms: i64,
) -> Result<IncidentView, AppError> {
    if service::location_read_is_audited(caller, &seen.row)? {
        service::audit_location_read(conn, caller, &seen.row, now_ms)?;
    }
    service::view(conn, seen)
}

#[utoipa::path(post, path = "/api/v1/incidents", tag = "incidents", security(("bearer" = [])),
    request_body = ReportRequest,
    responses((status = 201, body = IncidentView),
              (status = 403, description = "not a canvasser or organiser of an organisation", body = Problem),
              (status = 422, body = Problem)))]
pub async fn report_incident(
    state: web::Data<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ReportRequest>,
) -> Result<HttpResponse, AppError> {
    let new = parse_report(body)?;
    let now_ms = state.clock.now_ms();
    let view = state
        .store
        .write(move |conn| {
            let seen = service::report(conn, &caller, new, now_ms)?;
            service::view(conn, &seen)
        })
        .await?;
    state.changed();
    Ok(HttpResponse::Created().json(view))
}

#[utoipa::path(get, path = "/api/v1/incidents", tag = "incidents", security(("bearer" = [])),
    params(IncidentQuery),
    responses((status = 200, body = Page<IncidentView>), (status = 422, body = Problem)))]
pub async fn list_incidents(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<IncidentQuery>,
) -> Result<HttpResponse, AppError> {
    let limit = pagination::limit(query.limit)?;
    let before = pagination::decode_cursor(query.cursor.as_deref())?;
    let now_ms = state.clock.now_ms();
    let items = state
        .store
        .write(move |conn| {
            let seen = service::list(conn, &caller, before, limit)?;
            seen.iter()
                .map(|s| view_audited(conn, &caller, s, now_ms))
                .collect::<Result<Vec<_>, AppError>>()
        })
        .await?;
    let next_cursor = pagination::next_cursor(&items, limit, |i| {
        (i.reported_at.timestamp_millis(), i.id.as_str())
    });
    Ok(HttpResponse::Ok().json(Page { items, next_cursor }))
}

#[utoipa::path(get, path = "/api/v1/incidents/{id}", tag = "incidents", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = IncidentView), (status = 404, body = Problem)))]
pub async fn get_incident(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id: uuid::Uuid = path_id(&id, "incident")?;
    let now_ms = state.clock.now_ms();
    let view = state
        .store
        .write(move |conn| {
            let seen = service::read(conn, &caller, &id.to_string())?;
            view_audited(conn, &caller, &seen, now_ms)
        })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(post, path = "/api/v1/incidents/{id}/entries", tag = "incidents", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = EntryRequest,
    responses((status = 201, body = IncidentView), (status = 404, body = Problem),
              (status = 409, description = "the incident is closed", body = Problem),
              (status = 422, body = Problem)))]
pub async fn add_incident_entry(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    ApiJson(body): ApiJson<EntryRequest>,
) -> Result<HttpResponse, AppError> {
    let id: uuid::Uuid = path_id(&id, "incident")?;
    let mut errors = FieldErrors::new();
    let text = incident::parse_text(&mut errors, "text", &body.text, incident::MAX_ENTRY_CHARS)
        .ok_or(AppError::Validation(errors.0))?;
    let now_ms = state.clock.now_ms();
    let view = state
        .store
        .write(move |conn| {
            let seen = service::add_entry(conn, &caller, &id.to_string(), "note", text, now_ms)?;
            view_audited(conn, &caller, &seen, now_ms)
        })
        .await?;
    Ok(HttpResponse::Created().json(view))
}

#[utoipa::path(post, path = "/api/v1/incidents/{id}/close", tag = "incidents", security(("bearer" = [])),
    params(("id" = String, Path)), request_body(content = CloseRequest, description = "optional"),
    responses((status = 200, body = IncidentView),
              (status = 403, description = "only its reporter and the organisers close it", body = Problem),
              (status = 404, body = Problem), (status = 409, description = "already closed", body = Problem),
              (status = 422, body = Problem)))]
pub async fn close_incident(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    OptionalJson(body): OptionalJson<CloseRequest>,
) -> Result<HttpResponse, AppError> {
    let id: uuid::Uuid = path_id(&id, "incident")?;
    let note = match body.note.as_deref() {
        None => None,
        Some(raw) => {
            let mut errors = FieldErrors::new();
            Some(
                incident::parse_text(&mut errors, "note", raw, incident::MAX_ENTRY_CHARS)
                    .ok_or(AppError::Validation(errors.0))?,
            )
        }
    };
    let now_ms = state.clock.now_ms();
    let view = state
        .store
        .write(move |conn| {
            let seen = service::close(conn, &caller, &id.to_string(), note, now_ms)?;
            view_audited(conn, &caller, &seen, now_ms)
        })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(get, path = "/api/v1/incidents/{id}/export", tag = "incidents", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, description = "a printable HTML evidence record", content_type = "text/html"),
              (status = 404, body = Problem)))]
pub async fn export_incident(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id: uuid::Uuid = path_id(&id, "incident")?;
    let now_ms = state.clock.now_ms();
    let html = state
        .store
        .write(move |conn| {
            let seen = service::read(conn, &caller, &id.to_string())?;
            let view = view_audited(conn, &caller, &seen, now_ms)?;
            let zone = service::zone_of(conn, &seen)?;
            Ok(render_export(&view, &service::check(&seen), zone, now_ms))
        })
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        // A printed record, not a page to index or to frame.
        .insert_header(("X-Robots-Tag", "noindex"))
        .insert_header((
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; frame-ancestors 'none'",
        ))
        .insert_header(("Cache-Control", "no-store"))
        .body(html))
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' => out.push_str("<br>"),
            c => out.push(c),
        }
    }
    out
}

/// The evidence record: every fact of the report, every entry with its time, author and hash,
/// and whether each link of the chain still matches its content.
fn render_export(
    view: &IncidentView,
    links: &[crate::domain::incident::CheckedLink],
    zone: chrono_tz::Tz,
    now_ms: i64,
) -> String {
    let when = |at: DateTime<Utc>| local_and_utc(at, zone);
    let intact = links.iter().all(|l| l.intact);
    let link_state = |i: usize| match links.get(i) {
        Some(l) if l.intact => "intact".to_owned(),
        _ => "BROKEN: this record was changed after it was written".to_owned(),
    };
    let category = view.category.label();
    let location = match &view.location {
        Some(p) => format!(
            "{:.5}, {:.5} (WGS84) — https://www.openstreetmap.org/?mlat={:.5}&amp;mlon={:.5}#map=18/{:.5}/{:.5}",
            p.lat, p.lon, p.lat, p.lon, p.lat, p.lon
        ),
        None => "not given".to_owned(),
    };
    let mut entries = String::new();
    for (i, e) in view.entries.iter().enumerate() {
        entries.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code><br>{}</td></tr>\n",
            escape(&when(e.at)),
            escape(&e.author.display_name),
            escape(&e.kind),
            escape(&e.text),
            escape(&e.hash),
            escape(&link_state(i + 1)),
        ));
    }
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="robots" content="noindex">
<title>Incident record {id}</title>
<style>body{{font:14px/1.4 sans-serif;margin:2em;max-width:60em}}table{{border-collapse:collapse;width:100%}}
td,th{{border:1px solid #999;padding:.3em;vertical-align:top;text-align:left}}code{{word-break:break-all;font-size:12px}}
.broken{{color:#a00;font-weight:bold}}</style></head><body>
<h1>Incident record</h1>
<p class="{chain_class}">Chain of entries: {chain}</p>
<table>
<tr><th>Incident</th><td><code>{id}</code></td></tr>
<tr><th>Organisation</th><td><code>{org}</code></td></tr>
<tr><th>Category</th><td>{category}</td></tr>
<tr><th>Reported by</th><td>{reporter} (<code>{reporter_id}</code>)</td></tr>
<tr><th>Happened</th><td>{occurred}</td></tr>
<tr><th>Reported</th><td>{reported}</td></tr>
<tr><th>Location</th><td>{location}</td></tr>
<tr><th>Outing</th><td>{outing}</td></tr>
<tr><th>Shared with the police contact</th><td>{shared}</td></tr>
<tr><th>Status</th><td>{status}</td></tr>
<tr><th>Report</th><td>{description}</td></tr>
<tr><th>Report hash</th><td><code>{report_hash}</code><br>{report_state}</td></tr>
</table>
<h2>Entries</h2>
<table><tr><th>Time</th><th>Author</th><th>Kind</th><th>Text</th><th>Hash (SHA-256 of the previous hash and the entry)</th></tr>
{entries}</table>
<p>Head of the chain: <code>{head}</code></p>
<p>Exported {exported}. Each hash is the SHA-256 (hex) of the previous link's hash and the entry; a changed entry no longer matches its hash, and a replaced hash no longer matches the next one.</p>
</body></html>
"#,
        id = escape(&view.id),
        org = escape(&view.org_id),
        chain_class = if intact { "" } else { "broken" },
        chain = if intact {
            "intact".to_owned()
        } else {
            "BROKEN: at least one link no longer matches what was written".to_owned()
        },
        category = escape(category),
        reporter = escape(&view.reporter.display_name),
        reporter_id = view.reporter.id,
        occurred = escape(&when(view.occurred_at)),
        reported = escape(&when(view.reported_at)),
        location = location,
        outing = view.outing_id.as_deref().map_or("none".to_owned(), escape),
        shared = if view.share_with_police { "yes" } else { "no" },
        status = view.status,
        description = escape(&view.description),
        report_hash = links.first().map_or("", |l| l.stored.as_str()),
        report_state = escape(&link_state(0)),
        entries = entries,
        head = escape(&view.hash),
        exported = escape(&rfc3339(from_millis(now_ms))),
    )
}
