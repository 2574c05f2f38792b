use sea_orm::entity::prelude::*;
use time::OffsetDateTime;

use super::QuietNull;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tasks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    pub title: String,
    pub description: Option<QuietNull<String>>,
    pub completed: bool,
    /// `None` exactly while `completed` is false.
    pub completed_at: Option<QuietNull<OffsetDateTime>>,
    pub due_at: Option<QuietNull<OffsetDateTime>>,
    /// The rank of the priority, 0 (none) to 3 (high).
    pub priority: i16,
    /// The labels' names in order, joined with U+001F; `""` for none.
    pub labels: String,
    pub version: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::UserId",
        to = "super::users::Column::Id",
        on_delete = "Cascade"
    )]
    User,
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
