use async_trait::async_trait;
use sea_orm::prelude::Uuid;
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, UpdateMany, Value};
use todo_domain::ports::IdempotencyStore;
use todo_domain::{
    CLAIM_TIMEOUT, Claim, ClaimOutcome, DomainError, IDEMPOTENCY_KEY_TTL, IdempotencyKey,
    RequestFingerprint, Timestamp, UserId,
};

use crate::conversions::recorded_response;
use crate::entities::idempotency_keys;
use crate::errors::{domain_error, unbuildable};
use crate::timestamps::timestamp_value;
use crate::{Backend, Database, backend_of};

/// Idempotency keys in `idempotency_keys`, on PostgreSQL or SQLite.
///
/// A claim is one row per user and key. Whoever holds its `claim_token`
/// may record the answer or give the key back; taking an abandoned or
/// expired claim over writes a new token with a conditional `UPDATE` on
/// the old one, so of two requests taking over at once only one wins.
#[derive(Debug, Clone)]
pub struct SeaIdempotencyStore {
    db: Database,
    backend: Backend,
}

/// A key's expiry that `time` cannot represent: only a clock near the end
/// of year 9999 gets here.
#[derive(Debug, thiserror::Error)]
#[error("the idempotency key's expiry is out of range")]
struct ExpiryOutOfRange;

/// How often a claim reads and retries when the row changes hands between
/// its statements (released, purged or taken over meanwhile). Each retry
/// follows a change some other request made, so running out means the key
/// is busy, and the request is told so.
const CLAIM_ATTEMPTS: usize = 3;

/// What a stored row means for a new claim with some fingerprint.
enum Found {
    /// Time ran out or the holder vanished: the key is free to take over
    /// from the claim holding this token.
    Free {
        token: Uuid,
        pending_only: bool,
    },
    Settled(ClaimOutcome),
}

impl SeaIdempotencyStore {
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

    /// Inserts a fresh claim unless the key has a row; whether it did.
    async fn insert_claim(
        &self,
        claim: &Claim,
        fingerprint: &RequestFingerprint,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<bool, DomainError> {
        let mut insert = Query::insert();
        insert
            .into_table(idempotency_keys::Entity)
            .columns([
                idempotency_keys::Column::UserId,
                idempotency_keys::Column::Key,
                idempotency_keys::Column::Fingerprint,
                idempotency_keys::Column::ClaimToken,
                idempotency_keys::Column::ClaimedAt,
                idempotency_keys::Column::ExpiresAt,
            ])
            .values([
                Expr::val(claim.owner.as_uuid()),
                Expr::val(claim.key.as_str()),
                Expr::val(fingerprint.as_bytes().to_vec()),
                Expr::val(claim.token),
                Expr::val(self.timestamp(now)),
                Expr::val(self.timestamp(expires_at)),
            ])
            .map_err(unbuildable)?
            .on_conflict(
                OnConflict::columns([
                    idempotency_keys::Column::UserId,
                    idempotency_keys::Column::Key,
                ])
                .do_nothing()
                .to_owned(),
            );
        let inserted = self.db.execute(&insert).await.map_err(domain_error)?;
        Ok(inserted.rows_affected() == 1)
    }

    /// Takes the key over from the claim holding `old_token` (one with no
    /// answer yet, when `pending_only`), as a fresh claim; whether it did.
    async fn take_over(
        &self,
        claim: &Claim,
        old_token: Uuid,
        pending_only: bool,
        fingerprint: &RequestFingerprint,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<bool, DomainError> {
        let mut update: UpdateMany<idempotency_keys::Entity> =
            idempotency_keys::Entity::update_many()
                .col_expr(
                    idempotency_keys::Column::Fingerprint,
                    Expr::val(fingerprint.as_bytes().to_vec()),
                )
                .col_expr(idempotency_keys::Column::ClaimToken, Expr::val(claim.token))
                .col_expr(
                    idempotency_keys::Column::ClaimedAt,
                    Expr::val(self.timestamp(now)),
                )
                .col_expr(
                    idempotency_keys::Column::ExpiresAt,
                    Expr::val(self.timestamp(expires_at)),
                )
                .col_expr(
                    idempotency_keys::Column::ResponseStatus,
                    Expr::val(Value::SmallInt(None)),
                )
                .col_expr(
                    idempotency_keys::Column::ResponseHeaders,
                    Expr::val(Value::String(None)),
                )
                .col_expr(
                    idempotency_keys::Column::ResponseBody,
                    Expr::val(Value::String(None)),
                )
                .filter(idempotency_keys::Column::UserId.eq(claim.owner.as_uuid()))
                .filter(idempotency_keys::Column::Key.eq(claim.key.as_str()))
                .filter(idempotency_keys::Column::ClaimToken.eq(old_token));
        if pending_only {
            // The holder may have finished since the row was read; then
            // its answer stands.
            update = update.filter(idempotency_keys::Column::ResponseStatus.is_null());
        }
        let taken = update.exec(&self.db).await.map_err(domain_error)?;
        Ok(taken.rows_affected == 1)
    }
}

/// What the row of a key says to a request with `fingerprint` at `now`.
fn judge(
    row: idempotency_keys::Model,
    fingerprint: &RequestFingerprint,
    now: Timestamp,
) -> Result<Found, DomainError> {
    let token = row.claim_token;
    if Timestamp::from_datetime(row.expires_at) <= now {
        // Forgotten, as if purged already.
        return Ok(Found::Free {
            token,
            pending_only: false,
        });
    }
    if row.fingerprint != fingerprint.as_bytes() {
        return Ok(Found::Settled(ClaimOutcome::Reused));
    }
    // A deadline past what `time` holds is never reached.
    let running = row
        .claimed_at
        .checked_add(CLAIM_TIMEOUT)
        .is_none_or(|deadline| deadline > now.as_datetime());
    match recorded_response(row)? {
        Some(response) => Ok(Found::Settled(ClaimOutcome::Replay(response))),
        None if running => Ok(Found::Settled(ClaimOutcome::InUse)),
        None => Ok(Found::Free {
            token,
            pending_only: true,
        }),
    }
}

#[async_trait]
impl IdempotencyStore for SeaIdempotencyStore {
    #[tracing::instrument(skip_all, fields(user_id = %owner))]
    async fn claim(
        &self,
        owner: UserId,
        key: &IdempotencyKey,
        fingerprint: &RequestFingerprint,
        now: Timestamp,
    ) -> Result<ClaimOutcome, DomainError> {
        let expires_at = now
            .as_datetime()
            .checked_add(IDEMPOTENCY_KEY_TTL)
            .map(Timestamp::from_datetime)
            .ok_or_else(|| DomainError::Unexpected(Box::new(ExpiryOutOfRange)))?;
        let claim = Claim {
            owner,
            key: key.clone(),
            token: Uuid::now_v7(),
        };
        for _ in 0..CLAIM_ATTEMPTS {
            if self
                .insert_claim(&claim, fingerprint, now, expires_at)
                .await?
            {
                return Ok(ClaimOutcome::Claimed(claim));
            }
            let row =
                idempotency_keys::Entity::find_by_id((owner.as_uuid(), key.as_str().to_owned()))
                    .one(&self.db)
                    .await
                    .map_err(domain_error)?;
            // Gone since the insert found it: try the insert again.
            let Some(row) = row else { continue };
            match judge(row, fingerprint, now)? {
                Found::Settled(outcome) => return Ok(outcome),
                Found::Free {
                    token,
                    pending_only,
                } => {
                    if self
                        .take_over(&claim, token, pending_only, fingerprint, now, expires_at)
                        .await?
                    {
                        return Ok(ClaimOutcome::Claimed(claim));
                    }
                }
            }
        }
        Ok(ClaimOutcome::InUse)
    }

    #[tracing::instrument(skip_all, fields(user_id = %claim.owner))]
    async fn release(&self, claim: &Claim) -> Result<(), DomainError> {
        idempotency_keys::Entity::delete_many()
            .filter(idempotency_keys::Column::UserId.eq(claim.owner.as_uuid()))
            .filter(idempotency_keys::Column::Key.eq(claim.key.as_str()))
            .filter(idempotency_keys::Column::ClaimToken.eq(claim.token))
            .filter(idempotency_keys::Column::ResponseStatus.is_null())
            .exec(&self.db)
            .await
            .map_err(domain_error)?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn purge_expired(&self, now: Timestamp) -> Result<u64, DomainError> {
        let purged = idempotency_keys::Entity::delete_many()
            .filter(idempotency_keys::Column::ExpiresAt.lte(self.timestamp(now)))
            .exec(&self.db)
            .await
            .map_err(domain_error)?;
        Ok(purged.rows_affected)
    }
}
