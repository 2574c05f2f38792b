//! The HTTP face of todo-api: actix-web handlers, the JWT guard, request
//! and response shapes, the mapping of errors to statuses, configuration,
//! and the wiring of adapters into the domain's services.
//!
//! Business rules live in `todo-domain`; SQL lives in `todo-persistence`.
//! This crate parses, calls one service method, and maps the answer.

pub mod auth;
pub mod body;
pub mod conditional;
pub mod config;
pub mod connection_watch;
pub mod dto;
pub mod error;
pub mod events;
pub mod list_query;
pub mod metrics;
pub mod openapi;
pub mod password;
pub mod proxies;
pub mod rate_limit;
pub mod retry;
pub mod routes;
pub mod security_headers;
pub mod startup;
pub mod telemetry;

pub use config::Settings;
pub use startup::{Application, StartupError};
