//! The live event streams of one instance (`GET /api/tasks/events`): who
//! has streams open, waking them when their user's tasks change, and ending
//! them all when the server stops (specs/004-sync/spec.md).
//!
//! A stream is woken, never handed a change: it then reads the changes feed
//! from its last position, so the feed alone decides what a client sees and
//! in which order, and a wake-up that finds nothing new costs one read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use todo_domain::UserId;
use todo_domain::ports::ChangeNotifier;
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

/// The streams of one user: how many, and the bell they listen to.
struct UserStreams {
    open: usize,
    /// Each send says "read the feed again"; the value means nothing.
    bell: watch::Sender<()>,
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
            bell: watch::Sender::new(()),
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
            streams.bell.send_replace(());
        }
    }

    fn all_changed(&self) {
        for streams in self.users().values() {
            streams.bell.send_replace(());
        }
    }
}

/// One open stream's place in the hub.
pub struct StreamSlot {
    hub: StreamHub,
    user: UserId,
    bell: watch::Receiver<()>,
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
