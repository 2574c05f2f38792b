//! Argon2id password hashing, kept off the async workers, with a bounded
//! number of hashes at once and a bounded wait for a turn.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{self, SaltString};
use argon2::{Argon2, PasswordHasher as _, PasswordVerifier as _};
use async_trait::async_trait;
use prometheus::core::Collector;
use prometheus::{IntCounter, IntGauge, Opts};
use todo_domain::ports::PasswordHasher;
use todo_domain::{DomainError, Password, PasswordHash};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

use crate::metrics::{MetricsError, NAMESPACE};

/// Argon2id memory in KiB, passes and lanes: 46 MiB, one pass, one lane,
/// one of OWASP's equivalent recommended settings (the other being 19 MiB
/// with two passes).
///
/// The larger-memory variant is chosen for the allocator's sake: glibc
/// serves blocks above 32 MiB straight from `mmap` and unmaps them on free,
/// whereas a 19 MiB block lands in a per-thread arena and is kept there, so
/// a burst of sign-ins would leave the process large (docs/performance.md).
const ARGON2_MEMORY_KIB: u32 = 47_104;
const ARGON2_PASSES: u32 = 1;
const ARGON2_LANES: u32 = 1;

/// How many hashes run at once, and how many callers may wait for a turn
/// and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashingLimits {
    /// Hashes running at the same time (at least 1).
    pub concurrent: usize,
    /// Callers waiting for a turn; one more is refused at once.
    pub queue: usize,
    /// The longest a caller waits for a turn before it is refused.
    pub wait: Duration,
}

impl HashingLimits {
    /// One hash per two cores, at least one. Half the cores, not all: a
    /// hash on every core let a burst of sign-ins slow other users' reads
    /// (docs/performance.md); the other half keeps serving them.
    #[must_use]
    pub fn for_this_machine(queue: usize, wait: Duration) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            concurrent: (cores / 2).max(1),
            queue,
            wait,
        }
    }
}

/// Argon2id run on tokio's blocking pool.
///
/// One hash costs tens of milliseconds of CPU and 46 MiB; a burst of
/// sign-ins must neither stall the actix workers nor grow memory with the
/// number of callers, so at most [`HashingLimits::concurrent`] hashes run
/// at once. The turn (a semaphore permit) is handed to the blocking job and
/// released when the hash ends, not when the caller stops waiting: a client
/// that hangs up does not stop a hash that has started, so its turn must
/// not go to the next caller before that hash is done. Callers past the
/// queue, or still without a turn after the wait, are refused with
/// [`DomainError::Busy`] rather than left waiting for minutes.
pub struct Argon2PasswordHasher {
    argon2: Argon2<'static>,
    turns: Admission,
    metrics: Arc<HashMetrics>,
    /// Verified against when the email is unknown, so that answer costs
    /// the same as a wrong password.
    dummy_hash: PasswordHash,
}

impl Argon2PasswordHasher {
    /// Prepares the hasher, computing its dummy hash once.
    ///
    /// # Errors
    /// Only if Argon2 refuses the parameters above, which are within its
    /// documented bounds, or the metrics cannot be named.
    pub fn new(limits: HashingLimits) -> Result<Self, HasherError> {
        let params = argon2::Params::new(ARGON2_MEMORY_KIB, ARGON2_PASSES, ARGON2_LANES, None)?;
        let argon2 = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let concurrent = limits.concurrent.max(1);
        let dummy_hash = hash_blocking(&argon2, "todo-api dummy password, never valid")?;
        let metrics = HashMetrics::new(concurrent)?;
        Ok(Self {
            argon2,
            turns: Admission {
                permits: Arc::new(Semaphore::new(concurrent)),
                waiting: AtomicUsize::new(0),
                waiting_gauge: metrics.waiting.clone(),
                queue: limits.queue,
                wait: limits.wait,
            },
            metrics: Arc::new(metrics),
            dummy_hash,
        })
    }

    /// The hasher's metrics, for the `/metrics` registry.
    #[must_use]
    pub fn collectors(&self) -> Vec<Box<dyn Collector>> {
        self.metrics.collectors()
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> Result<T, password_hash::Error> + Send + 'static,
    ) -> Result<T, DomainError> {
        let permit = match self.turns.take().await {
            Ok(permit) => permit,
            Err(error) => {
                if matches!(error, DomainError::Busy { .. }) {
                    self.metrics.refused.inc();
                }
                return Err(error);
            }
        };
        let metrics = self.metrics.clone();
        tokio::task::spawn_blocking(move || {
            // Declared first, dropped last: the turn is given back only
            // after the hash has ended and been uncounted.
            let _turn = permit;
            let _running = metrics.started();
            job()
        })
        .await
        .map_err(|error| DomainError::Unexpected(Box::new(error)))?
        .map_err(|error| DomainError::Unexpected(error.to_string().into()))
    }
}

/// Why the hasher could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum HasherError {
    /// Argon2 refused its parameters.
    #[error("argon2: {0}")]
    Argon2(#[from] password_hash::Error),
    /// A metric could not be created.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
}

impl From<argon2::Error> for HasherError {
    fn from(error: argon2::Error) -> Self {
        Self::Argon2(error.into())
    }
}

/// Hands out turns to hash: at once when one is free, else after a bounded
/// wait in a bounded queue.
struct Admission {
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    waiting_gauge: IntGauge,
    queue: usize,
    wait: Duration,
}

impl Admission {
    async fn take(&self) -> Result<OwnedSemaphorePermit, DomainError> {
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => return Ok(permit),
            Err(TryAcquireError::Closed) => return Err(closed()),
            Err(TryAcquireError::NoPermits) => {}
        }
        let _place = self.join_queue().ok_or_else(|| self.busy())?;
        match tokio::time::timeout(self.wait, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(closed()),
            Err(_) => Err(self.busy()),
        }
    }

    /// A place in the queue, or `None` when it is full. The place is given
    /// up when dropped, also when the caller goes away while waiting.
    fn join_queue(&self) -> Option<QueuePlace<'_>> {
        self.waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |waiting| {
                (waiting < self.queue).then_some(waiting + 1)
            })
            .ok()
            .map(|_| {
                self.waiting_gauge.inc();
                QueuePlace(self)
            })
    }

    /// A full queue drains, or its waits run out, within one wait, so that
    /// is when to come back.
    fn busy(&self) -> DomainError {
        DomainError::Busy {
            retry_after: self.wait,
        }
    }
}

/// The semaphore is never closed; this is only for completeness.
fn closed() -> DomainError {
    DomainError::Unexpected("the password hasher's semaphore was closed".into())
}

struct QueuePlace<'a>(&'a Admission);

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
        self.0.waiting_gauge.dec();
    }
}

/// Hashes in progress, the most there ever were at once, the bound, the
/// callers waiting for a turn, and those refused.
struct HashMetrics {
    /// Updated under a lock so that the maximum can never miss a value.
    running: Mutex<i64>,
    in_progress: IntGauge,
    waiting: IntGauge,
    in_progress_max: IntGauge,
    limit: IntGauge,
    refused: IntCounter,
}

impl HashMetrics {
    fn new(limit: usize) -> Result<Self, MetricsError> {
        let opts = |name: &str, help: &str| Opts::new(name, help).namespace(NAMESPACE);
        let metrics = Self {
            running: Mutex::new(0),
            in_progress: IntGauge::with_opts(opts(
                "password_hashes_in_progress",
                "Argon2 hashes running now.",
            ))?,
            waiting: IntGauge::with_opts(opts(
                "password_hashes_waiting",
                "Sign-ups and sign-ins waiting for a turn to hash.",
            ))?,
            in_progress_max: IntGauge::with_opts(opts(
                "password_hashes_in_progress_max",
                "The most Argon2 hashes that ran at once since the start.",
            ))?,
            limit: IntGauge::with_opts(opts(
                "password_hashes_limit",
                "The most Argon2 hashes allowed to run at once.",
            ))?,
            refused: IntCounter::with_opts(opts(
                "password_hash_refusals_total",
                "Sign-ups and sign-ins answered 503 busy: the hasher's queue was full or \
                 their wait ran out.",
            ))?,
        };
        metrics.limit.set(i64::try_from(limit).unwrap_or(i64::MAX));
        Ok(metrics)
    }

    fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.in_progress.clone()),
            Box::new(self.in_progress_max.clone()),
            Box::new(self.waiting.clone()),
            Box::new(self.limit.clone()),
            Box::new(self.refused.clone()),
        ]
    }

    fn started(&self) -> RunningHash<'_> {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        *running += 1;
        self.in_progress.set(*running);
        if *running > self.in_progress_max.get() {
            self.in_progress_max.set(*running);
        }
        RunningHash(self)
    }
}

/// Counts one hash while it lives.
struct RunningHash<'a>(&'a HashMetrics);

impl Drop for RunningHash<'_> {
    fn drop(&mut self) {
        let mut running = self
            .0
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *running -= 1;
        self.0.in_progress.set(*running);
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

    fn limits(queue: usize, wait_ms: u64) -> HashingLimits {
        HashingLimits {
            concurrent: 1,
            queue,
            wait: Duration::from_millis(wait_ms),
        }
    }

    fn hasher() -> Argon2PasswordHasher {
        Argon2PasswordHasher::new(limits(8, 5_000)).unwrap()
    }

    #[tokio::test]
    async fn a_hash_verifies_its_own_password_only() {
        let hasher = hasher();
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
        let hasher = hasher();
        let dummy = "todo-api dummy password, never valid";
        assert!(!hasher.verify(dummy, None).await.unwrap());
    }

    #[tokio::test]
    async fn a_corrupt_stored_hash_is_an_unexpected_error() {
        let hasher = hasher();
        let corrupt = PasswordHash::new("not a phc string".into());
        assert!(matches!(
            hasher.verify("x", Some(corrupt)).await,
            Err(DomainError::Unexpected(_))
        ));
    }

    /// A job that holds its turn for `millis`.
    fn slow_job(millis: u64) -> impl FnOnce() -> Result<(), password_hash::Error> + Send {
        move || {
            std::thread::sleep(Duration::from_millis(millis));
            Ok(())
        }
    }

    /// Polls `condition` until it holds (10 s at most), so the tests do
    /// not depend on how fast a loaded machine schedules their tasks.
    async fn until(condition: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !condition() {
            assert!(std::time::Instant::now() < deadline, "never happened");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn spawn_job(
        hasher: &Arc<Argon2PasswordHasher>,
        millis: u64,
    ) -> tokio::task::JoinHandle<Result<(), DomainError>> {
        let hasher = hasher.clone();
        tokio::spawn(async move { hasher.run(slow_job(millis)).await })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_turn_stays_taken_until_the_hash_ends_though_its_caller_left() {
        let hasher = Arc::new(Argon2PasswordHasher::new(limits(8, 5_000)).unwrap());
        let first = spawn_job(&hasher, 1_000);
        until(|| hasher.metrics.in_progress.get() == 1).await;
        first.abort();
        let _ = first.await;
        assert_eq!(hasher.turns.permits.available_permits(), 0);
        // The next caller waits for the abandoned hash to end.
        hasher.run(slow_job(1)).await.unwrap();
        assert_eq!(hasher.metrics.in_progress_max.get(), 1);
        assert_eq!(hasher.metrics.in_progress.get(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_caller_past_the_queue_is_refused_at_once_with_the_wait_to_retry_after() {
        let hasher = Arc::new(Argon2PasswordHasher::new(limits(1, 5_000)).unwrap());
        let running = spawn_job(&hasher, 1_000);
        until(|| hasher.metrics.in_progress.get() == 1).await;
        let queued = spawn_job(&hasher, 1);
        until(|| hasher.turns.waiting.load(Ordering::Acquire) == 1).await;
        let started = std::time::Instant::now();
        let refused = hasher.run(slow_job(1)).await;
        // At once: well before the 5 s wait could have run out.
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(
            matches!(refused, Err(DomainError::Busy { retry_after }) if retry_after.as_secs() == 5),
            "{refused:?}"
        );
        running.await.unwrap().unwrap();
        queued.await.unwrap().unwrap();
        assert_eq!(hasher.metrics.refused.get(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_caller_without_a_turn_within_the_wait_is_refused() {
        let hasher = Arc::new(Argon2PasswordHasher::new(limits(8, 100)).unwrap());
        let running = spawn_job(&hasher, 1_500);
        until(|| hasher.metrics.in_progress.get() == 1).await;
        let started = std::time::Instant::now();
        let refused = hasher.run(slow_job(1)).await;
        let waited = started.elapsed();
        assert!(
            matches!(refused, Err(DomainError::Busy { .. })),
            "{refused:?}"
        );
        assert!(
            (Duration::from_millis(90)..Duration::from_millis(1_000)).contains(&waited),
            "{waited:?}"
        );
        // Its place in the queue was given back.
        assert_eq!(hasher.turns.waiting.load(Ordering::Acquire), 0);
        running.await.unwrap().unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_caller_that_leaves_the_queue_frees_its_place() {
        let hasher = Arc::new(Argon2PasswordHasher::new(limits(1, 5_000)).unwrap());
        let running = spawn_job(&hasher, 1_000);
        until(|| hasher.metrics.in_progress.get() == 1).await;
        let leaving = spawn_job(&hasher, 1);
        until(|| hasher.turns.waiting.load(Ordering::Acquire) == 1).await;
        leaving.abort();
        let _ = leaving.await;
        assert_eq!(hasher.turns.waiting.load(Ordering::Acquire), 0);
        assert_eq!(hasher.metrics.waiting.get(), 0);
        // The freed place is usable: this caller waits and gets its turn.
        hasher.run(slow_job(1)).await.unwrap();
        running.await.unwrap().unwrap();
    }
}
