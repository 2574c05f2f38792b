//! The changes feed (issue 14, specs/004-sync/data-model.md): a per-user
//! change position kept by the database, each task's latest position, and
//! a tombstone for every deleted task.
//!
//! The position is `users.change_seq`, raised by a row trigger on `tasks`
//! in the same transaction as the change. Raising it updates the user's
//! row, whose lock orders one user's writers, so positions commit in the
//! order they were handed out: a reader that sees position `n` has seen
//! every position below it. Triggers rather than application code, so no
//! write path (bulk deletes included) can forget to move the position.

use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Users {
    Table,
    Id,
    ChangeSeq,
    ChangesFloor,
}

#[derive(DeriveIden, Clone, Copy)]
enum Tasks {
    Table,
    UserId,
    ChangeSeq,
}

#[derive(DeriveIden, Clone, Copy)]
enum TaskTombstones {
    Table,
    TaskId,
    UserId,
    ChangeSeq,
    DeletedAt,
}

/// Serves the feed's scan of one user's tasks after a position.
const TASKS_CHANGE_INDEX: &str = "idx_tasks_user_change_seq";
/// Serves the feed's scan of one user's deletions after a position.
const TOMBSTONES_CHANGE_INDEX: &str = "idx_task_tombstones_user_change_seq";
/// Serves the purge of deletions older than the retention.
const TOMBSTONES_DELETED_INDEX: &str = "idx_task_tombstones_deleted_at";
const TOMBSTONES_USER_FOREIGN_KEY: &str = "fk_task_tombstones_user_id";

/// Existing tasks get positions 1, 2, … per user in the order they last
/// changed, and each user's counter starts at the highest of them.
const BACKFILL: &[&str] = &[
    "UPDATE tasks SET change_seq = ranked.seq
     FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY updated_at, id) AS seq
           FROM tasks) AS ranked
     WHERE tasks.id = ranked.id",
    "UPDATE users SET change_seq =
         (SELECT COALESCE(MAX(change_seq), 0) FROM tasks WHERE tasks.user_id = users.id)",
];

/// PostgreSQL: a BEFORE trigger writes the new position into the row it
/// is about to store, so inserts and updates cost no second write. An
/// update moves the position only when the version moved, which the
/// repository does exactly when a field really changed. The delete trigger
/// runs AFTER, so only rows really deleted leave a tombstone; when the
/// user's own row is gone (a cascade from deleting the user) there is no
/// position to take and no tombstone to keep.
const POSTGRES_UP: &[&str] = &[
    "CREATE FUNCTION tasks_take_change_seq() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
         UPDATE users SET change_seq = change_seq + 1 WHERE id = NEW.user_id
             RETURNING change_seq INTO NEW.change_seq;
         RETURN NEW;
     END
     $$",
    "CREATE FUNCTION tasks_leave_tombstone() RETURNS trigger LANGUAGE plpgsql AS $$
     DECLARE
         taken BIGINT;
     BEGIN
         UPDATE users SET change_seq = change_seq + 1 WHERE id = OLD.user_id
             RETURNING change_seq INTO taken;
         IF taken IS NOT NULL THEN
             INSERT INTO task_tombstones (task_id, user_id, change_seq, deleted_at)
                 VALUES (OLD.id, OLD.user_id, taken, now())
                 ON CONFLICT (task_id) DO UPDATE
                     SET user_id = excluded.user_id, change_seq = excluded.change_seq,
                         deleted_at = excluded.deleted_at;
         END IF;
         RETURN NULL;
     END
     $$",
    "CREATE TRIGGER tasks_change_seq_insert BEFORE INSERT ON tasks
         FOR EACH ROW EXECUTE FUNCTION tasks_take_change_seq()",
    "CREATE TRIGGER tasks_change_seq_update BEFORE UPDATE OF version ON tasks
         FOR EACH ROW WHEN (OLD.version IS DISTINCT FROM NEW.version)
         EXECUTE FUNCTION tasks_take_change_seq()",
    "CREATE TRIGGER tasks_change_seq_delete AFTER DELETE ON tasks
         FOR EACH ROW EXECUTE FUNCTION tasks_leave_tombstone()",
];

const POSTGRES_DOWN: &[&str] = &[
    "DROP TRIGGER IF EXISTS tasks_change_seq_insert ON tasks",
    "DROP TRIGGER IF EXISTS tasks_change_seq_update ON tasks",
    "DROP TRIGGER IF EXISTS tasks_change_seq_delete ON tasks",
    "DROP FUNCTION IF EXISTS tasks_take_change_seq()",
    "DROP FUNCTION IF EXISTS tasks_leave_tombstone()",
];

/// SQLite cannot change the row a trigger fires for, so its AFTER triggers
/// write the position with a second `UPDATE`. That update sets only
/// `change_seq`, which the update trigger (`UPDATE OF version`) and the
/// done-count trigger (`UPDATE OF completed`) do not watch, so it fires
/// neither of them. The tombstone's time is written in the fixed-width text
/// the adapters write (six fraction digits, `Z`), so it compares as they
/// expect; SQLite gives milliseconds, the last three digits are zeros.
const SQLITE_UP: &[&str] = &[
    "CREATE TRIGGER tasks_change_seq_insert AFTER INSERT ON tasks
     BEGIN
         UPDATE users SET change_seq = change_seq + 1 WHERE id = NEW.user_id;
         UPDATE tasks SET change_seq = (SELECT change_seq FROM users WHERE id = NEW.user_id)
             WHERE id = NEW.id;
     END",
    "CREATE TRIGGER tasks_change_seq_update AFTER UPDATE OF version ON tasks
         WHEN OLD.version IS NOT NEW.version
     BEGIN
         UPDATE users SET change_seq = change_seq + 1 WHERE id = NEW.user_id;
         UPDATE tasks SET change_seq = (SELECT change_seq FROM users WHERE id = NEW.user_id)
             WHERE id = NEW.id;
     END",
    "CREATE TRIGGER tasks_change_seq_delete AFTER DELETE ON tasks
     BEGIN
         UPDATE users SET change_seq = change_seq + 1 WHERE id = OLD.user_id;
         INSERT INTO task_tombstones (task_id, user_id, change_seq, deleted_at)
             SELECT OLD.id, OLD.user_id, change_seq,
                    strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')
             FROM users WHERE id = OLD.user_id
             ON CONFLICT (task_id) DO UPDATE
                 SET user_id = excluded.user_id, change_seq = excluded.change_seq,
                     deleted_at = excluded.deleted_at;
     END",
];

const SQLITE_DOWN: &[&str] = &[
    "DROP TRIGGER IF EXISTS tasks_change_seq_insert",
    "DROP TRIGGER IF EXISTS tasks_change_seq_update",
    "DROP TRIGGER IF EXISTS tasks_change_seq_delete",
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
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite takes one change per ALTER TABLE.
        for column in [Users::ChangeSeq, Users::ChangesFloor] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Users::Table)
                        .add_column(big_integer(column).default(0))
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Tasks::Table)
                    .add_column(big_integer(Tasks::ChangeSeq).default(0))
                    .to_owned(),
            )
            .await?;
        run(manager, BACKFILL).await?;
        manager
            .create_index(
                Index::create()
                    .name(TASKS_CHANGE_INDEX)
                    .table(Tasks::Table)
                    .col(Tasks::UserId)
                    .col(Tasks::ChangeSeq)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(TaskTombstones::Table)
                    .col(pk_uuid(TaskTombstones::TaskId))
                    .col(uuid(TaskTombstones::UserId))
                    .col(big_integer(TaskTombstones::ChangeSeq))
                    .col(timestamp_with_time_zone(TaskTombstones::DeletedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name(TOMBSTONES_USER_FOREIGN_KEY)
                            .from(TaskTombstones::Table, TaskTombstones::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(TOMBSTONES_CHANGE_INDEX)
                    .table(TaskTombstones::Table)
                    .col(TaskTombstones::UserId)
                    .col(TaskTombstones::ChangeSeq)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(TOMBSTONES_DELETED_INDEX)
                    .table(TaskTombstones::Table)
                    .col(TaskTombstones::DeletedAt)
                    .to_owned(),
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
            .drop_table(Table::drop().table(TaskTombstones::Table).to_owned())
            .await?;
        // SQLite refuses to drop a column an index still names.
        manager
            .drop_index(
                Index::drop()
                    .name(TASKS_CHANGE_INDEX)
                    .table(Tasks::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Tasks::Table)
                    .drop_column(Tasks::ChangeSeq)
                    .to_owned(),
            )
            .await?;
        for column in [Users::ChangeSeq, Users::ChangesFloor] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Users::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
