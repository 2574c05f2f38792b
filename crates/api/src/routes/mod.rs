//! HTTP handlers, one module per resource. Each handler parses (through
//! extractors), calls one service method, and maps the result.

pub mod auth;
pub mod docs;
pub mod events;
pub mod fallback;
pub mod health;
pub mod metrics;
pub mod tasks;
