//! Argon2id password hashing, kept off the async workers.

use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{self, SaltString};
use argon2::{Argon2, PasswordHasher as _, PasswordVerifier as _};
use async_trait::async_trait;
use todo_domain::ports::PasswordHasher;
use todo_domain::{DomainError, Password, PasswordHash};
use tokio::sync::Semaphore;

/// Argon2id with the crate's defaults (19 MiB, two passes, one lane: the
/// OWASP baseline), run on tokio's blocking pool.
///
/// One hash costs tens of milliseconds of CPU and 19 MiB; a burst of
/// sign-ins must neither stall the actix workers nor grow memory with the
/// number of callers, so at most one hash per core runs at a time and the
/// rest wait their turn.
pub struct Argon2PasswordHasher {
    permits: Arc<Semaphore>,
    /// Verified against when the email is unknown, so that answer costs
    /// the same as a wrong password.
    dummy_hash: PasswordHash,
}

impl Argon2PasswordHasher {
    /// Prepares the hasher, computing its dummy hash once.
    ///
    /// # Errors
    /// Only if Argon2 refuses its own default parameters.
    pub fn new() -> Result<Self, password_hash::Error> {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let dummy_hash = hash_blocking("todo-api dummy password, never valid")?;
        Ok(Self {
            permits: Arc::new(Semaphore::new(cores)),
            dummy_hash,
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> Result<T, password_hash::Error> + Send + 'static,
    ) -> Result<T, DomainError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|error| DomainError::Unexpected(Box::new(error)))?;
        tokio::task::spawn_blocking(job)
            .await
            .map_err(|error| DomainError::Unexpected(Box::new(error)))?
            .map_err(|error| DomainError::Unexpected(error.to_string().into()))
    }
}

fn hash_blocking(password: &str) -> Result<PasswordHash, password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    let phc = Argon2::default().hash_password(password.as_bytes(), &salt)?;
    Ok(PasswordHash::new(phc.to_string()))
}

fn verify_blocking(candidate: &str, stored: &PasswordHash) -> Result<bool, password_hash::Error> {
    let parsed = password_hash::PasswordHash::new(stored.as_str())?;
    match Argon2::default().verify_password(candidate.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(password_hash::Error::Password) => Ok(false),
        Err(other) => Err(other),
    }
}

#[async_trait]
impl PasswordHasher for Argon2PasswordHasher {
    async fn hash(&self, password: &Password) -> Result<PasswordHash, DomainError> {
        let password = password.expose().to_owned();
        self.run(move || hash_blocking(&password)).await
    }

    async fn verify(
        &self,
        candidate: &str,
        stored: Option<PasswordHash>,
    ) -> Result<bool, DomainError> {
        let candidate = candidate.to_owned();
        let known_user = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.dummy_hash.clone());
        let matches = self.run(move || verify_blocking(&candidate, &hash)).await?;
        Ok(known_user && matches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_own_password_only() {
        let hasher = Argon2PasswordHasher::new().unwrap();
        let password = Password::parse("correct horse").unwrap();
        let hash = hasher.hash(&password).await.unwrap();
        assert!(hash.as_str().starts_with("$argon2id$"));
        assert!(
            hasher
                .verify("correct horse", Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(!hasher.verify("wrong horse", Some(hash)).await.unwrap());
    }

    #[tokio::test]
    async fn an_unknown_user_never_matches_even_with_the_dummy_password() {
        let hasher = Argon2PasswordHasher::new().unwrap();
        let dummy = "todo-api dummy password, never valid";
        assert!(!hasher.verify(dummy, None).await.unwrap());
    }

    #[tokio::test]
    async fn a_corrupt_stored_hash_is_an_unexpected_error() {
        let hasher = Argon2PasswordHasher::new().unwrap();
        let corrupt = PasswordHash::new("not a phc string".into());
        assert!(matches!(
            hasher.verify("x", Some(corrupt)).await,
            Err(DomainError::Unexpected(_))
        ));
    }
}
