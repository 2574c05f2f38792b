//! The traits through which services reach storage and password hashing.
//! Adapters implement them; tests replace them with mockall mocks (feature
//! `mocks`).

use async_trait::async_trait;

use crate::{
    ChangeSlice, Claim, ClaimOutcome, CompletionChange, DomainError, Email, ExternalIdentity,
    FeedPosition, IdempotencyKey, NewExternalUser, NewUser, Password, PasswordHash, Precondition,
    Provisioned, Receipt, RequestFingerprint, Task, TaskId, TaskPage, TaskPatch, TaskQuery,
    Timestamp, User, UserCredentials, UserId,
};
use crate::{SignInKey, SignInLimit};

/// Storage of tasks. Every method that touches one task takes the caller's
/// id and filters by owner inside the statement itself, so a task of another
/// user is indistinguishable from a missing one at this level. Every write
/// that takes a [`Precondition`] checks it in the statement that writes.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait TaskRepository: Send + Sync {
    /// Stores a new task, unless its owner already has `max_tasks` tasks:
    /// the count is checked and the task stored atomically, so racing
    /// creates never leave more. With a receipt, the answer is recorded in
    /// the same transaction.
    ///
    /// # Errors
    /// `TaskLimitReached`; `IdempotencyKeyInUse` when the receipt's claim
    /// was taken over; `Unavailable` or `Unexpected`. Nothing is stored on
    /// any error.
    async fn insert(
        &self,
        task: &Task,
        max_tasks: u32,
        receipt: Option<Receipt>,
    ) -> Result<(), DomainError>;

    /// The tasks of `owner` that pass the query's filter, in its order, one
    /// page of them when it asks for a page; with how many pass in all.
    /// `now` decides which tasks are overdue.
    ///
    /// # Errors
    /// `Unavailable` or `Unexpected`.
    async fn list_by_owner(
        &self,
        owner: UserId,
        query: &TaskQuery,
        now: Timestamp,
    ) -> Result<TaskPage, DomainError>;

    /// The task with this id if `owner` owns it.
    ///
    /// # Errors
    /// `Unavailable` or `Unexpected`.
    async fn find_owned(&self, id: TaskId, owner: UserId) -> Result<Option<Task>, DomainError>;

    /// Applies `patch` to the task if `owner` owns it and its version meets
    /// `precondition`, in one statement; returns the new state. Only when a
    /// field really changes do `updated_at` (to `at`, never backwards) and
    /// the version move; `completed_at` follows `completed`.
    ///
    /// # Errors
    /// `Unavailable` or `Unexpected`.
    async fn patch_owned(
        &self,
        id: TaskId,
        owner: UserId,
        patch: &TaskPatch,
        precondition: Option<Precondition>,
        at: Timestamp,
    ) -> Result<Option<Task>, DomainError>;

    /// Applies a completion change in one atomic statement (a toggle reads
    /// and writes the row under the database's own lock, so concurrent
    /// toggles never lose one); returns the new state. With a receipt, the
    /// answer is recorded in the same transaction.
    ///
    /// # Errors
    /// `IdempotencyKeyInUse` when the receipt's claim was taken over;
    /// `Unavailable` or `Unexpected`.
    async fn change_completion_owned(
        &self,
        id: TaskId,
        owner: UserId,
        change: CompletionChange,
        precondition: Option<Precondition>,
        at: Timestamp,
        receipt: Option<Receipt>,
    ) -> Result<Option<Task>, DomainError>;

    /// Deletes the task if `owner` owns it and its version meets
    /// `precondition`; `false` when nothing matched.
    ///
    /// # Errors
    /// `Unavailable` or `Unexpected`.
    async fn delete_owned(
        &self,
        id: TaskId,
        owner: UserId,
        precondition: Option<Precondition>,
    ) -> Result<bool, DomainError>;

    /// Deletes every completed task of `owner`; returns how many.
    ///
    /// # Errors
    /// `Unavailable` or `Unexpected`.
    async fn delete_completed(&self, owner: UserId) -> Result<u64, DomainError>;

    /// Whether any user has a task with this id. Asked only after an owned
    /// lookup missed, to tell "forbidden" from "not found".
    ///
    /// # Errors
    /// `Unavailable` or `Unexpected`.
    async fn exists(&self, id: TaskId) -> Result<bool, DomainError>;

    /// `owner`'s changes after `since`, at most `fetch` of them, in
    /// position order: tasks whose latest change is after
    /// `since.tasks_after` as they are now, and deletions after
    /// `since.deletes_after`. Without `since`, every current task and the
    /// deletions after the head. The head and floor are read before the
    /// changes, so every change at or below the head is among them.
    ///
    /// # Errors
    /// `Unavailable` or `Unexpected`.
    async fn changes_since(
        &self,
        owner: UserId,
        since: Option<FeedPosition>,
        fetch: u32,
    ) -> Result<ChangeSlice, DomainError>;

    /// Forgets up to `batch` of the deletions recorded before `before`,
    /// oldest first, raising each owner's floor to the highest position
    /// forgotten, in one transaction; returns how many went (fewer than
    /// `batch`: none is left).
    ///
    /// # Errors
    /// `Unavailable` or `Unexpected`.
    async fn forget_deletions(&self, before: Timestamp, batch: u32) -> Result<u64, DomainError>;
}

/// Storage of idempotency keys: per user, kept for
/// [`crate::IDEMPOTENCY_KEY_TTL`] after their first use.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` of `owner` for a request with this fingerprint, in a
    /// statement of its own so other requests see the claim at once. A key
    /// whose time ran out counts as unused, and so does one whose claim was
    /// left unfinished for longer than [`crate::CLAIM_TIMEOUT`].
    ///
    /// # Errors
    /// `Unavailable` or `Unexpected`.
    async fn claim(
        &self,
        owner: UserId,
        key: &IdempotencyKey,
        fingerprint: &RequestFingerprint,
        now: Timestamp,
    ) -> Result<ClaimOutcome, DomainError>;

    /// Gives an unfinished claim back, so the key is unused again; does
    /// nothing if the claim was taken over or finished.
    ///
    /// # Errors
    /// `Unavailable` or `Unexpected`.
    async fn release(&self, claim: &Claim) -> Result<(), DomainError>;

    /// Forgets every key whose time ran out before `now`; returns how many.
    ///
    /// # Errors
    /// `Unavailable` or `Unexpected`.
    async fn purge_expired(&self, now: Timestamp) -> Result<u64, DomainError>;
}

/// Storage of user accounts.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait UserRepository: Send + Sync {
    /// Stores a new user.
    ///
    /// # Errors
    /// `EmailTaken` when the email is already registered (the unique index
    /// decides, so racing sign-ups get exactly one success); `Unavailable`
    /// or `Unexpected` otherwise.
    async fn insert(&self, user: &NewUser) -> Result<User, DomainError>;

    /// The id and password hash of the password account with this email,
    /// if any. Users created from an external identity have no password and
    /// are never returned here, whatever their email.
    ///
    /// # Errors
    /// `Unavailable` or `Unexpected`.
    async fn find_credentials(&self, email: &Email)
    -> Result<Option<UserCredentials>, DomainError>;

    /// Records a successful sign-in and returns the updated profile.
    ///
    /// # Errors
    /// `UserNotFound` if the user vanished meanwhile; `Unavailable` or
    /// `Unexpected`.
    async fn record_sign_in(&self, id: UserId, at: Timestamp) -> Result<User, DomainError>;

    /// The profile of a user, if the user exists.
    ///
    /// # Errors
    /// `Unavailable` or `Unexpected`.
    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, DomainError>;
}

/// Slow, salted password hashing. Implementations must not block the
/// caller's async executor: the work belongs on a blocking thread.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait PasswordHasher: Send + Sync {
    /// Hashes a new password.
    ///
    /// # Errors
    /// `Busy` when too many hashes are already waiting, `Unexpected` if
    /// the hasher itself fails.
    async fn hash(&self, password: &Password) -> Result<PasswordHash, DomainError>;

    /// Whether `candidate` matches `stored`. With no stored hash (unknown
    /// email) the implementation must spend the same effort and answer
    /// `false`, so response times do not reveal which emails exist.
    ///
    /// # Errors
    /// `Busy` when too many hashes are already waiting, `Unexpected` if
    /// the hasher itself fails.
    async fn verify(
        &self,
        candidate: &str,
        stored: Option<PasswordHash>,
    ) -> Result<bool, DomainError>;
}

/// Storage of the links between external identities and our users.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait IdentityRepository: Send + Sync {
    /// The user linked to `identity`, if any.
    ///
    /// # Errors
    /// `Unavailable` or `Unexpected`.
    async fn find_user(&self, identity: &ExternalIdentity) -> Result<Option<User>, DomainError>;

    /// Stores the user and its link in one transaction. When the identity
    /// is already linked (a racing first request won), stores nothing and
    /// answers [`Provisioned::AlreadyLinked`]: the unique key on the
    /// identity decides, so racing requests create exactly one user.
    ///
    /// # Errors
    /// `Unavailable` or `Unexpected`.
    async fn insert_linked_user(&self, user: &NewExternalUser) -> Result<Provisioned, DomainError>;

    /// Replaces the email of an externally provisioned user and returns the
    /// updated profile.
    ///
    /// # Errors
    /// `UserNotFound` if the user vanished meanwhile; `Unavailable` or
    /// `Unexpected`.
    async fn update_email(&self, id: UserId, email: &Email) -> Result<User, DomainError>;
}

/// Failed sign-ins per [`SignInKey`], kept where every instance of the
/// service sees them (the database), so the limit holds however many
/// instances share the work.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait SignInFailureRepository: Send + Sync {
    /// Until when `key` is blocked, if it still is at `now`.
    ///
    /// # Errors
    /// `Unavailable` or `Unexpected`.
    async fn blocked_until(
        &self,
        key: &SignInKey,
        now: Timestamp,
    ) -> Result<Option<Timestamp>, DomainError>;

    /// Counts one failure of `key` at `now` by the rule of [`SignInLimit`],
    /// in one atomic statement: failures recorded at once by any number of
    /// requests and instances are each counted exactly once.
    ///
    /// # Errors
    /// `Unavailable` or `Unexpected`.
    async fn record_failure(
        &self,
        key: &SignInKey,
        now: Timestamp,
        limit: SignInLimit,
    ) -> Result<(), DomainError>;

    /// Forgets the failures of `key` (it has just signed in).
    ///
    /// # Errors
    /// `Unavailable` or `Unexpected`.
    async fn clear(&self, key: &SignInKey) -> Result<(), DomainError>;

    /// Forgets every key whose window and block are both over at `now`:
    /// they no longer count for anything.
    ///
    /// # Errors
    /// `Unavailable` or `Unexpected`.
    async fn forget_expired(&self, now: Timestamp) -> Result<u64, DomainError>;
}

/// Told after every write to a user's tasks has committed, so whatever
/// waits on that user's changes (the live event stream) hears of it. The
/// feed stays the one source of what changed and in which order: news
/// that carries a change is only a shortcut for a reader standing right
/// before it, and any other reader reads the feed, so a lost, late or
/// doubled call costs at most a read. Plain and synchronous, so an
/// in-process channel and a database `NOTIFY` can both stand behind it;
/// it must not block.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait ChangeNotifier: Send + Sync {
    /// `owner`'s tasks changed (a delete, or news that says no more).
    fn changed(&self, owner: UserId);

    /// `task` was created or changed, and this is it as the write left
    /// it. `position` is the position that write took in its owner's
    /// feed, when the caller knows it: a writer does not (the database
    /// hands positions out), news that crossed from another instance
    /// may.
    fn written(&self, task: &Task, position: Option<u64>);

    /// Any user's tasks may have changed: the news of some writes was lost
    /// (the connection that carries it between instances dropped), so
    /// everyone waiting reads the feed again.
    fn all_changed(&self);
}

/// A notifier that tells no one: for a service nobody listens to.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoNotifier;

impl ChangeNotifier for NoNotifier {
    fn changed(&self, _owner: UserId) {}

    fn written(&self, _task: &Task, _position: Option<u64>) {}

    fn all_changed(&self) {}
}
