use async_trait::async_trait;
use sea_orm::prelude::Uuid;
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, UpdateMany,
    Value,
};
use todo_domain::ports::TaskRepository;
use todo_domain::{CompletionChange, DomainError, Task, TaskChanges, TaskId, Timestamp, UserId};

use crate::entities::tasks;
use crate::errors::{domain_error, unbuildable};
use crate::timestamps::timestamp_value;
use crate::{Backend, Database, backend_of};

/// Tasks in the `tasks` table, on PostgreSQL or SQLite.
///
/// Every statement that touches one task names its owner in the `WHERE`
/// clause, and every change is a single `UPDATE … RETURNING`, so no two
/// requests can interleave between a read and a write.
#[derive(Debug, Clone)]
pub struct SeaTaskRepository {
    db: Database,
    backend: Backend,
}

impl SeaTaskRepository {
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

#[async_trait]
impl TaskRepository for SeaTaskRepository {
    #[tracing::instrument(skip_all, fields(task_id = %task.id, user_id = %task.owner))]
    async fn insert(&self, task: &Task) -> Result<(), DomainError> {
        let mut insert = Query::insert();
        insert
            .into_table(tasks::Entity)
            .columns([
                tasks::Column::Id,
                tasks::Column::UserId,
                tasks::Column::Title,
                tasks::Column::Description,
                tasks::Column::Completed,
                tasks::Column::CreatedAt,
                tasks::Column::UpdatedAt,
            ])
            .values([
                Expr::val(task.id.as_uuid()),
                Expr::val(task.owner.as_uuid()),
                Expr::val(task.title.as_str()),
                Expr::val(
                    task.description
                        .as_ref()
                        .map(|text| text.as_str().to_owned()),
                ),
                Expr::val(task.completed),
                Expr::val(self.timestamp(task.created_at)),
                Expr::val(self.timestamp(task.updated_at)),
            ])
            .map_err(unbuildable)?;
        self.db.execute(&insert).await.map_err(domain_error)?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(user_id = %owner))]
    async fn list_by_owner(&self, owner: UserId) -> Result<Vec<Task>, DomainError> {
        let rows = tasks::Entity::find()
            .filter(tasks::Column::UserId.eq(owner.as_uuid()))
            .order_by_desc(tasks::Column::CreatedAt)
            .order_by_desc(tasks::Column::Id)
            .all(&self.db)
            .await
            .map_err(domain_error)?;
        rows.into_iter()
            .map(|row| Ok(Task::try_from(row)?))
            .collect()
    }

    #[tracing::instrument(skip_all, fields(task_id = %id, user_id = %owner))]
    async fn find_owned(&self, id: TaskId, owner: UserId) -> Result<Option<Task>, DomainError> {
        let row = tasks::Entity::find_by_id(id.as_uuid())
            .filter(tasks::Column::UserId.eq(owner.as_uuid()))
            .one(&self.db)
            .await
            .map_err(domain_error)?;
        Ok(row.map(Task::try_from).transpose()?)
    }

    #[tracing::instrument(skip_all, fields(task_id = %id, user_id = %owner))]
    async fn update_owned(
        &self,
        id: TaskId,
        owner: UserId,
        changes: &TaskChanges,
        at: Timestamp,
    ) -> Result<Option<Task>, DomainError> {
        let mut update = self
            .owned_update(id, owner, at)
            .col_expr(tasks::Column::Title, Expr::val(changes.title.as_str()))
            .col_expr(
                tasks::Column::Description,
                Expr::val(
                    changes
                        .description
                        .as_ref()
                        .map(|text| text.as_str().to_owned()),
                ),
            );
        if let Some(completed) = changes.completed {
            update = update.col_expr(tasks::Column::Completed, Expr::val(completed));
        }
        self.run_owned_update(update).await
    }

    #[tracing::instrument(skip_all, fields(task_id = %id, user_id = %owner))]
    async fn change_completion_owned(
        &self,
        id: TaskId,
        owner: UserId,
        change: CompletionChange,
        at: Timestamp,
    ) -> Result<Option<Task>, DomainError> {
        // A toggle negates the stored value inside the UPDATE, under the
        // row lock, so concurrent toggles each see the previous one's result.
        let update = match change {
            CompletionChange::Toggle => self.owned_update(id, owner, at).col_expr(
                tasks::Column::Completed,
                Expr::col(tasks::Column::Completed).not(),
            ),
            // Setting the state it already has changes nothing, so it leaves
            // `updated_at` alone too.
            CompletionChange::Set(value) => {
                let updated_at = Expr::case(
                    Expr::col(tasks::Column::Completed).eq(value),
                    Expr::col(tasks::Column::UpdatedAt),
                )
                .finally(self.later_updated_at(at))
                .into();
                self.owned_update_stamped(id, owner, updated_at)
                    .col_expr(tasks::Column::Completed, Expr::val(value))
            }
        };
        self.run_owned_update(update).await
    }

    #[tracing::instrument(skip_all, fields(task_id = %id, user_id = %owner))]
    async fn delete_owned(&self, id: TaskId, owner: UserId) -> Result<bool, DomainError> {
        let result = tasks::Entity::delete_many()
            .filter(tasks::Column::Id.eq(id.as_uuid()))
            .filter(tasks::Column::UserId.eq(owner.as_uuid()))
            .exec(&self.db)
            .await
            .map_err(domain_error)?;
        Ok(result.rows_affected > 0)
    }

    #[tracing::instrument(skip_all, fields(task_id = %id))]
    async fn exists(&self, id: TaskId) -> Result<bool, DomainError> {
        let found = tasks::Entity::find()
            .select_only()
            .column(tasks::Column::Id)
            .filter(tasks::Column::Id.eq(id.as_uuid()))
            .into_tuple::<Uuid>()
            .one(&self.db)
            .await
            .map_err(domain_error)?;
        Ok(found.is_some())
    }
}
