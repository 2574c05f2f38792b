// WIP on this branch only: the stand-in below leaves these unused.
#![allow(unused_imports, dead_code)]

use async_trait::async_trait;
use sea_orm::prelude::Uuid;
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, UpdateMany, Value,
};
use todo_domain::ports::TaskRepository;
use todo_domain::{
    CompletionChange, DomainError, Precondition, Receipt, Task, TaskId, TaskPage, TaskPatch,
    TaskQuery, Timestamp, UserId,
};

use crate::entities::tasks;
use crate::errors::{domain_error, unbuildable};
use crate::timestamps::timestamp_value;
use crate::{Backend, backend_of};

/// Tasks in the `tasks` table, on PostgreSQL or SQLite.
///
/// Every statement that touches one task names its owner in the `WHERE`
/// clause, and every change is a single `UPDATE … RETURNING`, so no two
/// requests can interleave between a read and a write.
#[derive(Debug, Clone)]
pub struct SeaTaskRepository {
    db: DatabaseConnection,
    backend: Backend,
}

impl SeaTaskRepository {
    /// Wraps a pool opened by [`crate::connect`].
    ///
    /// # Panics
    /// As [`backend_of`] does, for a connection to neither PostgreSQL nor
    /// SQLite.
    #[must_use]
    pub fn new(db: DatabaseConnection) -> Self {
        let backend = backend_of(&db);
        Self { db, backend }
    }

    fn timestamp(&self, at: Timestamp) -> Value {
        timestamp_value(self.backend, at)
    }

    /// An update of the task `id` if `owner` owns it, that also advances
    /// `updated_at` to `at`, but never backwards: two writers whose clocks
    /// (or requests) race must not leave the older instant behind. Starting
    /// from `created_at` and only ever growing, `updated_at` also never
    /// falls before `created_at`.
    fn owned_update(&self, id: TaskId, owner: UserId, at: Timestamp) -> UpdateMany<tasks::Entity> {
        self.owned_update_stamped(id, owner, self.later_updated_at(at))
    }

    /// `updated_at` advanced to `at`, or kept where it is if already later.
    fn later_updated_at(&self, at: Timestamp) -> Expr {
        let at = self.timestamp(at);
        Expr::case(Expr::col(tasks::Column::UpdatedAt).lt(at.clone()), at)
            .finally(Expr::col(tasks::Column::UpdatedAt))
            .into()
    }

    fn owned_update_stamped(
        &self,
        id: TaskId,
        owner: UserId,
        updated_at: Expr,
    ) -> UpdateMany<tasks::Entity> {
        tasks::Entity::update_many()
            .col_expr(tasks::Column::UpdatedAt, updated_at)
            .filter(tasks::Column::Id.eq(id.as_uuid()))
            .filter(tasks::Column::UserId.eq(owner.as_uuid()))
    }

    async fn run_owned_update(
        &self,
        update: UpdateMany<tasks::Entity>,
    ) -> Result<Option<Task>, DomainError> {
        let rows = update
            .exec_with_returning(&self.db)
            .await
            .map_err(domain_error)?;
        // The filter pins the primary key, so at most one row comes back.
        match rows.into_iter().next() {
            Some(row) => Ok(Some(Task::try_from(row)?)),
            None => Ok(None),
        }
    }
}

// WIP stand-in so the api compiles while the real adapter is written on
// the issue13-persistence branch; replaced wholesale when that merges.
#[async_trait]
impl TaskRepository for SeaTaskRepository {
    async fn insert(
        &self,
        _task: &Task,
        _max_tasks: u32,
        _receipt: Option<Receipt>,
    ) -> Result<(), DomainError> {
        todo!("issue13-persistence")
    }

    async fn list_by_owner(
        &self,
        _owner: UserId,
        _query: &TaskQuery,
        _now: Timestamp,
    ) -> Result<TaskPage, DomainError> {
        todo!("issue13-persistence")
    }

    async fn find_owned(&self, _id: TaskId, _owner: UserId) -> Result<Option<Task>, DomainError> {
        todo!("issue13-persistence")
    }

    async fn patch_owned(
        &self,
        _id: TaskId,
        _owner: UserId,
        _patch: &TaskPatch,
        _precondition: Option<Precondition>,
        _at: Timestamp,
    ) -> Result<Option<Task>, DomainError> {
        todo!("issue13-persistence")
    }

    async fn change_completion_owned(
        &self,
        _id: TaskId,
        _owner: UserId,
        _change: CompletionChange,
        _precondition: Option<Precondition>,
        _at: Timestamp,
        _receipt: Option<Receipt>,
    ) -> Result<Option<Task>, DomainError> {
        todo!("issue13-persistence")
    }

    async fn delete_owned(
        &self,
        _id: TaskId,
        _owner: UserId,
        _precondition: Option<Precondition>,
    ) -> Result<bool, DomainError> {
        todo!("issue13-persistence")
    }

    async fn delete_completed(&self, _owner: UserId) -> Result<u64, DomainError> {
        todo!("issue13-persistence")
    }

    async fn exists(&self, _id: TaskId) -> Result<bool, DomainError> {
        todo!("issue13-persistence")
    }
}

/// WIP stand-in for the idempotency store (see above).
#[derive(Debug, Clone)]
pub struct SeaIdempotencyStore {
    _db: DatabaseConnection,
}

impl SeaIdempotencyStore {
    /// Wraps a pool opened by [`crate::connect`].
    #[must_use]
    pub fn new(db: DatabaseConnection) -> Self {
        Self { _db: db }
    }
}

#[async_trait]
impl todo_domain::ports::IdempotencyStore for SeaIdempotencyStore {
    async fn claim(
        &self,
        _owner: UserId,
        _key: &todo_domain::IdempotencyKey,
        _fingerprint: &todo_domain::RequestFingerprint,
        _now: Timestamp,
    ) -> Result<todo_domain::ClaimOutcome, DomainError> {
        todo!("issue13-persistence")
    }

    async fn release(&self, _claim: &todo_domain::Claim) -> Result<(), DomainError> {
        todo!("issue13-persistence")
    }

    async fn purge_expired(&self, _now: Timestamp) -> Result<u64, DomainError> {
        todo!("issue13-persistence")
    }
}
