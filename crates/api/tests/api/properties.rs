//! Arbitrary JSON against every route: the answer is 2xx or 4xx, never
//! 5xx, and after every 4xx the database is exactly as before (every
//! column of every row).
//!
//! Cases per route: `API_PROPTEST_CASES` (default 48, so about 500 requests
//! in CI; `docs/reliability.md` names a larger form).

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::Method;
use serde_json::{Map, Number, Value};

use crate::db_probe::DbProbe;
use crate::helpers::{TestUser, spawn_app};
use crate::server_process::report;

fn cases_per_route() -> u32 {
    std::env::var("API_PROPTEST_CASES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(48)
}

/// Strings that matter to the rules: any Unicode, blanks, NUL, lone
/// escapes, plausible emails, and lengths around every limit.
fn interesting_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ \\u{0}\\u{a0}a-z@.🦀]{0,12}",
        "[a-z]{1,8}@[a-z]{1,8}\\.[a-z]{2,3}",
        (0_usize..2_200).prop_map(|n| "x".repeat(n)),
        Just("00000000-0000-7000-8000-000000000000".to_owned()),
    ]
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        interesting_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        let key = prop_oneof![
            Just("title".to_owned()),
            Just("description".to_owned()),
            Just("completed".to_owned()),
            Just("email".to_owned()),
            Just("password".to_owned()),
            Just("id".to_owned()),
            Just("user_id".to_owned()),
            any::<String>(),
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key, inner), 0..5)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Bodies of the right shape with hostile values, so the rules (400) and
/// the successes are reached, not only the parser (422).
fn shaped_json() -> impl Strategy<Value = Value> {
    let string_or_any = prop_oneof![
        3 => interesting_string().prop_map(Value::String),
        1 => any_json(),
    ];
    prop_oneof![
        (
            string_or_any.clone(),
            prop::option::of(string_or_any.clone()),
            prop::option::of(any::<bool>())
        )
            .prop_map(|(title, description, completed)| {
                let mut body = Map::new();
                body.insert("title".into(), title);
                if let Some(description) = description {
                    body.insert("description".into(), description);
                }
                if let Some(completed) = completed {
                    body.insert("completed".into(), Value::Bool(completed));
                }
                Value::Object(body)
            }),
        (string_or_any.clone(), string_or_any).prop_map(
            |(email, password)| serde_json::json!({"email": email, "password": password})
        ),
    ]
}

fn body_strategy() -> impl Strategy<Value = Value> {
    prop_oneof![any_json(), shaped_json()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arbitrary_json_on_every_route_is_never_5xx_and_a_4xx_changes_nothing() {
    let app = spawn_app().await;
    let owner = TestUser::signed_up(&app).await;
    let stranger = TestUser::signed_up(&app).await;
    let own = app.created_task(&owner.token, "own").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let theirs = app.created_task(&stranger.token, "theirs").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let missing = uuid::Uuid::now_v7().to_string();
    let probe = DbProbe::connect(app.database.url()).await;
    let routes: Vec<(Method, String, bool)> = vec![
        (Method::POST, "/api/auth/signup".into(), false),
        (Method::POST, "/api/auth/signin".into(), false),
        (Method::GET, "/api/auth/me".into(), true),
        (Method::GET, "/api/tasks".into(), true),
        (Method::POST, "/api/tasks".into(), true),
        (Method::GET, format!("/api/tasks/{own}"), true),
        (Method::PUT, format!("/api/tasks/{own}"), true),
        (Method::PUT, format!("/api/tasks/{theirs}"), true),
        (Method::DELETE, format!("/api/tasks/{missing}"), true),
        (Method::PATCH, format!("/api/tasks/{own}/complete"), true),
        (Method::PATCH, format!("/api/tasks/{theirs}/complete"), true),
    ];
    let cases = cases_per_route();
    let handle = tokio::runtime::Handle::current();
    let tally = std::cell::RefCell::new(std::collections::BTreeMap::<u16, u32>::new());
    for (method, path, authenticated) in &routes {
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        let outcome = runner.run(&body_strategy(), |body| {
            tokio::task::block_in_place(|| {
                handle.block_on(async {
                    let before = probe.snapshot().await;
                    let mut request = app
                        .client
                        .request(method.clone(), app.url(path))
                        .header("content-type", "application/json")
                        .body(serde_json::to_vec(&body).unwrap());
                    if *authenticated {
                        request = request.bearer_auth(&owner.token);
                    }
                    let response = request.send().await.unwrap();
                    let status = response.status().as_u16();
                    let text = response.text().await.unwrap_or_default();
                    *tally.borrow_mut().entry(status).or_default() += 1;
                    prop_assert!(
                        status < 500,
                        "{method} {path} with {body} answered {status}: {text}"
                    );
                    if (400..500).contains(&status) {
                        prop_assert!(
                            probe.snapshot().await == before,
                            "{method} {path} with {body} answered {status} but changed the database"
                        );
                    }
                    Ok::<(), TestCaseError>(())
                })
            })
        });
        if let Err(failure) = outcome {
            panic!("{failure}");
        }
    }
    let tally = tally.into_inner();
    let total: u32 = tally.values().sum();
    report(&format!(
        "arbitrary JSON: {total} requests over {} routes ({cases} each): statuses {tally:?}; 0 x 5xx, database unchanged after every 4xx",
        routes.len()
    ));
    // The owner's task is still reachable: nothing broke the service.
    assert!(app.get_task(&owner.token, &own).await.status().as_u16() < 500);
}
