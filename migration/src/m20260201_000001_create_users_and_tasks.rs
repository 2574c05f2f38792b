//! Users and their tasks.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    PasswordHash,
    CreatedAt,
    LastSigninAt,
}

#[derive(DeriveIden)]
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

/// Character limits of the domain's `TaskTitle` and `TaskDescription`; the
/// columns repeat them so a value that slipped past the domain still fails
/// on PostgreSQL (SQLite does not enforce `varchar` lengths).
const TITLE_MAX_CHARS: u32 = 500;
const DESCRIPTION_MAX_CHARS: u32 = 2000;

const TASKS_OWNER_FOREIGN_KEY: &str = "fk_tasks_user_id";
/// Serves "a user's tasks, newest first": the equality column first, then
/// the two sort keys in the order and direction the list query uses.
const TASKS_LIST_INDEX: &str = "idx_tasks_user_created_id";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(pk_uuid(Users::Id))
                    .col(text_uniq(Users::Email))
                    .col(text(Users::PasswordHash))
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .col(timestamp_with_time_zone_null(Users::LastSigninAt))
                    .to_owned(),
            )
            .await?;

        // The foreign key is declared inside CREATE TABLE because SQLite
        // cannot add constraints to an existing table.
        manager
            .create_table(
                Table::create()
                    .table(Tasks::Table)
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
                            .from(Tasks::Table, Tasks::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
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
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Tasks first: they reference users.
        manager
            .drop_table(Table::drop().table(Tasks::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Users::Table).to_owned())
            .await
    }
}
