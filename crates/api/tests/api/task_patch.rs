//! Contract 6.2: `PATCH /api/tasks/{id}`, a JSON Merge Patch.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, assert_error, spawn_app};

fn id_of(task: &Value) -> String {
    task["id"].as_str().expect("a task id").to_owned()
}

/// A task with every field set.
async fn full_task(app: &TestApp, token: &str) -> Value {
    app.created_with(
        token,
        &json!({"title": "Full", "description": "all of it", "completed": true,
                "due_at": "2026-12-24T18:00:00Z", "priority": "high",
                "labels": ["work", "Home"]}),
    )
    .await
}

async fn patched(app: &TestApp, token: &str, id: &str, body: Value) -> (Value, String) {
    let response = app.patch_task(token, id, &body).await;
    assert_eq!(response.status(), StatusCode::OK, "{body}");
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    (response.json().await.unwrap(), etag)
}

#[tokio::test]
async fn an_absent_member_leaves_its_field_unchanged() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let task = full_task(&app, &user.token).await;
    let id = id_of(&task);
    let (after, _) = patched(&app, &user.token, &id, json!({"priority": "low"})).await;
    assert_eq!(after["priority"], "low");
    for field in [
        "title",
        "description",
        "completed",
        "completed_at",
        "due_at",
        "labels",
        "created_at",
    ] {
        assert_eq!(after[field], task[field], "{field}");
    }
    assert!(after["updated_at"].as_str() > task["updated_at"].as_str());
}

#[tokio::test]
async fn each_member_sets_its_field() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let task = app.created_task(&user.token, "bare").await;
    let id = id_of(&task);
    let (after, _) = patched(
        &app,
        &user.token,
        &id,
        json!({"title": "  Dressed ", "description": " now ", "completed": true,
               "due_at": "2027-01-01T01:00:00+01:00", "priority": "medium",
               "labels": ["x", "X", "y"], "id": "ignored", "created_at": "ignored"}),
    )
    .await;
    assert_eq!(after["title"], "Dressed");
    assert_eq!(after["description"], "now");
    assert_eq!(after["completed"], true);
    assert_eq!(after["completed_at"], after["updated_at"]);
    assert_eq!(after["due_at"], "2027-01-01T00:00:00.000000Z");
    assert_eq!(after["priority"], "medium");
    assert_eq!(after["labels"], json!(["x", "y"]));
    assert_eq!(after["id"], task["id"]);
    assert_eq!(after["created_at"], task["created_at"]);
}

#[tokio::test]
async fn null_clears_description_due_at_priority_and_labels() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let task = full_task(&app, &user.token).await;
    let (after, _) = patched(
        &app,
        &user.token,
        &id_of(&task),
        json!({"description": null, "due_at": null, "priority": null, "labels": null}),
    )
    .await;
    assert_eq!(after["description"], Value::Null);
    assert_eq!(after["due_at"], Value::Null);
    assert_eq!(after["priority"], "none");
    assert_eq!(after["labels"], json!([]));
    assert_eq!(after["title"], task["title"]);
    assert_eq!(after["completed"], true);
}

#[tokio::test]
async fn null_title_is_invalid_title_and_null_completed_a_422() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let task = full_task(&app, &user.token).await;
    let id = id_of(&task);
    let response = app
        .patch_task(&user.token, &id, &json!({"title": null}))
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_title").await;
    let response = app
        .patch_task(&user.token, &id, &json!({"completed": null}))
        .await;
    let body = assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "completed");
    let unchanged: Value = app.get_task(&user.token, &id).await.json().await.unwrap();
    assert_eq!(unchanged, task);
}

#[tokio::test]
async fn a_patch_follows_the_rules_and_codes_of_post() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let task = full_task(&app, &user.token).await;
    let id = id_of(&task);
    for (body, code) in [
        (json!({"title": " "}), "invalid_title"),
        (json!({"title": "x".repeat(501)}), "invalid_title"),
        (
            json!({"description": "d".repeat(2001)}),
            "invalid_description",
        ),
        (json!({"due_at": "2031-07-19"}), "invalid_due_at"),
        (json!({"priority": "urgent"}), "invalid_priority"),
        (json!({"labels": ["ok", " "]}), "invalid_labels"),
        // A valid field does not save an invalid one.
        (
            json!({"priority": "low", "labels": ["a\u{1}"]}),
            "invalid_labels",
        ),
    ] {
        let response = app.patch_task(&user.token, &id, &body).await;
        assert_error(response, StatusCode::BAD_REQUEST, code).await;
    }
    for (body, field, secret) in [
        (json!({"title": 424242}), "title", "424242"),
        (json!({"description": ["sekrit"]}), "description", "sekrit"),
        (json!({"completed": "sekrit"}), "completed", "sekrit"),
        (json!({"labels": "sekrit"}), "labels", "sekrit"),
        (json!({"priority": 424242}), "priority", "424242"),
        (json!({"due_at": 424242}), "due_at", "424242"),
    ] {
        let response = app.patch_task(&user.token, &id, &body).await;
        let error = assert_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
        )
        .await;
        assert_eq!(error["errors"][0]["field"], field);
        assert!(!error.to_string().contains(secret), "{error}");
    }
    let unchanged: Value = app.get_task(&user.token, &id).await.json().await.unwrap();
    assert_eq!(unchanged, task);
}

#[tokio::test]
async fn the_body_must_be_a_json_object() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let id = id_of(&app.created_task(&user.token, "t").await);
    for body in ["", "null", "[]", "\"title\"", "{", "{} {}"] {
        let response = app
            .client
            .patch(app.url(&format!("/api/tasks/{id}")))
            .bearer_auth(&user.token)
            .header("content-type", "application/merge-patch+json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
        )
        .await;
    }
}

#[tokio::test]
async fn merge_patch_and_json_content_types_are_accepted_others_are_415() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let id = id_of(&app.created_task(&user.token, "t").await);
    let send = |content_type: &'static str, title: &'static str| {
        app.client
            .patch(app.url(&format!("/api/tasks/{id}")))
            .bearer_auth(&user.token)
            .header("content-type", content_type)
            .body(format!(r#"{{"title": "{title}"}}"#))
            .send()
    };
    for (content_type, title) in [
        ("application/merge-patch+json", "one"),
        ("application/merge-patch+json; charset=utf-8", "two"),
        ("application/json", "three"),
        ("Application/JSON; charset=UTF-8", "four"),
    ] {
        let response = send(content_type, title).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{content_type}");
        assert_eq!(response.json::<Value>().await.unwrap()["title"], title);
    }
    for content_type in [
        "text/json",
        "application/json-patch+json",
        "text/plain",
        "application/x-www-form-urlencoded",
    ] {
        let response = send(content_type, "never").await.unwrap();
        assert_error(
            response,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        )
        .await;
    }
    let task: Value = app.get_task(&user.token, &id).await.json().await.unwrap();
    assert_eq!(task["title"], "four");
}

#[tokio::test]
async fn a_patch_that_changes_nothing_keeps_updated_at_and_the_etag() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let task = full_task(&app, &user.token).await;
    let id = id_of(&task);
    let first = app.get_task(&user.token, &id).await;
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    for body in [
        json!({}),
        json!({"title": "  Full\u{3000}"}),
        json!({"description": "all of it "}),
        json!({"completed": true}),
        json!({"due_at": "2026-12-24T20:00:00.000+02:00"}),
        json!({"priority": "high"}),
        json!({"labels": ["work", "Home", "HOME"]}),
        json!({"title": "Full", "priority": "high", "labels": ["work", "Home"]}),
    ] {
        let (after, after_etag) = patched(&app, &user.token, &id, body.clone()).await;
        assert_eq!(after, task, "{body}");
        assert_eq!(after_etag, etag, "{body}");
    }
    // The same labels in another order or spelling are a change.
    let (after, after_etag) =
        patched(&app, &user.token, &id, json!({"labels": ["Home", "work"]})).await;
    assert_ne!(after_etag, etag);
    assert!(after["updated_at"].as_str() > task["updated_at"].as_str());
}

#[tokio::test]
async fn patch_of_a_missing_or_foreign_task_or_a_bad_id() {
    let app = spawn_app().await;
    let alice = TestUser::signed_up(&app).await;
    let bob = TestUser::signed_up(&app).await;
    let task = full_task(&app, &alice.token).await;
    let response = app
        .patch_task(&bob.token, &id_of(&task), &json!({"title": "mine now"}))
        .await;
    assert_error(response, StatusCode::FORBIDDEN, "forbidden").await;
    let missing = uuid::Uuid::now_v7().to_string();
    let response = app
        .patch_task(&alice.token, &missing, &json!({"title": "x"}))
        .await;
    assert_error(response, StatusCode::NOT_FOUND, "task_not_found").await;
    let response = app
        .patch_task(&alice.token, "not-a-uuid", &json!({"title": "x"}))
        .await;
    assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_task_id",
    )
    .await;
    let anonymous = app
        .client
        .patch(app.url(&format!("/api/tasks/{}", id_of(&task))))
        .json(&json!({"title": "x"}))
        .send()
        .await
        .unwrap();
    assert_error(anonymous, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    let unchanged: Value = app
        .get_task(&alice.token, &id_of(&task))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(unchanged, task);
}
