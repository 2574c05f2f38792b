use sea_orm::entity::prelude::*;

/// The change position of `tasks`, seen on its own: only the changes feed
/// reads it, and the database's triggers alone write it (migration
/// `m20261203_000006_change_feed`), so task reads and writes leave it out.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tasks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    /// The owner's change position of the task's latest change.
    pub change_seq: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
