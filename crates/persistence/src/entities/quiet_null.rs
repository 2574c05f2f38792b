//! The value of a nullable column, read so that a NULL costs nothing.
//!
//! SeaORM, at the version this workspace pins (docs/architecture.md names
//! it), reads an `Option<T>` field by reading a `T`, and for a
//! NULL that read fails with the column's name formatted into the error,
//! which the `Option` then throws away. The hot reads (a list, a page, a
//! feed) meet two or three NULLs per task row, so those formatted names
//! were a measurable share of the server's work on every list
//! (docs/performance.md, "NULL columns cost SeaORM a formatted string").
//! A field typed `Option<QuietNull<T>>` reads the same column as
//! `Option<T>` would, through the same driver decoding, but answers a NULL
//! with an empty error. Drop it for plain `Option<T>` once SeaORM reads
//! NULLs without formatting.

use std::sync::Arc;

use sea_orm::sea_query::{ArrayType, ColumnType, Nullable, ValueType, ValueTypeErr};
use sea_orm::sqlx::{self, Postgres, Row, Sqlite};
use sea_orm::{ColIdx, DbErr, QueryResult, RuntimeErr, TryGetError, TryGetable, Value};

/// A value read from a nullable column; `None` around it is the NULL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuietNull<T>(pub T);

impl<T> TryGetable for QuietNull<T>
where
    T: for<'r> sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
    T: for<'r> sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
{
    fn try_get_by<I: ColIdx>(result: &QueryResult, index: I) -> Result<Self, TryGetError> {
        let read = if let Some(row) = result.try_as_pg_row() {
            row.try_get::<Option<T>, _>(index.as_sqlx_postgres_index())
        } else if let Some(row) = result.try_as_sqlite_row() {
            row.try_get::<Option<T>, _>(index.as_sqlx_sqlite_index())
        } else {
            // `connect` opens only these two engines; a row of another
            // (SeaORM's mock, say) is a wiring mistake, reported as one.
            return Err(TryGetError::DbErr(DbErr::Type(
                "a row of neither PostgreSQL nor SQLite".to_owned(),
            )));
        };
        match read {
            Ok(Some(value)) => Ok(Self(value)),
            // `Option<QuietNull<T>>` turns exactly this into `None`.
            Ok(None) => Err(TryGetError::Null(String::new())),
            // As SeaORM reports a failed read, so a missing column still
            // reads as `None` and a wrong type still names itself.
            Err(err) => Err(TryGetError::DbErr(DbErr::Query(RuntimeErr::SqlxError(
                Arc::new(err),
            )))),
        }
    }
}

impl<T: ValueType> ValueType for QuietNull<T> {
    fn try_from(value: Value) -> Result<Self, ValueTypeErr> {
        T::try_from(value).map(Self)
    }

    fn type_name() -> String {
        T::type_name()
    }

    fn array_type() -> ArrayType {
        T::array_type()
    }

    fn column_type() -> ColumnType {
        T::column_type()
    }
}

impl<T: Nullable> Nullable for QuietNull<T> {
    fn null() -> Value {
        T::null()
    }
}

impl<T: Into<Value>> From<QuietNull<T>> for Value {
    fn from(value: QuietNull<T>) -> Self {
        value.0.into()
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};

    use super::*;

    async fn one_row(sql: &str) -> QueryResult {
        let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
        db.query_one_raw(Statement::from_string(DbBackend::Sqlite, sql))
            .await
            .unwrap()
            .unwrap()
    }

    #[tokio::test]
    async fn reads_a_value_a_null_and_a_missing_column_as_option_does() {
        let row = one_row("SELECT 'milk' AS present, NULL AS absent").await;
        let read = |column| Option::<QuietNull<String>>::try_get(&row, "", column);
        assert_eq!(read("present").unwrap(), Some(QuietNull("milk".to_owned())));
        assert_eq!(read("absent").unwrap(), None);
        // SeaORM's own `Option<T>` reads a column the row lacks as `None`.
        assert_eq!(read("elsewhere").unwrap(), None);
        assert_eq!(
            Option::<String>::try_get(&row, "", "elsewhere").unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn a_value_of_another_type_is_an_error_not_a_null() {
        let row = one_row("SELECT 7 AS number").await;
        let read = Option::<QuietNull<String>>::try_get(&row, "", "number");
        assert!(matches!(read, Err(TryGetError::DbErr(_))), "{read:?}");
    }
}
