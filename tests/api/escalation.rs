use std::collections::BTreeSet;

use doorstep::domain::account::Role;
use doorstep::domain::delivery::{Channel, DeliveryStatus, MessageType};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{fast, spawn_app, spawn_app_with, start_app, wait_for, Backend, TestApp};
use crate::on_both_backends;
use crate::outings::{org, Org};
use crate::webhook_receiver::WebhookReceiver;

on_both_backends!(
    full_timeline_reminder_missed_level2_checkin_all_clear,
    escalation_on_a_moved_clock_without_waiting,
    acknowledge_repeat_ack_timeout_and_resolve,
    panic_upgrades_an_open_alert,
    a_step_due_while_the_server_was_down_fires_once_on_restart,
    outbox_rows_written_together_keep_one_per_dedupe_key,
    a_batch_of_missed_checkins_writes_every_outing_alert_and_event,
    the_next_deadline_is_read_from_the_front_of_the_index,
);

/// 2-second check-ins, reminder 1 s before, missed 1 s after, police 2 s after that.
async fn fast_org(app: &TestApp, repeat_s: i64, ack_timeout_s: i64) -> Org {
    let admin = app.admin().await;
    let org = org(app, &admin, "Party").await;
    let policy = json!({"reminder_before_s": 1, "grace_s": 1, "police_after_s": 2,
                        "repeat_s": repeat_s, "ack_timeout_s": ack_timeout_s});
    let (status, body) = app
        .put(
            &format!("/api/v1/orgs/{}/escalation-policy", org.id),
            &org.organiser.token,
            policy,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    org
}

fn ids(users: &[&str]) -> BTreeSet<String> {
    users.iter().map(|s| s.to_string()).collect()
}

fn recipients_of(
    rows: &[doorstep::store::notifications::NotificationRow],
    step_prefix: &str,
) -> BTreeSet<String> {
    rows.iter()
        .filter(|r| r.step.starts_with(step_prefix))
        .filter_map(|r| r.recipient_id.map(|u| u.to_string()))
        .collect()
}

async fn open_alert_id(app: &TestApp, token: &str, outing: &str) -> Option<String> {
    let (_, seen) = app.get(&format!("/api/v1/outings/{outing}"), token).await;
    seen["open_alert"]["id"].as_str().map(str::to_owned)
}

async fn full_timeline_reminder_missed_level2_checkin_all_clear(backend: Backend) {
    let app = spawn_app_with(backend, fast).await;
    let org = fast_org(&app, 0, 60).await;
    let outing = app
        .post(
            "/api/v1/outings",
            Some(&org.canvasser.token),
            json!({"checkin_interval_s": 2, "companions": [org.other_canvasser.id],
                   "start_location": {"lat": 51.5, "lon": -0.12, "accuracy_m": 8}}),
        )
        .await
        .1;
    let outing_id = outing["id"].as_str().unwrap().to_owned();

    // 1. due - 1 s: a reminder to the canvasser alone.
    let reminder = wait_for(5, "the reminder", || async {
        let rows = app.outbox(None, Some(&outing_id)).await;
        rows.into_iter()
            .find(|r| r.message_type.as_str() == "checkin_reminder")
    })
    .await;
    assert_eq!(
        reminder.recipient_id.map(|u| u.to_string()).as_deref(),
        Some(org.canvasser.id.as_str())
    );
    assert_eq!(reminder.level, 0);
    assert!(reminder.alert_id.is_none());

    // 2. due + 1 s: overdue, a missed_checkin alert at level 1 to canvasser, organiser, companion.
    let alert_id = wait_for(5, "the missed check-in alert", || async {
        open_alert_id(&app, &org.organiser.token, &outing_id).await
    })
    .await;
    let (_, seen) = app
        .get(
            &format!("/api/v1/outings/{outing_id}"),
            &org.organiser.token,
        )
        .await;
    assert_eq!(seen["status"], "overdue");
    assert_eq!(seen["open_alert"]["kind"], "missed_checkin");
    let rows = app.outbox(Some(&alert_id), None).await;
    assert_eq!(
        recipients_of(&rows, "missed:"),
        ids(&[
            &org.canvasser.id,
            &org.organiser.id,
            &org.other_canvasser.id
        ]),
        "level 1: canvasser, organisers, companions; not police"
    );
    let missed = rows.iter().find(|r| r.step.starts_with("missed:")).unwrap();
    let payload: Value = serde_json::from_str(&missed.payload).unwrap();
    assert_eq!(payload["type"], "missed_checkin");
    assert_eq!(payload["alert_id"], alert_id.as_str());
    assert_eq!(payload["canvasser"]["name"], "Jo Bloggs");
    assert_eq!(payload["last_location"]["lat"], 51.5);
    assert_eq!(payload["url"], format!("/app/alerts/{alert_id}"));

    // The canvasser sees their alert, but only their own delivery rows.
    let (status, own) = app
        .get(&format!("/api/v1/alerts/{alert_id}"), &org.canvasser.token)
        .await;
    assert_eq!(status, StatusCode::OK);
    let rows = own["notifications"].as_array().unwrap();
    assert!(!rows.is_empty());
    assert!(
        rows.iter()
            .all(|n| n["recipient"]["id"] == org.canvasser.id.as_str()),
        "{own}"
    );

    // Police cannot see a level-1 alert.
    let (status, _) = app
        .get(&format!("/api/v1/alerts/{alert_id}"), &org.police.token)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // 3. opened + 2 s, unacknowledged: level 2, escalation to everyone including police.
    wait_for(6, "escalation to level 2", || async {
        let (_, alert) = app
            .get(&format!("/api/v1/alerts/{alert_id}"), &org.organiser.token)
            .await;
        (alert["level"] == 2).then_some(())
    })
    .await;
    let rows = app.outbox(Some(&alert_id), None).await;
    assert_eq!(
        recipients_of(&rows, "escalate:2"),
        ids(&[
            &org.canvasser.id,
            &org.organiser.id,
            &org.other_canvasser.id,
            &org.police.id
        ])
    );
    assert!(rows
        .iter()
        .filter(|r| r.step == "escalate:2")
        .all(|r| r.message_type.as_str() == "escalation" && r.level == 2));
    let (status, police_view) = app
        .get(&format!("/api/v1/alerts/{alert_id}"), &org.police.token)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(police_view["last_location"]["lat"], 51.5);
    assert!(police_view["escalated_at"].is_string());
    let delivery = police_view["notifications"].as_array().unwrap();
    assert!(delivery.iter().any(|n| n["recipient"]["role"] == "police"
        && n["level"] == 2
        && n["channel"] == "webpush"));

    // 4. A check-in clears it: resolved as checked_in, all_clear to everyone pushed about it.
    let (status, body) = app
        .post(
            &format!("/api/v1/outings/{outing_id}/checkins"),
            Some(&org.canvasser.token),
            json!({"lat": 51.501, "lon": -0.12}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["outing"]["status"], "active");
    assert!(body["outing"]["open_alert"].is_null());
    let (_, alert) = app
        .get(&format!("/api/v1/alerts/{alert_id}"), &org.organiser.token)
        .await;
    assert_eq!(alert["status"], "resolved");
    assert_eq!(alert["resolution"], "checked_in");
    let rows = app.outbox(Some(&alert_id), None).await;
    assert_eq!(
        recipients_of(&rows, "all_clear"),
        ids(&[
            &org.canvasser.id,
            &org.organiser.id,
            &org.other_canvasser.id,
            &org.police.id
        ])
    );
    // Every step was recorded once per recipient.
    let keys: BTreeSet<&str> = rows.iter().map(|r| r.dedupe_key.as_str()).collect();
    assert_eq!(keys.len(), rows.len());
    assert_eq!(rows.len(), 3 + 4 + 4);

    let metrics = app.metrics().await;
    assert!(
        metrics.contains("doorstep_detection_lag_seconds_bucket"),
        "detection lag histogram"
    );
}

async fn acknowledge_repeat_ack_timeout_and_resolve(backend: Backend) {
    let app = spawn_app_with(backend, fast).await;
    // Repeat every second; an acknowledged alert re-opens after 2 s.
    let org = fast_org(&app, 1, 2).await;
    let outing = app
        .post(
            "/api/v1/outings",
            Some(&org.canvasser.token),
            json!({"checkin_interval_s": 2}),
        )
        .await
        .1;
    let outing_id = outing["id"].as_str().unwrap().to_owned();
    let alert_id = wait_for(5, "the alert", || async {
        open_alert_id(&app, &org.organiser.token, &outing_id).await
    })
    .await;
    wait_for(5, "a repeat", || async {
        let rows = app.outbox(Some(&alert_id), None).await;
        rows.iter()
            .any(|r| r.step.starts_with("repeat:"))
            .then_some(())
    })
    .await;

    // The canvasser can never acknowledge their own alert; a colleague canvasser is no contact.
    let ack = format!("/api/v1/alerts/{alert_id}/ack");
    let (status, _) = app.post(&ack, Some(&org.canvasser.token), json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .post(&ack, Some(&org.other_canvasser.token), json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, acked) = app
        .post(
            &ack,
            Some(&org.organiser.token),
            json!({"note": "calling Jo"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{acked}");
    assert_eq!(acked["status"], "acknowledged");
    assert_eq!(acked["acknowledged_by"]["id"], org.organiser.id.as_str());
    assert_eq!(acked["note"], "calling Jo");
    // The first acknowledgement wins.
    let second = app
        .create_user(
            &org.organiser.token,
            Role::Organiser,
            None,
            "Second Organiser",
        )
        .await;
    let (status, _) = app.post(&ack, Some(&second.token), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Acknowledged: no more repeats and no escalation...
    let repeats_at_ack = app
        .outbox(Some(&alert_id), None)
        .await
        .iter()
        .filter(|r| r.step.starts_with("repeat:"))
        .count();
    // ...until the ack timeout (2 s) re-opens it one level up.
    wait_for(6, "the ack timeout", || async {
        let (_, alert) = app
            .get(&format!("/api/v1/alerts/{alert_id}"), &org.organiser.token)
            .await;
        (alert["status"] == "open" && alert["level"] == 2).then_some(())
    })
    .await;
    let rows = app.outbox(Some(&alert_id), None).await;
    assert!(rows.iter().any(|r| r.step == "ack_timeout:1"
        && r.recipient_id.map(|u| u.to_string()).as_deref() == Some(org.police.id.as_str())));
    let ack_time = rows
        .iter()
        .find(|r| r.step == "ack_timeout:1")
        .unwrap()
        .created_at;
    let repeats_before_timeout = rows
        .iter()
        .filter(|r| r.step.starts_with("repeat:") && r.created_at < ack_time)
        .count();
    assert_eq!(
        repeats_before_timeout, repeats_at_ack,
        "no repeats while acknowledged"
    );
    assert!(
        !rows.iter().any(|r| r.step.starts_with("escalate:")),
        "an acknowledged alert does not escalate"
    );

    // Police resolve it; the outing is active again with a fresh deadline.
    let resolve = format!("/api/v1/alerts/{alert_id}/resolve");
    let (status, problem) = app
        .post(
            &resolve,
            Some(&org.police.token),
            json!({"outcome": "fine"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let (status, resolved) = app
        .post(
            &resolve,
            Some(&org.police.token),
            json!({"outcome": "false_alarm", "note": "phone died"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{resolved}");
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["resolution"], "false_alarm");
    let (status, _) = app
        .post(
            &resolve,
            Some(&org.organiser.token),
            json!({"outcome": "safe"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, seen) = app
        .get(
            &format!("/api/v1/outings/{outing_id}"),
            &org.organiser.token,
        )
        .await;
    assert_eq!(seen["status"], "active");
    assert!(seen["open_alert"].is_null());
    let rows = app.outbox(Some(&alert_id), None).await;
    assert!(rows.iter().any(|r| r.step == "all_clear"
        && r.recipient_id.map(|u| u.to_string()).as_deref() == Some(org.police.id.as_str())));
    let (_, list) = app
        .get("/api/v1/alerts?status=resolved", &org.organiser.token)
        .await;
    assert_eq!(list["items"][0]["id"], alert_id.as_str());
    let (_, list) = app
        .get("/api/v1/alerts?status=open", &org.organiser.token)
        .await;
    assert!(list["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["id"] != alert_id.as_str()));
}

async fn panic_upgrades_an_open_alert(backend: Backend) {
    let app = spawn_app_with(backend, fast).await;
    let org = fast_org(&app, 0, 60).await;
    let outing = app
        .post(
            "/api/v1/outings",
            Some(&org.canvasser.token),
            json!({"checkin_interval_s": 2}),
        )
        .await
        .1;
    let outing_id = outing["id"].as_str().unwrap().to_owned();
    let alert_id = wait_for(5, "the alert", || async {
        open_alert_id(&app, &org.organiser.token, &outing_id).await
    })
    .await;
    let (status, panic) = app
        .post(
            &format!("/api/v1/outings/{outing_id}/panic"),
            Some(&org.canvasser.token),
            json!({"lat": 51.6, "lon": -0.1}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        panic["id"],
        alert_id.as_str(),
        "upgraded, not a second alert"
    );
    assert_eq!(panic["kind"], "panic");
    assert_eq!(panic["level"], 2);
    assert_eq!(panic["last_location"]["lat"], 51.6);
    let rows = app.outbox(Some(&alert_id), None).await;
    let upgrade: Vec<_> = rows.iter().filter(|r| r.step == "upgrade:panic").collect();
    assert!(upgrade.iter().all(|r| r.message_type.as_str() == "panic"));
    let to: BTreeSet<String> = upgrade
        .iter()
        .filter_map(|r| r.recipient_id.map(|u| u.to_string()))
        .collect();
    assert_eq!(
        to,
        ids(&[&org.organiser.id, &org.police.id]),
        "panic goes to contacts, not the canvasser"
    );
    let (_, list) = app
        .get("/api/v1/alerts?status=open", &org.police.token)
        .await;
    assert_eq!(list["items"][0]["id"], alert_id.as_str());
}

async fn a_step_due_while_the_server_was_down_fires_once_on_restart(backend: Backend) {
    let mut app = spawn_app_with(backend, fast).await;
    let org = fast_org(&app, 0, 60).await;
    let outing = app
        .post(
            "/api/v1/outings",
            Some(&org.canvasser.token),
            json!({"checkin_interval_s": 3}),
        )
        .await
        .1;
    let outing_id = outing["id"].as_str().unwrap().to_owned();
    // Down before the reminder (due - 1 s = 2 s) and the deadline (3 s, missed at 4 s).
    app.stop().await;
    assert!(app.outbox(None, Some(&outing_id)).await.is_empty());
    tokio::time::sleep(std::time::Duration::from_millis(4_500)).await;

    let settings = (*app.state.settings).clone();
    let TestApp { dir, .. } = app;
    let app = start_app(settings, backend, dir);
    let alert_id = wait_for(5, "the missed check-in after restart", || async {
        open_alert_id(&app, &org.organiser.token, &outing_id).await
    })
    .await;
    // Give a second pass the chance to fire it twice (it must not).
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let rows = app.outbox(Some(&alert_id), None).await;
    let missed: Vec<_> = rows
        .iter()
        .filter(|r| r.step.starts_with("missed:"))
        .collect();
    let to: BTreeSet<String> = missed
        .iter()
        .filter_map(|r| r.recipient_id.map(|u| u.to_string()))
        .collect();
    assert_eq!(missed.len(), 2, "fired once: one row per recipient");
    assert_eq!(to, ids(&[&org.canvasser.id, &org.organiser.id]));
    let outing_rows = app.outbox(None, Some(&outing_id)).await;
    assert!(
        !outing_rows
            .iter()
            .any(|r| r.message_type.as_str() == "checkin_reminder"),
        "a reminder for a deadline already missed is skipped, not sent late"
    );
}

/// The scheduler writes a batch's outbox rows together (`insert_all_if_new`): a row whose
/// dedupe key is already stored, or repeats one earlier in the same batch, is not written.
async fn outbox_rows_written_together_keep_one_per_dedupe_key(backend: Backend) {
    use doorstep::store::notifications::{insert_all_if_new, insert_if_new, NotificationRow};
    let app = spawn_app_with(backend, fast).await;
    let row = |key: &str| NotificationRow {
        id: doorstep::store::new_id(),
        dedupe_key: key.to_owned(),
        alert_id: None,
        outing_id: None,
        recipient_id: None,
        channel: Channel::Webhook,
        step: "test".into(),
        message_type: MessageType::Test,
        level: 0,
        payload: "{}".into(),
        status: DeliveryStatus::Failed,
        attempts: 0,
        due_at: None,
        created_at: 0,
        next_attempt_at: 0,
        expires_at: 0,
        sent_at: None,
        last_error: None,
        claimed_by: None,
        claimed_until: None,
        provider_sid: None,
    };
    let (first, batch) = (
        row("k-stored"),
        vec![row("k-stored"), row("k-a"), row("k-b"), row("k-a")],
    );
    let (alone, together) = app
        .state
        .store
        .write(move |conn| {
            let alone = insert_if_new(conn, &first)?;
            let together = insert_all_if_new(conn, &batch)?;
            Ok((alone, together))
        })
        .await
        .expect("written");
    assert!(alone);
    assert_eq!(
        together, 2,
        "k-a and k-b are new; k-stored and the second k-a are not"
    );
    let keys = app
        .state
        .store
        .read(|conn| {
            use diesel::prelude::*;
            use doorstep::store::schema::notifications::dsl::*;
            let keys: Vec<String> = match conn {
                doorstep::store::DbConn::Pg(pg) => notifications
                    .filter(step.eq("test"))
                    .select(dedupe_key)
                    .order(dedupe_key)
                    .load(pg)?,
                doorstep::store::DbConn::Sqlite(sqlite) => notifications
                    .filter(step.eq("test"))
                    .select(dedupe_key)
                    .order(dedupe_key)
                    .load(sqlite)?,
            };
            Ok(keys)
        })
        .await
        .expect("read");
    assert_eq!(keys, ["k-a", "k-b", "k-stored"]);
}

/// A scheduler batch makes its writes together at its end (on PostgreSQL one statement per
/// kind for the whole batch): each outing of the batch still gets its own alert, opened where
/// its own canvasser was last seen, its own event, its own state and its own messages.
async fn a_batch_of_missed_checkins_writes_every_outing_alert_and_event(backend: Backend) {
    use doorstep::domain::ids::OutingId;
    use doorstep::service::notify::Lookups;
    let app = spawn_app_with(backend, fast).await;
    let org = fast_org(&app, 0, 60).await;
    let mut outings = Vec::new();
    for (user, lat) in [(&org.canvasser, 51.25), (&org.other_canvasser, 52.75)] {
        let (status, outing) = app
            .post(
                "/api/v1/outings",
                Some(&user.token),
                json!({"checkin_interval_s": 3600,
                       "start_location": {"lat": lat, "lon": -1.5, "accuracy_m": 5}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{outing}");
        outings.push((outing["id"].as_str().unwrap().to_owned(), lat));
    }
    // Past every deadline (the scheduler itself would not look for an hour).
    let fired_at = app.state.clock.now_ms() + 3_700_000;
    let policy = app.state.settings.escalation;
    let ids: Vec<String> = outings.iter().map(|(id, _)| id.clone()).collect();
    app.state
        .store
        .write(move |conn| {
            let mut lookups = Lookups::deferring_writes();
            for id in &ids {
                let id: OutingId = id.parse().expect("an outing id");
                let row = doorstep::store::outings::find_for_update(conn, id)?.expect("stored");
                doorstep::service::escalation::fire_outing(
                    conn,
                    &mut lookups,
                    row,
                    fired_at,
                    &policy,
                )?;
            }
            lookups.flush(conn)?;
            Ok(())
        })
        .await
        .expect("one batch");

    let mut alerts = BTreeSet::new();
    for (outing_id, lat) in &outings {
        let (_, seen) = app
            .get(
                &format!("/api/v1/outings/{outing_id}"),
                &org.organiser.token,
            )
            .await;
        assert_eq!(seen["status"], "overdue", "{seen}");
        assert_eq!(seen["open_alert"]["kind"], "missed_checkin", "{seen}");
        assert_eq!(seen["open_alert"]["outing_id"], outing_id.as_str());
        assert_eq!(seen["open_alert"]["last_location"]["lat"], *lat, "{seen}");
        let alert_id = seen["open_alert"]["id"].as_str().unwrap().to_owned();
        let rows = app.outbox(Some(&alert_id), None).await;
        assert!(
            recipients_of(&rows, "missed").contains(&org.organiser.id),
            "the organiser is told of {outing_id}"
        );
        alerts.insert(alert_id);
    }
    assert_eq!(alerts.len(), 2, "an alert each");
    let opened: BTreeSet<String> = app
        .state
        .store
        .read(|conn| Ok(doorstep::store::events::after(conn, 0, &[], 100)?))
        .await
        .expect("events")
        .into_iter()
        .filter(|e| e.event == "alert.opened")
        .map(|e| e.alert_id)
        .collect();
    assert_eq!(opened, alerts, "an alert.opened event each");
}

/// The scheduler's next deadline, when the statistics say almost no outing has one (most are
/// ended; analysed before the live ones got their deadlines): the right answer, and on
/// PostgreSQL a plan that stops at the first entry. A MIN under the same statistics reads the
/// whole index (at 100k live outings, 5–26 ms a call: see benchmarks.md).
async fn the_next_deadline_is_read_from_the_front_of_the_index(backend: Backend) {
    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;
    use doorstep::store::{schedule, DbConn};

    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let org = org(&app, &admin, "Party").await;
    let (canvasser, org_id) = (org.canvasser.id.clone(), org.id.clone());
    let (earliest, plans) = app
        .state
        .store
        .write(move |conn| {
            let rows = (1..=3000)
                .map(|i| {
                    format!(
                        "('idx-{i}', '{canvasser}', '{org_id}', 'ended', {i}, 600, TRUE, 0, 0, 0)"
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            let setup = format!(
                "INSERT INTO outings (id, canvasser_id, org_id, status, started_at, \
                   checkin_interval_s, solo, last_received_at, created_at, updated_at) \
                 VALUES {rows}; \
                 ANALYZE outings; \
                 UPDATE outings SET next_action_at = 5000000 + started_at \
                   WHERE id LIKE 'idx-%' AND started_at > 2000;"
            );
            match conn {
                DbConn::Pg(pg) => pg.batch_execute(&setup)?,
                DbConn::Sqlite(sqlite) => sqlite.batch_execute(&setup)?,
            }
            let earliest = schedule::earliest_action(conn, 5_002_500)?;
            let plans = match conn {
                DbConn::Pg(pg) => {
                    #[derive(QueryableByName)]
                    struct Line {
                        #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
                        line: String,
                    }
                    let plan = |pg: &mut diesel::PgConnection, sql: &str| -> QueryResult<String> {
                        Ok(diesel::sql_query(format!("EXPLAIN {sql}"))
                            .bind::<diesel::sql_types::BigInt, _>(5_002_500i64)
                            .load::<Line>(pg)?
                            .into_iter()
                            .map(|l| l.line)
                            .collect::<Vec<_>>()
                            .join("\n"))
                    };
                    Some((
                        plan(pg, schedule::PG_EARLIEST_ACTION)?,
                        plan(
                            pg,
                            "SELECT min(next_action_at) FROM outings \
                             WHERE next_action_at IS NOT NULL AND next_action_at > $1",
                        )?,
                    ))
                }
                DbConn::Sqlite(_) => None,
            };
            Ok((earliest, plans))
        })
        .await
        .unwrap();
    // Deadlines 5,002,001..=5,003,000; the pass took what was due at 5,002,500.
    assert_eq!(
        earliest,
        Some(if backend == Backend::Postgres {
            5_002_501
        } else {
            // SQLite reads the index's first entry: it removes entries as it goes.
            5_002_001
        })
    );
    if let Some((ours, min)) = plans {
        assert!(
            ours.contains("Limit") && !ours.contains("Aggregate"),
            "stops at the first entry:\n{ours}"
        );
        // The hazard this avoids, reproduced by the same statistics.
        assert!(
            min.contains("Aggregate") && !min.contains("Limit"),
            "a MIN here reads the whole index:\n{min}"
        );
    }
}

/// The clock moved instead of waited for: with the scheduler loop off, `run_due_now` fires
/// what is due at the moved clock, the same pass the loop makes.
async fn escalation_on_a_moved_clock_without_waiting(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.scheduler.enabled = false;
        s.push.worker_enabled = false;
        // The receiver listens on loopback over plain HTTP.
        s.push.allow_private_endpoints = true;
    })
    .await;
    let admin = app.admin().await;
    let org = crate::outings::org(&app, &admin, "Party").await;
    let hook = WebhookReceiver::start("moved-clock-secret-0123456789").await;
    let (status, body) = app
        .put(
            &format!("/api/v1/orgs/{}/webhook", org.id),
            &org.organiser.token,
            json!({"url": hook.url, "secret": "moved-clock-secret-0123456789"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, outing) = app
        .post(
            "/api/v1/outings",
            Some(&org.canvasser.token),
            json!({"checkin_interval_s": 900}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = outing["id"].as_str().unwrap().to_owned();
    // Nothing is due yet.
    let fired = doorstep::scheduler::run_due_now(&app.state).await.unwrap();
    assert_eq!(fired, 0);
    // Past the deadline and the default 300 s grace: the missed check-in opens at level 1.
    app.state
        .clock
        .advance(chrono::Duration::seconds(900 + 300 + 1));
    let fired = doorstep::scheduler::run_due_now(&app.state).await.unwrap();
    assert!(fired >= 1, "{fired}");
    let (_, seen) = app
        .get(&format!("/api/v1/outings/{id}"), &org.organiser.token)
        .await;
    assert_eq!(seen["status"], "overdue", "{seen}");
    assert_eq!(seen["open_alert"]["kind"], "missed_checkin");
    assert_eq!(seen["open_alert"]["level"], 1);
    // The step is in the outbox; with the worker off, nothing has gone out until a delivery
    // pass runs, and that pass posts it to the org's webhook before it returns.
    assert!(hook.requests().is_empty());
    let attempted = doorstep::push::worker::deliver_due_now(app.state.clone())
        .await
        .unwrap();
    assert!(attempted >= 1, "{attempted}");
    let requests = hook.requests();
    assert_eq!(requests.len(), 1, "one org webhook for the missed check-in");
    // (Its signature's timestamp is the server's moved clock, 20 minutes ahead of the
    // receiver's, so the receiver's freshness check refuses it: what it checks here is that
    // the pass delivered the step, not the signing, which tests/api/channels.rs covers.)
    assert_eq!(requests[0].json()["type"], "missed_checkin");
    assert_eq!(
        doorstep::push::worker::deliver_due_now(app.state.clone())
            .await
            .unwrap(),
        0,
        "delivered once: nothing left due"
    );
    // And past police_after_s (600 s): level 2, at once.
    app.state.clock.advance(chrono::Duration::seconds(601));
    doorstep::scheduler::run_due_now(&app.state).await.unwrap();
    let (_, seen) = app
        .get(&format!("/api/v1/outings/{id}"), &org.organiser.token)
        .await;
    assert_eq!(seen["open_alert"]["level"], 2, "{seen}");
}
