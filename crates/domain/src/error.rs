use crate::{
    EmailError, InstantError, LabelsError, PasswordError, PriorityError, TaskDescriptionError,
    TaskTitleError,
};

/// Everything a domain operation can fail with. Adapters translate their own
/// failures into these variants; the HTTP layer maps each one to a status and
/// code in a single place.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// A title broke a rule.
    #[error(transparent)]
    InvalidTitle(#[from] TaskTitleError),
    /// A description broke a rule.
    #[error(transparent)]
    InvalidDescription(#[from] TaskDescriptionError),
    /// A due date is not an instant a client may write.
    #[error("invalid due date")]
    InvalidDueAt(#[source] InstantError),
    /// A priority is not one of the four words.
    #[error(transparent)]
    InvalidPriority(#[from] PriorityError),
    /// Labels broke a rule.
    #[error(transparent)]
    InvalidLabels(#[from] LabelsError),
    /// An email address broke a rule.
    #[error(transparent)]
    InvalidEmail(#[from] EmailError),
    /// A sign-up password broke a rule.
    #[error(transparent)]
    WeakPassword(#[from] PasswordError),
    /// No task has this id.
    #[error("task not found")]
    TaskNotFound,
    /// The task exists but belongs to someone else.
    #[error("task belongs to another user")]
    Forbidden,
    /// The task exists and is the caller's, but its version is not one the
    /// request's `If-Match` names; nothing was written.
    #[error("the task changed since the version the request names")]
    PreconditionFailed,
    /// The caller owns as many tasks as a user may.
    #[error("task limit reached")]
    TaskLimitReached,
    /// A request with this idempotency key is still running.
    #[error("idempotency key in use")]
    IdempotencyKeyInUse,
    /// This idempotency key was used for a different request.
    #[error("idempotency key reused for another request")]
    IdempotencyKeyReused,
    /// A feed position from before the kept history: a deletion it would
    /// need has been forgotten, so the client must read the feed afresh.
    #[error("the feed position is older than the kept history")]
    CursorExpired,
    /// No user has this id.
    #[error("user not found")]
    UserNotFound,
    /// Another account already uses this (normalised) email.
    #[error("email already registered")]
    EmailTaken,
    /// Unknown email or wrong password; deliberately not told apart.
    #[error("invalid email or password")]
    InvalidCredentials,
    /// Too many callers are already waiting for a bounded resource (the
    /// password hasher); the work was not done and may be asked again
    /// after `retry_after`.
    #[error("busy, retry in {retry_after:?}")]
    Busy {
        /// How long the caller should wait before asking again.
        retry_after: std::time::Duration,
    },
    /// Too many failed sign-ins for this email lately, whether or not an
    /// account has it; sign-in is refused until the block ends.
    #[error("too many failed sign-ins")]
    TooManyFailedSignIns {
        /// How long until the block ends.
        retry_after: std::time::Duration,
    },
    /// The database (or another backing service) cannot be reached now.
    #[error("storage unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A failure nobody can act on but an operator; logged, never shown.
    #[error("unexpected failure")]
    Unexpected(#[source] Box<dyn std::error::Error + Send + Sync>),
}
