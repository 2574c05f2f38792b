//! HTTP handlers, one module per resource. Each handler parses (through
//! extractors), calls one service method, and maps the result.

pub mod auth;
pub mod fallback;
pub mod health;
pub mod tasks;
