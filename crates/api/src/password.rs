//! Argon2id password hashing, kept off the async workers.

use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{self, SaltString};
use argon2::{Argon2, PasswordHasher as _, PasswordVerifier as _};
use async_trait::async_trait;
use todo_domain::ports::PasswordHasher;
use todo_domain::{DomainError, Password, PasswordHash};
use tokio::sync::Semaphore;

/// Argon2id memory in KiB, passes and lanes: 46 MiB, one pass, one lane,
/// one of OWASP's equivalent recommended settings (the other being 19 MiB
/// with two passes).
///
/// The larger-memory variant is chosen for the allocator's sake: glibc
/// serves blocks above 32 MiB straight from `mmap` and unmaps them on free,
/// whereas a 19 MiB block lands in a per-thread arena after the first one
/// and is kept there. With 19 MiB, forty sign-ups left the idle process at
/// 790 MB resident; with 46 MiB it returns to its idle size.
const ARGON2_MEMORY_KIB: u32 = 47_104;
const ARGON2_PASSES: u32 = 1;
const ARGON2_LANES: u32 = 1;

/// Argon2id run on tokio's blocking pool.
///
/// One hash costs tens of milliseconds of CPU and 46 MiB; a burst of
/// sign-ins must neither stall the actix workers nor grow memory with the
/// number of callers, so at most one hash per two cores runs at a time (at
/// least one) and the rest wait their turn. Half the cores, not all: with a
/// hash on each of this 2-core machine's cores, a sign-in burst raised the
/// p99 latency of other users' reads 2.2-fold; the other half keeps serving
/// them.
pub struct Argon2PasswordHasher {
    argon2: Argon2<'static>,
    permits: Arc<Semaphore>,
    /// Verified against when the email is unknown, so that answer costs
    /// the same as a wrong password.
    dummy_hash: PasswordHash,
}

impl Argon2PasswordHasher {
    /// Prepares the hasher, computing its dummy hash once.
    ///
    /// # Errors
    /// Only if Argon2 refuses the parameters above, which are within its
    /// documented bounds.
    pub fn new() -> Result<Self, password_hash::Error> {
        let params = argon2::Params::new(ARGON2_MEMORY_KIB, ARGON2_PASSES, ARGON2_LANES, None)?;
        let argon2 = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let concurrent_hashes = (cores / 2).max(1);
        let dummy_hash = hash_blocking(&argon2, "todo-api dummy password, never valid")?;
        Ok(Self {
            argon2,
            permits: Arc::new(Semaphore::new(concurrent_hashes)),
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

fn hash_blocking(
    argon2: &Argon2<'_>,
    password: &str,
) -> Result<PasswordHash, password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    let phc = argon2.hash_password(password.as_bytes(), &salt)?;
    Ok(PasswordHash::new(phc.to_string()))
}

/// Verifies with the parameters recorded in the stored hash itself.
fn verify_blocking(
    argon2: &Argon2<'_>,
    candidate: &str,
    stored: &PasswordHash,
) -> Result<bool, password_hash::Error> {
    let parsed = password_hash::PasswordHash::new(stored.as_str())?;
    match argon2.verify_password(candidate.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(password_hash::Error::Password) => Ok(false),
        Err(other) => Err(other),
    }
}

#[async_trait]
impl PasswordHasher for Argon2PasswordHasher {
    async fn hash(&self, password: &Password) -> Result<PasswordHash, DomainError> {
        let password = password.expose().to_owned();
        let argon2 = self.argon2.clone();
        self.run(move || hash_blocking(&argon2, &password)).await
    }

    async fn verify(
        &self,
        candidate: &str,
        stored: Option<PasswordHash>,
    ) -> Result<bool, DomainError> {
        let candidate = candidate.to_owned();
        let known_user = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.dummy_hash.clone());
        let argon2 = self.argon2.clone();
        let matches = self
            .run(move || verify_blocking(&argon2, &candidate, &hash))
            .await?;
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
        assert!(hash.as_str().starts_with("$argon2id$v=19$m=47104,t=1,p=1$"));
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
