//! SIGTERM on the real binary: in-flight requests finish, then the process
//! exits 0.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use reqwest::StatusCode;
use todo_persistence::testing::TestDatabase;

use crate::helpers::{PASSWORD, TEST_SECRET};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_server(database_url: &str, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_todo-api"))
        .env_clear()
        .env("DATABASE_URL", database_url)
        .env("JWT_SECRET", TEST_SECRET)
        .env("PORT", port.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the todo-api binary starts")
}

async fn wait_until_up(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.get(format!("{base}/health")).send().await.is_err() {
        assert!(Instant::now() < deadline, "server did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_requests_and_exits_zero() {
    let database = TestDatabase::preferred().await;
    let port = free_port();
    let mut server = start_server(database.url(), port);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    wait_until_up(&client, &base).await;

    // Sign-ups queue behind the Argon2 permits, so several are still in
    // flight when the signal arrives.
    let in_flight: Vec<_> = (0..12)
        .map(|n| {
            let request = client.post(format!("{base}/api/auth/signup")).json(
                &serde_json::json!({"email": format!("drain{n}@example.io"), "password": PASSWORD}),
            );
            tokio::spawn(request.send())
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let status = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    for response in join_all(in_flight).await {
        let response = response
            .unwrap()
            .expect("an in-flight request is answered, not dropped");
        assert_eq!(response.status(), StatusCode::CREATED);
    }

    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = server.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "server still running 30 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(exit.code(), Some(0));
    assert!(
        reqwest::Client::new()
            .get(format!("{base}/health"))
            .send()
            .await
            .is_err()
    );
}
