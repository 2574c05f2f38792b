//! Service tests over mockall mocks of the ports: they pin down which port is
//! called with what, and how each answer becomes the service's result. What a
//! real database does with those calls is tested in the persistence crate.

use std::error::Error as _;
use std::sync::{Arc, Mutex};

use mockall::Sequence;
use mockall::predicate::eq;
use time::macros::datetime;

use super::{AccountService, TaskService};
use crate::SignInLimit;
use crate::clock::MockClock;
use crate::ports::{
    MockPasswordHasher, MockSignInFailureRepository, MockTaskRepository, MockUserRepository,
};
use crate::{
    CompletionChange, DomainError, Email, NewTask, NewUser, Password, PasswordHash, Task,
    TaskChanges, TaskDescription, TaskId, TaskTitle, Timestamp, User, UserCredentials, UserId,
};

mod sign_in_limit;

// ---------------------------------------------------------------- helpers

/// The instant every service in these tests believes it is. Far from the
/// real time, so a service that read the wall clock would be caught.
fn clock_time() -> Timestamp {
    Timestamp::from_datetime(datetime!(2031-03-14 15:09:26.535897 UTC))
}

fn fixed_clock() -> Arc<MockClock> {
    let mut clock = MockClock::new();
    clock.expect_now().return_const(clock_time());
    Arc::new(clock)
}

fn task_service(tasks: MockTaskRepository) -> TaskService {
    TaskService::new(Arc::new(tasks), fixed_clock())
}

/// An account service whose failed-sign-in store blocks nobody and accepts
/// every change; `sign_in_limit` tests its calls.
fn account_service(users: MockUserRepository, hasher: MockPasswordHasher) -> AccountService {
    let mut failures = MockSignInFailureRepository::new();
    failures.expect_blocked_until().returning(|_, _| Ok(None));
    failures.expect_record_failure().returning(|_, _, _| Ok(()));
    failures.expect_clear().returning(|_| Ok(()));
    account_service_counting(users, hasher, failures)
}

fn account_service_counting(
    users: MockUserRepository,
    hasher: MockPasswordHasher,
    failures: MockSignInFailureRepository,
) -> AccountService {
    AccountService::new(
        Arc::new(users),
        Arc::new(hasher),
        Arc::new(failures),
        sign_in_limit(),
        fixed_clock(),
    )
}

fn sign_in_limit() -> SignInLimit {
    SignInLimit {
        failures: 10,
        window: std::time::Duration::from_secs(900),
    }
}

/// A stored task of `owner`, distinct from anything a service would build.
fn sample_task(id: TaskId, owner: UserId) -> Task {
    Task {
        id,
        owner,
        title: TaskTitle::parse("Water the plants").unwrap(),
        description: TaskDescription::parse(Some("The fern too")).unwrap(),
        completed: false,
        created_at: Timestamp::from_datetime(datetime!(2030-01-01 08:00 UTC)),
        updated_at: Timestamp::from_datetime(datetime!(2030-01-02 09:30 UTC)),
    }
}

fn new_task() -> NewTask {
    NewTask {
        title: TaskTitle::parse("Buy milk").unwrap(),
        description: TaskDescription::parse(Some("Two litres")).unwrap(),
        completed: true,
    }
}

fn task_changes() -> TaskChanges {
    TaskChanges {
        title: TaskTitle::parse("Buy oat milk").unwrap(),
        description: None,
        completed: Some(true),
    }
}

fn email() -> Email {
    Email::parse("ada@example.io").unwrap()
}

fn password_hash() -> PasswordHash {
    PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned())
}

fn sample_user(id: UserId) -> User {
    User {
        id,
        email: email(),
        created_at: Timestamp::from_datetime(datetime!(2030-01-01 08:00 UTC)),
        last_signin_at: Some(clock_time()),
    }
}

fn credentials(user_id: UserId) -> UserCredentials {
    UserCredentials {
        user_id,
        password_hash: password_hash(),
    }
}

/// A storage failure recognisable by its message, so a test can tell that
/// the very error the port returned came out of the service.
fn storage_down() -> DomainError {
    DomainError::Unavailable("connection refused".into())
}

#[track_caller]
fn assert_storage_down(error: &DomainError) {
    assert!(
        matches!(error, DomainError::Unavailable(_)),
        "expected Unavailable, got {error:?}"
    );
    assert_eq!(error.source().unwrap().to_string(), "connection refused");
}

/// Expects exactly one existence check for `id`, answered with `answer`.
fn expect_exists(tasks: &mut MockTaskRepository, id: TaskId, answer: Result<bool, DomainError>) {
    tasks
        .expect_exists()
        .with(eq(id))
        .times(1)
        .return_once(move |_| answer);
}

/// The fast path must not pay for the second query.
fn expect_no_existence_check(tasks: &mut MockTaskRepository) {
    tasks.expect_exists().times(0);
}

/// Remembers what a mock was called with, for assertions after the call.
struct Captured<T>(Arc<Mutex<Option<T>>>);

impl<T: Clone> Captured<T> {
    fn new() -> Self {
        Self(Arc::new(Mutex::new(None)))
    }

    fn recorder(&self) -> impl Fn(&T) + use<T> {
        let slot = Arc::clone(&self.0);
        move |value| *slot.lock().unwrap() = Some(value.clone())
    }

    fn value(&self) -> T {
        self.0
            .lock()
            .unwrap()
            .clone()
            .expect("the mock was not called")
    }
}

// ------------------------------------------------------- TaskService::create

#[tokio::test]
async fn created_task_gets_a_version_7_id() {
    let mut tasks = MockTaskRepository::new();
    tasks.expect_insert().returning(|_| Ok(()));

    let task = task_service(tasks)
        .create(UserId::generate(), new_task())
        .await
        .unwrap();

    assert_eq!(task.id.as_uuid().get_version_num(), 7);
}

#[tokio::test]
async fn created_task_belongs_to_the_caller() {
    let owner = UserId::generate();
    let mut tasks = MockTaskRepository::new();
    tasks.expect_insert().returning(|_| Ok(()));

    let task = task_service(tasks).create(owner, new_task()).await.unwrap();

    assert_eq!(task.owner, owner);
}

#[tokio::test]
async fn created_task_is_created_and_updated_at_the_clock_time() {
    let mut tasks = MockTaskRepository::new();
    tasks.expect_insert().returning(|_| Ok(()));

    let task = task_service(tasks)
        .create(UserId::generate(), new_task())
        .await
        .unwrap();

    assert_eq!(task.created_at, clock_time());
    assert_eq!(task.updated_at, clock_time());
}

#[tokio::test]
async fn created_task_keeps_the_given_title_description_and_state() {
    let mut tasks = MockTaskRepository::new();
    tasks.expect_insert().returning(|_| Ok(()));

    let task = task_service(tasks)
        .create(UserId::generate(), new_task())
        .await
        .unwrap();

    let given = new_task();
    assert_eq!(
        (task.title, task.description, task.completed),
        (given.title, given.description, given.completed)
    );
}

#[tokio::test]
async fn creating_a_task_inserts_exactly_the_returned_task_once() {
    let inserted = Captured::new();
    let record = inserted.recorder();
    let mut tasks = MockTaskRepository::new();
    tasks.expect_insert().times(1).returning(move |task| {
        record(task);
        Ok(())
    });

    let task = task_service(tasks)
        .create(UserId::generate(), new_task())
        .await
        .unwrap();

    assert_eq!(inserted.value(), task);
}

#[tokio::test]
async fn storage_failure_while_creating_a_task_propagates() {
    let mut tasks = MockTaskRepository::new();
    tasks.expect_insert().return_once(|_| Err(storage_down()));

    let error = task_service(tasks)
        .create(UserId::generate(), new_task())
        .await
        .unwrap_err();

    assert_storage_down(&error);
}

// --------------------------------------------------------- TaskService::list

#[tokio::test]
async fn listing_returns_what_the_repository_holds_for_the_caller() {
    let owner = UserId::generate();
    let stored = vec![
        sample_task(TaskId::generate(), owner),
        sample_task(TaskId::generate(), owner),
    ];
    let answer = stored.clone();
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_list_by_owner()
        .with(eq(owner))
        .times(1)
        .return_once(move |_| Ok(answer));

    let listed = task_service(tasks).list(owner).await.unwrap();

    assert_eq!(listed, stored);
}

#[tokio::test]
async fn storage_failure_while_listing_propagates() {
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_list_by_owner()
        .return_once(|_| Err(storage_down()));

    let error = task_service(tasks)
        .list(UserId::generate())
        .await
        .unwrap_err();

    assert_storage_down(&error);
}

// ---------------------------------------------------------- TaskService::get

/// A repository whose owned lookup of (`id`, `owner`) misses once.
fn get_misses(id: TaskId, owner: UserId) -> MockTaskRepository {
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_find_owned()
        .with(eq(id), eq(owner))
        .times(1)
        .return_once(|_, _| Ok(None));
    tasks
}

#[tokio::test]
async fn getting_an_owned_task_returns_it_without_checking_existence() {
    let (id, owner) = (TaskId::generate(), UserId::generate());
    let stored = sample_task(id, owner);
    let answer = stored.clone();
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_find_owned()
        .with(eq(id), eq(owner))
        .times(1)
        .return_once(move |_, _| Ok(Some(answer)));
    expect_no_existence_check(&mut tasks);

    let task = task_service(tasks).get(owner, id).await.unwrap();

    assert_eq!(task, stored);
}

#[tokio::test]
async fn getting_another_users_task_is_forbidden() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = get_misses(id, caller);
    expect_exists(&mut tasks, id, Ok(true));

    let error = task_service(tasks).get(caller, id).await.unwrap_err();

    assert!(matches!(error, DomainError::Forbidden), "{error:?}");
}

#[tokio::test]
async fn getting_a_task_nobody_has_is_not_found() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = get_misses(id, caller);
    expect_exists(&mut tasks, id, Ok(false));

    let error = task_service(tasks).get(caller, id).await.unwrap_err();

    assert!(matches!(error, DomainError::TaskNotFound), "{error:?}");
}

#[tokio::test]
async fn failing_existence_check_after_a_missed_get_propagates() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = get_misses(id, caller);
    expect_exists(&mut tasks, id, Err(storage_down()));

    let error = task_service(tasks).get(caller, id).await.unwrap_err();

    assert_storage_down(&error);
}

#[tokio::test]
async fn failing_get_propagates_without_checking_existence() {
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_find_owned()
        .return_once(|_, _| Err(storage_down()));
    expect_no_existence_check(&mut tasks);

    let error = task_service(tasks)
        .get(UserId::generate(), TaskId::generate())
        .await
        .unwrap_err();

    assert_storage_down(&error);
}

// ------------------------------------------------------- TaskService::update

/// A repository whose owned update of (`id`, `owner`) misses once.
fn update_misses(id: TaskId, owner: UserId) -> MockTaskRepository {
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_update_owned()
        .with(eq(id), eq(owner), eq(task_changes()), eq(clock_time()))
        .times(1)
        .return_once(|_, _, _, _| Ok(None));
    tasks
}

#[tokio::test]
async fn updating_hands_the_repository_the_callers_ids_the_changes_and_the_clock_time() {
    let (id, owner) = (TaskId::generate(), UserId::generate());
    let stored = sample_task(id, owner);
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_update_owned()
        .with(eq(id), eq(owner), eq(task_changes()), eq(clock_time()))
        .times(1)
        .return_once(move |_, _, _, _| Ok(Some(stored)));
    expect_no_existence_check(&mut tasks);

    let result = task_service(tasks).update(owner, id, task_changes()).await;

    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn updating_an_owned_task_returns_its_stored_state_without_checking_existence() {
    let (id, owner) = (TaskId::generate(), UserId::generate());
    let stored = sample_task(id, owner);
    let answer = stored.clone();
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_update_owned()
        .return_once(move |_, _, _, _| Ok(Some(answer)));
    expect_no_existence_check(&mut tasks);

    let task = task_service(tasks)
        .update(owner, id, task_changes())
        .await
        .unwrap();

    assert_eq!(task, stored);
}

#[tokio::test]
async fn updating_another_users_task_is_forbidden() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = update_misses(id, caller);
    expect_exists(&mut tasks, id, Ok(true));

    let error = task_service(tasks)
        .update(caller, id, task_changes())
        .await
        .unwrap_err();

    assert!(matches!(error, DomainError::Forbidden), "{error:?}");
}

#[tokio::test]
async fn updating_a_task_nobody_has_is_not_found() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = update_misses(id, caller);
    expect_exists(&mut tasks, id, Ok(false));

    let error = task_service(tasks)
        .update(caller, id, task_changes())
        .await
        .unwrap_err();

    assert!(matches!(error, DomainError::TaskNotFound), "{error:?}");
}

#[tokio::test]
async fn failing_existence_check_after_a_missed_update_propagates() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = update_misses(id, caller);
    expect_exists(&mut tasks, id, Err(storage_down()));

    let error = task_service(tasks)
        .update(caller, id, task_changes())
        .await
        .unwrap_err();

    assert_storage_down(&error);
}

#[tokio::test]
async fn failing_update_propagates_without_checking_existence() {
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_update_owned()
        .return_once(|_, _, _, _| Err(storage_down()));
    expect_no_existence_check(&mut tasks);

    let error = task_service(tasks)
        .update(UserId::generate(), TaskId::generate(), task_changes())
        .await
        .unwrap_err();

    assert_storage_down(&error);
}

// --------------------------------------------- TaskService::change_completion

const TOGGLE: CompletionChange = CompletionChange::Toggle;
const SET_DONE: CompletionChange = CompletionChange::Set(true);

/// A repository whose owned completion change of (`id`, `owner`) misses once.
fn completion_change_misses(
    id: TaskId,
    owner: UserId,
    change: CompletionChange,
) -> MockTaskRepository {
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_change_completion_owned()
        .with(eq(id), eq(owner), eq(change), eq(clock_time()))
        .times(1)
        .return_once(|_, _, _, _| Ok(None));
    tasks
}

/// A repository whose completion change of (`id`, `owner`) hits, and that
/// fails the test if asked whether the task exists.
fn completion_change_hits(
    id: TaskId,
    owner: UserId,
    change: CompletionChange,
    stored: Task,
) -> MockTaskRepository {
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_change_completion_owned()
        .with(eq(id), eq(owner), eq(change), eq(clock_time()))
        .times(1)
        .return_once(move |_, _, _, _| Ok(Some(stored)));
    expect_no_existence_check(&mut tasks);
    tasks
}

#[tokio::test]
async fn toggling_hands_the_repository_a_toggle_with_the_callers_ids_and_the_clock_time() {
    let (id, owner) = (TaskId::generate(), UserId::generate());
    let tasks = completion_change_hits(id, owner, TOGGLE, sample_task(id, owner));

    let result = task_service(tasks)
        .change_completion(owner, id, TOGGLE)
        .await;

    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn setting_completion_hands_the_repository_the_value_with_the_callers_ids_and_the_clock_time()
{
    let (id, owner) = (TaskId::generate(), UserId::generate());
    let tasks = completion_change_hits(id, owner, SET_DONE, sample_task(id, owner));

    let result = task_service(tasks)
        .change_completion(owner, id, SET_DONE)
        .await;

    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn toggling_an_owned_task_returns_its_stored_state_without_checking_existence() {
    let (id, owner) = (TaskId::generate(), UserId::generate());
    let stored = Task {
        completed: true,
        ..sample_task(id, owner)
    };
    let tasks = completion_change_hits(id, owner, TOGGLE, stored.clone());

    let task = task_service(tasks)
        .change_completion(owner, id, TOGGLE)
        .await
        .unwrap();

    assert_eq!(task, stored);
}

#[tokio::test]
async fn setting_completion_of_an_owned_task_returns_its_stored_state_without_checking_existence() {
    let (id, owner) = (TaskId::generate(), UserId::generate());
    let stored = Task {
        completed: true,
        ..sample_task(id, owner)
    };
    let tasks = completion_change_hits(id, owner, SET_DONE, stored.clone());

    let task = task_service(tasks)
        .change_completion(owner, id, SET_DONE)
        .await
        .unwrap();

    assert_eq!(task, stored);
}

#[tokio::test]
async fn toggling_another_users_task_is_forbidden() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = completion_change_misses(id, caller, TOGGLE);
    expect_exists(&mut tasks, id, Ok(true));

    let error = task_service(tasks)
        .change_completion(caller, id, TOGGLE)
        .await
        .unwrap_err();

    assert!(matches!(error, DomainError::Forbidden), "{error:?}");
}

#[tokio::test]
async fn toggling_a_task_nobody_has_is_not_found() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = completion_change_misses(id, caller, TOGGLE);
    expect_exists(&mut tasks, id, Ok(false));

    let error = task_service(tasks)
        .change_completion(caller, id, TOGGLE)
        .await
        .unwrap_err();

    assert!(matches!(error, DomainError::TaskNotFound), "{error:?}");
}

#[tokio::test]
async fn failing_existence_check_after_a_missed_toggle_propagates() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = completion_change_misses(id, caller, TOGGLE);
    expect_exists(&mut tasks, id, Err(storage_down()));

    let error = task_service(tasks)
        .change_completion(caller, id, TOGGLE)
        .await
        .unwrap_err();

    assert_storage_down(&error);
}

#[tokio::test]
async fn setting_completion_of_another_users_task_is_forbidden() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = completion_change_misses(id, caller, SET_DONE);
    expect_exists(&mut tasks, id, Ok(true));

    let error = task_service(tasks)
        .change_completion(caller, id, SET_DONE)
        .await
        .unwrap_err();

    assert!(matches!(error, DomainError::Forbidden), "{error:?}");
}

#[tokio::test]
async fn setting_completion_of_a_task_nobody_has_is_not_found() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = completion_change_misses(id, caller, SET_DONE);
    expect_exists(&mut tasks, id, Ok(false));

    let error = task_service(tasks)
        .change_completion(caller, id, SET_DONE)
        .await
        .unwrap_err();

    assert!(matches!(error, DomainError::TaskNotFound), "{error:?}");
}

#[tokio::test]
async fn failing_existence_check_after_a_missed_completion_set_propagates() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = completion_change_misses(id, caller, SET_DONE);
    expect_exists(&mut tasks, id, Err(storage_down()));

    let error = task_service(tasks)
        .change_completion(caller, id, SET_DONE)
        .await
        .unwrap_err();

    assert_storage_down(&error);
}

#[tokio::test]
async fn failing_completion_change_propagates_without_checking_existence() {
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_change_completion_owned()
        .return_once(|_, _, _, _| Err(storage_down()));
    expect_no_existence_check(&mut tasks);

    let error = task_service(tasks)
        .change_completion(UserId::generate(), TaskId::generate(), TOGGLE)
        .await
        .unwrap_err();

    assert_storage_down(&error);
}

// ------------------------------------------------------- TaskService::delete

/// A repository whose owned delete of (`id`, `owner`) matches nothing once.
fn delete_misses(id: TaskId, owner: UserId) -> MockTaskRepository {
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_delete_owned()
        .with(eq(id), eq(owner))
        .times(1)
        .return_once(|_, _| Ok(false));
    tasks
}

#[tokio::test]
async fn deleting_an_owned_task_succeeds_without_checking_existence() {
    let (id, owner) = (TaskId::generate(), UserId::generate());
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_delete_owned()
        .with(eq(id), eq(owner))
        .times(1)
        .return_once(|_, _| Ok(true));
    expect_no_existence_check(&mut tasks);

    let result = task_service(tasks).delete(owner, id).await;

    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn deleting_another_users_task_is_forbidden() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = delete_misses(id, caller);
    expect_exists(&mut tasks, id, Ok(true));

    let error = task_service(tasks).delete(caller, id).await.unwrap_err();

    assert!(matches!(error, DomainError::Forbidden), "{error:?}");
}

#[tokio::test]
async fn deleting_a_task_nobody_has_is_not_found() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = delete_misses(id, caller);
    expect_exists(&mut tasks, id, Ok(false));

    let error = task_service(tasks).delete(caller, id).await.unwrap_err();

    assert!(matches!(error, DomainError::TaskNotFound), "{error:?}");
}

#[tokio::test]
async fn failing_existence_check_after_a_missed_delete_propagates() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = delete_misses(id, caller);
    expect_exists(&mut tasks, id, Err(storage_down()));

    let error = task_service(tasks).delete(caller, id).await.unwrap_err();

    assert_storage_down(&error);
}

#[tokio::test]
async fn failing_delete_propagates_without_checking_existence() {
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_delete_owned()
        .return_once(|_, _| Err(storage_down()));
    expect_no_existence_check(&mut tasks);

    let error = task_service(tasks)
        .delete(UserId::generate(), TaskId::generate())
        .await
        .unwrap_err();

    assert_storage_down(&error);
}

// --------------------------------------------------- AccountService::sign_up

const SIGN_UP_PASSWORD: &str = "correct horse battery";

fn sign_up_password() -> Password {
    Password::parse(SIGN_UP_PASSWORD).unwrap()
}

/// A hasher that turns the sign-up password into [`password_hash`].
fn hasher_for_sign_up() -> MockPasswordHasher {
    let mut hasher = MockPasswordHasher::new();
    hasher
        .expect_hash()
        .withf(|password| password.expose() == SIGN_UP_PASSWORD)
        .times(1)
        .returning(|_| Ok(password_hash()));
    hasher
}

/// A user repository that records the user it is asked to insert and
/// answers with a profile built from it.
fn users_recording_insert(inserted: &Captured<NewUser>) -> MockUserRepository {
    let record = inserted.recorder();
    let mut users = MockUserRepository::new();
    users.expect_insert().times(1).returning(move |new_user| {
        record(new_user);
        Ok(User {
            id: new_user.id,
            email: new_user.email.clone(),
            created_at: new_user.created_at,
            last_signin_at: None,
        })
    });
    users
}

#[tokio::test]
async fn signing_up_hashes_the_password_before_inserting_the_user() {
    let mut order = Sequence::new();
    let mut hasher = MockPasswordHasher::new();
    hasher
        .expect_hash()
        .times(1)
        .in_sequence(&mut order)
        .returning(|_| Ok(password_hash()));
    let mut users = MockUserRepository::new();
    users
        .expect_insert()
        .times(1)
        .in_sequence(&mut order)
        .returning(|new_user| Ok(sample_user(new_user.id)));

    let result = account_service(users, hasher)
        .sign_up(email(), sign_up_password())
        .await;

    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn signing_up_stores_the_normalised_email_and_the_hash() {
    let inserted = Captured::new();
    let users = users_recording_insert(&inserted);

    account_service(users, hasher_for_sign_up())
        .sign_up(
            Email::parse("  Ada@Example.IO ").unwrap(),
            sign_up_password(),
        )
        .await
        .unwrap();

    let new_user = inserted.value();
    assert_eq!(new_user.email.as_str(), "ada@example.io");
    assert_eq!(new_user.password_hash, password_hash());
}

#[tokio::test]
async fn signing_up_gives_the_user_a_version_7_id() {
    let inserted = Captured::new();
    let users = users_recording_insert(&inserted);

    account_service(users, hasher_for_sign_up())
        .sign_up(email(), sign_up_password())
        .await
        .unwrap();

    assert_eq!(inserted.value().id.as_uuid().get_version_num(), 7);
}

#[tokio::test]
async fn signing_up_stamps_the_user_with_the_clock_time() {
    let inserted = Captured::new();
    let users = users_recording_insert(&inserted);

    account_service(users, hasher_for_sign_up())
        .sign_up(email(), sign_up_password())
        .await
        .unwrap();

    assert_eq!(inserted.value().created_at, clock_time());
}

#[tokio::test]
async fn signing_up_returns_the_stored_profile() {
    let stored = sample_user(UserId::generate());
    let answer = stored.clone();
    let mut users = MockUserRepository::new();
    users.expect_insert().return_once(move |_| Ok(answer));

    let user = account_service(users, hasher_for_sign_up())
        .sign_up(email(), sign_up_password())
        .await
        .unwrap();

    assert_eq!(user, stored);
}

#[tokio::test]
async fn signing_up_with_a_taken_email_fails_with_email_taken() {
    let mut users = MockUserRepository::new();
    users
        .expect_insert()
        .return_once(|_| Err(DomainError::EmailTaken));

    let error = account_service(users, hasher_for_sign_up())
        .sign_up(email(), sign_up_password())
        .await
        .unwrap_err();

    assert!(matches!(error, DomainError::EmailTaken), "{error:?}");
}

#[tokio::test]
async fn hasher_failure_during_sign_up_propagates_and_stores_nothing() {
    let mut hasher = MockPasswordHasher::new();
    hasher
        .expect_hash()
        .return_once(|_| Err(DomainError::Unexpected("hasher broke".into())));
    let mut users = MockUserRepository::new();
    users.expect_insert().times(0);

    let error = account_service(users, hasher)
        .sign_up(email(), sign_up_password())
        .await
        .unwrap_err();

    assert!(matches!(error, DomainError::Unexpected(_)), "{error:?}");
}

#[tokio::test]
async fn a_busy_hasher_during_sign_up_is_reported_with_its_wait_and_stores_nothing() {
    let mut hasher = MockPasswordHasher::new();
    hasher.expect_hash().return_once(|_| {
        Err(DomainError::Busy {
            retry_after: std::time::Duration::from_secs(2),
        })
    });
    let mut users = MockUserRepository::new();
    users.expect_insert().times(0);

    let error = account_service(users, hasher)
        .sign_up(email(), sign_up_password())
        .await
        .unwrap_err();

    assert!(
        matches!(error, DomainError::Busy { retry_after } if retry_after.as_secs() == 2),
        "{error:?}"
    );
}

// --------------------------------------------------- AccountService::sign_in

const SIGN_IN_PASSWORD: &str = "what the user typed";

/// A user repository that knows no account at all.
fn users_without_accounts() -> MockUserRepository {
    let mut users = MockUserRepository::new();
    users.expect_find_credentials().returning(|_| Ok(None));
    users.expect_record_sign_in().times(0);
    users
}

/// A user repository holding [`credentials`] for [`email`].
fn users_knowing(user_id: UserId) -> MockUserRepository {
    let mut users = MockUserRepository::new();
    users
        .expect_find_credentials()
        .with(eq(email()))
        .returning(move |_| Ok(Some(credentials(user_id))));
    users
}

/// A hasher that answers `matches` for the sign-in password, whatever hash.
fn hasher_answering(matches: bool) -> MockPasswordHasher {
    let mut hasher = MockPasswordHasher::new();
    hasher
        .expect_verify()
        .withf(|candidate, _| candidate == SIGN_IN_PASSWORD)
        .times(1)
        .returning(move |_, _| Ok(matches));
    hasher
}

/// A hasher that expects exactly one verification with no stored hash.
fn hasher_expecting_no_hash() -> MockPasswordHasher {
    let mut hasher = MockPasswordHasher::new();
    hasher
        .expect_verify()
        .withf(|candidate, stored| candidate == SIGN_IN_PASSWORD && stored.is_none())
        .times(1)
        .returning(|_, _| Ok(false));
    hasher
}

#[tokio::test]
async fn signing_in_with_an_unknown_email_still_verifies_the_password_against_no_hash() {
    let service = account_service(users_without_accounts(), hasher_expecting_no_hash());

    let result = service.sign_in("ada@example.io", SIGN_IN_PASSWORD).await;

    assert!(result.is_err(), "{result:?}");
}

#[tokio::test]
async fn signing_in_with_an_unknown_email_fails_with_invalid_credentials() {
    let service = account_service(users_without_accounts(), hasher_expecting_no_hash());

    let error = service
        .sign_in("ada@example.io", SIGN_IN_PASSWORD)
        .await
        .unwrap_err();

    assert!(
        matches!(error, DomainError::InvalidCredentials),
        "{error:?}"
    );
}

#[tokio::test]
async fn signing_in_with_an_unparsable_email_verifies_against_no_hash_without_a_lookup() {
    let mut users = MockUserRepository::new();
    users.expect_find_credentials().times(0);
    let service = account_service(users, hasher_expecting_no_hash());

    let result = service.sign_in("not an email", SIGN_IN_PASSWORD).await;

    assert!(result.is_err(), "{result:?}");
}

#[tokio::test]
async fn signing_in_with_an_unparsable_email_fails_with_invalid_credentials() {
    let mut users = MockUserRepository::new();
    users.expect_find_credentials().times(0);
    let service = account_service(users, hasher_expecting_no_hash());

    let error = service
        .sign_in("not an email", SIGN_IN_PASSWORD)
        .await
        .unwrap_err();

    assert!(
        matches!(error, DomainError::InvalidCredentials),
        "{error:?}"
    );
}

#[tokio::test]
async fn signing_in_looks_the_account_up_by_the_normalised_email() {
    let mut users = MockUserRepository::new();
    users
        .expect_find_credentials()
        .with(eq(Email::parse("ada@example.io").unwrap()))
        .times(1)
        .returning(|_| Ok(None));
    let service = account_service(users, hasher_expecting_no_hash());

    let result = service.sign_in("  Ada@Example.IO ", SIGN_IN_PASSWORD).await;

    assert!(result.is_err(), "{result:?}");
}

#[tokio::test]
async fn signing_in_verifies_the_password_against_the_stored_hash() {
    let mut users = users_knowing(UserId::generate());
    users.expect_record_sign_in().times(0);
    let mut hasher = MockPasswordHasher::new();
    hasher
        .expect_verify()
        .withf(|candidate, stored| {
            candidate == SIGN_IN_PASSWORD && stored.as_ref() == Some(&password_hash())
        })
        .times(1)
        .returning(|_, _| Ok(false));

    let result = account_service(users, hasher)
        .sign_in("ada@example.io", SIGN_IN_PASSWORD)
        .await;

    assert!(result.is_err(), "{result:?}");
}

#[tokio::test]
async fn signing_in_with_a_wrong_password_fails_with_invalid_credentials() {
    let mut users = users_knowing(UserId::generate());
    users.expect_record_sign_in().times(0);

    let error = account_service(users, hasher_answering(false))
        .sign_in("ada@example.io", SIGN_IN_PASSWORD)
        .await
        .unwrap_err();

    assert!(
        matches!(error, DomainError::InvalidCredentials),
        "{error:?}"
    );
}

#[tokio::test]
async fn signing_in_with_the_right_password_records_the_sign_in_at_the_clock_time() {
    let user_id = UserId::generate();
    let mut users = users_knowing(user_id);
    users
        .expect_record_sign_in()
        .with(eq(user_id), eq(clock_time()))
        .times(1)
        .returning(|id, _| Ok(sample_user(id)));

    let result = account_service(users, hasher_answering(true))
        .sign_in("ada@example.io", SIGN_IN_PASSWORD)
        .await;

    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn signing_in_with_the_right_password_returns_the_recorded_profile() {
    let user_id = UserId::generate();
    let recorded = sample_user(user_id);
    let answer = recorded.clone();
    let mut users = users_knowing(user_id);
    users
        .expect_record_sign_in()
        .return_once(move |_, _| Ok(answer));

    let user = account_service(users, hasher_answering(true))
        .sign_in("ada@example.io", SIGN_IN_PASSWORD)
        .await
        .unwrap();

    assert_eq!(user, recorded);
}

#[tokio::test]
async fn account_deleted_during_sign_in_fails_with_invalid_credentials() {
    let mut users = users_knowing(UserId::generate());
    users
        .expect_record_sign_in()
        .return_once(|_, _| Err(DomainError::UserNotFound));

    let error = account_service(users, hasher_answering(true))
        .sign_in("ada@example.io", SIGN_IN_PASSWORD)
        .await
        .unwrap_err();

    assert!(
        matches!(error, DomainError::InvalidCredentials),
        "{error:?}"
    );
}

#[tokio::test]
async fn storage_failure_while_recording_a_sign_in_propagates() {
    let mut users = users_knowing(UserId::generate());
    users
        .expect_record_sign_in()
        .return_once(|_, _| Err(storage_down()));

    let error = account_service(users, hasher_answering(true))
        .sign_in("ada@example.io", SIGN_IN_PASSWORD)
        .await
        .unwrap_err();

    assert_storage_down(&error);
}

#[tokio::test]
async fn storage_failure_while_looking_up_credentials_propagates() {
    let mut users = MockUserRepository::new();
    users
        .expect_find_credentials()
        .return_once(|_| Err(storage_down()));
    let mut hasher = MockPasswordHasher::new();
    hasher.expect_verify().times(0);

    let error = account_service(users, hasher)
        .sign_in("ada@example.io", SIGN_IN_PASSWORD)
        .await
        .unwrap_err();

    assert_storage_down(&error);
}

#[tokio::test]
async fn hasher_failure_during_sign_in_propagates_and_records_nothing() {
    let mut users = users_knowing(UserId::generate());
    users.expect_record_sign_in().times(0);
    let mut hasher = MockPasswordHasher::new();
    hasher
        .expect_verify()
        .return_once(|_, _| Err(DomainError::Unexpected("hasher broke".into())));

    let error = account_service(users, hasher)
        .sign_in("ada@example.io", SIGN_IN_PASSWORD)
        .await
        .unwrap_err();

    assert!(matches!(error, DomainError::Unexpected(_)), "{error:?}");
}

#[tokio::test]
async fn a_busy_hasher_during_sign_in_is_reported_as_busy_not_as_wrong_credentials() {
    let mut users = users_knowing(UserId::generate());
    users.expect_record_sign_in().times(0);
    let mut hasher = MockPasswordHasher::new();
    hasher.expect_verify().return_once(|_, _| {
        Err(DomainError::Busy {
            retry_after: std::time::Duration::from_secs(2),
        })
    });

    let error = account_service(users, hasher)
        .sign_in("ada@example.io", SIGN_IN_PASSWORD)
        .await
        .unwrap_err();

    assert!(matches!(error, DomainError::Busy { .. }), "{error:?}");
}

#[tokio::test]
async fn a_busy_hasher_answers_an_unknown_email_the_same_way_as_a_known_one() {
    let mut hasher = MockPasswordHasher::new();
    hasher.expect_verify().return_once(|_, _| {
        Err(DomainError::Busy {
            retry_after: std::time::Duration::from_secs(2),
        })
    });

    let error = account_service(users_without_accounts(), hasher)
        .sign_in("ada@example.io", SIGN_IN_PASSWORD)
        .await
        .unwrap_err();

    assert!(matches!(error, DomainError::Busy { .. }), "{error:?}");
}

// --------------------------------------------------- AccountService::profile

#[tokio::test]
async fn profile_of_an_existing_user_is_returned() {
    let id = UserId::generate();
    let stored = sample_user(id);
    let answer = stored.clone();
    let mut users = MockUserRepository::new();
    users
        .expect_find_by_id()
        .with(eq(id))
        .times(1)
        .return_once(move |_| Ok(Some(answer)));

    let user = account_service(users, MockPasswordHasher::new())
        .profile(id)
        .await
        .unwrap();

    assert_eq!(user, stored);
}

#[tokio::test]
async fn profile_of_a_missing_user_is_user_not_found() {
    let mut users = MockUserRepository::new();
    users.expect_find_by_id().return_once(|_| Ok(None));

    let error = account_service(users, MockPasswordHasher::new())
        .profile(UserId::generate())
        .await
        .unwrap_err();

    assert!(matches!(error, DomainError::UserNotFound), "{error:?}");
}

#[tokio::test]
async fn storage_failure_while_reading_a_profile_propagates() {
    let mut users = MockUserRepository::new();
    users
        .expect_find_by_id()
        .return_once(|_| Err(storage_down()));

    let error = account_service(users, MockPasswordHasher::new())
        .profile(UserId::generate())
        .await
        .unwrap_err();

    assert_storage_down(&error);
}
