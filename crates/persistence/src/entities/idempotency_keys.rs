use sea_orm::entity::prelude::*;
use time::OffsetDateTime;

/// A client's idempotency key: who holds it, for which request, and the
/// answer once there is one.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "idempotency_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    pub fingerprint: Vec<u8>,
    /// The request holding the key; a takeover writes a new one.
    pub claim_token: Uuid,
    pub claimed_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    /// The three response columns stay `None` while the request runs.
    pub response_status: Option<i16>,
    /// `Name: value` lines.
    pub response_headers: Option<String>,
    pub response_body: Option<String>,
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
