//! The live event streams of one instance (`GET /api/tasks/events`): who
//! has streams open, telling them when their user's tasks change, and
//! ending them all when the server stops (specs/004-sync/spec.md).
//!
//! The feed alone decides what a client sees and in which order. News of a
//! change that arrives whole, with its position, is kept beside the user's
//! streams as a ready event: a stream standing right before it sends it on
//! without reading. Any other news (a delete, a change whose news named
//! only the owner, changes that came out of order) sends the stream to
//! the feed, and the streams of one user woken by the same write share that
//! read, and the events written from it.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use actix_web_lab::sse;
use todo_domain::ports::ChangeNotifier;
use todo_domain::{Change, ChangePage, FeedPosition, Task, UserId};
use tokio::sync::watch;

use crate::dto::ChangeResponse;
use crate::list_query::CursorKeys;

/// The most streams one user may have open on one instance (contract
/// section 7): each holds a connection and wakes on every write, so a
/// client that leaks them is stopped well before it matters.
pub const MAX_STREAMS_PER_USER: usize = 5;

/// How many changes brought whole by news one user's entry keeps. A
/// stream that falls further behind than this while busy sending reads
/// the feed instead, which is always right; a few are enough for the
/// streams of one user, which usually wake together.
const CHANGES_KEPT: usize = 8;

/// The open streams of this instance, by user.
#[derive(Clone)]
pub struct StreamHub {
    inner: Arc<HubInner>,
}

struct HubInner {
    users: Mutex<HashMap<UserId, UserStreams>>,
    /// Turns `true` once, when the server begins to stop.
    stopping: watch::Sender<bool>,
    /// Seals each event's id.
    cursors: Arc<CursorKeys>,
}

/// The streams of one user: how many, and what they share.
struct UserStreams {
    open: usize,
    shared: Arc<Shared>,
}

/// What the streams of one user on this instance share: the bell, the
/// changes news brought whole, and their latest read of the feed.
struct Shared {
    /// Each ring says "something changed" and counts up, so a stream can
    /// tell which news it has already taken into account.
    bell: watch::Sender<u64>,
    news: Mutex<News>,
    /// Held across a read, so the streams woken together wait for the
    /// first one's read rather than all reading at once.
    last: tokio::sync::Mutex<Option<PageRead>>,
}

/// The changes news brought whole, each with the ring that brought it, and
/// the latest ring whose change is not among them. Changed only together
/// with a ring, under the same lock, so the two always agree.
#[derive(Default)]
struct News {
    /// The latest ring that named only the owner, or whose change was
    /// dropped to keep [`CHANGES_KEPT`]: a stream that has not caught up
    /// past it must read the feed.
    blind: u64,
    recent: VecDeque<Brought>,
}

/// A change news brought whole, as the event every stream of the user
/// sends for it.
struct Brought {
    position: u64,
    ring: u64,
    event: sse::Event,
}

/// A page read from `from`, and the bell's count when the read began: it
/// holds every change whose ring counted up to `rung`.
struct PageRead {
    from: FeedPosition,
    rung: u64,
    page: EventPage,
}

/// Changes as a stream sends them: events ready to write (an event's `id`
/// names the position after it and the user, so it is the same on each of
/// the user's streams), and where they leave the client. Cloning shares
/// the events.
#[derive(Clone)]
pub struct EventPage {
    pub events: Arc<[sse::Event]>,
    pub next: FeedPosition,
    /// More changes follow at once.
    pub has_more: bool,
}

impl EventPage {
    /// A page of the feed as `user`'s events, each with the cursor after it.
    #[must_use]
    pub fn from_feed(page: ChangePage, cursors: &CursorKeys, user: UserId) -> Self {
        let events: Vec<_> = page
            .changes
            .into_iter()
            .zip(page.positions)
            .filter_map(|(change, after)| change_event(change, after, cursors, user))
            .collect();
        Self {
            events: events.into(),
            next: page.next,
            has_more: page.has_more,
        }
    }
}

/// One change as `user`'s event, its `id` the cursor standing after it.
fn change_event(
    change: Change,
    after: FeedPosition,
    cursors: &CursorKeys,
    user: UserId,
) -> Option<sse::Event> {
    let name = match &change {
        Change::Upsert(_) => "upsert",
        Change::Delete(_) => "delete",
    };
    match sse::Data::new_json(ChangeResponse::from(change)) {
        Ok(data) => Some(data.event(name).id(cursors.seal_feed(after, user)).into()),
        // Serialising our own response types does not fail; were it to,
        // the change is skipped here, and a reconnect from an earlier id
        // would read it again.
        Err(error) => {
            tracing::error!(%error, "a change could not be written as JSON");
            None
        }
    }
}

impl Shared {
    fn new() -> Self {
        Self {
            bell: watch::Sender::new(0),
            news: Mutex::new(News::default()),
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// The news, even if a thread panicked while holding it: each change
    /// to it is a push, a pop or a number, made whole or not at all.
    fn news(&self) -> MutexGuard<'_, News> {
        self.news.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Rings for a change the streams must read the feed to learn.
    fn ring_blind(&self) {
        let mut news = self.news();
        news.blind = self.ring();
    }

    /// Rings for a change brought whole.
    fn ring_with(&self, position: u64, event: sse::Event) {
        let mut news = self.news();
        let ring = self.ring();
        if news.recent.len() == CHANGES_KEPT
            && let Some(dropped) = news.recent.pop_front()
        {
            news.blind = news.blind.max(dropped.ring);
        }
        news.recent.push_back(Brought {
            position,
            ring,
            event,
        });
    }

    fn ring(&self) -> u64 {
        let mut ring = 0;
        self.bell.send_modify(|count| {
            *count += 1;
            ring = *count;
        });
        ring
    }
}

impl StreamHub {
    /// A hub with no streams, sealing event ids with `cursors`.
    #[must_use]
    pub fn new(cursors: Arc<CursorKeys>) -> Self {
        Self {
            inner: Arc::new(HubInner {
                users: Mutex::new(HashMap::new()),
                stopping: watch::Sender::new(false),
                cursors,
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
            shared: Arc::new(Shared::new()),
        });
        if streams.open >= MAX_STREAMS_PER_USER {
            return None;
        }
        streams.open += 1;
        // Subscribed before the stream reads anything: a write that commits
        // after this line rings a bell this receiver has not yet seen, and
        // the stream's first read has every change rung before it.
        let bell = streams.shared.bell.subscribe();
        let caught_up = *bell.borrow();
        Some(StreamSlot {
            hub: self.clone(),
            user,
            bell,
            caught_up,
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
    fn users(&self) -> MutexGuard<'_, HashMap<UserId, UserStreams>> {
        self.inner
            .users
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// What `owner`'s streams here share; `None` when there are none, and
    /// nothing to tell.
    fn shared(&self, owner: UserId) -> Option<Arc<Shared>> {
        self.users()
            .get(&owner)
            .map(|streams| streams.shared.clone())
    }
}

impl ChangeNotifier for StreamHub {
    fn changed(&self, owner: UserId) {
        if let Some(shared) = self.shared(owner) {
            shared.ring_blind();
        }
    }

    fn written(&self, task: &Task, position: Option<u64>) {
        let Some(position) = position else {
            return self.changed(task.owner);
        };
        let Some(shared) = self.shared(task.owner) else {
            return;
        };
        // Made once for all of the user's streams, outside the hub's lock.
        let after = FeedPosition::at(position);
        match change_event(
            Change::Upsert(task.clone()),
            after,
            &self.inner.cursors,
            task.owner,
        ) {
            Some(event) => shared.ring_with(position, event),
            None => shared.ring_blind(),
        }
    }

    fn all_changed(&self) {
        let everyone: Vec<_> = self
            .users()
            .values()
            .map(|streams| streams.shared.clone())
            .collect();
        for shared in everyone {
            shared.ring_blind();
        }
    }
}

/// One open stream's place in the hub.
pub struct StreamSlot {
    hub: StreamHub,
    user: UserId,
    bell: watch::Receiver<u64>,
    /// Every change whose ring counted up to this is in what the stream
    /// has sent or queued.
    caught_up: u64,
    shared: Arc<Shared>,
    stopping: watch::Receiver<bool>,
}

/// Why a stream stopped waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The user's tasks changed.
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

    /// The changes after `from` that news brought whole, when that is every
    /// change rung since this stream last caught up: they must then run on
    /// from `from` without a gap. `None` when some change is missing (news
    /// that named only the owner, one dropped, or one still on its way
    /// while a later one came), and the stream must read the feed.
    pub fn brought_after(&mut self, from: FeedPosition) -> Option<EventPage> {
        // In the middle of a first, full read the two numbers differ, and
        // only the feed knows which tasks that walk has yet to show.
        if from.tasks_after != from.deletes_after {
            return None;
        }
        let start = from.tasks_after;
        let news = self.shared.news();
        let ring = *self.bell.borrow_and_update();
        if news.blind > self.caught_up {
            return None;
        }
        let mut after: Vec<&Brought> = news
            .recent
            .iter()
            .filter(|brought| brought.position > start)
            .collect();
        after.sort_unstable_by_key(|brought| brought.position);
        let unbroken = after
            .iter()
            .zip(start + 1..)
            .all(|(brought, expected)| brought.position == expected);
        if !unbroken {
            return None;
        }
        self.caught_up = ring;
        let next = after.last().map_or(start, |brought| brought.position);
        Some(EventPage {
            events: after.iter().map(|brought| brought.event.clone()).collect(),
            next: FeedPosition::at(next),
            has_more: false,
        })
    }

    /// The feed after `from`, as of no earlier than the last ring this slot
    /// woke on: the page another stream of the same user read, when it
    /// began from `from` after that ring, else one `read` of its own, which
    /// the others may then take.
    ///
    /// # Errors
    /// What `read` answered; nothing is kept then.
    pub async fn read_shared<E, F>(&mut self, from: FeedPosition, read: F) -> Result<EventPage, E>
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
            self.caught_up = self.caught_up.max(done.rung);
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
        self.caught_up = self.caught_up.max(rung);
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
    use secrecy::SecretString;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;
    use todo_domain::{Labels, Priority, TaskId, TaskTitle, TaskVersion, Timestamp};

    fn keys() -> Arc<CursorKeys> {
        Arc::new(CursorKeys::derive(&SecretString::from(
            "a test secret of at least thirty-two bytes",
        )))
    }

    fn hub() -> StreamHub {
        StreamHub::new(keys())
    }

    fn task_of(owner: UserId, title: &str) -> Task {
        let now = Timestamp::now();
        Task {
            id: TaskId::generate(),
            owner,
            title: TaskTitle::parse(title).unwrap(),
            description: None,
            completed: false,
            completed_at: None,
            due_at: None,
            priority: Priority::None,
            labels: Labels::none(),
            created_at: now,
            updated_at: now,
            version: TaskVersion::FIRST,
        }
    }

    /// A stream of a new user standing at `at`, as its first read left it
    /// (that read counted every ring so far).
    async fn stream_at(at: u64) -> (StreamHub, UserId, StreamSlot) {
        let hub = hub();
        let user = UserId::generate();
        let mut slot = hub.open(user).unwrap();
        let read = slot
            .read_shared(FeedPosition::at(0), async { Ok::<_, ()>(page_to(at)) })
            .await
            .unwrap();
        assert_eq!(read.next, FeedPosition::at(at));
        (hub, user, slot)
    }

    /// Events as they go on the wire.
    async fn wire(events: &[sse::Event]) -> Vec<String> {
        let mut texts = Vec::new();
        for event in events {
            let body =
                sse::Sse::from_infallible_stream(futures_util::stream::iter([event.clone()]));
            let bytes = actix_web::body::to_bytes(body).await.unwrap();
            texts.push(String::from_utf8(bytes.to_vec()).unwrap());
        }
        texts
    }

    #[tokio::test]
    async fn a_change_wakes_the_users_streams_only() {
        let hub = hub();
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
        let hub = hub();
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
        let hub = hub();
        let user = UserId::generate();
        let (mut first, mut second) = (hub.open(user).unwrap(), hub.open(user).unwrap());
        hub.changed(user);
        assert_eq!(first.wait().await, Wake::Changed);
        assert_eq!(second.wait().await, Wake::Changed);
        (hub, user, first, second)
    }

    #[tokio::test]
    async fn streams_woken_by_one_write_share_one_read() {
        let (_hub, _user, mut first, mut second) = two_woken_streams().await;
        let reads = AtomicU32::new(0);
        let from = FeedPosition::at(1);
        let a = first.read_shared(from, counted(&reads, 2)).await.unwrap();
        let b = second.read_shared(from, counted(&reads, 2)).await.unwrap();
        assert_eq!((a.next, b.next), (FeedPosition::at(2), FeedPosition::at(2)));
        assert_eq!(reads.into_inner(), 1);
    }

    #[tokio::test]
    async fn a_write_after_the_shared_read_began_is_read_again() {
        let (hub, user, mut first, mut second) = two_woken_streams().await;
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
        let (_hub, _user, mut first, mut second) = two_woken_streams().await;
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
        let hub = hub();
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
        let hub = hub();
        let mut slot = hub.open(UserId::generate()).unwrap();
        let waiting = tokio::spawn(async move { slot.wait().await });
        hub.stop();
        assert_eq!(waiting.await.unwrap(), Wake::Stopping);
    }

    #[tokio::test]
    async fn news_of_the_next_change_is_sent_as_it_came_without_a_read() {
        let (hub, user, mut slot) = stream_at(1).await;
        let task = task_of(user, "brought whole");
        hub.written(&task, Some(2));
        assert_eq!(slot.wait().await, Wake::Changed);
        let brought = slot
            .brought_after(FeedPosition::at(1))
            .expect("no read needed");
        assert_eq!(brought.next, FeedPosition::at(2));
        assert_eq!(brought.events.len(), 1);
        let text = &wire(&brought.events).await[0];
        assert!(text.contains("event: upsert"), "{text}");
        assert!(text.contains("brought whole"), "{text}");
        let id = keys().seal_feed(FeedPosition::at(2), user);
        assert!(text.contains(&format!("id: {id}")), "{text}");
    }

    #[tokio::test]
    async fn changes_brought_out_of_order_are_sent_in_order_once_unbroken() {
        let (hub, user, mut slot) = stream_at(1).await;
        hub.written(&task_of(user, "third"), Some(3));
        hub.written(&task_of(user, "second"), Some(2));
        let brought = slot.brought_after(FeedPosition::at(1)).unwrap();
        assert_eq!(brought.next, FeedPosition::at(3));
        let texts = wire(&brought.events).await;
        assert!(
            texts[0].contains("second") && texts[1].contains("third"),
            "{texts:?}"
        );
    }

    #[tokio::test]
    async fn a_gap_in_what_news_brought_means_a_read() {
        let (hub, user, mut slot) = stream_at(1).await;
        // Position 2's news is still on its way from another instance.
        hub.written(&task_of(user, "third"), Some(3));
        assert!(slot.brought_after(FeedPosition::at(1)).is_none());
    }

    #[tokio::test]
    async fn news_that_names_only_the_owner_means_a_read_until_one_catches_up() {
        let (hub, user, mut slot) = stream_at(1).await;
        hub.changed(user);
        hub.written(&task_of(user, "third"), Some(3));
        assert!(slot.brought_after(FeedPosition::at(1)).is_none());
        // A read that began after both rings covers them.
        let page = slot
            .read_shared(FeedPosition::at(1), async { Ok::<_, ()>(page_to(3)) })
            .await
            .unwrap();
        hub.written(&task_of(user, "fourth"), Some(4));
        let brought = slot.brought_after(page.next).unwrap();
        assert_eq!(brought.next, FeedPosition::at(4));
        assert_eq!(brought.events.len(), 1);
    }

    #[tokio::test]
    async fn news_of_changes_already_sent_is_passed_over() {
        let (hub, user, mut slot) = stream_at(5).await;
        hub.written(&task_of(user, "old"), Some(4));
        let brought = slot.brought_after(FeedPosition::at(5)).unwrap();
        assert_eq!(brought.next, FeedPosition::at(5));
        assert!(brought.events.is_empty());
    }

    #[tokio::test]
    async fn more_changes_than_are_kept_mean_a_read() {
        let (hub, user, mut slot) = stream_at(0).await;
        for position in 1..=(CHANGES_KEPT as u64 + 1) {
            hub.written(&task_of(user, "many"), Some(position));
        }
        assert!(slot.brought_after(FeedPosition::at(0)).is_none());
    }

    #[tokio::test]
    async fn a_written_task_without_its_position_means_a_read() {
        let (hub, user, mut slot) = stream_at(1).await;
        hub.written(&task_of(user, "from a writer"), None);
        assert!(slot.brought_after(FeedPosition::at(1)).is_none());
    }

    #[tokio::test]
    async fn a_first_full_read_still_under_way_reads_on() {
        let (hub, user, mut slot) = stream_at(1).await;
        hub.written(&task_of(user, "during the walk"), Some(2));
        let walking = FeedPosition {
            tasks_after: 1,
            deletes_after: 0,
        };
        assert!(slot.brought_after(walking).is_none());
    }
}
