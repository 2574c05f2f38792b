//! The news of task changes between instances (`PgChangeNotifier` and
//! `ChangeListener`), against a real PostgreSQL: two pools on one database
//! stand for two instances. The news exists only on PostgreSQL; on a
//! machine without it these tests say so on stderr and return (never in
//! CI, where `TestDatabase::preferred` fails instead).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::{ConnectionTrait, Statement};
use todo_domain::ports::{ChangeNotifier, TaskRepository, UserRepository};
use todo_domain::{
    Email, Labels, NewUser, PasswordHash, Priority, Task, TaskId, TaskPatch, TaskTitle,
    TaskVersion, Timestamp, UserId,
};
use todo_persistence::testing::TestDatabase;
use todo_persistence::{
    Backend, ChangeListener, Database, DatabaseSettings, PgChangeNotifier, SeaTaskRepository,
    SeaUserRepository, connect, migrate,
};
use tokio::sync::mpsc;

/// Long enough for a loaded CI machine; the contract's one second is
/// measured end to end by the api suite and the bench.
const PATIENCE: Duration = Duration::from_secs(5);

/// What a listener handed on.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Heard {
    Owner(UserId),
    Written(Task, Option<u64>),
    Everyone,
}

/// A [`ChangeNotifier`] that records what it is told.
struct Recorder(mpsc::UnboundedSender<Heard>);

impl ChangeNotifier for Recorder {
    fn changed(&self, owner: UserId) {
        let _ = self.0.send(Heard::Owner(owner));
    }

    fn written(&self, task: &Task, position: Option<u64>) {
        let _ = self.0.send(Heard::Written(task.clone(), position));
    }

    fn all_changed(&self) {
        let _ = self.0.send(Heard::Everyone);
    }
}

async fn open(database: &TestDatabase) -> Database {
    connect(&DatabaseSettings {
        url: database.url().to_owned(),
        max_connections: 3,
        acquire_timeout: Duration::from_secs(10),
        statement_timeout: Duration::from_secs(30),
    })
    .await
    .unwrap()
}

/// Two pools on one fresh PostgreSQL database, or `None` without one.
async fn two_instances() -> Option<(Database, Database, TestDatabase)> {
    let database = TestDatabase::preferred().await;
    if database.backend() != Backend::Postgres {
        return None;
    }
    let (writer, reader) = (open(&database).await, open(&database).await);
    // The statement that sends the news reads written tasks' rows.
    migrate(&writer).await.unwrap();
    Some((writer, reader, database))
}

/// Starts a listener on `db` and waits until it listens (it says so by
/// telling everyone to read the feed).
async fn listening(db: &Database) -> (ChangeListener, mpsc::UnboundedReceiver<Heard>) {
    let (sender, mut heard) = mpsc::unbounded_channel();
    let listener = ChangeListener::start(db, Arc::new(Recorder(sender))).expect("PostgreSQL");
    assert_eq!(next(&mut heard).await, Heard::Everyone);
    (listener, heard)
}

async fn next(heard: &mut mpsc::UnboundedReceiver<Heard>) -> Heard {
    tokio::time::timeout(PATIENCE, heard.recv())
        .await
        .expect("nothing heard in time")
        .expect("the listener hung up")
}

/// The process id of the connection that listens on `db`'s database.
async fn listening_backend(db: &Database) -> i32 {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT pid FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE 'LISTEN%'",
        ))
        .await
        .unwrap()
        .expect("a listening connection");
    row.try_get_by_index::<i32>(0).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn news_from_one_instance_names_the_owner_on_another() {
    let Some((writer, reader, _database)) = two_instances().await else {
        return;
    };
    let (_listener, mut heard) = listening(&reader).await;
    let notifier = PgChangeNotifier::start(writer);
    let alice = UserId::generate();
    notifier.changed(alice);
    assert_eq!(next(&mut heard).await, Heard::Owner(alice));
    let quiet = tokio::time::timeout(Duration::from_millis(300), heard.recv()).await;
    assert!(quiet.is_err(), "heard more than one owner: {quiet:?}");
}

/// A created or changed task arrives whole, with the position its write
/// took, which the sending statement read from the row; a task written
/// again before its news left has moved on, and its news names only the
/// owner (the later write's own news brings the task).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_written_task_arrives_whole_with_the_position_its_write_took() {
    let Some((writer, reader, _database)) = two_instances().await else {
        return;
    };
    let owner = UserId::generate();
    SeaUserRepository::new(writer.clone())
        .insert(&NewUser {
            id: owner,
            email: Email::parse("news@example.com").unwrap(),
            password_hash: PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$salt$hash".into()),
            created_at: Timestamp::now(),
        })
        .await
        .unwrap();
    let tasks = SeaTaskRepository::new(writer.clone());
    let now = Timestamp::now();
    let created = Task {
        id: TaskId::generate(),
        owner,
        title: TaskTitle::parse("first title").unwrap(),
        description: None,
        completed: false,
        completed_at: None,
        due_at: None,
        priority: Priority::None,
        labels: Labels::parse(&["news"]).unwrap(),
        created_at: now,
        updated_at: now,
        version: TaskVersion::FIRST,
    };
    tasks.insert(&created, 100, None).await.unwrap();
    let retitle = TaskPatch {
        title: Some(TaskTitle::parse("second title").unwrap()),
        ..TaskPatch::default()
    };
    let changed = tasks
        .patch_owned(created.id, owner, &retitle, None, Timestamp::now())
        .await
        .unwrap()
        .expect("the task is there");
    let head = tasks.changes_since(owner, None, 10).await.unwrap().head;

    let (_listener, mut heard) = listening(&reader).await;
    let notifier = PgChangeNotifier::start(writer);
    notifier.written(&created, None);
    notifier.written(&changed, None);
    assert_eq!(next(&mut heard).await, Heard::Owner(owner));
    assert_eq!(
        next(&mut heard).await,
        Heard::Written(changed, Some(head)),
        "the second write took the owner's latest position"
    );
}

/// More owners than one notice may carry all arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_writes_for_many_owners_names_every_owner() {
    let Some((writer, reader, _database)) = two_instances().await else {
        return;
    };
    let (_listener, mut heard) = listening(&reader).await;
    let notifier = PgChangeNotifier::start(writer);
    let owners: HashSet<_> = (0..450).map(|_| UserId::generate()).collect();
    for owner in &owners {
        notifier.changed(*owner);
        notifier.changed(*owner);
    }
    let mut named = HashSet::new();
    while named.len() < owners.len() {
        match next(&mut heard).await {
            Heard::Owner(owner) => {
                assert!(owners.contains(&owner), "a stranger: {owner:?}");
                named.insert(owner);
            }
            other => panic!("not an owner's name: {other:?}"),
        }
    }
}

/// A listening connection killed by the server (`pg_terminate_backend`, as
/// a restart or a failover does) is replaced; the listener then tells
/// everyone to read the feed, since news sent meanwhile is gone, and news
/// sent afterwards arrives again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_listening_connection_is_replaced_and_everyone_reads_again() {
    let Some((writer, reader, _database)) = two_instances().await else {
        return;
    };
    let (_listener, mut heard) = listening(&reader).await;
    let killed = listening_backend(&writer).await;
    writer
        .execute_raw(Statement::from_string(
            writer.get_database_backend(),
            format!("SELECT pg_terminate_backend({killed})"),
        ))
        .await
        .unwrap();
    assert_eq!(next(&mut heard).await, Heard::Everyone);
    assert_ne!(listening_backend(&writer).await, killed);

    let notifier = PgChangeNotifier::start(writer);
    let alice = UserId::generate();
    notifier.changed(alice);
    assert_eq!(next(&mut heard).await, Heard::Owner(alice));
}

/// On SQLite there is one instance and nothing to listen to.
#[tokio::test]
async fn sqlite_has_no_listener() {
    let database = TestDatabase::sqlite().await;
    let db = open(&database).await;
    let (sender, _heard) = mpsc::unbounded_channel();
    assert!(ChangeListener::start(&db, Arc::new(Recorder(sender))).is_none());
}
