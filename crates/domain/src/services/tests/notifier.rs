//! Every write tells the change notifier exactly once, after storage said
//! it succeeded, and never when it failed or was only a replay: a live
//! stream woken too early would read the feed before the change is there.
//! A create or change hands over the task as written, with no position (the
//! database hands those out); a delete names the owner.

use std::sync::Arc;

use mockall::Sequence;
use mockall::predicate::{always, eq};

use super::{
    keys_answering_claim, new_task, recorded_response, retry_request, sample_task, storage_down,
    task_patch, task_service, task_service_with_keys,
};
use crate::ports::{MockChangeNotifier, MockTaskRepository};
use crate::{ClaimOutcome, CompletionChange, Task, TaskId, UserId};

/// A notifier expecting `owner`'s name (a delete) exactly `times` times.
fn notifier(owner: UserId, times: usize, sequence: &mut Sequence) -> Arc<MockChangeNotifier> {
    let mut notifier = MockChangeNotifier::new();
    notifier
        .expect_changed()
        .with(eq(owner))
        .times(times)
        .in_sequence(sequence)
        .return_const(());
    Arc::new(notifier)
}

/// A notifier expecting, once, a task that passes `is_the_write`, without
/// a position.
fn told_of(
    is_the_write: impl Fn(&Task) -> bool + Send + 'static,
    sequence: &mut Sequence,
) -> Arc<MockChangeNotifier> {
    let mut notifier = MockChangeNotifier::new();
    notifier
        .expect_written()
        .withf(move |task, position| is_the_write(task) && position.is_none())
        .times(1)
        .in_sequence(sequence)
        .return_const(());
    Arc::new(notifier)
}

fn silent() -> Arc<MockChangeNotifier> {
    let mut notifier = MockChangeNotifier::new();
    notifier.expect_changed().times(0);
    notifier.expect_written().times(0);
    Arc::new(notifier)
}

#[tokio::test]
async fn a_create_tells_once_after_the_insert() {
    let owner = UserId::generate();
    let mut sequence = Sequence::new();
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_insert()
        .times(1)
        .in_sequence(&mut sequence)
        .returning(|_, _, _| Ok(()));
    let notifier = told_of(
        move |task| task.owner == owner && task.title == new_task().title,
        &mut sequence,
    );
    let service = task_service(tasks).with_notifier(notifier);
    service.create(owner, new_task(), None).await.unwrap();
}

#[tokio::test]
async fn a_failed_create_tells_no_one() {
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_insert()
        .returning(|_, _, _| Err(storage_down()));
    let service = task_service(tasks).with_notifier(silent());
    assert!(
        service
            .create(UserId::generate(), new_task(), None)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_replayed_create_tells_no_one() {
    let owner = UserId::generate();
    let mut tasks = MockTaskRepository::new();
    tasks.expect_insert().times(0);
    let keys = keys_answering_claim(owner, Ok(ClaimOutcome::Replay(recorded_response())));
    let service = task_service_with_keys(tasks, keys).with_notifier(silent());
    service
        .create(owner, new_task(), Some(retry_request()))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_update_tells_once_after_the_write_and_not_on_a_miss() {
    let owner = UserId::generate();
    let id = TaskId::generate();
    let mut sequence = Sequence::new();
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_patch_owned()
        .times(1)
        .in_sequence(&mut sequence)
        .returning(move |_, _, _, _, _| Ok(Some(sample_task(id, owner))));
    let notifier = told_of(move |task| *task == sample_task(id, owner), &mut sequence);
    let service = task_service(tasks).with_notifier(notifier);
    service.update(owner, id, task_patch(), None).await.unwrap();

    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_patch_owned()
        .returning(|_, _, _, _, _| Ok(None));
    tasks.expect_exists().returning(|_| Ok(false));
    let service = task_service(tasks).with_notifier(silent());
    assert!(service.update(owner, id, task_patch(), None).await.is_err());
}

#[tokio::test]
async fn a_completion_change_tells_once_after_the_write_and_not_on_failure() {
    let owner = UserId::generate();
    let id = TaskId::generate();
    let mut sequence = Sequence::new();
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_change_completion_owned()
        .times(1)
        .in_sequence(&mut sequence)
        .returning(move |_, _, _, _, _, _| Ok(Some(sample_task(id, owner))));
    let notifier = told_of(move |task| *task == sample_task(id, owner), &mut sequence);
    let service = task_service(tasks).with_notifier(notifier);
    service
        .change_completion(owner, id, CompletionChange::Toggle, None, None)
        .await
        .unwrap();

    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_change_completion_owned()
        .returning(|_, _, _, _, _, _| Err(storage_down()));
    let service = task_service(tasks).with_notifier(silent());
    assert!(
        service
            .change_completion(owner, id, CompletionChange::Set(true), None, None)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_delete_tells_once_after_the_write_and_not_on_a_miss() {
    let owner = UserId::generate();
    let id = TaskId::generate();
    let mut sequence = Sequence::new();
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_delete_owned()
        .times(1)
        .in_sequence(&mut sequence)
        .returning(|_, _, _| Ok(true));
    let notifier = notifier(owner, 1, &mut sequence);
    let service = task_service(tasks).with_notifier(notifier);
    service.delete(owner, id, None).await.unwrap();

    let mut tasks = MockTaskRepository::new();
    tasks.expect_delete_owned().returning(|_, _, _| Ok(false));
    tasks
        .expect_exists()
        .with(always())
        .returning(|_| Ok(false));
    let service = task_service(tasks).with_notifier(silent());
    assert!(service.delete(owner, id, None).await.is_err());
}

#[tokio::test]
async fn clearing_completed_tasks_tells_once_after_the_write_and_not_on_failure() {
    let owner = UserId::generate();
    let mut sequence = Sequence::new();
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_delete_completed()
        .times(1)
        .in_sequence(&mut sequence)
        .returning(|_| Ok(3));
    let notifier = notifier(owner, 1, &mut sequence);
    let service = task_service(tasks).with_notifier(notifier);
    assert_eq!(service.delete_completed(owner).await.unwrap(), 3);

    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_delete_completed()
        .returning(|_| Err(storage_down()));
    let service = task_service(tasks).with_notifier(silent());
    assert!(service.delete_completed(owner).await.is_err());
}

#[tokio::test]
async fn reads_tell_no_one() {
    let owner = UserId::generate();
    let id = TaskId::generate();
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_find_owned()
        .returning(move |_, _| Ok(Some(sample_task(id, owner))));
    let service = task_service(tasks).with_notifier(silent());
    service.get(owner, id).await.unwrap();
}
