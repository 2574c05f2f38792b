//! Reads the database behind a test app directly, to check what was really
//! stored (not what the API claims).

use std::time::Duration;

use sea_orm::{ConnectionTrait, Statement, Value};
use todo_persistence::{Database, DatabaseSettings};

/// A read-only view of one test database.
pub struct DbProbe {
    db: Database,
}

/// Every column of every row, as text, in a stable order.
pub type Rows = Vec<Vec<Option<String>>>;

impl DbProbe {
    pub async fn connect(url: &str) -> DbProbe {
        let db = todo_persistence::connect(&DatabaseSettings {
            url: url.to_owned(),
            max_connections: 1,
            acquire_timeout: Duration::from_secs(10),
            statement_timeout: Duration::from_secs(10),
        })
        .await
        .expect("the probe connects");
        DbProbe { db }
    }

    /// Rows of `sql`, whose `columns` columns must all be text or NULL.
    pub async fn rows(&self, sql: &str, columns: usize) -> Rows {
        let backend = self.db.get_database_backend();
        let results = self
            .db
            .query_all_raw(Statement::from_string(backend, sql.to_owned()))
            .await
            .expect("probe query");
        results
            .iter()
            .map(|row| {
                (0..columns)
                    .map(|index| {
                        row.try_get_by_index::<Option<String>>(index)
                            .unwrap_or_else(|error| panic!("column {index} of {sql}: {error}"))
                    })
                    .collect()
            })
            .collect()
    }

    /// The backend behind the probe.
    pub fn backend(&self) -> sea_orm::DbBackend {
        self.db.get_database_backend()
    }

    /// Runs one statement that changes rows, with bound `values`, where a
    /// test must set up a state the API cannot reach (a request still
    /// running, a key past its time); returns the rows affected.
    pub async fn execute(&self, sql: &str, values: Vec<Value>) -> u64 {
        let statement = Statement::from_sql_and_values(self.backend(), sql, values);
        self.db
            .execute_raw(statement)
            .await
            .unwrap_or_else(|error| panic!("{sql}: {error}"))
            .rows_affected()
    }

    /// The single integer `sql` selects.
    pub async fn count(&self, sql: &str, values: Vec<Value>) -> i64 {
        let statement = Statement::from_sql_and_values(self.backend(), sql, values);
        let row = self
            .db
            .query_one_raw(statement)
            .await
            .unwrap_or_else(|error| panic!("{sql}: {error}"))
            .expect("one row");
        row.try_get_by_index::<i64>(0)
            .unwrap_or_else(|error| panic!("{sql}: {error}"))
    }

    /// An instant bound as the backend stores it: `timestamptz` on
    /// PostgreSQL, fixed-width RFC 3339 text on SQLite.
    pub fn instant(&self, at: time::OffsetDateTime) -> Value {
        let at = todo_domain::Timestamp::from_datetime(at);
        match self.backend() {
            sea_orm::DbBackend::Sqlite => Value::from(at.to_fixed_rfc3339()),
            _ => Value::from(at.as_datetime()),
        }
    }

    /// Both tables in full, every column as text (ids, flags and times
    /// included), so any change to any row shows as a difference.
    pub async fn snapshot(&self) -> (Rows, Rows) {
        let id = self.uuid_text("id");
        let users = self
            .rows(
                &format!(
                    "SELECT {id}, email, password_hash, CAST(created_at AS TEXT), \
                     CAST(last_signin_at AS TEXT) FROM users ORDER BY 1"
                ),
                5,
            )
            .await;
        (users, self.tasks().await)
    }

    /// id, owner, title, description, completed, created_at, updated_at.
    pub async fn tasks(&self) -> Rows {
        let (id, owner) = (self.uuid_text("id"), self.uuid_text("user_id"));
        self.rows(
            &format!(
                "SELECT {id}, {owner}, title, description, CAST(completed AS TEXT), \
                 CAST(created_at AS TEXT), CAST(updated_at AS TEXT) FROM tasks ORDER BY 1"
            ),
            7,
        )
        .await
    }

    /// A UUID column as text: PostgreSQL casts it; SQLite stores 16 raw
    /// bytes, which are not UTF-8, so they are shown in hex.
    fn uuid_text(&self, column: &str) -> String {
        match self.db.get_database_backend() {
            sea_orm::DbBackend::Sqlite => format!("hex({column})"),
            _ => format!("CAST({column} AS TEXT)"),
        }
    }
}
