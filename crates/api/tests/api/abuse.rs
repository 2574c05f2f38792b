//! Abuse a public API meets: credential stuffing (rate limit), oversized
//! input, and the headers every answer must carry.

use std::net::IpAddr;

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use todo_persistence::testing::TestDatabase;

use crate::db_probe::DbProbe;
use crate::helpers::{PASSWORD, TestApp, TestUser, assert_error, spawn_app, spawn_app_with};
use crate::server_process::report;

/// A client whose connections come from `address` (any of 127.0.0.0/8 is
/// this machine's loopback), i.e. another client address to the server.
fn client_from(address: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(address.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

async fn attempt(app: &TestApp, client: &reqwest::Client, path: &str, email: &str) -> Response {
    client
        .post(app.url(path))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn auth_attempts_beyond_the_limit_get_429_and_other_addresses_are_unaffected() {
    let database = TestDatabase::preferred().await;
    let app = spawn_app_with(
        database,
        &[
            ("AUTH_RATE_LIMIT_PER_MINUTE", "2"),
            ("AUTH_RATE_LIMIT_BURST", "3"),
        ],
    )
    .await;
    let attacker = client_from("127.0.0.1");
    let bystander = client_from("127.0.0.2");

    // 20 sign-in guesses from one address: the burst of 3 is answered
    // (401), the other 17 are refused before any password is hashed.
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..20 {
        let response = attempt(&app, &attacker, "/api/auth/signin", "victim@example.io").await;
        statuses.push(response.status().as_u16());
        if response.status() == StatusCode::TOO_MANY_REQUESTS && limited.is_none() {
            limited = Some(response);
        }
    }
    assert_eq!(&statuses[..3], &[401, 401, 401], "{statuses:?}");
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    let limited = limited.unwrap();
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // 2 a minute: one attempt comes back every 30 s.
    assert!((1..=30).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(limited.headers()["x-content-type-options"], "nosniff");
    let body = assert_error(limited, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");

    // Sign-up shares the bucket, and a refused sign-up creates nothing.
    let refused = attempt(&app, &attacker, "/api/auth/signup", "new@example.io").await;
    assert_error(refused, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    let probe = DbProbe::connect(app.database.url()).await;
    assert!(probe.snapshot().await.0.is_empty(), "no user was created");

    // Another address still has its whole burst.
    for n in 0..3 {
        let response = attempt(
            &app,
            &bystander,
            "/api/auth/signup",
            &format!("bystander{n}@example.io"),
        )
        .await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    report(&format!(
        "rate limit (2/min, burst 3): 20 sign-ins from 127.0.0.1 -> {} answered, {} x 429 \
         (Retry-After {retry_after} s); 3 sign-ups from 127.0.0.2 -> 3 x 201",
        statuses.iter().filter(|s| **s != 429).count(),
        statuses.iter().filter(|s| **s == 429).count(),
    ));
}

#[tokio::test]
async fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
    let sign_in_as = |app: &TestApp, forwarded_for: &'static str| {
        app.client
            .post(app.url("/api/auth/signin"))
            .header("x-forwarded-for", forwarded_for)
            .json(&json!({"email": "a@b.io", "password": PASSWORD}))
            .send()
    };
    let limits = [
        ("AUTH_RATE_LIMIT_PER_MINUTE", "1"),
        ("AUTH_RATE_LIMIT_BURST", "1"),
    ];

    // Untrusted (the default): a client cannot escape its limit by
    // claiming a new address in each request.
    let direct = spawn_app_with(TestDatabase::preferred().await, &limits).await;
    assert_eq!(
        sign_in_as(&direct, "203.0.113.1").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        sign_in_as(&direct, "203.0.113.2").await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );

    // The peer is a trusted proxy: the address it appended (the last one)
    // is the client.
    let mut trusted = limits.to_vec();
    trusted.push(("TRUSTED_PROXIES", "127.0.0.1"));
    let proxied = spawn_app_with(TestDatabase::preferred().await, &trusted).await;
    assert_eq!(
        sign_in_as(&proxied, "203.0.113.1").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        sign_in_as(&proxied, "198.51.100.7, 203.0.113.1")
            .await
            .unwrap()
            .status(),
        StatusCode::TOO_MANY_REQUESTS,
        "a spoofed left-hand entry does not make a new client"
    );
    assert_eq!(
        sign_in_as(&proxied, "203.0.113.2").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}

fn assert_security_headers(response: &Response, what: &str) {
    let headers = response.headers();
    assert_eq!(
        headers
            .get("x-content-type-options")
            .map(|v| v.to_str().unwrap()),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(
        headers.get("cache-control").map(|v| v.to_str().unwrap()),
        Some("no-store"),
        "{what}"
    );
    assert!(headers.get("server").is_none(), "{what}");
}

#[tokio::test]
async fn every_answer_carries_the_security_headers_errors_and_401s_included() {
    let database = TestDatabase::preferred().await;
    let app = spawn_app_with(
        database,
        &[
            ("CORS_ALLOWED_ORIGINS", "https://app.example"),
            ("AUTH_RATE_LIMIT_PER_MINUTE", "1"),
            ("AUTH_RATE_LIMIT_BURST", "3"),
        ],
    )
    .await;
    let alice = TestUser::signed_up(&app).await;
    let bob = TestUser::signed_up(&app).await;
    let task = app.created_task(&alice.token, "t").await;
    let id = task["id"].as_str().unwrap();
    let client = &app.client;
    let cases: Vec<(&str, Response)> = vec![
        (
            "200 health",
            client.get(app.url("/health")).send().await.unwrap(),
        ),
        (
            "200 ready",
            client.get(app.url("/health/ready")).send().await.unwrap(),
        ),
        ("200 list", app.list_tasks(&alice.token).await),
        ("200 me", app.me(&alice.token).await),
        (
            "201 create",
            app.create_task(&alice.token, &json!({"title": "x"})).await,
        ),
        ("204 delete", {
            let other = app.created_task(&alice.token, "gone").await;
            app.delete_task(&alice.token, other["id"].as_str().unwrap())
                .await
        }),
        (
            "401 no token",
            client.get(app.url("/api/tasks")).send().await.unwrap(),
        ),
        ("401 bad token", app.list_tasks("x.y.z").await),
        (
            "401 sign-in",
            app.sign_in(&alice.email, "wrong password").await,
        ),
        ("403", app.get_task(&bob.token, id).await),
        (
            "404 task",
            app.get_task(&alice.token, &uuid::Uuid::now_v7().to_string())
                .await,
        ),
        (
            "404 route",
            client.get(app.url("/nope")).send().await.unwrap(),
        ),
        (
            "405",
            client
                .request(Method::DELETE, app.url("/health"))
                .send()
                .await
                .unwrap(),
        ),
        (
            "413",
            client
                .post(app.url("/api/tasks"))
                .bearer_auth(&alice.token)
                .header("content-type", "application/json")
                .body(vec![b' '; 70_000])
                .send()
                .await
                .unwrap(),
        ),
        (
            "415",
            client
                .post(app.url("/api/tasks"))
                .bearer_auth(&alice.token)
                .body("{}")
                .send()
                .await
                .unwrap(),
        ),
        (
            "422",
            app.create_task(&alice.token, &json!({"title": 5})).await,
        ),
        (
            "400",
            app.create_task(&alice.token, &json!({"title": " "})).await,
        ),
        (
            "CORS pre-flight",
            client
                .request(Method::OPTIONS, app.url("/api/tasks"))
                .header("origin", "https://app.example")
                .header("access-control-request-method", "POST")
                .send()
                .await
                .unwrap(),
        ),
        ("429", {
            // The two sign-ups above and the failed sign-in used the burst.
            app.sign_in(&alice.email, PASSWORD).await
        }),
    ];
    let mut statuses = Vec::new();
    for (what, response) in &cases {
        assert_security_headers(response, what);
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses.last(), Some(&429));
    report(&format!(
        "security headers: {} answers checked (statuses {statuses:?}): all nosniff + no-store, none with Server",
        cases.len()
    ));
}

/// Sends raw bytes and returns the status of the answer, or `None` when
/// the server closed the connection without one.
async fn raw_status(app: &TestApp, request: Vec<u8>) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    // The server may answer and close before it has read everything.
    let _ = stream.write_all(&request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await;
    let text = String::from_utf8_lossy(&answer);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
}

#[tokio::test]
async fn oversized_input_gets_a_4xx_everywhere() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let token = &user.token;
    let head = |line: &str, extra: &str| {
        format!("{line}\r\nHost: x\r\nAuthorization: Bearer {token}\r\n{extra}\r\n").into_bytes()
    };
    let big = "a".repeat(200 * 1024);
    let many_headers: String = (0..200).map(|n| format!("X-H{n}: v\r\n")).collect();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "200 KiB header",
            head("GET /api/tasks HTTP/1.1", &format!("X-Big: {big}\r\n")),
        ),
        (
            "200 headers",
            head("GET /api/tasks HTTP/1.1", &many_headers),
        ),
        (
            "200 KiB path",
            head(&format!("GET /api/tasks/{big} HTTP/1.1"), ""),
        ),
        (
            "200 KiB query",
            head(&format!("GET /api/tasks?q={big} HTTP/1.1"), ""),
        ),
    ];
    let mut observed = Vec::new();
    for (what, request) in cases {
        let status = raw_status(&app, request).await;
        assert!(
            status.is_some_and(|s| (400..500).contains(&s)),
            "{what}: {status:?}"
        );
        observed.push(format!("{what} -> {}", status.unwrap_or_default()));
    }

    let deep = |levels: usize| {
        format!(
            r#"{{"title": "deep", "extra": {}{}}}"#,
            "[".repeat(levels),
            "]".repeat(levels)
        )
    };
    let post = |body: String| {
        app.client
            .post(app.url("/api/tasks"))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let too_deep = post(deep(32)).await.unwrap();
    assert_error(
        too_deep,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
    )
    .await;
    assert_eq!(post(deep(31)).await.unwrap().status(), StatusCode::CREATED);
    let too_big = post(format!(r#"{{"title": "{}"}}"#, "a".repeat(70_000)))
        .await
        .unwrap();
    assert_error(too_big, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    let long_title = app
        .create_task(token, &json!({"title": "a".repeat(60_000)}))
        .await;
    assert_error(long_title, StatusCode::BAD_REQUEST, "invalid_title").await;

    // The service is unharmed, and only the one valid task was stored.
    let tasks: Vec<Value> = app.list_tasks(token).await.json().await.unwrap();
    assert_eq!(tasks.len(), 1);
    report(&format!(
        "oversized input: {}; JSON 33 levels deep -> 422, 32 -> 201; 70 KB body -> 413; 60,000-character title -> 400",
        observed.join(", ")
    ));
}
