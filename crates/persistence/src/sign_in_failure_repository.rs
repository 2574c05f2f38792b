use async_trait::async_trait;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use todo_domain::ports::SignInFailureRepository;
use todo_domain::{DomainError, SignInKey, SignInLimit, Timestamp};

use crate::entities::sign_in_failures::{self, Column};
use crate::errors::{domain_error, unbuildable};
use crate::timestamps::timestamp_value;
use crate::{Backend, Database, backend_of};

/// Failed sign-ins in `sign_in_failures`, on PostgreSQL or SQLite: the
/// database is the one state every instance of the service shares.
#[derive(Debug, Clone)]
pub struct SeaSignInFailureRepository {
    db: Database,
    backend: Backend,
}

impl SeaSignInFailureRepository {
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

/// The row key of `key`: a digest, so the address of an account that does
/// not exist (anything a client typed) is not stored as it was typed.
fn digest(key: &SignInKey) -> Vec<u8> {
    Sha256::digest(key.as_str().as_bytes()).to_vec()
}

/// `sign_in_failures.<column>` as it stands before the statement, in the
/// `DO UPDATE` of an upsert (both engines read the table's name there as
/// the existing row).
fn stored(column: Column) -> Expr {
    Expr::col((sign_in_failures::Entity, column))
}

#[async_trait]
impl SignInFailureRepository for SeaSignInFailureRepository {
    #[tracing::instrument(skip_all)]
    async fn blocked_until(
        &self,
        key: &SignInKey,
        now: Timestamp,
    ) -> Result<Option<Timestamp>, DomainError> {
        let until = sign_in_failures::Entity::find()
            .select_only()
            .column(Column::BlockedUntil)
            .filter(Column::EmailDigest.eq(digest(key)))
            .filter(Column::BlockedUntil.gt(self.timestamp(now)))
            .into_tuple::<OffsetDateTime>()
            .one(&self.db)
            .await
            .map_err(domain_error)?;
        Ok(until.map(Timestamp::from_datetime))
    }

    #[tracing::instrument(skip_all)]
    async fn record_failure(
        &self,
        key: &SignInKey,
        now: Timestamp,
        limit: SignInLimit,
    ) -> Result<(), DomainError> {
        let end = self.timestamp(limit.end_of_window(now));
        // Past `i32::MAX` failures nothing could be blocked anyway.
        let threshold = i32::try_from(limit.failures).unwrap_or(i32::MAX);
        // Every expression of the update reads the row as it was, under
        // the row lock the upsert takes, so racing failures are each
        // counted once: the rule of `SignInLimit`, in one statement.
        let window_open = stored(Column::WindowEndsAt).gt(self.timestamp(now));
        let count: Expr = Expr::case(window_open.clone(), stored(Column::Failures).add(1))
            .finally(1)
            .into();
        let reaches_limit = count.clone().gte(threshold);
        let mut upsert = Query::insert();
        upsert
            .into_table(sign_in_failures::Entity)
            .columns([
                Column::EmailDigest,
                Column::Failures,
                Column::WindowEndsAt,
                Column::BlockedUntil,
            ])
            .values([
                Expr::val(digest(key)),
                Expr::val(1),
                Expr::val(end.clone()),
                if threshold <= 1 {
                    Expr::val(end.clone())
                } else {
                    Expr::null()
                },
            ])
            .map_err(unbuildable)?
            .on_conflict(
                OnConflict::column(Column::EmailDigest)
                    .value(Column::Failures, count)
                    .value(
                        Column::WindowEndsAt,
                        Expr::case(reaches_limit.clone(), end.clone())
                            .case(window_open, stored(Column::WindowEndsAt))
                            .finally(end.clone()),
                    )
                    .value(
                        Column::BlockedUntil,
                        Expr::case(reaches_limit, end).finally(stored(Column::BlockedUntil)),
                    )
                    .to_owned(),
            );
        self.db.execute(&upsert).await.map_err(domain_error)?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn clear(&self, key: &SignInKey) -> Result<(), DomainError> {
        sign_in_failures::Entity::delete_many()
            .filter(Column::EmailDigest.eq(digest(key)))
            .exec(&self.db)
            .await
            .map_err(domain_error)?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn forget_expired(&self, now: Timestamp) -> Result<u64, DomainError> {
        // A row's window is stretched to the end of its block, so a window
        // that is over means the block is over too.
        let result = sign_in_failures::Entity::delete_many()
            .filter(Column::WindowEndsAt.lte(self.timestamp(now)))
            .exec(&self.db)
            .await
            .map_err(domain_error)?;
        Ok(result.rows_affected)
    }
}
