use std::sync::Arc;

mod identity;

pub use identity::IdentityService;

use crate::ports::{
    ChangeNotifier, IdempotencyStore, NoNotifier, PasswordHasher, SignInFailureRepository,
    TaskRepository, UserRepository,
};
use crate::{
    CHANGES_PAGE_MAX, ChangePage, ClaimOutcome, Clock, CompletionChange,
    DELETIONS_FORGOTTEN_PER_BATCH, DomainError, Email, IdempotentRequest, NewTask, NewUser,
    Password, Precondition, Receipt, RecordedResponse, Task, TaskId, TaskPage, TaskPatch,
    TaskQuery, TaskVersion, User, UserId,
};
use crate::{FeedPosition, SignInKey, SignInLimit, Timestamp};

/// The limits a task service enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskLimits {
    /// The most tasks one user may own.
    pub max_tasks_per_user: u32,
}

impl Default for TaskLimits {
    fn default() -> Self {
        Self {
            max_tasks_per_user: 10_000,
        }
    }
}

/// What a retry-safe operation produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    /// The work was done now.
    Done(T),
    /// The same request had succeeded before; this is its recorded answer,
    /// and nothing was done now.
    Replayed(RecordedResponse),
}

/// Task use cases. Every method takes the caller's id: there is no way to
/// reach a task without naming whose it must be.
pub struct TaskService {
    tasks: Arc<dyn TaskRepository>,
    keys: Arc<dyn IdempotencyStore>,
    clock: Arc<dyn Clock>,
    limits: TaskLimits,
    notifier: Arc<dyn ChangeNotifier>,
}

impl TaskService {
    /// Builds the service over its ports.
    #[must_use]
    pub fn new(
        tasks: Arc<dyn TaskRepository>,
        keys: Arc<dyn IdempotencyStore>,
        clock: Arc<dyn Clock>,
        limits: TaskLimits,
    ) -> Self {
        Self {
            tasks,
            keys,
            clock,
            limits,
            notifier: Arc::new(NoNotifier),
        }
    }

    /// Tells `notifier` of every write that succeeded, after it
    /// committed (the live event stream listens there).
    #[must_use]
    pub fn with_notifier(mut self, notifier: Arc<dyn ChangeNotifier>) -> Self {
        self.notifier = notifier;
        self
    }

    /// Passes a delete's answer through, telling the notifier first when it
    /// is a success: only then did something commit.
    fn told<T>(&self, owner: UserId, outcome: Result<T, DomainError>) -> Result<T, DomainError> {
        if outcome.is_ok() {
            self.notifier.changed(owner);
        }
        outcome
    }

    /// Passes an update's answer through, handing the written task to the
    /// notifier first when there is one.
    fn told_written(&self, outcome: Result<Task, DomainError>) -> Result<Task, DomainError> {
        if let Ok(task) = &outcome {
            self.notifier.written(task, None);
        }
        outcome
    }

    /// As [`Self::told_written`] for a retry-safe write: a replayed answer
    /// did nothing now, so it tells no one.
    fn told_outcome(
        &self,
        outcome: Result<Outcome<Task>, DomainError>,
    ) -> Result<Outcome<Task>, DomainError> {
        if let Ok(Outcome::Done(task)) = &outcome {
            self.notifier.written(task, None);
        }
        outcome
    }

    /// Creates a task owned by `owner`. `completed_at` of a task created
    /// done is its creation time.
    ///
    /// # Errors
    /// `TaskLimitReached`; `IdempotencyKeyInUse` or `IdempotencyKeyReused`
    /// for a retry-safe request; `Unavailable` or `Unexpected` from storage.
    pub async fn create(
        &self,
        owner: UserId,
        new: NewTask,
        retry: Option<IdempotentRequest>,
    ) -> Result<Outcome<Task>, DomainError> {
        let now = self.clock.now();
        let task = Task {
            id: TaskId::generate(),
            owner,
            title: new.title,
            description: new.description,
            completed: new.completed,
            completed_at: new.completed.then_some(now),
            due_at: new.due_at,
            priority: new.priority,
            labels: new.labels,
            created_at: now,
            updated_at: now,
            version: TaskVersion::FIRST,
        };
        let max_tasks = self.limits.max_tasks_per_user;
        let outcome = self
            .retry_safely(owner, retry, |receipt| async move {
                self.tasks.insert(&task, max_tasks, receipt).await?;
                Ok(task)
            })
            .await;
        self.told_outcome(outcome)
    }

    /// The caller's tasks that pass the query, in its order.
    ///
    /// # Errors
    /// `Unavailable` or `Unexpected` from storage.
    pub async fn list(&self, owner: UserId, query: &TaskQuery) -> Result<TaskPage, DomainError> {
        self.tasks
            .list_by_owner(owner, query, self.clock.now())
            .await
    }

    /// One of the caller's tasks.
    ///
    /// # Errors
    /// `TaskNotFound`, `Forbidden`, or a storage failure.
    pub async fn get(&self, owner: UserId, id: TaskId) -> Result<Task, DomainError> {
        match self.tasks.find_owned(id, owner).await? {
            Some(task) => Ok(task),
            None => Err(self.explain_miss(id).await),
        }
    }

    /// Changes the fields `patch` names (a `PUT` names at least title and
    /// description).
    ///
    /// # Errors
    /// `TaskNotFound`, `Forbidden`, `PreconditionFailed`, or a storage
    /// failure.
    pub async fn update(
        &self,
        owner: UserId,
        id: TaskId,
        patch: TaskPatch,
        precondition: Option<Precondition>,
    ) -> Result<Task, DomainError> {
        let now = self.clock.now();
        let conditional = precondition.is_some();
        let outcome = match self
            .tasks
            .patch_owned(id, owner, &patch, precondition, now)
            .await?
        {
            Some(task) => Ok(task),
            None => Err(self.explain_conditional_miss(id, owner, conditional).await),
        };
        self.told_written(outcome)
    }

    /// Flips or sets a task's completion.
    ///
    /// # Errors
    /// `TaskNotFound`, `Forbidden`, `PreconditionFailed`;
    /// `IdempotencyKeyInUse` or `IdempotencyKeyReused` for a retry-safe
    /// request; or a storage failure.
    pub async fn change_completion(
        &self,
        owner: UserId,
        id: TaskId,
        change: CompletionChange,
        precondition: Option<Precondition>,
        retry: Option<IdempotentRequest>,
    ) -> Result<Outcome<Task>, DomainError> {
        let now = self.clock.now();
        let conditional = precondition.is_some();
        let outcome = self
            .retry_safely(owner, retry, |receipt| async move {
                match self
                    .tasks
                    .change_completion_owned(id, owner, change, precondition, now, receipt)
                    .await?
                {
                    Some(task) => Ok(task),
                    None => Err(self.explain_conditional_miss(id, owner, conditional).await),
                }
            })
            .await;
        self.told_outcome(outcome)
    }

    /// Deletes one of the caller's tasks.
    ///
    /// # Errors
    /// `TaskNotFound` (also for a second delete), `Forbidden`,
    /// `PreconditionFailed`, or a storage failure.
    pub async fn delete(
        &self,
        owner: UserId,
        id: TaskId,
        precondition: Option<Precondition>,
    ) -> Result<(), DomainError> {
        let conditional = precondition.is_some();
        let outcome = if self.tasks.delete_owned(id, owner, precondition).await? {
            Ok(())
        } else {
            Err(self.explain_conditional_miss(id, owner, conditional).await)
        };
        self.told(owner, outcome)
    }

    /// Deletes every completed task of the caller; returns how many.
    ///
    /// # Errors
    /// `Unavailable` or `Unexpected` from storage.
    pub async fn delete_completed(&self, owner: UserId) -> Result<u64, DomainError> {
        let outcome = self.tasks.delete_completed(owner).await;
        self.told(owner, outcome)
    }

    /// Forgets idempotency keys whose time ran out; returns how many.
    ///
    /// # Errors
    /// `Unavailable` or `Unexpected` from storage.
    pub async fn purge_expired_keys(&self) -> Result<u64, DomainError> {
        self.keys.purge_expired(self.clock.now()).await
    }

    /// What changed in the caller's tasks after `since`; without it, every
    /// task as it is now. At most [`CHANGES_PAGE_MAX`] changes a page.
    ///
    /// # Errors
    /// `CursorExpired` when `since` is older than the kept deletions;
    /// `Unavailable` or `Unexpected` from storage.
    pub async fn changes(
        &self,
        owner: UserId,
        since: Option<FeedPosition>,
    ) -> Result<ChangePage, DomainError> {
        let slice = self
            .tasks
            .changes_since(owner, since, CHANGES_PAGE_MAX + 1)
            .await?;
        // Without a position the walk starts at the head, which no floor
        // ever passes.
        let from = since.unwrap_or(FeedPosition {
            tasks_after: 0,
            deletes_after: slice.head,
        });
        if from.deletes_after < slice.floor {
            return Err(DomainError::CursorExpired);
        }
        Ok(ChangePage::assemble(from, slice, CHANGES_PAGE_MAX))
    }

    /// Where the caller's feed stands now: a reader starting here gets
    /// every change made after this call, and none before.
    ///
    /// # Errors
    /// `Unavailable` or `Unexpected` from storage.
    pub async fn feed_head(&self, owner: UserId) -> Result<FeedPosition, DomainError> {
        // The head comes with any read of the feed; one row is the least
        // a read can ask for.
        let slice = self.tasks.changes_since(owner, None, 1).await?;
        Ok(FeedPosition::at(slice.head))
    }

    /// Forgets deletions older than `retention`, so the feed's history
    /// does not grow forever; returns how many went.
    ///
    /// # Errors
    /// `Unavailable` or `Unexpected` from storage.
    pub async fn forget_old_deletions(
        &self,
        retention: std::time::Duration,
    ) -> Result<u64, DomainError> {
        let now = self.clock.now().as_datetime();
        let before = now
            .checked_sub(time::Duration::try_from(retention).unwrap_or(time::Duration::MAX))
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let before = Timestamp::from_datetime(before);
        // Batch after batch, so a large backlog never makes one
        // transaction outlive the statement timeout.
        let mut forgotten = 0;
        loop {
            let batch = self
                .tasks
                .forget_deletions(before, DELETIONS_FORGOTTEN_PER_BATCH)
                .await?;
            forgotten += batch;
            if batch < u64::from(DELETIONS_FORGOTTEN_PER_BATCH) {
                return Ok(forgotten);
            }
        }
    }

    /// Runs `work` once for a plain request. For a retry-safe one, claims
    /// the key first (answering a replay, or refusing, without running
    /// `work`), hands `work` the receipt that records its answer, and gives
    /// the claim back if `work` fails, so only a success keeps the key.
    async fn retry_safely<W, F>(
        &self,
        owner: UserId,
        retry: Option<IdempotentRequest>,
        work: W,
    ) -> Result<Outcome<Task>, DomainError>
    where
        W: FnOnce(Option<Receipt>) -> F,
        F: Future<Output = Result<Task, DomainError>>,
    {
        let Some(retry) = retry else {
            return work(None).await.map(Outcome::Done);
        };
        let claim = match self
            .keys
            .claim(owner, &retry.key, &retry.fingerprint, self.clock.now())
            .await?
        {
            ClaimOutcome::Claimed(claim) => claim,
            ClaimOutcome::Replay(response) => return Ok(Outcome::Replayed(response)),
            ClaimOutcome::InUse => return Err(DomainError::IdempotencyKeyInUse),
            ClaimOutcome::Reused => return Err(DomainError::IdempotencyKeyReused),
        };
        let receipt = Receipt {
            claim: claim.clone(),
            recorder: retry.recorder,
        };
        match work(Some(receipt)).await {
            Ok(task) => Ok(Outcome::Done(task)),
            Err(error) => {
                // The request fails with `error` either way. A claim that
                // cannot be given back now (storage is down) is taken over
                // once it times out, so the key is never lost for good.
                let _ = self.keys.release(&claim).await;
                Err(error)
            }
        }
    }

    /// A conditional write missed: the task is the caller's with another
    /// version (412), or it is someone else's or nobody's. A plain write
    /// that missed skips the first question.
    async fn explain_conditional_miss(
        &self,
        id: TaskId,
        owner: UserId,
        conditional: bool,
    ) -> DomainError {
        if conditional {
            match self.tasks.find_owned(id, owner).await {
                Ok(Some(_)) => return DomainError::PreconditionFailed,
                Ok(None) => {}
                Err(error) => return error,
            }
        }
        self.explain_miss(id).await
    }

    /// The ownership rule: an owned lookup missed, so the task is either
    /// someone else's (403) or nobody's (404). Only this slow path pays for
    /// the second query.
    async fn explain_miss(&self, id: TaskId) -> DomainError {
        match self.tasks.exists(id).await {
            Ok(true) => DomainError::Forbidden,
            Ok(false) => DomainError::TaskNotFound,
            Err(error) => error,
        }
    }
}

/// Sign-up, sign-in and profile use cases.
pub struct AccountService {
    users: Arc<dyn UserRepository>,
    hasher: Arc<dyn PasswordHasher>,
    sign_in_failures: Arc<dyn SignInFailureRepository>,
    sign_in_limit: SignInLimit,
    clock: Arc<dyn Clock>,
}

impl AccountService {
    /// Builds the service over its ports; `sign_in_limit` bounds failed
    /// sign-ins per email.
    #[must_use]
    pub fn new(
        users: Arc<dyn UserRepository>,
        hasher: Arc<dyn PasswordHasher>,
        sign_in_failures: Arc<dyn SignInFailureRepository>,
        sign_in_limit: SignInLimit,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            users,
            hasher,
            sign_in_failures,
            sign_in_limit,
            clock,
        }
    }

    /// Creates an account. Email and password were validated when parsed.
    ///
    /// # Errors
    /// `EmailTaken`, or a storage or hasher failure.
    pub async fn sign_up(&self, email: Email, password: Password) -> Result<User, DomainError> {
        let password_hash = self.hasher.hash(&password).await?;
        let new_user = NewUser {
            id: UserId::generate(),
            email,
            password_hash,
            created_at: self.clock.now(),
        };
        self.users.insert(&new_user).await
    }

    /// Checks an email and password and records the sign-in.
    ///
    /// An address that does not even parse cannot belong to an account, so
    /// it fails exactly like an unknown one, after the same hashing work.
    ///
    /// Failures are counted per email as typed ([`SignInKey`]), unknown
    /// ones alike; a success forgets them. A blocked email is refused
    /// before the account is looked up and before any hash: the answer
    /// is the same whether or not the account exists, since unknown emails
    /// are blocked the same way, and refusing early keeps a guessing
    /// campaign from costing hashes.
    ///
    /// # Errors
    /// `TooManyFailedSignIns` while the email is blocked;
    /// `InvalidCredentials` for an unknown email or a wrong password; or a
    /// storage or hasher failure.
    pub async fn sign_in(&self, raw_email: &str, password: &str) -> Result<User, DomainError> {
        let key = SignInKey::from_typed(raw_email);
        let now = self.clock.now();
        if let Some(until) = self.sign_in_failures.blocked_until(&key, now).await? {
            let retry_after = (until.as_datetime() - now.as_datetime())
                .try_into()
                .unwrap_or_default();
            return Err(DomainError::TooManyFailedSignIns { retry_after });
        }
        let credentials = match Email::parse(raw_email) {
            Ok(email) => self.users.find_credentials(&email).await?,
            Err(_) => None,
        };
        let stored_hash = credentials.as_ref().map(|c| c.password_hash.clone());
        let matches = self.hasher.verify(password, stored_hash).await?;
        let now = self.clock.now();
        let signed_in = match credentials {
            Some(credentials) if matches => {
                match self.users.record_sign_in(credentials.user_id, now).await {
                    // The account was deleted between the two statements.
                    Err(DomainError::UserNotFound) => None,
                    other => Some(other?),
                }
            }
            _ => None,
        };
        match signed_in {
            Some(user) => {
                self.sign_in_failures.clear(&key).await?;
                Ok(user)
            }
            None => {
                self.sign_in_failures
                    .record_failure(&key, now, self.sign_in_limit)
                    .await?;
                Err(DomainError::InvalidCredentials)
            }
        }
    }

    /// Forgets failed sign-ins that no longer count, so the store does not
    /// grow with every address ever mistyped; returns how many keys went.
    ///
    /// # Errors
    /// A storage failure.
    pub async fn forget_expired_sign_in_failures(&self) -> Result<u64, DomainError> {
        self.sign_in_failures.forget_expired(self.clock.now()).await
    }

    /// The profile of a user.
    ///
    /// # Errors
    /// `UserNotFound`, or a storage failure.
    pub async fn profile(&self, id: UserId) -> Result<User, DomainError> {
        self.users
            .find_by_id(id)
            .await?
            .ok_or(DomainError::UserNotFound)
    }
}

#[cfg(test)]
mod tests;
