//! The storage adapters of todo-api: SeaORM implementations of the domain's
//! `TaskRepository`, `IdempotencyStore`, `UserRepository`,
//! `IdentityRepository` and `SignInFailureRepository` ports, on PostgreSQL
//! and SQLite, and the code that opens, migrates and probes the database.
//!
//! This crate depends on `todo-domain` and on the `migration` schema, never
//! on the HTTP layer. Nothing SeaORM-shaped leaves it except the
//! [`Database`] handle the composition root passes around (SeaORM's
//! connection with a deadline on every statement): rows become domain
//! values here, and database failures become `DomainError`s in a single
//! place.

mod change_channel;
mod connection;
mod conversions;
mod database;
mod diagnosis;
mod entities;
mod errors;
mod idempotency_store;
mod identity_repository;
mod pool;
mod prebuilt;
mod sign_in_failure_repository;
mod task_repository;
mod timestamps;
mod user_repository;

#[cfg(feature = "test-support")]
pub mod testing;

pub use change_channel::{CHANGES_CHANNEL, ChangeListener, PgChangeNotifier};
pub use connection::{
    Backend, ConnectError, DatabaseSettings, backend_of, backend_of_url, connect, connect_lazily,
    is_ready, migrate,
};
pub use database::Database;
pub use idempotency_store::SeaIdempotencyStore;
pub use identity_repository::SeaIdentityRepository;
pub use pool::{PoolUsage, pool_usage};
/// SeaORM's own connection pool, which [`Database`] wraps.
pub use sea_orm::DatabaseConnection;
pub use sign_in_failure_repository::SeaSignInFailureRepository;
pub use task_repository::SeaTaskRepository;
pub use user_repository::SeaUserRepository;
