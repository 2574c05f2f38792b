//! `GET /metrics`: Prometheus text format, scraped from the real server.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use todo_persistence::testing::TestDatabase;

use crate::helpers::{TestApp, TestUser, assert_error, spawn_app, spawn_app_with};

pub(crate) async fn scrape(app: &TestApp) -> String {
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    response.text().await.unwrap()
}

/// The value of the sample `name{labels}` (labels in the order the text
/// format writes them: alphabetical), if present.
pub(crate) fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let key = if labels.is_empty() {
        format!("{name} ")
    } else {
        format!("{name}{{{labels}}} ")
    };
    text.lines()
        .find_map(|line| line.strip_prefix(&key))
        .map(|value| value.trim().parse().expect("a number"))
}

fn requests(text: &str, method: &str, route: &str, status: u16) -> f64 {
    sample(
        text,
        "todo_api_http_requests_total",
        &format!(r#"method="{method}",route="{route}",status="{status}""#),
    )
    .unwrap_or(0.0)
}

#[tokio::test]
async fn requests_are_counted_and_timed_per_route_pattern_and_status() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let task = app.created_task(&user.token, "count me").await;
    let id = task["id"].as_str().unwrap();
    app.list_tasks(&user.token).await;
    app.list_tasks(&user.token).await;
    app.get_task(&user.token, id).await;
    app.get_task(&user.token, &uuid::Uuid::now_v7().to_string())
        .await;
    app.list_tasks("not-a-token").await;
    app.client
        .get(app.url("/no/such/path"))
        .send()
        .await
        .unwrap();
    app.client
        .get(app.url("/another/one"))
        .send()
        .await
        .unwrap();

    // A response is counted when its body has been sent, which can be a
    // moment after the client has read it; wait for the last one.
    let deadline = Instant::now() + Duration::from_secs(5);
    let text = loop {
        let text = scrape(&app).await;
        if requests(&text, "GET", "unmatched", 404) >= 2.0 || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    assert_eq!(requests(&text, "POST", "/api/auth/signup", 201), 1.0);
    assert_eq!(requests(&text, "POST", "/api/tasks", 201), 1.0);
    assert_eq!(requests(&text, "GET", "/api/tasks", 200), 2.0);
    assert_eq!(requests(&text, "GET", "/api/tasks", 401), 1.0);
    assert_eq!(requests(&text, "GET", "/api/tasks/{id}", 200), 1.0);
    assert_eq!(requests(&text, "GET", "/api/tasks/{id}", 404), 1.0);
    // Unmatched paths share one label value, whatever the path.
    assert_eq!(requests(&text, "GET", "unmatched", 404), 2.0);
    assert!(!text.contains("/no/such/path"), "{text}");
    assert!(!text.contains(id), "an id leaked into a label: {text}");

    let latency = r#"method="GET",route="/api/tasks",status="200""#;
    assert_eq!(
        sample(
            &text,
            "todo_api_http_requests_duration_seconds_count",
            latency
        ),
        Some(2.0)
    );
    let sum = sample(
        &text,
        "todo_api_http_requests_duration_seconds_sum",
        latency,
    )
    .unwrap();
    assert!(sum > 0.0 && sum < 10.0, "{sum}");
    assert_eq!(
        sample(
            &text,
            "todo_api_http_requests_duration_seconds_bucket",
            &format!(r#"{latency},le="+Inf""#)
        ),
        Some(2.0)
    );
}

#[tokio::test]
async fn the_connection_pool_is_reported() {
    let app = spawn_app().await;
    app.client
        .get(app.url("/health/ready"))
        .send()
        .await
        .unwrap();
    let text = scrape(&app).await;
    // The helpers size every test pool at 5.
    assert_eq!(
        sample(&text, "todo_api_db_pool_max_connections", ""),
        Some(5.0)
    );
    let idle = sample(&text, "todo_api_db_pool_connections", r#"state="idle""#).unwrap();
    let in_use = sample(&text, "todo_api_db_pool_connections", r#"state="in_use""#).unwrap();
    // sqlx hands a connection back to the pool on a task of its own, so
    // right after the answer it may still count as in use.
    assert!(
        idle + in_use >= 1.0,
        "the ready probe left a connection open: {text}"
    );
    assert!(idle + in_use <= 5.0, "{text}");
}

#[tokio::test]
async fn metrics_can_be_turned_off() {
    let app = spawn_app_with(
        TestDatabase::preferred().await,
        &[("METRICS_ENABLED", "false")],
    )
    .await;
    app.client.get(app.url("/health")).send().await.unwrap();
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    // The rest of the service is untouched.
    let response = app
        .client
        .post(app.url("/api/auth/signup"))
        .json(&json!({"email": "off@example.io", "password": "long enough"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
}
