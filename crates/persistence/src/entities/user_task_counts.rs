use sea_orm::entity::prelude::*;

/// The task counters of `users`, seen on their own: only the task
/// repository reads or writes them, and the user reads (`users::Model`)
/// leave them out.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// How many tasks the user owns, kept by every create and delete in
    /// the same transaction.
    pub task_count: i32,
    /// How many of them are done, kept by the database's own triggers
    /// (migration `m20261203_000005_done_counts`).
    pub done_count: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
