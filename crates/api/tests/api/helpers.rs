use std::collections::HashMap;
use std::fmt::Display;

use actix_web::dev::ServerHandle;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Body, IntoUrl, Method, RequestBuilder, Response, StatusCode};
use serde::Serialize;
use serde_json::{Value, json};
use todo_api::{Application, Settings};
use todo_persistence::testing::TestDatabase;

pub const TEST_SECRET: &str = "test-secret-test-secret-test-secret-0123";
pub const PASSWORD: &str = "correct horse battery";

/// A running application and what a test needs to talk to it.
pub struct TestApp {
    pub address: String,
    pub client: TestClient,
    pub database: TestDatabase,
    handle: ServerHandle,
}

/// Starts the real application on a fresh database.
/// A fresh PostgreSQL database for a test that means nothing on SQLite;
/// `None`, with a note on stderr naming the test, when the preferred
/// database is SQLite.
pub async fn postgres_database(test: &str) -> Option<TestDatabase> {
    let database = TestDatabase::preferred().await;
    if database.backend() == todo_persistence::Backend::Postgres {
        return Some(database);
    }
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "note: the {test} test needs PostgreSQL; not run on SQLite"
    );
    None
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(TestDatabase::preferred().await, &[]).await
}

/// Starts the application on `database` with extra environment settings.
pub async fn spawn_app_with(database: TestDatabase, extra: &[(&str, &str)]) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        todo_api::telemetry::init().expect("LOG_FORMAT is json or pretty");
    }
    let mut vars: HashMap<String, String> = [
        ("DATABASE_URL", database.url()),
        ("JWT_SECRET", TEST_SECRET),
        ("PORT", "0"),
        ("DATABASE_MAX_CONNECTIONS", "5"),
        // The suite signs up hundreds of users from 127.0.0.1 in parallel;
        // the rate limit has its own tests, which set it low.
        ("AUTH_RATE_LIMIT_PER_MINUTE", "1000000"),
        ("AUTH_RATE_LIMIT_BURST", "1000000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (name, value) in extra {
        vars.insert((*name).to_owned(), (*value).to_owned());
    }
    let settings = Settings::from_lookup(|name| vars.get(name).cloned()).expect("test settings");
    let application = Application::build(&settings)
        .await
        .expect("application starts");
    let address = format!("http://127.0.0.1:{}", application.port());
    let handle = application.handle();
    tokio::spawn(application.run_until_stopped());
    TestApp {
        address,
        client: TestClient::default(),
        database,
        handle,
    }
}

impl TestApp {
    /// Stops the server (draining in-flight requests) and starts a new one
    /// on the same database.
    pub async fn restart(self) -> TestApp {
        self.handle.stop(true).await;
        spawn_app_with(self.database, &[]).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// A browser's CORS pre-flight from `origin`, for a `method` request to
    /// `path` that would send `headers` (comma-separated).
    pub async fn preflight(
        &self,
        origin: &str,
        method: &str,
        path: &str,
        headers: &str,
    ) -> Response {
        self.client
            .request(Method::OPTIONS, self.url(path))
            .header("origin", origin)
            .header("access-control-request-method", method)
            .header("access-control-request-headers", headers)
            .send()
            .await
            .unwrap()
    }

    pub async fn sign_up(&self, email: &str, password: &str) -> Response {
        self.client
            .post(self.url("/api/auth/signup"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .expect("request sent")
    }

    pub async fn sign_in(&self, email: &str, password: &str) -> Response {
        self.client
            .post(self.url("/api/auth/signin"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .expect("request sent")
    }

    pub async fn me(&self, token: &str) -> Response {
        self.client
            .get(self.url("/api/auth/me"))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn list_tasks(&self, token: &str) -> Response {
        self.client
            .get(self.url("/api/tasks"))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn create_task(&self, token: &str, body: &Value) -> Response {
        self.client
            .post(self.url("/api/tasks"))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get_task(&self, token: &str, id: &str) -> Response {
        self.client
            .get(self.url(&format!("/api/tasks/{id}")))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn replace_task(&self, token: &str, id: &str, body: &Value) -> Response {
        self.client
            .put(self.url(&format!("/api/tasks/{id}")))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn delete_task(&self, token: &str, id: &str) -> Response {
        self.client
            .delete(self.url(&format!("/api/tasks/{id}")))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent")
    }

    /// `PATCH …/complete` with no body at all (a flip).
    pub async fn flip_task(&self, token: &str, id: &str) -> Response {
        self.client
            .patch(self.url(&format!("/api/tasks/{id}/complete")))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent")
    }

    /// `PATCH …/complete` with a JSON body.
    pub async fn complete_task(&self, token: &str, id: &str, body: &Value) -> Response {
        self.client
            .patch(self.url(&format!("/api/tasks/{id}/complete")))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// `PATCH /api/tasks/{id}` with a JSON body (`application/json`).
    pub async fn patch_task(&self, token: &str, id: &str, body: &Value) -> Response {
        self.client
            .patch(self.url(&format!("/api/tasks/{id}")))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// `GET /api/tasks?{query}`.
    pub async fn query_tasks(&self, token: &str, query: &str) -> Response {
        self.client
            .get(self.url(&format!("/api/tasks?{query}")))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent")
    }

    /// The tasks of a list answer that must succeed, with its
    /// `X-Total-Count` and the target of its `Link: rel="next"`, if any.
    pub async fn listed(&self, token: &str, query: &str) -> Listed {
        let response = self.query_tasks(token, query).await;
        assert_eq!(response.status(), StatusCode::OK, "GET /api/tasks?{query}");
        let total = response
            .headers()
            .get("x-total-count")
            .expect("X-Total-Count on every list answer")
            .to_str()
            .unwrap()
            .parse()
            .expect("X-Total-Count is a number");
        let next = response.headers().get("link").map(|link| {
            let link = link.to_str().unwrap();
            let target = link
                .strip_prefix('<')
                .and_then(|rest| rest.strip_suffix(">; rel=\"next\""))
                .unwrap_or_else(|| panic!("unexpected Link: {link}"));
            target.to_owned()
        });
        let tasks: Vec<Value> = response.json().await.expect("a JSON array");
        Listed { tasks, total, next }
    }

    /// Creates a task from `body` that must succeed and returns its JSON.
    pub async fn created_with(&self, token: &str, body: &Value) -> Value {
        let response = self.create_task(token, body).await;
        assert_eq!(response.status(), StatusCode::CREATED, "{body}");
        response.json().await.expect("task JSON")
    }

    /// Creates a task that must succeed and returns its JSON.
    pub async fn created_task(&self, token: &str, title: &str) -> Value {
        let response = self.create_task(token, &json!({"title": title})).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.expect("task JSON")
    }
}

/// One list answer.
pub struct Listed {
    pub tasks: Vec<Value>,
    pub total: u64,
    /// The relative URL of the next page.
    pub next: Option<String>,
}

impl Listed {
    /// The titles of the tasks, in order.
    pub fn titles(&self) -> Vec<&str> {
        self.tasks
            .iter()
            .map(|task| task["title"].as_str().expect("a title"))
            .collect()
    }
}

/// A user who signed up through the API.
pub struct TestUser {
    pub id: String,
    pub email: String,
    pub token: String,
}

impl TestUser {
    pub async fn signed_up(app: &TestApp) -> TestUser {
        let email = format!("user-{}@example.io", uuid::Uuid::new_v4().simple());
        let response = app.sign_up(&email, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.expect("auth JSON");
        TestUser {
            id: body["user"]["id"].as_str().expect("user id").to_owned(),
            email,
            token: body["access_token"].as_str().expect("token").to_owned(),
        }
    }
}

/// The request headers a pre-flight answer allows, lower-cased.
pub fn allowed_headers(preflight: &Response) -> String {
    preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase()
}

/// Asserts an error response: status, `code`, and the JSON content type.
pub async fn assert_error(response: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status, "status of {}", response.url());
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    assert_eq!(content_type.as_deref(), Some("application/json"));
    let body: Value = response.json().await.expect("error JSON");
    assert_eq!(body["code"], code, "body: {body}");
    assert!(body["detail"].is_string(), "body: {body}");
    body
}

/// reqwest's client with one check on every answer: a 422 must not quote a
/// value of the JSON body that was sent (contract 6.5, "error bodies never
/// echo a client's value"), so every 422 a test receives through it is
/// searched for those values before the test sees it.
#[derive(Clone, Default)]
pub struct TestClient {
    inner: reqwest::Client,
}

impl TestClient {
    pub fn request(&self, method: Method, url: impl IntoUrl) -> TestRequest {
        TestRequest(self.inner.request(method, url))
    }

    pub fn get(&self, url: impl IntoUrl) -> TestRequest {
        self.request(Method::GET, url)
    }

    pub fn head(&self, url: impl IntoUrl) -> TestRequest {
        self.request(Method::HEAD, url)
    }

    pub fn post(&self, url: impl IntoUrl) -> TestRequest {
        self.request(Method::POST, url)
    }

    pub fn put(&self, url: impl IntoUrl) -> TestRequest {
        self.request(Method::PUT, url)
    }

    pub fn patch(&self, url: impl IntoUrl) -> TestRequest {
        self.request(Method::PATCH, url)
    }

    pub fn delete(&self, url: impl IntoUrl) -> TestRequest {
        self.request(Method::DELETE, url)
    }
}

/// A request being built; the same methods as reqwest's builder.
pub struct TestRequest(RequestBuilder);

impl TestRequest {
    pub fn header<K, V>(self, key: K, value: V) -> Self
    where
        HeaderName: TryFrom<K>,
        <HeaderName as TryFrom<K>>::Error: Into<http::Error>,
        HeaderValue: TryFrom<V>,
        <HeaderValue as TryFrom<V>>::Error: Into<http::Error>,
    {
        Self(self.0.header(key, value))
    }

    pub fn bearer_auth(self, token: impl Display) -> Self {
        Self(self.0.bearer_auth(token))
    }

    pub fn basic_auth(self, user: impl Display, password: Option<impl Display>) -> Self {
        Self(self.0.basic_auth(user, password))
    }

    pub fn json<T: Serialize + ?Sized>(self, json: &T) -> Self {
        Self(self.0.json(json))
    }

    pub fn body(self, body: impl Into<Body>) -> Self {
        Self(self.0.body(body))
    }

    pub fn timeout(self, timeout: std::time::Duration) -> Self {
        Self(self.0.timeout(timeout))
    }

    /// Sends the request; a 422 answer is checked for echoes of the body
    /// sent, then handed back whole (a streamed body cannot be checked).
    pub async fn send(self) -> reqwest::Result<Response> {
        let (client, request) = self.0.build_split();
        let request = request?;
        let sent = request.body().and_then(Body::as_bytes).map(<[u8]>::to_vec);
        let response = client.execute(request).await?;
        let Some(sent) = sent.filter(|_| response.status() == StatusCode::UNPROCESSABLE_ENTITY)
        else {
            return Ok(response);
        };
        let mut head = http::Response::builder()
            .status(response.status())
            .version(response.version());
        if let Some(headers) = head.headers_mut() {
            headers.extend(response.headers().clone());
        }
        let answer = response.bytes().await?;
        assert_no_echo(&sent, &answer);
        Ok(Response::from(
            head.body(answer)
                .expect("the status and headers came from a response"),
        ))
    }
}

/// Scalars shorter than this could appear in an error message by chance
/// (`"string"` is one of its words), so only longer ones are looked for.
const ECHO_MIN_CHARS: usize = 6;

/// Fails when any string of the answer holds a scalar value of the JSON
/// body sent (the first JSON value of it, for a body with trailing bytes).
pub fn assert_no_echo(sent: &[u8], answer: &[u8]) {
    let Some(Ok(sent)) = serde_json::Deserializer::from_slice(sent)
        .into_iter::<Value>()
        .next()
    else {
        return;
    };
    // Not JSON at all: `assert_error` reports that.
    let Ok(answer) = serde_json::from_slice::<Value>(answer) else {
        return;
    };
    let mut values = Vec::new();
    scalars(&sent, &mut values);
    let mut texts = Vec::new();
    strings(&answer, &mut texts);
    for value in values
        .iter()
        .map(|value| value.trim())
        .filter(|value| value.chars().count() >= ECHO_MIN_CHARS)
    {
        for text in &texts {
            assert!(
                !text.contains(value),
                "a 422 quotes the value {value:?} of the body sent ({sent}): {answer}"
            );
        }
    }
}

fn scalars(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(text) => out.push(text.clone()),
        Value::Number(number) => out.push(number.to_string()),
        Value::Array(items) => items.iter().for_each(|item| scalars(item, out)),
        Value::Object(members) => members.values().for_each(|member| scalars(member, out)),
        Value::Null | Value::Bool(_) => {}
    }
}

fn strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(text) => out.push(text),
        Value::Array(items) => items.iter().for_each(|item| strings(item, out)),
        Value::Object(members) => members.values().for_each(|member| strings(member, out)),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}
