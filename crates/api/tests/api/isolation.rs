//! User B against user A's task, on every route: 403, and A's task is
//! exactly as it was.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestUser, assert_error, spawn_app};

#[tokio::test]
async fn another_users_task_is_forbidden_on_every_route_and_left_unchanged() {
    let app = spawn_app().await;
    let alice = TestUser::signed_up(&app).await;
    let bob = TestUser::signed_up(&app).await;
    let task = app.created_task(&alice.token, "alice's secret").await;
    let id = task["id"].as_str().unwrap();

    let attempts = [
        app.get_task(&bob.token, id).await,
        app.replace_task(&bob.token, id, &json!({"title": "pwned"}))
            .await,
        app.flip_task(&bob.token, id).await,
        app.complete_task(&bob.token, id, &json!({"completed": true}))
            .await,
        app.delete_task(&bob.token, id).await,
    ];
    for response in attempts {
        let body = assert_error(response, StatusCode::FORBIDDEN, "forbidden").await;
        assert_eq!(body["detail"], "Forbidden");
        assert!(
            !body.to_string().contains("alice"),
            "nothing of the task leaks"
        );
    }

    let after: Value = app.get_task(&alice.token, id).await.json().await.unwrap();
    assert_eq!(after, task);
    let bobs_list: Vec<Value> = app.list_tasks(&bob.token).await.json().await.unwrap();
    assert!(bobs_list.is_empty());
}

#[tokio::test]
async fn validation_comes_before_ownership() {
    let app = spawn_app().await;
    let alice = TestUser::signed_up(&app).await;
    let bob = TestUser::signed_up(&app).await;
    let id = app.created_task(&alice.token, "a").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = app
        .replace_task(&bob.token, &id, &json!({"title": ""}))
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_title").await;
}

#[tokio::test]
async fn authentication_comes_before_everything() {
    let app = spawn_app().await;
    let response = app
        .client
        .put(app.url("/api/tasks/not-a-uuid"))
        .header("content-type", "text/plain")
        .body("x".repeat(70_000))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::UNAUTHORIZED, "not_authenticated").await;
}
