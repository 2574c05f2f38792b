//! Contract 6.4 (and 5): `Idempotency-Key` on `POST /api/tasks` and
//! `PATCH /api/tasks/{id}/complete`.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use reqwest::{Response, StatusCode};
use sea_orm::Value as SqlValue;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use todo_persistence::testing::TestDatabase;

use crate::db_probe::DbProbe;
use crate::helpers::{TestApp, TestUser, assert_error, spawn_app, spawn_app_with};

async fn create_with_key(app: &TestApp, token: &str, key: &str, body: &str) -> Response {
    app.client
        .post(app.url("/api/tasks"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

async fn complete_with_key(
    app: &TestApp,
    token: &str,
    id: &str,
    key: &str,
    body: Option<&str>,
) -> Response {
    let mut request = app
        .client
        .patch(app.url(&format!("/api/tasks/{id}/complete")))
        .bearer_auth(token)
        .header("idempotency-key", key);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    request.send().await.unwrap()
}

/// What a client can see of an answer: status, the headers a replay must
/// repeat, whether it says it is a replay, and the body's bytes.
struct Seen {
    status: StatusCode,
    location: Option<String>,
    etag: Option<String>,
    replayed: Option<String>,
    content_type: Option<String>,
    body: String,
}

async fn seen(response: Response) -> Seen {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
    };
    let (location, etag, replayed, content_type) = (
        header("location"),
        header("etag"),
        header("idempotent-replayed"),
        header("content-type"),
    );
    Seen {
        status: response.status(),
        location,
        etag,
        replayed,
        content_type,
        body: response.text().await.unwrap(),
    }
}

#[tokio::test]
async fn a_retried_create_answers_the_first_answer_again_and_creates_nothing() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let body = r#"{"title": "Pay rent", "labels": ["home"], "priority": "high"}"#;
    let first = seen(create_with_key(&app, &user.token, "rent-2026-12", body).await).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(first.replayed, None, "the first answer is no replay");
    assert!(first.location.is_some() && first.etag.is_some());

    // The same request, members in another order and other white space.
    let same = "{ \"priority\":\"high\",\n \"labels\":[\"home\"], \"title\":\"Pay rent\" }";
    for retry_body in [body, same] {
        let retry =
            seen(create_with_key(&app, &user.token, "rent-2026-12", retry_body).await).await;
        assert_eq!(retry.status, StatusCode::CREATED);
        assert_eq!(retry.body, first.body, "byte for byte");
        assert_eq!(retry.location, first.location);
        assert_eq!(retry.etag, first.etag);
        assert_eq!(retry.replayed.as_deref(), Some("true"));
        assert_eq!(retry.content_type.as_deref(), Some("application/json"));
    }
    let listed = app.listed(&user.token, "").await;
    assert_eq!(listed.total, 1, "one task, however many retries");
    let task: Value = serde_json::from_str(&first.body).unwrap();
    assert_eq!(listed.tasks, [task]);
}

#[tokio::test]
async fn a_replay_repeats_the_first_answer_even_after_the_task_changed() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let first = seen(create_with_key(&app, &user.token, "k", r#"{"title": "first"}"#).await).await;
    let task: Value = serde_json::from_str(&first.body).unwrap();
    let id = task["id"].as_str().unwrap();
    app.patch_task(&user.token, id, &json!({"title": "edited"}))
        .await;
    let retry = seen(create_with_key(&app, &user.token, "k", r#"{"title": "first"}"#).await).await;
    assert_eq!(retry.body, first.body);
    assert_eq!(retry.etag, first.etag);
    let now: Value = app.get_task(&user.token, id).await.json().await.unwrap();
    assert_eq!(now["title"], "edited", "the replay wrote nothing");
}

#[tokio::test]
async fn the_same_key_with_another_request_is_422_idempotency_key_reused() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let first = create_with_key(&app, &user.token, "once", r#"{"title": "a"}"#).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let task: Value = first.json().await.unwrap();
    let id = task["id"].as_str().unwrap();
    for other in [
        r#"{"title": "b"}"#,
        r#"{"title": "a", "completed": false}"#,
        r#"{"title": "a "}"#,
    ] {
        let response = create_with_key(&app, &user.token, "once", other).await;
        assert_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
        )
        .await;
    }
    // Another route is another request too.
    let response = complete_with_key(&app, &user.token, id, "once", None).await;
    assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    )
    .await;
    assert_eq!(app.listed(&user.token, "").await.total, 1);
    let unchanged: Value = app.get_task(&user.token, id).await.json().await.unwrap();
    assert_eq!(unchanged, task);
}

#[tokio::test]
async fn a_retried_completion_does_not_flip_twice_and_no_body_is_an_empty_body() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let task = app.created_task(&user.token, "flip once").await;
    let id = task["id"].as_str().unwrap();
    let first = seen(complete_with_key(&app, &user.token, id, "flip-1", None).await).await;
    assert_eq!(first.status, StatusCode::OK);
    let flipped: Value = serde_json::from_str(&first.body).unwrap();
    assert_eq!(flipped["completed"], true);
    for retry_body in [None, Some("")] {
        let retry =
            seen(complete_with_key(&app, &user.token, id, "flip-1", retry_body).await).await;
        assert_eq!(retry.status, StatusCode::OK);
        assert_eq!(retry.body, first.body);
        assert_eq!(retry.etag, first.etag);
        assert_eq!(retry.location, None);
        assert_eq!(retry.replayed.as_deref(), Some("true"));
    }
    let response = complete_with_key(&app, &user.token, id, "flip-1", Some("{}")).await;
    assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    )
    .await;
    let now: Value = app.get_task(&user.token, id).await.json().await.unwrap();
    assert_eq!(now["completed"], true, "flipped exactly once");

    let set = seen(
        complete_with_key(
            &app,
            &user.token,
            id,
            "set-1",
            Some(r#"{"completed": false}"#),
        )
        .await,
    )
    .await;
    let again = seen(
        complete_with_key(
            &app,
            &user.token,
            id,
            "set-1",
            Some(r#"{ "completed" : false }"#),
        )
        .await,
    )
    .await;
    assert_eq!(again.body, set.body);
    assert_eq!(again.replayed.as_deref(), Some("true"));
}

#[tokio::test]
async fn a_failed_request_leaves_its_key_unused() {
    let database = TestDatabase::preferred().await;
    let app = spawn_app_with(database, &[("MAX_TASKS_PER_USER", "1")]).await;
    let user = TestUser::signed_up(&app).await;
    let missing = uuid::Uuid::now_v7().to_string();
    let response = complete_with_key(&app, &user.token, &missing, "k1", None).await;
    assert_error(response, StatusCode::NOT_FOUND, "task_not_found").await;
    let task = app.created_task(&user.token, "only one").await;
    let id = task["id"].as_str().unwrap();
    // Another request under the key that failed: not a reuse, no replay.
    let response = complete_with_key(&app, &user.token, id, "k1", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("idempotent-replayed").is_none());

    // 409 at the limit, then the same request succeeds once there is room.
    let body = r#"{"title": "second"}"#;
    let response = create_with_key(&app, &user.token, "k2", body).await;
    assert_error(response, StatusCode::CONFLICT, "task_limit_reached").await;
    assert_eq!(
        app.delete_task(&user.token, id).await.status(),
        StatusCode::NO_CONTENT
    );
    let response = create_with_key(&app, &user.token, "k2", body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert!(response.headers().get("idempotent-replayed").is_none());

    // A body that breaks a rule never reaches the key either.
    let second = app.listed(&user.token, "").await.tasks[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.delete_task(&user.token, &second).await.status(),
        StatusCode::NO_CONTENT
    );
    let response = create_with_key(&app, &user.token, "k3", r#"{"title": ""}"#).await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_title").await;
    let response = create_with_key(&app, &user.token, "k3", r#"{"title": "fixed"}"#).await;
    assert_eq!(response.status(), StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_racing_retries_of_one_key_create_exactly_one_task() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let body = r#"{"title": "raced"}"#;
    let retries = (0..20).map(|_| create_with_key(&app, &user.token, "race", body));
    let mut created_ids = Vec::new();
    let mut in_use = 0;
    for response in join_all(retries).await {
        match response.status() {
            StatusCode::CREATED => {
                let task: Value = response.json().await.unwrap();
                created_ids.push(task["id"].clone());
            }
            StatusCode::CONFLICT => {
                assert_error(response, StatusCode::CONFLICT, "idempotency_key_in_use").await;
                in_use += 1;
            }
            other => panic!("unexpected {other}: {}", response.text().await.unwrap()),
        }
    }
    assert!(
        !created_ids.is_empty(),
        "{in_use} of 20 were told the key is in use"
    );
    assert!(
        created_ids.iter().all(|id| *id == created_ids[0]),
        "{created_ids:?}"
    );
    let listed = app.listed(&user.token, "").await;
    assert_eq!(listed.total, 1);
    assert_eq!(listed.tasks[0]["id"], created_ids[0]);
}

/// SHA-256 over method, path and the body as canonical JSON, as the
/// contract defines the same request; used to plant a claim for one.
fn fingerprint(method: &str, path: &str, canonical_body: &str) -> Vec<u8> {
    let mut digest = Sha256::new();
    digest.update(method);
    digest.update([0]);
    digest.update(path);
    digest.update([0]);
    digest.update(canonical_body);
    digest.finalize().to_vec()
}

fn uuid_value(id: &str) -> SqlValue {
    SqlValue::from(uuid::Uuid::parse_str(id).unwrap())
}

#[tokio::test]
async fn a_key_whose_first_request_still_runs_is_409_in_use() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let probe = DbProbe::connect(app.database.url()).await;
    let now = time::OffsetDateTime::now_utc();
    // The claim of a request that started a moment ago and has not answered.
    probe
        .execute(
            "INSERT INTO idempotency_keys \
             (user_id, key, fingerprint, claim_token, claimed_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            vec![
                uuid_value(&user.id),
                SqlValue::from("running"),
                SqlValue::from(fingerprint("POST", "/api/tasks", r#"{"title":"slow"}"#)),
                SqlValue::from(uuid::Uuid::now_v7()),
                probe.instant(now),
                probe.instant(now + time::Duration::hours(24)),
            ],
        )
        .await;
    let response = create_with_key(&app, &user.token, "running", r#"{"title": "slow"}"#).await;
    assert_error(response, StatusCode::CONFLICT, "idempotency_key_in_use").await;
    assert_eq!(
        app.listed(&user.token, "").await.total,
        0,
        "nothing was created"
    );
    // Another key is free.
    let response = create_with_key(&app, &user.token, "other", r#"{"title": "slow"}"#).await;
    assert_eq!(response.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn keys_are_per_user() {
    let app = spawn_app().await;
    let alice = TestUser::signed_up(&app).await;
    let bob = TestUser::signed_up(&app).await;
    let body = r#"{"title": "same key, other user"}"#;
    let first = seen(create_with_key(&app, &alice.token, "shared", body).await).await;
    let second = seen(create_with_key(&app, &bob.token, "shared", body).await).await;
    assert_eq!(second.status, StatusCode::CREATED);
    assert_eq!(second.replayed, None, "bob's request is his own");
    assert_ne!(second.location, first.location);
    // And bob may use it for another body without a 422.
    let response = create_with_key(&app, &bob.token, "alice-only", r#"{"title": "x"}"#).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(app.listed(&alice.token, "").await.total, 1);
    assert_eq!(app.listed(&bob.token, "").await.total, 2);
}

#[tokio::test]
async fn a_key_that_breaks_its_rules_is_400_after_a_malformed_body_is_422() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let task = app.created_task(&user.token, "t").await;
    let id = task["id"].as_str().unwrap();
    let longest = "k".repeat(255);
    for key in ["", " ", "a b", &"k".repeat(256), "café", "tab\there"] {
        let response = app
            .client
            .post(app.url("/api/tasks"))
            .bearer_auth(&user.token)
            .header(
                "idempotency-key",
                reqwest::header::HeaderValue::from_bytes(key.as_bytes()).unwrap(),
            )
            .json(&json!({"title": "t"}))
            .send()
            .await
            .unwrap();
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_idempotency_key").await;
        let response = app
            .client
            .patch(app.url(&format!("/api/tasks/{id}/complete")))
            .bearer_auth(&user.token)
            .header(
                "idempotency-key",
                reqwest::header::HeaderValue::from_bytes(key.as_bytes()).unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_idempotency_key").await;
    }
    let unchanged: Value = app.get_task(&user.token, id).await.json().await.unwrap();
    assert_eq!(unchanged, task, "no refused completion flipped it");
    let response = create_with_key(&app, &user.token, &longest, r#"{"title": "t"}"#).await;
    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "255 characters are fine"
    );
    let response = create_with_key(&app, &user.token, "~!#$%&'*+-.^_`|", r#"{"title": "t"}"#).await;
    assert_eq!(response.status(), StatusCode::CREATED, "any visible ASCII");
    // The body is checked before the key.
    let response = create_with_key(&app, &user.token, "a b", "{not json").await;
    assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
    )
    .await;
    let doubled = app
        .client
        .post(app.url("/api/tasks"))
        .bearer_auth(&user.token)
        .header("idempotency-key", "one")
        .header("idempotency-key", "two")
        .json(&json!({"title": "t"}))
        .send()
        .await
        .unwrap();
    assert_error(doubled, StatusCode::BAD_REQUEST, "invalid_idempotency_key").await;
}

#[tokio::test]
async fn keys_outlive_a_restart_of_the_service() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let body = r#"{"title": "durable key"}"#;
    let first = seen(create_with_key(&app, &user.token, "durable", body).await).await;
    let app = app.restart().await;
    let retry = seen(create_with_key(&app, &user.token, "durable", body).await).await;
    assert_eq!(retry.body, first.body);
    assert_eq!(retry.replayed.as_deref(), Some("true"));
    assert_eq!(app.listed(&user.token, "").await.total, 1);
}

#[tokio::test]
async fn expired_keys_are_deleted_by_the_service_itself() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let probe = DbProbe::connect(app.database.url()).await;
    let long_ago = time::OffsetDateTime::now_utc() - time::Duration::days(2);
    probe
        .execute(
            "INSERT INTO idempotency_keys \
             (user_id, key, fingerprint, claim_token, claimed_at, expires_at, \
              response_status, response_headers, response_body) \
             VALUES ($1, $2, $3, $4, $5, $6, 201, '', '{}')",
            vec![
                uuid_value(&user.id),
                SqlValue::from("stale"),
                SqlValue::from(vec![0_u8; 32]),
                SqlValue::from(uuid::Uuid::now_v7()),
                probe.instant(long_ago),
                probe.instant(long_ago + time::Duration::hours(24)),
            ],
        )
        .await;
    let live = create_with_key(&app, &user.token, "live", r#"{"title": "t"}"#).await;
    assert_eq!(live.status(), StatusCode::CREATED);
    let count = "SELECT COUNT(*) FROM idempotency_keys";
    assert_eq!(probe.count(count, vec![]).await, 2);
    // The purge runs when a server starts and every few minutes after.
    let _app = app.restart().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while probe.count(count, vec![]).await != 1 {
        assert!(Instant::now() < deadline, "the expired key is still there");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let left = probe
        .count(
            "SELECT COUNT(*) FROM idempotency_keys WHERE key = 'live'",
            vec![],
        )
        .await;
    assert_eq!(left, 1, "only the expired key went");
}
