//! `/app/`: the Progressive Web App (the reference client of the API). Its files live in
//! `web/app/` and are compiled into the binary, so the server needs nothing beside it and the
//! browser loads nothing from anywhere else.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse};
use rust_embed::RustEmbed;

use super::problem::problem_response;

#[derive(RustEmbed)]
#[folder = "web/app/"]
struct Assets;

/// `Cache-Control` of the app's files: the browser may keep them but must revalidate (cheap:
/// an `ETag` from the file's hash answers 304). The service worker keeps its own copy for
/// offline use.
const CACHE_CONTROL: &str = "no-cache";

/// Paths the app routes itself (links in push messages and emails point at some of them):
/// each loads the app shell.
fn is_app_route(path: &str) -> bool {
    match path {
        "" | "index.html" | "outing" | "board" | "planned" | "settings" | "report"
        | "incidents" => true,
        _ => match path.split_once('/') {
            Some(("alerts" | "outings" | "incidents", id)) => is_id(id),
            _ => false,
        },
    }
}

fn is_id(segment: &str) -> bool {
    !segment.is_empty()
        && segment.len() <= 64
        && segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// The content type of an embedded file, by extension: only the kinds the app ships.
pub fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("webmanifest") => "application/manifest+json",
        Some("json") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// `GET /` and `GET /app`: the app (its service worker's scope is `/app/`).
pub async fn redirect_to_app() -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, "/app/"))
        .finish()
}

/// `GET /app/{path}`: an embedded file, or the app shell for the app's own routes.
pub async fn asset(req: HttpRequest) -> HttpResponse {
    let path = req.match_info().get("path").unwrap_or_default();
    let name = if is_app_route(path) {
        "index.html"
    } else {
        path
    };
    let Some(file) = Assets::get(name) else {
        return problem_response(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            &format!("no file /app/{path}"),
        );
    };
    let etag = format!("\"{}\"", hex::encode(file.metadata.sha256_hash()));
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    if fresh {
        return HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .insert_header((header::CACHE_CONTROL, CACHE_CONTROL))
            .finish();
    }
    HttpResponse::Ok()
        .content_type(content_type(name))
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, CACHE_CONTROL))
        .body(file.data.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_routes_load_the_shell() {
        for path in [
            "",
            "settings",
            "alerts/8a1c1d0e-4b7e-4c38-9d4e-0d5e6f7a8b9c",
            "outings/x1",
            "report",
            "incidents",
            "incidents/8a1c1d0e-4b7e-4c38-9d4e-0d5e6f7a8b9c",
        ] {
            assert!(is_app_route(path), "{path}");
        }
        for path in ["x", "alerts/", "alerts/a/b", "app.js", "../Cargo.toml"] {
            assert!(!is_app_route(path), "{path}");
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("sw.js"), "text/javascript; charset=utf-8");
        assert_eq!(
            content_type("manifest.webmanifest"),
            "application/manifest+json"
        );
        assert_eq!(content_type("x"), "application/octet-stream");
    }

    #[test]
    fn every_shipped_file_has_a_known_type() {
        for name in Assets::iter() {
            assert_ne!(
                content_type(&name),
                "application/octet-stream",
                "{name} would be served as octet-stream"
            );
        }
        assert!(Assets::get("index.html").is_some());
        assert!(Assets::get("sw.js").is_some());
    }

    /// The service worker caches the shell on install (one missing file fails the install),
    /// and a file left out of it would be missing offline.
    #[test]
    fn the_service_worker_caches_exactly_the_shipped_files() {
        let sw = Assets::get("sw.js").unwrap();
        let sw = std::str::from_utf8(&sw.data).unwrap();
        let list = sw
            .split_once("const SHELL = [")
            .and_then(|(_, rest)| rest.split_once("];"))
            .unwrap()
            .0;
        let mut cached: Vec<String> = list
            .split(',')
            .map(|item| item.trim().trim_matches('\'').to_owned())
            .filter(|item| !item.is_empty())
            .map(|item| item.trim_start_matches("/app/").to_owned())
            .collect();
        cached.sort();
        let mut shipped: Vec<String> = Assets::iter()
            .filter(|name| name != "sw.js")
            .map(|name| {
                if name == "index.html" {
                    String::new()
                } else {
                    name.into_owned()
                }
            })
            .collect();
        shipped.sort();
        assert_eq!(cached, shipped);
    }
}
