//! The changes feed over a mocked repository: which positions the service
//! asks for, when a position is too old, and how a page and the next
//! position are made from what storage read.

use mockall::predicate::eq;

use super::{clock_time, sample_task, task_service};
use crate::ports::MockTaskRepository;
use crate::{
    CHANGES_PAGE_MAX, Change, ChangeSlice, DELETIONS_FORGOTTEN_PER_BATCH, DomainError,
    FeedPosition, PositionedChange, TaskId, Timestamp, UserId,
};

fn upsert(position: u64, owner: UserId) -> PositionedChange {
    PositionedChange {
        position,
        change: Change::Upsert(sample_task(TaskId::generate(), owner)),
    }
}

fn delete(position: u64, id: TaskId) -> PositionedChange {
    PositionedChange {
        position,
        change: Change::Delete(id),
    }
}

fn answering(owner: UserId, since: Option<FeedPosition>, slice: ChangeSlice) -> MockTaskRepository {
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_changes_since()
        .with(eq(owner), eq(since), eq(CHANGES_PAGE_MAX + 1))
        .times(1)
        .return_once(move |_, _, _| Ok(slice));
    tasks
}

#[tokio::test]
async fn a_feed_read_without_a_position_ends_at_the_head() {
    let owner = UserId::generate();
    let slice = ChangeSlice {
        head: 9,
        floor: 4,
        changes: vec![upsert(2, owner), upsert(7, owner)],
    };
    let page = task_service(answering(owner, None, slice))
        .changes(owner, None)
        .await
        .unwrap();
    assert_eq!(page.changes.len(), 2);
    assert!(!page.has_more);
    // Later deletions (8, 9) removed tasks the client never saw.
    assert_eq!(page.next, FeedPosition::at(9));
}

#[tokio::test]
async fn a_position_below_the_floor_has_expired() {
    let owner = UserId::generate();
    let since = Some(FeedPosition::at(3));
    let slice = ChangeSlice {
        head: 9,
        floor: 4,
        changes: vec![],
    };
    let error = task_service(answering(owner, since, slice))
        .changes(owner, since)
        .await
        .unwrap_err();
    assert!(matches!(error, DomainError::CursorExpired));
}

#[tokio::test]
async fn a_position_at_the_floor_is_still_good() {
    let owner = UserId::generate();
    let since = Some(FeedPosition::at(4));
    let slice = ChangeSlice {
        head: 4,
        floor: 4,
        changes: vec![],
    };
    let page = task_service(answering(owner, since, slice))
        .changes(owner, since)
        .await
        .unwrap();
    assert!(page.changes.is_empty());
    assert_eq!(page.next, FeedPosition::at(4));
}

#[tokio::test]
async fn a_full_page_says_more_follow_and_continues_after_its_last_change() {
    let owner = UserId::generate();
    let fetched = CHANGES_PAGE_MAX + 1;
    let changes = (1..=u64::from(fetched))
        .map(|position| upsert(position, owner))
        .collect();
    let slice = ChangeSlice {
        head: 900,
        floor: 0,
        changes,
    };
    let page = task_service(answering(owner, None, slice))
        .changes(owner, None)
        .await
        .unwrap();
    assert!(page.has_more);
    assert_eq!(page.changes.len(), 500);
    // The walk of the full list goes on after 500; deletions count only
    // after the head it started from.
    assert_eq!(
        page.next,
        FeedPosition {
            tasks_after: 500,
            deletes_after: 900
        }
    );
}

#[tokio::test]
async fn a_walk_past_its_start_keeps_both_numbers_together() {
    let owner = UserId::generate();
    let since = Some(FeedPosition {
        tasks_after: 10,
        deletes_after: 20,
    });
    let changes = (21..=u64::from(CHANGES_PAGE_MAX) + 21)
        .map(|position| upsert(position, owner))
        .collect();
    let slice = ChangeSlice {
        head: 30,
        floor: 15,
        changes,
    };
    let page = task_service(answering(owner, since, slice))
        .changes(owner, since)
        .await
        .unwrap();
    assert!(page.has_more);
    assert_eq!(page.next, FeedPosition::at(520));
}

#[tokio::test]
async fn a_task_and_a_tombstone_of_one_id_leave_only_the_later() {
    let owner = UserId::generate();
    let since = Some(FeedPosition::at(1));
    let task = sample_task(TaskId::generate(), owner);
    let slice = ChangeSlice {
        head: 4,
        floor: 0,
        changes: vec![
            delete(2, task.id),
            PositionedChange {
                position: 3,
                change: Change::Upsert(task.clone()),
            },
            delete(4, TaskId::generate()),
        ],
    };
    let page = task_service(answering(owner, since, slice))
        .changes(owner, since)
        .await
        .unwrap();
    assert_eq!(page.changes.len(), 2);
    assert_eq!(page.changes[0], Change::Upsert(task));
    assert_eq!(page.next, FeedPosition::at(4));
}

#[tokio::test]
async fn storage_failures_pass_through() {
    let owner = UserId::generate();
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_changes_since()
        .returning(|_, _, _| Err(super::storage_down()));
    let error = task_service(tasks).changes(owner, None).await.unwrap_err();
    super::assert_storage_down(&error);
}

#[tokio::test]
async fn old_deletions_are_those_before_now_minus_the_retention_forgotten_in_batches() {
    let mut tasks = MockTaskRepository::new();
    let before = Timestamp::from_datetime(clock_time().as_datetime() - time::Duration::days(30));
    let batch = DELETIONS_FORGOTTEN_PER_BATCH;
    let mut sequence = mockall::Sequence::new();
    for answer in [u64::from(batch), u64::from(batch), 3] {
        tasks
            .expect_forget_deletions()
            .with(eq(before), eq(batch))
            .times(1)
            .in_sequence(&mut sequence)
            .returning(move |_, _| Ok(answer));
    }
    let forgotten = task_service(tasks)
        .forget_old_deletions(std::time::Duration::from_secs(30 * 86_400))
        .await
        .unwrap();
    assert_eq!(forgotten, 2 * u64::from(batch) + 3);
}

#[tokio::test]
async fn a_failed_batch_stops_the_round() {
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_forget_deletions()
        .times(1)
        .returning(|_, _| Err(super::storage_down()));
    let error = task_service(tasks)
        .forget_old_deletions(std::time::Duration::from_secs(86_400))
        .await
        .unwrap_err();
    super::assert_storage_down(&error);
}

#[test]
fn each_change_of_a_page_carries_where_a_reader_stands_after_it() {
    let owner = UserId::generate();
    let task = TaskId::generate();
    let slice = ChangeSlice {
        head: 10,
        floor: 0,
        changes: vec![upsert(3, owner), delete(5, task), upsert(7, owner)],
    };
    let page = crate::ChangePage::assemble(FeedPosition::at(2), slice, CHANGES_PAGE_MAX);
    // The last one reads up to the head: the newest changes past 7 were
    // nothing this page had to show.
    assert_eq!(
        page.positions,
        vec![
            FeedPosition::at(3),
            FeedPosition::at(5),
            FeedPosition::at(10)
        ]
    );
    assert_eq!(page.next, FeedPosition::at(10));

    // A full read (no position) keeps its deletions' start while walking.
    let walk = FeedPosition {
        tasks_after: 0,
        deletes_after: 9,
    };
    let slice = ChangeSlice {
        head: 9,
        floor: 0,
        changes: vec![upsert(4, owner), upsert(6, owner), upsert(8, owner)],
    };
    let page = crate::ChangePage::assemble(walk, slice, 2);
    assert!(page.has_more);
    assert_eq!(
        page.positions,
        vec![
            FeedPosition {
                tasks_after: 4,
                deletes_after: 9
            },
            FeedPosition {
                tasks_after: 6,
                deletes_after: 9
            },
        ]
    );
}
