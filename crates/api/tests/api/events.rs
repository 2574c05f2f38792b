//! The live event stream, `GET /api/tasks/events` (contract section 7,
//! specs/004-sync/spec.md): read over real HTTP as a client reads it.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use todo_persistence::testing::TestDatabase;
use tokio::sync::mpsc;

use todo_persistence::Backend;

use crate::db_probe::DbProbe;
use crate::helpers::{TestApp, TestUser, allowed_headers, assert_error, spawn_app, spawn_app_with};
use crate::server_process::{ServerProcess, report};

/// What the stream carried: an event or a comment line.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    Event {
        id: String,
        event: String,
        data: Value,
    },
    Comment,
}

/// An open stream, parsed line by line in the background.
struct EventStream {
    items: mpsc::UnboundedReceiver<Item>,
    /// Ends when the server ends the body.
    ended: tokio::sync::oneshot::Receiver<()>,
    reader: tokio::task::JoinHandle<()>,
}

impl EventStream {
    /// The next event, skipping comments, within `limit`.
    async fn next_event(&mut self, limit: Duration) -> (String, String, Value) {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.items.recv()).await {
                Ok(Some(Item::Event { id, event, data })) => return (id, event, data),
                Ok(Some(Item::Comment)) => {}
                Ok(None) => panic!("the stream ended"),
                Err(_) => panic!("no event within {limit:?}"),
            }
        }
    }

    /// No event arrives within `limit`.
    async fn assert_quiet(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.items.recv()).await {
                Ok(Some(Item::Event { event, data, .. })) => {
                    panic!("unexpected event {event}: {data}")
                }
                Ok(Some(Item::Comment)) => {}
                Ok(None) | Err(_) => return,
            }
        }
    }

    /// Closes the connection, as a client that goes away does.
    fn close(self) {
        self.reader.abort();
    }
}

/// Opens a stream with these extra headers and query.
async fn open(app_base: &str, token: &str, query: &str, last_id: Option<&str>) -> EventStream {
    let response = try_open(app_base, token, query, last_id).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    read(response)
}

async fn try_open(
    app_base: &str,
    token: &str,
    query: &str,
    last_id: Option<&str>,
) -> reqwest::Response {
    // A client of its own: each stream has its own connection, which
    // closing the stream closes.
    let mut request = reqwest::Client::new()
        .get(format!("{app_base}/api/tasks/events{query}"))
        .bearer_auth(token);
    if let Some(id) = last_id {
        request = request.header("Last-Event-ID", id);
    }
    request.send().await.unwrap()
}

fn read(response: reqwest::Response) -> EventStream {
    let (sender, items) = mpsc::unbounded_channel();
    let (end, ended) = tokio::sync::oneshot::channel();
    let reader = tokio::spawn(async move {
        let mut body = response.bytes_stream();
        let mut buffer = String::new();
        let (mut id, mut event, mut data) = (String::new(), String::new(), String::new());
        while let Some(Ok(chunk)) = body.next().await {
            buffer.push_str(std::str::from_utf8(&chunk).unwrap());
            while let Some(newline) = buffer.find('\n') {
                let line: String = buffer.drain(..=newline).collect();
                let line = line.trim_end_matches('\n');
                if line.is_empty() {
                    if !data.is_empty() {
                        let item = Item::Event {
                            id: std::mem::take(&mut id),
                            event: std::mem::take(&mut event),
                            data: serde_json::from_str(&std::mem::take(&mut data)).unwrap(),
                        };
                        let _ = sender.send(item);
                    }
                } else if line.starts_with(':') {
                    let _ = sender.send(Item::Comment);
                } else if let Some(value) = line.strip_prefix("id: ") {
                    id = value.to_owned();
                } else if let Some(value) = line.strip_prefix("event: ") {
                    event = value.to_owned();
                } else if let Some(value) = line.strip_prefix("data: ") {
                    data.push_str(value);
                }
            }
        }
        let _ = end.send(());
    });
    EventStream {
        items,
        ended,
        reader,
    }
}

const WITHIN: Duration = Duration::from_secs(1);

#[tokio::test]
async fn create_complete_and_delete_arrive_live_as_events_within_a_second() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let other = TestUser::signed_up(&app).await;
    let before = app
        .created_task(&user.token, "made before connecting")
        .await;
    let mut stream = open(&app.address, &user.token, "", None).await;
    // Neither what existed before the stream nor another user's writes
    // ever show.
    app.created_task(&other.token, "someone else's").await;
    stream.assert_quiet(Duration::from_millis(300)).await;

    let task = app.created_task(&user.token, "live").await;
    let id = task["id"].as_str().unwrap();
    let (first_id, event, data) = stream.next_event(WITHIN).await;
    assert_eq!(event, "upsert");
    assert_eq!(data, json!({"op": "upsert", "task": task}));

    let completed: Value = app
        .complete_task(&user.token, id, &json!({"completed": true}))
        .await
        .json()
        .await
        .unwrap();
    let (second_id, event, data) = stream.next_event(WITHIN).await;
    assert_eq!(event, "upsert");
    assert_eq!(data["task"], completed);
    assert_eq!(data["task"]["completed"], true);
    assert_ne!(first_id, second_id);
    // Each id stands right after its own change, wherever the event came
    // from (on PostgreSQL, news that brought the task whole).
    assert_eq!(
        changes_after(&app, &user.token, &first_id).await,
        json!([{"op": "upsert", "task": completed}])
    );
    assert_eq!(
        changes_after(&app, &user.token, &second_id).await,
        json!([])
    );

    assert_eq!(
        app.delete_task(&user.token, id).await.status(),
        StatusCode::NO_CONTENT
    );
    let (last_id, event, data) = stream.next_event(WITHIN).await;
    assert_eq!(event, "delete");
    assert_eq!(data, json!({"op": "delete", "id": id}));
    stream.assert_quiet(Duration::from_millis(300)).await;

    // An event's id is a feed cursor: the feed after it is empty.
    assert_eq!(changes_after(&app, &user.token, &last_id).await, json!([]));
    drop(before);
}

/// The feed's changes after an event's id.
async fn changes_after(app: &TestApp, token: &str, since: &str) -> Value {
    let feed: Value = app
        .client
        .get(app.url(&format!("/api/tasks/changes?since={since}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    feed["changes"].clone()
}

#[tokio::test]
async fn last_event_id_replays_what_was_missed_then_goes_live() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let mut stream = open(&app.address, &user.token, "", None).await;
    let kept = app.created_task(&user.token, "kept").await;
    let (last_id, _, _) = stream.next_event(WITHIN).await;
    stream.close();

    // While disconnected: one task changed, one made and deleted.
    let kept_id = kept["id"].as_str().unwrap();
    app.complete_task(&user.token, kept_id, &json!({"completed": true}))
        .await;
    let gone = app.created_task(&user.token, "gone").await;
    let gone_id = gone["id"].as_str().unwrap();
    app.delete_task(&user.token, gone_id).await;

    let mut stream = open(&app.address, &user.token, "", Some(&last_id)).await;
    let (_, event, data) = stream.next_event(WITHIN).await;
    assert_eq!(
        (event.as_str(), &data["task"]["id"]),
        ("upsert", &json!(kept_id))
    );
    assert_eq!(data["task"]["completed"], true);
    let (_, event, data) = stream.next_event(WITHIN).await;
    assert_eq!((event.as_str(), &data["id"]), ("delete", &json!(gone_id)));
    stream.assert_quiet(Duration::from_millis(300)).await;

    let live = app.created_task(&user.token, "live again").await;
    let (_, event, data) = stream.next_event(WITHIN).await;
    assert_eq!(event, "upsert");
    assert_eq!(data["task"], live);
}

#[tokio::test]
async fn since_replays_and_the_header_wins_over_it() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let mut stream = open(&app.address, &user.token, "", None).await;
    app.created_task(&user.token, "first").await;
    let (after_first, _, _) = stream.next_event(WITHIN).await;
    app.created_task(&user.token, "second").await;
    let (after_second, _, _) = stream.next_event(WITHIN).await;
    stream.close();

    let mut from_query = open(
        &app.address,
        &user.token,
        &format!("?since={after_first}"),
        None,
    )
    .await;
    let (_, _, data) = from_query.next_event(WITHIN).await;
    assert_eq!(data["task"]["title"], "second");
    from_query.close();

    // The header names the later cursor: nothing to replay.
    let mut both = open(
        &app.address,
        &user.token,
        &format!("?since={after_first}"),
        Some(&after_second),
    )
    .await;
    both.assert_quiet(Duration::from_millis(500)).await;
    both.close();

    // An empty header is no last event: the stream starts live.
    let mut empty = open(&app.address, &user.token, "", Some("")).await;
    empty.assert_quiet(Duration::from_millis(300)).await;
    empty.close();

    // Even a broken `since` gives way to a good header.
    let header_only = open(
        &app.address,
        &user.token,
        "?since=garbage",
        Some(&after_second),
    )
    .await;
    header_only.close();
}

#[tokio::test]
async fn bad_cursors_queries_and_missing_tokens_are_refused_before_the_stream() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let other = TestUser::signed_up(&app).await;
    let mut theirs = open(&app.address, &other.token, "", None).await;
    app.created_task(&other.token, "theirs").await;
    let (their_id, _, _) = theirs.next_event(WITHIN).await;
    theirs.close();

    let cases = [
        ("?since=garbage", None, "invalid_cursor"),
        ("", Some("garbage"), "invalid_cursor"),
        ("", Some(their_id.as_str()), "invalid_cursor"),
        ("?limit=3", None, "invalid_query"),
    ];
    for (query, header, code) in cases {
        let response = try_open(&app.address, &user.token, query, header).await;
        assert_error(response, StatusCode::BAD_REQUEST, code).await;
    }
    let response = reqwest::Client::new()
        .get(app.url("/api/tasks/events"))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::UNAUTHORIZED, "not_authenticated").await;
}

#[tokio::test]
async fn a_sixth_stream_is_429_and_closing_one_frees_a_slot() {
    // A short heartbeat, so the server notices a closed connection soon
    // after it writes to it.
    let app = spawn_app_with(
        TestDatabase::preferred().await,
        &[("STREAM_HEARTBEAT_SECONDS", "1")],
    )
    .await;
    let user = TestUser::signed_up(&app).await;
    let other = TestUser::signed_up(&app).await;
    let mut streams = Vec::new();
    for _ in 0..5 {
        streams.push(open(&app.address, &user.token, "", None).await);
    }
    let refused = try_open(&app.address, &user.token, "", None).await;
    let body = assert_error(refused, StatusCode::TOO_MANY_REQUESTS, "too_many_streams").await;
    assert!(body["detail"].is_string());
    // Another user's slots are their own.
    open(&app.address, &other.token, "", None).await.close();

    streams.pop().unwrap().close();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let response = try_open(&app.address, &user.token, "", None).await;
        if response.status() == StatusCode::OK {
            break;
        }
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(
            Instant::now() < deadline,
            "the closed stream's slot was not freed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_comment_comes_within_the_heartbeat() {
    let app = spawn_app_with(
        TestDatabase::preferred().await,
        &[("STREAM_HEARTBEAT_SECONDS", "1")],
    )
    .await;
    let user = TestUser::signed_up(&app).await;
    let mut stream = open(&app.address, &user.token, "", None).await;
    // The first comment comes at once; the next one is the heartbeat.
    for _ in 0..2 {
        let item = tokio::time::timeout(Duration::from_millis(2_500), stream.items.recv())
            .await
            .expect("a comment within the heartbeat");
        assert_eq!(item, Some(Item::Comment));
    }
}

#[tokio::test]
async fn a_comment_comes_within_15_seconds_by_default() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let mut stream = open(&app.address, &user.token, "", None).await;
    let started = Instant::now();
    for _ in 0..2 {
        let item = tokio::time::timeout(Duration::from_secs(16), stream.items.recv())
            .await
            .expect("a comment within 15 s");
        assert_eq!(item, Some(Item::Comment));
    }
    assert!(started.elapsed() <= Duration::from_secs(16));
}

#[tokio::test]
async fn the_stream_ends_when_the_token_expires() {
    let app = spawn_app_with(
        TestDatabase::preferred().await,
        &[("JWT_TTL_SECONDS", "2"), ("STREAM_HEARTBEAT_SECONDS", "1")],
    )
    .await;
    let user = TestUser::signed_up(&app).await;
    let stream = open(&app.address, &user.token, "", None).await;
    let ended = tokio::time::timeout(Duration::from_secs(5), stream.ended).await;
    assert!(ended.is_ok(), "the stream outlived its token");
}

#[tokio::test]
async fn sigterm_with_an_open_stream_exits_long_before_the_shutdown_timeout() {
    let database = TestDatabase::preferred().await;
    let mut server =
        ServerProcess::start(database.url(), &[("SHUTDOWN_TIMEOUT_SECONDS", "30")]).await;
    let token = server.sign_up("stream@example.io").await;
    let stream = open(&server.base, &token, "", None).await;

    let signalled = Instant::now();
    server.signal("-TERM");
    let status = server
        .wait_exit(Duration::from_secs(30))
        .await
        .expect("the process exits");
    let took = signalled.elapsed();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        took < Duration::from_secs(5),
        "took {took:?} of a 30 s shutdown timeout"
    );
    let ended = tokio::time::timeout(Duration::from_secs(1), stream.ended).await;
    assert!(ended.is_ok(), "the stream did not end");
}

#[tokio::test]
async fn only_get_is_served_and_events_is_no_task_id() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    for method in [
        reqwest::Method::HEAD,
        reqwest::Method::POST,
        reqwest::Method::DELETE,
    ] {
        let response = reqwest::Client::new()
            .request(method.clone(), app.url("/api/tasks/events"))
            .bearer_auth(&user.token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method}"
        );
        assert_eq!(response.headers()["allow"], "GET", "{method}");
    }
    // A CORS pre-flight may ask for Last-Event-ID (contract 6.4).
    let app = spawn_app_with(
        TestDatabase::preferred().await,
        &[("CORS_ALLOWED_ORIGINS", "http://front.example")],
    )
    .await;
    let response = app
        .preflight(
            "http://front.example",
            "GET",
            "/api/tasks/events",
            "authorization, last-event-id",
        )
        .await;
    assert!(response.status().is_success());
    let allowed = allowed_headers(&response);
    assert!(allowed.contains("last-event-id"), "{allowed}");
}

// --- Across instances (PostgreSQL) -------------------------------------------

/// A second instance, the real binary, on `app`'s database; `None` on
/// SQLite, which serves one instance only.
async fn second_instance(app: &TestApp) -> Option<ServerProcess> {
    if app.database.backend() != Backend::Postgres {
        report("note: streams across instances need PostgreSQL; not run on SQLite");
        return None;
    }
    Some(ServerProcess::start(app.database.url(), &[]).await)
}

/// Each instance's writes reach the other's streams within a second, and
/// only their owner's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_through_one_instance_reaches_streams_on_another_within_a_second() {
    let app = spawn_app().await;
    let Some(other) = second_instance(&app).await else {
        return;
    };
    let user = TestUser::signed_up(&app).await;
    let stranger = TestUser::signed_up(&app).await;
    let mut there = open(&other.base, &user.token, "", None).await;
    let mut here = open(&app.address, &user.token, "", None).await;

    app.created_task(&stranger.token, "someone else's").await;
    let started = Instant::now();
    let task = app.created_task(&user.token, "made here").await;
    let (_, event, data) = there.next_event(WITHIN).await;
    let delay = started.elapsed();
    assert_eq!(event, "upsert");
    assert_eq!(data, json!({"op": "upsert", "task": task}));
    assert_eq!(here.next_event(WITHIN).await.2, data);
    report(&format!(
        "a create reached the other instance's stream after {delay:?}"
    ));

    let id = task["id"].as_str().unwrap();
    let deleted = reqwest::Client::new()
        .delete(other.url(&format!("/api/tasks/{id}")))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    for stream in [&mut here, &mut there] {
        let (_, event, data) = stream.next_event(WITHIN).await;
        assert_eq!(
            (event.as_str(), data),
            ("delete", json!({"op": "delete", "id": id}))
        );
        stream.assert_quiet(Duration::from_millis(300)).await;
    }
}

/// Every listening connection on the database killed by the server, and
/// writes made at once, while the listeners are gone: the streams stay
/// open and receive every change, in order, once the listeners are back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_listening_connections_lose_no_change() {
    let app = spawn_app().await;
    let Some(other) = second_instance(&app).await else {
        return;
    };
    let user = TestUser::signed_up(&app).await;
    let mut stream = open(&other.base, &user.token, "", None).await;
    let probe = DbProbe::connect(app.database.url()).await;
    const LISTENERS: &str = "FROM pg_stat_activity \
        WHERE datname = current_database() AND query LIKE 'LISTEN%'";
    // Each instance starts listening in the background as it starts.
    let deadline = Instant::now() + Duration::from_secs(5);
    while probe
        .rows(&format!("SELECT pid::text {LISTENERS}"), 1)
        .await
        .len()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "the instances do not both listen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let killed = probe
        .rows(
            &format!("SELECT pg_terminate_backend(pid)::text {LISTENERS}"),
            1,
        )
        .await;
    assert_eq!(killed.len(), 2, "one listener per instance: {killed:?}");

    let mut made = Vec::new();
    for title in ["during 1", "during 2", "during 3"] {
        made.push(app.created_task(&user.token, title).await);
    }
    for task in &made {
        let (_, event, data) = stream.next_event(Duration::from_secs(5)).await;
        assert_eq!((event.as_str(), &data["task"]), ("upsert", task));
    }
    // And news flows again as before.
    let after = app.created_task(&user.token, "after").await;
    assert_eq!(stream.next_event(WITHIN).await.2["task"], after);
}

/// The PostgreSQL server restarted under two instances with a stream open:
/// the stream stays open, and every change acknowledged after the restart
/// reaches it. A restart stops every other test's database too, so this
/// runs only when `POSTGRES_RESTART_COMMAND` is set, which `.ci/run` does
/// in a step of its own after the suite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_resumes_after_a_postgres_restart_and_misses_no_change() {
    let Some(restart) = std::env::var_os("POSTGRES_RESTART_COMMAND") else {
        report("note: the PostgreSQL restart test runs only with POSTGRES_RESTART_COMMAND set");
        return;
    };
    let app = spawn_app().await;
    let Some(other) = second_instance(&app).await else {
        return;
    };
    let user = TestUser::signed_up(&app).await;
    let mut stream = open(&other.base, &user.token, "", None).await;
    let before = app.created_task(&user.token, "before the restart").await;
    assert_eq!(stream.next_event(WITHIN).await.2["task"], before);

    let started = Instant::now();
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(&restart)
        .status()
        .expect("the restart command runs");
    assert!(status.success(), "the restart command failed: {status}");
    report(&format!("PostgreSQL restarted in {:?}", started.elapsed()));

    // The first writes may meet connections the restart closed (503): a
    // client retries those. Every write that was acknowledged must arrive.
    let (mut acknowledged, mut refused) = (Vec::new(), 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while acknowledged.len() < 3 {
        assert!(
            Instant::now() < deadline,
            "no write succeeded after the restart"
        );
        let response = app
            .client
            .post(app.url("/api/tasks"))
            .bearer_auth(&user.token)
            .json(&json!({"title": format!("after {}", acknowledged.len())}))
            .send()
            .await
            .unwrap();
        match response.status() {
            StatusCode::CREATED => acknowledged.push(response.json::<Value>().await.unwrap()),
            StatusCode::SERVICE_UNAVAILABLE => {
                refused += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("a write after the restart answered {other}"),
        }
    }
    let resumed = Instant::now();
    for task in &acknowledged {
        let (_, event, data) = stream.next_event(Duration::from_secs(15)).await;
        assert_eq!((event.as_str(), &data["task"]), ("upsert", task));
    }
    report(&format!(
        "after the restart ({refused} writes answered 503 first) the open stream carried all \
         {} acknowledged writes, the last {:?} after it was acknowledged",
        acknowledged.len(),
        resumed.elapsed()
    ));
}
