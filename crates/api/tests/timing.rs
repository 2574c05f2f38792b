//! Sign-in timing: "unknown email" and "wrong password" must cost the same,
//! so response times do not tell which emails have accounts.
//!
//! Its own test binary on purpose: cargo runs test binaries one after the
//! other, so no other test's Argon2 hashing shares the two cores while this
//! one measures.

#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;

use std::time::{Duration, Instant};

use helpers::{TestUser, spawn_app_with};
use reqwest::StatusCode;
use todo_persistence::testing::TestDatabase;

/// Samples of each kind; `SIGNIN_TIMING_SAMPLES` raises it.
fn samples() -> usize {
    std::env::var("SIGNIN_TIMING_SAMPLES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(61)
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_email_and_wrong_password_take_the_same_time() {
    // One account fails every sample, far past the per-email limit of
    // failed sign-ins, which is not what this test is about.
    let app = spawn_app_with(
        TestDatabase::preferred().await,
        &[("SIGN_IN_FAILURES_PER_ACCOUNT", "1000000")],
    )
    .await;
    let user = TestUser::signed_up(&app).await;
    let timed = |email: String, password: &'static str| {
        let app = &app;
        async move {
            let started = Instant::now();
            let response = app.sign_in(&email, password).await;
            let took = started.elapsed();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            took
        }
    };
    let unknown = |n: usize| format!("nobody-{n}@example.io");
    // Warm-up: connection set-up, caches, the blocking pool's threads.
    for n in 0..5 {
        timed(unknown(n), "wrong password").await;
        timed(user.email.clone(), "wrong password").await;
    }
    // Interleaved, alternating which goes first, so drift in the machine's
    // load falls on both kinds alike.
    let (mut unknown_times, mut wrong_times) = (Vec::new(), Vec::new());
    for n in 0..samples() {
        if n % 2 == 0 {
            unknown_times.push(timed(unknown(n + 100), "wrong password").await);
            wrong_times.push(timed(user.email.clone(), "wrong password").await);
        } else {
            wrong_times.push(timed(user.email.clone(), "wrong password").await);
            unknown_times.push(timed(unknown(n + 100), "wrong password").await);
        }
    }
    let (unknown_median, wrong_median) = (median(unknown_times), median(wrong_times));
    let faster = unknown_median.min(wrong_median).as_secs_f64();
    let slower = unknown_median.max(wrong_median).as_secs_f64();
    let difference = (slower - faster) / faster;
    {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "reliability: sign-in timing ({} samples each, interleaved): median unknown email \
             {unknown_median:?}, wrong password {wrong_median:?}, difference {:.1} %",
            samples(),
            difference * 100.0
        );
    }
    assert!(
        difference < 0.20,
        "medians differ by {:.1} %: unknown {unknown_median:?}, wrong {wrong_median:?}",
        difference * 100.0
    );
}
