//! The database handle the repositories, the readiness probe and the
//! metrics share.

use std::fmt;

use async_trait::async_trait;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, ExecResult, QueryResult, Statement,
};

use crate::postgres_pool::PostgresPool;

/// An open database: SeaORM's connection and, on PostgreSQL, the pool the
/// repositories' statements run on (see [`crate::postgres_pool`] for why
/// that is not SeaORM's own).
///
/// It is a SeaORM [`ConnectionTrait`], so every query the repositories
/// build runs on it unchanged. SeaORM's connection remains for what needs
/// SeaORM's own types: migrations and transactions.
#[derive(Clone)]
pub struct Database {
    sea_orm: DatabaseConnection,
    /// `Some` on PostgreSQL.
    postgres: Option<PostgresPool>,
}

impl Database {
    pub(crate) fn new(sea_orm: DatabaseConnection, postgres: Option<PostgresPool>) -> Self {
        Self { sea_orm, postgres }
    }

    /// SeaORM's connection, for migrations and transactions.
    #[must_use]
    pub fn sea_orm(&self) -> &DatabaseConnection {
        &self.sea_orm
    }

    pub(crate) fn postgres_pool(&self) -> Option<&PostgresPool> {
        self.postgres.as_ref()
    }

    /// Whether the database answers.
    pub(crate) async fn ping(&self) -> Result<(), DbErr> {
        match &self.postgres {
            Some(pool) => pool.ping().await,
            None => self.sea_orm.ping().await,
        }
    }

    /// Closes every pool: later statements fail as `Unavailable`.
    ///
    /// # Errors
    /// When SeaORM's pool reports a failure closing.
    pub async fn close(&self) -> Result<(), DbErr> {
        if let Some(pool) = &self.postgres {
            pool.close();
        }
        self.sea_orm.close_by_ref().await
    }
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("backend", &self.get_database_backend())
            .field("usage", &crate::pool_usage(self))
            .finish()
    }
}

#[async_trait]
impl ConnectionTrait for Database {
    fn get_database_backend(&self) -> DbBackend {
        self.sea_orm.get_database_backend()
    }

    async fn execute_raw(&self, statement: Statement) -> Result<ExecResult, DbErr> {
        match &self.postgres {
            Some(pool) => pool.execute(statement).await,
            None => self.sea_orm.execute_raw(statement).await,
        }
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        match &self.postgres {
            Some(pool) => pool.execute_unprepared(sql).await,
            None => self.sea_orm.execute_unprepared(sql).await,
        }
    }

    async fn query_one_raw(&self, statement: Statement) -> Result<Option<QueryResult>, DbErr> {
        match &self.postgres {
            Some(pool) => pool.query_one(statement).await,
            None => self.sea_orm.query_one_raw(statement).await,
        }
    }

    async fn query_all_raw(&self, statement: Statement) -> Result<Vec<QueryResult>, DbErr> {
        match &self.postgres {
            Some(pool) => pool.query_all(statement).await,
            None => self.sea_orm.query_all_raw(statement).await,
        }
    }
}
