//! Throwaway databases for tests (feature `test-support`), shared by this
//! crate's suite and the api's.
//!
//! Each [`TestDatabase`] is empty and unmigrated, belongs to one test, and
//! is deleted when the guard drops, so tests can run in parallel without
//! seeing each other's rows.

use std::fmt;
use std::io::Write as _;
use std::sync::Once;
use std::time::Duration;

use sea_orm::sqlx::postgres::{PgConnectOptions, PgConnection};
use sea_orm::sqlx::{AssertSqlSafe, ConnectOptions, Connection, Executor};
use tempfile::TempDir;

use crate::Backend;

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable";
/// Long enough for a loaded CI machine, short enough that a firewall that
/// drops packets does not hang the suite.
const ADMIN_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A database that exists for one test.
///
/// PostgreSQL: a fresh `test_<uuid>` database on the server named by
/// `TEST_DATABASE_URL` (default: the local `postgres` superuser), dropped
/// with `WITH (FORCE)` when the guard drops. SQLite: a file in a temporary
/// directory, removed with it.
pub struct TestDatabase {
    url: String,
    backend: Backend,
    cleanup: Cleanup,
}

enum Cleanup {
    Postgres {
        admin: Box<PgConnectOptions>,
        name: String,
    },
    Sqlite {
        /// Only held: dropping the directory deletes the database file.
        _directory: TempDir,
    },
}

impl TestDatabase {
    /// A new, empty PostgreSQL database.
    ///
    /// # Panics
    /// When PostgreSQL cannot be reached or refuses `CREATE DATABASE`.
    pub async fn postgres() -> TestDatabase {
        match try_postgres().await {
            Ok(database) => database,
            Err(reason) => panic!(
                "TestDatabase::postgres(): {reason}. Start PostgreSQL, or point \
                 TEST_DATABASE_URL at a server where this user may CREATE DATABASE."
            ),
        }
    }

    /// A new, empty SQLite database file in a temporary directory.
    ///
    /// # Panics
    /// When the temporary directory cannot be created.
    pub async fn sqlite() -> TestDatabase {
        let directory = tempfile::Builder::new()
            .prefix("todo-api-test-")
            .tempdir()
            .unwrap_or_else(|err| panic!("TestDatabase::sqlite(): no temporary directory: {err}"));
        let path = directory.path().join("todo.db");
        TestDatabase {
            url: format!("sqlite://{}?mode=rwc", path.display()),
            backend: Backend::Sqlite,
            cleanup: Cleanup::Sqlite {
                _directory: directory,
            },
        }
    }

    /// PostgreSQL when it is reachable. Otherwise SQLite, with a note on
    /// stderr, except in CI (`CI=true`) or when `TEST_DATABASE_URL` is set:
    /// there a missing PostgreSQL is a broken set-up, and a suite that
    /// quietly ran on the other engine would hide it.
    ///
    /// # Panics
    /// When PostgreSQL is required but unreachable, or refuses
    /// `CREATE DATABASE`.
    pub async fn preferred() -> TestDatabase {
        // CI runs the api suite a second time with this set, so every
        // contract test also holds on the embedded default.
        if std::env::var("TEST_DATABASE_BACKEND").is_ok_and(|value| value == "sqlite") {
            return TestDatabase::sqlite().await;
        }
        match try_postgres().await {
            Ok(database) => database,
            Err(reason @ NoTestDatabase::Unreachable(_)) if !postgres_required() => {
                static NOTE: Once = Once::new();
                NOTE.call_once(|| {
                    // Written to the stderr handle, not with eprintln!, which
                    // the test harness captures and hides for passing tests.
                    let _ = writeln!(
                        std::io::stderr(),
                        "note: these tests ran on SQLite because PostgreSQL was not \
                         reachable ({reason}); set TEST_DATABASE_URL or start PostgreSQL \
                         to test against it"
                    );
                });
                TestDatabase::sqlite().await
            }
            Err(reason) => panic!(
                "TestDatabase::preferred(): {reason}. PostgreSQL is required when CI=true or \
                 TEST_DATABASE_URL is set, and a reachable server that refuses to create a \
                 database is never skipped."
            ),
        }
    }

    /// The URL to hand to [`crate::connect`].
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Which engine this database runs on.
    #[must_use]
    pub fn backend(&self) -> Backend {
        self.backend
    }
}

impl fmt::Debug for TestDatabase {
    /// Leaves the URL out: built from `TEST_DATABASE_URL`, it may carry a
    /// password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestDatabase")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Cleanup::Postgres { admin, name } = &self.cleanup else {
            return;
        };
        // Drop cannot await, and the test's runtime may be shutting down, so
        // the DROP runs on its own thread with its own runtime. Joining it
        // keeps the test from finishing (and the process from exiting)
        // before its database is gone.
        let admin = admin.clone();
        // FORCE ends the test's own pooled connections first.
        let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|err| err.to_string())?;
            runtime.block_on(async {
                let mut connection = admin_connection(&admin).await?;
                connection
                    .execute(AssertSqlSafe(sql))
                    .await
                    .map_err(|err| err.to_string())?;
                connection.close().await.map_err(|err| err.to_string())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => eprintln!("warning: test database {name} was not dropped: {reason}"),
            Err(_) => {
                eprintln!("warning: test database {name} was not dropped: the thread panicked")
            }
        }
    }
}

/// Why no PostgreSQL test database could be made.
#[derive(Debug, thiserror::Error)]
enum NoTestDatabase {
    /// No connection to the server: the only case `preferred` may fall back on.
    #[error("cannot connect to PostgreSQL: {0}")]
    Unreachable(String),
    /// Connected, but the database could not be created: a real fault.
    #[error("connected to PostgreSQL but could not create a test database: {0}")]
    NotCreated(String),
}

async fn try_postgres() -> Result<TestDatabase, NoTestDatabase> {
    let admin = admin_options().map_err(NoTestDatabase::Unreachable)?;
    let mut connection = admin_connection(&admin)
        .await
        .map_err(NoTestDatabase::Unreachable)?;
    // The name comes from a UUID, never from input, so it is safe to splice.
    let name = format!("test_{}", uuid::Uuid::now_v7().simple());
    connection
        .execute(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .await
        .map_err(|err| NoTestDatabase::NotCreated(err.to_string()))?;
    // Closing is a courtesy: the database exists whether or not it succeeds.
    let _ = connection.close().await;
    let url = admin.clone().database(&name).to_url_lossy().to_string();
    Ok(TestDatabase {
        url,
        backend: Backend::Postgres,
        cleanup: Cleanup::Postgres {
            admin: Box::new(admin),
            name,
        },
    })
}

/// The admin URL is parsed here, never printed: in CI it may hold a password.
fn admin_options() -> Result<PgConnectOptions, String> {
    let url = std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned());
    url.parse::<PgConnectOptions>()
        .map_err(|err| format!("TEST_DATABASE_URL is not a PostgreSQL URL ({err})"))
}

async fn admin_connection(admin: &PgConnectOptions) -> Result<PgConnection, String> {
    let admin = admin.clone().disable_statement_logging();
    match tokio::time::timeout(ADMIN_CONNECT_TIMEOUT, PgConnection::connect_with(&admin)).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err(format!("no answer within {ADMIN_CONNECT_TIMEOUT:?}")),
    }
}

fn postgres_required() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true")
        || std::env::var_os("TEST_DATABASE_URL").is_some()
}
