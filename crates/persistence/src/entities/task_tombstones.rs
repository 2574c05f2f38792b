use sea_orm::entity::prelude::*;
use time::OffsetDateTime;

/// A deleted task, remembered for the changes feed until the retention
/// runs out. Written only by the delete trigger on `tasks`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "task_tombstones")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub task_id: Uuid,
    pub user_id: Uuid,
    /// The owner's change position of the deletion.
    pub change_seq: i64,
    pub deleted_at: OffsetDateTime,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
