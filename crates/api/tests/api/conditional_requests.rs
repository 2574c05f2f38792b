//! Contract 6.4 (and 5): `ETag`, `If-Match`, `If-None-Match`.

use futures_util::future::join_all;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, assert_error, spawn_app};

fn etag_of(response: &Response) -> String {
    response
        .headers()
        .get("etag")
        .unwrap_or_else(|| panic!("no ETag on {} {}", response.status(), response.url()))
        .to_str()
        .unwrap()
        .to_owned()
}

/// A strong tag: a quoted string without `W/`.
fn assert_strong(tag: &str) {
    assert!(
        tag.len() >= 3 && tag.starts_with('"') && tag.ends_with('"'),
        "{tag}"
    );
}

async fn conditional(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    if_match: &str,
    body: Option<Value>,
) -> Response {
    let mut request = app
        .client
        .request(method, app.url(path))
        .bearer_auth(token)
        .header("if-match", if_match);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn every_answer_with_one_task_carries_a_strong_etag_that_moves_with_the_task() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let created = app.create_task(&user.token, &json!({"title": "t"})).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let mut tags = vec![etag_of(&created)];
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/tasks/{id}");

    let got = app.get_task(&user.token, &id).await;
    assert_eq!(etag_of(&got), tags[0], "a read does not move it");
    let head = app
        .client
        .head(app.url(&path))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();
    assert_eq!(etag_of(&head), tags[0]);

    let answers = [
        app.replace_task(&user.token, &id, &json!({"title": "u"}))
            .await,
        app.patch_task(&user.token, &id, &json!({"priority": "low"}))
            .await,
        app.flip_task(&user.token, &id).await,
        app.complete_task(&user.token, &id, &json!({"completed": false}))
            .await,
    ];
    for answer in answers {
        assert_eq!(answer.status(), StatusCode::OK);
        tags.push(etag_of(&answer));
    }
    for tag in &tags {
        assert_strong(tag);
    }
    let distinct: std::collections::HashSet<&String> = tags.iter().collect();
    assert_eq!(
        distinct.len(),
        tags.len(),
        "every change moved it: {tags:?}"
    );
    let now = app.get_task(&user.token, &id).await;
    assert_eq!(&etag_of(&now), tags.last().unwrap());
}

#[tokio::test]
async fn if_match_with_the_current_tag_or_a_star_lets_each_write_through() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let created = app.create_task(&user.token, &json!({"title": "t"})).await;
    let mut tag = etag_of(&created);
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/tasks/{id}");
    let writes = [
        (Method::PUT, path.clone(), Some(json!({"title": "put"}))),
        (Method::PATCH, path.clone(), Some(json!({"title": "patch"}))),
        (Method::PATCH, format!("{path}/complete"), None),
    ];
    for (method, target, body) in writes {
        let listed = format!("\"999\", {tag}");
        let response = conditional(
            &app,
            method.clone(),
            &target,
            &user.token,
            &listed,
            body.clone(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK, "{method} {target}");
        assert_ne!(etag_of(&response), tag, "{method} {target} wrote");
        let response = conditional(&app, method.clone(), &target, &user.token, "*", body).await;
        assert_eq!(response.status(), StatusCode::OK, "{method} {target} *");
        tag = etag_of(&response);
    }
    let response = conditional(&app, Method::DELETE, &path, &user.token, &tag, None).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn if_match_with_a_stale_weak_or_malformed_tag_is_412_and_changes_nothing() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let created = app.create_task(&user.token, &json!({"title": "t"})).await;
    let stale = etag_of(&created);
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/tasks/{id}");
    let current: Value = app
        .patch_task(&user.token, &id, &json!({"title": "moved on"}))
        .await
        .json()
        .await
        .unwrap();
    let now = etag_of(&app.get_task(&user.token, &id).await);
    let weak = format!("W/{now}");
    let unquoted = now.trim_matches('"').to_owned();
    for tag in [
        stale.as_str(),
        &weak,
        &unquoted,
        "\"\"",
        "garbage",
        "*, \"1\"",
    ] {
        let writes = [
            (Method::PUT, path.clone(), Some(json!({"title": "lost"}))),
            (Method::PATCH, path.clone(), Some(json!({"title": "lost"}))),
            (Method::PATCH, format!("{path}/complete"), None),
            (Method::DELETE, path.clone(), None),
        ];
        for (method, target, body) in writes {
            let response = conditional(&app, method.clone(), &target, &user.token, tag, body).await;
            assert_error(
                response,
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
            )
            .await;
        }
    }
    let after: Value = app.get_task(&user.token, &id).await.json().await.unwrap();
    assert_eq!(after, current, "nothing was written");
}

#[tokio::test]
async fn a_missing_task_is_404_and_a_foreign_one_403_whatever_if_match_says() {
    let app = spawn_app().await;
    let alice = TestUser::signed_up(&app).await;
    let bob = TestUser::signed_up(&app).await;
    let created = app.create_task(&alice.token, &json!({"title": "a"})).await;
    let tag = etag_of(&created);
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let missing = format!("/api/tasks/{}", uuid::Uuid::now_v7());
    let foreign = format!("/api/tasks/{id}");
    for if_match in [tag.as_str(), "\"12345\"", "*"] {
        for method in [Method::PUT, Method::PATCH, Method::DELETE] {
            let body = (method != Method::DELETE).then(|| json!({"title": "x"}));
            let response = conditional(
                &app,
                method.clone(),
                &missing,
                &alice.token,
                if_match,
                body.clone(),
            )
            .await;
            assert_error(response, StatusCode::NOT_FOUND, "task_not_found").await;
            let response =
                conditional(&app, method.clone(), &foreign, &bob.token, if_match, body).await;
            assert_error(response, StatusCode::FORBIDDEN, "forbidden").await;
        }
    }
    // A rule broken (400) comes before the precondition (412).
    let response = conditional(
        &app,
        Method::PUT,
        &foreign,
        &alice.token,
        "\"12345\"",
        Some(json!({"title": ""})),
    )
    .await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_title").await;
}

#[tokio::test]
async fn two_writers_with_the_same_etag_exactly_one_wins() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    for round in 0..3 {
        let created = app
            .create_task(&user.token, &json!({"title": format!("contended {round}")}))
            .await;
        let tag = etag_of(&created);
        let id = created.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let path = format!("/api/tasks/{id}");
        let writers = (0..2).map(|writer| {
            conditional(
                &app,
                Method::PATCH,
                &path,
                &user.token,
                &tag,
                Some(json!({"title": format!("writer {writer}")})),
            )
        });
        let mut statuses = Vec::new();
        let mut winner = None;
        for response in join_all(writers).await {
            statuses.push(response.status());
            if response.status() == StatusCode::OK {
                winner = Some(response.json::<Value>().await.unwrap()["title"].clone());
            }
        }
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::OK, StatusCode::PRECONDITION_FAILED],
            "round {round}"
        );
        let stored: Value = app.get_task(&user.token, &id).await.json().await.unwrap();
        assert_eq!(
            Some(stored["title"].clone()),
            winner,
            "the winner's write stands"
        );
    }
}

#[tokio::test]
async fn if_none_match_on_get_and_head_answers_304_without_a_body() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let created = app
        .create_task(&user.token, &json!({"title": "cached"}))
        .await;
    let tag = etag_of(&created);
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/tasks/{id}");
    let weak = format!("W/{tag}");
    let listed = format!("\"999\", {tag}");
    for if_none_match in [tag.as_str(), &weak, &listed, "*"] {
        for method in [Method::GET, Method::HEAD] {
            let response = app
                .client
                .request(method.clone(), app.url(&path))
                .bearer_auth(&user.token)
                .header("if-none-match", if_none_match)
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::NOT_MODIFIED,
                "{method} {if_none_match}"
            );
            assert_eq!(etag_of(&response), tag);
            assert!(response.bytes().await.unwrap().is_empty());
        }
    }
    // Another tag, or a malformed one: the task itself.
    for if_none_match in ["\"999\"", "garbage"] {
        let response = app
            .client
            .get(app.url(&path))
            .bearer_auth(&user.token)
            .header("if-none-match", if_none_match)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.json::<Value>().await.unwrap()["title"], "cached");
    }
    // After a change the old tag no longer matches.
    app.patch_task(&user.token, &id, &json!({"title": "changed"}))
        .await;
    let response = app
        .client
        .get(app.url(&path))
        .bearer_auth(&user.token)
        .header("if-none-match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_ne!(etag_of(&response), tag);
    // A foreign or missing task is still 403 or 404.
    let stranger = TestUser::signed_up(&app).await;
    let response = app
        .client
        .get(app.url(&path))
        .bearer_auth(&stranger.token)
        .header("if-none-match", "*")
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::FORBIDDEN, "forbidden").await;
}
