//! The real `todo-api` binary as a child process, for the tests that need
//! a process to signal, kill or run twice.

use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{PASSWORD, TEST_SECRET};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running server binary; killed (SIGKILL) if still alive when dropped.
pub struct ServerProcess {
    child: Child,
    pub port: u16,
    pub base: String,
}

impl ServerProcess {
    /// Starts the binary on `database_url` with a free port and waits until
    /// `/health` answers.
    pub async fn start(database_url: &str, extra: &[(&str, &str)]) -> ServerProcess {
        let server = Self::spawn(database_url, free_port(), extra);
        server.wait_until_up().await;
        server
    }

    /// Starts the binary without waiting for it.
    pub fn spawn(database_url: &str, port: u16, extra: &[(&str, &str)]) -> ServerProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_todo-api"));
        command
            .env_clear()
            .env("DATABASE_URL", database_url)
            .env("JWT_SECRET", TEST_SECRET)
            .env("PORT", port.to_string())
            .env("DATABASE_MAX_CONNECTIONS", "5")
            .env("AUTH_RATE_LIMIT_PER_MINUTE", "1000000")
            .env("AUTH_RATE_LIMIT_BURST", "1000000")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(if std::env::var_os("TEST_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            });
        for (name, value) in extra {
            command.env(name, value);
        }
        let child = command.spawn().expect("the todo-api binary starts");
        ServerProcess {
            child,
            port,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Signs `email` up on this server and returns its access token.
    pub async fn sign_up(&self, email: &str) -> String {
        let signed_up: serde_json::Value = reqwest::Client::new()
            .post(self.url("/api/auth/signup"))
            .json(&serde_json::json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        signed_up["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn wait_until_up(&self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while client.get(self.url("/health")).send().await.is_err() {
            assert!(Instant::now() < deadline, "server did not come up in 60 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} failed");
    }

    /// Waits for the process to end, up to `limit`.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// SIGKILL: no drain, no clean-up, as a crash or an OOM kill would do.
    pub async fn kill_hard(&mut self) {
        self.signal("-KILL");
        let status = self.wait_exit(Duration::from_secs(10)).await;
        assert!(status.is_some(), "still running 10 s after SIGKILL");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A line on stderr that survives the test harness's capture, so the
/// numbers behind `docs/reliability.md` show in CI logs.
pub fn report(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "reliability: {line}");
}
