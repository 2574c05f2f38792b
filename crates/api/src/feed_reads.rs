//! The feed reads of this instance's live streams, gathered: streams of
//! different users that wake within [`GATHER_WINDOW`] of each other read
//! their feeds in one statement rather than one each (specs/004-sync/
//! decisions.md, D28). A stream still reads the feed, and only the feed;
//! it waits a little longer for it.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use todo_domain::{ChangePage, DomainError, FeedPosition, TaskService, UserId};
use tokio::sync::{mpsc, oneshot};

/// How long the first read of a gathering waits for others to join it.
/// Under load, one statement then serves the streams of every user whose
/// tasks changed meanwhile; an idle instance's events arrive this much
/// later, which no one sees.
pub const GATHER_WINDOW: Duration = Duration::from_millis(10);

/// Hands feed reads to the gatherer. Cloned into every stream; the
/// gatherer stops once every clone is gone.
#[derive(Clone)]
pub struct FeedReads {
    requests: mpsc::UnboundedSender<Request>,
}

/// One stream's read: whose feed, from where, and where the answer goes.
struct Request {
    owner: UserId,
    from: FeedPosition,
    answer: oneshot::Sender<Result<ChangePage, DomainError>>,
}

impl FeedReads {
    /// Starts the gatherer on the current tokio runtime: it reads through
    /// `tasks`, gathering for `window` after each first read.
    #[must_use]
    pub fn start(tasks: web::Data<TaskService>, window: Duration) -> Self {
        let (requests, queue) = mpsc::unbounded_channel();
        tokio::spawn(gather(tasks, queue, window));
        Self { requests }
    }

    /// `owner`'s feed from `from`, as [`TaskService::changes`] answers it,
    /// read together with whatever other reads arrive meanwhile.
    ///
    /// # Errors
    /// What the read answered for this feed (`CursorExpired`), or for all
    /// of them (`Unavailable`, `Unexpected`); `Unavailable` too if the
    /// gatherer has stopped, which happens only as the server goes down.
    pub async fn read(&self, owner: UserId, from: FeedPosition) -> Result<ChangePage, DomainError> {
        let (answer, answered) = oneshot::channel();
        let request = Request {
            owner,
            from,
            answer,
        };
        if self.requests.send(request).is_err() {
            return Err(DomainError::Unavailable(Box::new(GathererStopped)));
        }
        answered
            .await
            .unwrap_or_else(|_| Err(DomainError::Unavailable(Box::new(GathererStopped))))
    }
}

/// The gatherer has stopped, so no read will be answered.
#[derive(Debug, thiserror::Error)]
#[error("the feed read gatherer has stopped")]
struct GathererStopped;

/// The read of several feeds failed; the cause, shared by every stream in
/// it.
#[derive(Debug, thiserror::Error)]
#[error("a gathered read of the feeds failed")]
struct GatheredReadFailed(#[source] Arc<DomainError>);

/// Waits for a read, gathers the others that arrive within `window`, and
/// sets their statement going; then waits for the next. Each gathering's
/// statement runs on its own task, so the next gathering does not wait for
/// it.
async fn gather(
    tasks: web::Data<TaskService>,
    mut queue: mpsc::UnboundedReceiver<Request>,
    window: Duration,
) {
    while let Some(first) = queue.recv().await {
        tokio::time::sleep(window).await;
        let mut gathered = vec![first];
        while let Ok(request) = queue.try_recv() {
            gathered.push(request);
        }
        tokio::spawn(read_and_answer(tasks.clone(), gathered));
    }
}

/// Reads every gathered feed in one go and answers each stream.
async fn read_and_answer(tasks: web::Data<TaskService>, gathered: Vec<Request>) {
    let reads: Vec<_> = gathered
        .iter()
        .map(|request| (request.owner, request.from))
        .collect();
    match tasks.changes_each(&reads).await {
        // A stream that has gone meanwhile no longer takes its answer,
        // which is nothing to act on.
        Ok(pages) => {
            for (request, page) in gathered.into_iter().zip(pages) {
                let _ = request.answer.send(page);
            }
        }
        Err(error) => {
            let unavailable = matches!(error, DomainError::Unavailable(_));
            let cause = Arc::new(error);
            for request in gathered {
                let shared = Box::new(GatheredReadFailed(cause.clone()));
                // The kind is kept: a stream rides out an unavailable
                // database and ends on anything else (D26).
                let error = if unavailable {
                    DomainError::Unavailable(shared)
                } else {
                    DomainError::Unexpected(shared)
                };
                let _ = request.answer.send(Err(error));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use todo_domain::ports::{MockIdempotencyStore, MockTaskRepository};
    use todo_domain::{ChangeSlice, SystemClock, TaskLimits};

    /// A gatherer over `tasks`, with a window long enough that reads made
    /// at once surely fall in one gathering.
    fn reads_over(tasks: MockTaskRepository) -> FeedReads {
        let service = TaskService::new(
            Arc::new(tasks),
            Arc::new(MockIdempotencyStore::new()),
            Arc::new(SystemClock),
            TaskLimits::default(),
        );
        FeedReads::start(web::Data::new(service), Duration::from_millis(50))
    }

    /// Storage that answers every read with an empty feed at `head` and
    /// counts its statements in `statements`.
    fn storage_at(head: u64, statements: Arc<AtomicUsize>) -> MockTaskRepository {
        let mut tasks = MockTaskRepository::new();
        tasks
            .expect_changes_since_each()
            .returning(move |reads, _| {
                statements.fetch_add(1, Ordering::SeqCst);
                Ok(reads
                    .iter()
                    .map(|(_, from)| ChangeSlice {
                        head: head.max(from.tasks_after),
                        floor: 0,
                        changes: Vec::new(),
                    })
                    .collect())
            });
        tasks
    }

    #[tokio::test]
    async fn reads_that_arrive_together_are_one_read_of_storage_each_answered_its_own() {
        let statements = Arc::new(AtomicUsize::new(0));
        let reads = reads_over(storage_at(5, statements.clone()));
        let (alices, bobs) = tokio::join!(
            reads.read(UserId::generate(), FeedPosition::at(1)),
            reads.read(UserId::generate(), FeedPosition::at(8)),
        );
        assert_eq!(alices.unwrap().next, FeedPosition::at(5));
        assert_eq!(bobs.unwrap().next, FeedPosition::at(8));
        assert_eq!(statements.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_read_after_a_gathering_closed_goes_in_the_next() {
        let statements = Arc::new(AtomicUsize::new(0));
        let reads = reads_over(storage_at(3, statements.clone()));
        let user = UserId::generate();
        reads.read(user, FeedPosition::at(0)).await.unwrap();
        reads.read(user, FeedPosition::at(0)).await.unwrap();
        assert_eq!(statements.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_unavailable_database_is_every_readers_answer() {
        let mut tasks = MockTaskRepository::new();
        tasks.expect_changes_since_each().returning(|_, _| {
            Err(DomainError::Unavailable(Box::new(std::io::Error::other(
                "down",
            ))))
        });
        let reads = reads_over(tasks);
        let (first, second) = tokio::join!(
            reads.read(UserId::generate(), FeedPosition::at(0)),
            reads.read(UserId::generate(), FeedPosition::at(0)),
        );
        assert!(
            matches!(first, Err(DomainError::Unavailable(_))),
            "{first:?}"
        );
        assert!(
            matches!(second, Err(DomainError::Unavailable(_))),
            "{second:?}"
        );
    }

    #[tokio::test]
    async fn an_expired_position_fails_only_its_own_read() {
        let mut tasks = MockTaskRepository::new();
        tasks.expect_changes_since_each().returning(|reads, _| {
            Ok(reads
                .iter()
                .map(|(_, from)| ChangeSlice {
                    head: 9,
                    floor: if from.deletes_after < 4 { 4 } else { 0 },
                    changes: Vec::new(),
                })
                .collect())
        });
        let reads = reads_over(tasks);
        let (old, fresh) = tokio::join!(
            reads.read(UserId::generate(), FeedPosition::at(2)),
            reads.read(UserId::generate(), FeedPosition::at(6)),
        );
        assert!(matches!(old, Err(DomainError::CursorExpired)), "{old:?}");
        assert_eq!(fresh.unwrap().next, FeedPosition::at(9));
    }
}
