//! The adapters against real databases. Each test is written once, as an
//! async function taking a freshly migrated [`Store`], and `on_both_backends!`
//! runs it as `postgres::<name>` and as `sqlite::<name>`.
//!
//! The PostgreSQL variants use `TestDatabase::preferred()`: PostgreSQL
//! whenever it is reachable and always in CI (where a missing server fails
//! the run); on a machine without it they run on SQLite and say so.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use migration::{Migrator, MigratorTrait, SchemaManager};
use sea_orm::sqlx::postgres::PgConnection;
use sea_orm::sqlx::{Connection as _, Executor as _};
use sea_orm::{ConnectionTrait, Statement, Value};
use time::OffsetDateTime;
use time::macros::datetime;
use todo_domain::ports::{
    IdempotencyStore, IdentityRepository, SignInFailureRepository, TaskRepository, UserRepository,
};
use todo_domain::{
    CHANGES_PAGE_MAX, CLAIM_TIMEOUT, Change, ChangePage, ClaimOutcome, CompletionChange,
    DomainError, Email, ExternalIdentity, FeedPosition, IDEMPOTENCY_KEY_TTL, IdempotencyKey,
    Labels, NewExternalUser, NewUser, PageLimit, PageRequest, PasswordHash, PositionedChange,
    Precondition, Priority, Provisioned, Receipt, RecordedResponse, RequestFingerprint,
    ResponseRecorder, SearchText, SortField, SortKey, SortOrder, Task, TaskDescription, TaskFilter,
    TaskId, TaskPage, TaskPatch, TaskPosition, TaskQuery, TaskSort, TaskTitle, TaskVersion,
    Timestamp, UserId,
};
use todo_domain::{SignInKey, SignInLimit};
use todo_persistence::testing::TestDatabase;
use todo_persistence::{
    Backend, Database, DatabaseSettings, SeaIdempotencyStore, SeaIdentityRepository,
    SeaSignInFailureRepository, SeaTaskRepository, SeaUserRepository, backend_of, connect,
    is_ready, migrate,
};
use uuid::Uuid;

/// Runs each listed test once per backend, each on its own database.
macro_rules! on_both_backends {
    ($($test:ident),+ $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    // PostgreSQL whenever reachable, and always in CI; on a
                    // machine without it, SQLite with a note on stderr.
                    let database = todo_persistence::testing::TestDatabase::preferred().await;
                    super::$test(super::Store::open(database).await).await;
                }
            )+
        }

        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let database = todo_persistence::testing::TestDatabase::sqlite().await;
                    super::$test(super::Store::open(database).await).await;
                }
            )+
        }
    };
}

on_both_backends!(
    connection_reports_its_backend_and_is_ready,
    // tasks: one task
    insert_then_find_owned_round_trips_every_field,
    longest_title_description_and_labels_fit,
    another_owner_finds_nothing_but_the_task_exists,
    exists_is_false_for_an_unknown_id,
    // tasks: the count and the limit
    inserts_count_tasks_up_to_the_limit,
    an_insert_for_a_missing_user_is_user_not_found,
    fifty_concurrent_inserts_ten_below_the_limit_leave_exactly_the_limit,
    deletes_keep_the_task_count,
    page_totals_of_open_and_done_tasks_follow_every_change,
    delete_completed_deletes_only_the_owners_completed_tasks,
    // tasks: the list
    list_is_newest_first_with_id_breaking_ties_and_only_the_owners,
    list_orders_instants_within_one_second,
    every_sort_orders_both_ways_with_ties_by_id_and_undated_tasks_last,
    title_order_ignores_ascii_case,
    pages_walk_every_sort_while_tasks_come_and_go,
    pages_report_the_total_and_where_the_next_starts,
    due_date_pages_cross_from_dated_to_undated_tasks_with_their_total,
    completed_and_priority_filters_keep_only_matching_tasks,
    a_label_filter_ignores_case_and_requires_every_label,
    due_before_is_strict_and_due_after_inclusive,
    overdue_splits_the_list_at_now,
    search_is_literal_and_ignores_ascii_case,
    filters_combine_and_pages_count_only_matches,
    a_cursor_of_another_sort_is_unexpected,
    // tasks: writes
    patch_changes_only_the_named_fields,
    patch_detects_a_change_field_by_field,
    an_empty_patch_changes_nothing,
    patching_labels_replaces_the_label_rows,
    completed_at_follows_completed,
    preconditions_decide_in_the_writing_statement,
    updated_at_never_moves_backwards,
    updated_at_compares_instants_within_one_second,
    toggling_twice_restores_the_state,
    setting_completed_is_idempotent,
    fifty_concurrent_toggles_lose_none,
    another_owner_can_change_or_delete_nothing,
    delete_owned_deletes_once,
    // tasks: the changes feed
    every_write_path_moves_the_task_to_the_end_of_the_feed,
    a_task_changed_twice_appears_once_at_its_latest_position,
    another_users_changes_never_appear_in_the_feed,
    the_feed_reads_at_most_the_asked_number_in_position_order,
    forgetting_old_deletions_raises_the_floor,
    the_feed_migration_numbers_existing_tasks_in_the_order_they_changed,
    a_reader_following_the_feed_during_concurrent_writes_misses_nothing,
    // idempotency keys
    a_key_is_claimed_once_and_then_in_use,
    a_recorded_answer_is_replayed,
    a_key_used_for_another_request_is_reused,
    keys_belong_to_one_user,
    twenty_concurrent_claims_of_one_key_claim_it_once,
    an_abandoned_claim_is_taken_over_by_one_request,
    an_expired_key_is_free_again,
    release_frees_only_an_unfinished_claim_it_holds,
    purge_removes_only_expired_keys,
    a_receipt_whose_claim_was_taken_over_rolls_the_insert_back,
    a_completion_records_its_answer_or_rolls_back,
    // users
    a_taken_email_is_refused,
    twenty_concurrent_sign_ups_for_one_email_succeed_once,
    record_sign_in_sets_last_signin_at,
    an_earlier_sign_in_does_not_move_last_signin_at_back,
    record_sign_in_of_an_unknown_user_is_user_not_found,
    find_credentials_returns_id_and_hash,
    // schema
    deleting_a_user_deletes_their_tasks_labels_and_keys,
    a_stored_row_that_breaks_a_domain_rule_is_unexpected,
    a_closed_pool_is_unavailable,
    migrations_round_trip_down_and_up,
    the_front_end_migration_gives_existing_rows_defaults_and_counts,
    the_front_end_migration_rolls_back_and_forward,
    // external identities
    an_identity_is_provisioned_once_and_found_again,
    twenty_concurrent_provisions_of_one_identity_create_one_user,
    identities_are_compared_exactly,
    external_users_may_share_an_email_with_anyone,
    sign_in_never_finds_an_external_user,
    update_email_renames_only_external_users,
    deleting_an_external_user_deletes_the_link,
    the_identity_migration_keeps_every_user_and_task,
    rolling_the_identity_migration_back_removes_only_external_users,
    an_unknown_key_is_not_blocked,
    the_failure_that_reaches_the_limit_blocks_for_one_window_from_it,
    failures_after_the_window_start_a_new_count,
    after_a_block_the_count_starts_afresh,
    a_limit_of_one_blocks_at_the_first_failure,
    clearing_a_key_forgets_its_failures,
    keys_are_counted_apart,
    racing_failures_are_each_counted_exactly_once,
    the_key_is_stored_as_a_digest_not_as_typed,
    forgetting_expired_keys_keeps_open_windows_and_blocks,
);

/// A migrated database and the repositories over it.
struct Store {
    tasks: SeaTaskRepository,
    keys: SeaIdempotencyStore,
    users: SeaUserRepository,
    identities: SeaIdentityRepository,
    sign_in_failures: SeaSignInFailureRepository,
    db: Database,
    backend: Backend,
    /// Dropped last, deleting the database.
    _database: TestDatabase,
}

/// The task limit of tests that are not about it.
const MAX_TASKS: u32 = 10_000;

impl Store {
    async fn open(database: TestDatabase) -> Store {
        let settings = DatabaseSettings {
            url: database.url().to_owned(),
            // PostgreSQL has 100 slots and the tests run in parallel.
            max_connections: 5,
            acquire_timeout: Duration::from_secs(10),
            // Generous: some tests load thousands of rows in one call, and
            // the timeout has tests of its own.
            statement_timeout: Duration::from_secs(30),
        };
        let db = connect(&settings)
            .await
            .expect("connect to the test database");
        migrate(&db).await.expect("migrate the test database");
        Store {
            tasks: SeaTaskRepository::new(db.clone()),
            keys: SeaIdempotencyStore::new(db.clone()),
            users: SeaUserRepository::new(db.clone()),
            identities: SeaIdentityRepository::new(db.clone()),
            sign_in_failures: SeaSignInFailureRepository::new(db.clone()),
            db,
            backend: database.backend(),
            _database: database,
        }
    }

    /// A new user with a unique email.
    async fn user(&self) -> UserId {
        let id = UserId::generate();
        self.users
            .insert(&new_user(
                id,
                &format!("{}@example.io", id.as_uuid().simple()),
            ))
            .await
            .expect("insert user");
        id
    }

    async fn stored(&self, task: Task) -> Task {
        self.tasks
            .insert(&task, MAX_TASKS, None)
            .await
            .expect("insert task");
        task
    }

    /// The whole list or a page, read at [`now()`].
    async fn list(&self, owner: UserId, query: &TaskQuery) -> TaskPage {
        self.tasks
            .list_by_owner(owner, query, now())
            .await
            .expect("list tasks")
    }

    /// Every task of a paged walk through `query`, page by page, checking
    /// each page's size, its total and where it says the next starts.
    async fn walk(&self, owner: UserId, query: &TaskQuery, limit: u16) -> Vec<Task> {
        let mut seen = Vec::new();
        let mut after = None;
        let mut totals = HashSet::new();
        for _ in 0..1_000 {
            let page = self.list(owner, &paged(query, limit, after)).await;
            assert!(page.tasks.len() <= usize::from(limit));
            totals.insert(page.total);
            let last = page.tasks.last().cloned();
            seen.extend(page.tasks);
            match page.next {
                Some(next) => {
                    let last = last.expect("a page with a next position is not empty");
                    assert_eq!(next, TaskPosition::of(&last, query.sort.field));
                    after = Some(next);
                }
                None => {
                    assert_eq!(totals.len(), 1, "the total changed between pages");
                    return seen;
                }
            }
        }
        panic!("the walk did not end");
    }

    /// `users.task_count` of `owner`.
    async fn task_count(&self, owner: UserId) -> i64 {
        self.count(
            "SELECT CAST(task_count AS BIGINT) FROM users WHERE id = $1",
            vec![owner.as_uuid().into()],
        )
        .await
    }

    /// How many label rows a task has.
    async fn label_rows(&self, id: TaskId) -> i64 {
        self.count(
            "SELECT COUNT(*) FROM task_labels WHERE task_id = $1",
            vec![id.as_uuid().into()],
        )
        .await
    }

    /// Runs a statement written with `$n` placeholders (sqlx accepts them
    /// on SQLite too).
    async fn raw(&self, sql: &str, values: Vec<Value>) -> u64 {
        let statement = Statement::from_sql_and_values(self.db.get_database_backend(), sql, values);
        self.db
            .execute_raw(statement)
            .await
            .expect("raw statement")
            .rows_affected()
    }

    /// The number a `SELECT COUNT(*) …` written with `$n` placeholders
    /// answers.
    async fn count(&self, sql: &str, values: Vec<Value>) -> i64 {
        let statement = Statement::from_sql_and_values(self.db.get_database_backend(), sql, values);
        let row = self
            .db
            .query_one_raw(statement)
            .await
            .expect("count query")
            .expect("a row");
        row.try_get_by_index::<i64>(0).expect("a count")
    }

    /// An instant as the backend stores it, for raw statements.
    fn instant(&self, at: Timestamp) -> Value {
        match self.backend {
            Backend::Postgres => Value::from(at.as_datetime()),
            Backend::Sqlite => Value::from(at.to_fixed_rfc3339()),
        }
    }

    /// Writes a task with the columns the first two migrations know, as a
    /// service of that time would have.
    async fn stored_before_front_end(&self, task: &Task) {
        self.raw(
            "INSERT INTO tasks (id, user_id, title, description, completed, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            vec![
                task.id.as_uuid().into(),
                task.owner.as_uuid().into(),
                task.title.as_str().into(),
                task.description
                    .as_ref()
                    .map(|text| text.as_str().to_owned())
                    .into(),
                task.completed.into(),
                self.instant(task.created_at),
                self.instant(task.updated_at),
            ],
        )
        .await;
    }

    /// Stores a user of an external identity that must not exist yet.
    async fn external_user(&self, subject: &str, email: &str) -> NewExternalUser {
        let user = new_external_user(subject, email);
        match self.identities.insert_linked_user(&user).await {
            Ok(Provisioned::Created(_)) => user,
            other => panic!("expected a new user, got {other:?}"),
        }
    }

    /// Claims `key` for `owner`, which must succeed.
    async fn claimed(&self, owner: UserId, key: &str, fingerprint: u8, at: Timestamp) -> Receipt {
        match self
            .keys
            .claim(owner, &idempotency_key(key), &request(fingerprint), at)
            .await
            .unwrap()
        {
            ClaimOutcome::Claimed(claim) => {
                assert_eq!(claim.owner, owner);
                assert_eq!(claim.key, idempotency_key(key));
                Receipt {
                    claim,
                    recorder: Arc::new(EchoRecorder),
                }
            }
            other => panic!("expected a claim, got {other:?}"),
        }
    }

    async fn claim(
        &self,
        owner: UserId,
        key: &str,
        fingerprint: u8,
        at: Timestamp,
    ) -> ClaimOutcome {
        self.keys
            .claim(owner, &idempotency_key(key), &request(fingerprint), at)
            .await
            .unwrap()
    }
}

const ISSUER: &str = "https://auth.example.io";

fn identity(subject: &str) -> ExternalIdentity {
    ExternalIdentity::new(ISSUER, subject).unwrap()
}

fn new_external_user(subject: &str, email: &str) -> NewExternalUser {
    NewExternalUser {
        id: UserId::generate(),
        identity: identity(subject),
        email: Email::parse(email).unwrap(),
        created_at: stamp(datetime!(2026-03-01 08:00:00.000_001 UTC)),
    }
}

fn new_user(id: UserId, email: &str) -> NewUser {
    NewUser {
        id,
        email: Email::parse(email).unwrap(),
        password_hash: PasswordHash::new(format!("$argon2id$v=19$m=19456,t=2,p=1$salt${id}")),
        created_at: stamp(datetime!(2026-02-01 08:00:00.000_001 UTC)),
    }
}

fn stamp(instant: OffsetDateTime) -> Timestamp {
    Timestamp::from_datetime(instant)
}

fn title(text: &str) -> TaskTitle {
    TaskTitle::parse(text).unwrap()
}

fn description(text: &str) -> Option<TaskDescription> {
    TaskDescription::parse(Some(text)).unwrap()
}

fn labels(names: &[&str]) -> Labels {
    Labels::parse(names).unwrap()
}

fn task(owner: UserId, text: &str, created_at: Timestamp) -> Task {
    Task {
        id: TaskId::generate(),
        owner,
        title: title(text),
        description: None,
        completed: false,
        completed_at: None,
        due_at: None,
        priority: Priority::None,
        labels: Labels::none(),
        created_at,
        updated_at: created_at,
        version: TaskVersion::FIRST,
    }
}

/// `task`, created done.
fn done(task: Task) -> Task {
    Task {
        completed: true,
        completed_at: Some(task.created_at),
        ..task
    }
}

/// An id whose first byte is `rank`, so ids sort as their ranks do (both
/// engines compare UUIDs byte by byte).
fn ranked_id(rank: u8) -> TaskId {
    TaskId::from_uuid(Uuid::from_u128(
        (u128::from(rank) << 120) | 0x7000_8000_0000_0000,
    ))
}

const T0: OffsetDateTime = datetime!(2026-02-06 10:15:23.123_456 UTC);

fn later(seconds: i64) -> Timestamp {
    stamp(T0 + time::Duration::seconds(seconds))
}

/// The instant lists are read at, unless a test says otherwise.
fn now() -> Timestamp {
    later(1_000_000)
}

fn version(number: u64) -> TaskVersion {
    TaskVersion::new(number)
}

fn if_version(versions: &[u64]) -> Option<Precondition> {
    Some(Precondition::any_of(
        versions.iter().copied().map(TaskVersion::new).collect(),
    ))
}

fn sort(field: SortField, order: SortOrder) -> TaskQuery {
    TaskQuery {
        sort: TaskSort { field, order },
        ..TaskQuery::default()
    }
}

fn filtered(filter: TaskFilter) -> TaskQuery {
    TaskQuery {
        filter,
        ..TaskQuery::default()
    }
}

/// `query`, one page of `limit` after `after`.
fn paged(query: &TaskQuery, limit: u16, after: Option<TaskPosition>) -> TaskQuery {
    TaskQuery {
        page: Some(PageRequest {
            limit: PageLimit::new(limit).unwrap(),
            after,
        }),
        ..query.clone()
    }
}

fn search(text: &str) -> TaskFilter {
    TaskFilter {
        search: SearchText::parse(text).unwrap(),
        ..TaskFilter::default()
    }
}

/// The order the list promises, computed here: the sort field (title
/// without ASCII case; tasks without a due date last in both orders),
/// then the id, in the same direction.
fn compare(sort: TaskSort, a: &Task, b: &Task) -> Ordering {
    let directed = |ordering: Ordering| match sort.order {
        SortOrder::Asc => ordering,
        SortOrder::Desc => ordering.reverse(),
    };
    let field = match sort.field {
        SortField::CreatedAt => a.created_at.cmp(&b.created_at),
        SortField::UpdatedAt => a.updated_at.cmp(&b.updated_at),
        SortField::Priority => a.priority.cmp(&b.priority),
        SortField::Title => a
            .title
            .as_str()
            .to_ascii_lowercase()
            .cmp(&b.title.as_str().to_ascii_lowercase()),
        SortField::DueAt => match (a.due_at, b.due_at) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => return Ordering::Less,
            (None, Some(_)) => return Ordering::Greater,
            (None, None) => Ordering::Equal,
        },
    };
    directed(field.then(a.id.as_uuid().cmp(&b.id.as_uuid())))
}

fn sorted(mut tasks: Vec<Task>, sort: TaskSort) -> Vec<Task> {
    tasks.sort_by(|a, b| compare(sort, a, b));
    tasks
}

const EVERY_SORT: [TaskSort; 10] = {
    let fields = [
        SortField::CreatedAt,
        SortField::UpdatedAt,
        SortField::DueAt,
        SortField::Priority,
        SortField::Title,
    ];
    let mut sorts = [TaskSort {
        field: SortField::CreatedAt,
        order: SortOrder::Asc,
    }; 10];
    let mut index = 0;
    while index < 10 {
        sorts[index] = TaskSort {
            field: fields[index / 2],
            order: if index % 2 == 0 {
                SortOrder::Asc
            } else {
                SortOrder::Desc
            },
        };
        index += 1;
    }
    sorts
};

/// Ten tasks whose every sort field has ties, and some without a due date:
/// (id rank, title, created, updated, due, priority), times in seconds.
fn sort_fixture(owner: UserId) -> Vec<Task> {
    let rows = [
        (5, "banana", 0, 10, Some(100), Priority::Low),
        (1, "Apple", 1, 11, Some(100), Priority::High),
        (9, "cherry", 1, 5, None, Priority::None),
        (3, "apple", 2, 12, Some(50), Priority::Low),
        (7, "APPLE", 0, 10, None, Priority::Medium),
        (2, "date", 3, 3, Some(200), Priority::High),
        (8, "Banana", 2, 20, None, Priority::None),
        (4, "elder", 4, 4, Some(50), Priority::Medium),
        (6, "fig", 5, 30, Some(300), Priority::Low),
        (10, "grape", 5, 30, None, Priority::High),
    ];
    rows.into_iter()
        .map(|(rank, text, created, updated, due, priority)| Task {
            id: ranked_id(rank),
            updated_at: later(updated),
            due_at: due.map(later),
            priority,
            ..task(owner, text, later(created))
        })
        .collect()
}

fn idempotency_key(key: &str) -> IdempotencyKey {
    IdempotencyKey::parse(key.as_bytes()).unwrap()
}

/// A request's fingerprint; requests with the same number are the same.
fn request(number: u8) -> RequestFingerprint {
    RequestFingerprint::new(vec![number; 32])
}

/// Records a created task as the api would: 201, where it lives, its
/// version, and its title as the body.
struct EchoRecorder;

impl ResponseRecorder for EchoRecorder {
    fn record(&self, task: &Task) -> RecordedResponse {
        RecordedResponse {
            status: 201,
            headers: vec![
                ("Location".to_owned(), format!("/api/tasks/{}", task.id)),
                ("ETag".to_owned(), format!("\"{}\"", task.version.get())),
            ],
            body: task.title.as_str().to_owned(),
        }
    }
}

fn echoed(task: &Task) -> RecordedResponse {
    EchoRecorder.record(task)
}

// --- connection -------------------------------------------------------------

async fn connection_reports_its_backend_and_is_ready(store: Store) {
    assert_eq!(backend_of(&store.db), store.backend);
    assert!(is_ready(&store.db).await);
}

// --- tasks: one task ----------------------------------------------------------

async fn insert_then_find_owned_round_trips_every_field(store: Store) {
    let owner = store.user().await;
    let rich = Task {
        id: TaskId::generate(),
        owner,
        title: title("שלום 👋🏽 مرحبا — ToDo ✓"),
        description: description("line one\nline two: 🦀 Ünïcödé, \"quotes\" and 'apostrophes'"),
        completed: true,
        completed_at: Some(stamp(datetime!(2026-02-06 10:15:23.123_456 UTC))),
        due_at: Some(stamp(datetime!(9999-12-31 23:59:59.999_999 UTC))),
        priority: Priority::High,
        labels: labels(&["Äpfel", "work", "a b", "ΣΟΦΙΑ"]),
        created_at: stamp(datetime!(2026-02-06 10:15:23.123_456 UTC)),
        updated_at: stamp(datetime!(2026-02-06 10:15:24.000_001 UTC)),
        version: TaskVersion::FIRST,
    };
    let plain = Task {
        id: TaskId::generate(),
        owner,
        title: title("Buy milk"),
        description: None,
        completed: false,
        completed_at: None,
        // The first instant a client may write.
        due_at: Some(stamp(datetime!(0001-01-01 00:00:00 UTC))),
        priority: Priority::None,
        labels: Labels::none(),
        // Whole seconds and trailing zeros must survive too.
        created_at: stamp(datetime!(2026-02-06 10:15:23 UTC)),
        updated_at: stamp(datetime!(2026-02-06 10:15:23.5 UTC)),
        version: TaskVersion::FIRST,
    };
    for task in [rich, plain] {
        store.tasks.insert(&task, MAX_TASKS, None).await.unwrap();
        let found = store.tasks.find_owned(task.id, owner).await.unwrap();
        assert_eq!(found, Some(task.clone()));
        assert_eq!(
            store.label_rows(task.id).await,
            task.labels.as_slice().len() as i64
        );
    }
}

async fn longest_title_description_and_labels_fit(store: Store) {
    let owner = store.user().await;
    // Four bytes each: the limits are in characters, as `varchar(n)` counts.
    let longest_labels: Vec<String> = (0..20)
        .map(|n| format!("{n:02}{}", "🦀".repeat(48)))
        .collect();
    let task = Task {
        title: title(&"🦀".repeat(500)),
        description: description(&"é".repeat(2000)),
        labels: Labels::parse(&longest_labels).unwrap(),
        ..task(owner, "x", later(0))
    };
    store.tasks.insert(&task, MAX_TASKS, None).await.unwrap();
    assert_eq!(
        store.tasks.find_owned(task.id, owner).await.unwrap(),
        Some(task.clone())
    );
    assert_eq!(store.label_rows(task.id).await, 20);
}

async fn another_owner_finds_nothing_but_the_task_exists(store: Store) {
    let owner = store.user().await;
    let stranger = store.user().await;
    let task = store.stored(task(owner, "Private", later(0))).await;

    assert_eq!(
        store.tasks.find_owned(task.id, stranger).await.unwrap(),
        None
    );
    assert!(store.tasks.exists(task.id).await.unwrap());
}

async fn exists_is_false_for_an_unknown_id(store: Store) {
    assert!(!store.tasks.exists(TaskId::generate()).await.unwrap());
}

// --- tasks: the count and the limit -------------------------------------------

async fn inserts_count_tasks_up_to_the_limit(store: Store) {
    let owner = store.user().await;
    let other = store.user().await;
    assert_eq!(store.task_count(owner).await, 0);
    for n in 0..3 {
        store
            .tasks
            .insert(&task(owner, "t", later(n)), 3, None)
            .await
            .unwrap();
        assert_eq!(store.task_count(owner).await, n + 1);
    }

    let refused = task(owner, "one too many", later(9));
    let err = store.tasks.insert(&refused, 3, None).await.unwrap_err();
    assert!(matches!(err, DomainError::TaskLimitReached), "{err:?}");
    assert_eq!(
        store.tasks.find_owned(refused.id, owner).await.unwrap(),
        None
    );
    assert_eq!(store.task_count(owner).await, 3);
    // A higher limit lets it in; another user has a count of their own.
    store.tasks.insert(&refused, 4, None).await.unwrap();
    assert_eq!(store.task_count(owner).await, 4);
    store
        .tasks
        .insert(&task(other, "theirs", later(0)), 1, None)
        .await
        .unwrap();
    assert_eq!(store.task_count(other).await, 1);
    assert_eq!(store.list(owner, &TaskQuery::default()).await.total, 4);
}

async fn an_insert_for_a_missing_user_is_user_not_found(store: Store) {
    let ghost = UserId::generate();
    let orphan = Task {
        labels: labels(&["work"]),
        ..task(ghost, "orphan", later(0))
    };
    let err = store
        .tasks
        .insert(&orphan, MAX_TASKS, None)
        .await
        .unwrap_err();
    assert!(matches!(err, DomainError::UserNotFound), "{err:?}");
    assert!(!store.tasks.exists(orphan.id).await.unwrap());
}

async fn fifty_concurrent_inserts_ten_below_the_limit_leave_exactly_the_limit(store: Store) {
    const LIMIT: u32 = 40;
    let owner = store.user().await;
    for n in 0..i64::from(LIMIT - 10) {
        store
            .tasks
            .insert(&task(owner, "early", later(n)), LIMIT, None)
            .await
            .unwrap();
    }
    let racers: Vec<Task> = (0..50)
        .map(|n| Task {
            labels: labels(&["race"]),
            ..task(owner, "racer", later(100 + n))
        })
        .collect();
    let results = join_all(
        racers
            .iter()
            .map(|racer| store.tasks.insert(racer, LIMIT, None)),
    )
    .await;

    let mut stored = 0;
    for result in results {
        match result {
            Ok(()) => stored += 1,
            Err(DomainError::TaskLimitReached) => {}
            Err(other) => panic!("expected TaskLimitReached, got {other:?}"),
        }
    }
    assert_eq!(stored, 10);
    assert_eq!(store.task_count(owner).await, i64::from(LIMIT));
    let listed = store.list(owner, &TaskQuery::default()).await;
    assert_eq!(listed.tasks.len(), LIMIT as usize);
    assert_eq!(
        store
            .count(
                "SELECT COUNT(*) FROM task_labels WHERE key = $1",
                vec!["race".into()]
            )
            .await,
        10
    );
}

/// A page's total with only `completed` as filter is read from the user's
/// counters, which the database keeps through every way a task's
/// completion changes: created done, toggled, set, patched, deleted one by
/// one and all done ones at once. Each total is checked against a count of
/// the rows themselves.
async fn page_totals_of_open_and_done_tasks_follow_every_change(store: Store) {
    let owner = store.user().await;
    let other = store.user().await;
    let mut ids = Vec::new();
    for n in 0..6 {
        let open = task(owner, "t", later(n));
        let task = store
            .stored(if n % 2 == 0 { done(open) } else { open })
            .await;
        ids.push(task.id);
    }
    store.stored(done(task(other, "theirs", later(9)))).await;
    let totals = || async {
        let mut seen = Vec::new();
        for completed in [None, Some(false), Some(true)] {
            let query = TaskQuery {
                filter: TaskFilter {
                    completed,
                    ..TaskFilter::default()
                },
                ..TaskQuery::default()
            };
            let page = store.list(owner, &paged(&query, 1, None)).await;
            let counted = match completed {
                None => store.list(owner, &query).await.tasks.len(),
                Some(done) => store
                    .list(owner, &query)
                    .await
                    .tasks
                    .iter()
                    .filter(|task| task.completed == done)
                    .count(),
            };
            assert_eq!(page.total, counted as u64, "completed = {completed:?}");
            seen.push(page.total);
        }
        seen
    };
    assert_eq!(totals().await, vec![6, 3, 3]);

    let toggled = store
        .tasks
        .change_completion_owned(
            ids[1],
            owner,
            CompletionChange::Toggle,
            None,
            later(20),
            None,
        )
        .await
        .unwrap()
        .unwrap();
    assert!(toggled.completed);
    assert_eq!(totals().await, vec![6, 2, 4]);

    // Setting the state a task already has changes no count.
    store
        .tasks
        .change_completion_owned(
            ids[0],
            owner,
            CompletionChange::Set(true),
            None,
            later(21),
            None,
        )
        .await
        .unwrap();
    assert_eq!(totals().await, vec![6, 2, 4]);

    store
        .tasks
        .patch_owned(
            ids[0],
            owner,
            &TaskPatch {
                completed: Some(false),
                title: Some(title("reopened")),
                ..TaskPatch::default()
            },
            None,
            later(22),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(totals().await, vec![6, 3, 3]);

    assert!(store.tasks.delete_owned(ids[2], owner, None).await.unwrap());
    assert_eq!(totals().await, vec![5, 3, 2]);

    assert_eq!(store.tasks.delete_completed(owner).await.unwrap(), 2);
    assert_eq!(totals().await, vec![3, 3, 0]);

    // The other user's counters were never touched.
    let theirs = TaskQuery {
        filter: TaskFilter {
            completed: Some(true),
            ..TaskFilter::default()
        },
        ..TaskQuery::default()
    };
    assert_eq!(store.list(other, &paged(&theirs, 1, None)).await.total, 1);
}

async fn deletes_keep_the_task_count(store: Store) {
    let owner = store.user().await;
    let first = store.stored(task(owner, "first", later(0))).await;
    let second = store.stored(task(owner, "second", later(1))).await;
    store.stored(task(owner, "third", later(2))).await;
    assert_eq!(store.task_count(owner).await, 3);

    assert!(
        store
            .tasks
            .delete_owned(first.id, owner, None)
            .await
            .unwrap()
    );
    assert_eq!(store.task_count(owner).await, 2);
    // A miss, or a version that does not match, counts nothing.
    assert!(
        !store
            .tasks
            .delete_owned(first.id, owner, None)
            .await
            .unwrap()
    );
    assert!(
        !store
            .tasks
            .delete_owned(second.id, owner, if_version(&[2]))
            .await
            .unwrap()
    );
    assert_eq!(store.task_count(owner).await, 2);
    // The freed slot can be used again, up to the same limit.
    store
        .tasks
        .insert(&task(owner, "fourth", later(3)), 3, None)
        .await
        .unwrap();
    let err = store
        .tasks
        .insert(&task(owner, "fifth", later(4)), 3, None)
        .await
        .unwrap_err();
    assert!(matches!(err, DomainError::TaskLimitReached), "{err:?}");
    assert_eq!(store.task_count(owner).await, 3);
}

async fn delete_completed_deletes_only_the_owners_completed_tasks(store: Store) {
    let owner = store.user().await;
    let other = store.user().await;
    let finished = [
        store
            .stored(Task {
                labels: labels(&["work", "home"]),
                ..done(task(owner, "done one", later(0)))
            })
            .await,
        store.stored(done(task(owner, "done two", later(1)))).await,
    ];
    let open = store.stored(task(owner, "open", later(2))).await;
    let theirs = store
        .stored(done(task(other, "their done", later(3))))
        .await;
    assert_eq!(store.label_rows(finished[0].id).await, 2);

    assert_eq!(store.tasks.delete_completed(owner).await.unwrap(), 2);
    assert_eq!(
        store.list(owner, &TaskQuery::default()).await.tasks,
        vec![open]
    );
    assert_eq!(store.task_count(owner).await, 1);
    assert_eq!(store.label_rows(finished[0].id).await, 0);
    assert_eq!(
        store.tasks.find_owned(theirs.id, other).await.unwrap(),
        Some(theirs)
    );
    assert_eq!(store.task_count(other).await, 1);
    // Nothing left to delete.
    assert_eq!(store.tasks.delete_completed(owner).await.unwrap(), 0);
    assert_eq!(store.task_count(owner).await, 1);
}

// --- tasks: the list ----------------------------------------------------------

async fn list_is_newest_first_with_id_breaking_ties_and_only_the_owners(store: Store) {
    let owner = store.user().await;
    let stranger = store.user().await;
    // Inserted in an order that matches neither time nor id.
    let oldest = Task {
        id: ranked_id(9),
        ..task(owner, "oldest", later(0))
    };
    let tie_low = Task {
        id: ranked_id(1),
        ..task(owner, "tie, lower id", later(2))
    };
    let middle = Task {
        id: ranked_id(5),
        ..task(owner, "middle", later(1))
    };
    let tie_high = Task {
        id: ranked_id(2),
        ..task(owner, "tie, higher id", later(2))
    };
    let foreign = task(stranger, "someone else's", later(3));
    for task in [&oldest, &tie_low, &middle, &tie_high, &foreign] {
        store.tasks.insert(task, MAX_TASKS, None).await.unwrap();
    }

    let listed = store.list(owner, &TaskQuery::default()).await;
    assert_eq!(listed.tasks, vec![tie_high, tie_low, middle, oldest]);
    assert_eq!(listed.total, 4);
    assert_eq!(listed.next, None);
}

/// On SQLite the instants are text; written RFC 3339-style with trimmed
/// zeros, `.12Z` would sort after `.123Z`, `:23Z` after `:23.5Z`, and `.5Z`
/// after `.50001Z`.
async fn list_orders_instants_within_one_second(store: Store) {
    let owner = store.user().await;
    let oldest_first = [
        datetime!(2026-02-06 10:15:23 UTC),
        datetime!(2026-02-06 10:15:23.12 UTC),
        datetime!(2026-02-06 10:15:23.123 UTC),
        datetime!(2026-02-06 10:15:23.5 UTC),
        datetime!(2026-02-06 10:15:23.500_01 UTC),
        datetime!(2026-02-06 10:15:24 UTC),
    ];
    assert!(oldest_first.is_sorted());
    let tasks: Vec<Task> = (0u8..)
        .zip(oldest_first)
        .map(|(rank, instant)| Task {
            // Ids rank against time, so only the instants can give the order.
            id: ranked_id(200 - rank),
            due_at: Some(stamp(instant)),
            ..task(owner, "t", stamp(instant))
        })
        .collect();
    for task in tasks.iter().rev().step_by(2).chain(tasks.iter().step_by(2)) {
        store.tasks.insert(task, MAX_TASKS, None).await.unwrap();
    }

    let listed = store.list(owner, &TaskQuery::default()).await.tasks;
    let newest_first: Vec<Task> = tasks.iter().rev().cloned().collect();
    assert_eq!(listed, newest_first);
    let by_due = sort(SortField::DueAt, SortOrder::Asc);
    assert_eq!(store.list(owner, &by_due).await.tasks, tasks);
    assert_eq!(store.walk(owner, &by_due, 2).await, tasks);
}

async fn every_sort_orders_both_ways_with_ties_by_id_and_undated_tasks_last(store: Store) {
    let owner = store.user().await;
    let fixture = sort_fixture(owner);
    for task in fixture.iter().rev() {
        store.tasks.insert(task, MAX_TASKS, None).await.unwrap();
    }
    // Another user's tasks interleave with the owner's in every index.
    let stranger = store.user().await;
    for task in sort_fixture(stranger) {
        store
            .stored(Task {
                id: TaskId::generate(),
                ..task
            })
            .await;
    }

    for order in EVERY_SORT {
        let expected = sorted(fixture.clone(), order);
        let query = TaskQuery {
            sort: order,
            ..TaskQuery::default()
        };
        let whole = store.list(owner, &query).await;
        assert_eq!(whole.tasks, expected, "{order:?}");
        assert_eq!(whole.total, 10);
        for limit in [1, 3, 4, 10, 100] {
            assert_eq!(
                store.walk(owner, &query, limit).await,
                expected,
                "{order:?}, pages of {limit}"
            );
        }
    }
    // The undated tasks come last, in id order, whichever way dates run.
    for order in [SortOrder::Asc, SortOrder::Desc] {
        let listed = store
            .list(owner, &sort(SortField::DueAt, order))
            .await
            .tasks;
        let undated: Vec<TaskId> = listed[6..].iter().map(|task| task.id).collect();
        assert!(listed[..6].iter().all(|task| task.due_at.is_some()));
        let ids = match order {
            SortOrder::Asc => [7, 8, 9, 10],
            SortOrder::Desc => [10, 9, 8, 7],
        };
        assert_eq!(undated, ids.map(ranked_id));
    }
}

async fn title_order_ignores_ascii_case(store: Store) {
    let owner = store.user().await;
    let titles = ["beta", "Alpha", "ALPHA", "gamma", "Beta", "alpha", "Delta"];
    for (rank, text) in (1u8..).zip(titles) {
        store
            .stored(Task {
                id: ranked_id(rank),
                ..task(owner, text, later(0))
            })
            .await;
    }
    let listed: Vec<String> = store
        .list(owner, &sort(SortField::Title, SortOrder::Asc))
        .await
        .tasks
        .into_iter()
        .map(|task| task.title.into_string())
        .collect();
    // Equal but for case: the lower id first.
    assert_eq!(
        listed,
        ["Alpha", "ALPHA", "alpha", "beta", "Beta", "Delta", "gamma"]
    );
}

/// A walk in pages of three, while between pages a task is created and
/// another deleted: every task that existed throughout comes exactly once,
/// and the order holds.
async fn pages_walk_every_sort_while_tasks_come_and_go(store: Store) {
    for order in EVERY_SORT {
        let owner = store.user().await;
        // Fresh ids: each sort walks its own user's tasks.
        let lasting: Vec<Task> = sort_fixture(owner)
            .into_iter()
            .map(|task| Task {
                id: TaskId::generate(),
                ..task
            })
            .collect();
        for task in &lasting {
            store.stored(task.clone()).await;
        }
        // Doomed tasks share the lasting tasks' values, so they sit
        // before, after and beside the cursor when they go.
        let mut doomed: Vec<Task> = sort_fixture(owner)
            .into_iter()
            .take(6)
            .map(|task| Task {
                id: TaskId::generate(),
                ..task
            })
            .collect();
        for task in &doomed {
            store.stored(task.clone()).await;
        }
        let query = TaskQuery {
            sort: order,
            ..TaskQuery::default()
        };

        let mut seen: Vec<Task> = Vec::new();
        let mut after = None;
        let mut round = 0;
        loop {
            let page = store.list(owner, &paged(&query, 3, after)).await;
            seen.extend(page.tasks);
            let Some(next) = page.next else { break };
            after = Some(next);
            // A newcomer like a random fixture task, and one doomed task
            // gone, alternately from either end.
            let template = &lasting[(round * 7) % lasting.len()];
            store
                .stored(Task {
                    id: TaskId::generate(),
                    ..template.clone()
                })
                .await;
            if !doomed.is_empty() {
                let gone = if round % 2 == 0 {
                    doomed.remove(0)
                } else {
                    doomed.pop().unwrap()
                };
                assert!(
                    store
                        .tasks
                        .delete_owned(gone.id, owner, None)
                        .await
                        .unwrap()
                );
            }
            round += 1;
            assert!(round < 100, "the walk did not end");
        }

        let ids: Vec<TaskId> = seen.iter().map(|task| task.id).collect();
        let unique: HashSet<TaskId> = ids.iter().copied().collect();
        assert_eq!(unique.len(), ids.len(), "{order:?}: a task came twice");
        for task in &lasting {
            assert!(unique.contains(&task.id), "{order:?}: {task:?} was skipped");
        }
        assert!(
            seen.is_sorted_by(|a, b| compare(order, a, b) != Ordering::Greater),
            "{order:?}: out of order"
        );
    }
}

/// A due date page is read from the dated tasks and then, when they run
/// out, from the undated ones: the page where one kind ends and the other
/// begins holds both, in order, and every page carries the total,
/// whichever kind it is read from, and also past the last task.
async fn due_date_pages_cross_from_dated_to_undated_tasks_with_their_total(store: Store) {
    let owner = store.user().await;
    let fixture = sort_fixture(owner);
    for task in &fixture {
        store.stored(task.clone()).await;
    }
    for order in [SortOrder::Asc, SortOrder::Desc] {
        let by_due = sort(SortField::DueAt, order);
        let expected = sorted(fixture.clone(), by_due.sort);
        // Six dated tasks, then four undated: pages of four are dated,
        // dated and undated across the boundary, then undated.
        let mut after = None;
        for chunk in expected.chunks(4) {
            let page = store.list(owner, &paged(&by_due, 4, after)).await;
            assert_eq!(page.tasks, chunk, "{order:?}");
            assert_eq!(page.total, 10, "{order:?}");
            after = page.next;
        }
        assert_eq!(after, None, "{order:?}");
        // Right after the last dated task: only undated tasks are left.
        let last_dated = TaskPosition::of(&expected[5], SortField::DueAt);
        let page = store
            .list(owner, &paged(&by_due, 10, Some(last_dated)))
            .await;
        assert_eq!((page.tasks.as_slice(), page.total), (&expected[6..], 10));
        // After the last task of all, no leg has a row to carry the total.
        let last = TaskPosition::of(&expected[9], SortField::DueAt);
        let page = store.list(owner, &paged(&by_due, 4, Some(last))).await;
        assert_eq!((page.tasks.len(), page.total, page.next), (0, 10, None));
    }
}

async fn pages_report_the_total_and_where_the_next_starts(store: Store) {
    let owner = store.user().await;
    let fixture = sort_fixture(owner);
    for task in &fixture {
        store.stored(task.clone()).await;
    }
    let by_priority = sort(SortField::Priority, SortOrder::Desc);
    let expected = sorted(fixture, by_priority.sort);

    let first = store.list(owner, &paged(&by_priority, 4, None)).await;
    assert_eq!(first.tasks, expected[..4]);
    assert_eq!(first.total, 10);
    assert_eq!(
        first.next,
        Some(TaskPosition {
            key: SortKey::Priority(expected[3].priority),
            id: expected[3].id,
        })
    );
    let second = store.list(owner, &paged(&by_priority, 4, first.next)).await;
    assert_eq!(second.tasks, expected[4..8]);
    assert_eq!(second.total, 10);
    let last = store
        .list(owner, &paged(&by_priority, 4, second.next))
        .await;
    assert_eq!(last.tasks, expected[8..]);
    assert_eq!(last.total, 10);
    assert_eq!(last.next, None);

    // A page exactly as long as what is left has no next page.
    let exact = store.list(owner, &paged(&by_priority, 10, None)).await;
    assert_eq!((exact.tasks.len(), exact.total, exact.next), (10, 10, None));
    // Past the last task there is nothing, and the total still counts all.
    let past = TaskPosition::of(&expected[9], SortField::Priority);
    let beyond = store.list(owner, &paged(&by_priority, 4, Some(past))).await;
    assert_eq!(
        (beyond.tasks.len(), beyond.total, beyond.next),
        (0, 10, None)
    );
    // An empty list.
    let nobody = store.user().await;
    let empty = store.list(nobody, &paged(&by_priority, 4, None)).await;
    assert_eq!((empty.tasks.len(), empty.total, empty.next), (0, 0, None));
}

async fn completed_and_priority_filters_keep_only_matching_tasks(store: Store) {
    let owner = store.user().await;
    let open_low = store
        .stored(Task {
            priority: Priority::Low,
            ..task(owner, "open low", later(0))
        })
        .await;
    let done_high = store
        .stored(Task {
            priority: Priority::High,
            ..done(task(owner, "done high", later(1)))
        })
        .await;
    let open_none = store.stored(task(owner, "open none", later(2))).await;
    let done_medium = store
        .stored(Task {
            priority: Priority::Medium,
            ..done(task(owner, "done medium", later(3)))
        })
        .await;
    let ids = |page: TaskPage| page.tasks.into_iter().map(|t| t.id).collect::<Vec<_>>();

    let completed = |value| {
        filtered(TaskFilter {
            completed: Some(value),
            ..TaskFilter::default()
        })
    };
    assert_eq!(
        ids(store.list(owner, &completed(true)).await),
        [done_medium.id, done_high.id]
    );
    assert_eq!(
        ids(store.list(owner, &completed(false)).await),
        [open_none.id, open_low.id]
    );
    let priorities = |priorities: &[Priority]| {
        filtered(TaskFilter {
            priorities: priorities.to_vec(),
            ..TaskFilter::default()
        })
    };
    assert_eq!(
        ids(store
            .list(owner, &priorities(&[Priority::Low, Priority::High]))
            .await),
        [done_high.id, open_low.id]
    );
    assert_eq!(
        ids(store.list(owner, &priorities(&[Priority::None])).await),
        [open_none.id]
    );
    assert_eq!(store.list(owner, &priorities(&[])).await.total, 4);
}

async fn a_label_filter_ignores_case_and_requires_every_label(store: Store) {
    let owner = store.user().await;
    let both = store
        .stored(Task {
            labels: labels(&["Work", "Home"]),
            ..task(owner, "both", later(0))
        })
        .await;
    let work = store
        .stored(Task {
            labels: labels(&["work"]),
            ..task(owner, "work", later(1))
        })
        .await;
    let home = store
        .stored(Task {
            labels: labels(&["HOME", "errands", "Äpfel"]),
            ..task(owner, "home", later(2))
        })
        .await;
    store.stored(task(owner, "none", later(3))).await;
    // Another user's task with the same labels stays out.
    let stranger = store.user().await;
    store
        .stored(Task {
            labels: labels(&["work", "home"]),
            ..task(stranger, "theirs", later(4))
        })
        .await;
    let with = |names: &[&str]| {
        filtered(TaskFilter {
            labels: labels(names),
            ..TaskFilter::default()
        })
    };
    let ids = |page: TaskPage| page.tasks.into_iter().map(|t| t.id).collect::<Vec<_>>();

    assert_eq!(
        ids(store.list(owner, &with(&["WORK"])).await),
        [work.id, both.id]
    );
    assert_eq!(
        ids(store.list(owner, &with(&["home"])).await),
        [home.id, both.id]
    );
    assert_eq!(
        ids(store.list(owner, &with(&["wOrK", "hOmE"])).await),
        [both.id]
    );
    assert_eq!(ids(store.list(owner, &with(&["äPFEL"])).await), [home.id]);
    assert!(
        store
            .list(owner, &with(&["work", "errands"]))
            .await
            .tasks
            .is_empty()
    );
    assert!(store.list(owner, &with(&["wor"])).await.tasks.is_empty());
    let page = store.list(owner, &paged(&with(&["work"]), 1, None)).await;
    assert_eq!((ids(page.clone()), page.total), (vec![work.id], 2));
}

async fn due_before_is_strict_and_due_after_inclusive(store: Store) {
    let owner = store.user().await;
    let due = |seconds: i64, text: &str, created: i64| Task {
        due_at: Some(later(seconds)),
        ..task(owner, text, later(created))
    };
    let early = store.stored(due(10, "early", 0)).await;
    let middle = store.stored(due(20, "middle", 1)).await;
    let late = store.stored(due(30, "late", 2)).await;
    store.stored(task(owner, "undated", later(3))).await;
    let window = |before: Option<i64>, after: Option<i64>| {
        filtered(TaskFilter {
            due_before: before.map(later),
            due_after: after.map(later),
            ..TaskFilter::default()
        })
    };
    let ids = |page: TaskPage| page.tasks.into_iter().map(|t| t.id).collect::<Vec<_>>();

    assert_eq!(
        ids(store.list(owner, &window(Some(20), None)).await),
        [early.id]
    );
    assert_eq!(
        ids(store.list(owner, &window(None, Some(20))).await),
        [late.id, middle.id]
    );
    assert_eq!(
        ids(store.list(owner, &window(Some(30), Some(10))).await),
        [middle.id, early.id]
    );
    assert!(
        store
            .list(owner, &window(Some(10), None))
            .await
            .tasks
            .is_empty()
    );
    assert!(
        store
            .list(owner, &window(Some(20), Some(20)))
            .await
            .tasks
            .is_empty()
    );
}

async fn overdue_splits_the_list_at_now(store: Store) {
    let owner = store.user().await;
    let at = later(100);
    let overdue = store
        .stored(Task {
            due_at: Some(later(99)),
            ..task(owner, "overdue", later(0))
        })
        .await;
    let due_now = store
        .stored(Task {
            due_at: Some(at),
            ..task(owner, "due now", later(1))
        })
        .await;
    let done_late = store
        .stored(Task {
            due_at: Some(later(50)),
            ..done(task(owner, "done late", later(2)))
        })
        .await;
    let undated = store.stored(task(owner, "undated", later(3))).await;
    let future = store
        .stored(Task {
            due_at: Some(later(500)),
            ..task(owner, "future", later(4))
        })
        .await;
    let query = |value| {
        filtered(TaskFilter {
            overdue: Some(value),
            ..TaskFilter::default()
        })
    };
    let ids = |page: TaskPage| page.tasks.into_iter().map(|t| t.id).collect::<Vec<_>>();

    let listed = store
        .tasks
        .list_by_owner(owner, &query(true), at)
        .await
        .unwrap();
    assert_eq!(ids(listed), [overdue.id]);
    let listed = store
        .tasks
        .list_by_owner(owner, &query(false), at)
        .await
        .unwrap();
    assert_eq!(
        ids(listed),
        [future.id, undated.id, done_late.id, due_now.id]
    );
    // Later, the task due then is overdue too.
    let listed = store
        .tasks
        .list_by_owner(owner, &query(true), later(101))
        .await
        .unwrap();
    assert_eq!(ids(listed), [due_now.id, overdue.id]);
}

async fn search_is_literal_and_ignores_ascii_case(store: Store) {
    let owner = store.user().await;
    let mut created = 0;
    let mut stored = |text: &str, details: Option<&str>, names: &[&str]| {
        created += 1;
        store.stored(Task {
            description: details.and_then(description),
            labels: labels(names),
            ..task(owner, text, later(created))
        })
    };
    let percent = stored("100% done", None, &[]).await;
    let hundred = stored("100 percent", None, &[]).await;
    let underscore = stored("snake_case", None, &[]).await;
    let snakecase = stored("snakeXcase", None, &[]).await;
    let backslash = stored("C:\\temp", None, &[]).await;
    let plain = stored("C:temp", None, &[]).await;
    let described = stored("gadget", Some("Holds a WIDGET inside"), &[]).await;
    let labelled = stored("shop", None, &["Groceries", "Küche"]).await;
    let shouting = stored("BUY MILK", None, &[]).await;
    let ids = |page: TaskPage| page.tasks.into_iter().map(|t| t.id).collect::<Vec<_>>();
    let found = |text: &'static str| {
        let store = &store;
        async move { ids(store.list(owner, &filtered(search(text))).await) }
    };

    assert_eq!(found("%").await, [percent.id]);
    assert_eq!(found("100%").await, [percent.id]);
    assert_eq!(found("_").await, [underscore.id]);
    assert_eq!(found("e_c").await, [underscore.id]);
    assert_eq!(found("\\").await, [backslash.id]);
    assert_eq!(found(":\\t").await, [backslash.id]);
    assert_eq!(found("widget").await, [described.id]);
    assert_eq!(found("grocer").await, [labelled.id]);
    assert_eq!(found("KÜCHE").await, [labelled.id]);
    assert_eq!(found("buy milk").await, [shouting.id]);
    assert_eq!(found("Buy Milk").await, [shouting.id]);
    assert_eq!(found("100").await, [hundred.id, percent.id]);
    assert_eq!(found("c:").await, [plain.id, backslash.id]);
    assert_eq!(found("snake").await, [snakecase.id, underscore.id]);
    assert!(found("nothing like it").await.is_empty());
}

async fn filters_combine_and_pages_count_only_matches(store: Store) {
    let owner = store.user().await;
    let mut matching = Vec::new();
    for n in 0..7 {
        let open_work = Task {
            labels: labels(&["work"]),
            priority: Priority::High,
            due_at: Some(later(1_000 + n)),
            ..task(owner, &format!("report {n}"), later(n))
        };
        matching.push(store.stored(open_work.clone()).await);
        // Each differs from a match in one condition only.
        store
            .stored(Task {
                id: TaskId::generate(),
                completed: true,
                completed_at: Some(later(n)),
                ..open_work.clone()
            })
            .await;
        store
            .stored(Task {
                id: TaskId::generate(),
                priority: Priority::Low,
                ..open_work.clone()
            })
            .await;
        store
            .stored(Task {
                id: TaskId::generate(),
                labels: labels(&["home"]),
                ..open_work.clone()
            })
            .await;
        store
            .stored(Task {
                id: TaskId::generate(),
                title: title(&format!("memo {n}")),
                ..open_work.clone()
            })
            .await;
        store
            .stored(Task {
                id: TaskId::generate(),
                due_at: None,
                ..open_work
            })
            .await;
    }
    let query = TaskQuery {
        filter: TaskFilter {
            completed: Some(false),
            priorities: vec![Priority::High, Priority::Medium],
            labels: labels(&["Work"]),
            due_after: Some(later(1_000)),
            search: SearchText::parse("REPORT").unwrap(),
            ..TaskFilter::default()
        },
        sort: TaskSort {
            field: SortField::DueAt,
            order: SortOrder::Desc,
        },
        page: None,
    };
    let expected = sorted(matching, query.sort);

    let whole = store.list(owner, &query).await;
    assert_eq!(whole.tasks, expected);
    assert_eq!(whole.total, 7);
    let first = store.list(owner, &paged(&query, 3, None)).await;
    assert_eq!(first.total, 7);
    assert_eq!(store.walk(owner, &query, 3).await, expected);
}

async fn a_cursor_of_another_sort_is_unexpected(store: Store) {
    let owner = store.user().await;
    let task = store.stored(task(owner, "t", later(0))).await;
    let by_title = sort(SortField::Title, SortOrder::Asc);
    let created_position = TaskPosition::of(&task, SortField::CreatedAt);
    let err = store
        .tasks
        .list_by_owner(owner, &paged(&by_title, 2, Some(created_position)), now())
        .await
        .unwrap_err();
    assert!(matches!(err, DomainError::Unexpected(_)), "{err:?}");
}

// --- tasks: writes ------------------------------------------------------------

/// `task` after `patch` as the domain means it, when it changes something
/// at `at` (no older `updated_at` in these tests).
fn patched(task: &Task, patch: &TaskPatch, at: Timestamp) -> Task {
    let mut next = task.clone();
    if let Some(title) = &patch.title {
        next.title = title.clone();
    }
    if let Some(description) = &patch.description {
        next.description = description.clone();
    }
    if let Some(completed) = patch.completed {
        next.completed = completed;
        next.completed_at = match (task.completed, completed) {
            (_, false) => None,
            (true, true) => task.completed_at,
            (false, true) => Some(at),
        };
    }
    if let Some(due_at) = patch.due_at {
        next.due_at = due_at;
    }
    if let Some(priority) = patch.priority {
        next.priority = priority;
    }
    if let Some(labels) = &patch.labels {
        next.labels = labels.clone();
    }
    if next != *task {
        next.updated_at = at;
        next.version = version(task.version.get() + 1);
    }
    next
}

async fn patch_changes_only_the_named_fields(store: Store) {
    let owner = store.user().await;
    let original = store
        .stored(Task {
            description: description("old description"),
            due_at: Some(later(500)),
            priority: Priority::Medium,
            labels: labels(&["work"]),
            ..done(task(owner, "old title", later(0)))
        })
        .await;

    let retitled = store
        .tasks
        .patch_owned(
            original.id,
            owner,
            &TaskPatch {
                title: Some(title("new title")),
                ..TaskPatch::default()
            },
            None,
            later(60),
        )
        .await
        .unwrap()
        .expect("own task is patched");
    assert_eq!(
        retitled,
        Task {
            title: title("new title"),
            updated_at: later(60),
            version: version(2),
            ..original.clone()
        }
    );

    let everything = TaskPatch {
        title: Some(title("newer title")),
        description: Some(None),
        completed: Some(false),
        due_at: Some(None),
        priority: Some(Priority::None),
        labels: Some(Labels::none()),
    };
    let cleared = store
        .tasks
        .patch_owned(original.id, owner, &everything, None, later(61))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cleared, patched(&retitled, &everything, later(61)));
    assert_eq!(cleared.version, version(3));
    assert_eq!(cleared.created_at, original.created_at);
    assert_eq!(
        store.tasks.find_owned(original.id, owner).await.unwrap(),
        Some(cleared)
    );
    assert_eq!(store.label_rows(original.id).await, 0);
}

async fn patch_detects_a_change_field_by_field(store: Store) {
    let owner = store.user().await;
    let mut current = store
        .stored(Task {
            description: description("d"),
            due_at: Some(later(100)),
            priority: Priority::Low,
            labels: labels(&["Work", "home"]),
            ..task(owner, "t", later(0))
        })
        .await;
    let patch = TaskPatch::default;
    let cases: Vec<(&str, TaskPatch, bool)> = vec![
        (
            "same title",
            TaskPatch {
                title: Some(title("t")),
                ..patch()
            },
            false,
        ),
        (
            "other title",
            TaskPatch {
                title: Some(title("u")),
                ..patch()
            },
            true,
        ),
        (
            "title case",
            TaskPatch {
                title: Some(title("U")),
                ..patch()
            },
            true,
        ),
        (
            "same description",
            TaskPatch {
                description: Some(description("d")),
                ..patch()
            },
            false,
        ),
        (
            "other description",
            TaskPatch {
                description: Some(description("e")),
                ..patch()
            },
            true,
        ),
        (
            "description cleared",
            TaskPatch {
                description: Some(None),
                ..patch()
            },
            true,
        ),
        (
            "description still clear",
            TaskPatch {
                description: Some(None),
                ..patch()
            },
            false,
        ),
        (
            "description from none",
            TaskPatch {
                description: Some(description("e")),
                ..patch()
            },
            true,
        ),
        (
            "same state",
            TaskPatch {
                completed: Some(false),
                ..patch()
            },
            false,
        ),
        (
            "done",
            TaskPatch {
                completed: Some(true),
                ..patch()
            },
            true,
        ),
        (
            "still done",
            TaskPatch {
                completed: Some(true),
                ..patch()
            },
            false,
        ),
        (
            "same due date",
            TaskPatch {
                due_at: Some(Some(later(100))),
                ..patch()
            },
            false,
        ),
        (
            "a microsecond later",
            TaskPatch {
                due_at: Some(Some(stamp(
                    T0 + time::Duration::seconds(100) + time::Duration::microseconds(1),
                ))),
                ..patch()
            },
            true,
        ),
        (
            "due date cleared",
            TaskPatch {
                due_at: Some(None),
                ..patch()
            },
            true,
        ),
        (
            "due date still clear",
            TaskPatch {
                due_at: Some(None),
                ..patch()
            },
            false,
        ),
        (
            "due date from none",
            TaskPatch {
                due_at: Some(Some(later(100))),
                ..patch()
            },
            true,
        ),
        (
            "same priority",
            TaskPatch {
                priority: Some(Priority::Low),
                ..patch()
            },
            false,
        ),
        (
            "other priority",
            TaskPatch {
                priority: Some(Priority::High),
                ..patch()
            },
            true,
        ),
        (
            "same labels",
            TaskPatch {
                labels: Some(labels(&["Work", "home"])),
                ..patch()
            },
            false,
        ),
        (
            "labels reordered",
            TaskPatch {
                labels: Some(labels(&["home", "Work"])),
                ..patch()
            },
            true,
        ),
        (
            "label respelled",
            TaskPatch {
                labels: Some(labels(&["HOME", "Work"])),
                ..patch()
            },
            true,
        ),
        (
            "labels cleared",
            TaskPatch {
                labels: Some(Labels::none()),
                ..patch()
            },
            true,
        ),
        (
            "labels still none",
            TaskPatch {
                labels: Some(Labels::none()),
                ..patch()
            },
            false,
        ),
        (
            "not done",
            TaskPatch {
                completed: Some(false),
                ..patch()
            },
            true,
        ),
    ];
    let mut clock = 1;
    for (case, patch, changes) in cases {
        let at = later(clock);
        clock += 1;
        let after = store
            .tasks
            .patch_owned(current.id, owner, &patch, None, at)
            .await
            .unwrap()
            .unwrap();
        let expected = patched(&current, &patch, at);
        assert_eq!(after, expected, "{case}");
        if changes {
            assert_eq!(after.version, version(current.version.get() + 1), "{case}");
            assert_eq!(after.updated_at, at, "{case}");
        } else {
            assert_eq!(after, current, "{case}: a no-op moved something");
        }
        current = after;
    }
    // Every field named with the value it has: nothing moves.
    let same = TaskPatch {
        title: Some(current.title.clone()),
        description: Some(current.description.clone()),
        completed: Some(current.completed),
        due_at: Some(current.due_at),
        priority: Some(current.priority),
        labels: Some(current.labels.clone()),
    };
    let after = store
        .tasks
        .patch_owned(current.id, owner, &same, None, later(clock))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after, current);
}

async fn an_empty_patch_changes_nothing(store: Store) {
    let owner = store.user().await;
    let task = store.stored(task(owner, "t", later(0))).await;
    let after = store
        .tasks
        .patch_owned(task.id, owner, &TaskPatch::default(), None, later(5))
        .await
        .unwrap();
    assert_eq!(after, Some(task.clone()));
    // It still answers only for the owner and a met precondition.
    let stranger = store.user().await;
    let missed = store
        .tasks
        .patch_owned(task.id, stranger, &TaskPatch::default(), None, later(5))
        .await
        .unwrap();
    assert_eq!(missed, None);
    let missed = store
        .tasks
        .patch_owned(
            task.id,
            owner,
            &TaskPatch::default(),
            if_version(&[2]),
            later(5),
        )
        .await
        .unwrap();
    assert_eq!(missed, None);
}

async fn patching_labels_replaces_the_label_rows(store: Store) {
    let owner = store.user().await;
    let task = store
        .stored(Task {
            labels: labels(&["Work", "home"]),
            ..task(owner, "t", later(0))
        })
        .await;
    let with = |name: &str| {
        filtered(TaskFilter {
            labels: labels(&[name]),
            ..TaskFilter::default()
        })
    };
    let relabel = |names: &[&str]| TaskPatch {
        labels: Some(labels(names)),
        ..TaskPatch::default()
    };

    let changed = store
        .tasks
        .patch_owned(
            task.id,
            owner,
            &relabel(&["WORK", "errands"]),
            None,
            later(1),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changed.labels, labels(&["WORK", "errands"]));
    assert_eq!(store.label_rows(task.id).await, 2);
    assert_eq!(store.list(owner, &with("work")).await.total, 1);
    assert_eq!(store.list(owner, &with("errands")).await.total, 1);
    assert_eq!(store.list(owner, &with("home")).await.total, 0);

    // A patch that misses its precondition leaves the rows as they were.
    let missed = store
        .tasks
        .patch_owned(
            task.id,
            owner,
            &relabel(&["other"]),
            if_version(&[1]),
            later(2),
        )
        .await
        .unwrap();
    assert_eq!(missed, None);
    assert_eq!(store.list(owner, &with("other")).await.total, 0);
    assert_eq!(store.list(owner, &with("errands")).await.total, 1);

    store
        .tasks
        .patch_owned(task.id, owner, &relabel(&[]), None, later(3))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.label_rows(task.id).await, 0);
    assert_eq!(store.list(owner, &with("work")).await.total, 0);
}

async fn completed_at_follows_completed(store: Store) {
    let owner = store.user().await;
    let task = store.stored(task(owner, "t", later(0))).await;
    let set = |completed| TaskPatch {
        completed: Some(completed),
        ..TaskPatch::default()
    };
    let patch = |patch: TaskPatch, at| {
        let store = &store;
        async move {
            store
                .tasks
                .patch_owned(task.id, owner, &patch, None, at)
                .await
                .unwrap()
                .unwrap()
        }
    };
    let complete = |change, at| {
        let store = &store;
        async move {
            store
                .tasks
                .change_completion_owned(task.id, owner, change, None, at, None)
                .await
                .unwrap()
                .unwrap()
        }
    };

    // Done by a patch: the time of that change, kept while it stays done,
    // whatever else changes.
    assert_eq!(
        patch(set(true), later(10)).await.completed_at,
        Some(later(10))
    );
    assert_eq!(
        patch(set(true), later(11)).await.completed_at,
        Some(later(10))
    );
    let retitled = patch(
        TaskPatch {
            title: Some(title("u")),
            ..TaskPatch::default()
        },
        later(12),
    )
    .await;
    assert_eq!(retitled.completed_at, Some(later(10)));
    assert_eq!(
        complete(CompletionChange::Set(true), later(13))
            .await
            .completed_at,
        Some(later(10))
    );
    // Undone: none, by either route.
    assert_eq!(patch(set(false), later(14)).await.completed_at, None);
    assert_eq!(
        complete(CompletionChange::Toggle, later(15))
            .await
            .completed_at,
        Some(later(15))
    );
    assert_eq!(
        complete(CompletionChange::Toggle, later(16))
            .await
            .completed_at,
        None
    );
    assert_eq!(
        complete(CompletionChange::Set(true), later(17))
            .await
            .completed_at,
        Some(later(17))
    );
    assert_eq!(
        complete(CompletionChange::Set(false), later(18))
            .await
            .completed_at,
        None
    );
    // Done by a writer with an older clock: the change's own time, which
    // never goes back before the last one.
    let done = complete(CompletionChange::Toggle, later(1)).await;
    assert_eq!(done.updated_at, later(18));
    assert_eq!(done.completed_at, Some(later(18)));
    assert_eq!(done.version, version(9));
}

async fn preconditions_decide_in_the_writing_statement(store: Store) {
    let owner = store.user().await;
    let task = store.stored(task(owner, "t", later(0))).await;
    let retitle = |text: &str| TaskPatch {
        title: Some(title(text)),
        ..TaskPatch::default()
    };

    // The current version, alone or among others, lets the write through.
    let first = store
        .tasks
        .patch_owned(task.id, owner, &retitle("one"), if_version(&[1]), later(1))
        .await
        .unwrap()
        .expect("version 1 matches");
    assert_eq!(first.version, version(2));
    let second = store
        .tasks
        .patch_owned(
            task.id,
            owner,
            &retitle("two"),
            if_version(&[7, 2, 5]),
            later(2),
        )
        .await
        .unwrap()
        .expect("version 2 is in the list");
    assert_eq!(second.version, version(3));

    // Another version, or none at all: nothing is written.
    for precondition in [if_version(&[2]), if_version(&[]), if_version(&[u64::MAX])] {
        assert_eq!(
            store
                .tasks
                .patch_owned(
                    task.id,
                    owner,
                    &retitle("lost"),
                    precondition.clone(),
                    later(3)
                )
                .await
                .unwrap(),
            None,
            "{precondition:?}"
        );
        assert_eq!(
            store
                .tasks
                .change_completion_owned(
                    task.id,
                    owner,
                    CompletionChange::Toggle,
                    precondition.clone(),
                    later(3),
                    None
                )
                .await
                .unwrap(),
            None,
            "{precondition:?}"
        );
        assert!(
            !store
                .tasks
                .delete_owned(task.id, owner, precondition.clone())
                .await
                .unwrap(),
            "{precondition:?}"
        );
    }
    assert_eq!(
        store.tasks.find_owned(task.id, owner).await.unwrap(),
        Some(second.clone())
    );

    let toggled = store
        .tasks
        .change_completion_owned(
            task.id,
            owner,
            CompletionChange::Toggle,
            if_version(&[3]),
            later(4),
            None,
        )
        .await
        .unwrap()
        .expect("version 3 matches");
    assert_eq!((toggled.completed, toggled.version), (true, version(4)));
    // Two writers holding the same version: exactly one wins.
    let patches: Vec<TaskPatch> = (0..2).map(|n| retitle(&format!("racer {n}"))).collect();
    let racing = join_all(patches.iter().map(|patch| {
        store
            .tasks
            .patch_owned(task.id, owner, patch, if_version(&[4]), later(5))
    }))
    .await;
    let winners = racing
        .into_iter()
        .filter(|result| result.as_ref().unwrap().is_some())
        .count();
    assert_eq!(winners, 1);
    assert!(
        store
            .tasks
            .delete_owned(task.id, owner, if_version(&[5]))
            .await
            .unwrap()
    );
    assert!(!store.tasks.exists(task.id).await.unwrap());
}

async fn updated_at_never_moves_backwards(store: Store) {
    let owner = store.user().await;
    let task = store.stored(task(owner, "t", later(10))).await;
    let retitle = |text: &str| TaskPatch {
        title: Some(title(text)),
        ..TaskPatch::default()
    };

    let first = store
        .tasks
        .patch_owned(task.id, owner, &retitle("first"), None, later(20))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.updated_at, later(20));

    // A writer with an older clock still changes the text, not the time.
    let second = store
        .tasks
        .patch_owned(task.id, owner, &retitle("second"), None, later(15))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.title, title("second"));
    assert_eq!(second.updated_at, later(20));
    assert_eq!(second.version, version(3));

    // Nor can an instant before creation pull it below `created_at`.
    let toggled = store
        .tasks
        .change_completion_owned(
            task.id,
            owner,
            CompletionChange::Toggle,
            None,
            later(0),
            None,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(toggled.updated_at, later(20));
    assert_eq!(toggled.created_at, later(10));
}

async fn updated_at_compares_instants_within_one_second(store: Store) {
    let owner = store.user().await;
    let created = stamp(datetime!(2026-02-06 10:15:23 UTC));
    let task = store.stored(task(owner, "t", created)).await;
    let later_in_second = stamp(datetime!(2026-02-06 10:15:23.500_01 UTC));
    let earlier_in_second = stamp(datetime!(2026-02-06 10:15:23.5 UTC));

    for at in [later_in_second, earlier_in_second] {
        store
            .tasks
            .change_completion_owned(task.id, owner, CompletionChange::Toggle, None, at, None)
            .await
            .unwrap();
    }
    let found = store
        .tasks
        .find_owned(task.id, owner)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.updated_at, later_in_second);
}

async fn toggling_twice_restores_the_state(store: Store) {
    let owner = store.user().await;
    let task = store.stored(task(owner, "t", later(0))).await;

    let once = store
        .tasks
        .change_completion_owned(
            task.id,
            owner,
            CompletionChange::Toggle,
            None,
            later(1),
            None,
        )
        .await
        .unwrap()
        .unwrap();
    assert!(once.completed);
    assert_eq!(once.updated_at, later(1));
    assert_eq!(once.version, version(2));
    let twice = store
        .tasks
        .change_completion_owned(
            task.id,
            owner,
            CompletionChange::Toggle,
            None,
            later(2),
            None,
        )
        .await
        .unwrap()
        .unwrap();
    assert!(!twice.completed);
    assert_eq!(twice.updated_at, later(2));
    assert_eq!(twice.version, version(3));
}

async fn setting_completed_is_idempotent(store: Store) {
    let owner = store.user().await;
    let task = store.stored(task(owner, "t", later(0))).await;

    let mut states = Vec::new();
    for second in 1..=2 {
        let set = store
            .tasks
            .change_completion_owned(
                task.id,
                owner,
                CompletionChange::Set(true),
                None,
                later(second),
                None,
            )
            .await
            .unwrap()
            .unwrap();
        assert!(set.completed);
        states.push((set.updated_at, set.version));
    }
    assert_eq!(
        states[0],
        (later(1), version(2)),
        "the first set is a change"
    );
    assert_eq!(
        states[1],
        (later(1), version(2)),
        "setting the same state again is not"
    );
    let found = store
        .tasks
        .find_owned(task.id, owner)
        .await
        .unwrap()
        .unwrap();
    assert!(found.completed);
    let unset = store
        .tasks
        .change_completion_owned(
            task.id,
            owner,
            CompletionChange::Set(false),
            None,
            later(3),
            None,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (unset.completed, unset.updated_at, unset.version),
        (false, later(3), version(3))
    );
}

async fn fifty_concurrent_toggles_lose_none(store: Store) {
    let owner = store.user().await;
    let task = store.stored(task(owner, "t", later(0))).await;

    let toggles = (1..=50).map(|second| {
        store.tasks.change_completion_owned(
            task.id,
            owner,
            CompletionChange::Toggle,
            None,
            later(second),
            None,
        )
    });
    let states: Vec<bool> = join_all(toggles)
        .await
        .into_iter()
        .map(|result| result.unwrap().expect("own task").completed)
        .collect();

    // Each toggle saw the one before it: the states alternate, whatever
    // the order they ran in.
    assert_eq!(states.iter().filter(|completed| **completed).count(), 25);
    let found = store
        .tasks
        .find_owned(task.id, owner)
        .await
        .unwrap()
        .unwrap();
    assert!(!found.completed);
    assert_eq!(found.completed_at, None);
    assert_eq!(found.updated_at, later(50));
    assert_eq!(found.version, version(51));
}

async fn another_owner_can_change_or_delete_nothing(store: Store) {
    let owner = store.user().await;
    let stranger = store.user().await;
    let task = store
        .stored(Task {
            labels: labels(&["mine"]),
            ..task(owner, "mine", later(0))
        })
        .await;

    let patch = store
        .tasks
        .patch_owned(
            task.id,
            stranger,
            &TaskPatch {
                title: Some(title("theirs")),
                completed: Some(true),
                labels: Some(labels(&["theirs"])),
                ..TaskPatch::default()
            },
            None,
            later(1),
        )
        .await
        .unwrap();
    assert_eq!(patch, None);
    let toggle = store
        .tasks
        .change_completion_owned(
            task.id,
            stranger,
            CompletionChange::Toggle,
            None,
            later(2),
            None,
        )
        .await
        .unwrap();
    assert_eq!(toggle, None);
    assert!(
        !store
            .tasks
            .delete_owned(task.id, stranger, None)
            .await
            .unwrap()
    );
    assert_eq!(store.tasks.delete_completed(stranger).await.unwrap(), 0);

    assert_eq!(
        store.tasks.find_owned(task.id, owner).await.unwrap(),
        Some(task.clone())
    );
    assert_eq!(store.label_rows(task.id).await, 1);
    assert_eq!(store.task_count(owner).await, 1);
    assert_eq!(store.task_count(stranger).await, 0);
}

async fn delete_owned_deletes_once(store: Store) {
    let owner = store.user().await;
    let task = store
        .stored(Task {
            labels: labels(&["a", "b"]),
            ..task(owner, "t", later(0))
        })
        .await;

    assert!(
        store
            .tasks
            .delete_owned(task.id, owner, None)
            .await
            .unwrap()
    );
    assert!(
        !store
            .tasks
            .delete_owned(task.id, owner, None)
            .await
            .unwrap()
    );
    assert_eq!(store.tasks.find_owned(task.id, owner).await.unwrap(), None);
    assert!(!store.tasks.exists(task.id).await.unwrap());
    assert_eq!(store.label_rows(task.id).await, 0);
}

// --- idempotency keys -----------------------------------------------------------

fn after(at: Timestamp, duration: time::Duration) -> Timestamp {
    stamp(at.as_datetime() + duration)
}

async fn a_key_is_claimed_once_and_then_in_use(store: Store) {
    let owner = store.user().await;
    let first = store.claimed(owner, "create-1", 1, later(0)).await;
    // Until the first request finishes or gives up, a retry must wait.
    for at in [
        later(0),
        after(later(0), CLAIM_TIMEOUT - time::Duration::microseconds(1)),
    ] {
        assert_eq!(
            store.claim(owner, "create-1", 1, at).await,
            ClaimOutcome::InUse
        );
    }
    // Another key is another request.
    let second = store.claimed(owner, "create-2", 1, later(0)).await;
    assert_ne!(first.claim.token, second.claim.token);
}

async fn a_recorded_answer_is_replayed(store: Store) {
    let owner = store.user().await;
    let receipt = store.claimed(owner, "create", 7, later(0)).await;
    let task = task(owner, "once", later(0));
    store
        .tasks
        .insert(&task, MAX_TASKS, Some(receipt))
        .await
        .unwrap();

    // Replayed as recorded, status, headers and body, however late within
    // the key's lifetime, and even after the task changed.
    store
        .tasks
        .delete_owned(task.id, owner, None)
        .await
        .unwrap();
    for at in [
        later(1),
        after(
            later(0),
            IDEMPOTENCY_KEY_TTL - time::Duration::microseconds(1),
        ),
    ] {
        assert_eq!(
            store.claim(owner, "create", 7, at).await,
            ClaimOutcome::Replay(echoed(&task))
        );
    }
    // At the end of its lifetime the key is forgotten.
    let expiry = after(later(0), IDEMPOTENCY_KEY_TTL);
    store.claimed(owner, "create", 7, expiry).await;
}

async fn a_key_used_for_another_request_is_reused(store: Store) {
    let owner = store.user().await;
    // While the first request runs, and after it finished.
    store.claimed(owner, "running", 1, later(0)).await;
    assert_eq!(
        store.claim(owner, "running", 2, later(1)).await,
        ClaimOutcome::Reused
    );

    let receipt = store.claimed(owner, "finished", 1, later(0)).await;
    store
        .tasks
        .insert(&task(owner, "t", later(0)), MAX_TASKS, Some(receipt))
        .await
        .unwrap();
    assert_eq!(
        store.claim(owner, "finished", 2, later(1)).await,
        ClaimOutcome::Reused
    );
    // Even an abandoned claim of another request is not this one's to take.
    assert_eq!(
        store
            .claim(owner, "running", 2, after(later(0), CLAIM_TIMEOUT * 2))
            .await,
        ClaimOutcome::Reused
    );
}

async fn keys_belong_to_one_user(store: Store) {
    let ada = store.user().await;
    let bob = store.user().await;
    let receipt = store.claimed(ada, "shared-key", 1, later(0)).await;
    store
        .tasks
        .insert(&task(ada, "ada's", later(0)), MAX_TASKS, Some(receipt))
        .await
        .unwrap();
    // Bob's key of the same name is his own, whatever Ada did with hers.
    let bobs = store.claimed(bob, "shared-key", 2, later(1)).await;
    assert_eq!(bobs.claim.owner, bob);
    // And a receipt records only under its own user's key.
    let task = task(bob, "bob's", later(1));
    store
        .tasks
        .insert(&task, MAX_TASKS, Some(bobs))
        .await
        .unwrap();
    assert_eq!(
        store.claim(bob, "shared-key", 2, later(2)).await,
        ClaimOutcome::Replay(echoed(&task))
    );
    assert!(matches!(
        store.claim(ada, "shared-key", 1, later(2)).await,
        ClaimOutcome::Replay(response) if response.body == "ada's"
    ));
}

async fn twenty_concurrent_claims_of_one_key_claim_it_once(store: Store) {
    let owner = store.user().await;
    let key = idempotency_key("racing");
    let fingerprint = request(3);
    let outcomes =
        join_all((0..20).map(|_| store.keys.claim(owner, &key, &fingerprint, later(0)))).await;
    let mut claimed = 0;
    for outcome in outcomes {
        match outcome.unwrap() {
            ClaimOutcome::Claimed(_) => claimed += 1,
            ClaimOutcome::InUse => {}
            other => panic!("expected Claimed or InUse, got {other:?}"),
        }
    }
    assert_eq!(claimed, 1);
    assert_eq!(
        store
            .count("SELECT COUNT(*) FROM idempotency_keys", vec![])
            .await,
        1
    );
}

async fn an_abandoned_claim_is_taken_over_by_one_request(store: Store) {
    let owner = store.user().await;
    let abandoned = store.claimed(owner, "stale", 1, later(0)).await;
    let deadline = after(later(0), CLAIM_TIMEOUT);

    // Two retries find it abandoned at once: one takes it over.
    let key = idempotency_key("stale");
    let fingerprint = request(1);
    let outcomes =
        join_all((0..2).map(|_| store.keys.claim(owner, &key, &fingerprint, deadline))).await;
    let mut takers = Vec::new();
    for outcome in outcomes {
        match outcome.unwrap() {
            ClaimOutcome::Claimed(claim) => takers.push(claim),
            ClaimOutcome::InUse => {}
            other => panic!("expected Claimed or InUse, got {other:?}"),
        }
    }
    assert_eq!(takers.len(), 1);
    let taker = takers.remove(0);
    assert_ne!(taker.token, abandoned.claim.token);
    // The taker's claim is fresh: a minute less a moment later, in use.
    assert_eq!(
        store
            .claim(
                owner,
                "stale",
                1,
                after(deadline, CLAIM_TIMEOUT - time::Duration::microseconds(1))
            )
            .await,
        ClaimOutcome::InUse
    );
    // The taker records; the one that was too slow cannot.
    let task = task(owner, "taken over", later(1));
    store
        .tasks
        .insert(
            &task,
            MAX_TASKS,
            Some(Receipt {
                claim: taker,
                recorder: Arc::new(EchoRecorder),
            }),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .claim(owner, "stale", 1, after(deadline, CLAIM_TIMEOUT * 5))
            .await,
        ClaimOutcome::Replay(echoed(&task))
    );
}

async fn an_expired_key_is_free_again(store: Store) {
    let owner = store.user().await;
    let receipt = store.claimed(owner, "old", 1, later(0)).await;
    store
        .tasks
        .insert(&task(owner, "long ago", later(0)), MAX_TASKS, Some(receipt))
        .await
        .unwrap();
    store.claimed(owner, "old-pending", 1, later(0)).await;
    let expiry = after(later(0), IDEMPOTENCY_KEY_TTL);

    // Expired, it counts as unused, whatever request it was for.
    let again = store.claimed(owner, "old", 2, expiry).await;
    store.claimed(owner, "old-pending", 2, expiry).await;
    // The new claims live a full term from now.
    let retry_at = after(expiry, CLAIM_TIMEOUT - time::Duration::microseconds(1));
    assert_eq!(
        store.claim(owner, "old", 2, retry_at).await,
        ClaimOutcome::InUse
    );
    let task = task(owner, "anew", expiry);
    store
        .tasks
        .insert(&task, MAX_TASKS, Some(again))
        .await
        .unwrap();
    let near_end = after(
        expiry,
        IDEMPOTENCY_KEY_TTL - time::Duration::microseconds(1),
    );
    assert_eq!(
        store.claim(owner, "old", 2, near_end).await,
        ClaimOutcome::Replay(echoed(&task))
    );
    assert_eq!(
        store.claim(owner, "old-pending", 3, expiry).await,
        ClaimOutcome::Reused
    );
}

async fn release_frees_only_an_unfinished_claim_it_holds(store: Store) {
    let owner = store.user().await;
    // Given back: the key is unused again, for any request.
    let given_back = store.claimed(owner, "failed", 1, later(0)).await;
    store.keys.release(&given_back.claim).await.unwrap();
    let retry = store.claimed(owner, "failed", 2, later(1)).await;
    // A release by the holder of an older claim changes nothing.
    store.keys.release(&given_back.claim).await.unwrap();
    assert_eq!(
        store.claim(owner, "failed", 2, later(2)).await,
        ClaimOutcome::InUse
    );

    // Nor can a finished claim be given back.
    let task = task(owner, "done", later(2));
    store
        .tasks
        .insert(&task, MAX_TASKS, Some(retry.clone()))
        .await
        .unwrap();
    store.keys.release(&retry.claim).await.unwrap();
    assert_eq!(
        store.claim(owner, "failed", 2, later(3)).await,
        ClaimOutcome::Replay(echoed(&task))
    );
}

async fn purge_removes_only_expired_keys(store: Store) {
    let owner = store.user().await;
    let other = store.user().await;
    store.claimed(owner, "oldest", 1, later(0)).await;
    let receipt = store.claimed(other, "old", 1, later(10)).await;
    store
        .tasks
        .insert(&task(other, "t", later(10)), MAX_TASKS, Some(receipt))
        .await
        .unwrap();
    store.claimed(owner, "young", 1, later(20)).await;

    let purge_at = after(later(10), IDEMPOTENCY_KEY_TTL);
    assert_eq!(store.keys.purge_expired(purge_at).await.unwrap(), 2);
    assert_eq!(
        store
            .count("SELECT COUNT(*) FROM idempotency_keys", vec![])
            .await,
        1
    );
    // The young key is still there, claimed for its own request.
    assert_eq!(
        store.claim(owner, "young", 2, purge_at).await,
        ClaimOutcome::Reused
    );
    assert_eq!(store.keys.purge_expired(purge_at).await.unwrap(), 0);
    assert_eq!(
        store
            .keys
            .purge_expired(after(later(20), IDEMPOTENCY_KEY_TTL))
            .await
            .unwrap(),
        1
    );
}

async fn a_receipt_whose_claim_was_taken_over_rolls_the_insert_back(store: Store) {
    let owner = store.user().await;
    let slow = store.claimed(owner, "slow", 1, later(0)).await;
    // The slow request is taken for dead and its claim taken over.
    let taker = store
        .claimed(owner, "slow", 1, after(later(0), CLAIM_TIMEOUT))
        .await;

    let late = Task {
        labels: labels(&["work"]),
        ..task(owner, "late", later(0))
    };
    let err = store
        .tasks
        .insert(&late, MAX_TASKS, Some(slow.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, DomainError::IdempotencyKeyInUse), "{err:?}");
    // Nothing of it stays: no task, no labels, no count.
    assert!(!store.tasks.exists(late.id).await.unwrap());
    assert_eq!(store.label_rows(late.id).await, 0);
    assert_eq!(store.task_count(owner).await, 0);

    // A receipt recorded once cannot record again.
    let task = task(owner, "on time", later(1));
    store
        .tasks
        .insert(&task, MAX_TASKS, Some(taker.clone()))
        .await
        .unwrap();
    let twice = task_like(owner);
    let err = store
        .tasks
        .insert(&twice, MAX_TASKS, Some(taker))
        .await
        .unwrap_err();
    assert!(matches!(err, DomainError::IdempotencyKeyInUse), "{err:?}");
    assert!(!store.tasks.exists(twice.id).await.unwrap());
    assert_eq!(store.task_count(owner).await, 1);
    assert_eq!(
        store.claim(owner, "slow", 1, later(100)).await,
        ClaimOutcome::Replay(echoed(&task))
    );
}

fn task_like(owner: UserId) -> Task {
    task(owner, "again", later(2))
}

async fn a_completion_records_its_answer_or_rolls_back(store: Store) {
    let owner = store.user().await;
    let task = store.stored(task(owner, "t", later(0))).await;
    let receipt = store.claimed(owner, "complete", 1, later(1)).await;
    let done = store
        .tasks
        .change_completion_owned(
            task.id,
            owner,
            CompletionChange::Toggle,
            None,
            later(1),
            Some(receipt),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(done.completed);
    assert_eq!(
        store.claim(owner, "complete", 1, later(2)).await,
        ClaimOutcome::Replay(echoed(&done))
    );

    // A claim taken over meanwhile: the toggle is undone with it.
    let slow = store.claimed(owner, "complete-again", 1, later(3)).await;
    store
        .claimed(owner, "complete-again", 1, after(later(3), CLAIM_TIMEOUT))
        .await;
    let err = store
        .tasks
        .change_completion_owned(
            task.id,
            owner,
            CompletionChange::Toggle,
            None,
            later(4),
            Some(slow),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, DomainError::IdempotencyKeyInUse), "{err:?}");
    assert_eq!(
        store.tasks.find_owned(task.id, owner).await.unwrap(),
        Some(done)
    );
    // A miss records nothing: the key stays the request's to give back.
    let missing = store.claimed(owner, "missing", 1, later(5)).await;
    let missed = store
        .tasks
        .change_completion_owned(
            TaskId::generate(),
            owner,
            CompletionChange::Toggle,
            None,
            later(5),
            Some(missing.clone()),
        )
        .await
        .unwrap();
    assert_eq!(missed, None);
    assert_eq!(
        store.claim(owner, "missing", 1, later(6)).await,
        ClaimOutcome::InUse
    );
    store.keys.release(&missing.claim).await.unwrap();
    store.claimed(owner, "missing", 1, later(7)).await;
}

// --- users ------------------------------------------------------------------

async fn a_taken_email_is_refused(store: Store) {
    let first = new_user(UserId::generate(), "ada@example.io");
    let inserted = store.users.insert(&first).await.unwrap();
    assert_eq!(inserted.id, first.id);
    assert_eq!(inserted.email, first.email);
    assert_eq!(inserted.created_at, first.created_at);
    assert_eq!(inserted.last_signin_at, None);
    assert_eq!(
        store.users.find_by_id(first.id).await.unwrap(),
        Some(inserted)
    );

    // The domain normalises case before the repository sees the address.
    let second = new_user(UserId::generate(), "  ADA@Example.IO ");
    let err = store.users.insert(&second).await.unwrap_err();
    assert!(matches!(err, DomainError::EmailTaken), "{err:?}");
    assert_eq!(store.users.find_by_id(second.id).await.unwrap(), None);
}

async fn twenty_concurrent_sign_ups_for_one_email_succeed_once(store: Store) {
    let sign_ups: Vec<NewUser> = (0..20)
        .map(|_| new_user(UserId::generate(), "race@example.io"))
        .collect();
    let results = join_all(sign_ups.iter().map(|user| store.users.insert(user))).await;

    let mut successes = 0;
    for result in results {
        match result {
            Ok(_) => successes += 1,
            Err(DomainError::EmailTaken) => {}
            Err(other) => panic!("expected EmailTaken, got {other:?}"),
        }
    }
    assert_eq!(successes, 1);
}

async fn record_sign_in_sets_last_signin_at(store: Store) {
    let id = store.user().await;
    let at = stamp(datetime!(2026-02-07 09:00:00.654_321 UTC));

    let user = store.users.record_sign_in(id, at).await.unwrap();
    assert_eq!(user.id, id);
    assert_eq!(user.last_signin_at, Some(at));
    assert_eq!(store.users.find_by_id(id).await.unwrap(), Some(user));
}

async fn an_earlier_sign_in_does_not_move_last_signin_at_back(store: Store) {
    let id = store.user().await;
    let newer = stamp(datetime!(2026-02-07 09:00:00.500_01 UTC));
    let older = stamp(datetime!(2026-02-07 09:00:00.5 UTC));

    store.users.record_sign_in(id, newer).await.unwrap();
    let user = store.users.record_sign_in(id, older).await.unwrap();
    assert_eq!(user.last_signin_at, Some(newer));
}

async fn record_sign_in_of_an_unknown_user_is_user_not_found(store: Store) {
    let err = store
        .users
        .record_sign_in(UserId::generate(), later(0))
        .await
        .unwrap_err();
    assert!(matches!(err, DomainError::UserNotFound), "{err:?}");
}

async fn find_credentials_returns_id_and_hash(store: Store) {
    let user = new_user(UserId::generate(), "grace@example.io");
    store.users.insert(&user).await.unwrap();

    let credentials = store
        .users
        .find_credentials(&user.email)
        .await
        .unwrap()
        .expect("registered email");
    assert_eq!(credentials.user_id, user.id);
    assert_eq!(credentials.password_hash, user.password_hash);

    let unknown = Email::parse("nobody@example.io").unwrap();
    assert_eq!(store.users.find_credentials(&unknown).await.unwrap(), None);
}

// --- schema -----------------------------------------------------------------

async fn deleting_a_user_deletes_their_tasks_labels_and_keys(store: Store) {
    let owner = store.user().await;
    let other = store.user().await;
    let doomed = store
        .stored(Task {
            labels: labels(&["work"]),
            ..task(owner, "doomed", later(0))
        })
        .await;
    store.claimed(owner, "key", 1, later(0)).await;
    let kept = store
        .stored(Task {
            labels: labels(&["work"]),
            ..task(other, "kept", later(0))
        })
        .await;
    store.claimed(other, "key", 1, later(0)).await;

    let deleted = store
        .raw(
            "DELETE FROM users WHERE id = $1",
            vec![owner.as_uuid().into()],
        )
        .await;
    assert_eq!(deleted, 1);

    assert!(!store.tasks.exists(doomed.id).await.unwrap());
    assert_eq!(store.label_rows(doomed.id).await, 0);
    assert!(store.tasks.exists(kept.id).await.unwrap());
    assert_eq!(store.label_rows(kept.id).await, 1);
    assert_eq!(
        store
            .count("SELECT COUNT(*) FROM idempotency_keys", vec![])
            .await,
        1
    );
}

async fn a_stored_row_that_breaks_a_domain_rule_is_unexpected(store: Store) {
    let owner = store.user().await;
    let task = store.stored(task(owner, "t", later(0))).await;
    // Untrimmed: the domain never writes such a title.
    store
        .raw(
            "UPDATE tasks SET title = $1 WHERE id = $2",
            vec!["  padded  ".into(), task.id.as_uuid().into()],
        )
        .await;

    let err = store.tasks.find_owned(task.id, owner).await.unwrap_err();
    assert!(matches!(err, DomainError::Unexpected(_)), "{err:?}");
    let err = store
        .tasks
        .list_by_owner(owner, &TaskQuery::default(), now())
        .await
        .unwrap_err();
    assert!(matches!(err, DomainError::Unexpected(_)), "{err:?}");

    // Nor do labels, priorities or versions the domain never writes.
    for (sql, value) in [
        (
            "UPDATE tasks SET title = 't', labels = $1 WHERE id = $2",
            Value::from("a\u{1f}A"),
        ),
        (
            "UPDATE tasks SET labels = '', priority = $1 WHERE id = $2",
            Value::from(9i16),
        ),
        (
            "UPDATE tasks SET priority = 0, version = $1 WHERE id = $2",
            Value::from(0i64),
        ),
    ] {
        store.raw(sql, vec![value, task.id.as_uuid().into()]).await;
        let err = store.tasks.find_owned(task.id, owner).await.unwrap_err();
        assert!(matches!(err, DomainError::Unexpected(_)), "{sql}: {err:?}");
    }
}

async fn a_closed_pool_is_unavailable(store: Store) {
    let owner = store.user().await;
    store.db.close().await.unwrap();

    let err = store
        .tasks
        .list_by_owner(owner, &TaskQuery::default(), now())
        .await
        .unwrap_err();
    assert!(matches!(err, DomainError::Unavailable(_)), "{err:?}");
    let err = store
        .tasks
        .insert(&task(owner, "t", later(0)), MAX_TASKS, None)
        .await
        .unwrap_err();
    assert!(matches!(err, DomainError::Unavailable(_)), "{err:?}");
    let err = store
        .keys
        .claim(owner, &idempotency_key("k"), &request(1), later(0))
        .await
        .unwrap_err();
    assert!(matches!(err, DomainError::Unavailable(_)), "{err:?}");
    let err = store.users.find_by_id(owner).await.unwrap_err();
    assert!(matches!(err, DomainError::Unavailable(_)), "{err:?}");
    assert!(!is_ready(&store.db).await);
}

async fn migrations_round_trip_down_and_up(store: Store) {
    let owner = store.user().await;
    store.stored(task(owner, "t", later(0))).await;
    let schema = SchemaManager::new(store.db.connection());

    Migrator::down(store.db.connection(), None).await.unwrap();
    assert!(!schema.has_table("tasks").await.unwrap());
    assert!(!schema.has_table("users").await.unwrap());
    assert!(!schema.has_table("task_labels").await.unwrap());
    assert!(!schema.has_table("idempotency_keys").await.unwrap());
    assert!(!schema.has_table("task_tombstones").await.unwrap());
    let err = store
        .tasks
        .list_by_owner(owner, &TaskQuery::default(), now())
        .await
        .unwrap_err();
    assert!(matches!(err, DomainError::Unexpected(_)), "{err:?}");

    Migrator::up(store.db.connection(), None).await.unwrap();
    assert!(schema.has_table("tasks").await.unwrap());
    assert!(
        store
            .list(owner, &TaskQuery::default())
            .await
            .tasks
            .is_empty()
    );
    let owner = store.user().await;
    let task = store
        .stored(Task {
            labels: labels(&["again"]),
            ..task(owner, "again", later(0))
        })
        .await;
    assert_eq!(
        store.tasks.find_owned(task.id, owner).await.unwrap(),
        Some(task)
    );
}

/// How many migrations to roll back to undo the front-end migration: it
/// and every one after it.
fn steps_back_past_the_front_end_migration() -> u32 {
    let migrations = Migrator::migrations();
    let position = migrations
        .iter()
        .position(|migration| migration.name() == "m20261203_000003_front_end_tasks")
        .expect("the front-end migration is listed");
    u32::try_from(migrations.len() - position).unwrap()
}

/// Steps back to the identity migration's schema, stores users and tasks
/// there as the service of that time did, and applies the front-end
/// migration over them: every row is kept, done tasks were done when they
/// last changed, the rest gets the defaults, and each user's count is
/// their number of tasks.
async fn the_front_end_migration_gives_existing_rows_defaults_and_counts(store: Store) {
    Migrator::down(
        store.db.connection(),
        Some(steps_back_past_the_front_end_migration()),
    )
    .await
    .unwrap();
    let schema = SchemaManager::new(store.db.connection());
    assert!(!schema.has_table("task_labels").await.unwrap());
    assert!(!schema.has_column("tasks", "version").await.unwrap());

    let owner = store.user().await;
    let other = store.user().await;
    let idle = store.user().await;
    let before = [
        Task {
            description: description("details"),
            ..task(owner, "open", later(1))
        },
        Task {
            completed: true,
            updated_at: later(30),
            ..task(owner, "done", later(2))
        },
        Task {
            completed: true,
            ..task(owner, "done at once", later(3))
        },
        task(other, "theirs", later(4)),
    ];
    for task in &before {
        store.stored_before_front_end(task).await;
    }

    Migrator::up(store.db.connection(), None).await.unwrap();

    // What the tasks read as now: the new fields from the old ones.
    let expected: Vec<Task> = before
        .iter()
        .map(|task| Task {
            completed_at: task.completed.then_some(task.updated_at),
            ..task.clone()
        })
        .collect();
    let listed = store
        .list(owner, &sort(SortField::CreatedAt, SortOrder::Asc))
        .await;
    assert_eq!(listed.tasks, expected[..3]);
    assert!(listed.tasks.iter().all(|task| {
        task.version == TaskVersion::FIRST
            && task.priority == Priority::None
            && task.labels.is_empty()
            && task.due_at.is_none()
    }));
    assert_eq!(
        store.list(other, &TaskQuery::default()).await.tasks,
        expected[3..]
    );
    assert_eq!(store.task_count(owner).await, 3);
    assert_eq!(store.task_count(other).await, 1);
    assert_eq!(store.task_count(idle).await, 0);
    // The counts hold the limit from the first create on.
    let err = store
        .tasks
        .insert(&task(owner, "fourth", later(5)), 3, None)
        .await
        .unwrap_err();
    assert!(matches!(err, DomainError::TaskLimitReached), "{err:?}");
    store
        .tasks
        .insert(&task(other, "second", later(5)), 2, None)
        .await
        .unwrap();
    // The new indexes and tables are there and work.
    for index in [
        "idx_tasks_user_updated_id",
        "idx_tasks_user_due_id",
        "idx_tasks_user_priority_id",
        "idx_tasks_user_title_id",
    ] {
        assert!(schema.has_index("tasks", index).await.unwrap(), "{index}");
    }
    assert!(
        schema
            .has_index("task_labels", "idx_task_labels_user_key")
            .await
            .unwrap()
    );
    assert!(
        schema
            .has_index("idempotency_keys", "idx_idempotency_keys_expires_at")
            .await
            .unwrap()
    );
    let by_title = store
        .list(owner, &sort(SortField::Title, SortOrder::Asc))
        .await;
    assert_eq!(by_title.tasks[0].title, title("done"));
}

/// Rolling the front-end migration back keeps every task and user (with
/// the old columns only), and applying it again gives them the defaults.
async fn the_front_end_migration_rolls_back_and_forward(store: Store) {
    let owner = store.user().await;
    let rich = store
        .stored(Task {
            description: description("d"),
            due_at: Some(later(100)),
            priority: Priority::High,
            labels: labels(&["work"]),
            ..done(task(owner, "rich", later(0)))
        })
        .await;
    let receipt = store.claimed(owner, "k", 1, later(1)).await;
    let plain = task(owner, "plain", later(1));
    store
        .tasks
        .insert(&plain, MAX_TASKS, Some(receipt))
        .await
        .unwrap();
    store
        .tasks
        .patch_owned(
            rich.id,
            owner,
            &TaskPatch {
                title: Some(title("richer")),
                ..TaskPatch::default()
            },
            None,
            later(2),
        )
        .await
        .unwrap()
        .unwrap();

    Migrator::down(
        store.db.connection(),
        Some(steps_back_past_the_front_end_migration()),
    )
    .await
    .unwrap();
    let schema = SchemaManager::new(store.db.connection());
    assert!(!schema.has_table("task_labels").await.unwrap());
    assert!(!schema.has_table("idempotency_keys").await.unwrap());
    for column in ["completed_at", "due_at", "priority", "labels", "version"] {
        assert!(
            !schema.has_column("tasks", column).await.unwrap(),
            "{column}"
        );
    }
    assert!(!schema.has_column("users", "task_count").await.unwrap());
    assert!(
        !schema
            .has_index("tasks", "idx_tasks_user_title_id")
            .await
            .unwrap()
    );
    assert_eq!(store.count("SELECT COUNT(*) FROM tasks", vec![]).await, 2);
    assert_eq!(
        store
            .count(
                "SELECT COUNT(*) FROM tasks WHERE title = $1 AND description = $2",
                vec!["richer".into(), "d".into()]
            )
            .await,
        1
    );
    assert!(store.users.find_by_id(owner).await.unwrap().is_some());

    Migrator::up(store.db.connection(), None).await.unwrap();
    let listed = store
        .list(owner, &sort(SortField::CreatedAt, SortOrder::Asc))
        .await;
    let richer = Task {
        id: rich.id,
        title: title("richer"),
        description: description("d"),
        completed: true,
        completed_at: Some(later(2)),
        updated_at: later(2),
        ..task(owner, "x", later(0))
    };
    assert_eq!(listed.tasks, vec![richer, plain]);
    assert_eq!(store.task_count(owner).await, 2);
    // The key is gone with its table: the same request is new again.
    store.claimed(owner, "k", 1, later(3)).await;
}

// --- external identities ------------------------------------------------------

async fn an_identity_is_provisioned_once_and_found_again(store: Store) {
    assert_eq!(
        store
            .identities
            .find_user(&identity("q2T9x"))
            .await
            .unwrap(),
        None
    );
    let first = new_external_user("q2T9x", "ada@example.io");

    let created = match store.identities.insert_linked_user(&first).await.unwrap() {
        Provisioned::Created(user) => user,
        other => panic!("expected Created, got {other:?}"),
    };
    assert_eq!(created.id, first.id);
    assert_eq!(created.email, first.email);
    assert_eq!(created.created_at, first.created_at);
    assert_eq!(created.last_signin_at, None);
    assert_eq!(
        store
            .identities
            .find_user(&identity("q2T9x"))
            .await
            .unwrap(),
        Some(created.clone())
    );
    assert_eq!(
        store.users.find_by_id(first.id).await.unwrap(),
        Some(created)
    );

    let second = new_external_user("q2T9x", "ada@example.io");
    assert_eq!(
        store.identities.insert_linked_user(&second).await.unwrap(),
        Provisioned::AlreadyLinked
    );
    // The loser's user row went with its rolled-back transaction.
    assert_eq!(store.users.find_by_id(second.id).await.unwrap(), None);
    assert_eq!(store.count("SELECT COUNT(*) FROM users", vec![]).await, 1);
}

async fn twenty_concurrent_provisions_of_one_identity_create_one_user(store: Store) {
    let attempts: Vec<NewExternalUser> = (0..20)
        .map(|_| new_external_user("racer", "racer@example.io"))
        .collect();
    let results = join_all(
        attempts
            .iter()
            .map(|user| store.identities.insert_linked_user(user)),
    )
    .await;

    let mut created = Vec::new();
    for result in results {
        match result {
            Ok(Provisioned::Created(user)) => created.push(user),
            Ok(Provisioned::AlreadyLinked) => {}
            Err(other) => panic!("expected Created or AlreadyLinked, got {other:?}"),
        }
    }
    assert_eq!(created.len(), 1);
    assert_eq!(store.count("SELECT COUNT(*) FROM users", vec![]).await, 1);
    assert_eq!(
        store
            .count("SELECT COUNT(*) FROM user_identities", vec![])
            .await,
        1
    );
    assert_eq!(
        store
            .identities
            .find_user(&identity("racer"))
            .await
            .unwrap(),
        Some(created.remove(0))
    );
}

async fn identities_are_compared_exactly(store: Store) {
    store.external_user("AbC", "one@example.io").await;

    for other in ["abc", "ABC", "AbC ", " AbC"] {
        assert_eq!(
            store.identities.find_user(&identity(other)).await.unwrap(),
            None,
            "{other:?}"
        );
    }
    let elsewhere = ExternalIdentity::new("https://other.example.io", "AbC").unwrap();
    assert_eq!(store.identities.find_user(&elsewhere).await.unwrap(), None);
}

async fn external_users_may_share_an_email_with_anyone(store: Store) {
    let local = new_user(UserId::generate(), "shared@example.io");
    store.users.insert(&local).await.unwrap();
    let first = store.external_user("first", "shared@example.io").await;
    let second = store.external_user("second", "shared@example.io").await;

    assert_ne!(first.id, second.id);
    assert_eq!(
        store
            .count(
                "SELECT COUNT(*) FROM users WHERE email = $1",
                vec!["shared@example.io".into()]
            )
            .await,
        3
    );
    // Among password accounts the address is still taken.
    let err = store
        .users
        .insert(&new_user(UserId::generate(), "shared@example.io"))
        .await
        .unwrap_err();
    assert!(matches!(err, DomainError::EmailTaken), "{err:?}");
}

async fn sign_in_never_finds_an_external_user(store: Store) {
    let external = store.external_user("ext", "only-external@example.io").await;
    assert_eq!(
        store.users.find_credentials(&external.email).await.unwrap(),
        None
    );

    // A password account created later with the same address is the one
    // sign-in finds.
    let local = new_user(UserId::generate(), "only-external@example.io");
    store.users.insert(&local).await.unwrap();
    let credentials = store
        .users
        .find_credentials(&local.email)
        .await
        .unwrap()
        .expect("the password account");
    assert_eq!(credentials.user_id, local.id);
}

async fn update_email_renames_only_external_users(store: Store) {
    let external = store.external_user("ext", "old@example.io").await;
    let renamed = store
        .identities
        .update_email(external.id, &Email::parse("new@example.io").unwrap())
        .await
        .unwrap();
    assert_eq!(renamed.id, external.id);
    assert_eq!(renamed.email.as_str(), "new@example.io");
    assert_eq!(
        store.identities.find_user(&identity("ext")).await.unwrap(),
        Some(renamed)
    );

    let local = store.user().await;
    let before = store.users.find_by_id(local).await.unwrap();
    let err = store
        .identities
        .update_email(local, &Email::parse("hijack@example.io").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, DomainError::UserNotFound), "{err:?}");
    assert_eq!(store.users.find_by_id(local).await.unwrap(), before);

    let err = store
        .identities
        .update_email(UserId::generate(), &Email::parse("x@example.io").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, DomainError::UserNotFound), "{err:?}");
}

async fn deleting_an_external_user_deletes_the_link(store: Store) {
    let external = store.external_user("gone", "gone@example.io").await;
    let task = store.stored(task(external.id, "theirs", later(0))).await;

    store
        .raw(
            "DELETE FROM users WHERE id = $1",
            vec![external.id.as_uuid().into()],
        )
        .await;

    assert_eq!(
        store.identities.find_user(&identity("gone")).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .count("SELECT COUNT(*) FROM user_identities", vec![])
            .await,
        0
    );
    assert!(!store.tasks.exists(task.id).await.unwrap());
    // The identity can be provisioned afresh.
    store.external_user("gone", "gone@example.io").await;
}

/// How many migrations to roll back to leave only the first: every later
/// one, the identity migration and whatever came after it.
fn steps_back_to_the_first_migration() -> u32 {
    u32::try_from(Migrator::migrations().len() - 1).unwrap()
}

/// Steps back to the first migration, stores rows there, and applies the
/// later migrations over them: the identity migration's rebuild of `users`
/// and `tasks` must keep every row and every value (and, on SQLite, must
/// not let dropping the old `users` cascade into `tasks`).
async fn the_identity_migration_keeps_every_user_and_task(store: Store) {
    Migrator::down(
        store.db.connection(),
        Some(steps_back_to_the_first_migration()),
    )
    .await
    .unwrap();
    let schema = SchemaManager::new(store.db.connection());
    assert!(!schema.has_table("user_identities").await.unwrap());

    let owner = store.user().await;
    let other = store.user().await;
    let owner_before = store.users.find_by_id(owner).await.unwrap().unwrap();
    let signed_in = store.users.record_sign_in(other, later(5)).await.unwrap();
    let mut kept = vec![
        task(owner, "first", later(1)),
        task(owner, "second", later(2)),
    ];
    for task in &kept {
        store.stored_before_front_end(task).await;
    }
    // Done later, as a toggle of that time wrote it.
    store
        .raw(
            "UPDATE tasks SET completed = $1, updated_at = $2 WHERE id = $3",
            vec![
                true.into(),
                store.instant(later(3)),
                kept[0].id.as_uuid().into(),
            ],
        )
        .await;
    kept[0] = Task {
        completed: true,
        completed_at: Some(later(3)),
        updated_at: later(3),
        ..kept[0].clone()
    };
    let others = task(other, "theirs", later(4));
    store.stored_before_front_end(&others).await;
    let owner_credentials = store
        .users
        .find_credentials(&owner_before.email)
        .await
        .unwrap();

    Migrator::up(store.db.connection(), None).await.unwrap();

    assert!(schema.has_table("user_identities").await.unwrap());
    assert_eq!(
        store.users.find_by_id(owner).await.unwrap(),
        Some(owner_before.clone())
    );
    assert_eq!(
        store.users.find_by_id(other).await.unwrap(),
        Some(signed_in)
    );
    assert_eq!(
        store
            .users
            .find_credentials(&owner_before.email)
            .await
            .unwrap(),
        owner_credentials
    );
    kept.reverse();
    assert_eq!(store.list(owner, &TaskQuery::default()).await.tasks, kept);
    assert_eq!(
        store.list(other, &TaskQuery::default()).await.tasks,
        vec![others]
    );
    // The rebuilt tables still enforce what the first migration did.
    let err = store
        .users
        .insert(&new_user(UserId::generate(), owner_before.email.as_str()))
        .await
        .unwrap_err();
    assert!(matches!(err, DomainError::EmailTaken), "{err:?}");
    let deleted = store
        .raw(
            "DELETE FROM users WHERE id = $1",
            vec![owner.as_uuid().into()],
        )
        .await;
    assert_eq!(deleted, 1);
    assert!(
        store
            .list(owner, &TaskQuery::default())
            .await
            .tasks
            .is_empty()
    );
    assert_eq!(store.count("SELECT COUNT(*) FROM tasks", vec![]).await, 1);
}

async fn rolling_the_identity_migration_back_removes_only_external_users(store: Store) {
    let local = store.user().await;
    let local_task = store.stored(task(local, "mine", later(0))).await;
    let external = store.external_user("ext", "ext@example.io").await;
    store.stored(task(external.id, "theirs", later(1))).await;

    Migrator::down(
        store.db.connection(),
        Some(steps_back_to_the_first_migration()),
    )
    .await
    .unwrap();

    let schema = SchemaManager::new(store.db.connection());
    assert!(!schema.has_table("user_identities").await.unwrap());
    assert_eq!(store.count("SELECT COUNT(*) FROM users", vec![]).await, 1);
    assert_eq!(store.count("SELECT COUNT(*) FROM tasks", vec![]).await, 1);
    assert_eq!(
        store
            .count(
                "SELECT COUNT(*) FROM tasks WHERE id = $1 AND user_id = $2 AND title = $3",
                vec![
                    local_task.id.as_uuid().into(),
                    local.as_uuid().into(),
                    "mine".into()
                ]
            )
            .await,
        1
    );

    Migrator::up(store.db.connection(), None).await.unwrap();
    assert!(store.users.find_by_id(local).await.unwrap().is_some());
    assert_eq!(
        store.list(local, &TaskQuery::default()).await.tasks,
        vec![local_task]
    );
    assert_eq!(store.task_count(local).await, 1);
}

// --- Failed sign-ins ---------------------------------------------------------

/// At most three failures a minute.
fn three_a_minute() -> SignInLimit {
    SignInLimit {
        failures: 3,
        window: Duration::from_secs(60),
    }
}

fn key(typed: &str) -> SignInKey {
    SignInKey::from_typed(typed)
}

impl Store {
    /// Records failures of `typed` at each of `seconds` after T0.
    async fn fail(&self, typed: &str, seconds: &[i64], limit: SignInLimit) {
        for &at in seconds {
            self.sign_in_failures
                .record_failure(&key(typed), later(at), limit)
                .await
                .expect("record a failure");
        }
    }

    async fn blocked_until(&self, typed: &str, seconds: i64) -> Option<Timestamp> {
        self.sign_in_failures
            .blocked_until(&key(typed), later(seconds))
            .await
            .expect("read the block")
    }
}

async fn an_unknown_key_is_not_blocked(store: Store) {
    assert_eq!(store.blocked_until("nobody@example.io", 0).await, None);
}

async fn the_failure_that_reaches_the_limit_blocks_for_one_window_from_it(store: Store) {
    store
        .fail("ada@example.io", &[0, 10], three_a_minute())
        .await;
    assert_eq!(store.blocked_until("ada@example.io", 10).await, None);

    store.fail("ada@example.io", &[20], three_a_minute()).await;
    assert_eq!(
        store.blocked_until("ada@example.io", 20).await,
        Some(later(80))
    );
    assert_eq!(
        store.blocked_until("ada@example.io", 79).await,
        Some(later(80))
    );
    assert_eq!(store.blocked_until("ada@example.io", 80).await, None);
}

async fn failures_after_the_window_start_a_new_count(store: Store) {
    // The window opened at 0 ends at 60; the failure at 61 counts as the
    // first of a new one, so 61 and 62 reach two, not four.
    store
        .fail("ada@example.io", &[0, 30, 61, 62], three_a_minute())
        .await;
    assert_eq!(store.blocked_until("ada@example.io", 62).await, None);
    store.fail("ada@example.io", &[63], three_a_minute()).await;
    assert_eq!(
        store.blocked_until("ada@example.io", 63).await,
        Some(later(123))
    );
}

async fn after_a_block_the_count_starts_afresh(store: Store) {
    store
        .fail("ada@example.io", &[0, 1, 2], three_a_minute())
        .await;
    assert_eq!(
        store.blocked_until("ada@example.io", 2).await,
        Some(later(62))
    );
    store
        .fail("ada@example.io", &[62, 63], three_a_minute())
        .await;
    assert_eq!(store.blocked_until("ada@example.io", 63).await, None);
    store.fail("ada@example.io", &[64], three_a_minute()).await;
    assert_eq!(
        store.blocked_until("ada@example.io", 64).await,
        Some(later(124))
    );
}

async fn a_limit_of_one_blocks_at_the_first_failure(store: Store) {
    let one = SignInLimit {
        failures: 1,
        window: Duration::from_secs(60),
    };
    store.fail("ada@example.io", &[5], one).await;
    assert_eq!(
        store.blocked_until("ada@example.io", 5).await,
        Some(later(65))
    );
}

async fn clearing_a_key_forgets_its_failures(store: Store) {
    store
        .fail("ada@example.io", &[0, 1], three_a_minute())
        .await;
    store
        .sign_in_failures
        .clear(&key("ada@example.io"))
        .await
        .unwrap();
    store
        .fail("ada@example.io", &[2, 3], three_a_minute())
        .await;
    assert_eq!(store.blocked_until("ada@example.io", 3).await, None);
    // Clearing a key without failures is fine too.
    store
        .sign_in_failures
        .clear(&key("nobody@example.io"))
        .await
        .unwrap();
}

async fn keys_are_counted_apart(store: Store) {
    store
        .fail("ada@example.io", &[0, 1, 2], three_a_minute())
        .await;
    store
        .fail("grace@example.io", &[0, 1], three_a_minute())
        .await;
    assert!(store.blocked_until("ada@example.io", 3).await.is_some());
    assert_eq!(store.blocked_until("grace@example.io", 3).await, None);
}

/// 49 failures at once under a limit of 50 leave the key unblocked and
/// the 50th blocks it: not one of the racing updates was lost, and none
/// was counted twice.
async fn racing_failures_are_each_counted_exactly_once(store: Store) {
    let limit = SignInLimit {
        failures: 50,
        window: Duration::from_secs(60),
    };
    let racer = key("race@example.io");
    let racing = (0..49).map(|_| {
        store
            .sign_in_failures
            .record_failure(&racer, later(0), limit)
    });
    for outcome in join_all(racing).await {
        outcome.expect("record a failure");
    }
    assert_eq!(store.blocked_until("race@example.io", 0).await, None);
    store.fail("race@example.io", &[1], limit).await;
    assert_eq!(
        store.blocked_until("race@example.io", 1).await,
        Some(later(61))
    );
}

async fn the_key_is_stored_as_a_digest_not_as_typed(store: Store) {
    store
        .fail("Someone.Unknown@Example.io", &[0], three_a_minute())
        .await;
    let statement = Statement::from_string(
        store.db.get_database_backend(),
        "SELECT email_digest FROM sign_in_failures",
    );
    let rows = store.db.query_all_raw(statement).await.unwrap();
    assert_eq!(rows.len(), 1);
    let stored = rows[0].try_get_by_index::<Vec<u8>>(0).unwrap();
    assert_eq!(stored.len(), 32, "a SHA-256 digest");
    assert!(
        !String::from_utf8_lossy(&stored).contains("someone"),
        "{stored:?}"
    );
}

async fn forgetting_expired_keys_keeps_open_windows_and_blocks(store: Store) {
    // Window over at 60.
    store.fail("over@example.io", &[0], three_a_minute()).await;
    // Window open until 150.
    store.fail("open@example.io", &[90], three_a_minute()).await;
    // Blocked from 50 to 110, its window stretched along.
    store
        .fail("blocked@example.io", &[0, 1, 50], three_a_minute())
        .await;

    let forgotten = store
        .sign_in_failures
        .forget_expired(later(100))
        .await
        .unwrap();

    assert_eq!(forgotten, 1);
    assert_eq!(
        store.blocked_until("blocked@example.io", 100).await,
        Some(later(110))
    );
    store
        .fail("open@example.io", &[100, 101], three_a_minute())
        .await;
    assert!(store.blocked_until("open@example.io", 101).await.is_some());
}

// --- SQLite only --------------------------------------------------------------

#[tokio::test]
async fn sqlite_connections_are_configured_for_durability_and_concurrency() {
    let store = Store::open(TestDatabase::sqlite().await).await;
    let pragma = |name: &'static str| {
        let db = store.db.clone();
        async move {
            let statement =
                Statement::from_string(db.get_database_backend(), format!("PRAGMA {name}"));
            let row = db.query_one_raw(statement).await.unwrap().unwrap();
            row.try_get_by_index::<i64>(0)
                .map(|number| number.to_string())
                .or_else(|_| row.try_get_by_index::<String>(0))
                .unwrap()
        }
    };
    assert_eq!(pragma("journal_mode").await, "wal");
    // 2 is FULL: an acknowledged change survives a power cut.
    assert_eq!(pragma("synchronous").await, "2");
    assert_eq!(pragma("foreign_keys").await, "1");
    assert_eq!(pragma("busy_timeout").await, "5000");
}

#[tokio::test]
async fn a_sqlite_url_without_mode_creates_the_file() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("fresh.db");
    let settings = DatabaseSettings {
        url: format!("sqlite://{}", path.display()),
        max_connections: 1,
        acquire_timeout: Duration::from_secs(5),
        statement_timeout: Duration::from_secs(5),
    };
    let db = connect(&settings).await.unwrap();
    assert!(is_ready(&db).await);
    assert!(path.exists());
}

/// What the SQLite columns hold: fixed-width UTC text for instants (so text
/// order is time order) and 16-byte blobs for ids (so byte order is the
/// order PostgreSQL gives `uuid`).
#[tokio::test]
async fn sqlite_stores_instants_as_fixed_width_text_and_ids_as_blobs() {
    let store = Store::open(TestDatabase::sqlite().await).await;
    let owner = store.user().await;
    let created = stamp(datetime!(2026-02-06 10:15:23.5 UTC));
    let task = store
        .stored(Task {
            due_at: Some(stamp(datetime!(2026-12-24 18:00:00 UTC))),
            labels: labels(&["Work"]),
            ..task(owner, "t", created)
        })
        .await;
    store
        .tasks
        .change_completion_owned(
            task.id,
            owner,
            CompletionChange::Toggle,
            None,
            stamp(datetime!(2026-02-06 10:15:24 UTC)),
            None,
        )
        .await
        .unwrap();
    store.claimed(owner, "k", 1, created).await;

    let text = |sql: &'static str| {
        let db = store.db.clone();
        async move {
            let statement = Statement::from_string(db.get_database_backend(), sql);
            let row = db.query_one_raw(statement).await.unwrap().unwrap();
            (0..4)
                .map(|index| row.try_get_by_index::<String>(index).unwrap())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        text("SELECT created_at, updated_at, typeof(id), typeof(user_id) FROM tasks").await,
        [
            "2026-02-06T10:15:23.500000Z",
            "2026-02-06T10:15:24.000000Z",
            "blob",
            "blob"
        ]
    );
    assert_eq!(
        text("SELECT completed_at, due_at, typeof(priority), typeof(version) FROM tasks").await,
        [
            "2026-02-06T10:15:24.000000Z",
            "2026-12-24T18:00:00.000000Z",
            "integer",
            "integer"
        ]
    );
    assert_eq!(
        text("SELECT typeof(task_id), typeof(user_id), key, typeof(key) FROM task_labels").await,
        ["blob", "blob", "work", "text"]
    );
    assert_eq!(
        text(
            "SELECT claimed_at, expires_at, typeof(claim_token), typeof(fingerprint) \
             FROM idempotency_keys"
        )
        .await,
        [
            "2026-02-06T10:15:23.500000Z",
            "2026-02-07T10:15:23.500000Z",
            "blob",
            "blob"
        ]
    );
}

/// On SQLite too, a page after a cursor is a range of the sort's own
/// index, read in order: row values are range constraints for plain
/// columns, and `lower(title)` gets its own bound.
#[tokio::test]
async fn sqlite_pages_are_ranges_of_their_index() {
    let store = Store::open(TestDatabase::sqlite().await).await;
    let owner = store.user().await;
    let task = store
        .stored(Task {
            due_at: Some(later(5)),
            ..task(owner, "t", later(0))
        })
        .await;
    let undated = store.stored(task_like(owner)).await;
    for sort in EVERY_SORT {
        let index = match sort.field {
            SortField::CreatedAt => "idx_tasks_user_created_id",
            SortField::UpdatedAt => "idx_tasks_user_updated_id",
            // The filter is `completed=false`: the open tasks' own index.
            SortField::DueAt => "idx_tasks_user_open_due_id",
            SortField::Priority => "idx_tasks_user_priority_id",
            SortField::Title => "idx_tasks_user_title_id",
        };
        let query = TaskQuery {
            filter: TaskFilter {
                completed: Some(false),
                ..TaskFilter::default()
            },
            sort,
            page: None,
        };
        let mut cursors = vec![TaskPosition::of(&task, sort.field)];
        if sort.field == SortField::DueAt {
            cursors.push(TaskPosition::of(&undated, sort.field));
        }
        for after in cursors {
            let statements = store
                .tasks
                .list_statements(owner, &paged(&query, 20, Some(after.clone())), now())
                .unwrap();
            let explain = Statement {
                sql: format!("EXPLAIN QUERY PLAN {}", statements[0].sql),
                ..statements[0].clone()
            };
            let plan: Vec<String> = store
                .db
                .query_all_raw(explain)
                .await
                .unwrap()
                .iter()
                .map(|row| row.try_get::<String>("", "detail").unwrap())
                .collect();
            let searches: Vec<&String> = plan
                .iter()
                .filter(|step| step.starts_with("SEARCH tasks"))
                .collect();
            assert!(!searches.is_empty(), "{sort:?} {after:?}: {plan:#?}");
            // The user, then the NULL due date or a bound on the sort
            // value. (The first statement is the one to read; a due date
            // page that runs past the dated tasks goes on with the undated
            // ones from their start.)
            for search in &searches {
                assert!(
                    search
                        .starts_with(&format!("SEARCH tasks USING INDEX {index} (user_id=? AND ")),
                    "{sort:?} {after:?}: {plan:#?}"
                );
            }
            assert!(
                searches[0].contains(['<', '>']),
                "{sort:?} {after:?}: {plan:#?}"
            );
            assert!(
                !plan.iter().any(|step| step.starts_with("SCAN tasks")),
                "{sort:?} {after:?}: {plan:#?}"
            );
        }
    }
}

#[tokio::test]
async fn the_preferred_database_is_empty_and_usable() {
    let database = TestDatabase::preferred().await;
    let settings = DatabaseSettings {
        url: database.url().to_owned(),
        max_connections: 2,
        acquire_timeout: Duration::from_secs(10),
        statement_timeout: Duration::from_secs(5),
    };
    let db = connect(&settings).await.unwrap();
    let schema = SchemaManager::new(db.connection());
    assert!(!schema.has_table("tasks").await.unwrap());
    migrate(&db).await.unwrap();
    assert!(schema.has_table("tasks").await.unwrap());
    assert_eq!(backend_of(&db), database.backend());
}

/// One thread with more to do than the others gets the pool's every
/// connection at once: here it runs as many half-second statements at once
/// as the pool holds, with a quarter-second acquire timeout, and none of
/// them times out waiting for another to finish.
#[tokio::test(flavor = "current_thread")]
async fn one_thread_can_use_every_connection_of_the_pool_at_once() {
    let database = TestDatabase::preferred().await;
    if database.backend() != Backend::Postgres {
        // `preferred` has said on stderr that PostgreSQL was not reachable;
        // SQLite allows one writer, and sleeps are PostgreSQL's.
        return;
    }
    let db = connect(&DatabaseSettings {
        url: database.url().to_owned(),
        max_connections: 4,
        acquire_timeout: Duration::from_millis(250),
        statement_timeout: Duration::from_secs(5),
    })
    .await
    .unwrap();
    let sleeps = (0..4).map(|_| db.execute_unprepared("SELECT pg_sleep(0.5)"));
    for outcome in join_all(sleeps).await {
        outcome.expect("every statement gets a connection in time");
    }
    let usage = todo_persistence::pool_usage(&db).unwrap();
    assert_eq!((usage.open, usage.max), (4, 4), "{usage:?}");
}

/// A pool connected lazily opens its first connection for its first
/// statement, on both engines (that it opens none before, even with no
/// server there, is in the start-up tests).
#[tokio::test]
async fn a_lazy_pool_opens_its_first_connection_for_its_first_statement() {
    let database = TestDatabase::preferred().await;
    let db = todo_persistence::connect_lazily(&DatabaseSettings {
        url: database.url().to_owned(),
        max_connections: 2,
        acquire_timeout: Duration::from_secs(5),
        statement_timeout: Duration::from_secs(5),
    })
    .await
    .unwrap();
    assert_eq!(todo_persistence::pool_usage(&db).unwrap().open, 0);
    db.execute_unprepared("SELECT 1").await.unwrap();
    assert_eq!(todo_persistence::pool_usage(&db).unwrap().open, 1);
}

/// When the server ends our sessions (a restart, an administrator), each
/// pooled connection fails at most one statement, as `Unavailable` (a 503),
/// and is replaced by a fresh one; nothing stays broken. A connection that
/// sat idle is checked before it is used, so after a pause nothing fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_server_ended_are_replaced() {
    let database = TestDatabase::preferred().await;
    if database.backend() != Backend::Postgres {
        // `preferred` has said on stderr that PostgreSQL was not reachable;
        // an embedded database has no server to end its sessions.
        return;
    }
    let url = database.url().to_owned();
    let store = Store::open(database).await;
    let owner = store.user().await;
    let all = TaskQuery::default();
    let end_every_session = || async {
        let mut admin = PgConnection::connect(&url).await.unwrap();
        admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .await
            .unwrap();
    };
    // Several reads at once, so the pool holds several connections.
    for listed in join_all((0..5).map(|_| store.tasks.list_by_owner(owner, &all, now()))).await {
        listed.unwrap();
    }

    end_every_session().await;
    let mut failures = 0;
    while let Err(err) = store.tasks.list_by_owner(owner, &all, now()).await {
        assert!(matches!(err, DomainError::Unavailable(_)), "{err:?}");
        failures += 1;
        assert!(failures <= 5, "a dead connection was handed out twice");
    }
    for _ in 0..10 {
        store.tasks.list_by_owner(owner, &all, now()).await.unwrap();
    }

    end_every_session().await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    for _ in 0..10 {
        store.tasks.list_by_owner(owner, &all, now()).await.unwrap();
    }
}

/// The plan PostgreSQL ran `statement` with, with the rows each step
/// returned.
async fn executed_plan(store: &Store, statement: &Statement) -> String {
    let explain = Statement {
        sql: format!(
            "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) {}",
            statement.sql
        ),
        ..statement.clone()
    };
    store
        .db
        .query_all_raw(explain)
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get_by_index::<String>(0).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The rows the index scans of a plan read: those they returned and those
/// their filter removed.
fn rows_read(plan: &str) -> u64 {
    let number_after = |line: &str, marker: &str| -> u64 {
        let start = line.find(marker).map(|at| at + marker.len());
        start
            .map(|start| {
                line[start..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
            })
            .and_then(|digits| digits.parse().ok())
            .unwrap_or(0)
    };
    plan.lines()
        .map(|line| {
            // The task rows only: the page's total reads one row of
            // `users` by its key, whatever the page.
            if line.contains("Index Scan") && line.contains(" on tasks") {
                number_after(line, "actual rows=") * number_after(line, "loops=")
            } else if line.contains("Index Scan") {
                0
            } else {
                number_after(line, "Rows Removed by Filter: ")
            }
        })
        .sum()
}

/// A user with 2,000 tasks among 100 users with 100 each, all spread over
/// the table: half of the user's tasks are done, and one in twenty of the
/// open ones has no due date. The owner's id.
async fn big_table(store: &Store) -> UserId {
    let owner = store.user().await;
    store
        .db
        .execute_unprepared(
            "INSERT INTO users (id, email, password_hash, created_at) \
             SELECT gen_random_uuid(), 'user' || g || '@example.com', 'not a hash', now() \
             FROM generate_series(1, 100) AS g",
        )
        .await
        .unwrap();
    store
        .raw(
            "INSERT INTO tasks (id, user_id, title, completed, completed_at, due_at, priority, \
             created_at, updated_at) \
             SELECT gen_random_uuid(), u.id, 'task ' || n, n % 2 = 0, \
                    CASE WHEN n % 2 = 0 THEN now() END, \
                    CASE WHEN n % 40 = 1 THEN NULL \
                         ELSE timestamptz '2026-01-01 00:00:00+00' + n * interval '1 hour' END, \
                    n % 4, now() - n * interval '1 minute', now() - n * interval '1 second' \
             FROM generate_series(1, 2000) AS n CROSS JOIN users AS u \
             WHERE u.id = $1 OR n <= 100 ORDER BY n, u.id",
            vec![owner.as_uuid().into()],
        )
        .await;
    store
        .db
        .execute_unprepared(
            "UPDATE users SET task_count = \
             (SELECT COUNT(*) FROM tasks WHERE tasks.user_id = users.id); \
             ANALYZE users; ANALYZE tasks;",
        )
        .await
        .unwrap();
    // The row triggers raised each owner's counters and change position
    // once per task inside that one INSERT: thousands of versions of a
    // few rows in one transaction, which cannot be pruned as they come, so
    // they spill over pages and bloat the key's index. A real service
    // writes a task a transaction and its updates stay on their page.
    // Rebuilt compact, the table is read as the service's would be (a
    // bloated key index tips the user lookup into a bitmap scan).
    store
        .db
        .execute_unprepared("VACUUM FULL ANALYZE users")
        .await
        .unwrap();
    owner
}

/// The page of `query` that follows `pages` earlier pages of 20, read
/// through the repository.
async fn position_after_pages(
    store: &Store,
    owner: UserId,
    query: &TaskQuery,
    pages: usize,
) -> Option<TaskPosition> {
    let mut after = None;
    for _ in 0..pages {
        after = store.list(owner, &paged(query, 20, after)).await.next;
        assert!(after.is_some(), "the list ended early");
    }
    after
}

/// On PostgreSQL a page of `sort=due_at&completed=false` among the dated
/// tasks is one range of the open tasks' index, and page 50 reads about as
/// many rows as page 1; every other sort reads its own index, in order,
/// from the cursor on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paged_lists_are_read_from_their_index_however_deep_the_page() {
    let database = TestDatabase::preferred().await;
    if database.backend() != Backend::Postgres {
        // `preferred` has said on stderr that PostgreSQL was not reachable;
        // plans are PostgreSQL's.
        return;
    }
    let store = Store::open(database).await;
    let owner = big_table(&store).await;

    let open_by_due = TaskQuery {
        filter: TaskFilter {
            completed: Some(false),
            ..TaskFilter::default()
        },
        sort: TaskSort {
            field: SortField::DueAt,
            order: SortOrder::Asc,
        },
        page: None,
    };
    let mut first_read = 0;
    for pages_before in [0, 24, 49] {
        let after = position_after_pages(&store, owner, &open_by_due, pages_before).await;
        let query = paged(&open_by_due, 20, after);
        let page = store.list(owner, &query).await;
        assert_eq!((page.tasks.len(), page.total), (20, 1000));
        let statements = store.tasks.list_statements(owner, &query, now()).unwrap();
        // The filter is in the statement's text, not a bound value: the
        // service's prepared statements, once planned generically, can
        // then still use the partial index this EXPLAIN (which plans with
        // the values) shows.
        assert!(
            statements[0].sql.contains(r#"NOT "tasks"."completed""#),
            "{}",
            statements[0].sql
        );
        let plan = executed_plan(&store, &statements[0]).await;
        let read = rows_read(&plan);
        eprintln!(
            "page {} of sort=due_at&completed=false ({read} rows read):\n{plan}\n",
            pages_before + 1
        );
        // The open tasks' partial index: no done task is read to be
        // thrown away.
        assert!(
            plan.contains("Index Scan using idx_tasks_user_open_due_id on tasks"),
            "{plan}"
        );
        assert!(!plan.contains("Rows Removed by Filter"), "{plan}");
        assert!(!plan.contains("Seq Scan"), "{plan}");
        assert!(!plan.contains("Bitmap"), "{plan}");
        // One range of the index, in its own order: nothing to merge or
        // sort.
        assert!(!plan.contains("Sort"), "{plan}");
        assert!(!plan.contains("Append"), "{plan}");
        if pages_before == 0 {
            first_read = read;
            // At most 21 open tasks, and nothing else.
            assert!(read <= 21, "{read} rows read:\n{plan}");
        } else {
            assert!(
                read <= first_read + 21,
                "page {}: {read} rows read, page 1: {first_read}\n{plan}",
                pages_before + 1
            );
        }
        // The total comes from the user's counters, read by their key.
        assert!(plan.contains("using users_next_pkey on users"), "{plan}");
    }

    for sort in EVERY_SORT {
        if sort.field == SortField::DueAt {
            continue;
        }
        let index = match sort.field {
            SortField::CreatedAt => "idx_tasks_user_created_id",
            SortField::UpdatedAt => "idx_tasks_user_updated_id",
            SortField::Priority => "idx_tasks_user_priority_id",
            SortField::Title => "idx_tasks_user_title_id",
            SortField::DueAt => unreachable!("skipped above"),
        };
        let query = TaskQuery {
            sort,
            ..TaskQuery::default()
        };
        let after = position_after_pages(&store, owner, &query, 30).await;
        let statements = store
            .tasks
            .list_statements(owner, &paged(&query, 20, after), now())
            .unwrap();
        let plan = executed_plan(&store, &statements[0]).await;
        assert!(
            plan.contains(&format!("using {index} on tasks")),
            "{sort:?}\n{plan}"
        );
        assert!(!plan.contains("Sort"), "{sort:?}\n{plan}");
        assert!(rows_read(&plan) <= 21, "{sort:?}\n{plan}");
    }
}

/// On PostgreSQL a user's list is read through the `(user_id, created_at,
/// id)` index in order, even when users own a hundred tasks each and each
/// user's tasks lie scattered over the table, as they do when many users
/// add tasks over time. Under PostgreSQL's default price of a random page
/// read, the planner reads such a list as a bitmap heap scan plus a sort;
/// the service's sessions set a price fit for cached data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_is_read_in_index_order_however_the_table_grows() {
    let database = TestDatabase::preferred().await;
    if database.backend() != Backend::Postgres {
        // `preferred` has said on stderr that PostgreSQL was not reachable;
        // SQLite's planner has no such setting.
        return;
    }
    let store = Store::open(database).await;
    // 300 users and 30,000 tasks, inserted round by round: each user's
    // tasks are spread over the whole table.
    store
        .db
        .execute_unprepared(
            "INSERT INTO users (id, email, password_hash, created_at) \
             SELECT gen_random_uuid(), 'user' || g || '@example.com', 'not a hash', now() \
             FROM generate_series(1, 300) AS g; \
             INSERT INTO tasks (id, user_id, title, completed, created_at, updated_at) \
             SELECT gen_random_uuid(), u.id, 'task ' || n, false, \
                    now() - n * interval '1 minute', now() \
             FROM generate_series(1, 100) AS n CROSS JOIN users AS u ORDER BY n, u.id; \
             ANALYZE users; ANALYZE tasks;",
        )
        .await
        .unwrap();
    let owner = store
        .db
        .query_one_raw(Statement::from_string(
            store.db.get_database_backend(),
            "SELECT id FROM users LIMIT 1",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<Uuid>("", "id")
        .unwrap();
    let owner = UserId::from_uuid(owner);

    // The one statement the task repository sends for the [core] list.
    let statements = store
        .tasks
        .list_statements(owner, &TaskQuery::default(), now())
        .unwrap();
    assert_eq!(statements.len(), 1);
    let explain = Statement {
        sql: format!("EXPLAIN {}", statements[0].sql),
        ..statements[0].clone()
    };
    let plan = store
        .db
        .query_all_raw(explain)
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get_by_index::<String>(0).unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        plan.starts_with("Index Scan using idx_tasks_user_created_id on tasks"),
        "{plan}"
    );
    assert!(!plan.contains("Sort"), "{plan}");
    assert_eq!(store.list(owner, &TaskQuery::default()).await.total, 100);
}

// --- The statement timeout (PostgreSQL) ---------------------------------------

/// A pool of one connection with a one-second statement timeout, or `None`
/// where PostgreSQL is not reachable (`preferred` has said so on stderr;
/// never in CI).
async fn postgres_with_a_one_second_timeout() -> Option<(Database, TestDatabase)> {
    let database = TestDatabase::preferred().await;
    if database.backend() != Backend::Postgres {
        return None;
    }
    let db = connect(&DatabaseSettings {
        url: database.url().to_owned(),
        max_connections: 1,
        acquire_timeout: Duration::from_secs(10),
        statement_timeout: Duration::from_secs(1),
    })
    .await
    .unwrap();
    Some((db, database))
}

async fn show(db: &Database, setting: &str) -> String {
    db.query_one_raw(Statement::from_string(
        db.get_database_backend(),
        format!("SHOW {setting}"),
    ))
    .await
    .unwrap()
    .unwrap()
    .try_get_by_index::<String>(0)
    .unwrap()
}

/// Both start-up options reach the server: the statement timeout and the
/// planner's price of a random page read.
#[tokio::test]
async fn postgres_sessions_carry_the_statement_timeout_beside_the_planner_costs() {
    let Some((db, _database)) = postgres_with_a_one_second_timeout().await else {
        return;
    };
    assert_eq!(show(&db, "statement_timeout").await, "1s");
    assert_eq!(show(&db, "random_page_cost").await, "1");
}

/// The server cancels a statement at the timeout (SQLSTATE 57014), before
/// the client's own deadline, and the connection stays usable.
#[tokio::test]
async fn the_server_cancels_a_statement_past_the_timeout_and_the_connection_lives_on() {
    let Some((db, _database)) = postgres_with_a_one_second_timeout().await else {
        return;
    };
    let started = std::time::Instant::now();
    let err = db
        .execute_unprepared("SELECT pg_sleep(5)")
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(sqlstate(&err).as_deref(), Some("57014"), "{err:?}");
    assert!(
        took >= Duration::from_secs(1) && took < db.deadline(),
        "cancelled after {took:?}"
    );
    // The pool's only connection answers at once.
    let started = std::time::Instant::now();
    assert_eq!(show(&db, "statement_timeout").await, "1s");
    assert!(started.elapsed() < Duration::from_millis(500));
}

/// A repository statement that waits past the timeout (here for a row
/// another session keeps locked) is `Unavailable`, which the api answers
/// with 503.
#[tokio::test]
async fn a_repository_statement_cancelled_by_the_timeout_is_unavailable() {
    let Some((db, database)) = postgres_with_a_one_second_timeout().await else {
        return;
    };
    migrate(&db).await.unwrap();
    let users = SeaUserRepository::new(db.clone());
    let id = UserId::generate();
    users
        .insert(&new_user(id, "locked@example.io"))
        .await
        .unwrap();

    let mut holder = PgConnection::connect(database.url()).await.unwrap();
    holder.execute("BEGIN").await.unwrap();
    holder
        .execute(sea_orm::sqlx::AssertSqlSafe(format!(
            "SELECT id FROM users WHERE id = '{}' FOR UPDATE",
            id.as_uuid()
        )))
        .await
        .unwrap();
    let err = users.record_sign_in(id, later(0)).await.unwrap_err();
    assert!(matches!(err, DomainError::Unavailable(_)), "{err:?}");
    holder.execute("ROLLBACK").await.unwrap();
    users.record_sign_in(id, later(0)).await.unwrap();
}

/// A second instance waits for the first one's migrations on a lock, for
/// as long as they take. Migrations are exempt from the statement timeout,
/// so that wait may be longer than it.
#[tokio::test]
async fn migrations_wait_for_another_instance_longer_than_the_statement_timeout() {
    let Some((db, database)) = postgres_with_a_one_second_timeout().await else {
        return;
    };
    // The key `migrate` locks (`MIGRATION_LOCK_KEY` in connection.rs).
    const MIGRATION_LOCK_KEY: i64 = 0x746f_646f_2d61_7069;
    let mut other_instance = PgConnection::connect(database.url()).await.unwrap();
    other_instance
        .execute(sea_orm::sqlx::AssertSqlSafe(format!(
            "SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"
        )))
        .await
        .unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        other_instance
            .execute(sea_orm::sqlx::AssertSqlSafe(format!(
                "SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"
            )))
            .await
            .unwrap();
        other_instance
    });
    let started = std::time::Instant::now();
    migrate(&db).await.expect("migrations wait for the lock");
    assert!(started.elapsed() >= Duration::from_secs(2));
    let _ = release.await.unwrap().close().await;
    // The exemption stayed inside the migrations' transaction.
    assert_eq!(show(&db, "statement_timeout").await, "1s");
}

/// The SQLSTATE of a server error, if `err` is one.
fn sqlstate(err: &sea_orm::DbErr) -> Option<String> {
    match err {
        sea_orm::DbErr::Exec(sea_orm::RuntimeErr::SqlxError(cause))
        | sea_orm::DbErr::Query(sea_orm::RuntimeErr::SqlxError(cause)) => cause
            .as_database_error()
            .and_then(|database_error| database_error.code())
            .map(|code| code.into_owned()),
        _ => None,
    }
}

// ------------------------------------------------------------ changes feed

/// Every change of `owner` after `since` (up to 1,000), as (position,
/// change) pairs.
async fn changes_after(store: &Store, owner: UserId, since: u64) -> Vec<PositionedChange> {
    store
        .tasks
        .changes_since(owner, Some(FeedPosition::at(since)), 1_000)
        .await
        .expect("read the feed")
        .changes
}

/// The feed's head of `owner`: the position of their latest change.
async fn head_of(store: &Store, owner: UserId) -> u64 {
    store
        .tasks
        .changes_since(owner, Some(FeedPosition::at(u64::MAX >> 1)), 1)
        .await
        .expect("read the head")
        .head
}

/// The one change after `since`, which must be about `id`; its position.
async fn only_change_after(store: &Store, owner: UserId, since: u64, id: TaskId) -> u64 {
    let changes = changes_after(store, owner, since).await;
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].change.task_id(), id);
    assert!(changes[0].position > since);
    assert_eq!(changes[0].position, head_of(store, owner).await);
    changes[0].position
}

fn upserted(change: &PositionedChange) -> &Task {
    match &change.change {
        Change::Upsert(task) => task,
        Change::Delete(id) => panic!("{id} was deleted, not upserted"),
    }
}

async fn every_write_path_moves_the_task_to_the_end_of_the_feed(store: Store) {
    let owner = store.user().await;
    assert_eq!(head_of(&store, owner).await, 0);
    let first = store.stored(task(owner, "first", later(0))).await;
    let second = store.stored(task(owner, "second", later(1))).await;
    let all = store.tasks.changes_since(owner, None, 1_000).await.unwrap();
    assert_eq!(all.head, 2);
    let positions: Vec<u64> = all.changes.iter().map(|change| change.position).collect();
    assert_eq!(positions, [1, 2]);
    assert_eq!(upserted(&all.changes[0]), &first);
    assert_eq!(upserted(&all.changes[1]), &second);

    // A patch.
    let patch = TaskPatch {
        title: Some(title("first, renamed")),
        ..TaskPatch::default()
    };
    let renamed = store
        .tasks
        .patch_owned(first.id, owner, &patch, None, later(5))
        .await
        .unwrap()
        .unwrap();
    let at = only_change_after(&store, owner, 2, first.id).await;
    assert_eq!(
        upserted(&changes_after(&store, owner, 2).await[0]),
        &renamed
    );

    // A patch that changes nothing moves nothing.
    store
        .tasks
        .patch_owned(first.id, owner, &patch, None, later(6))
        .await
        .unwrap();
    assert_eq!(head_of(&store, owner).await, at);

    // New labels (the label rows change in the same transaction).
    let relabel = TaskPatch {
        labels: Some(labels(&["work"])),
        ..TaskPatch::default()
    };
    store
        .tasks
        .patch_owned(second.id, owner, &relabel, None, later(7))
        .await
        .unwrap();
    let at = only_change_after(&store, owner, at, second.id).await;

    // A toggle, with and without a receipt-free precondition.
    store
        .tasks
        .change_completion_owned(
            first.id,
            owner,
            CompletionChange::Toggle,
            None,
            later(8),
            None,
        )
        .await
        .unwrap();
    let at = only_change_after(&store, owner, at, first.id).await;
    store
        .tasks
        .change_completion_owned(
            second.id,
            owner,
            CompletionChange::Set(true),
            if_version(&[2]),
            later(9),
            None,
        )
        .await
        .unwrap()
        .unwrap();
    let at = only_change_after(&store, owner, at, second.id).await;
    // Setting the state the task already has changes nothing.
    store
        .tasks
        .change_completion_owned(
            second.id,
            owner,
            CompletionChange::Set(true),
            None,
            later(10),
            None,
        )
        .await
        .unwrap();
    assert_eq!(head_of(&store, owner).await, at);

    // A delete leaves a tombstone at the end.
    let third = store.stored(task(owner, "third", later(11))).await;
    let at = only_change_after(&store, owner, at, third.id).await;
    assert!(
        store
            .tasks
            .delete_owned(third.id, owner, None)
            .await
            .unwrap()
    );
    let after_delete = changes_after(&store, owner, at).await;
    assert_eq!(after_delete.len(), 1);
    assert_eq!(after_delete[0].change, Change::Delete(third.id));
    let at = after_delete[0].position;

    // Clearing the completed tasks: one tombstone each, in order.
    assert_eq!(store.tasks.delete_completed(owner).await.unwrap(), 2);
    let cleared = changes_after(&store, owner, at).await;
    let mut deleted: Vec<Change> = cleared.iter().map(|c| c.change.clone()).collect();
    deleted.sort_by_key(Change::task_id);
    let mut expected = vec![Change::Delete(first.id), Change::Delete(second.id)];
    expected.sort_by_key(Change::task_id);
    assert_eq!(deleted, expected);
    assert!(cleared[0].position < cleared[1].position);
    assert_eq!(cleared[1].position, head_of(&store, owner).await);

    // The full history from the start: no task twice, positions rising,
    // and the counters the done-count trigger keeps still right.
    let history = changes_after(&store, owner, 0).await;
    assert_eq!(history.len(), 3);
    assert!(history.windows(2).all(|w| w[0].position < w[1].position));
    assert_eq!(store.task_count(owner).await, 0);
    assert_eq!(
        store
            .count(
                "SELECT CAST(done_count AS BIGINT) FROM users WHERE id = $1",
                vec![owner.as_uuid().into()],
            )
            .await,
        0
    );
}

async fn a_task_changed_twice_appears_once_at_its_latest_position(store: Store) {
    let owner = store.user().await;
    let one = store.stored(task(owner, "one", later(0))).await;
    let two = store.stored(task(owner, "two", later(1))).await;
    for at in [2, 3] {
        store
            .tasks
            .change_completion_owned(
                one.id,
                owner,
                CompletionChange::Toggle,
                None,
                later(at),
                None,
            )
            .await
            .unwrap();
    }
    let changes = changes_after(&store, owner, 0).await;
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[0].change.task_id(), two.id);
    assert_eq!(changes[1].change.task_id(), one.id);
    assert_eq!(changes[1].position, 4);
    assert_eq!(upserted(&changes[1]).version, version(3));
}

async fn another_users_changes_never_appear_in_the_feed(store: Store) {
    let owner = store.user().await;
    let other = store.user().await;
    let mine = store.stored(task(owner, "mine", later(0))).await;
    let theirs = store.stored(task(other, "theirs", later(1))).await;
    store
        .stored(done(task(other, "their done", later(2))))
        .await;
    assert!(
        store
            .tasks
            .delete_owned(theirs.id, other, None)
            .await
            .unwrap()
    );
    store.tasks.delete_completed(other).await.unwrap();
    // Positions are counted per user.
    assert_eq!(head_of(&store, owner).await, 1);
    assert_eq!(head_of(&store, other).await, 4);
    let changes = changes_after(&store, owner, 0).await;
    assert_eq!(changes.len(), 1);
    assert_eq!(upserted(&changes[0]), &mine);
    let full = store.tasks.changes_since(owner, None, 1_000).await.unwrap();
    assert_eq!(full.changes, changes);
}

async fn the_feed_reads_at_most_the_asked_number_in_position_order(store: Store) {
    let owner = store.user().await;
    let mut ids = Vec::new();
    for n in 0..7 {
        ids.push(store.stored(task(owner, "t", later(n))).await.id);
    }
    // Deletions interleave with tasks by position.
    assert!(store.tasks.delete_owned(ids[1], owner, None).await.unwrap());
    let page = store
        .tasks
        .changes_since(owner, Some(FeedPosition::at(0)), 3)
        .await
        .unwrap();
    let read: Vec<(u64, TaskId)> = page
        .changes
        .iter()
        .map(|c| (c.position, c.change.task_id()))
        .collect();
    assert_eq!(read, [(1, ids[0]), (3, ids[2]), (4, ids[3])]);
    let rest = store
        .tasks
        .changes_since(owner, Some(FeedPosition::at(4)), 10)
        .await
        .unwrap();
    let read: Vec<(u64, Change)> = rest
        .changes
        .into_iter()
        .map(|c| (c.position, c.change))
        .collect();
    assert_eq!(read.len(), 4);
    assert_eq!(read[3], (8, Change::Delete(ids[1])));
    // A walk of the full list skips deletions at or below where it began.
    let walk = store
        .tasks
        .changes_since(
            owner,
            Some(FeedPosition {
                tasks_after: 0,
                deletes_after: 8,
            }),
            100,
        )
        .await
        .unwrap();
    assert_eq!(walk.changes.len(), 6);
    assert!(
        walk.changes
            .iter()
            .all(|c| matches!(c.change, Change::Upsert(_)))
    );
}

async fn forgetting_old_deletions_raises_the_floor(store: Store) {
    let owner = store.user().await;
    let other = store.user().await;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(store.stored(task(owner, "t", later(n))).await.id);
    }
    let theirs = store.stored(task(other, "theirs", later(0))).await;
    for id in &ids[..2] {
        assert!(store.tasks.delete_owned(*id, owner, None).await.unwrap());
    }
    assert!(
        store
            .tasks
            .delete_owned(theirs.id, other, None)
            .await
            .unwrap()
    );
    // The two older deletions of `owner` (positions 4 and 5) are backdated
    // past the retention; the third deletion stays recent.
    store
        .raw(
            "UPDATE task_tombstones SET deleted_at = $1 WHERE user_id = $2",
            vec![store.instant(later(0)), owner.as_uuid().into()],
        )
        .await;
    assert!(store.tasks.delete_owned(ids[2], owner, None).await.unwrap());
    let cutoff = Timestamp::from_datetime(OffsetDateTime::now_utc() - time::Duration::days(1));
    // One at a time, oldest first: the floor rises batch by batch.
    assert_eq!(store.tasks.forget_deletions(cutoff, 1).await.unwrap(), 1);
    assert_eq!(store.tasks.forget_deletions(cutoff, 5).await.unwrap(), 1);

    let slice = store
        .tasks
        .changes_since(owner, Some(FeedPosition::at(0)), 100)
        .await
        .unwrap();
    assert_eq!(slice.floor, 5);
    assert_eq!(slice.head, 6);
    assert_eq!(
        slice
            .changes
            .iter()
            .map(|c| c.change.clone())
            .collect::<Vec<_>>(),
        [Change::Delete(ids[2])]
    );
    let theirs_slice = store.tasks.changes_since(other, None, 100).await.unwrap();
    assert_eq!(theirs_slice.floor, 0);
    // Nothing more to forget, and the floor never goes down.
    assert_eq!(store.tasks.forget_deletions(cutoff, 5).await.unwrap(), 0);
    let again = store.tasks.changes_since(owner, None, 100).await.unwrap();
    assert_eq!(again.floor, 5);
}

async fn the_feed_migration_numbers_existing_tasks_in_the_order_they_changed(store: Store) {
    // Back to just before the feed migration, however many came after it.
    let migrations = Migrator::migrations();
    let feed = migrations
        .iter()
        .position(|migration| migration.name() == "m20261203_000006_change_feed")
        .expect("the feed migration is listed");
    let steps = u32::try_from(migrations.len() - feed).unwrap();
    Migrator::down(store.db.connection(), Some(steps))
        .await
        .unwrap();
    let schema = SchemaManager::new(store.db.connection());
    assert!(!schema.has_table("task_tombstones").await.unwrap());
    assert!(!schema.has_column("tasks", "change_seq").await.unwrap());
    let owner = store.user().await;
    let older = store.stored(task(owner, "older", later(5))).await;
    let newer = store.stored(task(owner, "newer", later(1))).await;
    store
        .tasks
        .change_completion_owned(
            newer.id,
            owner,
            CompletionChange::Toggle,
            None,
            later(9),
            None,
        )
        .await
        .unwrap();

    Migrator::up(store.db.connection(), None).await.unwrap();
    let slice = store.tasks.changes_since(owner, None, 100).await.unwrap();
    assert_eq!(slice.head, 2);
    let order: Vec<(u64, TaskId)> = slice
        .changes
        .iter()
        .map(|c| (c.position, c.change.task_id()))
        .collect();
    assert_eq!(order, [(1, older.id), (2, newer.id)]);
    // The triggers take over from there.
    store.stored(task(owner, "after", later(10))).await;
    assert_eq!(head_of(&store, owner).await, 3);
}

/// Reads `owner`'s feed after `since` as the service does (a page of at
/// most `CHANGES_PAGE_MAX`), checking that storage answered in position
/// order.
async fn feed_page(
    tasks: &SeaTaskRepository,
    owner: UserId,
    since: Option<FeedPosition>,
) -> ChangePage {
    let slice = tasks
        .changes_since(owner, since, CHANGES_PAGE_MAX + 1)
        .await
        .expect("read the feed");
    assert!(
        slice
            .changes
            .windows(2)
            .all(|pair| pair[0].position < pair[1].position)
    );
    let from = since.unwrap_or(FeedPosition {
        tasks_after: 0,
        deletes_after: slice.head,
    });
    ChangePage::assemble(from, slice, CHANGES_PAGE_MAX)
}

/// Applies pages of the feed to `local` until none is left; the cursor
/// to read on from.
async fn catch_up(
    tasks: &SeaTaskRepository,
    owner: UserId,
    local: &mut std::collections::HashMap<TaskId, Task>,
    mut since: Option<FeedPosition>,
) -> FeedPosition {
    loop {
        let page = feed_page(tasks, owner, since).await;
        for change in page.changes {
            match change {
                Change::Upsert(task) => {
                    local.insert(task.id, task);
                }
                Change::Delete(id) => {
                    local.remove(&id);
                }
            }
        }
        since = Some(page.next);
        if !page.has_more {
            return page.next;
        }
    }
}

/// Writers create, change and delete one user's tasks at once, while a
/// reader follows the feed: every write path runs concurrently, none
/// deadlocks, and the reader's copy ends equal to the stored tasks.
async fn a_reader_following_the_feed_during_concurrent_writes_misses_nothing(store: Store) {
    let owner = store.user().await;
    let mut seeded = Vec::new();
    for n in 0..40 {
        seeded.push(store.stored(task(owner, "seed", later(n))).await.id);
    }
    let writers: Vec<_> = (0..4)
        .map(|writer: i64| {
            let tasks = store.tasks.clone();
            let mine: Vec<TaskId> = seeded
                .iter()
                .copied()
                .skip(usize::try_from(writer).unwrap() * 10)
                .take(10)
                .collect();
            tokio::spawn(async move {
                for round in 0..10 {
                    let at = later(100 + writer * 100 + round);
                    let id = mine[usize::try_from(round).unwrap()];
                    tasks
                        .change_completion_owned(
                            id,
                            owner,
                            CompletionChange::Toggle,
                            None,
                            at,
                            None,
                        )
                        .await
                        .unwrap();
                    let patch = TaskPatch {
                        title: Some(title(&format!("w{writer} r{round}"))),
                        labels: Some(labels(&[&format!("w{writer}")])),
                        ..TaskPatch::default()
                    };
                    tasks
                        .patch_owned(
                            mine[(usize::try_from(round).unwrap() + 1) % 10],
                            owner,
                            &patch,
                            None,
                            at,
                        )
                        .await
                        .unwrap();
                    let new = task(owner, "new", at);
                    tasks.insert(&new, MAX_TASKS, None).await.unwrap();
                    if round % 2 == 0 {
                        tasks.delete_owned(new.id, owner, None).await.unwrap();
                    }
                    if writer == 0 && round % 4 == 3 {
                        tasks.delete_completed(owner).await.unwrap();
                    }
                }
            })
        })
        .collect();

    let mut local = std::collections::HashMap::new();
    let mut cursor = catch_up(&store.tasks, owner, &mut local, None).await;
    while !writers.iter().all(tokio::task::JoinHandle::is_finished) {
        cursor = catch_up(&store.tasks, owner, &mut local, Some(cursor)).await;
    }
    for writer in writers {
        writer.await.expect("a writer finished without a failure");
    }
    catch_up(&store.tasks, owner, &mut local, Some(cursor)).await;

    let stored = store.list(owner, &TaskQuery::default()).await.tasks;
    assert_eq!(local.len(), stored.len());
    for task in stored {
        assert_eq!(local.get(&task.id), Some(&task));
    }
    // A fresh full read agrees too.
    let mut fresh = std::collections::HashMap::new();
    catch_up(&store.tasks, owner, &mut fresh, None).await;
    assert_eq!(fresh, local);
}
