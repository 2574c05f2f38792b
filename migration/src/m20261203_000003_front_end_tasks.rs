//! Tasks for a real front end (issue 13): due dates, priorities, labels, a
//! version for conditional writes, a per-user task count for the task
//! limit, and idempotency keys for safe retries
//! (specs/003-front-end-tasks/data-model.md).
//!
//! Every change adds to the existing tables (`ALTER TABLE … ADD COLUMN`
//! with a default, which both engines apply to existing rows) or creates
//! new ones, so no table is rebuilt. The migration runs in one transaction
//! on both engines (`use_transaction`), so a failure leaves the old schema.

use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Users {
    Table,
    Id,
    TaskCount,
}

#[derive(DeriveIden, Clone, Copy)]
enum Tasks {
    Table,
    Id,
    UserId,
    Title,
    Completed,
    CompletedAt,
    DueAt,
    Priority,
    Labels,
    Version,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum TaskLabels {
    Table,
    TaskId,
    UserId,
    Key,
}

#[derive(DeriveIden, Clone, Copy)]
enum IdempotencyKeys {
    Table,
    UserId,
    Key,
    Fingerprint,
    ClaimToken,
    ClaimedAt,
    ExpiresAt,
    ResponseStatus,
    ResponseHeaders,
    ResponseBody,
}

/// One index per sort field, each ending in `id` so that ties break the
/// way the keyset comparison does. A B-tree is read in either direction,
/// so one index serves both orders; `created_at` keeps the first
/// migration's index.
const TASKS_UPDATED_INDEX: &str = "idx_tasks_user_updated_id";
const TASKS_DUE_INDEX: &str = "idx_tasks_user_due_id";
const TASKS_PRIORITY_INDEX: &str = "idx_tasks_user_priority_id";
const TASKS_TITLE_INDEX: &str = "idx_tasks_user_title_id";

const TASK_LABELS_TASK_FOREIGN_KEY: &str = "fk_task_labels_task_id";
/// A label filter reads one user's part of this index per label.
const TASK_LABELS_USER_KEY_INDEX: &str = "idx_task_labels_user_key";

const IDEMPOTENCY_KEYS_USER_FOREIGN_KEY: &str = "fk_idempotency_keys_user_id";
/// Serves the purge of expired keys.
const IDEMPOTENCY_KEYS_EXPIRES_INDEX: &str = "idx_idempotency_keys_expires_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        add_task_columns(manager).await?;
        backfill(manager).await?;
        create_sort_indexes(manager).await?;
        create_task_labels(manager).await?;
        create_idempotency_keys(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(IdempotencyKeys::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(TaskLabels::Table).to_owned())
            .await?;
        // SQLite refuses to drop a column an index still names.
        for name in [
            TASKS_UPDATED_INDEX,
            TASKS_DUE_INDEX,
            TASKS_PRIORITY_INDEX,
            TASKS_TITLE_INDEX,
        ] {
            manager
                .drop_index(Index::drop().name(name).table(Tasks::Table).to_owned())
                .await?;
        }
        // SQLite takes one change per ALTER TABLE.
        for column in [
            Tasks::CompletedAt,
            Tasks::DueAt,
            Tasks::Priority,
            Tasks::Labels,
            Tasks::Version,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Tasks::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .drop_column(Users::TaskCount)
                    .to_owned(),
            )
            .await
    }
}

/// The new columns, each with the value every existing row gets. SQLite
/// takes one change per `ALTER TABLE`, and a `NOT NULL` column only with a
/// default.
async fn add_task_columns(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let task_columns = [
        timestamp_with_time_zone_null(Tasks::CompletedAt),
        timestamp_with_time_zone_null(Tasks::DueAt),
        // 0 none, 1 low, 2 medium, 3 high: the number sorts like the word.
        small_integer(Tasks::Priority).default(0).to_owned(),
        // The names joined with U+001F, which no label may contain.
        text(Tasks::Labels).default("").to_owned(),
        big_integer(Tasks::Version).default(1).to_owned(),
    ];
    for column in task_columns {
        manager
            .alter_table(
                Table::alter()
                    .table(Tasks::Table)
                    .add_column(column)
                    .to_owned(),
            )
            .await?;
    }
    manager
        .alter_table(
            Table::alter()
                .table(Users::Table)
                .add_column(integer(Users::TaskCount).default(0))
                .to_owned(),
        )
        .await
}

/// A task already done was done, at the latest, when it last changed; and
/// every user starts with the count of the tasks they own.
async fn backfill(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .exec_stmt(
            Query::update()
                .table(Tasks::Table)
                .value(Tasks::CompletedAt, Expr::col(Tasks::UpdatedAt))
                .and_where(Expr::col(Tasks::Completed).eq(true))
                .to_owned(),
        )
        .await?;
    let owned = Query::select()
        .expr(Expr::col(Asterisk).count())
        .from(Tasks::Table)
        .and_where(Expr::col((Tasks::Table, Tasks::UserId)).equals((Users::Table, Users::Id)))
        .to_owned();
    manager
        .exec_stmt(
            Query::update()
                .table(Users::Table)
                .value(Users::TaskCount, owned)
                .to_owned(),
        )
        .await
}

async fn create_sort_indexes(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    for (name, column) in [
        (TASKS_UPDATED_INDEX, Tasks::UpdatedAt),
        (TASKS_DUE_INDEX, Tasks::DueAt),
        (TASKS_PRIORITY_INDEX, Tasks::Priority),
    ] {
        manager
            .create_index(
                Index::create()
                    .name(name)
                    .table(Tasks::Table)
                    .col(Tasks::UserId)
                    .col(column)
                    .col(Tasks::Id)
                    .to_owned(),
            )
            .await?;
    }
    // `title` sorts without ASCII case, so the index holds `lower(title)`,
    // the very expression the list query orders and compares by.
    let title_index = Index::create()
        .name(TASKS_TITLE_INDEX)
        .table(Tasks::Table)
        .col(Tasks::UserId)
        .col(Func::lower(Expr::col(Tasks::Title)))
        .col(Tasks::Id)
        .to_owned();
    match manager.get_database_backend() {
        // sea-query's SQLite writer refuses expression columns in an
        // index, though SQLite has them; its PostgreSQL writer renders this
        // statement in the syntax both engines share (quoted names, the
        // expression in parentheses).
        DbBackend::Sqlite => {
            manager
                .get_connection()
                .execute_unprepared(&title_index.to_string(PostgresQueryBuilder))
                .await?;
            Ok(())
        }
        _ => manager.create_index(title_index).await,
    }
}

async fn create_task_labels(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(TaskLabels::Table)
                .col(uuid(TaskLabels::TaskId))
                // The task's owner, so that a filter reads one user's part
                // of the index.
                .col(uuid(TaskLabels::UserId))
                // The label without case, as the domain merges labels.
                .col(text(TaskLabels::Key))
                .primary_key(Index::create().col(TaskLabels::TaskId).col(TaskLabels::Key))
                .foreign_key(
                    ForeignKey::create()
                        .name(TASK_LABELS_TASK_FOREIGN_KEY)
                        .from(TaskLabels::Table, TaskLabels::TaskId)
                        .to(Tasks::Table, Tasks::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name(TASK_LABELS_USER_KEY_INDEX)
                .table(TaskLabels::Table)
                .col(TaskLabels::UserId)
                .col(TaskLabels::Key)
                .col(TaskLabels::TaskId)
                .to_owned(),
        )
        .await
}

async fn create_idempotency_keys(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(IdempotencyKeys::Table)
                .col(uuid(IdempotencyKeys::UserId))
                .col(text(IdempotencyKeys::Key))
                .col(blob(IdempotencyKeys::Fingerprint))
                .col(uuid(IdempotencyKeys::ClaimToken))
                .col(timestamp_with_time_zone(IdempotencyKeys::ClaimedAt))
                .col(timestamp_with_time_zone(IdempotencyKeys::ExpiresAt))
                // All three stay NULL while the request runs.
                .col(small_integer_null(IdempotencyKeys::ResponseStatus))
                .col(text_null(IdempotencyKeys::ResponseHeaders))
                .col(text_null(IdempotencyKeys::ResponseBody))
                .primary_key(
                    Index::create()
                        .col(IdempotencyKeys::UserId)
                        .col(IdempotencyKeys::Key),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name(IDEMPOTENCY_KEYS_USER_FOREIGN_KEY)
                        .from(IdempotencyKeys::Table, IdempotencyKeys::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name(IDEMPOTENCY_KEYS_EXPIRES_INDEX)
                .table(IdempotencyKeys::Table)
                .col(IdempotencyKeys::ExpiresAt)
                .to_owned(),
        )
        .await
}
