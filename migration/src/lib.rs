//! The todo-api schema as sea-orm-migration migrations: the only place the
//! tables, keys and indexes are written down.
//!
//! Migrations use SeaORM's portable schema builders (no SQL strings) so the
//! same history applies to PostgreSQL and to SQLite. This crate knows nothing
//! of the domain or of the adapters that read these tables.

pub use sea_orm_migration::prelude::*;

mod m20260201_000001_create_users_and_tasks;
mod m20260301_000002_external_identities;
mod m20261203_000003_front_end_tasks;
mod m20261203_000004_sign_in_throttle;
mod m20261203_000005_done_counts;
mod m20261203_000006_change_feed;
mod m20261203_000007_open_tasks_due_index;

/// Every migration of the schema, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20260201_000001_create_users_and_tasks::Migration),
            Box::new(m20260301_000002_external_identities::Migration),
            Box::new(m20261203_000003_front_end_tasks::Migration),
            Box::new(m20261203_000004_sign_in_throttle::Migration),
            Box::new(m20261203_000005_done_counts::Migration),
            Box::new(m20261203_000006_change_feed::Migration),
            Box::new(m20261203_000007_open_tasks_due_index::Migration),
        ]
    }
}
