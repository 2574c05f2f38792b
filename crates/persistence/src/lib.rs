//! The storage adapters of todo-api: SeaORM implementations of the domain's
//! `TaskRepository`, `IdempotencyStore`, `UserRepository` and
//! `IdentityRepository` ports, on PostgreSQL and SQLite, and the code that
//! opens, migrates and probes the database.
//!
//! This crate depends on `todo-domain` and on the `migration` schema, never
//! on the HTTP layer. Nothing SeaORM-shaped leaves it except the
//! [`DatabaseConnection`] handle the composition root passes around: rows
//! become domain values here, and database failures become `DomainError`s
//! in a single place.

mod connection;
mod conversions;
mod entities;
mod errors;
mod idempotency_store;
mod identity_repository;
mod pool;
mod task_repository;
mod timestamps;
mod user_repository;

#[cfg(feature = "test-support")]
pub mod testing;

pub use connection::{
    Backend, ConnectError, DatabaseSettings, backend_of, connect, is_ready, migrate,
};
pub use idempotency_store::SeaIdempotencyStore;
pub use identity_repository::SeaIdentityRepository;
pub use pool::{PoolUsage, pool_usage};
/// The open database every repository, the readiness probe and the
/// metrics share: SeaORM's own connection pool.
pub use sea_orm::DatabaseConnection;
pub use task_repository::SeaTaskRepository;
pub use user_repository::SeaUserRepository;
