//! End-to-end tests: the real application on a random port, over HTTP, on
//! a fresh database per test (PostgreSQL when reachable; see
//! `todo_persistence::testing`). One binary, so it links once.

mod db_probe;
mod helpers;
mod server_process;

mod abuse;
mod auth;
mod concurrency;
mod cross_user;
mod docs;
mod external_auth;
mod general;
mod hashing;
mod health;
mod instances;
mod isolation;
mod metrics;
mod no_echo;
mod outage;
mod properties;
mod provider;
mod proxies;
mod shutdown;
mod sign_in_limit;
mod slow_clients;
mod start_up;
mod tasks;
mod telemetry;
