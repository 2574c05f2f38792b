//! The PostgreSQL connections the repositories' statements run on.
//!
//! sqlx 0.9's own pool sends a Sync message and waits for PostgreSQL's
//! ReadyForQuery every time a connection goes back into it (a "ping on
//! release"), with no option to turn it off. For a one-statement request
//! that is a second round trip: under `GET /api/tasks/{id}` load it cost
//! PostgreSQL 34 µs of CPU per request instead of 21, and the server three
//! extra system calls. So statements on PostgreSQL run on raw sqlx
//! connections kept by deadpool, which checks a connection when it hands
//! it out, and only if it sat idle long enough to have gone stale.
//!
//! SeaORM still builds every statement: this module only carries a built
//! [`Statement`] to the server and the rows back, wrapped in the same
//! `DbErr`s SeaORM's own driver produces. The rows go back as SeaORM's
//! `QueryResult`s, or, for the hot reads, decoded by the caller's own
//! function ([`PostgresPool::query_all_decoded`], D39).

use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::{self, Metrics, Object, PoolError, RecycleResult};
use sea_orm::sea_query::Values;
use sea_orm::sqlx::postgres::{PgConnectOptions, PgConnection, PgRow};
use sea_orm::sqlx::{self, AssertSqlSafe, Connection};
use sea_orm::{ConnAcquireErr, DbErr, ExecResult, QueryResult, RuntimeErr, Statement};
use sea_query_sqlx::SqlxValues;

use crate::errors::connection_may_be_lost;
use crate::pool::PoolUsage;

/// A connection unused for this long is pinged before it is handed out,
/// by this pool and by SeaORM's alike: the server or a firewall may have
/// dropped it meanwhile. A busy one is not; if it died, its statement
/// fails, it is discarded, and the caller gets an `Unavailable` error (a
/// 503), as with any lost connection.
pub(crate) const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

/// Opens and checks connections for deadpool.
struct Connector {
    options: PgConnectOptions,
}

impl managed::Manager for Connector {
    type Type = PgConnection;
    type Error = sqlx::Error;

    // Both futures of sqlx are boxed: deadpool keeps these futures inside
    // the one it returns from every `get`, and inline they made that 10 KiB,
    // copied more than once per request.
    async fn create(&self) -> Result<PgConnection, sqlx::Error> {
        Box::pin(PgConnection::connect_with(&self.options)).await
    }

    async fn recycle(
        &self,
        connection: &mut PgConnection,
        metrics: &Metrics,
    ) -> RecycleResult<sqlx::Error> {
        if metrics.last_used() >= IDLE_BEFORE_PING {
            Box::pin(connection.ping()).await?;
        }
        Ok(())
    }
}

/// A pool of PostgreSQL connections that costs one round trip per
/// statement.
#[derive(Clone)]
pub(crate) struct PostgresPool {
    pool: managed::Pool<Connector>,
    acquire_timeout: Duration,
}

impl PostgresPool {
    /// A pool of at most `max_connections`, opened lazily; a caller waits
    /// at most `acquire_timeout` in all for a connection, whether it waits
    /// for a free one, checks an idle one or opens a new one.
    pub(crate) fn new(
        options: PgConnectOptions,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Self, DbErr> {
        // No per-step timeouts: `connection` puts one deadline over the
        // whole of taking a connection.
        let pool = managed::Pool::builder(Connector { options })
            .max_size(usize::try_from(max_connections).unwrap_or(usize::MAX))
            .build()
            .map_err(|err| DbErr::Conn(RuntimeErr::Internal(err.to_string())))?;
        Ok(Self {
            pool,
            acquire_timeout,
        })
    }

    pub(crate) async fn query_all(&self, statement: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let rows = self.rows(statement).await?;
        Ok(rows.into_iter().map(QueryResult::from).collect())
    }

    /// The rows of `statement`, each turned into a `T` by `decode` straight
    /// from sqlx's row rather than through SeaORM's `QueryResult`.
    pub(crate) async fn query_all_decoded<T>(
        &self,
        statement: Statement,
        decode: fn(&PgRow) -> Result<T, sqlx::Error>,
    ) -> Result<Vec<T>, DbErr> {
        let rows = self.rows(statement).await?;
        rows.iter()
            .map(decode)
            .collect::<Result<_, _>>()
            .map_err(query_error)
    }

    /// The first row of `statement`. SeaORM's `one` puts `LIMIT 1` in the
    /// SQL itself, so this fetches no more than it keeps.
    pub(crate) async fn query_one(
        &self,
        statement: Statement,
    ) -> Result<Option<QueryResult>, DbErr> {
        let rows = self.rows(statement).await?;
        Ok(rows.into_iter().next().map(QueryResult::from))
    }

    pub(crate) async fn execute(&self, statement: Statement) -> Result<ExecResult, DbErr> {
        let mut connection = self.connection().await?;
        let (sql, values) = parts(statement);
        let done = query(&sql, values).execute(&mut *connection).await;
        let done = keep_if_sound(connection, done).map_err(exec_error)?;
        Ok(ExecResult::from(done))
    }

    pub(crate) async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        let mut connection = self.connection().await?;
        let done = sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
            .execute(&mut *connection)
            .await;
        let done = keep_if_sound(connection, done).map_err(exec_error)?;
        Ok(ExecResult::from(done))
    }

    /// Every row `statement` returns, on a pooled connection.
    async fn rows(&self, statement: Statement) -> Result<Vec<PgRow>, DbErr> {
        let mut connection = self.connection().await?;
        let (sql, values) = parts(statement);
        let rows = query(&sql, values).fetch_all(&mut *connection).await;
        keep_if_sound(connection, rows).map_err(query_error)
    }

    /// Whether a connection can be had and answers.
    pub(crate) async fn ping(&self) -> Result<(), DbErr> {
        let mut connection = self.connection().await?;
        let answered = connection.ping().await;
        keep_if_sound(connection, answered).map_err(|err| DbErr::Conn(sqlx_runtime(err)))
    }

    pub(crate) fn usage(&self) -> PoolUsage {
        let status = self.pool.status();
        PoolUsage {
            open: u32::try_from(status.size).unwrap_or(u32::MAX),
            idle: u32::try_from(status.available).unwrap_or(u32::MAX),
            max: u32::try_from(status.max_size).unwrap_or(u32::MAX),
        }
    }

    /// Refuses every later request for a connection; open ones close as
    /// they come back.
    pub(crate) fn close(&self) {
        self.pool.close();
    }

    async fn connection(&self) -> Result<Object<Connector>, DbErr> {
        // deadpool can bound each step of a `get` (waiting for a slot,
        // checking an idle connection, opening one) by its own timeout, but
        // when the check of an idle connection fails it goes on to the next
        // idle one, and the next: when the database falls silent, so that
        // pings hang rather than fail, each idle connection added a whole
        // timeout (6 s for 5 idle connections and a 1 s timeout, in the
        // api suite's silent-database test). One deadline over the whole
        // keeps the wait within DATABASE_ACQUIRE_TIMEOUT. Dropping
        // deadpool's future at the deadline frees its slot, and closes a
        // connection it was in the middle of checking.
        let got = tokio::time::timeout(self.acquire_timeout, self.pool.get())
            .await
            .map_err(|_elapsed| DbErr::ConnectionAcquire(ConnAcquireErr::Timeout))?;
        got.map_err(|err| match err {
            PoolError::Timeout(_) => DbErr::ConnectionAcquire(ConnAcquireErr::Timeout),
            PoolError::Closed => DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed),
            PoolError::Backend(cause) => DbErr::Conn(sqlx_runtime(cause)),
            other => DbErr::Conn(RuntimeErr::Internal(other.to_string())),
        })
    }
}

fn parts(statement: Statement) -> (String, Values) {
    (
        statement.sql,
        statement.values.unwrap_or(Values(Vec::new())),
    )
}

/// A statement SeaORM built, as a sqlx query with the same bound values:
/// what SeaORM's own driver sends.
fn query(sql: &str, values: Values) -> sqlx::query::Query<'_, sqlx::Postgres, SqlxValues> {
    sqlx::query_with(AssertSqlSafe(sql), SqlxValues(values))
}

/// Gives the connection back to the pool unless the statement failed in a
/// way that may have left it unusable, in which case it is closed.
fn keep_if_sound<T>(
    connection: Object<Connector>,
    outcome: Result<T, sqlx::Error>,
) -> Result<T, sqlx::Error> {
    if let Err(err) = &outcome
        && connection_may_be_lost(err)
    {
        drop(Object::take(connection));
    }
    outcome
}

fn sqlx_runtime(err: sqlx::Error) -> RuntimeErr {
    RuntimeErr::SqlxError(Arc::new(err))
}

fn query_error(err: sqlx::Error) -> DbErr {
    DbErr::Query(sqlx_runtime(err))
}

fn exec_error(err: sqlx::Error) -> DbErr {
    DbErr::Exec(sqlx_runtime(err))
}
