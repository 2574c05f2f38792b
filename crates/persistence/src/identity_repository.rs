use async_trait::async_trait;
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, SqlErr, TransactionTrait,
};
use todo_domain::ports::IdentityRepository;
use todo_domain::{
    DomainError, Email, ExternalIdentity, NewExternalUser, Provisioned, User, UserId,
};

use crate::entities::{user_identities, users};
use crate::errors::{domain_error, unbuildable};
use crate::timestamps::timestamp_value;
use crate::{Backend, Database, backend_of};

/// Links from external identities to users, in `user_identities`, on
/// PostgreSQL or SQLite.
#[derive(Debug, Clone)]
pub struct SeaIdentityRepository {
    db: Database,
    backend: Backend,
}

impl SeaIdentityRepository {
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
}

/// What inserting the user and the link ran into.
enum InsertFailure {
    /// The identity's primary key is taken: another request linked it.
    Linked,
    Database(DbErr),
}

impl From<DbErr> for InsertFailure {
    fn from(err: DbErr) -> Self {
        Self::Database(err)
    }
}

#[async_trait]
impl IdentityRepository for SeaIdentityRepository {
    #[tracing::instrument(skip_all, fields(issuer = identity.issuer()))]
    async fn find_user(&self, identity: &ExternalIdentity) -> Result<Option<User>, DomainError> {
        // One statement: the user whose id the link names.
        let linked_id = Query::select()
            .column(user_identities::Column::UserId)
            .from(user_identities::Entity)
            .and_where(user_identities::Column::Issuer.eq(identity.issuer()))
            .and_where(user_identities::Column::Subject.eq(identity.subject()))
            .to_owned();
        let row = users::Entity::find()
            .filter(users::Column::Id.in_subquery(linked_id))
            .one(&self.db)
            .await
            .map_err(domain_error)?;
        Ok(row.map(User::try_from).transpose()?)
    }

    #[tracing::instrument(skip_all, fields(user_id = %user.id, issuer = user.identity.issuer()))]
    async fn insert_linked_user(&self, user: &NewExternalUser) -> Result<Provisioned, DomainError> {
        let created_at = timestamp_value(self.backend, user.created_at);
        let mut insert_user = Query::insert();
        insert_user
            .into_table(users::Entity)
            // No password hash: the column stays NULL, so the partial
            // unique index on email does not apply and sign-in never finds
            // this user.
            .columns([
                users::Column::Id,
                users::Column::Email,
                users::Column::CreatedAt,
            ])
            .values([
                Expr::val(user.id.as_uuid()),
                Expr::val(user.email.as_str()),
                Expr::val(created_at.clone()),
            ])
            .map_err(unbuildable)?;
        let mut insert_link = Query::insert();
        insert_link
            .into_table(user_identities::Entity)
            .columns([
                user_identities::Column::Issuer,
                user_identities::Column::Subject,
                user_identities::Column::UserId,
                user_identities::Column::CreatedAt,
            ])
            .values([
                Expr::val(user.identity.issuer()),
                Expr::val(user.identity.subject()),
                Expr::val(user.id.as_uuid()),
                Expr::val(created_at),
            ])
            .map_err(unbuildable)?;

        // The user goes first (the link references it). A racing request
        // that inserted the same identity makes the second insert wait for
        // it and then fail on the primary key; the rollback takes our user
        // row back with it, so exactly one user exists per identity. The
        // whole transaction shares one deadline; if it passes, dropping
        // the transaction rolls it back.
        let transaction_work = async {
            let transaction = self.db.connection().begin().await?;
            transaction.execute(&insert_user).await?;
            match transaction.execute(&insert_link).await {
                Ok(_) => {}
                Err(err) if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                    transaction.rollback().await?;
                    return Err(InsertFailure::Linked);
                }
                Err(err) => return Err(err.into()),
            }
            transaction.commit().await?;
            Ok(())
        };
        let outcome: Result<(), InsertFailure> = self.db.bounded(transaction_work).await;
        match outcome {
            Ok(()) => Ok(Provisioned::Created(User {
                id: user.id,
                email: user.email.clone(),
                created_at: user.created_at,
                last_signin_at: None,
            })),
            Err(InsertFailure::Linked) => Ok(Provisioned::AlreadyLinked),
            Err(InsertFailure::Database(err)) => Err(domain_error(err)),
        }
    }

    #[tracing::instrument(skip_all, fields(user_id = %id))]
    async fn update_email(&self, id: UserId, email: &Email) -> Result<User, DomainError> {
        let rows = users::Entity::update_many()
            .col_expr(users::Column::Email, Expr::val(email.as_str()))
            .filter(users::Column::Id.eq(id.as_uuid()))
            // A token may rename only the users it provisioned, never the
            // sign-in address of a password account.
            .filter(users::Column::PasswordHash.is_null())
            .exec_with_returning(&self.db)
            .await
            .map_err(domain_error)?;
        match rows.into_iter().next() {
            Some(row) => Ok(User::try_from(row)?),
            None => Err(DomainError::UserNotFound),
        }
    }
}
