//! The hand-off to the police (api.md, "Check on me" → "Hand-off to the police"): a capability
//! link for one alert that opens without an account, shows what is needed to act and nothing
//! else, stops at revocation, replacement and expiry, is audited per view, and leaves no trace
//! for the person under duress.

use doorstep::domain::account::Role;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with, Backend, TestApp, TestUser, PASSWORD};
use crate::on_both_backends;
use crate::outings::{org, Org};

on_both_backends!(
    a_link_opens_without_a_login_and_shows_this_alert_only,
    a_link_stops_when_revoked_replaced_or_expired,
    a_resolved_alert_s_link_stops_an_hour_later,
    every_view_is_audited_with_the_viewer_s_address,
    only_those_who_handle_the_alert_make_or_revoke_links,
    a_link_stops_when_its_maker_loses_the_alert,
    a_duress_hand_off_leaves_no_trace_for_the_owner,
    retention_forgets_lapsed_links,
);

const HANDOFF_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Westminster: the canvasser's start, a circle of 300 m around it.
const START: (f64, f64) = (51.5072, -0.1276);
/// Where they are after the alert.
const MOVED: (f64, f64) = (51.5081, -0.1290);

async fn set_phone(app: &TestApp, token: &str, user: &TestUser, phone: &str) {
    let (status, body) = app
        .patch(
            &format!("/api/v1/users/{}", user.id),
            token,
            json!({"phone": phone}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// An outing of `who` with a companion, an area and a note; returns its id.
async fn start(app: &TestApp, who: &TestUser, companions: &[&TestUser], note: &str) -> String {
    let companions: Vec<&str> = companions.iter().map(|c| c.id.as_str()).collect();
    let (status, outing) = app
        .post(
            "/api/v1/outings",
            Some(&who.token),
            json!({
                "checkin_interval_s": 900,
                "area": {"type": "Circle", "center": [START.1, START.0], "radius_m": 300.0},
                "companions": companions,
                "note": note,
                "start_location": {"lat": START.0, "lon": START.1, "accuracy_m": 8.0},
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{outing}");
    outing["id"].as_str().unwrap().to_owned()
}

async fn panic(app: &TestApp, who: &TestUser, outing: &str, at: (f64, f64)) -> String {
    let (status, alert) = app
        .post(
            &format!("/api/v1/outings/{outing}/panic"),
            Some(&who.token),
            json!({"lat": at.0, "lon": at.1, "accuracy_m": 10.0}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{alert}");
    alert["id"].as_str().unwrap().to_owned()
}

async fn hand_off(app: &TestApp, token: &str, alert: &str) -> Value {
    let (status, link) = app
        .post(
            &format!("/api/v1/alerts/{alert}/handoff"),
            Some(token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{link}");
    link
}

/// The path of a link's URL (`/handoff/<token>`).
fn path_of(link: &Value) -> String {
    let url = link["url"].as_str().unwrap();
    let at = url.find("/handoff/").expect("a /handoff/ URL");
    url[at..].to_owned()
}

/// A plain GET of the page, as a browser with no account: no Authorization, no cookie.
async fn open(app: &TestApp, path: &str) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let resp = reqwest::Client::new()
        .get(app.url(path))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap())
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The page's own headers, on its answers and on its 404s alike.
fn assert_page_headers(headers: &reqwest::header::HeaderMap, what: &str) {
    assert_eq!(
        header(headers, "content-security-policy"),
        HANDOFF_CSP,
        "{what}"
    );
    assert_eq!(
        header(headers, "x-robots-tag"),
        "noindex, nofollow",
        "{what}"
    );
    assert_eq!(header(headers, "cache-control"), "no-store", "{what}");
    assert_eq!(header(headers, "referrer-policy"), "no-referrer", "{what}");
    assert!(
        header(headers, "content-type").starts_with("text/html"),
        "{what}: {}",
        header(headers, "content-type")
    );
}

/// The page every dead link gets: HTML, a 404, the page's headers, and no more than that.
async fn assert_gone(app: &TestApp, path: &str, what: &str) -> String {
    let (status, headers, body) = open(app, path).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{what}: {body}");
    assert_page_headers(&headers, what);
    assert!(body.contains("expired or was withdrawn"), "{what}: {body}");
    for secret in ["Jo Bloggs", "51.50", "+44", "PANIC", "refresh"] {
        assert!(!body.contains(secret), "{what}: the 404 shows {secret}");
    }
    body
}

async fn audit_rows(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let (status, page) = app.get(&format!("/api/v1/audit{query}"), token).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["items"].as_array().unwrap().clone()
}

fn actions<'a>(rows: &'a [Value], action: &str, alert: &str) -> Vec<&'a Value> {
    rows.iter()
        .filter(|r| r["action"] == action && r["alert_id"] == alert)
        .collect()
}

async fn a_link_opens_without_a_login_and_shows_this_alert_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let party = org(&app, &admin, "Party").await;
    // Times are read in the organisation's zone (with its abbreviation) and in UTC.
    let (status, body) = app
        .patch(
            &format!("/api/v1/orgs/{}", party.id),
            &party.organiser.token,
            json!({"timezone": "America/New_York"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let o = &party.organiser.token;
    set_phone(&app, o, &party.canvasser, "+447700900001").await;
    set_phone(&app, o, &party.other_canvasser, "+447700900002").await;
    set_phone(&app, o, &party.organiser, "+447700900009").await;

    // Jo is out with Sam; they panic, then check in once more, further on, on 37% battery.
    let outing = start(
        &app,
        &party.canvasser,
        &[&party.other_canvasser],
        "Ward 3, odd numbers <b>bold</b>",
    )
    .await;
    let alert = panic(&app, &party.canvasser, &outing, START).await;
    let (status, body) = app
        .post(
            &format!("/api/v1/outings/{outing}/checkins"),
            Some(&party.canvasser.token),
            json!({"lat": MOVED.0, "lon": MOVED.1, "accuracy_m": 15.0, "battery_pct": 37}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Another alert of the same organisation, elsewhere, of someone else.
    let zed = app
        .create_user(o, Role::Canvasser, None, "Zed Elsewhere")
        .await;
    set_phone(&app, o, &zed, "+447700900666").await;
    let (status, other_outing) = app
        .post(
            "/api/v1/outings",
            Some(&zed.token),
            json!({"checkin_interval_s": 900, "note": "Cambridge round",
                   "start_location": {"lat": 52.2053, "lon": 0.1218}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let other_outing = other_outing["id"].as_str().unwrap().to_owned();
    let other_alert = panic(&app, &zed, &other_outing, (52.2061, 0.1234)).await;

    let link = hand_off(&app, o, &alert).await;
    let url = link["url"].as_str().unwrap();
    assert!(url.starts_with(&app.url("/handoff/")), "{url}");
    let token = url.rsplit('/').next().unwrap();
    assert!(
        token.len() >= 22
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "at least 128 bits, URL-safe: {token}"
    );
    let expires = chrono::DateTime::parse_from_rfc3339(link["expires_at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    let in_24h = app.state.clock.now() + chrono::Duration::hours(24);
    assert!(
        (expires - in_24h).num_seconds().abs() < 60,
        "{expires} vs {in_24h}"
    );
    let qr = link["qr_svg"].as_str().unwrap();
    assert!(qr.contains("<svg") && qr.contains("</svg>"), "{qr}");

    // Stored hashed: the hash finds the link, the token itself finds nothing.
    let (by_hash, by_token) = {
        let hash = doorstep::domain::handoff::token_hash(token);
        let token = token.to_owned();
        app.state
            .store
            .read(move |conn| {
                Ok((
                    doorstep::store::handoff::find_by_hash(conn, &hash)?,
                    doorstep::store::handoff::find_by_hash(conn, &token)?,
                ))
            })
            .await
            .unwrap()
    };
    let stored = by_hash.expect("the link is stored by its hash");
    assert_ne!(stored.token_hash, token);
    assert!(by_token.is_none());

    // A browser with no account opens it.
    let (status, headers, page) = open(&app, &path_of(&link)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_page_headers(&headers, "the page");
    for (what, expected) in [
        ("the alert", "PANIC: Jo Bloggs"),
        ("the level", "Level 2"),
        (
            "the person's phone, as a call link",
            r#"href="tel:+447700900001""#,
        ),
        ("the companion", "Sam Other"),
        ("the companion's phone", r#"href="tel:+447700900002""#),
        ("who handed it over", r#"href="tel:+447700900009""#),
        ("the organisation", "Party"),
        (
            "the note, escaped",
            "Ward 3, odd numbers &lt;b&gt;bold&lt;/b&gt;",
        ),
        ("the battery", "37%"),
        ("the last position", "51.50810, -0.12900"),
        ("its accuracy", "±15 m"),
        ("the trail's start of the alert", "51.50720, -0.12760"),
        ("a map of it", "<svg"),
        ("the planned area", "Within 300 m of"),
        (
            "an OpenStreetMap link",
            "https://www.openstreetmap.org/?mlat=51.508100&amp;mlon=-0.129000",
        ),
        ("times in the organisation's zone", " EST"),
        ("... and in UTC", " UTC)"),
        (
            "live updates without script",
            r#"<meta http-equiv="refresh" content="15">"#,
        ),
        ("noindex", r#"<meta name="robots" content="noindex"#),
    ] {
        assert!(
            page.contains(expected) || (expected == " EST" && page.contains(" EDT")),
            "the page lacks {what} ({expected}):\n{page}"
        );
    }
    assert!(!page.contains("<b>bold"), "user text is escaped");
    assert!(!page.contains("<script"), "no script");
    // The trail since the alert: the newest (the check-in) before the panic's position.
    let trail = &page[page.find(r#"id="trail""#).unwrap()..];
    let newest = trail
        .find("51.50810, -0.12900")
        .expect("the check-in in the trail");
    let opened = trail
        .find("51.50720, -0.12760")
        .expect("the panic in the trail");
    let before = trail.find("Last check-in before the alert").unwrap();
    assert!(newest < opened && opened < before, "newest first: {trail}");
    // Nothing of the other alert, its outing or its person.
    for secret in [
        "Zed Elsewhere",
        "+447700900666",
        "Cambridge round",
        "52.20",
        "0.12180",
        "0.12340",
        other_alert.as_str(),
        other_outing.as_str(),
    ] {
        assert!(!page.contains(secret), "the page shows {secret}");
    }
    assert!(page.contains(alert.as_str()), "its own alert's reference");

    // A link of a well-formed token that was never made, a malformed one, a path beyond it:
    // the same 404 page.
    let unknown = assert_gone(
        &app,
        &format!("/handoff/{}", "A".repeat(42) + "A"),
        "an unknown token",
    )
    .await;
    let malformed = assert_gone(&app, "/handoff/not-a-token", "a malformed token").await;
    assert_eq!(unknown, malformed);
    // POSTing to the page is not a thing.
    let resp = reqwest::Client::new()
        .post(app.url(&path_of(&link)))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error());
}

async fn a_link_stops_when_revoked_replaced_or_expired(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let party = org(&app, &admin, "Party").await;
    let outing = start(&app, &party.canvasser, &[], "Ward 5").await;
    let alert = panic(&app, &party.canvasser, &outing, START).await;
    let o = &party.organiser.token;

    // A new link replaces the last: the first stops, the second opens.
    let first = hand_off(&app, o, &alert).await;
    assert_eq!(open(&app, &path_of(&first)).await.0, StatusCode::OK);
    let second = hand_off(&app, o, &alert).await;
    assert_ne!(first["url"], second["url"]);
    let replaced = assert_gone(&app, &path_of(&first), "a replaced link").await;
    assert_eq!(open(&app, &path_of(&second)).await.0, StatusCode::OK);

    // DELETE revokes it (and again is harmless).
    let (status, _) = app
        .delete(&format!("/api/v1/alerts/{alert}/handoff"), o)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let revoked = assert_gone(&app, &path_of(&second), "a revoked link").await;
    let (status, _) = app
        .delete(&format!("/api/v1/alerts/{alert}/handoff"), o)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // A link of an open alert works for 24 hours and no longer.
    let third = hand_off(&app, o, &alert).await;
    app.state.clock.advance(chrono::Duration::hours(23));
    assert_eq!(open(&app, &path_of(&third)).await.0, StatusCode::OK);
    app.state.clock.advance(chrono::Duration::hours(2));
    let expired = assert_gone(&app, &path_of(&third), "a link 25 h old").await;
    // Replaced, revoked and expired read exactly alike.
    assert_eq!(replaced, revoked);
    assert_eq!(revoked, expired);

    // The organisers' audit log has the making and the revoking.
    let fresh = app.login(&party.organiser.email, PASSWORD).await;
    let rows = audit_rows(&app, &fresh.access, "").await;
    assert_eq!(actions(&rows, "handoff.create", &alert).len(), 3);
    let revokes = actions(&rows, "handoff.revoke", &alert);
    assert_eq!(revokes.len(), 1, "the second DELETE revoked nothing");
    assert_eq!(revokes[0]["actor"]["id"], party.organiser.id.as_str());
    let creates = actions(&rows, "handoff.create", &alert);
    // Newest first: the second link's making replaced the first.
    assert_eq!(
        creates[1]["detail"]["replaced"].as_array().unwrap().len(),
        1
    );
}

async fn a_resolved_alert_s_link_stops_an_hour_later(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let party = org(&app, &admin, "Party").await;
    let outing = start(&app, &party.canvasser, &[], "Ward 6").await;
    let alert = panic(&app, &party.canvasser, &outing, START).await;
    let link = hand_off(&app, &party.organiser.token, &alert).await;
    let (status, body) = app
        .post(
            &format!("/api/v1/alerts/{alert}/resolve"),
            Some(&party.organiser.token),
            json!({"outcome": "safe"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let resolved_at = chrono::DateTime::parse_from_rfc3339(body["resolved_at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    // A link made now for the resolved alert says when it stops: an hour after resolution.
    let late = hand_off(&app, &party.organiser.token, &alert).await;
    let expires = chrono::DateTime::parse_from_rfc3339(late["expires_at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    assert_eq!(expires, resolved_at + chrono::Duration::hours(1));
    assert_gone(&app, &path_of(&link), "replaced by the late link").await;

    // The page says it is over, for 59 minutes more.
    app.state.clock.advance(chrono::Duration::minutes(59));
    let (status, _, page) = open(&app, &path_of(&late)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Resolved at"), "{page}");
    app.state.clock.advance(chrono::Duration::minutes(2));
    assert_gone(&app, &path_of(&late), "an hour after resolution").await;

    // And no new link can be made that would not open.
    let fresh = app.login(&party.organiser.email, PASSWORD).await;
    let (status, body) = app
        .post(
            &format!("/api/v1/alerts/{alert}/handoff"),
            Some(&fresh.access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
}

async fn every_view_is_audited_with_the_viewer_s_address(backend: Backend) {
    // Behind a proxy the operator vouches for, the address is the one it forwards, as for the
    // login limiter; the link is on the configured public address.
    let app = spawn_app_with(backend, |s| {
        s.server.trust_forwarded_for = true;
        s.server.public_url = Some("https://doorstep.example.org/".into());
    })
    .await;
    let admin = app.admin().await;
    let party = org(&app, &admin, "Party").await;
    let outing = start(&app, &party.canvasser, &[], "Ward 7").await;
    let alert = panic(&app, &party.canvasser, &outing, START).await;
    let link = hand_off(&app, &party.police.token, &alert).await;
    assert!(
        link["url"]
            .as_str()
            .unwrap()
            .starts_with("https://doorstep.example.org/handoff/"),
        "{link}"
    );
    let addresses = ["203.0.113.7", "198.51.100.23", "203.0.113.7"];
    for address in addresses {
        let resp = reqwest::Client::new()
            .get(app.url(&path_of(&link)))
            .header("x-forwarded-for", address)
            .header("user-agent", "ControlRoom/1.0")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
    // Dead links are not views.
    assert_gone(&app, "/handoff/not-a-token", "malformed").await;

    let rows = audit_rows(&app, &party.organiser.token, "").await;
    let views = actions(&rows, "handoff.view", &alert);
    assert_eq!(views.len(), 3, "one row per view: {rows:?}");
    let mut seen: Vec<&str> = views
        .iter()
        .map(|r| r["detail"]["address"].as_str().unwrap())
        .collect();
    seen.sort_unstable();
    let mut expected = addresses.to_vec();
    expected.sort_unstable();
    assert_eq!(seen, expected);
    for view in &views {
        assert_eq!(view["detail"]["user_agent"], "ControlRoom/1.0");
        assert_eq!(view["subject_id"], party.canvasser.id.as_str());
        assert_eq!(view["outing_id"], outing.as_str());
        // Made by the police contact: the row names them, as what the link acted for.
        assert_eq!(view["actor"]["id"], party.police.id.as_str());
        assert_eq!(view["actor"]["role"], "handoff");
    }
    let creates = actions(&rows, "handoff.create", &alert);
    assert_eq!(creates.len(), 1);
    assert_eq!(creates[0]["actor"]["role"], "police");
}

async fn only_those_who_handle_the_alert_make_or_revoke_links(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let party = org(&app, &admin, "Party").await;
    let rival: Org = org(&app, &admin, "Rival").await;
    let outing = start(&app, &party.canvasser, &[&party.other_canvasser], "Ward 8").await;
    let alert = panic(&app, &party.canvasser, &outing, START).await;
    let path = format!("/api/v1/alerts/{alert}/handoff");

    // Those who see the alert but do not handle it: 403.
    for (who, token) in [
        ("its canvasser", &party.canvasser.token),
        ("a companion", &party.other_canvasser.token),
    ] {
        let (status, body) = app.post(&path, Some(token), json!({})).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{who}: {body}");
        let (status, _) = app.delete(&path, token).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{who}");
    }
    // Those who do not see it: 404, as for the alert itself.
    for (who, token) in [
        ("another organisation's organiser", &rival.organiser.token),
        ("another organisation's police", &rival.police.token),
        ("an admin", &admin.token),
    ] {
        let (status, body) = app.post(&path, Some(token), json!({})).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{who}: {body}");
        let (status, _) = app.delete(&path, token).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{who}");
    }
    let (status, _) = app.post(&path, None, json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    for bad in [
        format!("/api/v1/alerts/{}/handoff", uuid::Uuid::new_v4()),
        "/api/v1/alerts/not-an-id/handoff".to_owned(),
    ] {
        let (status, _) = app
            .post(&bad, Some(&party.organiser.token), json!({}))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{bad}");
    }
    // None of that made a link.
    let rows = audit_rows(&app, &party.organiser.token, "").await;
    assert!(actions(&rows, "handoff.create", &alert).is_empty());

    // Police see a panic: they may hand it over; a level-1 alert they do not see.
    hand_off(&app, &party.police.token, &alert).await;
    let (status, body) = app
        .post(
            "/api/v1/outings",
            Some(&party.other_canvasser.token),
            json!({"checkin_interval_s": 900}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let quiet = body["id"].as_str().unwrap().to_owned();
    let (status, body) = app
        .post(
            &format!("/api/v1/outings/{quiet}/checkins"),
            Some(&party.other_canvasser.token),
            json!({"lat": START.0, "lon": START.1, "kind": "need_help"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, seen) = app
        .get(&format!("/api/v1/outings/{quiet}"), &party.organiser.token)
        .await;
    let level1 = seen["open_alert"]["id"]
        .as_str()
        .expect("an open alert")
        .to_owned();
    assert_eq!(seen["open_alert"]["level"], 1, "{seen}");
    let (status, _) = app
        .post(
            &format!("/api/v1/alerts/{level1}/handoff"),
            Some(&party.police.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "police below level 2");
    hand_off(&app, &party.organiser.token, &level1).await;
}

async fn a_link_stops_when_its_maker_loses_the_alert(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let party = org(&app, &admin, "Party").await;
    let outing = start(&app, &party.canvasser, &[], "Ward 9").await;
    let alert = panic(&app, &party.canvasser, &outing, START).await;
    let by_police = hand_off(&app, &party.police.token, &alert).await;
    assert_eq!(open(&app, &path_of(&by_police)).await.0, StatusCode::OK);
    // The police contact is unassigned from the organisation: their link stops with them.
    let (status, _) = app
        .delete(
            &format!(
                "/api/v1/orgs/{}/police-contacts/{}",
                party.id, party.police.id
            ),
            &admin.token,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_gone(&app, &path_of(&by_police), "its maker was unassigned").await;

    // An organiser's link stops when their account is disabled.
    let second = app
        .create_user(
            &admin.token,
            Role::Organiser,
            Some(&party.id),
            "Dee Organiser",
        )
        .await;
    let by_organiser = hand_off(&app, &second.token, &alert).await;
    assert_eq!(open(&app, &path_of(&by_organiser)).await.0, StatusCode::OK);
    let (status, _) = app
        .post(
            &format!("/api/v1/users/{}/disable", second.id),
            Some(&admin.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_gone(&app, &path_of(&by_organiser), "its maker was disabled").await;
}

async fn a_duress_hand_off_leaves_no_trace_for_the_owner(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let party = org(&app, &admin, "Party").await;
    // An organiser who canvasses: they can read the audit log.
    let owner = app
        .create_user(
            &admin.token,
            Role::Organiser,
            Some(&party.id),
            "Dee Organiser",
        )
        .await;
    let (status, _) = app
        .put(
            "/api/v1/me/pins",
            &owner.token,
            json!({"safe_pin": "2468", "duress_pin": "1357"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let outing = start(&app, &owner, &[], "Ward 10").await;
    let (status, _) = app
        .post(
            &format!("/api/v1/outings/{outing}/end"),
            Some(&owner.token),
            json!({"pin": "1357", "lat": START.0, "lon": START.1}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, seen) = app
        .get(&format!("/api/v1/outings/{outing}"), &party.organiser.token)
        .await;
    assert_eq!(seen["open_alert"]["kind"], "duress", "{seen}");
    let alert = seen["open_alert"]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/alerts/{alert}/handoff");

    // The owner cannot make or revoke one, and is told nothing exists (404, not 403).
    let (status, _) = app.post(&path, Some(&owner.token), json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.delete(&path, &owner.token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The other organiser hands it over; the page warns not to call.
    let link = hand_off(&app, &party.organiser.token, &alert).await;
    let (status, _, page) = open(&app, &path_of(&link)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("DURESS"), "{page}");
    assert!(page.contains("Do not call or message them"), "{page}");
    let relinked = hand_off(&app, &party.police.token, &alert).await;
    assert_eq!(open(&app, &path_of(&relinked)).await.0, StatusCode::OK);
    let (status, _) = app.delete(&path, &party.organiser.token).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // Control: the other organiser's audit log shows all of it ...
    let rows = audit_rows(&app, &party.organiser.token, "").await;
    for action in ["handoff.create", "handoff.view", "handoff.revoke"] {
        assert!(
            !actions(&rows, action, &alert).is_empty(),
            "{action} in {rows:?}"
        );
    }
    // ... and the owner's, of the same organisation, none of it, however asked.
    for query in [
        String::new(),
        "?limit=1".to_owned(),
        format!("?subject_id={}", owner.id),
    ] {
        let (status, page) = app
            .get(&format!("/api/v1/audit{query}"), &owner.token)
            .await;
        assert_eq!(status, StatusCode::OK);
        let text = page.to_string();
        assert!(!text.contains("handoff"), "{query}: {text}");
        assert!(!text.contains(&alert), "{query}: {text}");
        assert!(
            !(page["items"].as_array().unwrap().is_empty() && page["next_cursor"].is_string()),
            "{query}: an empty page with a cursor"
        );
    }
}

async fn retention_forgets_lapsed_links(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let party = org(&app, &admin, "Party").await;
    let outing = start(&app, &party.canvasser, &[], "Ward 11").await;
    let alert = panic(&app, &party.canvasser, &outing, START).await;
    let link = hand_off(&app, &party.organiser.token, &alert).await;
    let hash = doorstep::domain::handoff::token_hash(path_of(&link).rsplit('/').next().unwrap());
    let stored = |hash: String| {
        app.state
            .store
            .read(move |conn| Ok(doorstep::store::handoff::find_by_hash(conn, &hash)?.is_some()))
    };
    let purge = |hours_later: i64| {
        let now = app.state.clock.now_ms() + hours_later * 3_600_000;
        app.state
            .store
            .write(move |conn| doorstep::service::retention::purge(conn, now, 30, 2555))
    };
    purge(24).await.unwrap();
    assert!(stored(hash.clone()).await.unwrap(), "lapsed only just now");
    purge(49).await.unwrap();
    assert!(!stored(hash).await.unwrap(), "a day after it lapsed");
}
