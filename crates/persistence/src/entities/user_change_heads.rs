use sea_orm::entity::prelude::*;

/// Where a user's changes feed stands, seen on its own: only the task
/// repository reads these columns of `users`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The position of the user's latest change, raised by the triggers.
    pub change_seq: i64,
    /// The highest position whose deletion has been forgotten.
    pub changes_floor: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
