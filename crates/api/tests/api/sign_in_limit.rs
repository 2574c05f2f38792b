//! Failed sign-ins limited per email, across client addresses and across
//! instances sharing one database.
//!
//! Each attempt comes from its own loopback address (127.0.0.x), and the
//! per-address limit allows two attempts per address: so every 429 here is
//! the per-email limit, not the per-address one.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use todo_persistence::testing::TestDatabase;

use crate::helpers::{PASSWORD, TestApp, TestUser, assert_error, spawn_app_with};
use crate::server_process::{ServerProcess, report};

const LIMIT: u32 = 3;
/// Long enough that a loaded machine stays within one window.
const WINDOW_SECONDS: u64 = 30;
/// Short, for the test that waits for a block to end.
const SHORT_WINDOW_SECONDS: u64 = 3;

/// The settings of the apps here: 3 failures per email within `window`
/// seconds, and a per-address budget of 2 attempts that never refills
/// within a test.
fn limited(window: u64) -> Vec<(&'static str, String)> {
    vec![
        ("SIGN_IN_FAILURES_PER_ACCOUNT", LIMIT.to_string()),
        ("SIGN_IN_FAILURE_WINDOW_SECONDS", window.to_string()),
        ("AUTH_RATE_LIMIT_PER_MINUTE", "1".to_owned()),
        ("AUTH_RATE_LIMIT_BURST", "2".to_owned()),
    ]
}

fn borrowed<'a>(settings: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    settings
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect()
}

async fn limited_app(window: u64) -> TestApp {
    spawn_app_with(TestDatabase::preferred().await, &borrowed(&limited(window))).await
}

/// Hands out a fresh loopback address for each attempt.
struct Addresses(u8);

impl Addresses {
    fn new() -> Self {
        Addresses(10)
    }

    /// A client whose connections come from the next unused 127.0.0.x.
    fn next_client(&mut self) -> reqwest::Client {
        self.0 = self.0.checked_add(1).expect("fewer than 245 attempts");
        reqwest::Client::builder()
            .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, self.0)))
            .build()
            .unwrap()
    }
}

async fn sign_in_at(base: &str, client: &reqwest::Client, email: &str, password: &str) -> Response {
    client
        .post(format!("{base}/api/auth/signin"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .expect("request sent")
}

/// Asserts a per-email 429 and returns its `Retry-After` in seconds, at
/// most `window`.
async fn assert_blocked(response: Response, window: u64) -> u64 {
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .expect("a Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=window).contains(&retry_after),
        "Retry-After: {retry_after}"
    );
    let body = assert_error(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(body["detail"], "Too many attempts; retry later");
    retry_after
}

async fn assert_wrong(response: Response) -> Value {
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await
}

/// Three wrong passwords from three addresses, alternating between two
/// instances on one database, block the email on both; even the right
/// password is then refused; another account is not affected.
#[tokio::test]
async fn failed_sign_ins_from_many_addresses_and_instances_hit_the_accounts_limit() {
    let app = limited_app(WINDOW_SECONDS).await;
    let other_instance =
        ServerProcess::start(app.database.url(), &borrowed(&limited(WINDOW_SECONDS))).await;
    let instances = [app.address.clone(), other_instance.base.clone()];
    let user = TestUser::signed_up(&app).await;
    let bystander = TestUser::signed_up(&app).await;
    let mut addresses = Addresses::new();

    let mut slowest_failure = Duration::ZERO;
    for attempt in 0..LIMIT as usize {
        let base = &instances[attempt % 2];
        let client = addresses.next_client();
        let sent = Instant::now();
        let response = sign_in_at(base, &client, &user.email, "wrong password").await;
        slowest_failure = slowest_failure.max(sent.elapsed());
        assert_wrong(response).await;
    }
    // Four refusals, each on a fresh connection, without a hash.
    let started = Instant::now();
    for base in &instances {
        let client = addresses.next_client();
        assert_blocked(
            sign_in_at(base, &client, &user.email, "wrong password").await,
            WINDOW_SECONDS,
        )
        .await;
        let client = addresses.next_client();
        assert_blocked(
            sign_in_at(base, &client, &user.email, PASSWORD).await,
            WINDOW_SECONDS,
        )
        .await;
    }
    let four_refusals = started.elapsed();
    let client = addresses.next_client();
    let response = sign_in_at(&instances[1], &client, &bystander.email, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK, "another account");
    report(&format!(
        "failed sign-ins per email (limit {LIMIT} in {WINDOW_SECONDS} s, 2 attempts per \
         address): {LIMIT} wrong passwords from {LIMIT} addresses over 2 instances -> 401 each \
         (slowest {slowest_failure:?}, with its hash); then wrong and right password on both \
         instances from fresh addresses -> 429 rate_limited with Retry-After, all four in \
         {four_refusals:?}; another account -> 200"
    ));
}

/// An email no account has is counted and blocked exactly like one that
/// exists: the answers are the same, so the limit reveals nothing.
#[tokio::test]
async fn an_unknown_email_is_limited_the_same_way() {
    let app = limited_app(WINDOW_SECONDS).await;
    let user = TestUser::signed_up(&app).await;
    let unknown = format!("nobody-{}@example.io", uuid::Uuid::new_v4().simple());
    let mut addresses = Addresses::new();
    let mut answers = Vec::new();
    for email in [&user.email, &unknown] {
        let mut failures = Vec::new();
        for _ in 0..LIMIT {
            let client = addresses.next_client();
            failures.push(
                assert_wrong(sign_in_at(&app.address, &client, email, "wrong password").await)
                    .await,
            );
        }
        let client = addresses.next_client();
        let response = sign_in_at(&app.address, &client, email, PASSWORD).await;
        let status = response.status();
        let retry_after = assert_blocked(response, WINDOW_SECONDS).await;
        answers.push((failures, status, retry_after));
    }
    let (known, unknown) = (&answers[0], &answers[1]);
    assert_eq!(known.0, unknown.0, "the 401 bodies");
    assert_eq!(known.1, unknown.1, "the blocked status");
}

/// A block ends by itself, the right password then works, and that success
/// clears the count: the next failures start from zero.
#[tokio::test]
async fn the_block_ends_and_a_success_resets_the_count() {
    let app = limited_app(SHORT_WINDOW_SECONDS).await;
    let user = TestUser::signed_up(&app).await;
    let mut addresses = Addresses::new();
    for _ in 0..LIMIT {
        let client = addresses.next_client();
        assert_wrong(sign_in_at(&app.address, &client, &user.email, "wrong password").await).await;
    }
    let client = addresses.next_client();
    let retry_after = assert_blocked(
        sign_in_at(&app.address, &client, &user.email, PASSWORD).await,
        SHORT_WINDOW_SECONDS,
    )
    .await;

    tokio::time::sleep(Duration::from_secs(retry_after) + Duration::from_millis(100)).await;
    let client = addresses.next_client();
    let response = sign_in_at(&app.address, &client, &user.email, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK, "after the block");

    // Two failures, a success, two more failures: never three in a row
    // without a success between, so never blocked.
    for round in 0..2 {
        for _ in 0..LIMIT - 1 {
            let client = addresses.next_client();
            assert_wrong(sign_in_at(&app.address, &client, &user.email, "wrong password").await)
                .await;
        }
        let client = addresses.next_client();
        let response = sign_in_at(&app.address, &client, &user.email, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::OK, "round {round}");
    }
}
