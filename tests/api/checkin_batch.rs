//! Live check-ins written many to a transaction (`service::checkins`): each answers exactly as
//! it would alone, whatever else shares its batch. The batch runs on the app's own store; the
//! outings are made over HTTP and read back over HTTP.

use doorstep::domain::account::Role;
use doorstep::domain::checkin::{CheckinKind, PinCheck, Position};
use doorstep::http::extract::Caller;
use doorstep::service::checkins::{record_live, record_live_batch, Answer, LiveCheckin};
use doorstep::service::outings::{NewCheckin, OutingRules};
use doorstep::store::outings::OutingRow;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, Backend, TestApp, TestUser};
use crate::on_both_backends;
use crate::outings::{org, Org};

on_both_backends!(
    a_batch_answers_each_checkin_as_it_would_alone,
    a_plain_checkin_in_a_batch_leaves_the_outing_as_one_alone,
    concurrent_checkins_over_http_are_all_stored_once,
);

async fn start(app: &TestApp, user: &TestUser, interval_s: i64) -> String {
    let (status, outing) = app
        .post(
            "/api/v1/outings",
            Some(&user.token),
            json!({"checkin_interval_s": interval_s}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{outing}");
    outing["id"].as_str().expect("outing id").to_owned()
}

/// Another canvasser of `org`, logged in.
async fn canvasser(app: &TestApp, org: &Org, name: &str) -> TestUser {
    app.create_user(&org.organiser.token, Role::Canvasser, None, name)
        .await
}

fn caller(user: &TestUser, org: &str, role: Role) -> Caller {
    Caller {
        id: user.id.parse().expect("user id"),
        role,
        org_id: Some(org.parse().expect("org id")),
        display_name: "Someone".into(),
        email: user.email.clone(),
        session_id: uuid::Uuid::new_v4().into(),
    }
}

fn live(
    caller: &Caller,
    outing: &str,
    kind: CheckinKind,
    key: Option<&str>,
    hash: &str,
    now_ms: i64,
) -> LiveCheckin {
    LiveCheckin {
        caller: caller.clone(),
        outing_id: outing.parse().expect("outing id"),
        item: NewCheckin {
            position: Position::parse(51.5072, -0.1276, Some(10.0)).expect("position"),
            recorded_at: None,
            battery_pct: None,
            kind,
            client_id: None,
        },
        pin: PinCheck::NotSet,
        key: key.map(str::to_owned),
        request_hash: hash.to_owned(),
        now_ms,
    }
}

fn rules(app: &TestApp) -> OutingRules {
    OutingRules::from(app.state.settings.as_ref())
}

/// Records `batch` as the check-in batcher would, in one transaction.
async fn write_batch(
    app: &TestApp,
    batch: Vec<LiveCheckin>,
    rules: OutingRules,
) -> Vec<Result<Answer, doorstep::error::AppError>> {
    app.state
        .store
        .write(move |conn| record_live_batch(conn, &batch, &rules))
        .await
        .expect("the batch commits")
}

fn status_of(answer: &Result<Answer, doorstep::error::AppError>) -> u16 {
    match answer {
        Ok(a) => a.status,
        Err(e) => actix_web::ResponseError::status_code(e).as_u16(),
    }
}

async fn a_batch_answers_each_checkin_as_it_would_alone(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let org = org(&app, &admin, "Party").await;
    let third = canvasser(&app, &org, "Tess Third").await;
    let fourth = canvasser(&app, &org, "Fay Fourth").await;
    let mine = start(&app, &org.canvasser, 900).await;
    let theirs = start(&app, &org.other_canvasser, 900).await;
    let ended = start(&app, &third, 900).await;
    let (status, _) = app
        .post(
            &format!("/api/v1/outings/{ended}/end"),
            Some(&third.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let helpless = start(&app, &fourth, 900).await;

    let me = caller(&org.canvasser, &org.id, Role::Canvasser);
    let other = caller(&org.other_canvasser, &org.id, Role::Canvasser);
    let tess = caller(&third, &org.id, Role::Canvasser);
    let fay = caller(&fourth, &org.id, Role::Canvasser);
    let now_ms = app.state.clock.now_ms();
    let unknown = uuid::Uuid::new_v4().to_string();
    let batch = vec![
        // 0: plain, with a key
        live(&me, &mine, CheckinKind::Ok, Some("k1"), "h1", now_ms),
        // 1: plain, another outing, no key
        live(&other, &theirs, CheckinKind::Ok, None, "h2", now_ms),
        // 2: the same outing again: written after 0, and becomes the latest
        live(&me, &mine, CheckinKind::Ok, Some("k2"), "h3", now_ms + 1),
        // 3: key k1 again, same request: the answer of 0, nothing stored
        live(&me, &mine, CheckinKind::Ok, Some("k1"), "h1", now_ms + 2),
        // 4: key k2 again with a different request: refused
        live(
            &me,
            &mine,
            CheckinKind::Ok,
            Some("k2"),
            "different",
            now_ms + 3,
        ),
        // 5: someone else's outing
        live(&me, &theirs, CheckinKind::Ok, None, "h5", now_ms),
        // 6: an outing that does not exist
        live(&me, &unknown, CheckinKind::Ok, None, "h6", now_ms),
        // 7: an ended outing
        live(&tess, &ended, CheckinKind::Ok, None, "h7", now_ms),
        // 8: need help: raises an alert (the full path)
        live(&fay, &helpless, CheckinKind::NeedHelp, None, "h8", now_ms),
    ];
    let rules = rules(&app);
    let answers = write_batch(&app, batch, rules).await;
    let statuses: Vec<u16> = answers.iter().map(status_of).collect();
    assert_eq!(statuses[..5], [201, 201, 201, 201, 422], "{statuses:?}");
    assert!(
        statuses[5] == 403 || statuses[5] == 404,
        "someone else's outing: {statuses:?}"
    );
    assert_eq!(statuses[6..], [404, 409, 201], "{statuses:?}");

    let body = |i: usize| -> Value {
        serde_json::from_str(&answers[i].as_ref().expect("answer").body).expect("JSON")
    };
    assert_eq!(body(3), body(0), "a retried key answers as the first time");
    assert_eq!(body(0)["outing"]["id"], json!(mine));
    assert_eq!(body(1)["outing"]["id"], json!(theirs));
    let latest = body(2)["checkin"]["id"].clone();
    assert_ne!(latest, body(0)["checkin"]["id"]);

    // What a reader sees afterwards.
    let (status, view) = app
        .get(&format!("/api/v1/outings/{mine}"), &org.canvasser.token)
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["last_checkin"]["id"], latest);
    let (_, trail) = app
        .get(
            &format!("/api/v1/outings/{mine}/checkins"),
            &org.canvasser.token,
        )
        .await;
    assert_eq!(
        trail["items"].as_array().map(Vec::len),
        Some(2),
        "two stored for my outing, not four: {trail}"
    );
    let (_, view) = app
        .get(&format!("/api/v1/outings/{helpless}"), &fourth.token)
        .await;
    assert_eq!(view["open_alert"]["kind"], json!("need_help"), "{view}");
    let (_, view) = app
        .get(&format!("/api/v1/outings/{ended}"), &third.token)
        .await;
    assert!(view["last_checkin"].is_null(), "{view}");
}

async fn outing_row(app: &TestApp, id: &str) -> OutingRow {
    let id = id.parse().expect("outing id");
    app.state
        .store
        .read(move |conn| Ok(doorstep::store::outings::find(conn, id)?))
        .await
        .expect("read")
        .expect("outing exists")
}

/// The batch writes a plain check-in's outing with a statement of its own (only the columns a
/// check-in moves); the result must equal the full path's, column for column.
async fn a_plain_checkin_in_a_batch_leaves_the_outing_as_one_alone(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let org = org(&app, &admin, "Party").await;
    let third = canvasser(&app, &org, "Tess Third").await;
    let batched = start(&app, &org.canvasser, 600).await;
    let alone = start(&app, &org.other_canvasser, 600).await;
    let company = start(&app, &third, 600).await;
    // Give `alone` the same history as `batched`, so the same check-in must leave both alike.
    let mut copy = outing_row(&app, &batched).await;
    let before = outing_row(&app, &alone).await;
    copy.id = before.id;
    copy.canvasser_id = before.canvasser_id;
    app.state
        .store
        .write(move |conn| Ok(doorstep::store::outings::update(conn, &copy)?))
        .await
        .expect("copy");

    let me = caller(&org.canvasser, &org.id, Role::Canvasser);
    let other = caller(&org.other_canvasser, &org.id, Role::Canvasser);
    let tess = caller(&third, &org.id, Role::Canvasser);
    let now_ms = app.state.clock.now_ms() + 5_000;
    let rules = rules(&app);
    // Two plain check-ins, so PostgreSQL writes them with its many-row statements.
    let batch = vec![
        live(&me, &batched, CheckinKind::Ok, Some("a"), "ha", now_ms),
        live(&tess, &company, CheckinKind::Ok, None, "hb", now_ms),
    ];
    let answers = write_batch(&app, batch, rules).await;
    assert_eq!(
        answers.iter().map(status_of).collect::<Vec<_>>(),
        [201, 201]
    );
    let single = live(&other, &alone, CheckinKind::Ok, Some("a"), "ha", now_ms);
    let answer = app
        .state
        .store
        .write(move |conn| record_live(conn, &single, &rules))
        .await
        .expect("the check-in commits");
    assert_eq!(answer.status, 201);

    let a = outing_row(&app, &batched).await;
    let b = outing_row(&app, &alone).await;
    assert!(a.last_checkin_id.is_some() && b.last_checkin_id.is_some());
    assert_eq!(a.last_received_at, now_ms);
    let comparable = |r: &OutingRow| {
        let mut r = r.clone();
        r.last_checkin_id = None;
        format!("{r:?}")
            .replace(&r.id.to_string(), "OUTING")
            .replace(&r.canvasser_id.to_string(), "CANVASSER")
    };
    assert_eq!(comparable(&a), comparable(&b));
    // The answers match too, once the ids that differ are masked.
    let mask = |body: &str, row: &OutingRow, checkin: &str| -> Value {
        let masked = body
            .replace(&row.id.to_string(), "OUTING")
            .replace(&row.canvasser_id.to_string(), "CANVASSER")
            .replace(checkin, "CHECKIN");
        serde_json::from_str(&masked).expect("JSON")
    };
    let batched_body = &answers[0].as_ref().expect("answer").body;
    assert_eq!(
        mask(
            batched_body,
            &a,
            a.last_checkin_id.as_deref().unwrap_or_default()
        ),
        mask(
            &answer.body,
            &b,
            b.last_checkin_id.as_deref().unwrap_or_default()
        ),
    );
}

/// A live check-in with an `Idempotency-Key`, ready to send (no borrow of `app` kept).
fn keyed_checkin(
    app: &TestApp,
    user: &TestUser,
    outing: &str,
    key: &str,
) -> impl std::future::Future<Output = (StatusCode, Value)> + Send + 'static {
    let request = app
        .client
        .post(app.url(&format!("/api/v1/outings/{outing}/checkins")))
        .bearer_auth(&user.token)
        .header("Idempotency-Key", key)
        .json(&json!({"lat": 51.5, "lon": -0.12, "battery_pct": 80}));
    async move {
        let resp = request.send().await.expect("request");
        let status = resp.status();
        let body: Value = resp.json().await.expect("JSON");
        (status, body)
    }
}

/// Many canvassers checking in at once over HTTP (on PostgreSQL they share transactions): every
/// check-in is stored once and answered with its own outing.
async fn concurrent_checkins_over_http_are_all_stored_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let org = org(&app, &admin, "Party").await;
    let mut canvassers = Vec::new();
    for i in 0..8 {
        let user = app
            .create_user(
                &org.organiser.token,
                Role::Canvasser,
                None,
                &format!("C{i}"),
            )
            .await;
        let outing = start(&app, &user, 900).await;
        canvassers.push((user, outing));
    }
    const EACH: usize = 6;
    let mut requests = tokio::task::JoinSet::new();
    for (user, outing) in &canvassers {
        for i in 0..EACH {
            let request = keyed_checkin(&app, user, outing, &format!("{outing}-{i}"));
            let outing = outing.clone();
            requests.spawn(async move {
                let (status, body) = request.await;
                (outing, status, body)
            });
        }
    }
    while let Some(done) = requests.join_next().await {
        let (outing, status, body) = done.expect("task");
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["outing"]["id"], json!(outing), "{body}");
        // Its own check-in, or one received after it, is the outing's latest.
        let received = |v: &Value| v["received_at"].as_str().unwrap_or_default().to_owned();
        assert!(
            received(&body["outing"]["last_checkin"]) >= received(&body["checkin"]),
            "{body}"
        );
    }
    for (user, outing) in &canvassers {
        let (_, trail) = app
            .get(&format!("/api/v1/outings/{outing}/checkins"), &user.token)
            .await;
        assert_eq!(
            trail["items"].as_array().map(Vec::len),
            Some(EACH),
            "{trail}"
        );
        // A retry of a key already used answers the first time's check-in.
        let (status, again) = keyed_checkin(&app, user, outing, &format!("{outing}-0")).await;
        assert_eq!(status, StatusCode::CREATED, "{again}");
        let ids: Vec<&Value> = trail["items"]
            .as_array()
            .map(|items| items.iter().map(|c| &c["id"]).collect())
            .unwrap_or_default();
        assert!(ids.contains(&&again["checkin"]["id"]), "{again}");
    }
}
