use std::sync::Arc;

use async_trait::async_trait;
use sea_orm::prelude::Uuid;
use sea_orm::sea_query::extension::postgres::PgExpr;
use sea_orm::sea_query::{
    Alias, Asterisk, Expr, ExprTrait, Func, JoinType, LikeExpr, NullOrdering, OnConflict, Order,
    Query, SelectStatement, UnionType,
};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, EntityTrait,
    FromQueryResult, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Statement, TransactionTrait,
    UpdateMany, Value,
};
use todo_domain::ports::TaskRepository;
use todo_domain::{
    Change, ChangeSlice, CompletionChange, DomainError, FeedPosition, Labels, PositionedChange,
    Precondition, Receipt, SortField, SortKey, SortOrder, Task, TaskFilter, TaskId, TaskPage,
    TaskPatch, TaskPosition, TaskQuery, TaskSort, Timestamp, UserId,
};

use crate::conversions::{stored_headers, stored_labels};
use crate::entities::{
    idempotency_keys, task_changes, task_labels, task_tombstones, tasks, user_change_heads,
    user_task_counts,
};
use crate::errors::{domain_error, unbuildable};
use crate::prebuilt::Prebuilt;
use crate::timestamps::{optional_timestamp_value, timestamp_value};
use crate::{Backend, Database, backend_of};

/// Tasks in the `tasks` table, their labels in `task_labels`, and each
/// user's task count in `users.task_count`, on PostgreSQL or SQLite.
///
/// Every statement that touches one task names its owner in the `WHERE`
/// clause, and every change to a task is a single `UPDATE … RETURNING`
/// that decides, under the row lock, whether anything changed, so no two
/// requests can interleave between a read and a write.
#[derive(Debug, Clone)]
pub struct SeaTaskRepository {
    db: Database,
    backend: Backend,
    feed: Arc<FeedStatements>,
}

/// A list page was asked to start after a position in another order: the
/// HTTP layer binds a cursor to its sort, so only a bug gets here.
#[derive(Debug, thiserror::Error)]
#[error("a page cursor of one sort field was used with another")]
struct CursorOfAnotherSort;

/// A recorded status that the `smallint` column cannot hold.
#[derive(Debug, thiserror::Error)]
#[error("a recorded response status is out of range")]
struct UnstorableStatus;

/// The escape character of every `LIKE` pattern built here: PostgreSQL's
/// default one.
const LIKE_ESCAPE: char = '\\';

impl SeaTaskRepository {
    /// Wraps a pool opened by [`crate::connect`].
    ///
    /// # Panics
    /// As [`backend_of`] does, for a connection to neither PostgreSQL nor
    /// SQLite.
    #[must_use]
    pub fn new(db: Database) -> Self {
        let backend = backend_of(&db);
        let feed = Arc::new(FeedStatements::build(db.get_database_backend()));
        Self { db, backend, feed }
    }

    fn timestamp(&self, at: Timestamp) -> Value {
        timestamp_value(self.backend, at)
    }

    fn optional_timestamp(&self, at: Option<Timestamp>) -> Value {
        optional_timestamp_value(self.backend, at)
    }

    /// The statements a list query may send: the whole list, or each leg
    /// of a page with its total, in the order they are read (a leg after
    /// the first is sent only when the page is still short; a cursor past
    /// the last match also asks for the total alone). For plan tests.
    #[cfg(feature = "test-support")]
    #[doc(hidden)]
    pub fn list_statements(
        &self,
        owner: UserId,
        query: &TaskQuery,
        now: Timestamp,
    ) -> Result<Vec<sea_orm::Statement>, DomainError> {
        let filter = self.filter_condition(owner, &query.filter, now);
        let backend = self.db.get_database_backend();
        Ok(match &query.page {
            None => vec![backend.build(&whole_list(filter, query.sort))],
            // Every leg the page may read, each with the total.
            Some(page) => {
                let fetch = u64::from(page.limit.get()) + 1;
                page_legs(query.sort.field, page.after.as_ref())
                    .iter()
                    .map(|&leg| {
                        let statement =
                            self.page_leg_query(owner, query, &filter, leg, fetch, true)?;
                        Ok(backend.build(&statement))
                    })
                    .collect::<Result<_, DomainError>>()?
            }
        })
    }

    // --- the list -----------------------------------------------------------

    /// The query's filter as one condition, owner included.
    fn filter_condition(&self, owner: UserId, filter: &TaskFilter, now: Timestamp) -> Condition {
        let mut all = Condition::all().add(tasks::Column::UserId.eq(owner.as_uuid()));
        if let Some(completed) = filter.completed {
            all = all.add(completed_is(completed));
        }
        if !filter.priorities.is_empty() {
            all =
                all.add(tasks::Column::Priority.is_in(filter.priorities.iter().map(|p| p.rank())));
        }
        // Each label is a lookup in the user's part of the
        // `(user_id, key, task_id)` index; a task must carry all of them.
        for label in filter.labels.as_slice() {
            all = all.add(tasks::Column::Id.in_subquery(labelled_tasks(
                owner,
                task_labels::Column::Key.eq(label.key()),
            )));
        }
        if let Some(before) = filter.due_before {
            all = all.add(tasks::Column::DueAt.lt(self.timestamp(before)));
        }
        if let Some(after) = filter.due_after {
            all = all.add(tasks::Column::DueAt.gte(self.timestamp(after)));
        }
        match filter.overdue {
            Some(true) => {
                all = all
                    .add(completed_is(false))
                    .add(tasks::Column::DueAt.lt(self.timestamp(now)));
            }
            // Spelled out rather than negated: `NOT (… due_at < now)` is
            // NULL, not true, for a task without a due date.
            Some(false) => {
                all = all.add(
                    Condition::any()
                        .add(completed_is(true))
                        .add(tasks::Column::DueAt.is_null())
                        .add(tasks::Column::DueAt.gte(self.timestamp(now))),
                );
            }
            None => {}
        }
        if let Some(text) = &filter.search {
            let pattern = contains_pattern(text.as_str());
            // Keys are stored lower-cased by the domain's own rule, so the
            // text is lowered the same way to meet them beyond ASCII too.
            let key_pattern = contains_pattern(&text.as_str().to_lowercase());
            all = all.add(
                Condition::any()
                    .add(self.like_ignoring_case(
                        Expr::col((tasks::Entity, tasks::Column::Title)),
                        &pattern,
                    ))
                    .add(self.like_ignoring_case(
                        Expr::col((tasks::Entity, tasks::Column::Description)),
                        &pattern,
                    ))
                    .add(tasks::Column::Id.in_subquery(labelled_tasks(
                        owner,
                        self.like_ignoring_case(
                            Expr::col((task_labels::Entity, task_labels::Column::Key)),
                            &key_pattern,
                        ),
                    ))),
            );
        }
        all
    }

    /// `expr` matches the `LIKE` pattern without regard to ASCII case:
    /// PostgreSQL's `LIKE` heeds case and `ILIKE` does not; SQLite's `LIKE`
    /// ignores the case of ASCII letters and has no `ILIKE`.
    ///
    /// SQLite has no escape character unless one is named. PostgreSQL's is
    /// the backslash already, and is left unnamed there because sea-query
    /// writes `ILIKE … ESCAPE` in a form PostgreSQL cannot parse.
    fn like_ignoring_case(&self, expr: Expr, pattern: &str) -> Expr {
        match self.backend {
            Backend::Postgres => expr.ilike(LikeExpr::new(pattern)),
            Backend::Sqlite => expr.like(LikeExpr::new(pattern).escape(LIKE_ESCAPE)),
        }
    }

    /// One leg of a page of `owner`'s tasks matching `filter` (the
    /// condition of `query.filter`): at most `fetch` rows of `leg`'s index
    /// range after the cursor, and the total as a column when `with_total`.
    fn page_leg_query(
        &self,
        owner: UserId,
        query: &TaskQuery,
        filter: &Condition,
        leg: PageLeg,
        fetch: u64,
        with_total: bool,
    ) -> Result<SelectStatement, DomainError> {
        let sort = query.sort;
        let order = order_of(sort.order);
        let after = query.page.as_ref().and_then(|page| page.after.as_ref());
        if let Some(after) = after
            && after.key.field() != sort.field
        {
            return Err(DomainError::Unexpected(Box::new(CursorOfAnotherSort)));
        }
        let mut select = tasks::Entity::find().filter(filter.clone());
        if leg == PageLeg::Undated {
            select = select.filter(tasks::Column::DueAt.is_null());
            // After a dated cursor every undated task follows; after an
            // undated one, those beyond it by id.
            if let Some(TaskPosition {
                key: SortKey::DueAt(None),
                id,
            }) = after
            {
                select = select.filter(beyond(
                    Expr::col((tasks::Entity, tasks::Column::Id)),
                    Expr::val(id.as_uuid()),
                    sort.order,
                ));
            }
        } else {
            if leg == PageLeg::Dated {
                select = select.filter(tasks::Column::DueAt.is_not_null());
            }
            if let Some(after) = after {
                select =
                    select.filter(self.after_position(sort_expr(sort.field), after, sort.order));
            }
        }
        // The undated leg is ordered by the due date too, though it is
        // NULL throughout: PostgreSQL takes only the index's own column
        // order as given.
        let mut statement = select
            .order_by(sort_expr(sort.field), order.clone())
            .order_by(tasks::Column::Id, order)
            .limit(fetch)
            .into_query();
        if with_total {
            statement.expr_as(total_of(owner, &query.filter, filter), TOTAL);
        }
        Ok(statement)
    }

    /// `(sort value, id)` lies strictly beyond `after` in `order`: a row
    /// value comparison, which both engines answer from the index. SQLite
    /// does so only for plain columns, not for `lower(title)`, so a title's
    /// own bound is stated too: it gives the range on that index. (The
    /// other sorts go without it: a redundant term is one more to render,
    /// and one more for PostgreSQL to check on every index entry.)
    fn after_position(&self, sort: Expr, after: &TaskPosition, order: SortOrder) -> Expr {
        let key = match &after.key {
            SortKey::CreatedAt(at) | SortKey::UpdatedAt(at) | SortKey::DueAt(Some(at)) => {
                Expr::val(self.timestamp(*at))
            }
            // Only the dated leg compares a due date; after an undated
            // cursor only the undated leg is read (`page_legs`).
            SortKey::DueAt(None) => Expr::val(self.optional_timestamp(None)),
            SortKey::Priority(priority) => Expr::val(priority.rank()),
            SortKey::Title(title) => Func::lower(Expr::val(title.as_str())).into(),
        };
        let title_bound = matches!(after.key, SortKey::Title(_)).then(|| match order {
            SortOrder::Asc => sort.clone().gte(key.clone()),
            SortOrder::Desc => sort.clone().lte(key.clone()),
        });
        let beyond = beyond(
            Expr::tuple([sort, Expr::col((tasks::Entity, tasks::Column::Id))]),
            Expr::tuple([key, Expr::val(after.id.as_uuid())]),
            order,
        );
        match title_bound {
            Some(bound) => bound.and(beyond),
            None => beyond,
        }
    }

    // --- writes -------------------------------------------------------------

    /// `updated_at` advanced to `at`, or kept where it is if already later:
    /// two writers whose clocks (or requests) race must not leave the
    /// older instant behind. Starting from `created_at` and only ever
    /// growing, `updated_at` also never falls before `created_at`.
    fn later_updated_at(&self, at: Timestamp) -> Expr {
        let at = self.timestamp(at);
        Expr::case(Expr::col(tasks::Column::UpdatedAt).lt(at.clone()), at)
            .finally(Expr::col(tasks::Column::UpdatedAt))
            .into()
    }

    /// An update of the task `id` if `owner` owns it and its version meets
    /// `precondition`. Whether the row really changes is `changed`,
    /// computed by the database from the stored and the new values: only
    /// then do the version and `updated_at` move.
    fn owned_update(
        &self,
        id: TaskId,
        owner: UserId,
        precondition: Option<&Precondition>,
        changed: Expr,
        at: Timestamp,
    ) -> UpdateMany<tasks::Entity> {
        let mut update = tasks::Entity::update_many()
            .col_expr(
                tasks::Column::Version,
                Expr::case(changed.clone(), Expr::col(tasks::Column::Version).add(1))
                    .finally(Expr::col(tasks::Column::Version))
                    .into(),
            )
            .col_expr(
                tasks::Column::UpdatedAt,
                Expr::case(changed, self.later_updated_at(at))
                    .finally(Expr::col(tasks::Column::UpdatedAt))
                    .into(),
            )
            .filter(tasks::Column::Id.eq(id.as_uuid()))
            .filter(tasks::Column::UserId.eq(owner.as_uuid()));
        if let Some(precondition) = precondition {
            update = update.filter(version_meets(precondition));
        }
        update
    }

    /// `completed_at` once `completed` becomes `value`: the time of this
    /// change when it turns true, kept while it stays true, NULL when false.
    fn completed_at_for(&self, value: bool, at: Timestamp) -> Expr {
        if value {
            Expr::case(
                Expr::col(tasks::Column::Completed).eq(true),
                Expr::col(tasks::Column::CompletedAt),
            )
            .finally(self.later_updated_at(at))
            .into()
        } else {
            Expr::val(self.optional_timestamp(None))
        }
    }

    /// The changed row, if the update matched one.
    async fn returning_one(
        update: UpdateMany<tasks::Entity>,
        db: &impl ConnectionTrait,
    ) -> Result<Option<Task>, DomainError> {
        let rows = update.exec_with_returning(db).await.map_err(domain_error)?;
        // The filter pins the primary key, so at most one row comes back.
        match rows.into_iter().next() {
            Some(row) => Ok(Some(Task::try_from(row)?)),
            None => Ok(None),
        }
    }

    /// Makes the label rows of a task those of `labels`: removes the keys
    /// it no longer has and adds the new ones, so labels that stay write
    /// nothing.
    async fn replace_labels(
        transaction: &DatabaseTransaction,
        task: &Task,
        labels: &Labels,
    ) -> Result<(), DomainError> {
        let keys: Vec<&str> = labels.as_slice().iter().map(|label| label.key()).collect();
        task_labels::Entity::delete_many()
            .filter(task_labels::Column::TaskId.eq(task.id.as_uuid()))
            .filter(task_labels::Column::Key.is_not_in(keys.iter().copied()))
            .exec(transaction)
            .await
            .map_err(domain_error)?;
        if let Some(mut insert) = label_rows(task, labels)? {
            insert.on_conflict(
                OnConflict::columns([task_labels::Column::TaskId, task_labels::Column::Key])
                    .do_nothing()
                    .to_owned(),
            );
            transaction.execute(&insert).await.map_err(domain_error)?;
        }
        Ok(())
    }

    /// Changes the user's task count by `delta`.
    async fn count_tasks(
        transaction: &DatabaseTransaction,
        owner: UserId,
        delta: i64,
    ) -> Result<(), DomainError> {
        user_task_counts::Entity::update_many()
            .col_expr(
                user_task_counts::Column::TaskCount,
                Expr::col(user_task_counts::Column::TaskCount).add(delta),
            )
            .filter(user_task_counts::Column::Id.eq(owner.as_uuid()))
            .exec(transaction)
            .await
            .map_err(domain_error)?;
        Ok(())
    }
}

/// Records the answer `task` gets in the receipt's key row, if this
/// request still holds the claim and nothing is recorded yet; otherwise
/// the claim was taken over, and the caller rolls its work back.
async fn record(
    transaction: &DatabaseTransaction,
    receipt: &Receipt,
    task: &Task,
) -> Result<(), DomainError> {
    let response = receipt.recorder.record(task);
    let status = i16::try_from(response.status)
        .map_err(|_| DomainError::Unexpected(Box::new(UnstorableStatus)))?;
    let headers = stored_headers(&response.headers)?;
    let claim = &receipt.claim;
    let recorded = idempotency_keys::Entity::update_many()
        .col_expr(idempotency_keys::Column::ResponseStatus, Expr::val(status))
        .col_expr(
            idempotency_keys::Column::ResponseHeaders,
            Expr::val(headers),
        )
        .col_expr(
            idempotency_keys::Column::ResponseBody,
            Expr::val(response.body),
        )
        .filter(idempotency_keys::Column::UserId.eq(claim.owner.as_uuid()))
        .filter(idempotency_keys::Column::Key.eq(claim.key.as_str()))
        .filter(idempotency_keys::Column::ClaimToken.eq(claim.token))
        .filter(idempotency_keys::Column::ResponseStatus.is_null())
        .exec(transaction)
        .await
        .map_err(domain_error)?;
    if recorded.rows_affected == 0 {
        return Err(DomainError::IdempotencyKeyInUse);
    }
    Ok(())
}

/// The insert of a task's label rows, `None` without labels.
fn label_rows(
    task: &Task,
    labels: &Labels,
) -> Result<Option<sea_orm::sea_query::InsertStatement>, DomainError> {
    if labels.is_empty() {
        return Ok(None);
    }
    let mut insert = Query::insert();
    insert.into_table(task_labels::Entity).columns([
        task_labels::Column::TaskId,
        task_labels::Column::UserId,
        task_labels::Column::Key,
    ]);
    for label in labels.as_slice() {
        insert
            .values([
                Expr::val(task.id.as_uuid()),
                Expr::val(task.owner.as_uuid()),
                Expr::val(label.key()),
            ])
            .map_err(unbuildable)?;
    }
    Ok(Some(insert))
}

/// The ids of `owner`'s tasks with a label row that meets `key`.
fn labelled_tasks(owner: UserId, key: Expr) -> SelectStatement {
    Query::select()
        .column((task_labels::Entity, task_labels::Column::TaskId))
        .from(task_labels::Entity)
        .and_where(task_labels::Column::UserId.eq(owner.as_uuid()))
        .and_where(key)
        .to_owned()
}

/// A `LIKE` pattern matching any text that contains `text` literally:
/// `%`, `_` and the escape character itself are escaped.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | LIKE_ESCAPE) {
            pattern.push(LIKE_ESCAPE);
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// The version is one of the precondition's. Versions beyond `i64` can be
/// in no row; an empty list matches nothing.
fn version_meets(precondition: &Precondition) -> Expr {
    tasks::Column::Version.is_in(
        precondition
            .versions()
            .iter()
            .filter_map(|version| i64::try_from(version.get()).ok()),
    )
}

/// What a list is sorted by: `title` without ASCII case, as its index is.
fn sort_expr(field: SortField) -> Expr {
    let column = |column| Expr::col((tasks::Entity, column));
    match field {
        SortField::CreatedAt => column(tasks::Column::CreatedAt),
        SortField::UpdatedAt => column(tasks::Column::UpdatedAt),
        SortField::DueAt => column(tasks::Column::DueAt),
        SortField::Priority => column(tasks::Column::Priority),
        SortField::Title => Func::lower(column(tasks::Column::Title)).into(),
    }
}

fn order_of(order: SortOrder) -> Order {
    match order {
        SortOrder::Asc => Order::Asc,
        SortOrder::Desc => Order::Desc,
    }
}

/// `left` comes strictly after `right` in `order`.
fn beyond(left: Expr, right: Expr, order: SortOrder) -> Expr {
    match order {
        SortOrder::Asc => left.gt(right),
        SortOrder::Desc => left.lt(right),
    }
}

/// `completed` is `value`, written as the column itself or `NOT` it rather
/// than compared with a bound value: the open tasks' partial index is
/// `WHERE NOT completed`, and only a term that says the same in the
/// statement's own text lets PostgreSQL's generic plans and SQLite use it.
fn completed_is(value: bool) -> Expr {
    let completed = Expr::col((tasks::Entity, tasks::Column::Completed));
    if value { completed } else { completed.not() }
}

/// The whole list, in order, tasks without a due date last.
fn whole_list(filter: Condition, sort: TaskSort) -> SelectStatement {
    let order = order_of(sort.order);
    let select = tasks::Entity::find().filter(filter);
    let select = if sort.field == SortField::DueAt {
        select.order_by_with_nulls(sort_expr(sort.field), order.clone(), NullOrdering::Last)
    } else {
        select.order_by(sort_expr(sort.field), order.clone())
    };
    select.order_by(tasks::Column::Id, order).into_query()
}

/// A stretch of the sort's index that a page is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PageLeg {
    /// The whole range of the user's matching tasks.
    Whole,
    /// The tasks with a due date.
    Dated,
    /// The tasks without one.
    Undated,
}

/// The legs a page after `after` is read from, in the page's order. Tasks
/// without a due date come last in both orders, which no single index
/// order gives on both engines (PostgreSQL sorts NULL last ascending,
/// SQLite first), so a due date page reads the dated tasks and then, if
/// the page is still short, the undated ones: two plain range scans, the
/// second only on the page where one kind ends and the other begins.
fn page_legs(field: SortField, after: Option<&TaskPosition>) -> &'static [PageLeg] {
    match (field, after) {
        (
            SortField::DueAt,
            Some(TaskPosition {
                key: SortKey::DueAt(None),
                ..
            }),
        ) => &[PageLeg::Undated],
        (SortField::DueAt, _) => &[PageLeg::Dated, PageLeg::Undated],
        _ => &[PageLeg::Whole],
    }
}

/// The column of a page's statement that holds how many tasks match in all.
const TOTAL: &str = "total";

/// How many of `owner`'s tasks match, as a scalar subquery. When
/// `completed` is the only filter, the user's counters answer (one row read
/// by its key, where counting would read every matching index entry);
/// any other filter counts the matching tasks.
fn total_of(owner: UserId, filter: &TaskFilter, condition: &Condition) -> Expr {
    let completed_only = *filter
        == TaskFilter {
            completed: filter.completed,
            ..TaskFilter::default()
        };
    let select = if completed_only {
        let all = Expr::col(user_task_counts::Column::TaskCount);
        let done = Expr::col(user_task_counts::Column::DoneCount);
        let matching = match filter.completed {
            None => all,
            Some(true) => done,
            Some(false) => all.sub(done),
        };
        Query::select()
            .expr_as(matching, TOTAL)
            .from(user_task_counts::Entity)
            .and_where(user_task_counts::Column::Id.eq(owner.as_uuid()))
            .take()
    } else {
        tasks::Entity::find()
            .select_only()
            .column_as(Expr::col(Asterisk).count(), TOTAL)
            .filter(condition.clone())
            .into_query()
    };
    // PostgreSQL's counters are `integer` and its counts `bigint`; one type
    // for both lets the row be read one way.
    Expr::SubQuery(None, Box::new(select.into())).cast_as("BIGINT")
}

// --- the changes feed -------------------------------------------------------

/// The columns a feed statement adds to each task row: the change's task
/// id, its position and whether it is a deletion.
const CHANGE_ID: &str = "change_id";
const CHANGE_POSITION: &str = "change_position";
const CHANGE_OP: &str = "change_op";
const OP_UPSERT: i16 = 0;
const OP_DELETE: i16 = 1;
/// The columns it adds to every row: where the user's feed stands and its
/// floor, read in the same snapshot as the changes.
const FEED_HEAD: &str = "feed_head";
const FEED_FLOOR: &str = "feed_floor";

/// A position beyond `i64` is in no row; a stored negative one is a bug.
#[derive(Debug, thiserror::Error)]
#[error("a change position is out of range")]
struct PositionOutOfRange;

fn stored_position(position: u64) -> Result<i64, DomainError> {
    i64::try_from(position).map_err(|_| DomainError::Unexpected(Box::new(PositionOutOfRange)))
}

fn read_position(position: i64) -> Result<u64, DomainError> {
    u64::try_from(position).map_err(|_| DomainError::Unexpected(Box::new(PositionOutOfRange)))
}

/// [`feed_query`]'s two shapes, built once (crate::prebuilt): a walk from
/// the start, which reads no deletion, and a walk from a position.
#[derive(Debug)]
struct FeedStatements {
    from_start: Prebuilt<3>,
    from_position: Prebuilt<4>,
}

/// Stand-ins for the feed's arguments: no real owner, position or page
/// size takes these values, and no constant of the statement does.
const STAND_IN_OWNER: Uuid = Uuid::max();
const STAND_IN_TASKS_AFTER: i64 = i64::MIN;
const STAND_IN_DELETES_AFTER: i64 = i64::MIN + 1;
const STAND_IN_FETCH: u64 = u64::MAX;

impl FeedStatements {
    fn build(backend: DbBackend) -> Self {
        let with_stand_ins = |deletes_after| {
            backend.build(&feed_query(
                UserId::from_uuid(STAND_IN_OWNER),
                STAND_IN_TASKS_AFTER,
                deletes_after,
                STAND_IN_FETCH,
            ))
        };
        Self {
            from_start: Prebuilt::new(
                with_stand_ins(None),
                &from_start_arguments(STAND_IN_OWNER, STAND_IN_TASKS_AFTER, STAND_IN_FETCH),
            ),
            from_position: Prebuilt::new(
                with_stand_ins(Some(STAND_IN_DELETES_AFTER)),
                &from_position_arguments(
                    STAND_IN_OWNER,
                    STAND_IN_TASKS_AFTER,
                    STAND_IN_DELETES_AFTER,
                    STAND_IN_FETCH,
                ),
            ),
        }
    }

    /// What `feed_query` with these arguments builds.
    fn statement(
        &self,
        owner: UserId,
        tasks_after: i64,
        deletes_after: Option<i64>,
        fetch: u64,
    ) -> Statement {
        let owner = owner.as_uuid();
        match deletes_after {
            None => self
                .from_start
                .bind(&from_start_arguments(owner, tasks_after, fetch)),
            Some(deletes_after) => self.from_position.bind(&from_position_arguments(
                owner,
                tasks_after,
                deletes_after,
                fetch,
            )),
        }
    }
}

/// The arguments of each shape, in one order for the stand-ins and the
/// calls alike.
fn from_start_arguments(owner: Uuid, tasks_after: i64, fetch: u64) -> [Value; 3] {
    [owner.into(), tasks_after.into(), fetch.into()]
}

fn from_position_arguments(
    owner: Uuid,
    tasks_after: i64,
    deletes_after: i64,
    fetch: u64,
) -> [Value; 4] {
    [
        owner.into(),
        tasks_after.into(),
        deletes_after.into(),
        fetch.into(),
    ]
}

/// The feed's statement: up to `fetch` changes of `owner` in position
/// order, the tasks whose latest change is after `tasks_after` and the
/// deletions after `deletes_after`, each task row joined to its change and
/// carrying the user's head and floor; with no change, one row of only
/// those two (no row at all for an unknown user). Without `deletes_after`
/// (a walk from the start) no deletion is read: in one snapshot no
/// tombstone stands above the head, where such a walk begins.
///
/// Each side is its own range scan of its `(user_id, change_seq)` index
/// with its own LIMIT, so the cost follows the page, not the history; one
/// statement, so on PostgreSQL it reads one snapshot, in which the
/// positions seen are a prefix of those handed out (see the migration).
fn feed_query(
    owner: UserId,
    tasks_after: i64,
    deletes_after: Option<i64>,
    fetch: u64,
) -> SelectStatement {
    let mut both = changes_after(
        "upserts",
        task_changes::Entity,
        [
            task_changes::Column::Id,
            task_changes::Column::ChangeSeq,
            task_changes::Column::UserId,
        ],
        OP_UPSERT,
        owner,
        tasks_after,
        fetch,
    );
    if let Some(deletes_after) = deletes_after {
        both.union(
            UnionType::All,
            changes_after(
                "deletes",
                task_tombstones::Entity,
                [
                    task_tombstones::Column::TaskId,
                    task_tombstones::Column::ChangeSeq,
                    task_tombstones::Column::UserId,
                ],
                OP_DELETE,
                owner,
                deletes_after,
                fetch,
            ),
        );
    }
    let changes = Alias::new("changes");
    Query::select()
        .expr_as(
            Expr::col((
                user_change_heads::Entity,
                user_change_heads::Column::ChangeSeq,
            )),
            FEED_HEAD,
        )
        .expr_as(
            Expr::col((
                user_change_heads::Entity,
                user_change_heads::Column::ChangesFloor,
            )),
            FEED_FLOOR,
        )
        .column((changes.clone(), Alias::new(CHANGE_ID)))
        .column((changes.clone(), Alias::new(CHANGE_POSITION)))
        .column((changes.clone(), Alias::new(CHANGE_OP)))
        .column((tasks::Entity, Asterisk))
        .from(user_change_heads::Entity)
        .join_subquery(JoinType::LeftJoin, both, changes.clone(), Expr::val(true))
        .left_join(
            tasks::Entity,
            Expr::col((tasks::Entity, tasks::Column::Id))
                .equals((changes.clone(), Alias::new(CHANGE_ID)))
                .and(Expr::col((changes.clone(), Alias::new(CHANGE_OP))).eq(OP_UPSERT)),
        )
        .and_where(
            Expr::col((user_change_heads::Entity, user_change_heads::Column::Id))
                .eq(owner.as_uuid()),
        )
        .order_by((changes, Alias::new(CHANGE_POSITION)), Order::Asc)
        .limit(fetch)
        .to_owned()
}

/// One side of the feed: `owner`'s rows of `table` whose position is
/// after `after`, oldest first, at most `fetch`, as (task id, position,
/// `op`). `[id, position, user]` are the table's columns for each.
///
/// The side sits in a subquery of its own, named `side`: a branch of a
/// UNION takes ORDER BY and LIMIT only there.
fn changes_after<C: ColumnTrait>(
    side: &str,
    table: impl EntityTrait,
    [id, position, user]: [C; 3],
    op: i16,
    owner: UserId,
    after: i64,
    fetch: u64,
) -> SelectStatement {
    let rows = Query::select()
        .expr_as(Expr::col(id), CHANGE_ID)
        .expr_as(Expr::col(position), CHANGE_POSITION)
        .expr_as(Expr::val(op), CHANGE_OP)
        .from(table)
        .and_where(user.eq(owner.as_uuid()))
        .and_where(position.gt(after))
        .order_by(position, Order::Asc)
        .limit(fetch)
        .to_owned();
    Query::select()
        .column(Asterisk)
        .from_subquery(rows, Alias::new(side))
        .to_owned()
}

/// One row of the feed's statement as a change.
fn read_change(row: &sea_orm::QueryResult) -> Result<Option<PositionedChange>, DomainError> {
    // The row of a read that found no change carries only the feed state.
    let Some(position) = row
        .try_get::<Option<i64>>("", CHANGE_POSITION)
        .map_err(domain_error)?
    else {
        return Ok(None);
    };
    let position = read_position(position)?;
    let op = row.try_get::<i16>("", CHANGE_OP).map_err(domain_error)?;
    let change = if op == OP_DELETE {
        let id = row.try_get::<Uuid>("", CHANGE_ID).map_err(domain_error)?;
        Change::Delete(TaskId::from_uuid(id))
    } else {
        // The task was read in the same snapshot as its position, so the
        // join finds it; a row without it is skipped rather than trusted.
        if row
            .try_get::<Option<Uuid>>("", "id")
            .map_err(domain_error)?
            .is_none()
        {
            return Ok(None);
        }
        let model = tasks::Model::from_query_result(row, "").map_err(domain_error)?;
        Change::Upsert(Task::try_from(model)?)
    };
    Ok(Some(PositionedChange { position, change }))
}

#[async_trait]
impl TaskRepository for SeaTaskRepository {
    #[tracing::instrument(skip_all, fields(task_id = %task.id, user_id = %task.owner))]
    async fn insert(
        &self,
        task: &Task,
        max_tasks: u32,
        receipt: Option<Receipt>,
    ) -> Result<(), DomainError> {
        let mut insert = Query::insert();
        insert
            .into_table(tasks::Entity)
            .columns([
                tasks::Column::Id,
                tasks::Column::UserId,
                tasks::Column::Title,
                tasks::Column::Description,
                tasks::Column::Completed,
                tasks::Column::CompletedAt,
                tasks::Column::DueAt,
                tasks::Column::Priority,
                tasks::Column::Labels,
                tasks::Column::Version,
                tasks::Column::CreatedAt,
                tasks::Column::UpdatedAt,
            ])
            .values([
                Expr::val(task.id.as_uuid()),
                Expr::val(task.owner.as_uuid()),
                Expr::val(task.title.as_str()),
                Expr::val(
                    task.description
                        .as_ref()
                        .map(|text| text.as_str().to_owned()),
                ),
                Expr::val(task.completed),
                Expr::val(self.optional_timestamp(task.completed_at)),
                Expr::val(self.optional_timestamp(task.due_at)),
                Expr::val(task.priority.rank()),
                Expr::val(stored_labels(&task.labels)),
                Expr::val(
                    i64::try_from(task.version.get())
                        .map_err(|err| DomainError::Unexpected(Box::new(err)))?,
                ),
                Expr::val(self.timestamp(task.created_at)),
                Expr::val(self.timestamp(task.updated_at)),
            ])
            .map_err(unbuildable)?;
        let labels = label_rows(task, &task.labels)?;

        self.db
            .bounded_domain(async {
                let transaction = self.db.connection().begin().await.map_err(domain_error)?;
                // The count goes up first, under the user row's lock: creates for
                // one user queue here, and each sees the count the one before left,
                // so racing creates never pass the limit.
                let counted = user_task_counts::Entity::update_many()
                    .col_expr(
                        user_task_counts::Column::TaskCount,
                        Expr::col(user_task_counts::Column::TaskCount).add(1),
                    )
                    .filter(user_task_counts::Column::Id.eq(task.owner.as_uuid()))
                    .filter(user_task_counts::Column::TaskCount.lt(i64::from(max_tasks)))
                    .exec(&transaction)
                    .await
                    .map_err(domain_error)?;
                if counted.rows_affected == 0 {
                    let user = user_task_counts::Entity::find_by_id(task.owner.as_uuid())
                        .select_only()
                        .column(user_task_counts::Column::Id)
                        .into_tuple::<Uuid>()
                        .one(&transaction)
                        .await
                        .map_err(domain_error)?;
                    return Err(match user {
                        Some(_) => DomainError::TaskLimitReached,
                        None => DomainError::UserNotFound,
                    });
                }
                transaction.execute(&insert).await.map_err(domain_error)?;
                if let Some(labels) = labels {
                    transaction.execute(&labels).await.map_err(domain_error)?;
                }
                if let Some(receipt) = &receipt {
                    // On a miss the transaction drops unfinished: nothing stays.
                    record(&transaction, receipt, task).await?;
                }
                transaction.commit().await.map_err(domain_error)
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(user_id = %owner))]
    async fn list_by_owner(
        &self,
        owner: UserId,
        query: &TaskQuery,
        now: Timestamp,
    ) -> Result<TaskPage, DomainError> {
        let filter = self.filter_condition(owner, &query.filter, now);
        let backend = self.db.get_database_backend();
        let Some(page) = &query.page else {
            // The whole list: one statement, and its length is the total.
            let rows =
                tasks::Model::find_by_statement(backend.build(&whole_list(filter, query.sort)))
                    .all(&self.db)
                    .await
                    .map_err(domain_error)?;
            let tasks = rows
                .into_iter()
                .map(Task::try_from)
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(TaskPage {
                total: tasks.len() as u64,
                tasks,
                next: None,
            });
        };
        // Leg by leg, the next one only when those before left the page
        // short; the total travels in the first statement that can carry it.
        let fetch = usize::from(page.limit.get()) + 1;
        let mut rows = Vec::with_capacity(fetch);
        let mut total = None;
        for &leg in page_legs(query.sort.field, page.after.as_ref()) {
            let wanted = (fetch - rows.len()) as u64;
            let statement =
                self.page_leg_query(owner, query, &filter, leg, wanted, total.is_none())?;
            let leg_rows = self
                .db
                .query_all_raw(backend.build(&statement))
                .await
                .map_err(domain_error)?;
            if total.is_none()
                && let Some(row) = leg_rows.first()
            {
                total = Some(row.try_get::<i64>("", TOTAL).map_err(domain_error)?);
            }
            rows.extend(leg_rows);
            if rows.len() == fetch {
                break;
            }
        }
        let total = match total {
            Some(total) => total,
            // A cursor past the last match: no row to carry the total.
            None => {
                let alone = Query::select()
                    .expr_as(total_of(owner, &query.filter, &filter), TOTAL)
                    .take();
                self.db
                    .query_one_raw(backend.build(&alone))
                    .await
                    .and_then(|row| row.ok_or_else(|| DbErr::RecordNotFound(TOTAL.into())))
                    .and_then(|row| row.try_get::<i64>("", TOTAL))
                    .map_err(domain_error)?
            }
        };
        let total = u64::try_from(total).map_err(|err| DomainError::Unexpected(Box::new(err)))?;
        let mut tasks = rows
            .iter()
            .map(|row| {
                tasks::Model::from_query_result(row, "")
                    .map_err(domain_error)
                    .and_then(|model| Ok(Task::try_from(model)?))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let limit = usize::from(page.limit.get());
        let more = tasks.len() > limit;
        let next = if more {
            tasks.truncate(limit);
            tasks
                .last()
                .map(|last| TaskPosition::of(last, query.sort.field))
        } else {
            None
        };
        Ok(TaskPage { tasks, total, next })
    }

    #[tracing::instrument(skip_all, fields(task_id = %id, user_id = %owner))]
    async fn find_owned(&self, id: TaskId, owner: UserId) -> Result<Option<Task>, DomainError> {
        let row = tasks::Entity::find_by_id(id.as_uuid())
            .filter(tasks::Column::UserId.eq(owner.as_uuid()))
            .one(&self.db)
            .await
            .map_err(domain_error)?;
        Ok(row.map(Task::try_from).transpose()?)
    }

    #[tracing::instrument(skip_all, fields(task_id = %id, user_id = %owner))]
    async fn patch_owned(
        &self,
        id: TaskId,
        owner: UserId,
        patch: &TaskPatch,
        precondition: Option<Precondition>,
        at: Timestamp,
    ) -> Result<Option<Task>, DomainError> {
        // Each named field is set, and compared with its stored value; a
        // nullable column is compared null-safely, knowing here whether
        // the new value is NULL.
        let mut sets: Vec<(tasks::Column, Expr)> = Vec::new();
        let mut differs: Vec<Expr> = Vec::new();
        if let Some(title) = &patch.title {
            sets.push((tasks::Column::Title, Expr::val(title.as_str())));
            differs.push(Expr::col(tasks::Column::Title).ne(title.as_str()));
        }
        if let Some(description) = &patch.description {
            let column = || Expr::col(tasks::Column::Description);
            match description {
                Some(text) => {
                    sets.push((tasks::Column::Description, Expr::val(text.as_str())));
                    differs.push(column().is_null().or(column().ne(text.as_str())));
                }
                None => {
                    sets.push((tasks::Column::Description, Expr::val(Value::String(None))));
                    differs.push(column().is_not_null());
                }
            }
        }
        if let Some(completed) = patch.completed {
            sets.push((tasks::Column::Completed, Expr::val(completed)));
            sets.push((
                tasks::Column::CompletedAt,
                self.completed_at_for(completed, at),
            ));
            differs.push(Expr::col(tasks::Column::Completed).ne(completed));
        }
        if let Some(due_at) = patch.due_at {
            let column = || Expr::col(tasks::Column::DueAt);
            sets.push((
                tasks::Column::DueAt,
                Expr::val(self.optional_timestamp(due_at)),
            ));
            differs.push(match due_at {
                Some(due) => column().is_null().or(column().ne(self.timestamp(due))),
                None => column().is_not_null(),
            });
        }
        if let Some(priority) = patch.priority {
            sets.push((tasks::Column::Priority, Expr::val(priority.rank())));
            differs.push(Expr::col(tasks::Column::Priority).ne(priority.rank()));
        }
        if let Some(labels) = &patch.labels {
            let text = stored_labels(labels);
            differs.push(Expr::col(tasks::Column::Labels).ne(text.as_str()));
            sets.push((tasks::Column::Labels, Expr::val(text)));
        }
        let changed = differs
            .into_iter()
            .reduce(|any, next| any.or(next))
            .unwrap_or_else(|| Expr::val(false));
        let mut update = self.owned_update(id, owner, precondition.as_ref(), changed, at);
        for (column, value) in sets {
            update = update.col_expr(column, value);
        }

        let Some(labels) = &patch.labels else {
            return Self::returning_one(update, &self.db).await;
        };
        self.db
            .bounded_domain(async {
                // New labels: the label rows change in the same transaction.
                let transaction = self.db.connection().begin().await.map_err(domain_error)?;
                let Some(task) = Self::returning_one(update, &transaction).await? else {
                    return Ok(None);
                };
                Self::replace_labels(&transaction, &task, labels).await?;
                transaction.commit().await.map_err(domain_error)?;
                Ok(Some(task))
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(task_id = %id, user_id = %owner))]
    async fn change_completion_owned(
        &self,
        id: TaskId,
        owner: UserId,
        change: CompletionChange,
        precondition: Option<Precondition>,
        at: Timestamp,
        receipt: Option<Receipt>,
    ) -> Result<Option<Task>, DomainError> {
        let completed = || Expr::col(tasks::Column::Completed);
        // A toggle negates the stored value inside the UPDATE, under the
        // row lock, so concurrent toggles each see the previous one's
        // result; setting the state the task already has changes nothing.
        let update = match change {
            CompletionChange::Toggle => self
                .owned_update(id, owner, precondition.as_ref(), Expr::val(true), at)
                .col_expr(tasks::Column::Completed, completed().not())
                .col_expr(
                    tasks::Column::CompletedAt,
                    Expr::case(
                        completed().eq(true),
                        Expr::val(self.optional_timestamp(None)),
                    )
                    .finally(self.later_updated_at(at))
                    .into(),
                ),
            CompletionChange::Set(value) => self
                .owned_update(id, owner, precondition.as_ref(), completed().ne(value), at)
                .col_expr(tasks::Column::Completed, Expr::val(value))
                .col_expr(tasks::Column::CompletedAt, self.completed_at_for(value, at)),
        };
        let Some(receipt) = receipt else {
            return Self::returning_one(update, &self.db).await;
        };
        self.db
            .bounded_domain(async {
                let transaction = self.db.connection().begin().await.map_err(domain_error)?;
                let Some(task) = Self::returning_one(update, &transaction).await? else {
                    return Ok(None);
                };
                record(&transaction, &receipt, &task).await?;
                transaction.commit().await.map_err(domain_error)?;
                Ok(Some(task))
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(task_id = %id, user_id = %owner))]
    async fn delete_owned(
        &self,
        id: TaskId,
        owner: UserId,
        precondition: Option<Precondition>,
    ) -> Result<bool, DomainError> {
        let mut delete = tasks::Entity::delete_many()
            .filter(tasks::Column::Id.eq(id.as_uuid()))
            .filter(tasks::Column::UserId.eq(owner.as_uuid()));
        if let Some(precondition) = &precondition {
            delete = delete.filter(version_meets(precondition));
        }
        self.db
            .bounded_domain(async {
                let transaction = self.db.connection().begin().await.map_err(domain_error)?;
                // The label rows go with the task (the foreign key cascades).
                let deleted = delete.exec(&transaction).await.map_err(domain_error)?;
                if deleted.rows_affected == 0 {
                    return Ok(false);
                }
                Self::count_tasks(&transaction, owner, -1).await?;
                transaction.commit().await.map_err(domain_error)?;
                Ok(true)
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(user_id = %owner))]
    async fn delete_completed(&self, owner: UserId) -> Result<u64, DomainError> {
        self.db
            .bounded_domain(async {
                let transaction = self.db.connection().begin().await.map_err(domain_error)?;
                let deleted = tasks::Entity::delete_many()
                    .filter(tasks::Column::UserId.eq(owner.as_uuid()))
                    .filter(tasks::Column::Completed.eq(true))
                    .exec(&transaction)
                    .await
                    .map_err(domain_error)?
                    .rows_affected;
                if deleted > 0 {
                    let delta = i64::try_from(deleted)
                        .map_err(|err| DomainError::Unexpected(Box::new(err)))?;
                    Self::count_tasks(&transaction, owner, -delta).await?;
                }
                transaction.commit().await.map_err(domain_error)?;
                Ok(deleted)
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(task_id = %id))]
    async fn exists(&self, id: TaskId) -> Result<bool, DomainError> {
        let found = tasks::Entity::find()
            .select_only()
            .column(tasks::Column::Id)
            .filter(tasks::Column::Id.eq(id.as_uuid()))
            .into_tuple::<Uuid>()
            .one(&self.db)
            .await
            .map_err(domain_error)?;
        Ok(found.is_some())
    }

    #[tracing::instrument(skip_all, fields(user_id = %owner))]
    async fn changes_since(
        &self,
        owner: UserId,
        since: Option<FeedPosition>,
        fetch: u32,
    ) -> Result<ChangeSlice, DomainError> {
        // One statement: the changes and, on every row, the head and floor,
        // all in one snapshot, so a page that ends at the head misses none.
        let statement = self.feed.statement(
            owner,
            stored_position(since.map_or(0, |from| from.tasks_after))?,
            since
                .map(|from| stored_position(from.deletes_after))
                .transpose()?,
            u64::from(fetch),
        );
        let rows = self
            .db
            .query_all_raw(statement)
            .await
            .map_err(domain_error)?;
        let Some(first) = rows.first() else {
            return Ok(ChangeSlice {
                head: 0,
                floor: 0,
                changes: Vec::new(),
            });
        };
        let mut changes = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Some(change) = read_change(row)? {
                changes.push(change);
            }
        }
        Ok(ChangeSlice {
            head: read_position(first.try_get("", FEED_HEAD).map_err(domain_error)?)?,
            floor: read_position(first.try_get("", FEED_FLOOR).map_err(domain_error)?)?,
            changes,
        })
    }

    #[tracing::instrument(skip_all)]
    async fn forget_deletions(&self, before: Timestamp, batch: u32) -> Result<u64, DomainError> {
        // The oldest `batch` by the deletion index, named by key: neither
        // engine takes a LIMIT on DELETE portably.
        let oldest = Query::select()
            .column(task_tombstones::Column::TaskId)
            .from(task_tombstones::Entity)
            .and_where(task_tombstones::Column::DeletedAt.lt(self.timestamp(before)))
            .order_by(task_tombstones::Column::DeletedAt, Order::Asc)
            .limit(u64::from(batch))
            .to_owned();
        self.db
            .bounded_domain(async {
                let transaction = self.db.connection().begin().await.map_err(domain_error)?;
                let forgotten = task_tombstones::Entity::delete_many()
                    .filter(task_tombstones::Column::TaskId.in_subquery(oldest))
                    .exec_with_returning(&transaction)
                    .await
                    .map_err(domain_error)?;
                // Each owner's floor rises to the highest position forgotten
                // now, never down.
                let mut floors = std::collections::BTreeMap::<Uuid, i64>::new();
                for row in &forgotten {
                    let floor = floors.entry(row.user_id).or_insert(row.change_seq);
                    *floor = Ord::max(*floor, row.change_seq);
                }
                for (user, floor) in floors {
                    user_change_heads::Entity::update_many()
                        .col_expr(user_change_heads::Column::ChangesFloor, Expr::val(floor))
                        .filter(user_change_heads::Column::Id.eq(user))
                        .filter(user_change_heads::Column::ChangesFloor.lt(floor))
                        .exec(&transaction)
                        .await
                        .map_err(domain_error)?;
                }
                transaction.commit().await.map_err(domain_error)?;
                Ok(forgotten.len() as u64)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_pattern_escapes_both_wildcards_and_the_escape_character() {
        assert_eq!(contains_pattern(r"100%_\x"), r"%100\%\_\\x%");
    }

    #[test]
    fn other_text_is_kept_between_two_wildcards() {
        assert_eq!(contains_pattern("Küche 🦀"), "%Küche 🦀%");
    }

    #[test]
    fn the_prebuilt_feed_statements_are_what_a_fresh_build_gives() {
        for backend in [DbBackend::Postgres, DbBackend::Sqlite] {
            let feed = FeedStatements::build(backend);
            for (tasks_after, deletes_after, fetch) in
                [(0, None, 501), (17, Some(4), 101), (i64::MAX, Some(0), 1)]
            {
                let owner = UserId::generate();
                let fresh = backend.build(&feed_query(owner, tasks_after, deletes_after, fetch));
                let bound = feed.statement(owner, tasks_after, deletes_after, fetch);
                assert_eq!(bound.sql, fresh.sql);
                assert_eq!(bound.values, fresh.values);
                assert_eq!(bound.db_backend, backend);
            }
        }
    }
}
