//! End-to-end tests: the real application on a random port, over HTTP, on
//! a fresh database per test (PostgreSQL when reachable; see
//! `todo_persistence::testing`). One binary, so it links once.

mod db_probe;
mod helpers;
mod server_process;

mod abuse;
mod auth;
mod changes;
mod concurrency;
mod conditional_requests;
mod cross_user;
mod docs;
mod events;
mod external_auth;
mod general;
mod hashing;
mod health;
mod idempotency;
mod instances;
mod isolation;
mod limits;
mod metrics;
mod no_echo;
mod outage;
mod pools;
mod properties;
mod provider;
mod proxies;
mod shutdown;
mod sign_in_limit;
mod slow_clients;
mod start_up;
mod task_fields;
mod task_list;
mod task_patch;
mod tasks;
mod telemetry;
