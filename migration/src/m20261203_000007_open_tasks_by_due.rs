//! An index of the open tasks only, by due date (issue 13, the `page`
//! scenario; docs/performance.md).
//!
//! A front end's main view is a user's open tasks soonest due first
//! (`completed=false&sort=due_at`). On the index of all tasks by due date a
//! page of it read the done tasks in between too and threw them away,
//! about as many rows as it kept; this index holds only open tasks, so a
//! page reads exactly the rows it answers with. Partial, so done tasks
//! (which no such page needs) cost it nothing.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
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
                    // The same words the list statement's filter uses, so
                    // both engines see that the index covers it.
                    .and_where(Expr::col(Tasks::Completed).eq(false))
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
