//! The password hasher under load: hashes at once stay within the bound
//! even when clients hang up, a burst is answered within the wait bound
//! (the excess with 503 `busy` and `Retry-After`), and other users' reads
//! are not held up meanwhile. `spawn_app` raises the auth rate limit, so
//! the limiter never answers first here.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use todo_persistence::testing::TestDatabase;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::helpers::{PASSWORD, TestApp, TestUser, spawn_app, spawn_app_with};
use crate::server_process::report;

/// The value of an unlabelled metric in `/metrics`.
async fn metric(app: &TestApp, name: &str) -> i64 {
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} is not in /metrics"))
        .trim()
        .parse::<f64>()
        .map(|value| value as i64)
        .unwrap()
}

/// Waits until no hash runs or waits any more (abandoned requests' too).
async fn until_no_hash_runs(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let running = metric(app, "todo_api_password_hashes_in_progress").await;
        let waiting = metric(app, "todo_api_password_hashes_waiting").await;
        if running == 0 && waiting == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "hashes still running after 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn sign_in_request(port: u16, email: &str) -> Vec<u8> {
    let body = json!({"email": email, "password": PASSWORD}).to_string();
    format!(
        "POST /api/auth/signin HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ins_reset_after_sending_never_run_more_hashes_at_once_than_the_bound() {
    let app = spawn_app().await;
    let user = TestUser::signed_up(&app).await;
    let port: u16 = app.address.rsplit(':').next().unwrap().parse().unwrap();
    let request = sign_in_request(port, &user.email);

    // Each client sends a whole sign-in and resets the connection 3 ms
    // later, once the server has read it and while its hash is queued or
    // running. One starts every 2 ms, so the server reads each at once
    // (a request still unread when its reset arrives is served in full).
    let clients: Vec<_> = (0..150_u64)
        .map(|index| {
            let request = request.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(2 * index)).await;
                let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
                stream.write_all(&request).await.unwrap();
                tokio::time::sleep(Duration::from_millis(3)).await;
                stream.set_zero_linger().unwrap();
                drop(stream);
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    until_no_hash_runs(&app).await;

    let limit = metric(&app, "todo_api_password_hashes_limit").await;
    let most = metric(&app, "todo_api_password_hashes_in_progress_max").await;
    let refused = metric(&app, "todo_api_password_hash_refusals_total").await;
    report(&format!(
        "hasher: 150 sign-ins reset 3 ms after sending -> at most {most} hash(es) at once \
         (bound {limit}); {refused} refused busy"
    ));
    assert!(limit >= 1);
    assert!(most >= 1, "no sign-in reached the hasher");
    assert!(most <= limit, "{most} hashes ran at once, bound {limit}");
    // The service is still fine.
    assert_eq!(
        app.sign_in(&user.email, PASSWORD).await.status(),
        StatusCode::OK
    );
}

/// Latencies of `GET /api/tasks/{id}` of another user, sent one after
/// another from a thread of its own until `stop` is set, so that the
/// burst's client does not delay the measurement.
fn probe_reads(
    url: String,
    token: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Vec<Duration>> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let client = reqwest::Client::new();
            let mut latencies = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                let started = Instant::now();
                let response = client.get(&url).bearer_auth(&token).send().await.unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                response.bytes().await.unwrap();
                latencies.push(started.elapsed());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            latencies
        })
    })
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() - 1) as f64 * fraction).round() as usize;
    sorted[index]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_sign_ins_is_answered_within_the_wait_and_the_excess_gets_503_busy() {
    const WAIT_SECONDS: u64 = 2;
    let app = spawn_app_with(
        TestDatabase::preferred().await,
        &[
            ("PASSWORD_HASH_WAIT_SECONDS", "2"),
            ("PASSWORD_HASH_QUEUE", "32"),
        ],
    )
    .await;
    let user = TestUser::signed_up(&app).await;
    let reader = TestUser::signed_up(&app).await;
    let task = app.created_task(&reader.token, "read me").await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let probe = probe_reads(
        app.url(&format!("/api/tasks/{}", task["id"].as_str().unwrap())),
        reader.token.clone(),
        stop.clone(),
    );
    tokio::time::sleep(Duration::from_millis(100)).await;

    let client = reqwest::Client::new();
    let started = Instant::now();
    let attempts: Vec<_> = (0..300)
        .map(|_| {
            let client = client.clone();
            let url = app.url("/api/auth/signin");
            let email = user.email.clone();
            tokio::spawn(async move {
                let response = client
                    .post(url)
                    .json(&json!({"email": email, "password": PASSWORD}))
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .map(|value| value.to_str().unwrap().to_owned());
                let body: Value = response.json().await.unwrap();
                (status, retry_after, body, started.elapsed())
            })
        })
        .collect();
    let mut answers = Vec::new();
    for attempt in attempts {
        answers.push(attempt.await.unwrap());
    }
    let burst = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Release);
    let mut latencies = probe.join().unwrap();
    latencies.sort();

    let signed_in = answers
        .iter()
        .filter(|(status, ..)| *status == StatusCode::OK)
        .count();
    let busy: Vec<Duration> = answers
        .iter()
        .filter(|(status, ..)| *status == StatusCode::SERVICE_UNAVAILABLE)
        .map(|(.., elapsed)| *elapsed)
        .collect();
    let slowest = answers.iter().map(|(.., elapsed)| *elapsed).max().unwrap();
    let first_busy = busy.iter().min().copied();
    let (p50, p95, worst) = (
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.95),
        *latencies.last().unwrap(),
    );
    report(&format!(
        "hasher: 300 concurrent sign-ins (wait {WAIT_SECONDS} s, queue 32) -> {signed_in} x 200, \
         {} x 503 busy (first after {first_busy:?}); slowest answer {slowest:?}, burst \
         {burst:?}; another user's GET by id meanwhile: {} reads, p50 {p50:?}, p95 {p95:?}, \
         max {worst:?}",
        busy.len(),
        latencies.len(),
    ));

    for (status, retry_after, body, _) in &answers {
        match *status {
            StatusCode::OK => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(body["code"], "busy", "{body}");
                assert_eq!(retry_after.as_deref(), Some("2"), "{body}");
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(signed_in + busy.len(), 300);
    assert!(signed_in >= 1, "nobody got through");
    assert!(!busy.is_empty(), "300 hashes at once were all served");
    assert!(
        slowest <= Duration::from_secs(WAIT_SECONDS + 1),
        "the slowest answer took {slowest:?}"
    );
    // Those past the queue are refused at once, not after the queue drains.
    assert!(
        first_busy.is_some_and(|first| first < Duration::from_secs(WAIT_SECONDS)),
        "first 503 after {first_busy:?}"
    );
    assert!(latencies.len() >= 10, "{} reads", latencies.len());
    assert!(p50 < Duration::from_millis(50), "reads p50 {p50:?}");
}
