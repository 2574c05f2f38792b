//! The changes feed, `GET /api/tasks/changes` (contract section 7, first
//! bullet), end to end: on PostgreSQL, and in CI again on SQLite
//! (`TEST_DATABASE_BACKEND=sqlite`).

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use reqwest::StatusCode;
use sea_orm::Value as DbValue;
use serde_json::{Value, json};
use time::macros::datetime;

use crate::db_probe::DbProbe;
use crate::helpers::{TestApp, TestUser, assert_error, spawn_app};

/// One page of the feed.
struct Feed {
    changes: Vec<Value>,
    cursor: String,
    has_more: bool,
}

async fn feed_response(app: &TestApp, token: &str, query: &str) -> reqwest::Response {
    let path = if query.is_empty() {
        "/api/tasks/changes".to_owned()
    } else {
        format!("/api/tasks/changes?{query}")
    };
    app.client
        .get(app.url(&path))
        .bearer_auth(token)
        .send()
        .await
        .expect("request sent")
}

/// A feed read that must succeed; `since` is a cursor or nothing.
async fn feed(app: &TestApp, token: &str, since: Option<&str>) -> Feed {
    let query = since
        .map(|cursor| format!("since={cursor}"))
        .unwrap_or_default();
    let response = feed_response(app, token, &query).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("feed JSON");
    let object = body.as_object().expect("an object");
    assert_eq!(object.len(), 3, "{body}");
    Feed {
        changes: body["changes"].as_array().expect("changes").clone(),
        cursor: body["cursor"].as_str().expect("a cursor").to_owned(),
        has_more: body["has_more"].as_bool().expect("has_more"),
    }
}

/// Each change as `("upsert", id)` or `("delete", id)`.
fn ops(changes: &[Value]) -> Vec<(String, String)> {
    changes
        .iter()
        .map(|change| match change["op"].as_str() {
            Some("upsert") => (
                "upsert".to_owned(),
                change["task"]["id"].as_str().unwrap().to_owned(),
            ),
            Some("delete") => {
                assert_eq!(change.as_object().unwrap().len(), 2, "{change}");
                (
                    "delete".to_owned(),
                    change["id"].as_str().unwrap().to_owned(),
                )
            }
            _ => panic!("unexpected change {change}"),
        })
        .collect()
}

fn upsert(id: &Value) -> (String, String) {
    ("upsert".to_owned(), id.as_str().unwrap().to_owned())
}

fn delete(id: &Value) -> (String, String) {
    ("delete".to_owned(), id.as_str().unwrap().to_owned())
}

async fn task_as_get_answers(app: &TestApp, token: &str, id: &Value) -> Value {
    let response = app.get_task(token, id.as_str().unwrap()).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

#[tokio::test]
async fn without_since_every_current_task_is_an_upsert_as_get_answers_it() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let empty = feed(&app, &user.token, None).await;
    assert!(empty.changes.is_empty());
    assert!(!empty.has_more);

    let first = app.created_task(&user.token, "first").await;
    let second = app
        .created_with(
            &user.token,
            &json!({"title": "second", "labels": ["work"], "priority": "high",
                    "due_at": "2031-01-02T03:04:05Z"}),
        )
        .await;
    let gone = app.created_task(&user.token, "gone").await;
    assert_eq!(
        app.delete_task(&user.token, gone["id"].as_str().unwrap())
            .await
            .status(),
        StatusCode::NO_CONTENT
    );

    let page = feed(&app, &user.token, None).await;
    assert!(!page.has_more);
    // Only current tasks, oldest change first; no deletion.
    assert_eq!(
        ops(&page.changes),
        [upsert(&first["id"]), upsert(&second["id"])]
    );
    for (change, task) in page.changes.iter().zip([&first, &second]) {
        assert_eq!(
            change["task"],
            task_as_get_answers(&app, &user.token, &task["id"]).await
        );
    }
    // Nothing changed since.
    let after = feed(&app, &user.token, Some(&page.cursor)).await;
    assert!(after.changes.is_empty());
    assert!(!after.has_more);
}

#[tokio::test]
async fn since_gives_only_later_changes_in_order_each_task_once_at_its_latest() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let token = &user.token;
    let a = app.created_task(token, "a").await;
    let b = app.created_task(token, "b").await;
    let c = app.created_task(token, "c").await;
    let start = feed(&app, token, None).await;

    let id = |task: &Value| task["id"].as_str().unwrap().to_owned();
    app.patch_task(token, &id(&a), &json!({"title": "a, renamed"}))
        .await;
    assert_eq!(app.flip_task(token, &id(&b)).await.status(), StatusCode::OK);
    app.replace_task(
        token,
        &id(&c),
        &json!({"title": "c, replaced", "description": null}),
    )
    .await;
    assert_eq!(
        app.delete_task(token, &id(&a)).await.status(),
        StatusCode::NO_CONTENT
    );
    let d = app.created_task(token, "d").await;

    let page = feed(&app, token, Some(&start.cursor)).await;
    assert_eq!(
        ops(&page.changes),
        [
            upsert(&b["id"]),
            upsert(&c["id"]),
            delete(&a["id"]),
            upsert(&d["id"])
        ]
    );
    assert_eq!(page.changes[0]["task"]["completed"], true);
    assert_eq!(page.changes[1]["task"]["title"], "c, replaced");

    // Clearing completed tasks: one deletion each.
    let cleared = app
        .client
        .delete(app.url("/api/tasks?completed=true"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), StatusCode::OK);
    let after_clear = feed(&app, token, Some(&page.cursor)).await;
    assert_eq!(ops(&after_clear.changes), [delete(&b["id"])]);

    // A completion set and a patch of d, then only d, once, as it is now.
    app.complete_task(token, &id(&d), &json!({"completed": true}))
        .await;
    app.patch_task(token, &id(&d), &json!({"priority": "low"}))
        .await;
    let last = feed(&app, token, Some(&after_clear.cursor)).await;
    assert_eq!(ops(&last.changes), [upsert(&d["id"])]);
    assert_eq!(
        last.changes[0]["task"],
        task_as_get_answers(&app, token, &d["id"]).await
    );
    // A patch that changes nothing is no change.
    app.patch_task(token, &id(&d), &json!({"priority": "low"}))
        .await;
    assert!(
        feed(&app, token, Some(&last.cursor))
            .await
            .changes
            .is_empty()
    );
}

#[tokio::test]
async fn pages_hold_at_most_500_and_the_cursor_continues_the_walk() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let token = &user.token;
    let mut created = Vec::new();
    for chunk in 0..11 {
        let batch = join_all((0..50).map(|n| {
            let app = &app;
            async move {
                app.created_task(token, &format!("task {}", chunk * 50 + n))
                    .await
            }
        }))
        .await;
        created.extend(batch);
    }
    assert_eq!(created.len(), 550);

    let first = feed(&app, token, None).await;
    assert_eq!(first.changes.len(), 500);
    assert!(first.has_more);
    // A task deleted and one created during the walk.
    let seen_id = first.changes[0]["task"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.delete_task(token, &seen_id).await.status(),
        StatusCode::NO_CONTENT
    );
    let late = app.created_task(token, "late").await;

    let second = feed(&app, token, Some(&first.cursor)).await;
    assert!(!second.has_more);
    let second_ops = ops(&second.changes);
    assert_eq!(second_ops.len(), 52, "{second_ops:?}");
    assert_eq!(second_ops[50], ("delete".to_owned(), seen_id.clone()));
    assert_eq!(second_ops[51], upsert(&late["id"]));

    let mut ids: Vec<String> = ops(&first.changes)
        .into_iter()
        .chain(second_ops)
        .filter(|(op, _)| op == "upsert")
        .map(|(_, id)| id)
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 551);
    assert!(
        feed(&app, token, Some(&second.cursor))
            .await
            .changes
            .is_empty()
    );
}

#[tokio::test]
async fn another_users_changes_never_appear_and_their_cursor_is_invalid() {
    let app = spawn_app().await;
    let me = TestUser::signed_up(&app).await;
    let other = TestUser::signed_up(&app).await;
    let mine = app.created_task(&me.token, "mine").await;
    let start = feed(&app, &me.token, None).await;
    let theirs = app.created_task(&other.token, "theirs").await;
    app.delete_task(&other.token, theirs["id"].as_str().unwrap())
        .await;
    app.created_task(&other.token, "theirs too").await;

    assert_eq!(ops(&start.changes), [upsert(&mine["id"])]);
    assert!(
        feed(&app, &me.token, Some(&start.cursor))
            .await
            .changes
            .is_empty()
    );
    let their_start = feed(&app, &other.token, None).await;
    assert_eq!(their_start.changes.len(), 1);

    // Each one's cursor is refused to the other.
    let body = assert_error(
        feed_response(&app, &other.token, &format!("since={}", start.cursor)).await,
        StatusCode::BAD_REQUEST,
        "invalid_cursor",
    )
    .await;
    assert!(!body.to_string().contains(&start.cursor));
    assert_error(
        feed_response(&app, &me.token, &format!("since={}", their_start.cursor)).await,
        StatusCode::BAD_REQUEST,
        "invalid_cursor",
    )
    .await;
}

#[tokio::test]
async fn garbage_cursors_are_invalid_and_never_echoed() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let list_cursor = {
        for n in 0..2 {
            app.created_task(&user.token, &format!("t{n}")).await;
        }
        let listed = app.listed(&user.token, "limit=1").await;
        let next = listed.next.expect("a next page");
        next.split("cursor=").nth(1).unwrap().to_owned()
    };
    for since in [
        "",
        "garbage-cursor-value",
        "%FF%FE",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        &list_cursor,
    ] {
        let response = feed_response(&app, &user.token, &format!("since={since}")).await;
        let body = assert_error(response, StatusCode::BAD_REQUEST, "invalid_cursor").await;
        if since.len() >= 6 {
            assert!(!body.to_string().contains(since), "{body}");
        }
    }
}

#[tokio::test]
async fn unknown_or_repeated_parameters_are_invalid_query_naming_them() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let cursor = feed(&app, &user.token, None).await.cursor;
    for (query, name) in [
        ("limit=5".to_owned(), "`limit`"),
        (format!("since={cursor}&since={cursor}"), "`since`"),
        (format!("since={cursor}&cursor={cursor}"), "`cursor`"),
    ] {
        let body = assert_error(
            feed_response(&app, &user.token, &query).await,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        )
        .await;
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains(name), "{detail}");
        assert!(!detail.contains(&cursor), "{detail}");
    }
    // A name too long or too odd to be a name may be a pasted value: it
    // is not repeated, as on the list route.
    for pasted in ["a-long-name-that-may-well-be-a-pasted-secret", "se%20cret"] {
        let body = assert_error(
            feed_response(&app, &user.token, &format!("{pasted}=1")).await,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        )
        .await;
        assert!(!body.to_string().contains("secret"), "{body}");
    }
}

#[tokio::test]
async fn the_route_needs_a_token_serves_get_and_head_only_and_is_no_task_id() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let anonymous = app
        .client
        .get(app.url("/api/tasks/changes"))
        .send()
        .await
        .unwrap();
    assert_error(anonymous, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    let head = app
        .client
        .head(app.url("/api/tasks/changes"))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    let post = app
        .client
        .post(app.url("/api/tasks/changes"))
        .bearer_auth(&user.token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(post.headers()["allow"], "GET, HEAD");
    assert_error(post, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
}

/// A time long past every retention, as the backend stores instants.
fn long_ago(probe: &DbProbe) -> DbValue {
    let at = datetime!(2001-01-01 00:00:00 UTC);
    match probe.backend() {
        sea_orm::DbBackend::Postgres => DbValue::from(at),
        _ => DbValue::from("2001-01-01T00:00:00.000000Z".to_owned()),
    }
}

#[tokio::test]
async fn a_cursor_older_than_the_kept_deletions_is_gone_and_a_fresh_read_recovers() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let token = &user.token;
    let kept = app.created_task(token, "kept").await;
    let old_cursor = feed(&app, token, None).await.cursor;
    let gone = app.created_task(token, "gone").await;
    app.delete_task(token, gone["id"].as_str().unwrap()).await;
    assert_eq!(feed(&app, token, Some(&old_cursor)).await.changes.len(), 1);

    // The deletion is past the retention; the service forgets it by
    // itself, at start-up and every hour after.
    let probe = DbProbe::connect(app.database.url()).await;
    assert_eq!(
        probe
            .execute(
                "UPDATE task_tombstones SET deleted_at = $1",
                vec![long_ago(&probe)],
            )
            .await,
        1
    );
    let app = app.restart().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = feed_response(&app, token, &format!("since={old_cursor}")).await;
        if response.status() == StatusCode::GONE {
            let body = assert_error(response, StatusCode::GONE, "cursor_expired").await;
            assert!(!body.to_string().contains(&old_cursor));
            break;
        }
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            Instant::now() < deadline,
            "the deletion was never forgotten"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        probe
            .count("SELECT COUNT(*) FROM task_tombstones", vec![])
            .await,
        0
    );

    // Starting again without `since` works, and its cursor is good.
    let fresh = feed(&app, token, None).await;
    assert_eq!(ops(&fresh.changes), [upsert(&kept["id"])]);
    assert!(
        feed(&app, token, Some(&fresh.cursor))
            .await
            .changes
            .is_empty()
    );
}
