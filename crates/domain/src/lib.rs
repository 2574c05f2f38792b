//! The heart of todo-api: tasks, users, the rules that keep them valid and
//! private, the ports through which the outside world is reached, and the
//! services the HTTP layer calls.
//!
//! This crate must stay free of web, SQL and async-runtime crates: adapters
//! (`todo-persistence`, `todo-api`) depend on it, never the other way round.
//! Every value type here can only hold a valid value, so code that holds a
//! [`TaskTitle`] or an [`Email`] never needs to check it again.

mod changes;
mod clock;
mod error;
mod idempotency;
mod identity;
mod ids;
pub mod ports;
mod query;
mod services;
mod sign_in_limit;
mod task;
mod task_fields;
mod timestamp;
mod user;

pub use changes::{
    CHANGES_PAGE_MAX, Change, ChangePage, ChangeSlice, DELETIONS_FORGOTTEN_PER_BATCH, FeedPosition,
    PositionedChange,
};
pub use clock::{Clock, SystemClock};
pub use error::DomainError;
pub use idempotency::{
    CLAIM_TIMEOUT, Claim, ClaimOutcome, IDEMPOTENCY_KEY_MAX_LEN, IDEMPOTENCY_KEY_TTL,
    IdempotencyKey, IdempotencyKeyError, IdempotentRequest, Receipt, RecordedResponse,
    RequestFingerprint, ResponseRecorder,
};
pub use identity::{
    ExternalIdentity, ExternalIdentityError, ISSUER_MAX_CHARS, NewExternalUser, Provisioned,
    SUBJECT_MAX_CHARS,
};
pub use ids::{InvalidId, TaskId, UserId};
pub use query::{
    PAGE_LIMIT_MAX, PageLimit, PageLimitError, PageRequest, SEARCH_MAX_CHARS, SearchText,
    SearchTextError, SortField, SortKey, SortOrder, TaskFilter, TaskPage, TaskPosition, TaskQuery,
    TaskSort,
};
pub use services::{AccountService, IdentityService, Outcome, TaskLimits, TaskService};
pub use sign_in_limit::{SignInKey, SignInLimit};
pub use task::{
    CompletionChange, DESCRIPTION_MAX_CHARS, NewTask, Precondition, TITLE_MAX_CHARS, Task,
    TaskDescription, TaskDescriptionError, TaskPatch, TaskTitle, TaskTitleError, TaskVersion,
};
pub use task_fields::{
    InstantError, LABEL_MAX_CHARS, LABELS_MAX, Label, Labels, LabelsError, Priority, PriorityError,
    label_key, parse_client_instant,
};
pub use timestamp::Timestamp;
pub use user::{
    EMAIL_MAX_CHARS, Email, EmailError, NewUser, PASSWORD_MAX_CHARS, PASSWORD_MIN_CHARS, Password,
    PasswordError, PasswordHash, User, UserCredentials,
};
