//! `GET /metrics`: Prometheus text format, scraped from the real server.

use std::time::{Duration, Instant};

use futures_util::StreamExt;

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

/// Sends `method` to `/health` over a raw connection (so the method's
/// size is exactly what is written) and returns the answer's status, or
/// `None` when the server closed the connection without one.
async fn raw_status_of_method(app: &TestApp, method: &str) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("{method} /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    // The server may answer and close before it has read everything.
    let _ = stream.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|status| status.parse().ok())
}

/// The values of every `method` label in a scrape.
fn method_labels(text: &str) -> std::collections::BTreeSet<String> {
    let label = regex::Regex::new(r#"method="([^"]*)""#).unwrap();
    label
        .captures_iter(text)
        .map(|captures| captures[1].to_owned())
        .collect()
}

#[tokio::test]
async fn invented_methods_cannot_grow_the_metrics() {
    const INVENTED: usize = 3_000;
    let app = spawn_app().await;
    let statuses: Vec<StatusCode> = futures_util::stream::iter(0..INVENTED)
        .map(|i| {
            let method = reqwest::Method::from_bytes(format!("Z{i}").as_bytes()).unwrap();
            let request = app.client.request(method, app.url("/health")).send();
            async move { request.await.unwrap().status() }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::METHOD_NOT_ALLOWED),
        "every invented method is refused with 405"
    );
    // 100 KB, under actix-http's 128 KiB head limit, so it reaches the app.
    let huge = "M".repeat(100 * 1024);
    let huge_status = raw_status_of_method(&app, &huge).await;

    let expected = INVENTED + usize::from(huge_status == Some(405));
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = scrape(&app).await;
        let counted = requests(&text, "OTHER", "/health", 405);
        if counted >= expected as f64 || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let lines = text.lines().count();
    let methods = method_labels(&text);
    crate::server_process::report(&format!(
        "metrics: {INVENTED} invented methods + one of {} bytes (answered {huge_status:?}) → \
         /metrics {lines} lines, {} bytes, {} method label values",
        huge.len(),
        text.len(),
        methods.len()
    ));
    // Without the bound each method was a counter and a 14-line histogram:
    // 45,000 lines and megabytes here. Bounded, a handful of series.
    assert!(lines < 200, "{lines} lines in /metrics");
    assert!(text.len() < 32 * 1024, "{} bytes in /metrics", text.len());
    let standard = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE", "OTHER",
    ];
    assert!(
        methods.iter().all(|m| standard.contains(&m.as_str())),
        "{} method label values",
        methods.len()
    );
    // Every one of them was counted, under `OTHER`.
    assert_eq!(requests(&text, "OTHER", "/health", 405), expected as f64);
}
