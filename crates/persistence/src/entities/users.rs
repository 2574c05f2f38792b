use sea_orm::entity::prelude::*;
use time::OffsetDateTime;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Unique among password accounts only (a partial index): users of an
    /// external identity provider may share an address with anyone.
    pub email: String,
    /// `None` for users provisioned from an external identity, who cannot
    /// sign in with a password.
    pub password_hash: Option<String>,
    pub created_at: OffsetDateTime,
    pub last_signin_at: Option<OffsetDateTime>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
