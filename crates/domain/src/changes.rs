//! The changes feed: what changed in a user's tasks after a position, in
//! the order it happened (specs/004-sync/spec.md).
//!
//! Every create, change and delete of a task takes the next position of
//! its owner; storage keeps each task's latest position and a tombstone
//! (with its position) for each deleted task, for a while. A client holds
//! a [`FeedPosition`] and asks what changed after it.

use crate::{Task, TaskId};

/// The most changes one page of the feed holds.
pub const CHANGES_PAGE_MAX: u32 = 500;

/// How many old deletions one transaction forgets: small enough to stay
/// well inside the statement timeout however large the backlog.
pub const DELETIONS_FORGOTTEN_PER_BATCH: u32 = 1_000;

/// Where a client stands in its feed: everything up to these positions has
/// reached it.
///
/// The two numbers differ only while a client walks its first, full list
/// (a feed read without a position), page by page: the tasks come in
/// position order, so `tasks_after` says how far that walk got, while
/// `deletes_after` is where the feed stood when the walk began. A deletion
/// at or below it removed a task the walk never showed, so the client
/// does not need it, and the walk stays valid however old the history it
/// starts from is. Outside such a walk both are the same number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedPosition {
    /// Tasks whose latest change is after this position are still to come.
    pub tasks_after: u64,
    /// Deletions after this position are still to come.
    pub deletes_after: u64,
}

impl FeedPosition {
    /// The position just after change number `position`.
    #[must_use]
    pub fn at(position: u64) -> Self {
        Self {
            tasks_after: position,
            deletes_after: position,
        }
    }
}

/// One change, as a client applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The task exists and is now like this.
    Upsert(Task),
    /// The task with this id was deleted.
    Delete(TaskId),
}

impl Change {
    /// The task the change is about.
    #[must_use]
    pub fn task_id(&self) -> TaskId {
        match self {
            Self::Upsert(task) => task.id,
            Self::Delete(id) => *id,
        }
    }
}

/// A change and the position it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PositionedChange {
    /// The owner's change position of the task's latest change.
    pub position: u64,
    /// What changed.
    pub change: Change,
}

/// What storage answers for a read of the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeSlice {
    /// The owner's latest position, read before the changes: every change
    /// at or below it is among what storage could return.
    pub head: u64,
    /// The highest position whose deletion may have been forgotten: a
    /// client that stands below it may have missed one.
    pub floor: u64,
    /// Up to the asked number of changes after the position, in position
    /// order.
    pub changes: Vec<PositionedChange>,
}

/// One page of the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangePage {
    /// The changes, oldest first, each task at most once.
    pub changes: Vec<Change>,
    /// For each of `changes`, where a reader stands once it has applied
    /// that change and those before it: the live stream gives each event
    /// this as its id. The last one is `next`.
    pub positions: Vec<FeedPosition>,
    /// Where the next read starts.
    pub next: FeedPosition,
    /// Whether more changes follow at once.
    pub has_more: bool,
}

impl ChangePage {
    /// Makes a page out of what storage read after `from` (`limit + 1`
    /// changes at most, the extra one telling that more follow).
    #[must_use]
    pub fn assemble(from: FeedPosition, slice: ChangeSlice, limit: u32) -> Self {
        let ChangeSlice {
            head, mut changes, ..
        } = slice;
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let has_more = changes.len() > limit;
        changes.truncate(limit);
        let last = changes.last().map(|change| change.position);
        let next = match (has_more, last) {
            (true, Some(last)) => FeedPosition {
                tasks_after: last,
                deletes_after: from.deletes_after.max(last),
            },
            // Everything up to the head has been read, so the walk is over
            // and both numbers meet.
            _ => FeedPosition::at(
                last.unwrap_or(0)
                    .max(head)
                    .max(from.tasks_after)
                    .max(from.deletes_after),
            ),
        };
        let changes = latest_only(changes);
        let mut positions: Vec<FeedPosition> = changes
            .iter()
            .map(|change| FeedPosition {
                tasks_after: change.position,
                deletes_after: from.deletes_after.max(change.position),
            })
            .collect();
        // The last change of the page may stand below `next` (the head, when
        // the newest changes were deletions the walk did not need), and a
        // reader that applied it has read the whole page.
        if let Some(last) = positions.last_mut() {
            *last = next;
        }
        Self {
            changes: changes.into_iter().map(|change| change.change).collect(),
            positions,
            next,
            has_more,
        }
    }
}

/// Each task once, at its latest change. Storage keeps one row per task,
/// but a tombstone and a task could share an id; the later one wins.
fn latest_only(changes: Vec<PositionedChange>) -> Vec<PositionedChange> {
    let mut latest = std::collections::HashMap::with_capacity(changes.len());
    for change in &changes {
        latest
            .entry(change.change.task_id())
            .and_modify(|position: &mut u64| *position = (*position).max(change.position))
            .or_insert(change.position);
    }
    changes
        .into_iter()
        .filter(|change| latest.get(&change.change.task_id()) == Some(&change.position))
        .collect()
}
