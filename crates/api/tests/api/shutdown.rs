//! SIGTERM on the real binary while 100 requests are in flight: every one
//! of them completes and is stored, new connections are refused at once,
//! and the process exits 0 within `SHUTDOWN_TIMEOUT_SECONDS` even though
//! one client never finishes its request.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};
use todo_persistence::testing::TestDatabase;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::db_probe::DbProbe;
use crate::server_process::{ServerProcess, report};

const IN_FLIGHT: usize = 100;
const GRACE_SECONDS: u64 = 4;

/// Sends the head of a `POST /api/tasks` with `Expect: 100-continue` and
/// waits for the `100 Continue`: proof that the server has parsed the
/// request and is now waiting for its body, i.e. the request is in flight.
async fn start_request(port: u16, token: &str, body: &str) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let head = format!(
        "POST /api/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let interim = read_until_blank_line(&mut stream).await;
    assert!(
        interim.starts_with("HTTP/1.1 100"),
        "expected 100 Continue, got {interim:?}"
    );
    stream
}

async fn read_until_blank_line(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut byte = [0_u8; 1];
    while !received.ends_with(b"\r\n\r\n") {
        let read = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut byte))
            .await
            .expect("the server answers within 30 s")
            .unwrap();
        assert_eq!(read, 1, "connection closed early: {received:?}");
        received.push(byte[0]);
    }
    String::from_utf8(received).unwrap()
}

/// Sends the body and reads the whole response (the draining server
/// closes the connection after it).
async fn finish_request(mut stream: TcpStream, body: String) -> (u16, Value) {
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut response))
        .await
        .expect("the response arrives within 30 s")
        .unwrap();
    let text = String::from_utf8(response).unwrap();
    let status = text[9..12].parse().unwrap();
    let json = text
        .split_once("\r\n\r\n")
        .and_then(|(_, body)| serde_json::from_str(body).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_100_in_flight_requests_refuses_new_ones_and_exits_0_in_the_grace_period() {
    let database = TestDatabase::preferred().await;
    let mut server = ServerProcess::start(
        database.url(),
        &[
            ("SHUTDOWN_TIMEOUT_SECONDS", &GRACE_SECONDS.to_string()),
            // Longer than the grace period, so the stalled client below is
            // cut by the shutdown, not by the body timeout.
            ("REQUEST_BODY_TIMEOUT_SECONDS", "120"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let token = server.sign_up("drain@example.io").await;

    let bodies: Vec<String> = (0..IN_FLIGHT)
        .map(|n| json!({"title": format!("in flight {n:03}")}).to_string())
        .collect();
    let port = server.port;
    let in_flight = join_all(bodies.iter().map(|body| start_request(port, &token, body))).await;
    // A client that will never send its body: it must not hold the process
    // beyond the grace period.
    let _stalled = start_request(port, &token, r#"{"title": "never sent"}"#).await;

    let signalled = Instant::now();
    server.signal("-TERM");

    // The listener closes at once: a new connection is refused while the
    // 100 requests are still waiting for their bodies.
    let refused_after = loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused => {
                break signalled.elapsed();
            }
            _ => {
                assert!(
                    signalled.elapsed() < Duration::from_secs(2),
                    "still accepting connections 2 s after SIGTERM"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };

    let answers = join_all(
        in_flight
            .into_iter()
            .zip(bodies.iter().cloned())
            .map(|(stream, body)| tokio::spawn(finish_request(stream, body))),
    )
    .await;
    let mut created = 0;
    for (n, answer) in answers.into_iter().enumerate() {
        let (status, task) = answer.unwrap();
        assert_eq!(status, 201, "in-flight request {n}");
        assert_eq!(task["title"], format!("in flight {n:03}"));
        created += 1;
    }
    let drained_after = signalled.elapsed();

    let exit = server
        .wait_exit(Duration::from_secs(GRACE_SECONDS + 10))
        .await
        .expect("the process exits");
    let exited_after = signalled.elapsed();
    assert_eq!(exit.code(), Some(0));
    assert!(
        exited_after <= Duration::from_millis(GRACE_SECONDS * 1000 + 1500),
        "exited {exited_after:?} after SIGTERM; grace period {GRACE_SECONDS} s"
    );
    assert_eq!(
        client
            .get(server.url("/health"))
            .send()
            .await
            .map(|r| r.status())
            .ok(),
        None::<StatusCode>
    );

    let titles: Vec<String> = DbProbe::connect(database.url())
        .await
        .tasks()
        .await
        .into_iter()
        .filter_map(|row| row[2].clone())
        .collect();
    let mut expected: Vec<String> = (0..IN_FLIGHT)
        .map(|n| format!("in flight {n:03}"))
        .collect();
    let mut stored = titles.clone();
    stored.sort();
    expected.sort();
    assert_eq!(
        stored, expected,
        "exactly the 100 drained writes are stored"
    );

    report(&format!(
        "shutdown: {created}/{IN_FLIGHT} in-flight requests answered 201 and stored; \
         new connection refused {refused_after:?} after SIGTERM; in-flight answered by \
         {drained_after:?}; exit code 0 after {exited_after:?} (grace {GRACE_SECONDS} s, \
         1 client stalled mid-body)"
    ));
}
