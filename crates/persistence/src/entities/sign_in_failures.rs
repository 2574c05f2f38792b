use sea_orm::entity::prelude::*;
use time::OffsetDateTime;

/// Failed sign-ins of one email as typed, keyed by its SHA-256 digest.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sign_in_failures")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub email_digest: Vec<u8>,
    /// Failures counted in the current window.
    pub failures: i32,
    /// When the current window (or the block, if later) ends; after it the
    /// row counts for nothing.
    pub window_ends_at: OffsetDateTime,
    /// Until when sign-ins are refused, if the limit was reached.
    pub blocked_until: Option<OffsetDateTime>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
