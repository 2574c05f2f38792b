//! Users who sign in at an external identity provider (issue 6).
//!
//! Such users have no password, and their email is whatever the provider
//! says, which may equal the email of a password account or of another
//! external user. So `users.password_hash` becomes nullable and the unique
//! key on `users.email` narrows to password accounts (a partial unique
//! index), where sign-up and sign-in still need one account per address.
//! `user_identities` links each (issuer, subject) pair to exactly one user.
//!
//! SQLite can neither drop a column's NOT NULL nor an inline UNIQUE, so
//! `users` is rebuilt: new table, copy, drop, rename. Dropping `users`
//! while `tasks` still references it would cascade-delete every task, so
//! `tasks` is rebuilt beside it, pointing at the new table first. The same
//! steps run on PostgreSQL, so one tested path serves both backends, and
//! the migration runs in one transaction on both (`use_transaction`), so a
//! failure leaves the old schema untouched.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Users {
    Table,
    Id,
    Email,
    PasswordHash,
    CreatedAt,
    LastSigninAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Tasks {
    Table,
    Id,
    UserId,
    Title,
    Description,
    Completed,
    CreatedAt,
    UpdatedAt,
}

/// The tables being built while the old ones still exist.
#[derive(DeriveIden)]
enum UsersNext {
    Table,
}

#[derive(DeriveIden)]
enum TasksNext {
    Table,
}

#[derive(DeriveIden)]
enum UserIdentities {
    Table,
    Issuer,
    Subject,
    UserId,
    CreatedAt,
}

// A migration is a snapshot: these repeat the first migration's values
// rather than borrow them, so editing that file cannot change this one.
const TITLE_MAX_CHARS: u32 = 500;
const DESCRIPTION_MAX_CHARS: u32 = 2000;
const TASKS_OWNER_FOREIGN_KEY: &str = "fk_tasks_user_id";
const TASKS_LIST_INDEX: &str = "idx_tasks_user_created_id";

/// One account per address, among password accounts only.
const USERS_LOCAL_EMAIL_INDEX: &str = "idx_users_local_email";
const IDENTITIES_USER_FOREIGN_KEY: &str = "fk_user_identities_user_id";
/// One identity per user, so a user is either local or linked to one
/// identity; also serves the cascade from `users`.
const IDENTITIES_USER_INDEX: &str = "idx_user_identities_user_id";

/// Whether a user must have a password: before this migration, yes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Passwords {
    Required,
    Optional,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        rebuild_users_and_tasks(manager, Passwords::Optional).await?;
        manager
            .create_table(
                Table::create()
                    .table(UserIdentities::Table)
                    .col(text(UserIdentities::Issuer))
                    .col(text(UserIdentities::Subject))
                    .col(uuid(UserIdentities::UserId))
                    .col(timestamp_with_time_zone(UserIdentities::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(UserIdentities::Issuer)
                            .col(UserIdentities::Subject),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name(IDENTITIES_USER_FOREIGN_KEY)
                            .from(UserIdentities::Table, UserIdentities::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(IDENTITIES_USER_INDEX)
                    .table(UserIdentities::Table)
                    .col(UserIdentities::UserId)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(UserIdentities::Table).to_owned())
            .await?;
        // Users without a password cannot exist in the old schema; their
        // tasks go with them (the cascade).
        manager
            .exec_stmt(
                Query::delete()
                    .from_table(Users::Table)
                    .and_where(Expr::col(Users::PasswordHash).is_null())
                    .to_owned(),
            )
            .await?;
        rebuild_users_and_tasks(manager, Passwords::Required).await
    }
}

/// Replaces `users` and `tasks` by copies of the given shape, rows intact.
async fn rebuild_users_and_tasks(
    manager: &SchemaManager<'_>,
    passwords: Passwords,
) -> Result<(), DbErr> {
    manager.create_table(users_table(passwords)).await?;
    let user_columns = [
        Users::Id,
        Users::Email,
        Users::PasswordHash,
        Users::CreatedAt,
        Users::LastSigninAt,
    ];
    manager
        .exec_stmt(copy_rows(Users::Table, UsersNext::Table, user_columns)?)
        .await?;

    manager.create_table(tasks_table()).await?;
    let task_columns = [
        Tasks::Id,
        Tasks::UserId,
        Tasks::Title,
        Tasks::Description,
        Tasks::Completed,
        Tasks::CreatedAt,
        Tasks::UpdatedAt,
    ];
    manager
        .exec_stmt(copy_rows(Tasks::Table, TasksNext::Table, task_columns)?)
        .await?;

    // `tasks` first: once it is gone nothing references `users`, and
    // dropping `users` deletes no task. The list index goes with `tasks`.
    manager
        .drop_table(Table::drop().table(Tasks::Table).to_owned())
        .await?;
    manager
        .drop_table(Table::drop().table(Users::Table).to_owned())
        .await?;
    // Renaming rewrites the new tasks' reference to `users` (SQLite 3.26+
    // does this for foreign keys; PostgreSQL references tables by oid).
    manager
        .rename_table(
            Table::rename()
                .table(UsersNext::Table, Users::Table)
                .to_owned(),
        )
        .await?;
    manager
        .rename_table(
            Table::rename()
                .table(TasksNext::Table, Tasks::Table)
                .to_owned(),
        )
        .await?;

    manager
        .create_index(
            Index::create()
                .name(TASKS_LIST_INDEX)
                .table(Tasks::Table)
                .col(Tasks::UserId)
                .col((Tasks::CreatedAt, IndexOrder::Desc))
                .col((Tasks::Id, IndexOrder::Desc))
                .to_owned(),
        )
        .await?;
    if passwords == Passwords::Optional {
        manager
            .create_index(
                Index::create()
                    .name(USERS_LOCAL_EMAIL_INDEX)
                    .table(Users::Table)
                    .col(Users::Email)
                    .unique()
                    .and_where(Expr::col(Users::PasswordHash).is_not_null())
                    .to_owned(),
            )
            .await?;
    }
    Ok(())
}

/// `users_next` in the given shape. On PostgreSQL its primary key keeps the
/// name `users_next_pkey` after the rename; nothing refers to it by name.
fn users_table(passwords: Passwords) -> TableCreateStatement {
    let (email, password_hash) = match passwords {
        Passwords::Required => (text_uniq(Users::Email), text(Users::PasswordHash)),
        Passwords::Optional => (text(Users::Email), text_null(Users::PasswordHash)),
    };
    Table::create()
        .table(UsersNext::Table)
        .col(pk_uuid(Users::Id))
        .col(email)
        .col(password_hash)
        .col(timestamp_with_time_zone(Users::CreatedAt))
        .col(timestamp_with_time_zone_null(Users::LastSigninAt))
        .to_owned()
}

/// `tasks_next`, exactly as the first migration made `tasks`, but owned by
/// rows of `users_next`.
fn tasks_table() -> TableCreateStatement {
    Table::create()
        .table(TasksNext::Table)
        .col(pk_uuid(Tasks::Id))
        .col(uuid(Tasks::UserId))
        .col(string_len(Tasks::Title, TITLE_MAX_CHARS))
        .col(string_len_null(Tasks::Description, DESCRIPTION_MAX_CHARS))
        .col(boolean(Tasks::Completed).default(false))
        .col(timestamp_with_time_zone(Tasks::CreatedAt))
        .col(timestamp_with_time_zone(Tasks::UpdatedAt))
        .foreign_key(
            ForeignKey::create()
                .name(TASKS_OWNER_FOREIGN_KEY)
                .from(TasksNext::Table, Tasks::UserId)
                .to(UsersNext::Table, Users::Id)
                .on_delete(ForeignKeyAction::Cascade),
        )
        .to_owned()
}

/// `INSERT INTO to (columns) SELECT columns FROM from`.
fn copy_rows<C, const N: usize>(
    from: impl IntoIden,
    to: impl IntoIden,
    columns: [C; N],
) -> Result<InsertStatement, DbErr>
where
    C: IntoIden + Clone,
{
    let select = Query::select()
        .columns(columns.clone())
        .from(from)
        .to_owned();
    Query::insert()
        .into_table(to)
        .columns(columns)
        .select_from(select)
        // Only a column-count mismatch fails here, and both lists are
        // the same array.
        .map_err(|err| DbErr::Migration(err.to_string()))
        .map(|insert| insert.to_owned())
}
