//! The handle every repository statement runs through: SeaORM's own pool,
//! with a deadline the client keeps by itself.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, ExecResult, QueryResult, RuntimeErr,
    Statement,
};
use todo_domain::DomainError;

use crate::errors::domain_error;

/// How much longer than the statement timeout the client waits before it
/// gives up on its own. A server that is alive cancels the statement at the
/// timeout and says so; this margin lets that answer arrive first, so the
/// client-side deadline only fires when the server (or the network to it)
/// has fallen silent.
const CLIENT_MARGIN: Duration = Duration::from_millis(500);

/// An open database: SeaORM's connection pool, and the longest any one
/// database call may take as seen from this process.
///
/// It is a SeaORM [`ConnectionTrait`], so the repositories' queries run on
/// it unchanged, each bounded by the deadline. PostgreSQL cancels a
/// statement itself at `statement_timeout`, but a server or network that
/// stops answering cannot cancel anything, and sqlx has no per-statement
/// timeout of its own: without this bound such a statement would hold its
/// request and its connection until the kernel gives up on the socket.
#[derive(Debug, Clone)]
pub struct Database {
    connection: DatabaseConnection,
    deadline: Duration,
}

impl Database {
    pub(crate) fn new(connection: DatabaseConnection, statement_timeout: Duration) -> Self {
        Self {
            connection,
            deadline: statement_timeout + CLIENT_MARGIN,
        }
    }

    /// SeaORM's connection itself, without the deadline: for migrations,
    /// which may legitimately run long, and for tests.
    #[must_use]
    pub fn connection(&self) -> &DatabaseConnection {
        &self.connection
    }

    /// The longest one call through this handle may take: the statement
    /// timeout plus a small margin. The wait for a pooled connection counts
    /// against it too.
    #[must_use]
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Closes the pool: later statements fail as unavailable.
    ///
    /// # Errors
    /// When the pool reports a failure closing.
    pub async fn close(&self) -> Result<(), DbErr> {
        self.connection.close_by_ref().await
    }

    /// Runs `work` (one statement, or a whole transaction) under the
    /// deadline. When it passes, `work` is dropped: sqlx then checks the
    /// connection before it goes back to the pool and discards it if the
    /// server does not answer.
    pub(crate) async fn bounded<T, E: From<DbErr>>(
        &self,
        work: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        match tokio::time::timeout(self.deadline, work).await {
            Ok(outcome) => outcome,
            Err(_) => Err(E::from(deadline_passed(self.deadline))),
        }
    }

    /// As [`Database::bounded`], for work that already answers in the
    /// domain's terms: a whole transaction, whose statements run on the
    /// transaction rather than through this handle.
    pub(crate) async fn bounded_domain<T>(
        &self,
        work: impl Future<Output = Result<T, DomainError>>,
    ) -> Result<T, DomainError> {
        match tokio::time::timeout(self.deadline, work).await {
            Ok(outcome) => outcome,
            Err(_) => Err(domain_error(deadline_passed(self.deadline))),
        }
    }
}

/// A connection error, which the error translation reports as unavailable
/// (a 503): the database did not answer in time.
fn deadline_passed(deadline: Duration) -> DbErr {
    DbErr::Conn(RuntimeErr::Internal(format!(
        "the database did not answer within {} ms",
        deadline.as_millis()
    )))
}

#[async_trait]
impl ConnectionTrait for Database {
    fn get_database_backend(&self) -> DbBackend {
        self.connection.get_database_backend()
    }

    async fn execute_raw(&self, statement: Statement) -> Result<ExecResult, DbErr> {
        self.bounded(self.connection.execute_raw(statement)).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.bounded(self.connection.execute_unprepared(sql)).await
    }

    async fn query_one_raw(&self, statement: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.bounded(self.connection.query_one_raw(statement)).await
    }

    async fn query_all_raw(&self, statement: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.bounded(self.connection.query_all_raw(statement)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database(statement_timeout: Duration) -> Database {
        Database::new(DatabaseConnection::default(), statement_timeout)
    }

    #[test]
    fn the_deadline_leaves_the_server_time_to_cancel_first() {
        let deadline = database(Duration::from_secs(5)).deadline();
        assert!(deadline > Duration::from_secs(5), "{deadline:?}");
        assert!(deadline <= Duration::from_secs(6), "{deadline:?}");
    }

    // A zero statement timeout leaves only the margin, so these run fast.

    #[tokio::test]
    async fn work_past_the_deadline_fails_as_a_connection_error() {
        let db = database(Duration::ZERO);
        let started = std::time::Instant::now();
        let outcome: Result<(), DbErr> = db.bounded(std::future::pending()).await;
        assert!(matches!(outcome, Err(DbErr::Conn(_))), "{outcome:?}");
        assert!(started.elapsed() >= db.deadline());
    }

    #[tokio::test]
    async fn work_within_the_deadline_keeps_its_outcome() {
        let db = database(Duration::ZERO);
        let outcome: Result<u8, DbErr> = db
            .bounded(async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(7)
            })
            .await;
        assert_eq!(outcome.unwrap(), 7);
    }
}
