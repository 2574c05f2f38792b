//! The binary's own words when it cannot reach its database: the cause
//! class, never the URL or the password.

use std::process::Command;

use crate::helpers::TEST_SECRET;
use crate::server_process::free_port;

/// Runs the binary against `database_url` until it gives up, and returns
/// its exit success and what it wrote.
fn start_up_failure(database_url: &str) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_todo-api"))
        .env_clear()
        .env("DATABASE_URL", database_url)
        .env("JWT_SECRET", TEST_SECRET)
        .env("PORT", "0")
        .env("DATABASE_ACQUIRE_TIMEOUT", "1")
        .env("RUST_LOG", "info")
        .output()
        .expect("the todo-api binary runs");
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

#[test]
fn the_binary_names_why_it_cannot_reach_the_database_and_never_the_password() {
    let cases = [
        (
            "postgres://app:hunter2-secret@no-such-host.invalid:5432/todo".to_owned(),
            "its host name is unknown",
        ),
        (
            format!(
                "postgres://app:hunter2-secret@127.0.0.1:{}/todo?sslmode=disable",
                free_port()
            ),
            "connection refused",
        ),
    ];
    for (url, cause) in cases {
        let (succeeded, output) = start_up_failure(&url);
        assert!(!succeeded, "{url}: exited 0");
        assert!(
            output.contains("start-up failed: database: could not connect to the database")
                && output.contains(cause),
            "{url}: {output}"
        );
        assert!(!output.contains("hunter2"), "the password shows: {output}");
    }
}
