use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestUser, assert_error, spawn_app};

#[tokio::test]
async fn creating_a_task_returns_it_with_a_location() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let response = app
        .create_task(
            &user.token,
            &json!({"title": "  Buy milk ", "description": " 2 litres "}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let task: Value = response.json().await.unwrap();
    assert_eq!(
        location,
        format!("/api/tasks/{}", task["id"].as_str().unwrap())
    );
    assert_eq!(task["title"], "Buy milk");
    assert_eq!(task["description"], "2 litres");
    assert_eq!(task["completed"], false);
    assert_eq!(task["created_at"], task["updated_at"]);
    let id = uuid::Uuid::parse_str(task["id"].as_str().unwrap()).unwrap();
    assert_eq!(id.get_version_num(), 7);
    assert_eq!(task["id"].as_str().unwrap(), id.hyphenated().to_string());
    let keys: Vec<&str> = task
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 10, "the owner never appears: {keys:?}");
    assert!(
        !keys.contains(&"user_id") && !keys.contains(&"owner"),
        "{keys:?}"
    );
}

#[tokio::test]
async fn created_task_can_be_read_back_identically() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let created = app.created_task(&user.token, "Read me").await;
    let response = app
        .get_task(&user.token, created["id"].as_str().unwrap())
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap(), created);
}

#[tokio::test]
async fn completed_may_be_set_at_creation_and_client_fields_are_ignored() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let body = json!({
        "title": "Done already", "completed": true,
        "id": "00000000-0000-7000-8000-000000000000", "user_id": "someone",
        "created_at": "2000-01-01T00:00:00Z", "updated_at": "2000-01-01T00:00:00Z"
    });
    let task: Value = app
        .create_task(&user.token, &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(task["completed"], true);
    assert_ne!(task["id"], "00000000-0000-7000-8000-000000000000");
    assert!(!task["created_at"].as_str().unwrap().starts_with("2000"));
}

#[tokio::test]
async fn blank_descriptions_are_stored_as_null() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    for description in [json!(null), json!("   "), json!("\u{3000}")] {
        let task: Value = app
            .create_task(
                &user.token,
                &json!({"title": "t", "description": description}),
            )
            .await
            .json()
            .await
            .unwrap();
        assert!(task["description"].is_null(), "{description}");
    }
}

#[tokio::test]
async fn title_rules_are_enforced() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let empty = app
        .create_task(&user.token, &json!({"title": " \u{a0}\u{3000} "}))
        .await;
    let body = assert_error(empty, StatusCode::BAD_REQUEST, "invalid_title").await;
    assert_eq!(body["detail"], "Title cannot be empty");
    let long = app
        .create_task(&user.token, &json!({"title": "x".repeat(501)}))
        .await;
    assert_error(long, StatusCode::BAD_REQUEST, "invalid_title").await;
    let nul = app
        .create_task(&user.token, &json!({"title": "a\u{0}b"}))
        .await;
    assert_error(nul, StatusCode::BAD_REQUEST, "invalid_title").await;
    let longest = app
        .create_task(&user.token, &json!({"title": "🦀".repeat(500)}))
        .await;
    assert_eq!(longest.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn description_rules_are_enforced() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let long = app
        .create_task(
            &user.token,
            &json!({"title": "t", "description": "d".repeat(2001)}),
        )
        .await;
    assert_error(long, StatusCode::BAD_REQUEST, "invalid_description").await;
    let nul = app
        .create_task(&user.token, &json!({"title": "t", "description": "\u{0}"}))
        .await;
    assert_error(nul, StatusCode::BAD_REQUEST, "invalid_description").await;
    let longest = app
        .create_task(
            &user.token,
            &json!({"title": "t", "description": "ß".repeat(2000)}),
        )
        .await;
    assert_eq!(longest.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn any_unicode_round_trips_byte_for_byte() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let title = "مرحبا بالعالم 👩🏽‍💻 שלום \u{202e}reversed\u{202c} 𝄞";
    let description = "zero\u{200b}width, combining e\u{301}, tab\tinside";
    let created: Value = app
        .create_task(
            &user.token,
            &json!({"title": title, "description": description}),
        )
        .await
        .json()
        .await
        .unwrap();
    let fetched: Value = app
        .get_task(&user.token, created["id"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(fetched["title"], title);
    assert_eq!(fetched["description"], description);
}

#[tokio::test]
async fn list_shows_only_the_callers_tasks_newest_first() {
    let app = spawn_app().await;
    let alice = TestUser::signed_up(&app).await;
    let bob = TestUser::signed_up(&app).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(app.created_task(&alice.token, &format!("task {n}")).await["id"].clone());
    }
    app.created_task(&bob.token, "bob's").await;
    let list: Vec<Value> = app.list_tasks(&alice.token).await.json().await.unwrap();
    let listed: Vec<Value> = list.iter().map(|task| task["id"].clone()).collect();
    ids.reverse();
    assert_eq!(listed, ids);
    let empty = TestUser::signed_up(&app).await;
    let list: Vec<Value> = app.list_tasks(&empty.token).await.json().await.unwrap();
    assert!(list.is_empty());
}

#[tokio::test]
async fn put_replaces_text_and_keeps_completed_unless_sent() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let created: Value = app
        .create_task(
            &user.token,
            &json!({"title": "old", "description": "old text", "completed": true}),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();

    let replaced: Value = app
        .replace_task(&user.token, id, &json!({"title": " new "}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(replaced["title"], "new");
    assert!(
        replaced["description"].is_null(),
        "absent description clears it"
    );
    assert_eq!(replaced["completed"], true, "absent completed keeps it");
    assert_eq!(replaced["created_at"], created["created_at"]);
    assert!(replaced["updated_at"].as_str() > created["updated_at"].as_str());

    let reopened: Value = app
        .replace_task(
            &user.token,
            id,
            &json!({"title": "new", "description": "again", "completed": false}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(reopened["completed"], false);
    assert_eq!(reopened["description"], "again");
    assert!(reopened["updated_at"].as_str() > replaced["updated_at"].as_str());
}

#[tokio::test]
async fn put_validates_like_create() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let id = app.created_task(&user.token, "t").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = app
        .replace_task(&user.token, &id, &json!({"title": ""}))
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_title").await;
    let response = app
        .replace_task(&user.token, &id, &json!({"description": "no title"}))
        .await;
    assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
    )
    .await;
    let unchanged: Value = app.get_task(&user.token, &id).await.json().await.unwrap();
    assert_eq!(unchanged["title"], "t");
}

#[tokio::test]
async fn patch_flips_without_a_body_and_sets_with_one() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let created = app.created_task(&user.token, "flip me").await;
    let id = created["id"].as_str().unwrap();

    let flipped: Value = app.flip_task(&user.token, id).await.json().await.unwrap();
    assert_eq!(flipped["completed"], true);
    assert!(flipped["updated_at"].as_str() > created["updated_at"].as_str());
    let flipped: Value = app
        .complete_task(&user.token, id, &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(flipped["completed"], false);

    // An empty body with a JSON content type is still "no body".
    let response = app
        .client
        .patch(app.url(&format!("/api/tasks/{id}/complete")))
        .bearer_auth(&user.token)
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.json::<Value>().await.unwrap()["completed"], true);

    for _ in 0..2 {
        let set: Value = app
            .complete_task(&user.token, id, &json!({"completed": false}))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(set["completed"], false, "setting is idempotent");
    }
    let set: Value = app
        .complete_task(&user.token, id, &json!({"completed": true}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(set["completed"], true);
    assert_eq!(set["created_at"], created["created_at"]);

    let wrong_type = app
        .complete_task(&user.token, id, &json!({"completed": "yes"}))
        .await;
    assert_error(
        wrong_type,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
    )
    .await;
}

#[tokio::test]
async fn delete_answers_204_then_404() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let id = app.created_task(&user.token, "bye").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = app.delete_task(&user.token, &id).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(response.bytes().await.unwrap().is_empty());
    assert_error(
        app.delete_task(&user.token, &id).await,
        StatusCode::NOT_FOUND,
        "task_not_found",
    )
    .await;
    assert_error(
        app.get_task(&user.token, &id).await,
        StatusCode::NOT_FOUND,
        "task_not_found",
    )
    .await;
}

#[tokio::test]
async fn unknown_and_malformed_ids_on_every_id_route() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let missing = uuid::Uuid::now_v7().to_string();
    let body = json!({"title": "t"});
    let not_found = [
        app.get_task(&user.token, &missing).await,
        app.replace_task(&user.token, &missing, &body).await,
        app.delete_task(&user.token, &missing).await,
        app.flip_task(&user.token, &missing).await,
    ];
    for response in not_found {
        let body = assert_error(response, StatusCode::NOT_FOUND, "task_not_found").await;
        assert_eq!(body["detail"], "Task not found");
    }
    for bad in ["not-a-uuid", "123", "0190a1b2c3d47e5f8a9b0c1d2e3f4a5b"] {
        let malformed = [
            app.get_task(&user.token, bad).await,
            app.replace_task(&user.token, bad, &body).await,
            app.delete_task(&user.token, bad).await,
            app.flip_task(&user.token, bad).await,
        ];
        for response in malformed {
            assert_error(
                response,
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_task_id",
            )
            .await;
        }
    }
}

#[tokio::test]
async fn tasks_survive_a_restart_of_the_service() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let created = app.created_task(&user.token, "durable").await;
    let id = created["id"].as_str().unwrap().to_owned();
    let flipped: Value = app.flip_task(&user.token, &id).await.json().await.unwrap();

    let app = app.restart().await;
    let response = app.get_task(&user.token, &id).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the token and the task outlive the process"
    );
    assert_eq!(response.json::<Value>().await.unwrap(), flipped);
}
