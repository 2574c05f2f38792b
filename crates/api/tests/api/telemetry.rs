//! Request ids, and the one log line per request, read from the real
//! `todo-api` binary's output.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use todo_persistence::testing::TestDatabase;

use crate::helpers::{PASSWORD, TEST_SECRET, allowed_headers, spawn_app, spawn_app_with};

const REQUEST_ID: &str = "x-request-id";

#[tokio::test]
async fn a_request_id_sent_is_echoed() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/health"))
        .header(REQUEST_ID, "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()[REQUEST_ID], "trace-me-42");
}

fn generated_id(response: &reqwest::Response) -> uuid::Uuid {
    let value = response.headers()[REQUEST_ID].to_str().unwrap();
    let id = uuid::Uuid::parse_str(value).expect("a UUID");
    assert_eq!(id.get_version_num(), 7);
    id
}

#[tokio::test]
async fn a_request_without_an_id_gets_a_fresh_one_on_every_response() {
    let app = spawn_app().await;
    let first = app.client.get(app.url("/health")).send().await.unwrap();
    let second = app.client.get(app.url("/health")).send().await.unwrap();
    assert_ne!(generated_id(&first), generated_id(&second));
    // Errors carry it too: a 401, a 404 and a 405.
    for (method, path) in [
        (Method::GET, "/api/tasks"),
        (Method::GET, "/no/such/path"),
        (Method::DELETE, "/health"),
    ] {
        let response = app
            .client
            .request(method, app.url(path))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error());
        generated_id(&response);
    }
}

#[tokio::test]
async fn an_unsafe_request_id_is_replaced() {
    let app = spawn_app().await;
    let too_long = "x".repeat(129);
    for unsafe_id in [
        "has spaces".as_bytes(),
        "café".as_bytes(),
        too_long.as_bytes(),
    ] {
        let response = app
            .client
            .get(app.url("/health"))
            .header(REQUEST_ID, HeaderValue::from_bytes(unsafe_id).unwrap())
            .send()
            .await
            .unwrap();
        generated_id(&response);
    }
}

#[tokio::test]
async fn browsers_may_send_and_read_the_request_id() {
    let origin = "https://app.example";
    let app = spawn_app_with(
        TestDatabase::preferred().await,
        &[("CORS_ALLOWED_ORIGINS", origin)],
    )
    .await;
    let preflight = app
        .preflight(origin, "GET", "/api/tasks", "authorization, x-request-id")
        .await;
    assert!(preflight.status().is_success());
    let allowed = allowed_headers(&preflight);
    assert!(allowed.contains(REQUEST_ID), "{allowed}");

    let response = app
        .client
        .get(app.url("/health"))
        .header("origin", origin)
        .send()
        .await
        .unwrap();
    let exposed = response.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(exposed.contains(REQUEST_ID), "{exposed}");
}

/// The `todo-api` binary, running with its output captured line by line.
struct Server {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    address: String,
    _database: TestDatabase,
}

impl Server {
    async fn start(log_format: &str) -> Server {
        let database = TestDatabase::preferred().await;
        let mut child = Command::new(env!("CARGO_BIN_EXE_todo-api"))
            .env("DATABASE_URL", database.url())
            .env("JWT_SECRET", TEST_SECRET)
            .env("PORT", "0")
            .env("DATABASE_MAX_CONNECTIONS", "2")
            .env("LOG_FORMAT", log_format)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the binary starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let port_pattern = regex::Regex::new(r#"port\W{1,3}(\d+)"#).unwrap();
        let port = wait_for(&lines, |lines| {
            lines
                .iter()
                .filter(|line| line.contains("todo-api listening"))
                .find_map(|line| port_pattern.captures(line))
                .map(|captures| captures[1].to_owned())
        })
        .await
        .expect("the server logs its port");
        Server {
            child,
            lines,
            address: format!("http://127.0.0.1:{port}"),
            _database: database,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Every line logged so far that mentions `needle`.
    async fn lines_with(&self, needle: &str) -> Vec<String> {
        wait_for(&self.lines, |lines| {
            let found: Vec<String> = lines
                .iter()
                .filter(|line| line.contains(needle))
                .cloned()
                .collect();
            (!found.is_empty()).then_some(found)
        })
        .await
        .unwrap_or_default()
    }

    fn all_lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `found` over the captured lines for up to ten seconds.
async fn wait_for<T>(
    lines: &Mutex<Vec<String>>,
    found: impl Fn(&[String]) -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = found(&lines.lock().unwrap()) {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The request lines (JSON) that carry `request_id`.
async fn request_lines(server: &Server, request_id: &str) -> Vec<Value> {
    server
        .lines_with(&format!(r#""request_id":"{request_id}""#))
        .await
        .iter()
        .map(|line| serde_json::from_str::<Value>(line).expect("a JSON line"))
        .filter(|line| line["message"] == "request")
        .collect()
}

#[tokio::test]
async fn json_logs_have_one_structured_line_per_request_without_secrets() {
    let server = Server::start("json").await;
    let client = reqwest::Client::new();
    let email = format!("logs-{}@example.io", uuid::Uuid::new_v4().simple());

    let signed_up: Value = client
        .post(server.url("/api/auth/signup"))
        .header(REQUEST_ID, "signup-1")
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = signed_up["access_token"].as_str().unwrap().to_owned();
    let created = client
        .post(server.url("/api/tasks"))
        .header(REQUEST_ID, "create-1")
        .bearer_auth(&token)
        .json(&json!({"title": "a secret errand", "description": "private"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let task: Value = created.json().await.unwrap();
    let task_id = task["id"].as_str().unwrap();
    let malformed = client
        .get(server.url("/api/tasks/not-a-uuid"))
        .header(REQUEST_ID, "bad-id-1")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let health = client
        .get(server.url("/health?token=abc"))
        .send()
        .await
        .unwrap();
    let generated = health.headers()[REQUEST_ID].to_str().unwrap().to_owned();

    for (request_id, method, route, status) in [
        ("signup-1", "POST", "/api/auth/signup", 201),
        ("create-1", "POST", "/api/tasks", 201),
        ("bad-id-1", "GET", "/api/tasks/{id}", 422),
        (generated.as_str(), "GET", "/health", 200),
    ] {
        let lines = request_lines(&server, request_id).await;
        assert_eq!(lines.len(), 1, "one line for {request_id}: {lines:?}");
        let line = &lines[0];
        assert_eq!(line["method"], method, "{line}");
        assert_eq!(line["route"], route, "{line}");
        assert_eq!(line["status"], status, "{line}");
        assert_eq!(line["level"], "INFO", "{line}");
        let latency = line["latency_ms"].as_f64().expect("a latency");
        assert!((0.0..10_000.0).contains(&latency), "{line}");
    }

    let everything = server.all_lines().join("\n");
    for secret in [
        token.as_str(),
        PASSWORD,
        email.as_str(),
        "a secret errand",
        "private",
        task_id,
        "token=abc",
    ] {
        assert!(!everything.contains(secret), "{secret:?} was logged");
    }
}

#[tokio::test]
async fn an_overlong_method_is_cut_in_the_request_line() {
    let server = Server::start("json").await;
    let method = format!("LONGMETHOD{}", "X".repeat(190));
    let response = reqwest::Client::new()
        .request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            server.url("/health"),
        )
        .header(REQUEST_ID, "long-method-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()[REQUEST_ID], "long-method-1");

    let lines = request_lines(&server, "long-method-1").await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert_eq!(line["method"], format!("{}…", &method[..16]), "{line}");
    assert_eq!(line["route"], "/health", "{line}");
    assert_eq!(line["status"], 405, "{line}");
    let everything = server.all_lines().join("\n");
    assert!(
        !everything.contains(&method[..17]),
        "more of the method than its first 16 bytes was logged"
    );
}

#[tokio::test]
async fn pretty_logs_are_plain_lines() {
    let server = Server::start("pretty").await;
    reqwest::Client::new()
        .get(server.url("/health"))
        .header(REQUEST_ID, "pretty-1")
        .send()
        .await
        .unwrap();
    let lines = server.lines_with("request_id=\"pretty-1\"").await;
    let lines: Vec<&String> = lines.iter().filter(|l| l.contains("route=")).collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = lines[0];
    for field in [
        "method=\"GET\"",
        "route=\"/health\"",
        "status=200",
        "latency_ms=",
    ] {
        assert!(line.contains(field), "{field} in {line}");
    }
    assert!(
        !line.contains('\u{1b}'),
        "no colour codes in a pipe: {line:?}"
    );
    assert!(serde_json::from_str::<Value>(line).is_err());
}

#[test]
fn an_unknown_log_format_stops_the_binary_with_its_name() {
    let output = Command::new(env!("CARGO_BIN_EXE_todo-api"))
        .env("LOG_FORMAT", "xml")
        .env("PORT", "0")
        .output()
        .expect("the binary runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("LOG_FORMAT"), "{stderr}");
}
