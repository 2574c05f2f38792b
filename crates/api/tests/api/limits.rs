//! Contract 6.5: `MAX_TASKS_PER_USER`.

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};
use todo_persistence::testing::TestDatabase;

use crate::helpers::{TestUser, assert_error, spawn_app_with};

#[tokio::test]
async fn one_task_over_the_limit_is_409_task_limit_reached() {
    let app = spawn_app_with(
        TestDatabase::preferred().await,
        &[("MAX_TASKS_PER_USER", "3")],
    )
    .await;
    let user = TestUser::signed_up(&app).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(app.created_task(&user.token, &format!("t{n}")).await["id"].clone());
    }
    let response = app
        .create_task(&user.token, &json!({"title": "one more"}))
        .await;
    let body = assert_error(response, StatusCode::CONFLICT, "task_limit_reached").await;
    assert!(!body.to_string().contains("one more"), "{body}");
    assert_eq!(app.listed(&user.token, "").await.total, 3);

    // The limit is per user.
    let other = TestUser::signed_up(&app).await;
    app.created_task(&other.token, "theirs").await;

    // Deleting one, or clearing completed ones, makes room again.
    let id = ids[0].as_str().unwrap();
    assert_eq!(
        app.delete_task(&user.token, id).await.status(),
        StatusCode::NO_CONTENT
    );
    app.created_task(&user.token, "fits again").await;
    let response = app
        .create_task(&user.token, &json!({"title": "over"}))
        .await;
    assert_error(response, StatusCode::CONFLICT, "task_limit_reached").await;
    app.flip_task(&user.token, ids[1].as_str().unwrap()).await;
    let cleared = app
        .client
        .delete(app.url("/api/tasks?completed=true"))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        cleared.json::<Value>().await.unwrap(),
        json!({"deleted": 1})
    );
    app.created_task(&user.token, "fits after clearing").await;
    assert_eq!(app.listed(&user.token, "").await.total, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_parallel_creates_at_the_limit_leave_exactly_the_limit() {
    const LIMIT: usize = 20;
    let app = spawn_app_with(
        TestDatabase::preferred().await,
        &[
            ("MAX_TASKS_PER_USER", "20"),
            ("DATABASE_MAX_CONNECTIONS", "10"),
        ],
    )
    .await;
    let user = TestUser::signed_up(&app).await;
    for round in 0..2 {
        let bodies: Vec<Value> = (0..50)
            .map(|n| json!({"title": format!("round {round} task {n}")}))
            .collect();
        let creates = bodies.iter().map(|body| app.create_task(&user.token, body));
        let (mut created, mut refused) = (0, 0);
        for response in join_all(creates).await {
            match response.status() {
                StatusCode::CREATED => created += 1,
                StatusCode::CONFLICT => {
                    assert_error(response, StatusCode::CONFLICT, "task_limit_reached").await;
                    refused += 1;
                }
                other => panic!("unexpected {other}: {}", response.text().await.unwrap()),
            }
        }
        // The first round fills the account; the second finds it full.
        let expected = if round == 0 { LIMIT } else { 0 };
        assert_eq!(
            (created, refused),
            (expected, 50 - expected),
            "round {round}"
        );
        let listed = app.listed(&user.token, "").await;
        assert_eq!(listed.total as usize, LIMIT);
        assert_eq!(listed.tasks.len(), LIMIT);
    }
}
