//! `TRUSTED_PROXIES`: `X-Forwarded-For` counts only when the TCP peer is
//! one of the configured proxies, and then its right-most entry that is
//! not a proxy is the client. Seen through the auth rate limit, which
//! keys on the client address (limit 1 a minute, burst 1: a client's
//! second attempt is 429).

use std::net::IpAddr;

use reqwest::StatusCode;
use serde_json::json;
use todo_persistence::testing::TestDatabase;

use crate::helpers::{PASSWORD, TestApp, spawn_app_with};

/// A client whose connections come from `address` (any of 127.0.0.0/8 is
/// this machine's loopback).
fn client_from(address: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(address.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

async fn sign_in(app: &TestApp, client: &reqwest::Client, headers: &[(&str, &str)]) -> StatusCode {
    let mut request = client
        .post(app.url("/api/auth/signin"))
        .json(&json!({"email": "nobody@example.io", "password": PASSWORD}));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap().status()
}

async fn app_trusting(proxies: &str) -> TestApp {
    spawn_app_with(
        TestDatabase::preferred().await,
        &[
            ("AUTH_RATE_LIMIT_PER_MINUTE", "1"),
            ("AUTH_RATE_LIMIT_BURST", "1"),
            ("TRUSTED_PROXIES", proxies),
        ],
    )
    .await
}

#[tokio::test]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored() {
    // 127.0.0.1 is a proxy; 127.0.0.2 is not, and connects directly.
    let app = app_trusting("127.0.0.1/32, 10.0.0.0/8").await;
    let direct = client_from("127.0.0.2");
    assert_eq!(
        sign_in(&app, &direct, &[("x-forwarded-for", "203.0.113.1")]).await,
        StatusCode::UNAUTHORIZED
    );
    // A new claimed address per request does not make a new client: the
    // limit keys on the peer.
    for spoofed in [
        &[("x-forwarded-for", "203.0.113.2")][..],
        &[("x-forwarded-for", "198.51.100.7, 10.0.0.1")][..],
        &[("forwarded", "for=203.0.113.3")][..],
    ] {
        assert_eq!(
            sign_in(&app, &direct, spoofed).await,
            StatusCode::TOO_MANY_REQUESTS,
            "{spoofed:?}"
        );
    }
    // Through the proxy, the client the spoofer pretended to be is still a
    // client of its own, and the spoofer's own address shares its bucket.
    let proxy = client_from("127.0.0.1");
    assert_eq!(
        sign_in(&app, &proxy, &[("x-forwarded-for", "203.0.113.2")]).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        sign_in(&app, &proxy, &[("x-forwarded-for", "203.0.113.3")]).await,
        StatusCode::UNAUTHORIZED,
        "the proxy's header is believed"
    );
    assert_eq!(
        sign_in(&app, &proxy, &[("x-forwarded-for", "127.0.0.2")]).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn behind_a_trusted_peer_the_right_most_untrusted_hop_is_the_client() {
    let app = app_trusting("127.0.0.1, 10.0.0.0/8").await;
    let proxy = client_from("127.0.0.1");
    // The client 203.0.113.1, having come through a second proxy
    // (10.0.0.7), with an address of its own invention on the left.
    assert_eq!(
        sign_in(
            &app,
            &proxy,
            &[("x-forwarded-for", "6.6.6.6, 203.0.113.1, 10.0.0.7")]
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    // Same client, other inventions, other lines: same bucket.
    for same_client in [
        &[("x-forwarded-for", "203.0.113.1")][..],
        &[("x-forwarded-for", "7.7.7.7, 203.0.113.1")][..],
        &[
            ("x-forwarded-for", "8.8.8.8"),
            ("x-forwarded-for", "203.0.113.1, 10.9.9.9"),
        ][..],
    ] {
        assert_eq!(
            sign_in(&app, &proxy, same_client).await,
            StatusCode::TOO_MANY_REQUESTS,
            "{same_client:?}"
        );
    }
    // Another client behind the same proxies has its own bucket.
    assert_eq!(
        sign_in(
            &app,
            &proxy,
            &[("x-forwarded-for", "203.0.113.1, 203.0.113.2, 10.0.0.7")]
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn without_trusted_proxies_every_header_is_ignored() {
    let app = spawn_app_with(
        TestDatabase::preferred().await,
        &[
            ("AUTH_RATE_LIMIT_PER_MINUTE", "1"),
            ("AUTH_RATE_LIMIT_BURST", "1"),
        ],
    )
    .await;
    let client = client_from("127.0.0.1");
    assert_eq!(
        sign_in(&app, &client, &[("x-forwarded-for", "203.0.113.1")]).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        sign_in(&app, &client, &[("x-forwarded-for", "203.0.113.2")]).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[test]
fn the_retired_switch_stops_the_binary_with_the_replacement_named() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_todo-api"))
        .env_clear()
        .env("TRUST_PROXY_HEADERS", "true")
        .env("PORT", "0")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary runs");
    // A binary that accepted the variable would serve for ever.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the binary started with TRUST_PROXY_HEADERS set");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success());
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(printed.contains("TRUST_PROXY_HEADERS"), "{printed}");
    assert!(printed.contains("TRUSTED_PROXIES"), "{printed}");
}
