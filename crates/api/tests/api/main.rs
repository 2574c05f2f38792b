//! End-to-end tests: the real application on a random port, over HTTP, on
//! a fresh database per test (PostgreSQL when reachable; see
//! `todo_persistence::testing`). One binary, so it links once.

mod helpers;

mod auth;
mod concurrency;
mod docs;
mod general;
mod health;
mod isolation;
mod metrics;
mod outage;
mod shutdown;
mod tasks;
mod telemetry;
