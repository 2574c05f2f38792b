//! The adapters against real databases. Each test is written once, as an
//! async function taking a freshly migrated [`Store`], and `on_both_backends!`
//! runs it as `postgres::<name>` and as `sqlite::<name>`.
//!
//! The PostgreSQL variants use `TestDatabase::preferred()`: PostgreSQL
//! whenever it is reachable and always in CI (where a missing server fails
//! the run); on a machine without it they run on SQLite and say so.

use std::time::Duration;

use futures_util::future::join_all;
use migration::{Migrator, MigratorTrait, SchemaManager};
use sea_orm::sqlx::postgres::PgConnection;
use sea_orm::sqlx::{Connection as _, Executor as _};
use sea_orm::{ConnectionTrait, Statement, Value};
use time::OffsetDateTime;
use time::macros::datetime;
use todo_domain::ports::{
    IdentityRepository, SignInFailureRepository, TaskRepository, UserRepository,
};
use todo_domain::{
    CompletionChange, DomainError, Email, ExternalIdentity, NewExternalUser, NewUser, PasswordHash,
    Provisioned, Task, TaskChanges, TaskDescription, TaskId, TaskTitle, Timestamp, UserId,
};
use todo_domain::{SignInKey, SignInLimit};
use todo_persistence::testing::TestDatabase;
use todo_persistence::{
    Backend, Database, DatabaseSettings, SeaIdentityRepository, SeaSignInFailureRepository,
    SeaTaskRepository, SeaUserRepository, backend_of, connect, is_ready, migrate,
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
    insert_then_find_owned_round_trips_every_field,
    longest_title_and_description_fit,
    another_owner_finds_nothing_but_the_task_exists,
    exists_is_false_for_an_unknown_id,
    list_is_newest_first_with_id_breaking_ties_and_only_the_owners,
    list_orders_instants_within_one_second,
    update_replaces_text_and_keeps_completed_when_not_given,
    update_sets_completed_when_given,
    updated_at_never_moves_backwards,
    updated_at_compares_instants_within_one_second,
    toggling_twice_restores_the_state,
    setting_completed_is_idempotent,
    fifty_concurrent_toggles_lose_none,
    another_owner_can_change_or_delete_nothing,
    delete_owned_deletes_once,
    a_taken_email_is_refused,
    twenty_concurrent_sign_ups_for_one_email_succeed_once,
    record_sign_in_sets_last_signin_at,
    an_earlier_sign_in_does_not_move_last_signin_at_back,
    record_sign_in_of_an_unknown_user_is_user_not_found,
    find_credentials_returns_id_and_hash,
    deleting_a_user_deletes_their_tasks,
    a_stored_row_that_breaks_a_domain_rule_is_unexpected,
    a_closed_pool_is_unavailable,
    migrations_round_trip_down_and_up,
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

/// A migrated database and the two repositories over it.
struct Store {
    tasks: SeaTaskRepository,
    users: SeaUserRepository,
    identities: SeaIdentityRepository,
    sign_in_failures: SeaSignInFailureRepository,
    db: Database,
    backend: Backend,
    /// Dropped last, deleting the database.
    _database: TestDatabase,
}

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
        self.tasks.insert(&task).await.expect("insert task");
        task
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

    /// Stores a user of an external identity that must not exist yet.
    async fn external_user(&self, subject: &str, email: &str) -> NewExternalUser {
        let user = new_external_user(subject, email);
        match self.identities.insert_linked_user(&user).await {
            Ok(Provisioned::Created(_)) => user,
            other => panic!("expected a new user, got {other:?}"),
        }
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

fn task(owner: UserId, text: &str, created_at: Timestamp) -> Task {
    Task {
        id: TaskId::generate(),
        owner,
        title: title(text),
        description: None,
        completed: false,
        created_at,
        updated_at: created_at,
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

fn changes(text: &str, description_text: Option<&str>, completed: Option<bool>) -> TaskChanges {
    TaskChanges {
        title: title(text),
        description: description_text.and_then(description),
        completed,
    }
}

// --- connection -------------------------------------------------------------

async fn connection_reports_its_backend_and_is_ready(store: Store) {
    assert_eq!(backend_of(&store.db), store.backend);
    assert!(is_ready(&store.db).await);
}

// --- tasks ------------------------------------------------------------------

async fn insert_then_find_owned_round_trips_every_field(store: Store) {
    let owner = store.user().await;
    let rich = Task {
        id: TaskId::generate(),
        owner,
        title: title("שלום 👋🏽 مرحبا — ToDo ✓"),
        description: description("line one\nline two: 🦀 Ünïcödé, \"quotes\" and 'apostrophes'"),
        completed: true,
        created_at: stamp(datetime!(2026-02-06 10:15:23.123_456 UTC)),
        updated_at: stamp(datetime!(2026-02-06 10:15:24.000_001 UTC)),
    };
    let plain = Task {
        id: TaskId::generate(),
        owner,
        title: title("Buy milk"),
        description: None,
        completed: false,
        // Whole seconds and trailing zeros must survive too.
        created_at: stamp(datetime!(2026-02-06 10:15:23 UTC)),
        updated_at: stamp(datetime!(2026-02-06 10:15:23.5 UTC)),
    };
    for task in [rich, plain] {
        store.tasks.insert(&task).await.unwrap();
        let found = store.tasks.find_owned(task.id, owner).await.unwrap();
        assert_eq!(found, Some(task));
    }
}

async fn longest_title_and_description_fit(store: Store) {
    let owner = store.user().await;
    // Four bytes each: the limits are in characters, as `varchar(n)` counts.
    let task = Task {
        title: title(&"🦀".repeat(500)),
        description: description(&"é".repeat(2000)),
        ..task(owner, "x", later(0))
    };
    store.tasks.insert(&task).await.unwrap();
    assert_eq!(
        store.tasks.find_owned(task.id, owner).await.unwrap(),
        Some(task)
    );
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
        store.tasks.insert(task).await.unwrap();
    }

    let listed = store.tasks.list_by_owner(owner).await.unwrap();
    assert_eq!(listed, vec![tie_high, tie_low, middle, oldest]);
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
            // Ids rank against time, so only `created_at` can give the order.
            id: ranked_id(200 - rank),
            ..task(owner, "t", stamp(instant))
        })
        .collect();
    for task in tasks.iter().rev().step_by(2).chain(tasks.iter().step_by(2)) {
        store.tasks.insert(task).await.unwrap();
    }

    let listed = store.tasks.list_by_owner(owner).await.unwrap();
    let newest_first: Vec<Task> = tasks.into_iter().rev().collect();
    assert_eq!(listed, newest_first);
}

async fn update_replaces_text_and_keeps_completed_when_not_given(store: Store) {
    let owner = store.user().await;
    let original = Task {
        description: description("old description"),
        completed: true,
        ..task(owner, "old title", later(0))
    };
    store.tasks.insert(&original).await.unwrap();

    let updated = store
        .tasks
        .update_owned(
            original.id,
            owner,
            &changes("new title", Some("new description"), None),
            later(60),
        )
        .await
        .unwrap()
        .expect("own task is updated");
    let expected = Task {
        title: title("new title"),
        description: description("new description"),
        updated_at: later(60),
        ..original.clone()
    };
    assert_eq!(updated, expected);
    assert!(updated.completed, "completed kept");
    assert_eq!(updated.created_at, original.created_at);

    let cleared = store
        .tasks
        .update_owned(
            original.id,
            owner,
            &changes("new title", None, None),
            later(61),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cleared.description, None);
    assert_eq!(
        store.tasks.find_owned(original.id, owner).await.unwrap(),
        Some(cleared)
    );
}

async fn update_sets_completed_when_given(store: Store) {
    let owner = store.user().await;
    let task = store.stored(task(owner, "t", later(0))).await;

    let done = store
        .tasks
        .update_owned(task.id, owner, &changes("t", None, Some(true)), later(1))
        .await
        .unwrap()
        .unwrap();
    assert!(done.completed);
    let undone = store
        .tasks
        .update_owned(task.id, owner, &changes("t", None, Some(false)), later(2))
        .await
        .unwrap()
        .unwrap();
    assert!(!undone.completed);
}

async fn updated_at_never_moves_backwards(store: Store) {
    let owner = store.user().await;
    let task = store.stored(task(owner, "t", later(10))).await;

    let first = store
        .tasks
        .update_owned(task.id, owner, &changes("first", None, None), later(20))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.updated_at, later(20));

    // A writer with an older clock still changes the text, not the time.
    let second = store
        .tasks
        .update_owned(task.id, owner, &changes("second", None, None), later(15))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.title, title("second"));
    assert_eq!(second.updated_at, later(20));

    // Nor can an instant before creation pull it below `created_at`.
    let toggled = store
        .tasks
        .change_completion_owned(task.id, owner, CompletionChange::Toggle, later(0))
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
            .change_completion_owned(task.id, owner, CompletionChange::Toggle, at)
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
        .change_completion_owned(task.id, owner, CompletionChange::Toggle, later(1))
        .await
        .unwrap()
        .unwrap();
    assert!(once.completed);
    assert_eq!(once.updated_at, later(1));
    let twice = store
        .tasks
        .change_completion_owned(task.id, owner, CompletionChange::Toggle, later(2))
        .await
        .unwrap()
        .unwrap();
    assert!(!twice.completed);
    assert_eq!(twice.updated_at, later(2));
}

async fn setting_completed_is_idempotent(store: Store) {
    let owner = store.user().await;
    let task = store.stored(task(owner, "t", later(0))).await;

    let mut stamps = Vec::new();
    for second in 1..=2 {
        let set = store
            .tasks
            .change_completion_owned(task.id, owner, CompletionChange::Set(true), later(second))
            .await
            .unwrap()
            .unwrap();
        assert!(set.completed);
        stamps.push(set.updated_at);
    }
    assert_eq!(stamps[0], later(1), "the first set is a change");
    assert_eq!(stamps[1], later(1), "setting the same state again is not");
    let found = store
        .tasks
        .find_owned(task.id, owner)
        .await
        .unwrap()
        .unwrap();
    assert!(found.completed);
}

async fn fifty_concurrent_toggles_lose_none(store: Store) {
    let owner = store.user().await;
    let task = store.stored(task(owner, "t", later(0))).await;

    let toggles = (1..=50).map(|second| {
        store
            .tasks
            .change_completion_owned(task.id, owner, CompletionChange::Toggle, later(second))
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
    assert_eq!(found.updated_at, later(50));
}

async fn another_owner_can_change_or_delete_nothing(store: Store) {
    let owner = store.user().await;
    let stranger = store.user().await;
    let task = store.stored(task(owner, "mine", later(0))).await;

    let update = store
        .tasks
        .update_owned(
            task.id,
            stranger,
            &changes("theirs", None, Some(true)),
            later(1),
        )
        .await
        .unwrap();
    assert_eq!(update, None);
    let toggle = store
        .tasks
        .change_completion_owned(task.id, stranger, CompletionChange::Toggle, later(2))
        .await
        .unwrap();
    assert_eq!(toggle, None);
    assert!(!store.tasks.delete_owned(task.id, stranger).await.unwrap());

    assert_eq!(
        store.tasks.find_owned(task.id, owner).await.unwrap(),
        Some(task)
    );
}

async fn delete_owned_deletes_once(store: Store) {
    let owner = store.user().await;
    let task = store.stored(task(owner, "t", later(0))).await;

    assert!(store.tasks.delete_owned(task.id, owner).await.unwrap());
    assert!(!store.tasks.delete_owned(task.id, owner).await.unwrap());
    assert_eq!(store.tasks.find_owned(task.id, owner).await.unwrap(), None);
    assert!(!store.tasks.exists(task.id).await.unwrap());
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

async fn deleting_a_user_deletes_their_tasks(store: Store) {
    let owner = store.user().await;
    let other = store.user().await;
    let doomed = store.stored(task(owner, "doomed", later(0))).await;
    let kept = store.stored(task(other, "kept", later(0))).await;

    let deleted = store
        .raw(
            "DELETE FROM users WHERE id = $1",
            vec![owner.as_uuid().into()],
        )
        .await;
    assert_eq!(deleted, 1);

    assert!(!store.tasks.exists(doomed.id).await.unwrap());
    assert!(store.tasks.exists(kept.id).await.unwrap());
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
    let err = store.tasks.list_by_owner(owner).await.unwrap_err();
    assert!(matches!(err, DomainError::Unexpected(_)), "{err:?}");
}

async fn a_closed_pool_is_unavailable(store: Store) {
    let owner = store.user().await;
    store.db.close().await.unwrap();

    let err = store.tasks.list_by_owner(owner).await.unwrap_err();
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
    let err = store.tasks.list_by_owner(owner).await.unwrap_err();
    assert!(matches!(err, DomainError::Unexpected(_)), "{err:?}");

    Migrator::up(store.db.connection(), None).await.unwrap();
    assert!(schema.has_table("tasks").await.unwrap());
    assert!(store.tasks.list_by_owner(owner).await.unwrap().is_empty());
    let owner = store.user().await;
    let task = store.stored(task(owner, "again", later(0))).await;
    assert_eq!(
        store.tasks.find_owned(task.id, owner).await.unwrap(),
        Some(task)
    );
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
/// identity migration over them: the rebuild of `users` and `tasks` must
/// keep every row and every value (and, on SQLite, must not let dropping
/// the old `users` cascade into `tasks`).
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
        store.stored(task(owner, "first", later(1))).await,
        store.stored(task(owner, "second", later(2))).await,
    ];
    let flipped = store
        .tasks
        .change_completion_owned(kept[0].id, owner, CompletionChange::Toggle, later(3))
        .await
        .unwrap()
        .unwrap();
    kept[0] = flipped;
    let others = store.stored(task(other, "theirs", later(4))).await;
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
    assert_eq!(store.tasks.list_by_owner(owner).await.unwrap(), kept);
    assert_eq!(
        store.tasks.list_by_owner(other).await.unwrap(),
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
    assert!(store.tasks.list_by_owner(owner).await.unwrap().is_empty());
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
    assert_eq!(
        store.tasks.list_by_owner(local).await.unwrap(),
        vec![local_task]
    );
    assert_eq!(store.count("SELECT COUNT(*) FROM tasks", vec![]).await, 1);

    Migrator::up(store.db.connection(), None).await.unwrap();
    assert!(store.users.find_by_id(local).await.unwrap().is_some());
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
    let task = store.stored(task(owner, "t", created)).await;
    store
        .tasks
        .change_completion_owned(
            task.id,
            owner,
            CompletionChange::Toggle,
            stamp(datetime!(2026-02-06 10:15:24 UTC)),
        )
        .await
        .unwrap();

    let statement = Statement::from_string(
        store.db.get_database_backend(),
        "SELECT created_at, updated_at, typeof(id), typeof(user_id) FROM tasks",
    );
    let row = store.db.query_one_raw(statement).await.unwrap().unwrap();
    let column = |index| row.try_get_by_index::<String>(index).unwrap();
    assert_eq!(column(0), "2026-02-06T10:15:23.500000Z");
    assert_eq!(column(1), "2026-02-06T10:15:24.000000Z");
    assert_eq!(column(2), "blob");
    assert_eq!(column(3), "blob");
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
    for listed in join_all((0..5).map(|_| store.tasks.list_by_owner(owner))).await {
        listed.unwrap();
    }

    end_every_session().await;
    let mut failures = 0;
    while let Err(err) = store.tasks.list_by_owner(owner).await {
        assert!(matches!(err, DomainError::Unavailable(_)), "{err:?}");
        failures += 1;
        assert!(failures <= 5, "a dead connection was handed out twice");
    }
    for _ in 0..10 {
        store.tasks.list_by_owner(owner).await.unwrap();
    }

    end_every_session().await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    for _ in 0..10 {
        store.tasks.list_by_owner(owner).await.unwrap();
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

    // The statement the task repository sends for a list.
    let plan = store
        .db
        .query_all_raw(Statement::from_sql_and_values(
            store.db.get_database_backend(),
            r#"EXPLAIN SELECT "tasks"."id", "tasks"."user_id", "tasks"."title", "tasks"."description", "tasks"."completed", "tasks"."created_at", "tasks"."updated_at" FROM "tasks" WHERE "tasks"."user_id" = $1 ORDER BY "tasks"."created_at" DESC, "tasks"."id" DESC"#,
            [Value::from(owner)],
        ))
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
    assert_eq!(show(&db, "random_page_cost").await, "1.1");
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
