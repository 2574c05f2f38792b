//! News of task changes between the instances that share one PostgreSQL
//! database (specs/004-sync/decisions.md, "Across instances").
//!
//! After a write commits, the instance that made it sends a `NOTIFY` on one
//! channel; every instance keeps one connection that `LISTEN`s on that
//! channel and hands what it hears to its own streams. A created or changed
//! task travels whole, with the position its write took, which the `NOTIFY`
//! statement looks up by the task's id and version: a stream standing right
//! before that position sends it on without reading the feed. A delete, or a
//! task written again before its news left, travels as the owner's id alone,
//! and streams read the feed. The feed stays the source of truth, so news
//! that is lost costs a delay, never a change. A listener that had to
//! reconnect tells every stream to read the feed again, which covers
//! whatever was sent while it was away.
//!
//! The `NOTIFY` runs after the write's commit, in its own statement, and
//! the news of many writes travels together: PostgreSQL serialises the
//! commits of transactions that notify, so a `NOTIFY` inside each write
//! would queue every write behind the one before it. That statement's
//! text never changes (the news is its one argument, a JSON array), so it
//! is built once and never assembled per write.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sea_orm::prelude::Uuid;
use sea_orm::sea_query::{Expr, Func, Query, SelectStatement};
use sea_orm::sqlx::PgPool;
use sea_orm::sqlx::postgres::{PgListener, PgPoolOptions};
use sea_orm::{ConnectionTrait, DatabaseConnectionType, Value};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;
use todo_domain::ports::ChangeNotifier;
use todo_domain::{Task, TaskId, Timestamp, UserId};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::Database;
use crate::conversions::stored_labels;
use crate::entities::{QuietNull, task_changes, tasks};
use crate::prebuilt::Prebuilt;

/// The channel the news travels on.
pub const CHANGES_CHANNEL: &str = "todo_task_changes";

/// PostgreSQL refuses a payload of 8,000 bytes or more; an id and its comma
/// take 37, so one notice names at most this many owners.
const OWNERS_PER_NOTICE: usize = 200;

/// The largest payload a written task's notice may need: its owner, a
/// position of up to 20 digits, two spaces and the task. A task that would
/// not fit travels as its owner's id alone.
const LONGEST_PAYLOAD: usize = 7_999;
const PAYLOAD_BESIDES_TASK: usize = 36 + 1 + 20 + 1;

/// The most written tasks one `NOTIFY` statement carries, so that one
/// statement's news stays a few megabytes at most.
const TASKS_PER_STATEMENT: usize = 256;

/// How long the sender waits before it tries again after a failure.
const SEND_RETRY_PAUSE: Duration = Duration::from_millis(250);

/// How long one attempt to open the listening connection may take.
const LISTEN_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The first and the longest pause between attempts to listen again.
const FIRST_LISTEN_PAUSE: Duration = Duration::from_millis(100);
const LONGEST_LISTEN_PAUSE: Duration = Duration::from_secs(5);

/// Tells every instance on the database whose tasks changed: the
/// [`ChangeNotifier`] a [`TaskService`](todo_domain::TaskService) gets on
/// PostgreSQL. `changed` only notes the owner and returns; a background
/// task sends everything noted since its last send in one statement, so a
/// burst of writes costs one `NOTIFY` round trip, not one each.
pub struct PgChangeNotifier {
    outbox: Arc<Outbox>,
    sender: JoinHandle<()>,
}

/// News noted and not yet sent.
#[derive(Default)]
struct Outbox {
    pending: Mutex<Pending>,
    ready: Notify,
}

/// What the next `NOTIFY` statement is to carry.
#[derive(Default)]
struct Pending {
    /// Owners whose change travels as their id alone, each named once.
    owners: HashSet<UserId>,
    /// Written tasks, in the order their writes finished.
    written: Vec<WrittenNotice>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.owners.is_empty() && self.written.is_empty()
    }
}

/// A written task on its way: enough to find the position its write took,
/// and the task as its payload carries it.
struct WrittenNotice {
    owner: UserId,
    id: TaskId,
    version: u64,
    body: Box<RawValue>,
}

impl Outbox {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        // Each change to the lists is a single insert, push or swap, never
        // left half done by a panic, so a poisoned lock still guards them.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn note(&self, owner: UserId) {
        self.pending().owners.insert(owner);
        self.ready.notify_one();
    }

    fn note_written(&self, task: &Task) {
        let notice = task_body(task)
            .filter(|body| body.get().len() <= LONGEST_PAYLOAD - PAYLOAD_BESIDES_TASK)
            .map(|body| WrittenNotice {
                owner: task.owner,
                id: task.id,
                version: task.version.get(),
                body,
            });
        match notice {
            Some(notice) => self.pending().written.push(notice),
            None => {
                self.pending().owners.insert(task.owner);
            }
        }
        self.ready.notify_one();
    }

    /// Everything noted, but at most [`TASKS_PER_STATEMENT`] written
    /// tasks; the rest stay for the next statement.
    fn take(&self) -> Pending {
        let mut pending = self.pending();
        let now = pending.written.len().min(TASKS_PER_STATEMENT);
        let rest = pending.written.split_off(now);
        Pending {
            owners: std::mem::take(&mut pending.owners),
            written: std::mem::replace(&mut pending.written, rest),
        }
    }

    /// Puts a batch that could not be sent back in front of what arrived
    /// since.
    fn restore(&self, mut batch: Pending) {
        let mut pending = self.pending();
        pending.owners.extend(batch.owners);
        batch.written.append(&mut pending.written);
        pending.written = batch.written;
    }
}

impl PgChangeNotifier {
    /// Starts the sender on the current tokio runtime. It stops when the
    /// notifier is dropped.
    #[must_use]
    pub fn start(db: Database) -> Self {
        let outbox = Arc::new(Outbox::default());
        let sender = tokio::spawn(send_news(db, outbox.clone()));
        Self { outbox, sender }
    }
}

impl Drop for PgChangeNotifier {
    fn drop(&mut self) {
        self.sender.abort();
    }
}

impl ChangeNotifier for PgChangeNotifier {
    fn changed(&self, owner: UserId) {
        self.outbox.note(owner);
    }

    fn written(&self, task: &Task, _position: Option<u64>) {
        // A writer never knows the position; the statement that sends the
        // news looks it up.
        self.outbox.note_written(task);
    }

    fn all_changed(&self) {
        // Only a listener learns that news was lost; a writer names owners.
    }
}

/// Sends whatever the outbox holds, each time it is told there is some.
/// While a send is on its way, new news gathers for the next one. A send
/// that fails is tried again with what arrived since: a lost notice would
/// leave other instances' streams waiting for the next write.
async fn send_news(db: Database, outbox: Arc<Outbox>) {
    let statement = Prebuilt::new(
        db.get_database_backend().build(&notices(NEWS_STAND_IN)),
        &[Value::from(NEWS_STAND_IN)],
    );
    loop {
        outbox.ready.notified().await;
        loop {
            let batch = outbox.take();
            if batch.is_empty() {
                break;
            }
            let news = news_json(&batch);
            if let Err(error) = db.execute_raw(statement.bind(&[Value::from(news)])).await {
                tracing::warn!(
                    %error,
                    owners = batch.owners.len(),
                    tasks = batch.written.len(),
                    "change news not sent; retrying"
                );
                outbox.restore(batch);
                tokio::time::sleep(SEND_RETRY_PAUSE).await;
            }
        }
    }
}

/// A value no batch is, for the statement built once.
const NEWS_STAND_IN: &str = "\0news";

/// One `pg_notify(channel, payload)` for each element of `news`, a JSON
/// array (`news_json`), in its order. An element names `owner` (one id,
/// or several separated by commas) and, for a written task, the task's
/// `id`, `version` and `task`; the payload is the owner and, when the
/// task's row still has that version, ` <position> <task>`, the position
/// read from the row. A row that has moved on (the task changed again or
/// is gone) leaves the owner alone, and that change's own news follows.
/// The text of the statement is the same for every batch, so it is
/// built once and prepared once per connection.
fn notices(news: &str) -> SelectStatement {
    // Scoped here: in scope more widely, their methods shadow `str`'s.
    use sea_orm::sea_query::ExprTrait as _;
    use sea_orm::sea_query::extension::postgres::PgExpr as _;

    let element = || Expr::col(NEWS_ELEMENT);
    let position_and_task = Query::select()
        .expr(
            Expr::val(" ")
                .concat(Expr::col(task_changes::Column::ChangeSeq))
                .concat(Expr::val(" "))
                .concat(element().get_json_field("task").cast_as("text")),
        )
        .from(task_changes::Entity)
        .and_where(
            Expr::col(task_changes::Column::Id).eq(element().cast_json_field("id").cast_as("uuid")),
        )
        .and_where(
            Expr::col(tasks::Column::Version)
                .eq(element().cast_json_field("version").cast_as("bigint")),
        )
        .to_owned();
    let payload = Func::cust("concat")
        .arg(element().cast_json_field("owner"))
        .arg(position_and_task);
    Query::select()
        .expr(Func::cust("pg_notify").arg(CHANGES_CHANNEL).arg(payload))
        .from_function(
            Func::cust("json_array_elements").arg(Expr::val(news).cast_as("json")),
            NEWS_ELEMENT,
        )
        .to_owned()
}

/// The name each element of the news goes by in [`notices`].
const NEWS_ELEMENT: &str = "news_element";

/// One element of the news array: an owner alone (or several, comma
/// separated), or a written task.
#[derive(Serialize)]
struct NewsElement<'a> {
    owner: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    task: Option<&'a RawValue>,
}

/// The batch as the JSON array [`notices`] takes: owners
/// [`OWNERS_PER_NOTICE`] to an element, then each written task.
fn news_json(batch: &Pending) -> String {
    let owners: Vec<UserId> = batch.owners.iter().copied().collect();
    let named = payloads(&owners).map(|owner| NewsElement {
        owner,
        id: None,
        version: None,
        task: None,
    });
    let written = batch.written.iter().map(|notice| NewsElement {
        owner: notice.owner.as_uuid().to_string(),
        id: Some(notice.id.as_uuid()),
        // A version read from storage fits; one that did not would match
        // no row and leave the owner alone.
        version: Some(i64::try_from(notice.version).unwrap_or(i64::MAX)),
        task: Some(&notice.body),
    });
    let elements: Vec<NewsElement<'_>> = named.chain(written).collect();
    // Strings, ids, numbers and JSON already checked: nothing here can fail
    // to serialise; an empty array would only send nothing.
    serde_json::to_string(&elements).unwrap_or_else(|_| "[]".to_owned())
}

/// The owners as comma-separated ids, [`OWNERS_PER_NOTICE`] to a payload.
fn payloads(owners: &[UserId]) -> impl Iterator<Item = String> + '_ {
    owners.chunks(OWNERS_PER_NOTICE).map(|chunk| {
        chunk
            .iter()
            .map(|owner| owner.as_uuid().to_string())
            .collect::<Vec<_>>()
            .join(",")
    })
}

/// A written task as its notice carries it: the task's row, in the forms
/// storage keeps (instants in microseconds since 1970), so it reads back
/// through the same conversion, and the same checks, as a row read from
/// the database. The owner travels in front of it.
#[derive(Serialize, Deserialize)]
struct TaskBody<'a> {
    id: Uuid,
    #[serde(borrow)]
    title: Cow<'a, str>,
    #[serde(borrow)]
    description: Option<Cow<'a, str>>,
    completed: bool,
    completed_at: Option<i64>,
    due_at: Option<i64>,
    priority: i16,
    #[serde(borrow)]
    labels: Cow<'a, str>,
    created_at: i64,
    updated_at: i64,
    version: i64,
}

/// `task` as JSON for its notice; `None` for an instant too far from 1970
/// for the microsecond count (no clock of this service makes one).
fn task_body(task: &Task) -> Option<Box<RawValue>> {
    let body = TaskBody {
        id: task.id.as_uuid(),
        title: Cow::Borrowed(task.title.as_str()),
        description: task
            .description
            .as_ref()
            .map(|text| Cow::Borrowed(text.as_str())),
        completed: task.completed,
        completed_at: optional_micros(task.completed_at)?,
        due_at: optional_micros(task.due_at)?,
        priority: task.priority.rank(),
        labels: Cow::Owned(stored_labels(&task.labels)),
        created_at: micros(task.created_at)?,
        updated_at: micros(task.updated_at)?,
        version: i64::try_from(task.version.get()).ok()?,
    };
    serde_json::value::to_raw_value(&body).ok()
}

/// The task a notice carries for `owner`, checked as a stored row is;
/// `None` when anything in it does not pass.
fn task_from_body(owner: UserId, body: &str) -> Option<Task> {
    let body: TaskBody<'_> = serde_json::from_str(body).ok()?;
    let row = tasks::Model {
        id: body.id,
        user_id: owner.as_uuid(),
        title: body.title.into_owned(),
        description: body.description.map(|text| QuietNull(text.into_owned())),
        completed: body.completed,
        completed_at: optional_instant(body.completed_at)?.map(QuietNull),
        due_at: optional_instant(body.due_at)?.map(QuietNull),
        priority: body.priority,
        labels: body.labels.into_owned(),
        version: body.version,
        created_at: instant(body.created_at)?,
        updated_at: instant(body.updated_at)?,
    };
    Task::try_from(row).ok()
}

fn micros(at: Timestamp) -> Option<i64> {
    i64::try_from(at.as_datetime().unix_timestamp_nanos() / 1_000).ok()
}

/// `Some(None)` for no instant, `None` for one out of range.
fn optional_micros(at: Option<Timestamp>) -> Option<Option<i64>> {
    at.map_or(Some(None), |at| micros(at).map(Some))
}

fn optional_instant(micros: Option<i64>) -> Option<Option<OffsetDateTime>> {
    micros.map_or(Some(None), |micros| instant(micros).map(Some))
}

fn instant(micros: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000).ok()
}

/// What one notice says.
#[derive(Debug, PartialEq, Eq)]
enum News {
    /// These owners' tasks changed.
    Owners(Vec<UserId>),
    /// This task was written, taking this position in its owner's feed.
    Written { task: Task, position: u64 },
}

/// Reads a payload. Anything that is not what this service sends (no one
/// else sends on the channel) is skipped; a written task that does not
/// read back whole still names its owner.
fn read_notice(payload: &str) -> News {
    let mut parts = payload.splitn(3, ' ');
    let (Some(owner), Some(position), Some(body)) = (parts.next(), parts.next(), parts.next())
    else {
        return News::Owners(
            payload
                .split(',')
                .filter_map(|raw| UserId::parse(raw).ok())
                .collect(),
        );
    };
    let Ok(owner) = UserId::parse(owner) else {
        return News::Owners(Vec::new());
    };
    match (position.parse(), task_from_body(owner, body)) {
        (Ok(position), Some(task)) => News::Written { task, position },
        _ => {
            tracing::warn!(
                "a written task's news did not read back; its owner's streams read the feed"
            );
            News::Owners(vec![owner])
        }
    }
}

/// Hands what a notice says on.
fn pass_on(notice: &str, wake: &dyn ChangeNotifier) {
    match read_notice(notice) {
        News::Owners(owners) => owners.into_iter().for_each(|owner| wake.changed(owner)),
        News::Written { task, position } => wake.written(&task, Some(position)),
    }
}

/// The listening side: one connection per instance, on which every notice
/// arrives. Dropping it stops listening.
///
/// The connection is its own, outside the service's pool (opened with the
/// same options): it is held for as long as the instance runs, and taking
/// it from the pool would leave requests one connection short, or none
/// with `DATABASE_MAX_CONNECTIONS=1`.
pub struct ChangeListener {
    task: JoinHandle<()>,
}

impl Drop for ChangeListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ChangeListener {
    /// Starts listening on the current tokio runtime and hands each notice
    /// to `wake`. `None` on SQLite: there is one instance, and its writes
    /// wake its streams in process.
    #[must_use]
    pub fn start(db: &Database, wake: Arc<dyn ChangeNotifier>) -> Option<Self> {
        let connection = db.connection();
        // Matching on the variant first makes the accessor, which panics on
        // any other variant, safe to call.
        let DatabaseConnectionType::SqlxPostgresPoolConnection(_) = &connection.inner else {
            return None;
        };
        let options = connection.get_postgres_connection_pool().connect_options();
        // sqlx's listener reconnects through a pool; this one holds just the
        // listening connection, kept however long it lives, and gives up on
        // a connect soon enough for `listen` to try again on its own terms.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .max_lifetime(None)
            .idle_timeout(None)
            .acquire_timeout(LISTEN_CONNECT_TIMEOUT)
            .connect_lazy_with((*options).clone());
        Some(Self {
            task: tokio::spawn(listen(pool, wake)),
        })
    }
}

/// Listens until the [`ChangeListener`] is dropped. Each time it (re)starts
/// listening, every stream is told to read the feed: notices sent while no
/// one listened are gone, the changes they announced are not.
async fn listen(pool: PgPool, wake: Arc<dyn ChangeNotifier>) {
    let mut pause = FIRST_LISTEN_PAUSE;
    loop {
        match subscribe(&pool).await {
            Ok(mut listener) => {
                pause = FIRST_LISTEN_PAUSE;
                tracing::debug!("listening for change news");
                wake.all_changed();
                loop {
                    match listener.try_recv().await {
                        Ok(Some(notice)) => pass_on(notice.payload(), wake.as_ref()),
                        // The connection dropped and sqlx has listened
                        // again on a new one.
                        Ok(None) => {
                            tracing::warn!("change listener reconnected");
                            wake.all_changed();
                        }
                        Err(error) => {
                            tracing::warn!(%error, "change listener lost its connection");
                            break;
                        }
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "change listener could not listen"),
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(LONGEST_LISTEN_PAUSE);
    }
}

async fn subscribe(pool: &PgPool) -> Result<PgListener, sea_orm::sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANGES_CHANNEL).await?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::DbBackend;
    use time::macros::datetime;
    use todo_domain::{Labels, Priority, TaskDescription, TaskTitle, TaskVersion};

    /// A task with every field set, text that JSON must escape included.
    fn written_task(owner: UserId) -> Task {
        let at = |instant| Timestamp::from_datetime(instant);
        Task {
            id: TaskId::generate(),
            owner,
            title: TaskTitle::parse("Say \"hello\" in ünïcode 🌱").unwrap(),
            description: TaskDescription::parse(Some("line one\nline two")).unwrap(),
            completed: true,
            completed_at: Some(at(datetime!(2026-12-03 10:00:00.123456 UTC))),
            due_at: Some(at(datetime!(1969-07-20 20:17 UTC))),
            priority: Priority::High,
            labels: Labels::parse(&["home", "Garden"]).unwrap(),
            created_at: at(datetime!(2026-12-01 08:00 UTC)),
            updated_at: at(datetime!(2026-12-03 10:00:00.123456 UTC)),
            version: TaskVersion::new(7),
        }
    }

    #[test]
    fn a_notice_names_its_owners_and_skips_anything_else() {
        let (alice, bob) = (UserId::generate(), UserId::generate());
        let payload = format!("{},not-an-id,{}", alice.as_uuid(), bob.as_uuid());
        assert_eq!(read_notice(&payload), News::Owners(vec![alice, bob]));
    }

    #[test]
    fn a_written_task_travels_whole_with_its_position() {
        let task = written_task(UserId::generate());
        let body = task_body(&task).unwrap();
        let payload = format!("{} 42 {}", task.owner.as_uuid(), body.get());
        assert!(!body.get().contains('\n'), "{}", body.get());
        assert_eq!(read_notice(&payload), News::Written { task, position: 42 });
    }

    #[test]
    fn a_written_task_that_does_not_read_back_still_names_its_owner() {
        let owner = UserId::generate();
        let mut broken = task_body(&written_task(owner)).unwrap().get().to_owned();
        broken.truncate(broken.len() - 1);
        for payload in [
            format!("{} 42 {broken}", owner.as_uuid()),
            format!("{} 42 {{\"title\":\"\"}}", owner.as_uuid()),
            format!(
                "{} not-a-position {}",
                owner.as_uuid(),
                task_body(&written_task(owner)).unwrap()
            ),
        ] {
            assert_eq!(
                read_notice(&payload),
                News::Owners(vec![owner]),
                "{payload}"
            );
        }
    }

    #[test]
    fn a_task_too_large_for_a_payload_travels_as_its_owner() {
        let owner = UserId::generate();
        let mut huge = written_task(owner);
        huge.description = TaskDescription::parse(Some(&"🌱".repeat(2_000))).unwrap();
        let outbox = Outbox::default();
        outbox.note_written(&huge);
        outbox.note_written(&written_task(owner));
        let batch = outbox.take();
        assert_eq!(batch.owners, HashSet::from([owner]));
        assert_eq!(batch.written.len(), 1);
        assert!(batch.written[0].body.get().len() + PAYLOAD_BESIDES_TASK <= LONGEST_PAYLOAD);
    }

    #[test]
    fn many_owners_are_split_into_payloads_postgres_accepts() {
        let owners: Vec<_> = (0..=OWNERS_PER_NOTICE)
            .map(|_| UserId::generate())
            .collect();
        let payloads: Vec<_> = payloads(&owners).collect();
        assert_eq!(payloads.len(), 2);
        assert!(payloads.iter().all(|payload| payload.len() < 8000));
        let named: Vec<_> = payloads
            .iter()
            .flat_map(|payload| match read_notice(payload) {
                News::Owners(owners) => owners,
                News::Written { .. } => panic!("an owners' payload read as a task"),
            })
            .collect();
        assert_eq!(named, owners);
        let batch = Pending {
            owners: owners.into_iter().collect(),
            written: Vec::new(),
        };
        assert_eq!(elements(&batch).len(), 2);
    }

    /// The news array of a batch, read back.
    fn elements(batch: &Pending) -> Vec<serde_json::Value> {
        match serde_json::from_str(&news_json(batch)).unwrap() {
            serde_json::Value::Array(elements) => elements,
            other => panic!("not an array: {other}"),
        }
    }

    #[test]
    fn the_statement_built_once_is_what_a_fresh_build_gives() {
        let prebuilt = Prebuilt::new(
            DbBackend::Postgres.build(&notices(NEWS_STAND_IN)),
            &[Value::from(NEWS_STAND_IN)],
        );
        let outbox = Outbox::default();
        outbox.note(UserId::generate());
        outbox.note_written(&written_task(UserId::generate()));
        let news = news_json(&outbox.take());
        let bound = prebuilt.bind(&[Value::from(news.clone())]);
        let fresh = DbBackend::Postgres.build(&notices(&news));
        assert_eq!(bound.sql, fresh.sql);
        assert_eq!(bound.values, fresh.values);
    }

    #[test]
    fn a_written_task_goes_in_the_news_with_what_finds_its_row() {
        let task = written_task(UserId::generate());
        let outbox = Outbox::default();
        outbox.note_written(&task);
        let elements = elements(&outbox.take());
        assert_eq!(elements.len(), 1);
        let element = &elements[0];
        assert_eq!(element["owner"], task.owner.as_uuid().to_string());
        assert_eq!(element["id"], task.id.as_uuid().to_string());
        assert_eq!(element["version"], 7);
        // The task's own JSON, as the listener reads it back.
        let body = element["task"].to_string();
        assert_eq!(task_from_body(task.owner, &body), Some(task));
    }

    #[test]
    fn each_written_task_has_a_notice_and_a_statement_carries_a_bounded_number() {
        let owner = UserId::generate();
        let outbox = Outbox::default();
        let tasks: Vec<_> = (0..TASKS_PER_STATEMENT + 1)
            .map(|_| written_task(owner))
            .collect();
        tasks.iter().for_each(|task| outbox.note_written(task));
        let first = outbox.take();
        assert_eq!(elements(&first).len(), TASKS_PER_STATEMENT);
        let second = outbox.take();
        assert_eq!(second.written.len(), 1);
        assert_eq!(second.written[0].id, tasks[TASKS_PER_STATEMENT].id);
        assert!(outbox.take().is_empty());
    }

    #[tokio::test]
    async fn news_noted_during_a_send_is_kept_for_the_next_and_a_failed_send_goes_first() {
        let outbox = Outbox::default();
        let (alice, bob) = (UserId::generate(), UserId::generate());
        outbox.note(alice);
        outbox.note(alice);
        let first = outbox.take();
        assert_eq!(first.owners, HashSet::from([alice]));
        outbox.note(bob);
        let (earlier, later) = (written_task(alice), written_task(bob));
        outbox.note_written(&earlier);
        let failed = outbox.take();
        outbox.note_written(&later);
        outbox.restore(failed);
        let retried = outbox.take();
        assert_eq!(retried.owners, HashSet::from([bob]));
        let ids: Vec<_> = retried.written.iter().map(|notice| notice.id).collect();
        assert_eq!(ids, vec![earlier.id, later.id]);
        assert!(outbox.take().is_empty());
    }
}
