//! The live event streams of one instance (`GET /api/tasks/events`): who
//! has streams open, waking them when their user's tasks change, and ending
//! them all when the server stops (specs/004-sync/spec.md).
//!
//! A stream is woken, never handed a change: it then reads the changes feed
//! from its last position, so the feed alone decides what a client sees and
//! in which order, and a wake-up that finds nothing new costs one read. The
//! streams of one user woken by the same write share that read, and the
//! events written from it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use actix_web_lab::sse;
use todo_domain::ports::ChangeNotifier;
use todo_domain::{FeedPosition, UserId};
use tokio::sync::watch;

/// The most streams one user may have open on one instance (contract
/// section 7): each holds a connection and wakes on every write, so a
/// client that leaks them is stopped well before it matters.
pub const MAX_STREAMS_PER_USER: usize = 5;

/// The open streams of this instance, by user.
#[derive(Clone)]
pub struct StreamHub {
    inner: Arc<HubInner>,
}

struct HubInner {
    users: Mutex<HashMap<UserId, UserStreams>>,
    /// Turns `true` once, when the server begins to stop.
    stopping: watch::Sender<bool>,
}

/// The streams of one user: how many, the bell they listen to, and the
/// read of the feed they share.
struct UserStreams {
    open: usize,
    /// Each ring says "read the feed again" and counts up, so a stream can
    /// tell whether a read began after the ring that woke it.
    bell: watch::Sender<u64>,
    shared: Arc<SharedRead>,
}

/// The latest feed read of one user's streams on this instance. Streams of
/// one user usually stand at the same position and wake on the same ring,
/// so the first to wake reads and the others take its page: one read, and
/// one set of events to send, per write, not one per open stream.
#[derive(Default)]
struct SharedRead {
    /// Held across the read, so the streams woken together wait for the
    /// first one's read rather than all reading at once.
    last: tokio::sync::Mutex<Option<PageRead>>,
}

/// A page read from `from`, and the bell's count when the read began: it
/// holds every write whose ring counted up to `rung`.
struct PageRead {
    from: FeedPosition,
    rung: u64,
    page: EventPage,
}

/// A page of the feed as a stream sends it: its changes as events, ready
/// to write (an event's `id` names the position after it and the user, so
/// it is the same on each of the user's streams), and where they leave the
/// client. Cloning shares the events.
#[derive(Clone)]
pub struct EventPage {
    pub events: Arc<[sse::Event]>,
    pub next: FeedPosition,
    /// More changes follow at once.
    pub has_more: bool,
}

impl Default for StreamHub {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamHub {
    /// A hub with no streams.
    #[must_use]
    pub fn new() -> Self {
        Self {
            inner: Arc::new(HubInner {
                users: Mutex::new(HashMap::new()),
                stopping: watch::Sender::new(false),
            }),
        }
    }

    /// Takes one of `user`'s stream slots, or `None` when all
    /// [`MAX_STREAMS_PER_USER`] are taken. The slot is given back when the
    /// returned value is dropped, that is when the stream ends for any
    /// reason (the client left, the token expired, the server stops).
    #[must_use]
    pub fn open(&self, user: UserId) -> Option<StreamSlot> {
        let mut users = self.users();
        let streams = users.entry(user).or_insert_with(|| UserStreams {
            open: 0,
            bell: watch::Sender::new(0),
            shared: Arc::default(),
        });
        if streams.open >= MAX_STREAMS_PER_USER {
            return None;
        }
        streams.open += 1;
        // Subscribed before the stream reads anything: a write that commits
        // after this line rings a bell this receiver has not yet seen.
        let bell = streams.bell.subscribe();
        Some(StreamSlot {
            hub: self.clone(),
            user,
            bell,
            shared: streams.shared.clone(),
            stopping: self.inner.stopping.subscribe(),
        })
    }

    /// Ends every open stream, and every stream opened from now on at its
    /// first wait: called when the server begins to stop, so the graceful
    /// shutdown does not wait for streams that never end by themselves.
    pub fn stop(&self) {
        self.inner.stopping.send_replace(true);
    }

    /// How many streams `user` has open here.
    #[must_use]
    pub fn open_streams(&self, user: UserId) -> usize {
        self.users().get(&user).map_or(0, |streams| streams.open)
    }

    /// The map, even if a thread panicked while holding it: every change
    /// to it is a single counter step or insert, so it is never left half
    /// done.
    fn users(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, UserStreams>> {
        self.inner
            .users
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl ChangeNotifier for StreamHub {
    fn changed(&self, owner: UserId) {
        // A user with no stream here has no entry, and nothing to wake.
        if let Some(streams) = self.users().get(&owner) {
            streams.bell.send_modify(|rung| *rung += 1);
        }
    }

    fn all_changed(&self) {
        for streams in self.users().values() {
            streams.bell.send_modify(|rung| *rung += 1);
        }
    }
}

/// One open stream's place in the hub.
pub struct StreamSlot {
    hub: StreamHub,
    user: UserId,
    bell: watch::Receiver<u64>,
    shared: Arc<SharedRead>,
    stopping: watch::Receiver<bool>,
}

/// Why a stream stopped waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The user's tasks changed: read the feed.
    Changed,
    /// The server is stopping: end the stream.
    Stopping,
}

impl StreamSlot {
    /// Waits until the user's tasks change after the last wait (at once if
    /// they already did) or the server begins to stop.
    pub async fn wait(&mut self) -> Wake {
        if *self.stopping.borrow() {
            return Wake::Stopping;
        }
        tokio::select! {
            // The bell lives as long as any slot of the user, this one
            // included, so it cannot close under us; were it to, stopping
            // is the safe reading.
            rung = self.bell.changed() => match rung {
                Ok(()) => Wake::Changed,
                Err(_) => Wake::Stopping,
            },
            _ = self.stopping.wait_for(|stopping| *stopping) => Wake::Stopping,
        }
    }
}

impl StreamSlot {
    /// The feed after `from`, as of no earlier than the last ring this slot
    /// woke on: the page another stream of the same user read, when it
    /// began from `from` after that ring, else one `read` of its own, which
    /// the others may then take.
    ///
    /// # Errors
    /// What `read` answered; nothing is kept then.
    pub async fn read_shared<E, F>(&self, from: FeedPosition, read: F) -> Result<EventPage, E>
    where
        F: Future<Output = Result<EventPage, E>>,
    {
        // Every ring this slot has woken on is counted in this, or below.
        let woken_on = *self.bell.borrow();
        let mut last = self.shared.last.lock().await;
        if let Some(done) = last.as_ref()
            && done.from == from
            && done.rung >= woken_on
        {
            return Ok(done.page.clone());
        }
        // Read after this count: any write it counts had committed before
        // its ring, so before this read began.
        let rung = *self.bell.borrow();
        let page = read.await?;
        *last = Some(PageRead {
            from,
            rung,
            page: page.clone(),
        });
        Ok(page)
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut users = self.hub.users();
        if let Some(streams) = users.get_mut(&self.user) {
            streams.open = streams.open.saturating_sub(1);
            if streams.open == 0 {
                users.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn a_change_wakes_the_users_streams_only() {
        let hub = StreamHub::new();
        let (alice, bob) = (UserId::generate(), UserId::generate());
        let mut alices = hub.open(alice).unwrap();
        let mut bobs = hub.open(bob).unwrap();
        hub.changed(alice);
        assert_eq!(alices.wait().await, Wake::Changed);
        let quiet = tokio::time::timeout(Duration::from_millis(50), bobs.wait()).await;
        assert!(quiet.is_err(), "bob's stream woke for alice's change");
    }

    #[tokio::test]
    async fn all_changed_wakes_every_users_streams() {
        let hub = StreamHub::new();
        let mut alices = hub.open(UserId::generate()).unwrap();
        let mut bobs = hub.open(UserId::generate()).unwrap();
        hub.all_changed();
        assert_eq!(alices.wait().await, Wake::Changed);
        assert_eq!(bobs.wait().await, Wake::Changed);
    }

    fn page_to(next: u64) -> EventPage {
        EventPage {
            events: Arc::new([]),
            next: FeedPosition::at(next),
            has_more: false,
        }
    }

    /// A read that counts itself and answers a page ending at `next`.
    async fn counted(reads: &AtomicU32, next: u64) -> Result<EventPage, ()> {
        reads.fetch_add(1, Ordering::SeqCst);
        Ok(page_to(next))
    }

    /// A hub with two streams of one user, both woken by one write.
    async fn two_woken_streams() -> (StreamHub, UserId, StreamSlot, StreamSlot) {
        let hub = StreamHub::new();
        let user = UserId::generate();
        let (mut first, mut second) = (hub.open(user).unwrap(), hub.open(user).unwrap());
        hub.changed(user);
        assert_eq!(first.wait().await, Wake::Changed);
        assert_eq!(second.wait().await, Wake::Changed);
        (hub, user, first, second)
    }

    #[tokio::test]
    async fn streams_woken_by_one_write_share_one_read() {
        let (_hub, _user, first, second) = two_woken_streams().await;
        let reads = AtomicU32::new(0);
        let from = FeedPosition::at(1);
        let a = first.read_shared(from, counted(&reads, 2)).await.unwrap();
        let b = second.read_shared(from, counted(&reads, 2)).await.unwrap();
        assert_eq!((a.next, b.next), (FeedPosition::at(2), FeedPosition::at(2)));
        assert_eq!(reads.into_inner(), 1);
    }

    #[tokio::test]
    async fn a_write_after_the_shared_read_began_is_read_again() {
        let (hub, user, first, mut second) = two_woken_streams().await;
        let reads = AtomicU32::new(0);
        let from = FeedPosition::at(1);
        first.read_shared(from, counted(&reads, 2)).await.unwrap();
        // A second write commits after the first stream read: the second
        // stream, whichever ring woke it, must not take the older page.
        hub.changed(user);
        assert_eq!(second.wait().await, Wake::Changed);
        let page = second.read_shared(from, counted(&reads, 3)).await.unwrap();
        assert_eq!(page.next, FeedPosition::at(3));
        assert_eq!(reads.into_inner(), 2);
    }

    #[tokio::test]
    async fn a_stream_elsewhere_in_the_feed_reads_for_itself() {
        let (_hub, _user, first, second) = two_woken_streams().await;
        let reads = AtomicU32::new(0);
        first
            .read_shared(FeedPosition::at(5), counted(&reads, 6))
            .await
            .unwrap();
        let page = second
            .read_shared(FeedPosition::at(1), counted(&reads, 6))
            .await
            .unwrap();
        assert_eq!(page.next, FeedPosition::at(6));
        assert_eq!(reads.into_inner(), 2);
    }

    #[tokio::test]
    async fn at_most_five_slots_and_a_dropped_one_is_free_again() {
        let hub = StreamHub::new();
        let user = UserId::generate();
        let mut slots: Vec<_> = (0..MAX_STREAMS_PER_USER)
            .map(|_| hub.open(user).unwrap())
            .collect();
        assert!(hub.open(user).is_none());
        slots.pop();
        assert!(hub.open(user).is_some());
        drop(slots);
        assert_eq!(hub.open_streams(user), 0);
    }

    #[tokio::test]
    async fn stopping_ends_every_wait() {
        let hub = StreamHub::new();
        let mut slot = hub.open(UserId::generate()).unwrap();
        let waiting = tokio::spawn(async move { slot.wait().await });
        hub.stop();
        assert_eq!(waiting.await.unwrap(), Wake::Stopping);
    }
}
