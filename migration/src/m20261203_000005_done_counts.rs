//! Each user's number of done tasks, kept by the database itself.
//!
//! A page of a list says how many tasks match in all (`X-Total-Count`).
//! When the only filter is `completed`, that number is `task_count`,
//! `done_count` or their difference, read from the user's row instead of
//! counted from the tasks. `done_count` follows every insert, delete and
//! change of `completed` through row triggers, so no write path can forget
//! it: a cascade from a deleted user included.

use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    DoneCount,
}

/// PostgreSQL: one function, called by one trigger for all three events.
const POSTGRES_UP: &[&str] = &[
    "CREATE FUNCTION tasks_keep_done_count() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
         IF TG_OP <> 'INSERT' AND OLD.completed THEN
             UPDATE users SET done_count = done_count - 1 WHERE id = OLD.user_id;
         END IF;
         IF TG_OP <> 'DELETE' AND NEW.completed THEN
             UPDATE users SET done_count = done_count + 1 WHERE id = NEW.user_id;
         END IF;
         RETURN NULL;
     END
     $$",
    "CREATE TRIGGER tasks_done_count
         AFTER INSERT OR DELETE OR UPDATE OF completed ON tasks
         FOR EACH ROW EXECUTE FUNCTION tasks_keep_done_count()",
];

const POSTGRES_DOWN: &[&str] = &[
    "DROP TRIGGER IF EXISTS tasks_done_count ON tasks",
    "DROP FUNCTION IF EXISTS tasks_keep_done_count()",
];

/// SQLite has no trigger functions: one trigger per event, each firing
/// only when a done task comes or goes.
const SQLITE_UP: &[&str] = &[
    "CREATE TRIGGER tasks_done_count_insert AFTER INSERT ON tasks WHEN NEW.completed
     BEGIN
         UPDATE users SET done_count = done_count + 1 WHERE id = NEW.user_id;
     END",
    "CREATE TRIGGER tasks_done_count_delete AFTER DELETE ON tasks WHEN OLD.completed
     BEGIN
         UPDATE users SET done_count = done_count - 1 WHERE id = OLD.user_id;
     END",
    "CREATE TRIGGER tasks_done_count_update AFTER UPDATE OF completed ON tasks
         WHEN OLD.completed <> NEW.completed
     BEGIN
         UPDATE users SET done_count = done_count + (CASE WHEN NEW.completed THEN 1 ELSE -1 END)
             WHERE id = NEW.user_id;
     END",
];

const SQLITE_DOWN: &[&str] = &[
    "DROP TRIGGER IF EXISTS tasks_done_count_insert",
    "DROP TRIGGER IF EXISTS tasks_done_count_delete",
    "DROP TRIGGER IF EXISTS tasks_done_count_update",
];

/// Runs `statements` one at a time: the drivers take one statement per call.
async fn run(manager: &SchemaManager<'_>, statements: &[&str]) -> Result<(), DbErr> {
    for statement in statements {
        manager
            .get_connection()
            .execute_unprepared(statement)
            .await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(integer(Users::DoneCount).default(0))
                    .to_owned(),
            )
            .await?;
        run(
            manager,
            &["UPDATE users SET done_count = \
               (SELECT COUNT(*) FROM tasks WHERE tasks.user_id = users.id AND tasks.completed)"],
        )
        .await?;
        match manager.get_database_backend() {
            DbBackend::Postgres => run(manager, POSTGRES_UP).await,
            _ => run(manager, SQLITE_UP).await,
        }
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DbBackend::Postgres => run(manager, POSTGRES_DOWN).await?,
            _ => run(manager, SQLITE_DOWN).await?,
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .drop_column(Users::DoneCount)
                    .to_owned(),
            )
            .await
    }
}
