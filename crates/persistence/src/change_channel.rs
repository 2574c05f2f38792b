//! News of task changes between the instances that share one PostgreSQL
//! database (specs/004-sync/decisions.md, "Across instances").
//!
//! After a write commits, the instance that made it sends a `NOTIFY` on one
//! channel naming the owner; every instance keeps one connection that
//! `LISTEN`s on that channel and wakes its own streams. The news carries no
//! change, only whose tasks changed: the feed is what streams read, so news
//! that is lost costs a delay, never a change. A listener that had to
//! reconnect tells every stream to read the feed again, which covers
//! whatever was sent while it was away.
//!
//! The `NOTIFY` runs after the write's commit, in its own statement, and
//! the news of many writes travels together: PostgreSQL serialises the
//! commits of transactions that notify, so a `NOTIFY` inside each write
//! would queue every write behind the one before it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sea_orm::sea_query::{Func, Query, SelectStatement};
use sea_orm::sqlx::PgPool;
use sea_orm::sqlx::postgres::{PgListener, PgPoolOptions};
use sea_orm::{ConnectionTrait, DatabaseConnectionType};
use todo_domain::UserId;
use todo_domain::ports::ChangeNotifier;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::Database;

/// The channel the news travels on.
pub const CHANGES_CHANNEL: &str = "todo_task_changes";

/// PostgreSQL refuses a payload of 8,000 bytes or more; an id and its comma
/// take 37, so one notice names at most this many owners.
const OWNERS_PER_NOTICE: usize = 200;

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

/// Owners noted and not yet sent.
#[derive(Default)]
struct Outbox {
    pending: Mutex<HashSet<UserId>>,
    ready: Notify,
}

impl Outbox {
    fn pending(&self) -> MutexGuard<'_, HashSet<UserId>> {
        // Each change to the set is a single insert or a swap, never left
        // half done by a panic, so a poisoned lock still guards a whole set.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn note(&self, owner: UserId) {
        self.pending().insert(owner);
        self.ready.notify_one();
    }

    fn take(&self) -> Vec<UserId> {
        self.pending().drain().collect()
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

    fn all_changed(&self) {
        // Only a listener learns that news was lost; a writer names owners.
    }
}

/// Sends whatever the outbox holds, each time it is told there is some.
/// While a send is on its way, new owners gather for the next one. A send
/// that fails is tried again with the owners that arrived since: a lost
/// notice would leave other instances' streams waiting for the next write.
async fn send_news(db: Database, outbox: Arc<Outbox>) {
    loop {
        outbox.ready.notified().await;
        loop {
            let owners = outbox.take();
            if owners.is_empty() {
                break;
            }
            if let Err(error) = db.execute(&notices(&owners)).await {
                tracing::warn!(%error, owners = owners.len(), "change news not sent; retrying");
                outbox.pending().extend(owners);
                tokio::time::sleep(SEND_RETRY_PAUSE).await;
            }
        }
    }
}

/// `SELECT pg_notify(channel, 'id,id,…'), …`: every payload in one
/// statement.
fn notices(owners: &[UserId]) -> SelectStatement {
    let mut select = Query::select();
    for payload in payloads(owners) {
        select.expr(Func::cust("pg_notify").arg(CHANGES_CHANNEL).arg(payload));
    }
    select
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

/// The owners a notice names; anything that is not an id is skipped (no
/// one but this service sends on the channel, so there should be none).
fn owners_in(payload: &str) -> impl Iterator<Item = UserId> + '_ {
    payload.split(',').filter_map(|raw| UserId::parse(raw).ok())
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
                        Ok(Some(notice)) => owners_in(notice.payload()).for_each(|owner| {
                            wake.changed(owner);
                        }),
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

    #[test]
    fn a_notice_names_its_owners_and_skips_anything_else() {
        let (alice, bob) = (UserId::generate(), UserId::generate());
        let payload = format!("{},not-an-id,{}", alice.as_uuid(), bob.as_uuid());
        assert_eq!(owners_in(&payload).collect::<Vec<_>>(), vec![alice, bob]);
    }

    #[test]
    fn many_owners_are_split_into_payloads_postgres_accepts() {
        let owners: Vec<_> = (0..=OWNERS_PER_NOTICE)
            .map(|_| UserId::generate())
            .collect();
        let payloads: Vec<_> = payloads(&owners).collect();
        assert_eq!(payloads.len(), 2);
        assert!(payloads.iter().all(|payload| payload.len() < 8000));
        let named: Vec<_> = payloads.iter().flat_map(|p| owners_in(p)).collect();
        assert_eq!(named, owners);
        let sql = DbBackend::Postgres.build(&notices(&owners)).to_string();
        assert_eq!(sql.matches("pg_notify").count(), 2, "{sql}");
    }

    #[tokio::test]
    async fn owners_noted_during_a_send_are_kept_for_the_next() {
        let outbox = Outbox::default();
        let (alice, bob) = (UserId::generate(), UserId::generate());
        outbox.note(alice);
        outbox.note(alice);
        assert_eq!(outbox.take(), vec![alice]);
        outbox.note(bob);
        assert_eq!(outbox.take(), vec![bob]);
        assert!(outbox.take().is_empty());
    }
}
