//! End-to-end tests: the real application on a random port, over HTTP, on
//! a fresh database per test (PostgreSQL when reachable; see
//! `todo_persistence::testing`). One binary, so it links once.

mod helpers;

mod auth;
mod concurrency;
mod external_auth;
mod general;
mod health;
mod isolation;
mod outage;
mod provider;
mod shutdown;
mod tasks;
