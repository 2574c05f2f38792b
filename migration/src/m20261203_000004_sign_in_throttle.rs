//! Failed sign-ins per email, shared by every instance of the service.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SignInFailures {
    Table,
    EmailDigest,
    Failures,
    WindowEndsAt,
    BlockedUntil,
}

/// Serves the clean-up of rows whose window is over.
const WINDOW_END_INDEX: &str = "idx_sign_in_failures_window_ends_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One row per email as typed (a SHA-256 digest of it, so addresses
        // of accounts that do not exist are not kept in clear).
        manager
            .create_table(
                Table::create()
                    .table(SignInFailures::Table)
                    .col(binary(SignInFailures::EmailDigest).primary_key())
                    .col(integer(SignInFailures::Failures))
                    .col(timestamp_with_time_zone(SignInFailures::WindowEndsAt))
                    .col(timestamp_with_time_zone_null(SignInFailures::BlockedUntil))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(WINDOW_END_INDEX)
                    .table(SignInFailures::Table)
                    .col(SignInFailures::WindowEndsAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SignInFailures::Table).to_owned())
            .await
    }
}
