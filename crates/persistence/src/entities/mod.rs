//! SeaORM views of the tables the `migration` crate creates. They describe
//! rows for reading; writes are built as explicit statements (see
//! `timestamps`), and rows become domain values only in `conversions`.

pub(crate) mod idempotency_keys;
mod quiet_null;
pub(crate) mod sign_in_failures;
pub(crate) mod task_changes;
pub(crate) mod task_labels;
pub(crate) mod task_tombstones;
pub(crate) mod tasks;
pub(crate) mod user_change_heads;
pub(crate) mod user_identities;
pub(crate) mod user_task_counts;
pub(crate) mod users;

pub(crate) use quiet_null::QuietNull;
