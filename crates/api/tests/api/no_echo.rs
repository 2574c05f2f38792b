//! A refused body is never quoted back (contract 6.5): a 422 names the
//! field and the type it expected, not the value sent, which may be a
//! password. `helpers::TestClient` checks every 422 of the suite the same
//! way; these tests send the cases one by one through a plain client, so
//! they hold even without that check.

use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use todo_persistence::testing::TestDatabase;

use crate::helpers::{TEST_SECRET, TestApp, TestUser, spawn_app};
use crate::server_process::free_port;

/// Sends `body` with a plain reqwest client and returns the 422's JSON
/// and its raw text.
async fn refused(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> (Value, String) {
    let mut request = reqwest::Client::new()
        .request(method.clone(), app.url(path))
        .json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "{method} {path} {body}"
    );
    let text = response.text().await.unwrap();
    let json: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["code"], "validation_error", "{text}");
    (json, text)
}

fn assert_names_only(answer: &Value, text: &str, field: &str, expected: &str, sent: &str) {
    assert!(!text.contains(sent), "{sent} quoted back: {text}");
    assert_eq!(answer["errors"][0]["field"], field, "{text}");
    assert_eq!(
        answer["errors"][0]["message"],
        format!("invalid type: expected {expected}"),
        "{text}"
    );
    assert_eq!(
        answer["detail"],
        format!("Request body is not valid: field `{field}`: invalid type: expected {expected}"),
        "{text}"
    );
}

#[tokio::test]
async fn a_password_of_the_wrong_type_is_not_quoted_by_sign_up_or_sign_in() {
    let app = spawn_app().await;
    for path in ["/api/auth/signup", "/api/auth/signin"] {
        let body = json!({"email": "a@b.io", "password": 12345678});
        let (answer, text) = refused(&app, Method::POST, path, None, &body).await;
        assert_names_only(&answer, &text, "password", "a string", "12345678");

        let body = json!({"email": 4_242_424_242_u64, "password": "pw-that-is-fine"});
        let (answer, text) = refused(&app, Method::POST, path, None, &body).await;
        assert_names_only(&answer, &text, "email", "a string", "4242424242");
        assert!(!text.contains("pw-that-is-fine"), "{text}");

        let body = json!({"email": "a@b.io", "password": ["hunter2-in-a-list"]});
        let (answer, text) = refused(&app, Method::POST, path, None, &body).await;
        assert_names_only(&answer, &text, "password", "a string", "hunter2-in-a-list");
    }
}

#[tokio::test]
async fn wrong_types_in_task_bodies_are_not_quoted() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let id = app.created_task(&user.token, "t").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let task_cases = [
        (
            json!({"title": 98_765_432}),
            "title",
            "a string",
            "98765432",
        ),
        (
            json!({"title": 1.234_567_89}),
            "title",
            "a string",
            "1.23456789",
        ),
        (
            json!({"title": {"x": "nested-secret"}}),
            "title",
            "a string",
            "nested-secret",
        ),
        (
            json!({"title": "t", "description": 31_415_926}),
            "description",
            "a string",
            "31415926",
        ),
        (
            json!({"title": "t", "completed": "definitely-yes"}),
            "completed",
            "a boolean",
            "definitely-yes",
        ),
    ];
    for (method, path) in [
        (Method::POST, "/api/tasks".to_owned()),
        (Method::PUT, format!("/api/tasks/{id}")),
    ] {
        for (body, field, expected, sent) in &task_cases {
            let (answer, text) =
                refused(&app, method.clone(), &path, Some(&user.token), body).await;
            assert_names_only(&answer, &text, field, expected, sent);
        }
    }
    let completion = format!("/api/tasks/{id}/complete");
    for (body, sent) in [
        (json!({"completed": "secret-flag"}), "secret-flag"),
        (json!({"completed": 77_777_777}), "77777777"),
    ] {
        let (answer, text) =
            refused(&app, Method::PATCH, &completion, Some(&user.token), &body).await;
        assert_names_only(&answer, &text, "completed", "a boolean", sent);
    }
}

#[test]
fn the_suites_client_catches_a_quoted_value() {
    // The check every 422 of the suite goes through, on an answer that
    // does quote: it must fail, or it would prove nothing elsewhere.
    let sent = br#"{"email": "a@b.io", "password": 12345678}"#;
    let quoting = br#"{"detail": "invalid type: integer `12345678`, expected a string", "code": "validation_error"}"#;
    let caught = std::panic::catch_unwind(|| crate::helpers::assert_no_echo(sent, quoting));
    assert!(caught.is_err(), "a quoted password went unnoticed");
    let naming = br#"{"detail": "field `password`: invalid type: expected a string", "code": "validation_error"}"#;
    crate::helpers::assert_no_echo(sent, naming);
}

#[tokio::test]
async fn refused_bodies_leave_no_value_in_the_log() {
    let database = TestDatabase::preferred().await;
    let port = free_port();
    let log_path = std::env::temp_dir().join(format!("no-echo-{}.log", uuid::Uuid::new_v4()));
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_todo-api"))
        .env_clear()
        .env("DATABASE_URL", database.url())
        .env("JWT_SECRET", TEST_SECRET)
        .env("PORT", port.to_string())
        .env("DATABASE_MAX_CONNECTIONS", "2")
        .env("LOG_FORMAT", "json")
        // Everything our own crate says, at every level.
        .env("RUST_LOG", "info,todo_api=trace")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("the binary starts");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.get(format!("{base}/health")).send().await.is_err() {
        assert!(Instant::now() < deadline, "server did not come up in 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let secrets = ["12345678", "nested-secret", "definitely-yes"];
    for (path, body) in [
        (
            "/api/auth/signup",
            json!({"email": "a@b.io", "password": 12345678}),
        ),
        (
            "/api/auth/signin",
            json!({"email": "a@b.io", "password": 12345678}),
        ),
        ("/api/tasks", json!({"title": {"x": "nested-secret"}})),
    ] {
        let response = client
            .post(format!("{base}{path}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        // The task creation has no token: 401 comes first, body unread.
        assert!(response.status().is_client_error(), "{path}");
    }
    let signed_up: Value = client
        .post(format!("{base}/api/auth/signup"))
        .json(&json!({"email": format!("{}@example.io", uuid::Uuid::new_v4().simple()), "password": "long enough password"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = signed_up["access_token"].as_str().unwrap();
    for body in [
        json!({"title": {"x": "nested-secret"}}),
        json!({"title": "t", "completed": "definitely-yes"}),
    ] {
        let response = client
            .post(format!("{base}/api/tasks"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
    // Every request's line is written before its answer leaves.
    let _ = child.kill();
    let _ = child.wait();
    let logged = std::fs::read_to_string(&log_path).unwrap();
    let _ = std::fs::remove_file(&log_path);
    assert!(
        logged
            .lines()
            .filter(|line| line.contains("\"status\":422"))
            .count()
            >= 4,
        "the 422s were logged: {logged}"
    );
    for secret in secrets {
        assert!(!logged.contains(secret), "{secret} was logged:\n{logged}");
    }
}
