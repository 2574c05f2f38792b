use std::sync::Arc;

mod identity;

pub use identity::IdentityService;

use crate::ports::{PasswordHasher, SignInFailureRepository, TaskRepository, UserRepository};
use crate::{
    Clock, CompletionChange, DomainError, Email, NewTask, NewUser, Password, Task, TaskChanges,
    TaskId, User, UserId,
};
use crate::{SignInKey, SignInLimit};

/// Task use cases. Every method takes the caller's id: there is no way to
/// reach a task without naming whose it must be.
pub struct TaskService {
    tasks: Arc<dyn TaskRepository>,
    clock: Arc<dyn Clock>,
}

impl TaskService {
    /// Builds the service over a repository and a clock.
    #[must_use]
    pub fn new(tasks: Arc<dyn TaskRepository>, clock: Arc<dyn Clock>) -> Self {
        Self { tasks, clock }
    }

    /// Creates a task owned by `owner`.
    ///
    /// # Errors
    /// `Unavailable` or `Unexpected` from storage.
    pub async fn create(&self, owner: UserId, new: NewTask) -> Result<Task, DomainError> {
        let now = self.clock.now();
        let task = Task {
            id: TaskId::generate(),
            owner,
            title: new.title,
            description: new.description,
            completed: new.completed,
            created_at: now,
            updated_at: now,
        };
        self.tasks.insert(&task).await?;
        Ok(task)
    }

    /// The caller's tasks, newest first.
    ///
    /// # Errors
    /// `Unavailable` or `Unexpected` from storage.
    pub async fn list(&self, owner: UserId) -> Result<Vec<Task>, DomainError> {
        self.tasks.list_by_owner(owner).await
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

    /// Replaces a task's title and description (and state, when given).
    ///
    /// # Errors
    /// `TaskNotFound`, `Forbidden`, or a storage failure.
    pub async fn update(
        &self,
        owner: UserId,
        id: TaskId,
        changes: TaskChanges,
    ) -> Result<Task, DomainError> {
        let now = self.clock.now();
        match self.tasks.update_owned(id, owner, &changes, now).await? {
            Some(task) => Ok(task),
            None => Err(self.explain_miss(id).await),
        }
    }

    /// Flips or sets a task's completion.
    ///
    /// # Errors
    /// `TaskNotFound`, `Forbidden`, or a storage failure.
    pub async fn change_completion(
        &self,
        owner: UserId,
        id: TaskId,
        change: CompletionChange,
    ) -> Result<Task, DomainError> {
        let now = self.clock.now();
        match self
            .tasks
            .change_completion_owned(id, owner, change, now)
            .await?
        {
            Some(task) => Ok(task),
            None => Err(self.explain_miss(id).await),
        }
    }

    /// Deletes one of the caller's tasks.
    ///
    /// # Errors
    /// `TaskNotFound` (also for a second delete), `Forbidden`, or a storage
    /// failure.
    pub async fn delete(&self, owner: UserId, id: TaskId) -> Result<(), DomainError> {
        if self.tasks.delete_owned(id, owner).await? {
            Ok(())
        } else {
            Err(self.explain_miss(id).await)
        }
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
