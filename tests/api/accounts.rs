use doorstep::domain::account::Role;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{spawn_app, Backend, PASSWORD};
use crate::on_both_backends;

on_both_backends!(
    role_rules_for_creating_users,
    organisations_are_visible_only_to_members_admins_and_assigned_police,
    escalation_policy_rules,
    police_contacts_are_managed_by_admins,
);

fn user_body(role: &str, org: Option<&str>) -> serde_json::Value {
    let mut body = json!({
        "email": format!("{role}-{}@example.org", uuid::Uuid::new_v4().simple()),
        "password": PASSWORD, "display_name": "Jo Bloggs", "role": role,
    });
    if let Some(org) = org {
        body["org_id"] = json!(org);
    }
    body
}

async fn role_rules_for_creating_users(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let org_a = app.create_org(&admin.token, "Party A").await;
    let org_b = app.create_org(&admin.token, "Party B").await;
    let organiser = app
        .create_user(
            &admin.token,
            Role::Organiser,
            Some(&org_a),
            "Olive Organiser",
        )
        .await;

    // An organiser creates canvassers and organisers in their own organisation (org_id implied).
    let (status, created) = app
        .post(
            "/api/v1/users",
            Some(&organiser.token),
            user_body("canvasser", None),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["org_id"], org_a.as_str());
    assert_eq!(created["role"], "canvasser");
    let (status, _) = app
        .post(
            "/api/v1/users",
            Some(&organiser.token),
            user_body("organiser", Some(&org_a)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    // ...but not admins, not police, not in another organisation.
    for body in [
        user_body("admin", None),
        user_body("police", None),
        user_body("canvasser", Some(&org_b)),
        user_body("organiser", Some(&org_b)),
    ] {
        let (status, problem) = app
            .post("/api/v1/users", Some(&organiser.token), body)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    }

    // Canvassers and police create nobody.
    let canvasser = app
        .create_user(&organiser.token, Role::Canvasser, None, "Cal Canvasser")
        .await;
    let police = app
        .create_user(&admin.token, Role::Police, None, "PC Plod")
        .await;
    for token in [&canvasser.token, &police.token] {
        let (status, _) = app
            .post(
                "/api/v1/users",
                Some(token),
                user_body("canvasser", Some(&org_a)),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }

    // Admin: organisation membership must match the role.
    let (status, problem) = app
        .post(
            "/api/v1/users",
            Some(&admin.token),
            user_body("canvasser", None),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["field"], "org_id");
    let (status, problem) = app
        .post(
            "/api/v1/users",
            Some(&admin.token),
            user_body("police", Some(&org_a)),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["field"], "org_id");
    let (status, problem) = app
        .post(
            "/api/v1/users",
            Some(&admin.token),
            user_body("canvasser", Some(&uuid::Uuid::new_v4().to_string())),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "org_id");

    // Duplicate email (in any case) → 409.
    let mut dup = user_body("canvasser", Some(&org_a));
    dup["email"] = json!(canvasser.email.to_uppercase());
    let (status, _) = app.post("/api/v1/users", Some(&admin.token), dup).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Every invalid field is reported at once.
    let (status, problem) = app
        .post(
            "/api/v1/users",
            Some(&admin.token),
            json!({"email": "nope", "password": "short", "display_name": " ", "role": "canvasser",
                   "org_id": org_a, "phone": "call me"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let mut fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    fields.sort();
    assert_eq!(fields, ["display_name", "email", "password", "phone"]);

    // An unknown role is a validation error naming the field.
    let (status, problem) = app
        .post(
            "/api/v1/users",
            Some(&admin.token),
            user_body("superuser", None),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["field"], "role");

    // /me reflects the account.
    let (status, me) = app.get("/api/v1/me", &canvasser.token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["role"], "canvasser");
    assert_eq!(me["org_id"], org_a.as_str());
    assert_eq!(me["has_pins"], false);
    assert_eq!(me["display_name"], "Cal Canvasser");
}

async fn organisations_are_visible_only_to_members_admins_and_assigned_police(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let org_a = app.create_org(&admin.token, "Party A").await;
    let org_b = app.create_org(&admin.token, "Party B").await;
    let organiser_a = app
        .create_user(&admin.token, Role::Organiser, Some(&org_a), "A")
        .await;
    let organiser_b = app
        .create_user(&admin.token, Role::Organiser, Some(&org_b), "B")
        .await;
    let canvasser_a = app
        .create_user(&organiser_a.token, Role::Canvasser, None, "C")
        .await;
    let police = app.create_user(&admin.token, Role::Police, None, "P").await;
    let path = format!("/api/v1/orgs/{org_a}");

    for (who, token) in [
        ("admin", &admin.token),
        ("organiser", &organiser_a.token),
        ("member", &canvasser_a.token),
    ] {
        let (status, org) = app.get(&path, token).await;
        assert_eq!(status, StatusCode::OK, "{who}");
        assert_eq!(org["name"], "Party A");
        assert_eq!(
            org["escalation_policy"]["grace_s"], 300,
            "server default policy"
        );
    }
    // Another organisation's organiser and unassigned police: it does not exist for them.
    for token in [&organiser_b.token, &police.token] {
        let (status, problem) = app.get(&path, token).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    }
    let (status, _) = app
        .post(
            &format!("{path}/police-contacts"),
            Some(&admin.token),
            json!({"user_id": police.id}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.get(&path, &police.token).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "assigned police see the organisation"
    );

    // Unknown and malformed ids are 404 alike.
    for bad in [
        uuid::Uuid::new_v4().to_string(),
        "not-a-uuid".into(),
        "%00".into(),
    ] {
        let (status, _) = app.get(&format!("/api/v1/orgs/{bad}"), &admin.token).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{bad}");
    }
    // Only admins create organisations.
    let (status, _) = app
        .post(
            "/api/v1/orgs",
            Some(&organiser_a.token),
            json!({"name": "Mine"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, problem) = app
        .post("/api/v1/orgs", Some(&admin.token), json!({"name": ""}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["field"], "name");
}

async fn escalation_policy_rules(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let org_a = app.create_org(&admin.token, "Party A").await;
    let org_b = app.create_org(&admin.token, "Party B").await;
    let organiser_a = app
        .create_user(&admin.token, Role::Organiser, Some(&org_a), "A")
        .await;
    let organiser_b = app
        .create_user(&admin.token, Role::Organiser, Some(&org_b), "B")
        .await;
    let canvasser_a = app
        .create_user(&organiser_a.token, Role::Canvasser, None, "C")
        .await;
    let path = format!("/api/v1/orgs/{org_a}/escalation-policy");
    let policy = json!({"reminder_before_s": 60, "grace_s": 120, "police_after_s": 300,
                        "repeat_s": 0, "ack_timeout_s": 600, "solo_max_checkin_interval_s": 1800});

    let (status, saved) = app.put(&path, &organiser_a.token, policy.clone()).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    // welfare_reply_s is optional in the PUT: it answers with the default (120 s).
    let mut answered = policy.clone();
    answered["welfare_reply_s"] = json!(120);
    answered["voice_after_s"] = json!(60);
    assert_eq!(saved, answered);
    let (_, org) = app
        .get(&format!("/api/v1/orgs/{org_a}"), &canvasser_a.token)
        .await;
    assert_eq!(org["escalation_policy"], answered);

    let (status, _) = app.put(&path, &admin.token, policy.clone()).await;
    assert_eq!(status, StatusCode::OK, "admins may set it too");
    let (status, _) = app.put(&path, &canvasser_a.token, policy.clone()).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a member who may not change it"
    );
    let (status, _) = app.put(&path, &organiser_b.token, policy.clone()).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another organisation's organiser"
    );

    let mut too_short = policy.clone();
    too_short["police_after_s"] = json!(5);
    let (status, problem) = app.put(&path, &organiser_a.token, too_short).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["field"], "police_after_s");

    // A misspelt field must not silently become a default.
    let mut misspelt = policy.clone();
    misspelt["grace"] = json!(10);
    let (status, problem) = app.put(&path, &organiser_a.token, misspelt).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["field"], "grace");
}

async fn police_contacts_are_managed_by_admins(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let org = app.create_org(&admin.token, "Party").await;
    let organiser = app
        .create_user(&admin.token, Role::Organiser, Some(&org), "O")
        .await;
    let police = app.create_user(&admin.token, Role::Police, None, "P").await;
    let path = format!("/api/v1/orgs/{org}/police-contacts");

    let (status, _) = app
        .post(&path, Some(&organiser.token), json!({"user_id": police.id}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, problem) = app
        .post(&path, Some(&admin.token), json!({"user_id": organiser.id}))
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "not a police user"
    );
    assert_eq!(problem["errors"][0]["field"], "user_id");
    let (status, _) = app
        .post(&path, Some(&admin.token), json!({"user_id": "nonsense"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    for _ in 0..2 {
        let (status, _) = app
            .post(&path, Some(&admin.token), json!({"user_id": police.id}))
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "assigning is idempotent");
    }
    let (status, _) = app
        .delete(&format!("{path}/{}", police.id), &organiser.token)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .delete(&format!("{path}/{}", police.id), &admin.token)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app
        .delete(&format!("{path}/{}", police.id), &admin.token)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.get(&format!("/api/v1/orgs/{org}"), &police.token).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "unassigned police lose sight of it"
    );
}
