use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestUser, spawn_app};

#[tokio::test]
async fn fifty_parallel_flips_lose_no_update() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let id = app.created_task(&user.token, "contended").await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let flips = (0..50).map(|_| app.flip_task(&user.token, &id));
    let mut shown_true = 0;
    for response in join_all(flips).await {
        assert_eq!(response.status(), StatusCode::OK);
        let task: Value = response.json().await.unwrap();
        if task["completed"] == true {
            shown_true += 1;
        }
    }
    assert_eq!(shown_true, 25, "exactly ceil(50/2) responses show true");
    let task: Value = app.get_task(&user.token, &id).await.json().await.unwrap();
    assert_eq!(task["completed"], false, "50 is even");
}

#[tokio::test]
async fn an_odd_number_of_parallel_flips_ends_completed() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let id = app.created_task(&user.token, "odd").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let responses = join_all((0..7).map(|_| app.flip_task(&user.token, &id))).await;
    let mut shown_true = 0;
    for response in responses {
        let task: Value = response.json().await.unwrap();
        shown_true += usize::from(task["completed"] == true);
    }
    assert_eq!(shown_true, 4);
    let task: Value = app.get_task(&user.token, &id).await.json().await.unwrap();
    assert_eq!(task["completed"], true);
}

#[tokio::test]
async fn fifty_parallel_creates_all_land() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let bodies: Vec<Value> = (0..50)
        .map(|n| json!({"title": format!("task {n}")}))
        .collect();
    let creates = bodies.iter().map(|body| app.create_task(&user.token, body));
    let mut ids = Vec::new();
    for response in join_all(creates).await {
        assert_eq!(response.status(), StatusCode::CREATED);
        ids.push(
            response.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 50);
    let list: Vec<Value> = app.list_tasks(&user.token).await.json().await.unwrap();
    assert_eq!(list.len(), 50);
    let stamps: Vec<(&str, &str)> = list
        .iter()
        .map(|task| {
            (
                task["created_at"].as_str().unwrap(),
                task["id"].as_str().unwrap(),
            )
        })
        .collect();
    let mut sorted = stamps.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(stamps, sorted, "newest first, then id descending");
}
