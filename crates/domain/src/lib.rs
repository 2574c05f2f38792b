//! The heart of todo-api: tasks, users, the rules that keep them valid and
//! private, the ports through which the outside world is reached, and the
//! services the HTTP layer calls.
//!
//! This crate must stay free of web, SQL and async-runtime crates: adapters
//! (`todo-persistence`, `todo-api`) depend on it, never the other way round.
//! Every value type here can only hold a valid value, so code that holds a
//! [`TaskTitle`] or an [`Email`] never needs to check it again.

mod clock;
mod error;
mod identity;
mod ids;
pub mod ports;
mod services;
mod sign_in_limit;
mod task;
mod timestamp;
mod user;

pub use clock::{Clock, SystemClock};
pub use error::DomainError;
pub use identity::{
    ExternalIdentity, ExternalIdentityError, ISSUER_MAX_CHARS, NewExternalUser, Provisioned,
    SUBJECT_MAX_CHARS,
};
pub use ids::{InvalidId, TaskId, UserId};
pub use services::{AccountService, IdentityService, TaskService};
pub use sign_in_limit::{SignInKey, SignInLimit};
pub use task::{
    CompletionChange, DESCRIPTION_MAX_CHARS, NewTask, TITLE_MAX_CHARS, Task, TaskChanges,
    TaskDescription, TaskDescriptionError, TaskTitle, TaskTitleError,
};
pub use timestamp::Timestamp;
pub use user::{
    EMAIL_MAX_CHARS, Email, EmailError, NewUser, PASSWORD_MAX_CHARS, PASSWORD_MIN_CHARS, Password,
    PasswordError, PasswordHash, User, UserCredentials,
};
