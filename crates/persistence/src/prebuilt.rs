//! Statements whose text sea-query writes once, at start-up.
//!
//! Building a statement from its parts costs more than some statements
//! cost to run: the changes feed's read, with its two sides, its joins and
//! its subqueries, cost the server more to assemble and write out than to
//! send, run and decode (docs/performance.md, "What a delivered
//! change costs"), and so did the `NOTIFY` that carries every write's news.
//! Both run often, so each is built once from stand-in arguments; each call
//! then puts its own arguments where the stand-ins were.

use sea_orm::{DbBackend, Statement, Value, Values};

/// A statement's text and values, built once; see the module's comment.
#[derive(Debug)]
pub(crate) struct Prebuilt<const ARGUMENTS: usize> {
    backend: DbBackend,
    sql: String,
    values: Vec<Slot>,
}

/// One of the statement's values: fixed by the statement itself (a
/// constant it compares with), or taken from the call's argument at this
/// index, which is below the number of stand-ins, so within every call's
/// arguments.
#[derive(Debug)]
enum Slot {
    Fixed(Value),
    Argument(usize),
}

impl<const ARGUMENTS: usize> Prebuilt<ARGUMENTS> {
    /// Keeps `built`, a statement built with `stand_ins` for its arguments,
    /// with each value equal to a stand-in marked as that argument's place.
    /// Stand-ins must be values the statement uses nowhere else (extremes
    /// no real argument or constant takes); each statement's tests compare
    /// [`Prebuilt::bind`] with a fresh build to prove it.
    pub(crate) fn new(built: Statement, stand_ins: &[Value; ARGUMENTS]) -> Self {
        let values = built
            .values
            .map(|Values(values)| values)
            .unwrap_or_default()
            .into_iter()
            .map(
                |value| match stand_ins.iter().position(|stand_in| *stand_in == value) {
                    Some(argument) => Slot::Argument(argument),
                    None => Slot::Fixed(value),
                },
            )
            .collect();
        Self {
            backend: built.db_backend,
            sql: built.sql,
            values,
        }
    }

    /// The statement for `arguments`, given in the order of the stand-ins.
    pub(crate) fn bind(&self, arguments: &[Value; ARGUMENTS]) -> Statement {
        let values = self.values.iter().map(|slot| match slot {
            Slot::Fixed(value) => value.clone(),
            Slot::Argument(argument) => arguments[*argument].clone(),
        });
        Statement::from_sql_and_values(self.backend, self.sql.clone(), values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query, SelectStatement};

    fn statement(owner: i64, limit: u64) -> SelectStatement {
        Query::select()
            .column(Alias::new("id"))
            .from(Alias::new("t"))
            .and_where(Expr::col(Alias::new("owner")).eq(owner))
            .and_where(Expr::col(Alias::new("kind")).eq(3_i16))
            .and_where(Expr::col(Alias::new("other")).eq(owner))
            .limit(limit)
            .to_owned()
    }

    #[test]
    fn bound_arguments_give_what_a_fresh_build_gives() {
        for backend in [DbBackend::Postgres, DbBackend::Sqlite] {
            let stand_ins = [Value::from(i64::MIN), Value::from(u64::MAX)];
            let prebuilt = Prebuilt::new(backend.build(&statement(i64::MIN, u64::MAX)), &stand_ins);
            for (owner, limit) in [(7, 20), (0, 1), (-3, 500)] {
                let fresh = backend.build(&statement(owner, limit));
                let bound = prebuilt.bind(&[Value::from(owner), Value::from(limit)]);
                assert_eq!(bound.sql, fresh.sql);
                assert_eq!(bound.values, fresh.values);
                assert_eq!(bound.db_backend, backend);
            }
        }
    }
}
