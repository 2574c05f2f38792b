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
//! would queue every write behind the one before it.

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
use time::OffsetDateTime;
use todo_domain::ports::ChangeNotifier;
use todo_domain::{
    Labels, Priority, Task, TaskDescription, TaskId, TaskTitle, TaskVersion, Timestamp, UserId,
};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::Database;
use crate::entities::{task_changes, tasks};
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

/// The most written tasks one `NOTIFY` statement carries: each is a column
/// of its own, and PostgreSQL allows 1,664 in a select list.
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
    body: String,
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
            .filter(|body| body.len() <= LONGEST_PAYLOAD - PAYLOAD_BESIDES_TASK)
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
    let one_task = Prebuilt::new(
        db.get_database_backend()
            .build(&one_task_notice(stand_ins())),
        &values(stand_ins()),
    );
    loop {
        outbox.ready.notified().await;
        loop {
            let batch = outbox.take();
            if batch.is_empty() {
                break;
            }
            let statement = match (batch.owners.is_empty(), batch.written.as_slice()) {
                // Between bursts a statement usually carries one write.
                (true, [notice]) => one_task.bind(&values(one_task_arguments(notice))),
                _ => db.get_database_backend().build(&notices(&batch)),
            };
            if let Err(error) = db.execute_raw(statement).await {
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

/// `SELECT pg_notify(channel, payload), …`: every payload in one
/// statement. The owners go [`OWNERS_PER_NOTICE`] to a payload as
/// comma-separated ids; each written task goes in a payload of its own
/// ([`written_payload`]).
fn notices(batch: &Pending) -> SelectStatement {
    let mut select = Query::select();
    let owners: Vec<UserId> = batch.owners.iter().copied().collect();
    for payload in payloads(&owners) {
        select.expr(Func::cust("pg_notify").arg(CHANGES_CHANNEL).arg(payload));
    }
    for notice in &batch.written {
        select.expr(written_payload(one_task_arguments(notice)));
    }
    select
}

/// What a written task's notice is made of: its owner, its id, its
/// version and its body, in that order.
type OneTask = (String, Uuid, i64, String);

fn one_task_arguments(notice: &WrittenNotice) -> OneTask {
    (
        notice.owner.as_uuid().to_string(),
        notice.id.as_uuid(),
        // A version read from storage fits; one that did not would match
        // no row and leave the owner alone.
        i64::try_from(notice.version).unwrap_or(i64::MAX),
        format!(" {}", notice.body),
    )
}

/// Values no real notice has, for the statement built once: an owner and
/// a body that are not text this service writes, the largest id and the
/// smallest version.
fn stand_ins() -> OneTask {
    ("\0owner".into(), Uuid::max(), i64::MIN, "\0body".into())
}

fn values((owner, id, version, body): OneTask) -> [Value; 4] {
    [owner.into(), id.into(), version.into(), body.into()]
}

/// The statement for a batch of one written task.
fn one_task_notice(arguments: OneTask) -> SelectStatement {
    Query::select().expr(written_payload(arguments)).to_owned()
}

/// `pg_notify(channel, '<owner> <position> <task>')`, the position read
/// from the task's row, provided the row still has the version that was
/// written. When it has not (the task changed again or is gone), the
/// payload is the owner's id alone, and that change's own news follows.
fn written_payload((owner, id, version, body): OneTask) -> Expr {
    // Scoped here: in scope more widely, their methods shadow `str`'s.
    use sea_orm::sea_query::ExprTrait as _;
    use sea_orm::sea_query::extension::postgres::PgExpr as _;

    // `||` with a NULL is NULL, and `concat` skips a NULL: a row that
    // moved on leaves the owner alone.
    let position_and_task = Query::select()
        .expr(
            Expr::val(" ")
                .concat(Expr::col(task_changes::Column::ChangeSeq))
                .concat(Expr::val(body)),
        )
        .from(task_changes::Entity)
        .and_where(Expr::col(task_changes::Column::Id).eq(id))
        .and_where(Expr::col(tasks::Column::Version).eq(version))
        .to_owned();
    let payload = Func::cust("concat").arg(owner).arg(position_and_task);
    Func::cust("pg_notify")
        .arg(CHANGES_CHANNEL)
        .arg(payload)
        .into()
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

/// A written task as its notice carries it: the task's fields in the
/// forms storage keeps, instants in microseconds since 1970. The owner
/// travels in front of it.
#[derive(Serialize, Deserialize)]
struct TaskBody<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    title: Cow<'a, str>,
    #[serde(borrow)]
    description: Option<Cow<'a, str>>,
    completed: bool,
    completed_at: Option<i64>,
    due_at: Option<i64>,
    priority: i16,
    #[serde(borrow)]
    labels: Vec<Cow<'a, str>>,
    created_at: i64,
    updated_at: i64,
    version: u64,
}

/// `task` as JSON for its notice; `None` for an instant too far from 1970
/// for the microsecond count (no clock of this service makes one).
fn task_body(task: &Task) -> Option<String> {
    let id = task.id.as_uuid().to_string();
    let body = TaskBody {
        id: Cow::Borrowed(&id),
        title: Cow::Borrowed(task.title.as_str()),
        description: task
            .description
            .as_ref()
            .map(|text| Cow::Borrowed(text.as_str())),
        completed: task.completed,
        completed_at: optional_micros(task.completed_at)?,
        due_at: optional_micros(task.due_at)?,
        priority: task.priority.rank(),
        labels: task.labels.names().map(Cow::Borrowed).collect(),
        created_at: micros(task.created_at)?,
        updated_at: micros(task.updated_at)?,
        version: task.version.get(),
    };
    serde_json::to_string(&body).ok()
}

/// The task a notice carries for `owner`, checked by the domain's own
/// rules; `None` when anything in it does not pass.
fn task_from_body(owner: UserId, body: &str) -> Option<Task> {
    let body: TaskBody<'_> = serde_json::from_str(body).ok()?;
    Some(Task {
        id: TaskId::parse(&body.id).ok()?,
        owner,
        title: TaskTitle::parse_owned(body.title.into_owned()).ok()?,
        description: TaskDescription::parse_owned(body.description.map(Cow::into_owned)).ok()?,
        completed: body.completed,
        completed_at: optional_instant(body.completed_at)?,
        due_at: optional_instant(body.due_at)?,
        priority: Priority::from_rank(body.priority)?,
        labels: Labels::parse(&body.labels).ok()?,
        created_at: instant(body.created_at)?,
        updated_at: instant(body.updated_at)?,
        version: TaskVersion::new(body.version),
    })
}

fn micros(at: Timestamp) -> Option<i64> {
    i64::try_from(at.as_datetime().unix_timestamp_nanos() / 1_000).ok()
}

/// `Some(None)` for no instant, `None` for one out of range.
fn optional_micros(at: Option<Timestamp>) -> Option<Option<i64>> {
    at.map_or(Some(None), |at| micros(at).map(Some))
}

fn optional_instant(micros: Option<i64>) -> Option<Option<Timestamp>> {
    micros.map_or(Some(None), |micros| instant(micros).map(Some))
}

fn instant(micros: i64) -> Option<Timestamp> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .ok()
        .map(Timestamp::from_datetime)
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
        let payload = format!("{} 42 {body}", task.owner.as_uuid());
        assert!(!body.contains('\n'), "{body}");
        assert_eq!(read_notice(&payload), News::Written { task, position: 42 });
    }

    #[test]
    fn a_written_task_that_does_not_read_back_still_names_its_owner() {
        let owner = UserId::generate();
        let mut broken = task_body(&written_task(owner)).unwrap();
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
        assert!(batch.written[0].body.len() + PAYLOAD_BESIDES_TASK <= LONGEST_PAYLOAD);
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
        let sql = DbBackend::Postgres.build(&notices(&batch)).to_string();
        assert_eq!(sql.matches("pg_notify").count(), 2, "{sql}");
    }

    #[test]
    fn the_one_task_statement_built_once_is_what_a_fresh_build_gives() {
        let prebuilt = Prebuilt::new(
            DbBackend::Postgres.build(&one_task_notice(stand_ins())),
            &values(stand_ins()),
        );
        for task in [
            written_task(UserId::generate()),
            written_task(UserId::generate()),
        ] {
            let outbox = Outbox::default();
            outbox.note_written(&task);
            let batch = outbox.take();
            let bound = prebuilt.bind(&values(one_task_arguments(&batch.written[0])));
            let fresh = DbBackend::Postgres.build(&notices(&batch));
            assert_eq!(bound.sql, fresh.sql);
            assert_eq!(bound.values, fresh.values);
        }
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
        let sql = DbBackend::Postgres.build(&notices(&first)).to_string();
        assert_eq!(
            sql.matches("pg_notify").count(),
            TASKS_PER_STATEMENT,
            "{sql}"
        );
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
