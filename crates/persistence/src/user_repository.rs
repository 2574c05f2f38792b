use async_trait::async_trait;
use sea_orm::prelude::Uuid;
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, SqlErr, Value};
use todo_domain::ports::UserRepository;
use todo_domain::{DomainError, Email, NewUser, Timestamp, User, UserCredentials, UserId};

use crate::conversions::credentials;
use crate::entities::users;
use crate::errors::{domain_error, unbuildable};
use crate::timestamps::timestamp_value;
use crate::{Backend, Database, backend_of};

/// User accounts in the `users` table, on PostgreSQL or SQLite.
#[derive(Debug, Clone)]
pub struct SeaUserRepository {
    db: Database,
    backend: Backend,
}

impl SeaUserRepository {
    /// Wraps a pool opened by [`crate::connect`].
    ///
    /// # Panics
    /// As [`backend_of`] does, for a connection to neither PostgreSQL nor
    /// SQLite.
    #[must_use]
    pub fn new(db: Database) -> Self {
        let backend = backend_of(&db);
        Self { db, backend }
    }

    fn timestamp(&self, at: Timestamp) -> Value {
        timestamp_value(self.backend, at)
    }
}

#[async_trait]
impl UserRepository for SeaUserRepository {
    #[tracing::instrument(skip_all, fields(user_id = %user.id))]
    async fn insert(&self, user: &NewUser) -> Result<User, DomainError> {
        let mut insert = Query::insert();
        insert
            .into_table(users::Entity)
            .columns([
                users::Column::Id,
                users::Column::Email,
                users::Column::PasswordHash,
                users::Column::CreatedAt,
            ])
            .values([
                Expr::val(user.id.as_uuid()),
                Expr::val(user.email.as_str()),
                Expr::val(user.password_hash.as_str()),
                Expr::val(self.timestamp(user.created_at)),
            ])
            .map_err(unbuildable)?;
        match self.db.execute(&insert).await {
            Ok(_) => Ok(User {
                id: user.id,
                email: user.email.clone(),
                created_at: user.created_at,
                last_signin_at: None,
            }),
            // The other unique key is the id, a fresh UUIDv7 that does not
            // collide, so a violation means the email is taken by another
            // password account. Only the index can tell: racing sign-ups
            // both pass any earlier check.
            Err(err) if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                Err(DomainError::EmailTaken)
            }
            Err(err) => Err(domain_error(err)),
        }
    }

    #[tracing::instrument(skip_all)]
    async fn find_credentials(
        &self,
        email: &Email,
    ) -> Result<Option<UserCredentials>, DomainError> {
        let row = users::Entity::find()
            .select_only()
            .columns([users::Column::Id, users::Column::PasswordHash])
            .filter(users::Column::Email.eq(email.as_str()))
            // Users of an external identity may share the address and have
            // no hash; at most one password account has it (the partial
            // unique index).
            .filter(users::Column::PasswordHash.is_not_null())
            .into_tuple::<(Uuid, String)>()
            .one(&self.db)
            .await
            .map_err(domain_error)?;
        Ok(row.map(credentials))
    }

    #[tracing::instrument(skip_all, fields(user_id = %id))]
    async fn record_sign_in(&self, id: UserId, at: Timestamp) -> Result<User, DomainError> {
        // Like a task's `updated_at`, the last sign-in never moves
        // backwards when two sign-ins race.
        let at = self.timestamp(at);
        let later_of_stored_and_at = Expr::case(
            Expr::col(users::Column::LastSigninAt)
                .is_null()
                .or(Expr::col(users::Column::LastSigninAt).lt(at.clone())),
            at,
        )
        .finally(Expr::col(users::Column::LastSigninAt));
        let rows = users::Entity::update_many()
            .col_expr(users::Column::LastSigninAt, later_of_stored_and_at.into())
            .filter(users::Column::Id.eq(id.as_uuid()))
            .exec_with_returning(&self.db)
            .await
            .map_err(domain_error)?;
        match rows.into_iter().next() {
            Some(row) => Ok(User::try_from(row)?),
            None => Err(DomainError::UserNotFound),
        }
    }

    #[tracing::instrument(skip_all, fields(user_id = %id))]
    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, DomainError> {
        let row = users::Entity::find_by_id(id.as_uuid())
            .one(&self.db)
            .await
            .map_err(domain_error)?;
        Ok(row.map(User::try_from).transpose()?)
    }
}
