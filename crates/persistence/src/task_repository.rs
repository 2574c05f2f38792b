use std::sync::Arc;

use async_trait::async_trait;
use sea_orm::prelude::Uuid;
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::sqlx::postgres::PgRow;
use sea_orm::sqlx::{self, Row as _};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, Statement, TryGetableMany, UpdateMany, Value,
};
use todo_domain::ports::TaskRepository;
use todo_domain::{CompletionChange, DomainError, Task, TaskChanges, TaskId, Timestamp, UserId};

use crate::Database;
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
    db: Database,
    backend: Backend,
    reads: Arc<ReadStatements>,
}

/// The SQL of the two reads every page load makes, rendered once.
///
/// SeaORM builds a query into the same text on every call; for
/// `GET /api/tasks/{id}` building, rendering and dropping it was a fifth of
/// the server's instructions. The text is rendered here by SeaORM from the
/// same query, with a placeholder where the ids go, and each call binds its
/// own ids to it.
#[derive(Debug)]
struct ReadStatements {
    backend: DbBackend,
    /// Binds the owner.
    list_by_owner: String,
    /// Binds the task id, then the owner.
    find_owned: String,
}

impl ReadStatements {
    fn new(backend: DbBackend) -> Self {
        let placeholder = Uuid::nil();
        let list_by_owner = select_task_rows()
            .filter(tasks::Column::UserId.eq(placeholder))
            .order_by_desc(tasks::Column::CreatedAt)
            .order_by_desc(tasks::Column::Id);
        // No LIMIT: the id is the primary key, so at most one row matches.
        let find_owned = select_task_rows()
            .filter(tasks::Column::Id.eq(placeholder))
            .filter(tasks::Column::UserId.eq(placeholder));
        Self {
            backend,
            list_by_owner: list_by_owner.build(backend).sql,
            find_owned: find_owned.build(backend).sql,
        }
    }

    fn bind<const N: usize>(&self, sql: &str, ids: [Uuid; N]) -> Statement {
        Statement::from_sql_and_values(self.backend, sql, ids.map(Value::from))
    }
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
        let reads = Arc::new(ReadStatements::new(db.get_database_backend()));
        Self { db, backend, reads }
    }

    /// The rows `statement` selects, in [`select_task_rows`]' column order:
    /// on PostgreSQL decoded by [`pg_task_row`], on SQLite by SeaORM.
    async fn task_rows(&self, statement: Statement) -> Result<Vec<TaskRow>, DomainError> {
        let rows = match self.db.postgres_pool() {
            Some(pool) => pool.query_all_decoded(statement, pg_task_row).await,
            None => self.db.query_all_raw(statement).await.and_then(|rows| {
                rows.iter()
                    .map(|row| TaskRow::try_get_many_by_index(row).map_err(DbErr::from))
                    .collect()
            }),
        };
        rows.map_err(domain_error)
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

/// A `tasks` row as a tuple, in the column order of [`select_task_rows`].
///
/// The read paths decode rows by position rather than through the entity's
/// `Model`, which looks every column up by name: on `GET /api/tasks` that
/// lookup was a fifth of the server's instructions.
type TaskRow = (
    Uuid,
    Uuid,
    String,
    Option<String>,
    bool,
    time::OffsetDateTime,
    time::OffsetDateTime,
);

fn select_task_rows() -> sea_orm::Select<tasks::Entity> {
    tasks::Entity::find().select_only().columns([
        tasks::Column::Id,
        tasks::Column::UserId,
        tasks::Column::Title,
        tasks::Column::Description,
        tasks::Column::Completed,
        tasks::Column::CreatedAt,
        tasks::Column::UpdatedAt,
    ])
}

/// A row of [`select_task_rows`] as a domain task.
fn task_of(row: TaskRow) -> Result<Task, DomainError> {
    Ok(Task::try_from(model_of(row))?)
}

/// A row of [`select_task_rows`] decoded straight from sqlx's row.
///
/// The SQL is this crate's own, so the type of every column is known, and
/// `try_get_unchecked` skips the compatibility check that SeaORM's decoding
/// makes sqlx perform for each value (11 % of a 20-task list's
/// instructions, most of it comparing `varchar` against the types a Rust
/// `String` may be read from). A value that does not decode is still an
/// error, and the suites run every read on both backends.
fn pg_task_row(row: &PgRow) -> Result<TaskRow, sqlx::Error> {
    Ok((
        row.try_get_unchecked(0)?,
        row.try_get_unchecked(1)?,
        row.try_get_unchecked(2)?,
        row.try_get_unchecked(3)?,
        row.try_get_unchecked(4)?,
        row.try_get_unchecked(5)?,
        row.try_get_unchecked(6)?,
    ))
}

fn model_of(
    (id, user_id, title, description, completed, created_at, updated_at): TaskRow,
) -> tasks::Model {
    tasks::Model {
        id,
        user_id,
        title,
        description,
        completed,
        created_at,
        updated_at,
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
        let statement = self
            .reads
            .bind(&self.reads.list_by_owner, [owner.as_uuid()]);
        self.task_rows(statement)
            .await?
            .into_iter()
            .map(task_of)
            .collect()
    }

    #[tracing::instrument(skip_all, fields(task_id = %id, user_id = %owner))]
    async fn find_owned(&self, id: TaskId, owner: UserId) -> Result<Option<Task>, DomainError> {
        let statement = self
            .reads
            .bind(&self.reads.find_owned, [id.as_uuid(), owner.as_uuid()]);
        // The filter pins the primary key, so at most one row comes back.
        self.task_rows(statement)
            .await?
            .into_iter()
            .next()
            .map(task_of)
            .transpose()
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
