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

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use deadpool::managed::{self, Metrics, Object, PoolError, RecycleResult, TimeoutType, Timeouts};
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
    groups: Arc<Groups>,
    acquire_timeout: Duration,
}

impl PostgresPool {
    /// A pool of at most `max_connections` in all, opened lazily, kept in
    /// one group per thread of the `threads` that will run statements (see
    /// [`Groups`]). A caller waits at most `acquire_timeout` in all for a
    /// connection, whether it waits for a free one, checks an idle one or
    /// opens a new one.
    pub(crate) fn new(
        options: PgConnectOptions,
        max_connections: u32,
        threads: usize,
        acquire_timeout: Duration,
    ) -> Result<Self, DbErr> {
        Ok(Self {
            groups: Arc::new(Groups::new(options, max_connections, threads)?),
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
        let mut usage = PoolUsage {
            open: 0,
            idle: 0,
            max: 0,
        };
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        for group in &self.groups.pools {
            let status = group.status();
            usage.open = usage.open.saturating_add(count(status.size));
            usage.idle = usage.idle.saturating_add(count(status.available));
            usage.max = usage.max.saturating_add(count(status.max_size));
        }
        usage
    }

    /// Refuses every later request for a connection; open ones close as
    /// they come back.
    pub(crate) fn close(&self) {
        for group in &self.groups.pools {
            group.close();
        }
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
        let got = tokio::time::timeout(self.acquire_timeout, self.groups.get())
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

/// The pool's connections, in one deadpool per thread that runs
/// statements.
///
/// actix-web runs each worker on a tokio runtime of its own, and a socket
/// belongs to the runtime of the thread that opened it: that runtime's
/// reactor learns when its data arrives. With one pool for all workers, a
/// worker often took a connection another worker had opened, and each
/// answer from PostgreSQL then had to wake the other worker's thread, which
/// woke this one. So a thread takes from its own group first, where every
/// connection is one it opened; only when its group has none to spare does
/// it take one from another group, and only when every group is in use
/// does it wait, in its own.
struct Groups {
    /// Tells pools apart in each thread's memory of its group.
    id: usize,
    pools: Box<[managed::Pool<Connector>]>,
    /// Hands out groups to threads in turn.
    next_group: AtomicUsize,
}

/// Numbers pools for [`HOME_GROUP`]; 0 means none.
static NEXT_POOL_ID: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    /// The pool this thread used last, and its group in that pool. One
    /// pool serves the whole process outside tests, so one entry suffices;
    /// a thread that moves between pools is simply given a group again.
    static HOME_GROUP: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

/// deadpool's non-blocking `get`: no wait for a slot. deadpool treats a
/// zero wait as "try once", so it needs no timer of its own.
const NO_WAIT: Timeouts = Timeouts {
    wait: Some(Duration::ZERO),
    create: None,
    recycle: None,
};

impl Groups {
    fn new(options: PgConnectOptions, max_connections: u32, threads: usize) -> Result<Self, DbErr> {
        let max_connections = usize::try_from(max_connections).unwrap_or(usize::MAX);
        // Every group holds at least one connection, and together they hold
        // `max_connections`, the first groups one more than the rest when
        // it does not divide evenly.
        let count = threads.clamp(1, max_connections.max(1));
        let pools = (0..count)
            .map(|index| {
                let size = max_connections / count + usize::from(index < max_connections % count);
                // No per-step timeouts: `PostgresPool::connection` puts one
                // deadline over the whole of taking a connection.
                managed::Pool::builder(Connector {
                    options: options.clone(),
                })
                .max_size(size.max(1))
                .build()
                .map_err(|err| DbErr::Conn(RuntimeErr::Internal(err.to_string())))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            id: NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed),
            pools,
            next_group: AtomicUsize::new(0),
        })
    }

    /// The group of the calling thread, given on its first use.
    fn home(&self) -> usize {
        HOME_GROUP.with(|home| {
            let (pool, group) = home.get();
            if pool == self.id {
                group
            } else {
                let group = self.next_group.fetch_add(1, Ordering::Relaxed) % self.pools.len();
                home.set((self.id, group));
                group
            }
        })
    }

    async fn get(&self) -> Result<Object<Connector>, PoolError<sqlx::Error>> {
        let home = self.home();
        // The home group first, then every other group's slot, idle or not
        // yet opened: the pool's whole size stays usable when one thread
        // has more to do than the rest.
        let count = self.pools.len();
        for group in (0..count).map(|offset| &self.pools[(home + offset) % count]) {
            match group.timeout_get(&NO_WAIT).await {
                Err(PoolError::Timeout(TimeoutType::Wait)) => {}
                got => return got,
            }
        }
        self.pools[home].get().await
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

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(max_connections: u32, threads: usize) -> Groups {
        // The pools open connections lazily: nothing here connects.
        Groups::new(PgConnectOptions::new(), max_connections, threads).unwrap()
    }

    fn sizes(groups: &Groups) -> Vec<usize> {
        groups
            .pools
            .iter()
            .map(|pool| pool.status().max_size)
            .collect()
    }

    #[test]
    fn the_groups_share_out_exactly_the_maximum() {
        assert_eq!(sizes(&groups(32, 2)), [16, 16]);
        assert_eq!(sizes(&groups(10, 3)), [4, 3, 3]);
        assert_eq!(sizes(&groups(5, 2)), [3, 2]);
    }

    #[test]
    fn there_are_never_more_groups_than_connections_nor_none() {
        assert_eq!(sizes(&groups(1, 4)), [1]);
        assert_eq!(sizes(&groups(3, 0)), [3]);
    }

    #[test]
    fn each_thread_keeps_one_group_and_threads_take_turns() {
        let pool = groups(4, 2);
        let homes_of_a_thread = || {
            std::thread::scope(|scope| {
                scope
                    .spawn(|| [pool.home(), pool.home(), pool.home()])
                    .join()
                    .unwrap()
            })
        };
        assert_eq!(homes_of_a_thread(), [0, 0, 0]);
        assert_eq!(homes_of_a_thread(), [1, 1, 1]);
        assert_eq!(homes_of_a_thread(), [0, 0, 0]);
    }
}
