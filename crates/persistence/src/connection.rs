use std::fmt;
use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::postgres::PgConnectOptions;
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, SqlxPostgresConnector,
    SqlxSqliteConnector, TransactionTrait,
};

use crate::{Database, diagnosis};

/// How to reach the database and how large the pool may grow.
#[derive(Clone)]
pub struct DatabaseSettings {
    /// `postgres://…`, `postgresql://…` or `sqlite://…`. May hold a password.
    pub url: String,
    /// The most connections the pool keeps open at once.
    pub max_connections: u32,
    /// How long a query waits for a free connection (and the first
    /// connection may take to open) before giving up.
    pub acquire_timeout: Duration,
    /// The longest a statement may run. PostgreSQL cancels it at this
    /// point; on both engines the client itself gives up shortly after
    /// (see [`Database`]).
    pub statement_timeout: Duration,
}

impl fmt::Debug for DatabaseSettings {
    /// Leaves the URL out: it may carry a password, and settings get logged.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &"<redacted>")
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .finish()
    }
}

/// The database engines this crate supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL, the production database.
    Postgres,
    /// SQLite, for single-node deployments and tests without PostgreSQL.
    Sqlite,
}

/// What the planner of this service's PostgreSQL sessions charges for a
/// page read out of order, where PostgreSQL's default assumes a spinning
/// disk. Every hot statement here reads a few rows of one user through an
/// index, from a working set that stays in memory; under the default, the
/// planner chose a bitmap scan plus a sort over reading a big table's
/// `(user_id, created_at, id)` index in order (docs/performance.md). With
/// the sort indexes of the front-end model, a bitmap scan of the smallest
/// of them plus a sort again looked cheaper at 1.1, so a page read out of
/// order costs what one read in order does: the data is cached.
const RANDOM_PAGE_COST: &str = "1.0";

/// Adds the service's planner settings to the connection's start-up
/// options, unless the URL's own `options` already set them: an operator's
/// choice wins.
fn with_planner_costs(options: PgConnectOptions) -> PgConnectOptions {
    let set_by_operator = options
        .get_options()
        .is_some_and(|given| given.contains("random_page_cost"));
    if set_by_operator {
        options
    } else {
        options.options([("random_page_cost", RANDOM_PAGE_COST)])
    }
}

/// Why the database could not be opened or migrated.
///
/// No message here contains the URL, which may hold a password; the
/// sources are driver errors that name neither.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL names an engine this crate does not support.
    #[error("unsupported database URL: it must start with postgres://, postgresql:// or sqlite://")]
    UnsupportedUrl,
    /// The URL names a supported engine but cannot be parsed.
    #[error("malformed database URL")]
    InvalidUrl(#[source] sea_orm::sqlx::Error),
    /// TLS to PostgreSQL could not be set up: the server's certificate is
    /// not signed by a trusted CA or does not name the host, or the server
    /// does not offer TLS that `sslmode` demands.
    #[error(
        "could not connect to the database: TLS failed (the server's certificate is not trusted \
         or does not name the host, or the server offers no TLS); check sslmode and sslrootcert"
    )]
    Tls(#[source] DbErr),
    /// The server refused the user name or password (or has no access
    /// rule for this user and address).
    #[error(
        "could not connect to the database: authentication failed; check the user name and \
         password in DATABASE_URL"
    )]
    Authentication(#[source] DbErr),
    /// The server's host name does not resolve.
    #[error("could not connect to the database: its host name is unknown (the DNS lookup failed)")]
    HostUnknown(#[source] DbErr),
    /// Nothing listens at the host and port (retried until
    /// `acquire_timeout`).
    #[error(
        "could not connect to the database: connection refused; nothing listens at that host \
         and port"
    )]
    Refused(#[source] DbErr),
    /// The host cannot be reached, or the server did not complete a
    /// connection within `acquire_timeout`.
    #[error(
        "could not connect to the database: no answer from the server within \
         DATABASE_ACQUIRE_TIMEOUT (host unreachable, or a server that does not respond)"
    )]
    NoAnswer(#[source] DbErr),
    /// The server has no database of the name in the URL.
    #[error("could not connect to the database: the database named in DATABASE_URL does not exist")]
    DatabaseMissing(#[source] DbErr),
    /// Any other failure to open a connection.
    #[error("could not connect to the database")]
    Connect(#[source] DbErr),
    /// Applying the schema migrations failed.
    #[error("could not apply the database migrations")]
    Migrate(#[source] DbErr),
}

/// A SQLite busy writer is waited for this long before a statement fails.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection unused for this long is pinged before it is handed out:
/// the server or a firewall may have dropped it meanwhile. A busy one is
/// not; if it died, its statement fails, sqlx discards it, and the caller
/// gets an `Unavailable` error (a 503), as with any lost connection.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

/// Opens the database `settings.url` names.
///
/// # Errors
/// [`ConnectError::UnsupportedUrl`] for any scheme but `postgres://`,
/// `postgresql://` and `sqlite://`; [`ConnectError::InvalidUrl`] when the
/// driver cannot parse the rest; when no connection could be opened within
/// `acquire_timeout`, on PostgreSQL the variant that names the cause
/// ([`ConnectError::Tls`], [`ConnectError::Authentication`] and so on),
/// else [`ConnectError::Connect`].
pub async fn connect(settings: &DatabaseSettings) -> Result<Database, ConnectError> {
    let connection = open(settings, false).await?;
    Ok(Database::new(connection, settings.statement_timeout))
}

/// Like [`connect`], but no connection is opened until a statement needs
/// one. Each connection then belongs to the async runtime of the task that
/// opened it: a pool made this way on an actix worker keeps its
/// connections on that worker's thread, so a statement's answer is read by
/// the thread that waits for it. It reports no unreachable server; call it
/// once [`connect`] has shown the database answers.
///
/// # Errors
/// [`ConnectError::UnsupportedUrl`] or [`ConnectError::InvalidUrl`] only.
pub async fn connect_lazily(settings: &DatabaseSettings) -> Result<Database, ConnectError> {
    let connection = open(settings, true).await?;
    Ok(Database::new(connection, settings.statement_timeout))
}

async fn open(settings: &DatabaseSettings, lazy: bool) -> Result<DatabaseConnection, ConnectError> {
    let backend = backend_of_url(&settings.url).ok_or(ConnectError::UnsupportedUrl)?;
    let mut options = ConnectOptions::new(settings.url.clone());
    options
        .connect_lazy(lazy)
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        // PostgreSQL only: a start-up option of every connection, so the
        // server cancels a statement that runs longer (SQLSTATE 57014).
        // SeaORM adds it to the options before `with_planner_costs` runs,
        // and both are kept. It comes after any `options` of the URL, so
        // this setting wins over a `statement_timeout` given there.
        .statement_timeout(settings.statement_timeout)
        // sqlx pings every connection it hands out unless told otherwise:
        // a second round trip per query. Only one idle long enough to have
        // been dropped by the server or a firewall is checked first.
        .test_before_acquire_if_idle_for(IDLE_BEFORE_PING)
        // Statement logs would say nothing our spans do not, and at sqlx's
        // default level they would flood the service log.
        .sqlx_logging(false);

    // The URL is parsed here first, and the drivers' connectors are called
    // directly rather than through `sea_orm::Database::connect`, whose
    // errors quote the whole URL.
    match backend {
        Backend::Postgres => {
            // `sslmode` is left as the operator wrote it (or as the driver
            // defaults it): whether to demand TLS is a deployment decision.
            let parsed = settings
                .url
                .parse::<PgConnectOptions>()
                .map_err(ConnectError::InvalidUrl)?;
            options.map_sqlx_postgres_opts(with_planner_costs);
            // Unless asked to be lazy, an unreachable server is reported at
            // start-up, with the class of its cause.
            match SqlxPostgresConnector::connect(options).await {
                Ok(connection) => Ok(connection),
                Err(err) => Err(diagnosis::classify(err, &parsed).await),
            }
        }
        Backend::Sqlite => {
            settings
                .url
                .parse::<SqliteConnectOptions>()
                .map_err(ConnectError::InvalidUrl)?;
            options.map_sqlx_sqlite_opts(configure_sqlite);
            SqlxSqliteConnector::connect(options)
                .await
                .map_err(ConnectError::Connect)
        }
    }
}

/// WAL lets readers run beside the one writer, and the busy timeout makes
/// concurrent writers queue instead of failing with `SQLITE_BUSY`.
/// `synchronous = FULL` (not the WAL-usual `NORMAL`) because a change we
/// acknowledged to a client must survive a power cut. SQLite leaves foreign
/// keys off unless asked, and the task → user cascade depends on them.
fn configure_sqlite(options: SqliteConnectOptions) -> SqliteConnectOptions {
    options
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(SQLITE_BUSY_TIMEOUT)
        .foreign_keys(true)
        .create_if_missing(true)
}

/// The engine a database URL names, if this crate supports it.
#[must_use]
pub fn backend_of_url(url: &str) -> Option<Backend> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Some(Backend::Postgres)
    } else if url.starts_with("sqlite://") {
        Some(Backend::Sqlite)
    } else {
        None
    }
}

/// Identifies the schema-migration lock among PostgreSQL advisory locks;
/// any constant works as long as nothing else in the database uses it.
const MIGRATION_LOCK_KEY: i64 = 0x746f_646f_2d61_7069; // "todo-api"

/// Brings the schema up to date.
///
/// On PostgreSQL several instances may start at once against one
/// database; unguarded, both would create the tables and one would fail.
/// So the migrations run in one transaction that first takes a
/// transaction-scoped advisory lock: the second instance waits, then finds
/// nothing left to apply. (SQLite allows one writer anyway.)
///
/// Migrations are exempt from the statement timeout: rewriting a large
/// table may take minutes, and an instance that waits for another's
/// migrations waits on the lock for as long as they run.
///
/// # Errors
/// [`ConnectError::Migrate`] when a migration fails.
pub async fn migrate(db: &Database) -> Result<(), ConnectError> {
    let db = db.connection();
    match backend_of(db) {
        Backend::Postgres => {
            let transaction = db.begin().await.map_err(ConnectError::Migrate)?;
            transaction
                .execute_unprepared(&format!(
                    "SET LOCAL statement_timeout = 0; \
                     SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"
                ))
                .await
                .map_err(ConnectError::Migrate)?;
            Migrator::up(&transaction, None)
                .await
                .map_err(ConnectError::Migrate)?;
            transaction.commit().await.map_err(ConnectError::Migrate)
        }
        Backend::Sqlite => Migrator::up(db, None).await.map_err(ConnectError::Migrate),
    }
}

/// Whether the database answers a ping within the pool's acquire timeout
/// and the statement deadline.
pub async fn is_ready(db: &Database) -> bool {
    db.bounded(db.connection().ping()).await.is_ok()
}

/// The engine behind a connection.
///
/// # Panics
/// If `db` is disconnected or talks to an engine other than PostgreSQL or
/// SQLite. [`connect`] builds neither, so either means the composition root
/// wired in a connection made elsewhere; stopping at start-up (where the
/// repositories call this) beats writing timestamps in the wrong format.
#[must_use]
pub fn backend_of(db: &impl ConnectionTrait) -> Backend {
    match db.get_database_backend() {
        DbBackend::Postgres => Backend::Postgres,
        DbBackend::Sqlite => Backend::Sqlite,
        other => panic!("todo-persistence supports PostgreSQL and SQLite, not {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> DatabaseSettings {
        DatabaseSettings {
            url: url.to_owned(),
            max_connections: 1,
            acquire_timeout: Duration::from_millis(500),
            statement_timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn postgres_sessions_price_random_reads_for_cached_data() {
        let options = with_planner_costs("postgres://h/db".parse().unwrap());
        assert_eq!(options.get_options(), Some("-c random_page_cost=1.0"));
    }

    #[test]
    fn the_operators_planner_settings_win() {
        let given = "postgres://h/db?options=-c%20random_page_cost%3D2%20-c%20work_mem%3D8MB";
        let options = with_planner_costs(given.parse().unwrap());
        assert_eq!(
            options.get_options(),
            Some("-c random_page_cost=2 -c work_mem=8MB")
        );
    }

    #[test]
    fn other_start_up_options_are_kept_beside_ours() {
        let given = "postgres://h/db?options=-c%20work_mem%3D8MB";
        let options = with_planner_costs(given.parse().unwrap());
        assert_eq!(
            options.get_options(),
            Some("-c work_mem=8MB -c random_page_cost=1.0")
        );
    }

    #[test]
    fn the_three_supported_schemes_are_recognised() {
        assert_eq!(backend_of_url("postgres://h/db"), Some(Backend::Postgres));
        assert_eq!(backend_of_url("postgresql://h/db"), Some(Backend::Postgres));
        assert_eq!(backend_of_url("sqlite:///tmp/a.db"), Some(Backend::Sqlite));
    }

    #[test]
    fn other_schemes_are_not() {
        for url in [
            "mysql://h/db",
            "sqlite::memory:",
            "http://h",
            "",
            "postgres:/x",
        ] {
            assert_eq!(backend_of_url(url), None, "{url}");
        }
    }

    #[tokio::test]
    async fn an_unsupported_url_is_refused_without_quoting_it() {
        let err = connect(&settings("mysql://root:hunter2@db/app"))
            .await
            .unwrap_err();
        assert!(matches!(err, ConnectError::UnsupportedUrl));
        assert!(!error_chain(&err).contains("hunter2"));
    }

    #[tokio::test]
    async fn a_malformed_url_is_refused_without_quoting_it() {
        let err = connect(&settings("postgres://admin:hunter2@db:notaport/app"))
            .await
            .unwrap_err();
        assert!(matches!(err, ConnectError::InvalidUrl(_)), "{err:?}");
        assert!(!error_chain(&err).contains("hunter2"));
    }

    #[tokio::test]
    async fn a_refused_connection_does_not_quote_the_url() {
        // Port 1 on loopback: nothing listens, so the refusal is immediate.
        let err = connect(&settings(
            "postgres://admin:hunter2@127.0.0.1:1/app?sslmode=disable",
        ))
        .await
        .unwrap_err();
        assert!(matches!(err, ConnectError::Refused(_)), "{err:?}");
        assert!(!error_chain(&err).contains("hunter2"));
    }

    #[test]
    fn settings_debug_output_hides_the_url() {
        let shown = format!("{:?}", settings("postgres://admin:hunter2@db/app"));
        assert!(!shown.contains("hunter2"));
    }

    fn error_chain(err: &dyn std::error::Error) -> String {
        let mut text = format!("{err} / {err:?}");
        let mut source = err.source();
        while let Some(cause) = source {
            text.push_str(&format!(" / {cause} / {cause:?}"));
            source = cause.source();
        }
        text
    }
}
