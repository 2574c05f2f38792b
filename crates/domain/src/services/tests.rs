//! Service tests over mockall mocks of the ports: they pin down which port is
//! called with what, and how each answer becomes the service's result. What a
//! real database does with those calls is tested in the persistence crate.

use std::error::Error as _;
use std::sync::{Arc, Mutex};

use mockall::Sequence;
use mockall::predicate::{always, eq};
use time::macros::datetime;
use uuid::Uuid;

use super::{AccountService, Outcome, TaskLimits, TaskService};
use crate::SignInLimit;
use crate::clock::MockClock;
use crate::ports::{
    MockIdempotencyStore, MockPasswordHasher, MockSignInFailureRepository, MockTaskRepository,
    MockUserRepository,
};
use crate::{
    Claim, ClaimOutcome, CompletionChange, DomainError, Email, IdempotencyKey, IdempotentRequest,
    Labels, NewTask, NewUser, PageLimit, PageRequest, Password, PasswordHash, Precondition,
    Priority, Receipt, RecordedResponse, RequestFingerprint, ResponseRecorder, SearchText,
    SortField, SortKey, SortOrder, Task, TaskDescription, TaskFilter, TaskId, TaskPage, TaskPatch,
    TaskPosition, TaskQuery, TaskSort, TaskTitle, TaskVersion, Timestamp, User, UserCredentials,
    UserId,
};

mod changes;
mod notifier;
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

/// A task service over `tasks` whose key store fails the test if called:
/// only retry-safe requests may reach it.
fn task_service(tasks: MockTaskRepository) -> TaskService {
    task_service_with_keys(tasks, keys_never_called())
}

fn task_service_with_keys(tasks: MockTaskRepository, keys: MockIdempotencyStore) -> TaskService {
    TaskService::new(
        Arc::new(tasks),
        Arc::new(keys),
        fixed_clock(),
        TaskLimits::default(),
    )
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
        completed_at: None,
        due_at: Some(Timestamp::from_datetime(datetime!(2030-02-01 18:00 UTC))),
        priority: Priority::Low,
        labels: Labels::parse(&["garden"]).unwrap(),
        created_at: Timestamp::from_datetime(datetime!(2030-01-01 08:00 UTC)),
        updated_at: Timestamp::from_datetime(datetime!(2030-01-02 09:30 UTC)),
        version: TaskVersion::new(4),
    }
}

/// A task to create, done from the start, with every optional field set.
fn new_task() -> NewTask {
    NewTask {
        title: TaskTitle::parse("Buy milk").unwrap(),
        description: TaskDescription::parse(Some("Two litres")).unwrap(),
        completed: true,
        due_at: Some(Timestamp::from_datetime(
            datetime!(2031-04-01 12:00:00.25 UTC),
        )),
        priority: Priority::High,
        labels: Labels::parse(&["shopping", "Dairy"]).unwrap(),
    }
}

fn new_open_task() -> NewTask {
    NewTask {
        completed: false,
        ..new_task()
    }
}

/// A patch naming every field, as a `PATCH` may.
fn task_patch() -> TaskPatch {
    TaskPatch {
        title: Some(TaskTitle::parse("Buy oat milk").unwrap()),
        description: Some(None),
        completed: Some(true),
        due_at: Some(None),
        priority: Some(Priority::Medium),
        labels: Some(Labels::parse(&["errands"]).unwrap()),
    }
}

/// An `If-Match` naming two versions, neither of them the sample task's.
fn precondition() -> Precondition {
    Precondition::any_of(vec![TaskVersion::new(2), TaskVersion::new(3)])
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

/// Expects exactly one owned lookup of (`id`, `owner`), answered with
/// `answer`: how a conditional write that missed learns whether the task is
/// the caller's.
fn expect_owned_lookup(
    tasks: &mut MockTaskRepository,
    id: TaskId,
    owner: UserId,
    answer: Result<Option<Task>, DomainError>,
) {
    tasks
        .expect_find_owned()
        .with(eq(id), eq(owner))
        .times(1)
        .return_once(move |_, _| answer);
}

fn expect_no_owned_lookup(tasks: &mut MockTaskRepository) {
    tasks.expect_find_owned().times(0);
}

/// The task outcome of work done now; fails the test on a replay.
#[track_caller]
fn done(outcome: Outcome<Task>) -> Task {
    match outcome {
        Outcome::Done(task) => task,
        Outcome::Replayed(response) => {
            panic!("expected work done now, got a replay of {response:?}")
        }
    }
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

// ------------------------------------------------------- retry helpers

/// Renders a task the way the HTTP layer would, in miniature.
struct TitleRecorder;

impl ResponseRecorder for TitleRecorder {
    fn record(&self, task: &Task) -> RecordedResponse {
        RecordedResponse {
            status: 201,
            headers: vec![("ETag".to_owned(), format!("\"{}\"", task.version.get()))],
            body: task.title.as_str().to_owned(),
        }
    }
}

fn idempotency_key() -> IdempotencyKey {
    IdempotencyKey::parse(b"create-milk-7f3a").unwrap()
}

fn fingerprint() -> RequestFingerprint {
    RequestFingerprint::new(vec![0xab; 32])
}

fn retry_request() -> IdempotentRequest {
    IdempotentRequest {
        key: idempotency_key(),
        fingerprint: fingerprint(),
        recorder: Arc::new(TitleRecorder),
    }
}

/// The claim the key store grants `owner` in these tests.
fn claim(owner: UserId) -> Claim {
    Claim {
        owner,
        key: idempotency_key(),
        token: Uuid::from_u128(0x0190_2c3d_4e5f_7a6b_8c9d_0e1f_2a3b_4c5d),
    }
}

/// The answer a first request recorded, as a replay returns it.
fn recorded_response() -> RecordedResponse {
    RecordedResponse {
        status: 201,
        headers: vec![
            ("Location".to_owned(), "/api/tasks/0190".to_owned()),
            ("ETag".to_owned(), "\"1\"".to_owned()),
        ],
        body: r#"{"title":"Buy milk"}"#.to_owned(),
    }
}

/// A key store that must not be called at all.
fn keys_never_called() -> MockIdempotencyStore {
    let mut keys = MockIdempotencyStore::new();
    keys.expect_claim().times(0);
    keys.expect_release().times(0);
    keys.expect_purge_expired().times(0);
    keys
}

/// A key store whose one claim, of [`idempotency_key`] by `owner` for
/// [`fingerprint`] at the clock time, finds `outcome`.
fn keys_answering_claim(
    owner: UserId,
    outcome: Result<ClaimOutcome, DomainError>,
) -> MockIdempotencyStore {
    let mut keys = MockIdempotencyStore::new();
    keys.expect_claim()
        .with(
            eq(owner),
            eq(idempotency_key()),
            eq(fingerprint()),
            eq(clock_time()),
        )
        .times(1)
        .return_once(move |_, _, _, _| outcome);
    keys
}

/// A key store that grants `owner` the claim [`claim`].
fn keys_granting_claim(owner: UserId) -> MockIdempotencyStore {
    keys_answering_claim(owner, Ok(ClaimOutcome::Claimed(claim(owner))))
}

/// Expects the claim of `owner` to be given back exactly once.
fn expect_release(keys: &mut MockIdempotencyStore, owner: UserId, answer: Result<(), DomainError>) {
    keys.expect_release()
        .with(eq(claim(owner)))
        .times(1)
        .return_once(move |_| answer);
}

fn expect_no_release(keys: &mut MockIdempotencyStore) {
    keys.expect_release().times(0);
}

/// A task repository that fails the test if any task is read or written.
fn tasks_never_called() -> MockTaskRepository {
    let mut tasks = MockTaskRepository::new();
    tasks.expect_insert().times(0);
    tasks.expect_change_completion_owned().times(0);
    tasks.expect_find_owned().times(0);
    tasks.expect_exists().times(0);
    tasks
}

/// A task repository whose one insert answers `answer`, remembering the
/// receipt it was handed.
fn tasks_inserting(
    receipt: &Captured<Option<Receipt>>,
    answer: Result<(), DomainError>,
) -> MockTaskRepository {
    let record = receipt.recorder();
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_insert()
        .times(1)
        .return_once(move |_, _, receipt| {
            record(&receipt);
            answer
        });
    tasks
}

/// A task repository whose one insert fails with `error`.
fn tasks_failing_insert(error: DomainError) -> MockTaskRepository {
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_insert()
        .times(1)
        .return_once(move |_, _, _| Err(error));
    tasks
}

// ------------------------------------------------------- TaskService::create

/// A repository that accepts any insert.
fn tasks_accepting_inserts() -> MockTaskRepository {
    let mut tasks = MockTaskRepository::new();
    tasks.expect_insert().returning(|_, _, _| Ok(()));
    tasks
}

#[tokio::test]
async fn created_task_gets_a_version_7_id() {
    let outcome = task_service(tasks_accepting_inserts())
        .create(UserId::generate(), new_task(), None)
        .await
        .unwrap();

    assert_eq!(done(outcome).id.as_uuid().get_version_num(), 7);
}

#[tokio::test]
async fn created_task_belongs_to_the_caller() {
    let owner = UserId::generate();

    let outcome = task_service(tasks_accepting_inserts())
        .create(owner, new_task(), None)
        .await
        .unwrap();

    assert_eq!(done(outcome).owner, owner);
}

#[tokio::test]
async fn created_task_is_created_and_updated_at_the_clock_time() {
    let task = done(
        task_service(tasks_accepting_inserts())
            .create(UserId::generate(), new_task(), None)
            .await
            .unwrap(),
    );

    assert_eq!(task.created_at, clock_time());
    assert_eq!(task.updated_at, clock_time());
}

#[tokio::test]
async fn created_task_keeps_the_given_title_description_and_state() {
    let task = done(
        task_service(tasks_accepting_inserts())
            .create(UserId::generate(), new_task(), None)
            .await
            .unwrap(),
    );

    let given = new_task();
    assert_eq!(
        (task.title, task.description, task.completed),
        (given.title, given.description, given.completed)
    );
}

#[tokio::test]
async fn created_task_keeps_the_given_due_date_priority_and_labels() {
    let task = done(
        task_service(tasks_accepting_inserts())
            .create(UserId::generate(), new_task(), None)
            .await
            .unwrap(),
    );

    let given = new_task();
    assert_eq!(
        (task.due_at, task.priority, task.labels),
        (given.due_at, given.priority, given.labels)
    );
}

#[tokio::test]
async fn task_created_done_was_completed_at_the_clock_time() {
    let task = done(
        task_service(tasks_accepting_inserts())
            .create(UserId::generate(), new_task(), None)
            .await
            .unwrap(),
    );

    assert_eq!(task.completed_at, Some(clock_time()));
}

#[tokio::test]
async fn task_created_open_has_no_completion_time() {
    let task = done(
        task_service(tasks_accepting_inserts())
            .create(UserId::generate(), new_open_task(), None)
            .await
            .unwrap(),
    );

    assert_eq!(task.completed_at, None);
}

#[tokio::test]
async fn created_task_starts_at_the_first_version() {
    let task = done(
        task_service(tasks_accepting_inserts())
            .create(UserId::generate(), new_task(), None)
            .await
            .unwrap(),
    );

    assert_eq!(task.version, TaskVersion::FIRST);
}

#[tokio::test]
async fn creating_a_task_inserts_exactly_the_returned_task_once() {
    let inserted = Captured::new();
    let record = inserted.recorder();
    let mut tasks = MockTaskRepository::new();
    tasks.expect_insert().times(1).returning(move |task, _, _| {
        record(task);
        Ok(())
    });

    let outcome = task_service(tasks)
        .create(UserId::generate(), new_task(), None)
        .await
        .unwrap();

    assert_eq!(inserted.value(), done(outcome));
}

#[tokio::test]
async fn creating_a_task_hands_the_repository_the_configured_task_limit() {
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_insert()
        .with(always(), eq(37), always())
        .times(1)
        .returning(|_, _, _| Ok(()));
    let service = TaskService::new(
        Arc::new(tasks),
        Arc::new(keys_never_called()),
        fixed_clock(),
        TaskLimits {
            max_tasks_per_user: 37,
        },
    );

    let result = service.create(UserId::generate(), new_task(), None).await;

    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn creating_a_task_at_the_limit_fails_with_task_limit_reached() {
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_insert()
        .return_once(|_, _, _| Err(DomainError::TaskLimitReached));

    let error = task_service(tasks)
        .create(UserId::generate(), new_task(), None)
        .await
        .unwrap_err();

    assert!(matches!(error, DomainError::TaskLimitReached), "{error:?}");
}

#[tokio::test]
async fn storage_failure_while_creating_a_task_propagates() {
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_insert()
        .return_once(|_, _, _| Err(storage_down()));

    let error = task_service(tasks)
        .create(UserId::generate(), new_task(), None)
        .await
        .unwrap_err();

    assert_storage_down(&error);
}

#[tokio::test]
async fn plain_create_never_calls_the_key_store() {
    let mut keys = MockIdempotencyStore::new();
    keys.expect_claim().times(0);
    keys.expect_release().times(0);

    let result = task_service_with_keys(tasks_accepting_inserts(), keys)
        .create(UserId::generate(), new_task(), None)
        .await;

    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn plain_create_hands_the_repository_no_receipt() {
    let receipt = Captured::new();
    let tasks = tasks_inserting(&receipt, Ok(()));

    task_service(tasks)
        .create(UserId::generate(), new_task(), None)
        .await
        .unwrap();

    assert!(receipt.value().is_none());
}

// --------------------------------------------------------- TaskService::list

/// A query with every part set, so a service that dropped or rebuilt any
/// part of it would hand the repository something else.
fn list_query() -> TaskQuery {
    TaskQuery {
        filter: TaskFilter {
            completed: Some(false),
            priorities: vec![Priority::High, Priority::Medium],
            labels: Labels::parse(&["work"]).unwrap(),
            due_before: Some(Timestamp::from_datetime(datetime!(2031-06-01 00:00 UTC))),
            due_after: Some(Timestamp::from_datetime(datetime!(2031-01-01 00:00 UTC))),
            overdue: Some(true),
            search: SearchText::parse("50%_off").unwrap(),
        },
        sort: TaskSort {
            field: SortField::DueAt,
            order: SortOrder::Desc,
        },
        page: Some(PageRequest {
            limit: PageLimit::new(20).unwrap(),
            after: Some(TaskPosition {
                key: SortKey::DueAt(None),
                id: TaskId::from_uuid(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001)),
            }),
        }),
    }
}

fn sample_page(owner: UserId) -> TaskPage {
    let tasks = vec![
        sample_task(TaskId::generate(), owner),
        sample_task(TaskId::generate(), owner),
    ];
    let next = Some(TaskPosition::of(&tasks[1], SortField::DueAt));
    TaskPage {
        tasks,
        total: 57,
        next,
    }
}

#[tokio::test]
async fn listing_returns_the_page_the_repository_holds_for_the_caller_unchanged() {
    let owner = UserId::generate();
    let stored = sample_page(owner);
    let answer = stored.clone();
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_list_by_owner()
        .with(eq(owner), always(), always())
        .times(1)
        .return_once(move |_, _, _| Ok(answer));

    let page = task_service(tasks)
        .list(owner, &list_query())
        .await
        .unwrap();

    assert_eq!(page, stored);
}

#[tokio::test]
async fn listing_hands_the_repository_the_query_and_the_clock_time_unchanged() {
    let owner = UserId::generate();
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_list_by_owner()
        .with(eq(owner), eq(list_query()), eq(clock_time()))
        .times(1)
        .return_once(move |_, _, _| Ok(sample_page(owner)));

    let result = task_service(tasks).list(owner, &list_query()).await;

    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn storage_failure_while_listing_propagates() {
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_list_by_owner()
        .return_once(|_, _, _| Err(storage_down()));

    let error = task_service(tasks)
        .list(UserId::generate(), &TaskQuery::default())
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

/// A repository whose owned patch of (`id`, `owner`) under `precondition`
/// answers `answer` once.
fn patch_answers(
    id: TaskId,
    owner: UserId,
    precondition: Option<Precondition>,
    answer: Result<Option<Task>, DomainError>,
) -> MockTaskRepository {
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_patch_owned()
        .with(
            eq(id),
            eq(owner),
            eq(task_patch()),
            eq(precondition),
            eq(clock_time()),
        )
        .times(1)
        .return_once(move |_, _, _, _, _| answer);
    tasks
}

/// A repository whose owned patch of (`id`, `owner`) misses once.
fn patch_misses(
    id: TaskId,
    owner: UserId,
    precondition: Option<Precondition>,
) -> MockTaskRepository {
    patch_answers(id, owner, precondition, Ok(None))
}

#[tokio::test]
async fn updating_hands_the_repository_the_callers_ids_the_patch_and_the_clock_time() {
    let (id, owner) = (TaskId::generate(), UserId::generate());
    let mut tasks = patch_answers(id, owner, None, Ok(Some(sample_task(id, owner))));
    expect_no_existence_check(&mut tasks);

    let result = task_service(tasks)
        .update(owner, id, task_patch(), None)
        .await;

    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn updating_an_owned_task_returns_its_stored_state_without_checking_existence() {
    let (id, owner) = (TaskId::generate(), UserId::generate());
    let stored = sample_task(id, owner);
    let answer = stored.clone();
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_patch_owned()
        .return_once(move |_, _, _, _, _| Ok(Some(answer)));
    expect_no_existence_check(&mut tasks);

    let task = task_service(tasks)
        .update(owner, id, task_patch(), None)
        .await
        .unwrap();

    assert_eq!(task, stored);
}

#[tokio::test]
async fn updating_another_users_task_is_forbidden() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = patch_misses(id, caller, None);
    expect_exists(&mut tasks, id, Ok(true));

    let error = task_service(tasks)
        .update(caller, id, task_patch(), None)
        .await
        .unwrap_err();

    assert!(matches!(error, DomainError::Forbidden), "{error:?}");
}

#[tokio::test]
async fn updating_a_task_nobody_has_is_not_found() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = patch_misses(id, caller, None);
    expect_exists(&mut tasks, id, Ok(false));

    let error = task_service(tasks)
        .update(caller, id, task_patch(), None)
        .await
        .unwrap_err();

    assert!(matches!(error, DomainError::TaskNotFound), "{error:?}");
}

#[tokio::test]
async fn failing_existence_check_after_a_missed_update_propagates() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = patch_misses(id, caller, None);
    expect_exists(&mut tasks, id, Err(storage_down()));

    let error = task_service(tasks)
        .update(caller, id, task_patch(), None)
        .await
        .unwrap_err();

    assert_storage_down(&error);
}

#[tokio::test]
async fn failing_update_propagates_without_checking_existence() {
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_patch_owned()
        .return_once(|_, _, _, _, _| Err(storage_down()));
    expect_no_owned_lookup(&mut tasks);
    expect_no_existence_check(&mut tasks);

    let error = task_service(tasks)
        .update(
            UserId::generate(),
            TaskId::generate(),
            task_patch(),
            Some(precondition()),
        )
        .await
        .unwrap_err();

    assert_storage_down(&error);
}

#[tokio::test]
async fn missed_plain_update_does_not_look_for_the_callers_task() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = patch_misses(id, caller, None);
    expect_no_owned_lookup(&mut tasks);
    expect_exists(&mut tasks, id, Ok(false));

    let result = task_service(tasks)
        .update(caller, id, task_patch(), None)
        .await;

    assert!(result.is_err(), "{result:?}");
}

#[tokio::test]
async fn conditional_update_hands_the_repository_its_precondition() {
    let (id, owner) = (TaskId::generate(), UserId::generate());
    let tasks = patch_answers(
        id,
        owner,
        Some(precondition()),
        Ok(Some(sample_task(id, owner))),
    );

    let result = task_service(tasks)
        .update(owner, id, task_patch(), Some(precondition()))
        .await;

    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn conditional_update_that_matches_returns_the_task_without_further_lookups() {
    let (id, owner) = (TaskId::generate(), UserId::generate());
    let stored = sample_task(id, owner);
    let mut tasks = patch_answers(id, owner, Some(precondition()), Ok(Some(stored.clone())));
    expect_no_owned_lookup(&mut tasks);
    expect_no_existence_check(&mut tasks);

    let task = task_service(tasks)
        .update(owner, id, task_patch(), Some(precondition()))
        .await
        .unwrap();

    assert_eq!(task, stored);
}

#[tokio::test]
async fn conditional_update_of_an_owned_task_at_another_version_fails_without_checking_existence() {
    let (id, owner) = (TaskId::generate(), UserId::generate());
    let mut tasks = patch_misses(id, owner, Some(precondition()));
    expect_owned_lookup(&mut tasks, id, owner, Ok(Some(sample_task(id, owner))));
    expect_no_existence_check(&mut tasks);

    let error = task_service(tasks)
        .update(owner, id, task_patch(), Some(precondition()))
        .await
        .unwrap_err();

    assert!(
        matches!(error, DomainError::PreconditionFailed),
        "{error:?}"
    );
}

#[tokio::test]
async fn conditional_update_of_another_users_task_is_forbidden() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = patch_misses(id, caller, Some(precondition()));
    expect_owned_lookup(&mut tasks, id, caller, Ok(None));
    expect_exists(&mut tasks, id, Ok(true));

    let error = task_service(tasks)
        .update(caller, id, task_patch(), Some(precondition()))
        .await
        .unwrap_err();

    assert!(matches!(error, DomainError::Forbidden), "{error:?}");
}

#[tokio::test]
async fn conditional_update_of_a_task_nobody_has_is_not_found() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = patch_misses(id, caller, Some(precondition()));
    expect_owned_lookup(&mut tasks, id, caller, Ok(None));
    expect_exists(&mut tasks, id, Ok(false));

    let error = task_service(tasks)
        .update(caller, id, task_patch(), Some(precondition()))
        .await
        .unwrap_err();

    assert!(matches!(error, DomainError::TaskNotFound), "{error:?}");
}

#[tokio::test]
async fn failing_owned_lookup_after_a_missed_conditional_update_propagates() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = patch_misses(id, caller, Some(precondition()));
    expect_owned_lookup(&mut tasks, id, caller, Err(storage_down()));
    expect_no_existence_check(&mut tasks);

    let error = task_service(tasks)
        .update(caller, id, task_patch(), Some(precondition()))
        .await
        .unwrap_err();

    assert_storage_down(&error);
}

#[tokio::test]
async fn failing_existence_check_after_a_missed_conditional_update_propagates() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = patch_misses(id, caller, Some(precondition()));
    expect_owned_lookup(&mut tasks, id, caller, Ok(None));
    expect_exists(&mut tasks, id, Err(storage_down()));

    let error = task_service(tasks)
        .update(caller, id, task_patch(), Some(precondition()))
        .await
        .unwrap_err();

    assert_storage_down(&error);
}

// --------------------------------------------- TaskService::change_completion

const TOGGLE: CompletionChange = CompletionChange::Toggle;
const SET_DONE: CompletionChange = CompletionChange::Set(true);

/// A repository whose owned completion change of (`id`, `owner`) under
/// `precondition` answers `answer` once, whatever receipt it gets.
fn completion_change_answers(
    id: TaskId,
    owner: UserId,
    change: CompletionChange,
    precondition: Option<Precondition>,
    answer: Result<Option<Task>, DomainError>,
) -> MockTaskRepository {
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_change_completion_owned()
        .with(
            eq(id),
            eq(owner),
            eq(change),
            eq(precondition),
            eq(clock_time()),
            always(),
        )
        .times(1)
        .return_once(move |_, _, _, _, _, _| answer);
    tasks
}

/// A repository whose owned completion change of (`id`, `owner`) misses once.
fn completion_change_misses(
    id: TaskId,
    owner: UserId,
    change: CompletionChange,
    precondition: Option<Precondition>,
) -> MockTaskRepository {
    completion_change_answers(id, owner, change, precondition, Ok(None))
}

/// A repository whose completion change of (`id`, `owner`) hits, and that
/// fails the test if asked anything more about the task.
fn completion_change_hits(
    id: TaskId,
    owner: UserId,
    change: CompletionChange,
    precondition: Option<Precondition>,
    stored: Task,
) -> MockTaskRepository {
    let mut tasks = completion_change_answers(id, owner, change, precondition, Ok(Some(stored)));
    expect_no_owned_lookup(&mut tasks);
    expect_no_existence_check(&mut tasks);
    tasks
}

#[tokio::test]
async fn toggling_hands_the_repository_a_toggle_with_the_callers_ids_and_the_clock_time() {
    let (id, owner) = (TaskId::generate(), UserId::generate());
    let tasks = completion_change_hits(id, owner, TOGGLE, None, sample_task(id, owner));

    let result = task_service(tasks)
        .change_completion(owner, id, TOGGLE, None, None)
        .await;

    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn setting_completion_hands_the_repository_the_value_with_the_callers_ids_and_the_clock_time()
{
    let (id, owner) = (TaskId::generate(), UserId::generate());
    let tasks = completion_change_hits(id, owner, SET_DONE, None, sample_task(id, owner));

    let result = task_service(tasks)
        .change_completion(owner, id, SET_DONE, None, None)
        .await;

    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn toggling_an_owned_task_returns_its_stored_state_without_checking_existence() {
    let (id, owner) = (TaskId::generate(), UserId::generate());
    let stored = Task {
        completed: true,
        completed_at: Some(clock_time()),
        ..sample_task(id, owner)
    };
    let tasks = completion_change_hits(id, owner, TOGGLE, None, stored.clone());

    let outcome = task_service(tasks)
        .change_completion(owner, id, TOGGLE, None, None)
        .await
        .unwrap();

    assert_eq!(outcome, Outcome::Done(stored));
}

#[tokio::test]
async fn setting_completion_of_an_owned_task_returns_its_stored_state_without_checking_existence() {
    let (id, owner) = (TaskId::generate(), UserId::generate());
    let stored = Task {
        completed: true,
        completed_at: Some(clock_time()),
        ..sample_task(id, owner)
    };
    let tasks = completion_change_hits(id, owner, SET_DONE, None, stored.clone());

    let outcome = task_service(tasks)
        .change_completion(owner, id, SET_DONE, None, None)
        .await
        .unwrap();

    assert_eq!(outcome, Outcome::Done(stored));
}

#[tokio::test]
async fn toggling_another_users_task_is_forbidden() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = completion_change_misses(id, caller, TOGGLE, None);
    expect_exists(&mut tasks, id, Ok(true));

    let error = task_service(tasks)
        .change_completion(caller, id, TOGGLE, None, None)
        .await
        .unwrap_err();

    assert!(matches!(error, DomainError::Forbidden), "{error:?}");
}

#[tokio::test]
async fn toggling_a_task_nobody_has_is_not_found() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = completion_change_misses(id, caller, TOGGLE, None);
    expect_exists(&mut tasks, id, Ok(false));

    let error = task_service(tasks)
        .change_completion(caller, id, TOGGLE, None, None)
        .await
        .unwrap_err();

    assert!(matches!(error, DomainError::TaskNotFound), "{error:?}");
}

#[tokio::test]
async fn failing_existence_check_after_a_missed_toggle_propagates() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = completion_change_misses(id, caller, TOGGLE, None);
    expect_exists(&mut tasks, id, Err(storage_down()));

    let error = task_service(tasks)
        .change_completion(caller, id, TOGGLE, None, None)
        .await
        .unwrap_err();

    assert_storage_down(&error);
}

#[tokio::test]
async fn setting_completion_of_another_users_task_is_forbidden() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = completion_change_misses(id, caller, SET_DONE, None);
    expect_exists(&mut tasks, id, Ok(true));

    let error = task_service(tasks)
        .change_completion(caller, id, SET_DONE, None, None)
        .await
        .unwrap_err();

    assert!(matches!(error, DomainError::Forbidden), "{error:?}");
}

#[tokio::test]
async fn setting_completion_of_a_task_nobody_has_is_not_found() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = completion_change_misses(id, caller, SET_DONE, None);
    expect_exists(&mut tasks, id, Ok(false));

    let error = task_service(tasks)
        .change_completion(caller, id, SET_DONE, None, None)
        .await
        .unwrap_err();

    assert!(matches!(error, DomainError::TaskNotFound), "{error:?}");
}

#[tokio::test]
async fn failing_existence_check_after_a_missed_completion_set_propagates() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = completion_change_misses(id, caller, SET_DONE, None);
    expect_exists(&mut tasks, id, Err(storage_down()));

    let error = task_service(tasks)
        .change_completion(caller, id, SET_DONE, None, None)
        .await
        .unwrap_err();

    assert_storage_down(&error);
}

#[tokio::test]
async fn failing_completion_change_propagates_without_checking_existence() {
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_change_completion_owned()
        .return_once(|_, _, _, _, _, _| Err(storage_down()));
    expect_no_owned_lookup(&mut tasks);
    expect_no_existence_check(&mut tasks);

    let error = task_service(tasks)
        .change_completion(
            UserId::generate(),
            TaskId::generate(),
            TOGGLE,
            Some(precondition()),
            None,
        )
        .await
        .unwrap_err();

    assert_storage_down(&error);
}

#[tokio::test]
async fn missed_plain_completion_change_does_not_look_for_the_callers_task() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = completion_change_misses(id, caller, TOGGLE, None);
    expect_no_owned_lookup(&mut tasks);
    expect_exists(&mut tasks, id, Ok(false));

    let result = task_service(tasks)
        .change_completion(caller, id, TOGGLE, None, None)
        .await;

    assert!(result.is_err(), "{result:?}");
}

#[tokio::test]
async fn conditional_completion_change_that_matches_returns_the_task_without_further_lookups() {
    let (id, owner) = (TaskId::generate(), UserId::generate());
    let stored = sample_task(id, owner);
    let tasks = completion_change_hits(id, owner, TOGGLE, Some(precondition()), stored.clone());

    let outcome = task_service(tasks)
        .change_completion(owner, id, TOGGLE, Some(precondition()), None)
        .await
        .unwrap();

    assert_eq!(outcome, Outcome::Done(stored));
}

#[tokio::test]
async fn conditional_completion_change_of_an_owned_task_at_another_version_fails_without_checking_existence()
 {
    let (id, owner) = (TaskId::generate(), UserId::generate());
    let mut tasks = completion_change_misses(id, owner, TOGGLE, Some(precondition()));
    expect_owned_lookup(&mut tasks, id, owner, Ok(Some(sample_task(id, owner))));
    expect_no_existence_check(&mut tasks);

    let error = task_service(tasks)
        .change_completion(owner, id, TOGGLE, Some(precondition()), None)
        .await
        .unwrap_err();

    assert!(
        matches!(error, DomainError::PreconditionFailed),
        "{error:?}"
    );
}

#[tokio::test]
async fn conditional_completion_change_of_another_users_task_is_forbidden() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = completion_change_misses(id, caller, TOGGLE, Some(precondition()));
    expect_owned_lookup(&mut tasks, id, caller, Ok(None));
    expect_exists(&mut tasks, id, Ok(true));

    let error = task_service(tasks)
        .change_completion(caller, id, TOGGLE, Some(precondition()), None)
        .await
        .unwrap_err();

    assert!(matches!(error, DomainError::Forbidden), "{error:?}");
}

#[tokio::test]
async fn conditional_completion_change_of_a_task_nobody_has_is_not_found() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = completion_change_misses(id, caller, TOGGLE, Some(precondition()));
    expect_owned_lookup(&mut tasks, id, caller, Ok(None));
    expect_exists(&mut tasks, id, Ok(false));

    let error = task_service(tasks)
        .change_completion(caller, id, TOGGLE, Some(precondition()), None)
        .await
        .unwrap_err();

    assert!(matches!(error, DomainError::TaskNotFound), "{error:?}");
}

#[tokio::test]
async fn failing_owned_lookup_after_a_missed_conditional_completion_change_propagates() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = completion_change_misses(id, caller, TOGGLE, Some(precondition()));
    expect_owned_lookup(&mut tasks, id, caller, Err(storage_down()));
    expect_no_existence_check(&mut tasks);

    let error = task_service(tasks)
        .change_completion(caller, id, TOGGLE, Some(precondition()), None)
        .await
        .unwrap_err();

    assert_storage_down(&error);
}

#[tokio::test]
async fn failing_existence_check_after_a_missed_conditional_completion_change_propagates() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = completion_change_misses(id, caller, TOGGLE, Some(precondition()));
    expect_owned_lookup(&mut tasks, id, caller, Ok(None));
    expect_exists(&mut tasks, id, Err(storage_down()));

    let error = task_service(tasks)
        .change_completion(caller, id, TOGGLE, Some(precondition()), None)
        .await
        .unwrap_err();

    assert_storage_down(&error);
}

#[tokio::test]
async fn plain_completion_change_never_calls_the_key_store() {
    let (id, owner) = (TaskId::generate(), UserId::generate());
    let tasks = completion_change_hits(id, owner, TOGGLE, None, sample_task(id, owner));
    let mut keys = MockIdempotencyStore::new();
    keys.expect_claim().times(0);
    keys.expect_release().times(0);

    let result = task_service_with_keys(tasks, keys)
        .change_completion(owner, id, TOGGLE, None, None)
        .await;

    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn plain_completion_change_hands_the_repository_no_receipt() {
    let (id, owner) = (TaskId::generate(), UserId::generate());
    let receipt = Captured::new();
    let tasks = tasks_changing_completion(&receipt, Ok(Some(sample_task(id, owner))));

    task_service(tasks)
        .change_completion(owner, id, TOGGLE, None, None)
        .await
        .unwrap();

    assert!(receipt.value().is_none());
}

// ------------------------------------------------------- TaskService::delete

/// A repository whose owned delete of (`id`, `owner`) under `precondition`
/// answers `answer` once.
fn delete_answers(
    id: TaskId,
    owner: UserId,
    precondition: Option<Precondition>,
    answer: Result<bool, DomainError>,
) -> MockTaskRepository {
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_delete_owned()
        .with(eq(id), eq(owner), eq(precondition))
        .times(1)
        .return_once(move |_, _, _| answer);
    tasks
}

/// A repository whose owned delete of (`id`, `owner`) matches nothing once.
fn delete_misses(
    id: TaskId,
    owner: UserId,
    precondition: Option<Precondition>,
) -> MockTaskRepository {
    delete_answers(id, owner, precondition, Ok(false))
}

#[tokio::test]
async fn deleting_an_owned_task_succeeds_without_checking_existence() {
    let (id, owner) = (TaskId::generate(), UserId::generate());
    let mut tasks = delete_answers(id, owner, None, Ok(true));
    expect_no_existence_check(&mut tasks);

    let result = task_service(tasks).delete(owner, id, None).await;

    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn deleting_another_users_task_is_forbidden() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = delete_misses(id, caller, None);
    expect_exists(&mut tasks, id, Ok(true));

    let error = task_service(tasks)
        .delete(caller, id, None)
        .await
        .unwrap_err();

    assert!(matches!(error, DomainError::Forbidden), "{error:?}");
}

#[tokio::test]
async fn deleting_a_task_nobody_has_is_not_found() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = delete_misses(id, caller, None);
    expect_exists(&mut tasks, id, Ok(false));

    let error = task_service(tasks)
        .delete(caller, id, None)
        .await
        .unwrap_err();

    assert!(matches!(error, DomainError::TaskNotFound), "{error:?}");
}

#[tokio::test]
async fn failing_existence_check_after_a_missed_delete_propagates() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = delete_misses(id, caller, None);
    expect_exists(&mut tasks, id, Err(storage_down()));

    let error = task_service(tasks)
        .delete(caller, id, None)
        .await
        .unwrap_err();

    assert_storage_down(&error);
}

#[tokio::test]
async fn failing_delete_propagates_without_checking_existence() {
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_delete_owned()
        .return_once(|_, _, _| Err(storage_down()));
    expect_no_owned_lookup(&mut tasks);
    expect_no_existence_check(&mut tasks);

    let error = task_service(tasks)
        .delete(UserId::generate(), TaskId::generate(), Some(precondition()))
        .await
        .unwrap_err();

    assert_storage_down(&error);
}

#[tokio::test]
async fn missed_plain_delete_does_not_look_for_the_callers_task() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = delete_misses(id, caller, None);
    expect_no_owned_lookup(&mut tasks);
    expect_exists(&mut tasks, id, Ok(false));

    let result = task_service(tasks).delete(caller, id, None).await;

    assert!(result.is_err(), "{result:?}");
}

#[tokio::test]
async fn conditional_delete_that_matches_succeeds_without_further_lookups() {
    let (id, owner) = (TaskId::generate(), UserId::generate());
    let mut tasks = delete_answers(id, owner, Some(precondition()), Ok(true));
    expect_no_owned_lookup(&mut tasks);
    expect_no_existence_check(&mut tasks);

    let result = task_service(tasks)
        .delete(owner, id, Some(precondition()))
        .await;

    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn conditional_delete_of_an_owned_task_at_another_version_fails_without_checking_existence() {
    let (id, owner) = (TaskId::generate(), UserId::generate());
    let mut tasks = delete_misses(id, owner, Some(precondition()));
    expect_owned_lookup(&mut tasks, id, owner, Ok(Some(sample_task(id, owner))));
    expect_no_existence_check(&mut tasks);

    let error = task_service(tasks)
        .delete(owner, id, Some(precondition()))
        .await
        .unwrap_err();

    assert!(
        matches!(error, DomainError::PreconditionFailed),
        "{error:?}"
    );
}

#[tokio::test]
async fn conditional_delete_of_another_users_task_is_forbidden() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = delete_misses(id, caller, Some(precondition()));
    expect_owned_lookup(&mut tasks, id, caller, Ok(None));
    expect_exists(&mut tasks, id, Ok(true));

    let error = task_service(tasks)
        .delete(caller, id, Some(precondition()))
        .await
        .unwrap_err();

    assert!(matches!(error, DomainError::Forbidden), "{error:?}");
}

#[tokio::test]
async fn conditional_delete_of_a_task_nobody_has_is_not_found() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = delete_misses(id, caller, Some(precondition()));
    expect_owned_lookup(&mut tasks, id, caller, Ok(None));
    expect_exists(&mut tasks, id, Ok(false));

    let error = task_service(tasks)
        .delete(caller, id, Some(precondition()))
        .await
        .unwrap_err();

    assert!(matches!(error, DomainError::TaskNotFound), "{error:?}");
}

#[tokio::test]
async fn failing_owned_lookup_after_a_missed_conditional_delete_propagates() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = delete_misses(id, caller, Some(precondition()));
    expect_owned_lookup(&mut tasks, id, caller, Err(storage_down()));
    expect_no_existence_check(&mut tasks);

    let error = task_service(tasks)
        .delete(caller, id, Some(precondition()))
        .await
        .unwrap_err();

    assert_storage_down(&error);
}

#[tokio::test]
async fn failing_existence_check_after_a_missed_conditional_delete_propagates() {
    let (id, caller) = (TaskId::generate(), UserId::generate());
    let mut tasks = delete_misses(id, caller, Some(precondition()));
    expect_owned_lookup(&mut tasks, id, caller, Ok(None));
    expect_exists(&mut tasks, id, Err(storage_down()));

    let error = task_service(tasks)
        .delete(caller, id, Some(precondition()))
        .await
        .unwrap_err();

    assert_storage_down(&error);
}

// --------------------------------------------- TaskService::delete_completed

#[tokio::test]
async fn deleting_completed_tasks_returns_how_many_the_repository_deleted_for_the_caller() {
    let owner = UserId::generate();
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_delete_completed()
        .with(eq(owner))
        .times(1)
        .return_once(|_| Ok(12));

    let deleted = task_service(tasks).delete_completed(owner).await.unwrap();

    assert_eq!(deleted, 12);
}

#[tokio::test]
async fn storage_failure_while_deleting_completed_tasks_propagates() {
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_delete_completed()
        .return_once(|_| Err(storage_down()));

    let error = task_service(tasks)
        .delete_completed(UserId::generate())
        .await
        .unwrap_err();

    assert_storage_down(&error);
}

// ------------------------------------------- TaskService::purge_expired_keys

#[tokio::test]
async fn purging_keys_hands_the_store_the_clock_time_and_returns_how_many_went() {
    let mut keys = MockIdempotencyStore::new();
    keys.expect_purge_expired()
        .with(eq(clock_time()))
        .times(1)
        .return_once(|_| Ok(5));

    let purged = task_service_with_keys(MockTaskRepository::new(), keys)
        .purge_expired_keys()
        .await
        .unwrap();

    assert_eq!(purged, 5);
}

#[tokio::test]
async fn storage_failure_while_purging_keys_propagates() {
    let mut keys = MockIdempotencyStore::new();
    keys.expect_purge_expired()
        .return_once(|_| Err(storage_down()));

    let error = task_service_with_keys(MockTaskRepository::new(), keys)
        .purge_expired_keys()
        .await
        .unwrap_err();

    assert_storage_down(&error);
}

// ------------------------------------------ TaskService::create, retry-safe

#[tokio::test]
async fn retry_safe_create_claims_the_key_for_the_caller_with_the_fingerprint_at_the_clock_time() {
    let owner = UserId::generate();
    let keys = keys_granting_claim(owner);

    let result = task_service_with_keys(tasks_accepting_inserts(), keys)
        .create(owner, new_task(), Some(retry_request()))
        .await;

    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn retry_safe_create_claims_the_key_before_storing_the_task() {
    let owner = UserId::generate();
    let mut order = Sequence::new();
    let mut keys = MockIdempotencyStore::new();
    keys.expect_claim()
        .times(1)
        .in_sequence(&mut order)
        .return_once(move |_, _, _, _| Ok(ClaimOutcome::Claimed(claim(owner))));
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_insert()
        .times(1)
        .in_sequence(&mut order)
        .returning(|_, _, _| Ok(()));

    let result = task_service_with_keys(tasks, keys)
        .create(owner, new_task(), Some(retry_request()))
        .await;

    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn replayed_create_answers_the_recorded_response() {
    let owner = UserId::generate();
    let keys = keys_answering_claim(owner, Ok(ClaimOutcome::Replay(recorded_response())));

    let outcome = task_service_with_keys(tasks_never_called(), keys)
        .create(owner, new_task(), Some(retry_request()))
        .await
        .unwrap();

    assert_eq!(outcome, Outcome::Replayed(recorded_response()));
}

#[tokio::test]
async fn replayed_create_neither_stores_a_task_nor_gives_a_claim_back() {
    let owner = UserId::generate();
    let mut keys = keys_answering_claim(owner, Ok(ClaimOutcome::Replay(recorded_response())));
    expect_no_release(&mut keys);

    let result = task_service_with_keys(tasks_never_called(), keys)
        .create(owner, new_task(), Some(retry_request()))
        .await;

    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn create_whose_key_is_in_use_fails_with_key_in_use_and_stores_nothing() {
    let owner = UserId::generate();
    let mut keys = keys_answering_claim(owner, Ok(ClaimOutcome::InUse));
    expect_no_release(&mut keys);

    let error = task_service_with_keys(tasks_never_called(), keys)
        .create(owner, new_task(), Some(retry_request()))
        .await
        .unwrap_err();

    assert!(
        matches!(error, DomainError::IdempotencyKeyInUse),
        "{error:?}"
    );
}

#[tokio::test]
async fn create_whose_key_was_used_for_another_request_fails_with_key_reused_and_stores_nothing() {
    let owner = UserId::generate();
    let mut keys = keys_answering_claim(owner, Ok(ClaimOutcome::Reused));
    expect_no_release(&mut keys);

    let error = task_service_with_keys(tasks_never_called(), keys)
        .create(owner, new_task(), Some(retry_request()))
        .await
        .unwrap_err();

    assert!(
        matches!(error, DomainError::IdempotencyKeyReused),
        "{error:?}"
    );
}

#[tokio::test]
async fn failing_claim_before_a_create_propagates_and_stores_nothing() {
    let owner = UserId::generate();
    let mut keys = keys_answering_claim(owner, Err(storage_down()));
    expect_no_release(&mut keys);

    let error = task_service_with_keys(tasks_never_called(), keys)
        .create(owner, new_task(), Some(retry_request()))
        .await
        .unwrap_err();

    assert_storage_down(&error);
}

#[tokio::test]
async fn claimed_create_hands_the_repository_a_receipt_for_that_claim() {
    let owner = UserId::generate();
    let receipt = Captured::new();
    let tasks = tasks_inserting(&receipt, Ok(()));

    task_service_with_keys(tasks, keys_granting_claim(owner))
        .create(owner, new_task(), Some(retry_request()))
        .await
        .unwrap();

    assert_eq!(receipt.value().expect("no receipt").claim, claim(owner));
}

#[tokio::test]
async fn claimed_create_hands_the_repository_the_requests_recorder() {
    let owner = UserId::generate();
    let request = retry_request();
    let recorder = Arc::clone(&request.recorder);
    let receipt = Captured::new();
    let tasks = tasks_inserting(&receipt, Ok(()));

    task_service_with_keys(tasks, keys_granting_claim(owner))
        .create(owner, new_task(), Some(request))
        .await
        .unwrap();

    let handed = receipt.value().expect("no receipt").recorder;
    assert!(
        Arc::ptr_eq(&handed, &recorder),
        "another recorder was handed"
    );
}

#[tokio::test]
async fn claimed_create_answers_done_with_the_stored_task() {
    let owner = UserId::generate();
    let inserted = Captured::new();
    let record = inserted.recorder();
    let mut tasks = MockTaskRepository::new();
    tasks.expect_insert().times(1).returning(move |task, _, _| {
        record(task);
        Ok(())
    });

    let outcome = task_service_with_keys(tasks, keys_granting_claim(owner))
        .create(owner, new_task(), Some(retry_request()))
        .await
        .unwrap();

    assert_eq!(outcome, Outcome::Done(inserted.value()));
}

#[tokio::test]
async fn successful_retry_safe_create_keeps_its_claim() {
    let owner = UserId::generate();
    let mut keys = keys_granting_claim(owner);
    expect_no_release(&mut keys);

    let result = task_service_with_keys(tasks_accepting_inserts(), keys)
        .create(owner, new_task(), Some(retry_request()))
        .await;

    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn retry_safe_create_refused_at_the_limit_gives_the_claim_back_once() {
    let owner = UserId::generate();
    let mut keys = keys_granting_claim(owner);
    expect_release(&mut keys, owner, Ok(()));
    let tasks = tasks_failing_insert(DomainError::TaskLimitReached);

    let result = task_service_with_keys(tasks, keys)
        .create(owner, new_task(), Some(retry_request()))
        .await;

    assert!(result.is_err(), "{result:?}");
}

#[tokio::test]
async fn retry_safe_create_refused_at_the_limit_fails_with_task_limit_reached() {
    let owner = UserId::generate();
    let mut keys = keys_granting_claim(owner);
    expect_release(&mut keys, owner, Ok(()));
    let tasks = tasks_failing_insert(DomainError::TaskLimitReached);

    let error = task_service_with_keys(tasks, keys)
        .create(owner, new_task(), Some(retry_request()))
        .await
        .unwrap_err();

    assert!(matches!(error, DomainError::TaskLimitReached), "{error:?}");
}

#[tokio::test]
async fn retry_safe_create_that_storage_fails_gives_the_claim_back_and_propagates_the_failure() {
    let owner = UserId::generate();
    let mut keys = keys_granting_claim(owner);
    expect_release(&mut keys, owner, Ok(()));
    let tasks = tasks_failing_insert(storage_down());

    let error = task_service_with_keys(tasks, keys)
        .create(owner, new_task(), Some(retry_request()))
        .await
        .unwrap_err();

    assert_storage_down(&error);
}

#[tokio::test]
async fn failed_release_after_a_failed_create_still_answers_the_creates_error() {
    let owner = UserId::generate();
    let mut keys = keys_granting_claim(owner);
    expect_release(
        &mut keys,
        owner,
        Err(DomainError::Unavailable("release lost".into())),
    );
    let tasks = tasks_failing_insert(storage_down());

    let error = task_service_with_keys(tasks, keys)
        .create(owner, new_task(), Some(retry_request()))
        .await
        .unwrap_err();

    assert_storage_down(&error);
}

// ------------------------------- TaskService::change_completion, retry-safe

/// A repository whose one completion change answers `answer`, remembering
/// the receipt it was handed.
fn tasks_changing_completion(
    receipt: &Captured<Option<Receipt>>,
    answer: Result<Option<Task>, DomainError>,
) -> MockTaskRepository {
    let record = receipt.recorder();
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_change_completion_owned()
        .times(1)
        .return_once(move |_, _, _, _, _, receipt| {
            record(&receipt);
            answer
        });
    tasks
}

#[tokio::test]
async fn retry_safe_completion_change_claims_the_key_for_the_caller_with_the_fingerprint_at_the_clock_time()
 {
    let (id, owner) = (TaskId::generate(), UserId::generate());
    let tasks = completion_change_hits(id, owner, TOGGLE, None, sample_task(id, owner));

    let result = task_service_with_keys(tasks, keys_granting_claim(owner))
        .change_completion(owner, id, TOGGLE, None, Some(retry_request()))
        .await;

    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn retry_safe_completion_change_claims_the_key_before_changing_the_task() {
    let (id, owner) = (TaskId::generate(), UserId::generate());
    let mut order = Sequence::new();
    let mut keys = MockIdempotencyStore::new();
    keys.expect_claim()
        .times(1)
        .in_sequence(&mut order)
        .return_once(move |_, _, _, _| Ok(ClaimOutcome::Claimed(claim(owner))));
    let stored = sample_task(id, owner);
    let mut tasks = MockTaskRepository::new();
    tasks
        .expect_change_completion_owned()
        .times(1)
        .in_sequence(&mut order)
        .return_once(move |_, _, _, _, _, _| Ok(Some(stored)));

    let result = task_service_with_keys(tasks, keys)
        .change_completion(owner, id, TOGGLE, None, Some(retry_request()))
        .await;

    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn replayed_completion_change_answers_the_recorded_response() {
    let owner = UserId::generate();
    let keys = keys_answering_claim(owner, Ok(ClaimOutcome::Replay(recorded_response())));

    let outcome = task_service_with_keys(tasks_never_called(), keys)
        .change_completion(
            owner,
            TaskId::generate(),
            TOGGLE,
            None,
            Some(retry_request()),
        )
        .await
        .unwrap();

    assert_eq!(outcome, Outcome::Replayed(recorded_response()));
}

#[tokio::test]
async fn replayed_completion_change_neither_touches_the_task_nor_gives_a_claim_back() {
    let owner = UserId::generate();
    let mut keys = keys_answering_claim(owner, Ok(ClaimOutcome::Replay(recorded_response())));
    expect_no_release(&mut keys);

    let result = task_service_with_keys(tasks_never_called(), keys)
        .change_completion(
            owner,
            TaskId::generate(),
            TOGGLE,
            Some(precondition()),
            Some(retry_request()),
        )
        .await;

    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn completion_change_whose_key_is_in_use_fails_with_key_in_use_and_touches_no_task() {
    let owner = UserId::generate();
    let mut keys = keys_answering_claim(owner, Ok(ClaimOutcome::InUse));
    expect_no_release(&mut keys);

    let error = task_service_with_keys(tasks_never_called(), keys)
        .change_completion(
            owner,
            TaskId::generate(),
            TOGGLE,
            None,
            Some(retry_request()),
        )
        .await
        .unwrap_err();

    assert!(
        matches!(error, DomainError::IdempotencyKeyInUse),
        "{error:?}"
    );
}

#[tokio::test]
async fn completion_change_whose_key_was_used_for_another_request_fails_with_key_reused_and_touches_no_task()
 {
    let owner = UserId::generate();
    let mut keys = keys_answering_claim(owner, Ok(ClaimOutcome::Reused));
    expect_no_release(&mut keys);

    let error = task_service_with_keys(tasks_never_called(), keys)
        .change_completion(
            owner,
            TaskId::generate(),
            TOGGLE,
            None,
            Some(retry_request()),
        )
        .await
        .unwrap_err();

    assert!(
        matches!(error, DomainError::IdempotencyKeyReused),
        "{error:?}"
    );
}

#[tokio::test]
async fn failing_claim_before_a_completion_change_propagates_and_touches_no_task() {
    let owner = UserId::generate();
    let mut keys = keys_answering_claim(owner, Err(storage_down()));
    expect_no_release(&mut keys);

    let error = task_service_with_keys(tasks_never_called(), keys)
        .change_completion(
            owner,
            TaskId::generate(),
            TOGGLE,
            None,
            Some(retry_request()),
        )
        .await
        .unwrap_err();

    assert_storage_down(&error);
}

#[tokio::test]
async fn claimed_completion_change_hands_the_repository_a_receipt_for_that_claim() {
    let (id, owner) = (TaskId::generate(), UserId::generate());
    let receipt = Captured::new();
    let tasks = tasks_changing_completion(&receipt, Ok(Some(sample_task(id, owner))));

    task_service_with_keys(tasks, keys_granting_claim(owner))
        .change_completion(owner, id, TOGGLE, None, Some(retry_request()))
        .await
        .unwrap();

    assert_eq!(receipt.value().expect("no receipt").claim, claim(owner));
}

#[tokio::test]
async fn claimed_completion_change_hands_the_repository_the_requests_recorder() {
    let (id, owner) = (TaskId::generate(), UserId::generate());
    let request = retry_request();
    let recorder = Arc::clone(&request.recorder);
    let receipt = Captured::new();
    let tasks = tasks_changing_completion(&receipt, Ok(Some(sample_task(id, owner))));

    task_service_with_keys(tasks, keys_granting_claim(owner))
        .change_completion(owner, id, TOGGLE, None, Some(request))
        .await
        .unwrap();

    let handed = receipt.value().expect("no receipt").recorder;
    assert!(
        Arc::ptr_eq(&handed, &recorder),
        "another recorder was handed"
    );
}

#[tokio::test]
async fn claimed_completion_change_answers_done_with_the_stored_task() {
    let (id, owner) = (TaskId::generate(), UserId::generate());
    let stored = sample_task(id, owner);
    let tasks = completion_change_hits(id, owner, TOGGLE, None, stored.clone());

    let outcome = task_service_with_keys(tasks, keys_granting_claim(owner))
        .change_completion(owner, id, TOGGLE, None, Some(retry_request()))
        .await
        .unwrap();

    assert_eq!(outcome, Outcome::Done(stored));
}

#[tokio::test]
async fn successful_retry_safe_completion_change_keeps_its_claim() {
    let (id, owner) = (TaskId::generate(), UserId::generate());
    let tasks = completion_change_hits(id, owner, TOGGLE, None, sample_task(id, owner));
    let mut keys = keys_granting_claim(owner);
    expect_no_release(&mut keys);

    let result = task_service_with_keys(tasks, keys)
        .change_completion(owner, id, TOGGLE, None, Some(retry_request()))
        .await;

    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn retry_safe_completion_change_of_a_task_nobody_has_gives_the_claim_back_once() {
    let (id, owner) = (TaskId::generate(), UserId::generate());
    let mut tasks = completion_change_misses(id, owner, TOGGLE, None);
    expect_exists(&mut tasks, id, Ok(false));
    let mut keys = keys_granting_claim(owner);
    expect_release(&mut keys, owner, Ok(()));

    let result = task_service_with_keys(tasks, keys)
        .change_completion(owner, id, TOGGLE, None, Some(retry_request()))
        .await;

    assert!(result.is_err(), "{result:?}");
}

#[tokio::test]
async fn retry_safe_completion_change_of_a_task_nobody_has_is_not_found() {
    let (id, owner) = (TaskId::generate(), UserId::generate());
    let mut tasks = completion_change_misses(id, owner, TOGGLE, None);
    expect_exists(&mut tasks, id, Ok(false));
    let mut keys = keys_granting_claim(owner);
    expect_release(&mut keys, owner, Ok(()));

    let error = task_service_with_keys(tasks, keys)
        .change_completion(owner, id, TOGGLE, None, Some(retry_request()))
        .await
        .unwrap_err();

    assert!(matches!(error, DomainError::TaskNotFound), "{error:?}");
}

#[tokio::test]
async fn retry_safe_completion_change_that_fails_its_precondition_gives_the_claim_back_once() {
    let (id, owner) = (TaskId::generate(), UserId::generate());
    let mut tasks = completion_change_misses(id, owner, TOGGLE, Some(precondition()));
    expect_owned_lookup(&mut tasks, id, owner, Ok(Some(sample_task(id, owner))));
    let mut keys = keys_granting_claim(owner);
    expect_release(&mut keys, owner, Ok(()));

    let error = task_service_with_keys(tasks, keys)
        .change_completion(
            owner,
            id,
            TOGGLE,
            Some(precondition()),
            Some(retry_request()),
        )
        .await
        .unwrap_err();

    assert!(
        matches!(error, DomainError::PreconditionFailed),
        "{error:?}"
    );
}

#[tokio::test]
async fn retry_safe_completion_change_that_storage_fails_gives_the_claim_back_and_propagates_the_failure()
 {
    let (id, owner) = (TaskId::generate(), UserId::generate());
    let mut tasks = completion_change_answers(id, owner, TOGGLE, None, Err(storage_down()));
    expect_no_existence_check(&mut tasks);
    let mut keys = keys_granting_claim(owner);
    expect_release(&mut keys, owner, Ok(()));

    let error = task_service_with_keys(tasks, keys)
        .change_completion(owner, id, TOGGLE, None, Some(retry_request()))
        .await
        .unwrap_err();

    assert_storage_down(&error);
}

#[tokio::test]
async fn failed_release_after_a_failed_completion_change_still_answers_the_changes_error() {
    let (id, owner) = (TaskId::generate(), UserId::generate());
    let mut tasks = completion_change_misses(id, owner, TOGGLE, None);
    expect_exists(&mut tasks, id, Ok(false));
    let mut keys = keys_granting_claim(owner);
    expect_release(
        &mut keys,
        owner,
        Err(DomainError::Unavailable("release lost".into())),
    );

    let error = task_service_with_keys(tasks, keys)
        .change_completion(owner, id, TOGGLE, None, Some(retry_request()))
        .await
        .unwrap_err();

    assert!(matches!(error, DomainError::TaskNotFound), "{error:?}");
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
