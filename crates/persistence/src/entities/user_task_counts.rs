use sea_orm::entity::prelude::*;

/// The task counter of `users`, seen on its own: only the task repository
/// reads or writes it, and the user reads (`users::Model`) leave it out.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// How many tasks the user owns, kept by every create and delete in
    /// the same transaction.
    pub task_count: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
