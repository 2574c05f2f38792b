//! The contract's general section: routing errors, content types, body
//! limits, malformed JSON, CORS.

use futures_util::stream;
use reqwest::{Body, Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestUser, allowed_headers, assert_error, spawn_app, spawn_app_with};

#[tokio::test]
async fn an_unknown_path_is_not_found() {
    let app = spawn_app().await;
    for path in ["/nope", "/api", "/api/task", "/api/tasks/a/b/c"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    }
}

#[tokio::test]
async fn a_wrong_method_is_not_allowed_on_every_path() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let id = uuid::Uuid::now_v7();
    let cases = [
        (Method::DELETE, "/health".to_owned(), "GET, HEAD"),
        (Method::POST, "/health/ready".to_owned(), "GET, HEAD"),
        (Method::GET, "/api/auth/signup".to_owned(), "POST"),
        (Method::PUT, "/api/auth/signin".to_owned(), "POST"),
        (Method::POST, "/api/auth/me".to_owned(), "GET, HEAD"),
        (
            Method::PUT,
            "/api/tasks".to_owned(),
            "GET, HEAD, POST, DELETE",
        ),
        (
            Method::POST,
            format!("/api/tasks/{id}"),
            "GET, HEAD, PUT, PATCH, DELETE",
        ),
        (Method::GET, format!("/api/tasks/{id}/complete"), "PATCH"),
    ];
    for (method, path, allow) in cases {
        let response = app
            .client
            .request(method, app.url(&path))
            .bearer_auth(&user.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["allow"], allow, "{path}");
        assert_error(
            response,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        )
        .await;
    }
}

#[tokio::test]
async fn head_is_served_wherever_get_is() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let task = app.created_task(&user.token, "t").await;
    let paths = [
        "/health".to_owned(),
        "/api/auth/me".to_owned(),
        "/api/tasks".to_owned(),
        format!("/api/tasks/{}", task["id"].as_str().unwrap()),
    ];
    for path in paths {
        let response = app
            .client
            .head(app.url(&path))
            .bearer_auth(&user.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert!(response.bytes().await.unwrap().is_empty(), "{path}");
    }
    let anonymous = app.client.head(app.url("/api/tasks")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn json_means_application_json_only() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let body = r#"{"title": "typed"}"#;
    for content_type in [
        "text/json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/vnd.api+json",
    ] {
        let response = app
            .client
            .post(app.url("/api/tasks"))
            .bearer_auth(&user.token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_error(
            response,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        )
        .await;
    }
    let missing = app
        .client
        .post(app.url("/api/tasks"))
        .bearer_auth(&user.token)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_error(
        missing,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    for content_type in [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;charset=UTF-8",
    ] {
        let response = app
            .client
            .post(app.url("/api/tasks"))
            .bearer_auth(&user.token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED, "{content_type}");
        assert_eq!(response.headers()["content-type"], "application/json");
    }
    let patch = app
        .client
        .patch(app.url(&format!("/api/tasks/{}/complete", uuid::Uuid::now_v7())))
        .bearer_auth(&user.token)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_error(
        patch,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
}

async fn post_raw(
    app: &crate::helpers::TestApp,
    token: &str,
    body: impl Into<Body>,
) -> reqwest::Response {
    app.client
        .post(app.url("/api/tasks"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// A JSON task body padded with spaces to exactly `size` bytes.
fn body_of_size(size: usize) -> Vec<u8> {
    let mut body = br#"{"title": "padded"}"#.to_vec();
    body.resize(size, b' ');
    body
}

#[tokio::test]
async fn the_body_limit_is_65536_bytes() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    assert_eq!(
        post_raw(&app, &user.token, body_of_size(65_536))
            .await
            .status(),
        StatusCode::CREATED
    );
    let response = post_raw(&app, &user.token, body_of_size(65_537)).await;
    assert_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    let response = post_raw(&app, &user.token, body_of_size(1 << 20)).await;
    assert_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
}

#[tokio::test]
async fn the_body_limit_holds_for_chunked_uploads() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let chunked = |size: usize| {
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> = body_of_size(size)
            .chunks(1000)
            .map(|c| Ok(c.to_vec()))
            .collect();
        Body::wrap_stream(stream::iter(chunks))
    };
    assert_eq!(
        post_raw(&app, &user.token, chunked(65_536)).await.status(),
        StatusCode::CREATED
    );
    let response = post_raw(&app, &user.token, chunked(65_537)).await;
    assert_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    let tasks: Vec<Value> = app.list_tasks(&user.token).await.json().await.unwrap();
    assert_eq!(tasks.len(), 1, "nothing is stored from a refused body");
}

#[tokio::test]
async fn malformed_json_is_a_validation_error_that_names_the_field() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let cases: [&[u8]; 11] = [
        b"{",
        b"",
        b"null",
        b"[]",
        br#"["a title"]"#,
        br#"["t", "d", true]"#,
        br#"{"title": 42}"#,
        br#"{"title": "t", "completed": "yes"}"#,
        br#"{"title": "t", "description": 5}"#,
        br#"{"title": "t"} trailing"#,
        b"{\"title\": \"\xff\xfe\"}",
    ];
    for body in cases {
        let response = post_raw(&app, &user.token, body.to_vec()).await;
        let error = assert_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
        )
        .await;
        assert!(error["errors"][0]["field"].is_string(), "{error}");
    }
    let response = post_raw(&app, &user.token, br#"{"title": 42}"#.to_vec()).await;
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["errors"][0]["field"], "title");
    let tasks: Vec<Value> = app.list_tasks(&user.token).await.json().await.unwrap();
    assert!(tasks.is_empty());
}

#[tokio::test]
async fn a_lone_surrogate_is_refused_without_a_server_error() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let response = post_raw(&app, &user.token, br#"{"title": "\ud800"}"#.to_vec()).await;
    assert!(
        matches!(response.status().as_u16(), 400 | 422),
        "{}",
        response.status()
    );
}

#[tokio::test]
async fn deeply_nested_json_neither_crashes_nor_is_stored() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let in_a_read_field = format!(r#"{{"title": {deep}}}"#);
    let response = post_raw(&app, &user.token, in_a_read_field).await;
    assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
    )
    .await;
    // serde_json would skip an unknown field of any depth; bodies nested
    // deeper than 32 levels are refused before parsing (see body.rs).
    let in_an_ignored_field = format!(r#"{{"title": "t", "x": {deep}}}"#);
    let response = post_raw(&app, &user.token, in_an_ignored_field).await;
    assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
    )
    .await;
    let tasks: Vec<Value> = app.list_tasks(&user.token).await.json().await.unwrap();
    assert!(tasks.is_empty(), "nothing was stored: {tasks:?}");
}

#[tokio::test]
async fn error_bodies_never_leak_internals() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let response = post_raw(&app, &user.token, br#"{"title": "a\u0000b"}"#.to_vec()).await;
    let text = response.text().await.unwrap();
    for needle in [
        "SQL",
        "sqlx",
        "sea_orm",
        "panicked",
        "INSERT",
        &user.token,
        "argon2",
    ] {
        assert!(!text.contains(needle), "{needle} in {text}");
    }
}

#[tokio::test]
async fn cors_headers_are_on_every_response_to_an_allowed_origin() {
    let database = todo_persistence::testing::TestDatabase::preferred().await;
    let app = spawn_app_with(
        database,
        &[(
            "CORS_ALLOWED_ORIGINS",
            "https://app.example, https://other.example",
        )],
    )
    .await;
    let origin = "https://app.example";

    let preflight = app
        .preflight(origin, "POST", "/api/tasks", "authorization, content-type")
        .await;
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(preflight.headers()["access-control-allow-origin"], origin);
    let allowed = allowed_headers(&preflight);
    assert!(
        allowed.contains("authorization") && allowed.contains("content-type"),
        "{allowed}"
    );

    let unauthorized = app
        .client
        .get(app.url("/api/tasks"))
        .header("origin", origin)
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        unauthorized.headers()["access-control-allow-origin"],
        origin
    );

    let not_found = app
        .client
        .get(app.url("/nowhere"))
        .header("origin", origin)
        .send()
        .await
        .unwrap();
    assert_eq!(not_found.headers()["access-control-allow-origin"], origin);

    let signup = app
        .client
        .post(app.url("/api/auth/signup"))
        .header("origin", origin)
        .json(&json!({"email": "cors@example.io", "password": "long enough"}))
        .send()
        .await
        .unwrap();
    assert_eq!(signup.status(), StatusCode::CREATED);
    assert_eq!(signup.headers()["access-control-allow-origin"], origin);

    let foreign = app
        .client
        .get(app.url("/health"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), StatusCode::OK);
    assert!(
        foreign
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test]
async fn cors_lets_a_browser_send_and_read_the_v2_headers() {
    let database = todo_persistence::testing::TestDatabase::preferred().await;
    let app = spawn_app_with(database, &[("CORS_ALLOWED_ORIGINS", "https://app.example")]).await;
    let origin = "https://app.example";
    let user = TestUser::signed_up(&app).await;
    let task = app.created_task(&user.token, "t").await;
    let path = format!("/api/tasks/{}", task["id"].as_str().unwrap());

    let sent = [
        "if-match",
        "if-none-match",
        "idempotency-key",
        "last-event-id",
        "authorization",
        "content-type",
    ];
    for (method, target) in [
        ("PATCH", path.as_str()),
        ("POST", "/api/tasks"),
        ("GET", "/api/tasks"),
    ] {
        let preflight = app
            .preflight(origin, method, target, &sent.join(", "))
            .await;
        assert!(
            preflight.status().is_success(),
            "{method}: {}",
            preflight.status()
        );
        let allowed = allowed_headers(&preflight);
        for header in sent {
            assert!(
                allowed.contains(header),
                "{method} {target}: {header} not in {allowed}"
            );
        }
        let methods = preflight.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(methods.contains(method), "{methods}");
    }

    let read = [
        "etag",
        "link",
        "location",
        "retry-after",
        "x-total-count",
        "x-request-id",
        "idempotent-replayed",
    ];
    let answers = [
        app.client
            .get(app.url("/api/tasks?limit=1"))
            .bearer_auth(&user.token)
            .header("origin", origin)
            .send()
            .await
            .unwrap(),
        app.client
            .get(app.url(&path))
            .bearer_auth(&user.token)
            .header("origin", origin)
            .send()
            .await
            .unwrap(),
    ];
    for answer in answers {
        assert_eq!(answer.headers()["access-control-allow-origin"], origin);
        let exposed = answer.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .to_lowercase();
        for header in read {
            assert!(exposed.contains(header), "{header} not in {exposed}");
        }
    }
}
