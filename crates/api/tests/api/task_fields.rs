//! Contract 6.1: the four new task fields, through POST, PUT and the
//! completion route.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, assert_error, spawn_app};

fn id_of(task: &Value) -> &str {
    task["id"].as_str().expect("a task id")
}

#[tokio::test]
async fn a_new_task_has_the_defaults_of_the_new_fields() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let task = app.created_task(&user.token, "plain").await;
    assert_eq!(task["completed_at"], Value::Null);
    assert_eq!(task["due_at"], Value::Null);
    assert_eq!(task["priority"], "none");
    assert_eq!(task["labels"], json!([]));
    let mut keys: Vec<&str> = task
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "completed",
            "completed_at",
            "created_at",
            "description",
            "due_at",
            "id",
            "labels",
            "priority",
            "title",
            "updated_at"
        ],
        "these ten, never the owner"
    );
}

#[tokio::test]
async fn every_new_field_round_trips_through_create_and_get() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let created = app
        .created_with(
            &user.token,
            &json!({"title": "t", "due_at": "2026-12-24T19:00:00.5+01:00",
                    "priority": "high", "labels": [" work ", "Home", "WORK", "home"]}),
        )
        .await;
    assert_eq!(created["due_at"], "2026-12-24T18:00:00.500000Z");
    assert_eq!(created["priority"], "high");
    assert_eq!(created["labels"], json!(["work", "Home"]));
    let fetched: Value = app
        .get_task(&user.token, id_of(&created))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(fetched, created);
}

#[tokio::test]
async fn completed_at_follows_completed() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let done = app
        .created_with(
            &user.token,
            &json!({"title": "born done", "completed": true}),
        )
        .await;
    assert_eq!(done["completed_at"], done["created_at"]);

    let open = app.created_task(&user.token, "open").await;
    let id = id_of(&open);
    assert_eq!(open["completed_at"], Value::Null);
    let completed: Value = app
        .complete_task(&user.token, id, &json!({"completed": true}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(completed["completed_at"], completed["updated_at"]);
    assert!(completed["completed_at"].as_str() > open["created_at"].as_str());

    // Setting true again, or a PUT that keeps it true, keeps the instant.
    let again: Value = app
        .complete_task(&user.token, id, &json!({"completed": true}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["completed_at"], completed["completed_at"]);
    let renamed: Value = app
        .replace_task(
            &user.token,
            id,
            &json!({"title": "renamed", "completed": true}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(renamed["completed_at"], completed["completed_at"]);
    assert!(renamed["updated_at"].as_str() > completed["updated_at"].as_str());

    let reopened: Value = app.flip_task(&user.token, id).await.json().await.unwrap();
    assert_eq!(reopened["completed"], false);
    assert_eq!(reopened["completed_at"], Value::Null);
    let redone: Value = app
        .patch_task(&user.token, id, &json!({"completed": true}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(redone["completed_at"], redone["updated_at"]);
    assert!(redone["completed_at"].as_str() > completed["completed_at"].as_str());
}

#[tokio::test]
async fn completed_at_sent_by_a_client_is_ignored() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let task = app
        .created_with(
            &user.token,
            &json!({"title": "t", "completed_at": "2000-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(task["completed_at"], Value::Null);
    let replaced: Value = app
        .replace_task(
            &user.token,
            id_of(&task),
            &json!({"title": "t", "completed": true, "completed_at": "2000-01-01T00:00:00Z"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(replaced["completed_at"], replaced["updated_at"]);
}

#[tokio::test]
async fn due_at_takes_rfc_3339_with_seconds_and_an_offset_and_answers_utc() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    for (sent, answered) in [
        ("2026-02-06T10:15:30Z", "2026-02-06T10:15:30.000000Z"),
        ("2026-02-06t10:15:30z", "2026-02-06T10:15:30.000000Z"),
        (
            "2026-02-06T12:15:30.123456+02:00",
            "2026-02-06T10:15:30.123456Z",
        ),
        ("2026-02-06T00:15:30.1-05:30", "2026-02-06T05:45:30.100000Z"),
        ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000000Z"),
        ("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999Z"),
    ] {
        let task = app
            .created_with(&user.token, &json!({"title": "t", "due_at": sent}))
            .await;
        assert_eq!(task["due_at"], answered, "{sent}");
        let fetched: Value = app
            .get_task(&user.token, id_of(&task))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(fetched["due_at"], answered, "{sent} read back");
    }
}

#[tokio::test]
async fn a_due_at_that_is_not_such_an_instant_is_invalid_due_at() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    // Dates unlike the example the error gives, so an echo would show.
    for bad in [
        "2031-07-19",
        "2031-07-19T10:15",
        "2031-07-19T10:15:30",
        "2031-07-19 10:15:30Z",
        "2031-07-19T10:15:30.1234567Z",
        "2031-02-30T10:15:30Z",
        "2031-12-31T23:59:60Z",
        "2031-07-19T10:15:30+0200",
        "0001-01-01T00:30:00+01:00",
        "9999-12-31T23:30:00-01:00",
        "tomorrow",
        "",
    ] {
        let response = app
            .create_task(&user.token, &json!({"title": "t", "due_at": bad}))
            .await;
        let body = assert_error(response, StatusCode::BAD_REQUEST, "invalid_due_at").await;
        if bad.len() > 4 {
            assert!(!body.to_string().contains(bad), "{bad} echoed: {body}");
        }
    }
    let listed = app.listed(&user.token, "").await;
    assert!(listed.tasks.is_empty(), "nothing was stored");
}

#[tokio::test]
async fn priority_is_one_of_four_words() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    for word in ["none", "low", "medium", "high"] {
        let task = app
            .created_with(&user.token, &json!({"title": "t", "priority": word}))
            .await;
        assert_eq!(task["priority"], word);
    }
    for bad in ["High", "urgent", "", " low", "3"] {
        let response = app
            .create_task(&user.token, &json!({"title": "t", "priority": bad}))
            .await;
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_priority").await;
    }
}

#[tokio::test]
async fn labels_are_trimmed_merged_without_case_and_kept_in_order() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let twenty: Vec<String> = (0..20).map(|n| format!("label {n}")).collect();
    let mut with_case_twins = twenty.clone();
    with_case_twins.extend(twenty.iter().map(|label| label.to_uppercase()));
    let task = app
        .created_with(
            &user.token,
            &json!({"title": "t", "labels": with_case_twins}),
        )
        .await;
    assert_eq!(
        task["labels"],
        json!(twenty),
        "forty spellings, twenty labels"
    );

    let task = app
        .created_with(
            &user.token,
            &json!({"title": "t", "labels": ["\tÄpfel\n", "äpfel", "é".repeat(50), "🦀"]}),
        )
        .await;
    assert_eq!(task["labels"], json!(["Äpfel", "é".repeat(50), "🦀"]));
}

#[tokio::test]
async fn labels_that_break_a_rule_are_invalid_labels() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let twenty_one: Vec<String> = (0..21).map(|n| format!("l{n}")).collect();
    for bad in [
        json!([" "]),
        json!([""]),
        json!(["é".repeat(51)]),
        json!(["wo\trk"]),
        json!(["a\u{7f}"]),
        json!(["a\u{0}"]),
        json!(twenty_one),
    ] {
        let response = app
            .create_task(&user.token, &json!({"title": "t", "labels": bad}))
            .await;
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_labels").await;
    }
}

/// Sends `body` and checks the 422 names `field` and its expected type,
/// and holds nothing of the value sent.
async fn assert_wrong_type(app: &TestApp, token: &str, body: Value, field: &str, secret: &str) {
    let response = app.create_task(token, &body).await;
    let error = assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
    )
    .await;
    assert_eq!(error["errors"][0]["field"], field, "{error}");
    let text = error.to_string();
    assert!(text.contains("expected"), "{text}");
    assert!(!text.contains(secret), "{secret} echoed: {text}");
}

#[tokio::test]
async fn a_value_of_the_wrong_json_type_is_a_422_that_does_not_echo_it() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let token = &user.token;
    let cases = [
        (
            json!({"title": "t", "priority": 31337}),
            "priority",
            "31337",
        ),
        (
            json!({"title": "t", "priority": ["hush"]}),
            "priority",
            "hush",
        ),
        (
            json!({"title": "t", "labels": "sekrit"}),
            "labels",
            "sekrit",
        ),
        (json!({"title": "t", "labels": [12345]}), "labels", "12345"),
        (
            json!({"title": "t", "labels": {"k": "sekrit"}}),
            "labels",
            "sekrit",
        ),
        (
            json!({"title": "t", "due_at": 1770372930}),
            "due_at",
            "1770372930",
        ),
        (json!({"title": "t", "due_at": true}), "due_at", "true"),
    ];
    for (body, field, secret) in cases {
        assert_wrong_type(&app, token, body, field, secret).await;
    }
}

#[tokio::test]
async fn null_sets_the_default_on_create_and_on_put() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let task = app
        .created_with(
            &user.token,
            &json!({"title": "t", "due_at": null, "priority": null, "labels": null}),
        )
        .await;
    assert_eq!(
        (&task["due_at"], &task["priority"], &task["labels"]),
        (&Value::Null, &json!("none"), &json!([]))
    );
    let full = app
        .created_with(
            &user.token,
            &json!({"title": "t", "due_at": "2026-12-24T18:00:00Z", "priority": "low",
                    "labels": ["a"]}),
        )
        .await;
    let reset: Value = app
        .replace_task(
            &user.token,
            id_of(&full),
            &json!({"title": "t", "due_at": null, "priority": null, "labels": null}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(reset["due_at"], Value::Null);
    assert_eq!(reset["priority"], "none");
    assert_eq!(reset["labels"], json!([]));
}

#[tokio::test]
async fn a_core_clients_put_never_erases_the_new_fields() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let task = app
        .created_with(
            &user.token,
            &json!({"title": "old", "due_at": "2026-12-24T18:00:00Z", "priority": "medium",
                    "labels": ["work"], "completed": true}),
        )
        .await;
    // Exactly what a [core] client sends: title, description, completed.
    let replaced: Value = app
        .replace_task(
            &user.token,
            id_of(&task),
            &json!({"title": "new", "description": "d", "completed": true}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(replaced["title"], "new");
    assert_eq!(replaced["due_at"], task["due_at"]);
    assert_eq!(replaced["priority"], "medium");
    assert_eq!(replaced["labels"], json!(["work"]));
    assert_eq!(replaced["completed_at"], task["completed_at"]);

    // Sent, they change.
    let changed: Value = app
        .replace_task(
            &user.token,
            id_of(&task),
            &json!({"title": "new", "priority": "low", "labels": ["home", "HOME"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(changed["priority"], "low");
    assert_eq!(changed["labels"], json!(["home"]));
    assert_eq!(changed["due_at"], task["due_at"], "not sent, kept");
    assert!(
        changed["description"].is_null(),
        "absent description still clears"
    );
}

#[tokio::test]
async fn put_checks_the_new_fields_like_post_and_changes_nothing_on_error() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let task = app.created_task(&user.token, "keep me").await;
    let id = id_of(&task);
    for (body, code) in [
        (
            json!({"title": "x", "due_at": "2026-02-06"}),
            "invalid_due_at",
        ),
        (
            json!({"title": "x", "priority": "urgent"}),
            "invalid_priority",
        ),
        (json!({"title": "x", "labels": [""]}), "invalid_labels"),
    ] {
        let response = app.replace_task(&user.token, id, &body).await;
        assert_error(response, StatusCode::BAD_REQUEST, code).await;
    }
    let response = app
        .replace_task(&user.token, id, &json!({"title": "x", "labels": "a"}))
        .await;
    assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
    )
    .await;
    let unchanged: Value = app.get_task(&user.token, id).await.json().await.unwrap();
    assert_eq!(unchanged, task);
}
