//! An index of each user's open tasks in due date order: the view a front
//! end opens with (`?completed=false&sort=due_at`).
//!
//! `idx_tasks_user_due_id` orders all of a user's tasks; a page of the open
//! ones read from it also reads, and throws away, every done task that
//! falls between them, from the table, one row at a time. Done tasks pile
//! up over the life of an account while open ones do not, so that waste
//! grows with it. This partial index holds only the open tasks, so such a
//! page reads exactly the rows it shows. The list statement states the
//! filter as `NOT completed`, the very term of the index's `WHERE`, which
//! is how both engines know the index applies (a bound `completed = $1`
//! would not tell PostgreSQL's generic plan, nor SQLite, which value it
//! has).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tasks {
    Table,
    UserId,
    DueAt,
    Id,
    Completed,
}

const OPEN_TASKS_DUE_INDEX: &str = "idx_tasks_user_open_due_id";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(OPEN_TASKS_DUE_INDEX)
                    .table(Tasks::Table)
                    .col(Tasks::UserId)
                    .col(Tasks::DueAt)
                    .col(Tasks::Id)
                    .and_where(Expr::col(Tasks::Completed).not())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(OPEN_TASKS_DUE_INDEX)
                    .table(Tasks::Table)
                    .to_owned(),
            )
            .await
    }
}
