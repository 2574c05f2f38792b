//! Rows into domain values, in one place.
//!
//! Every text column is parsed with the domain's own rules and must come
//! back exactly as stored: a row that breaks a rule (an over-long title, an
//! email in upper case) was not written by this adapter, and serving it
//! would hand out a value the rest of the code believes impossible.

use sea_orm::prelude::Uuid;
use todo_domain::{
    DomainError, Email, PasswordHash, Task, TaskDescription, TaskId, TaskTitle, Timestamp, User,
    UserCredentials, UserId,
};

use crate::entities::{tasks, users};

/// A stored value that breaks a domain rule. Names the row and column, never
/// the value: it may be private, and this error is logged.
#[derive(Debug, thiserror::Error)]
#[error("`{table}.{column}` of row {id} breaks a domain rule")]
pub struct InvalidStoredValue {
    table: &'static str,
    column: &'static str,
    id: Uuid,
    #[source]
    rule: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl From<InvalidStoredValue> for DomainError {
    fn from(err: InvalidStoredValue) -> Self {
        DomainError::Unexpected(Box::new(err))
    }
}

/// Where a value was read from, for the error message.
#[derive(Clone, Copy)]
struct Column {
    table: &'static str,
    column: &'static str,
    id: Uuid,
}

impl Column {
    fn invalid(self, rule: Option<Box<dyn std::error::Error + Send + Sync>>) -> InvalidStoredValue {
        InvalidStoredValue {
            table: self.table,
            column: self.column,
            id: self.id,
            rule,
        }
    }

    /// `parsed` must have succeeded and kept `raw` byte for byte (parsing
    /// trims and lowercases; a stored value never needs either).
    fn canonical<T, E>(
        self,
        raw: &str,
        parsed: Result<T, E>,
        text: impl Fn(&T) -> &str,
    ) -> Result<T, InvalidStoredValue>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        match parsed {
            Ok(value) if text(&value) == raw => Ok(value),
            Ok(_) => Err(self.invalid(None)),
            Err(rule) => Err(self.invalid(Some(Box::new(rule)))),
        }
    }
}

impl TryFrom<tasks::Model> for Task {
    type Error = InvalidStoredValue;

    fn try_from(row: tasks::Model) -> Result<Self, Self::Error> {
        let at = |column| Column {
            table: "tasks",
            column,
            id: row.id,
        };
        // Parsing only trims, so a stored value is canonical exactly when
        // parsing keeps its length. The owned parsers reuse the row's
        // strings instead of copying them.
        let stored_len = row.title.len();
        let title = match TaskTitle::parse_owned(row.title) {
            Ok(title) if title.as_str().len() == stored_len => title,
            Ok(_) => return Err(at("title").invalid(None)),
            Err(rule) => return Err(at("title").invalid(Some(Box::new(rule)))),
        };
        let description = match row.description {
            None => None,
            Some(raw) => {
                let stored_len = raw.len();
                match TaskDescription::parse_owned(Some(raw)) {
                    Ok(Some(description)) if description.as_str().len() == stored_len => {
                        Some(description)
                    }
                    // Blank text (`Ok(None)`) or text with white space around
                    // it: the domain stores the first as NULL and never the
                    // second.
                    Ok(_) => return Err(at("description").invalid(None)),
                    Err(rule) => return Err(at("description").invalid(Some(Box::new(rule)))),
                }
            }
        };
        Ok(Task {
            id: TaskId::from_uuid(row.id),
            owner: UserId::from_uuid(row.user_id),
            title,
            description,
            completed: row.completed,
            completed_at: None,
            due_at: None,
            priority: todo_domain::Priority::None,
            labels: todo_domain::Labels::none(),
            created_at: Timestamp::from_datetime(row.created_at),
            updated_at: Timestamp::from_datetime(row.updated_at),
            version: todo_domain::TaskVersion::FIRST,
        })
    }
}

impl TryFrom<users::Model> for User {
    type Error = InvalidStoredValue;

    fn try_from(row: users::Model) -> Result<Self, Self::Error> {
        let email = Column {
            table: "users",
            column: "email",
            id: row.id,
        }
        .canonical(&row.email, Email::parse(&row.email), |email| email.as_str())?;
        Ok(User {
            id: UserId::from_uuid(row.id),
            email,
            created_at: Timestamp::from_datetime(row.created_at),
            last_signin_at: row.last_signin_at.map(Timestamp::from_datetime),
        })
    }
}

/// The two columns sign-in reads. A hash is opaque here: the hasher
/// decides whether it is well formed.
pub(crate) fn credentials((id, password_hash): (Uuid, String)) -> UserCredentials {
    UserCredentials {
        user_id: UserId::from_uuid(id),
        password_hash: PasswordHash::new(password_hash),
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn task_row() -> tasks::Model {
        tasks::Model {
            id: Uuid::now_v7(),
            user_id: Uuid::now_v7(),
            title: "Buy milk".into(),
            description: Some("2 litres".into()),
            completed: true,
            created_at: datetime!(2026-02-06 10:15:23.123_456 UTC),
            updated_at: datetime!(2026-02-06 11:00:00 +01:00),
        }
    }

    fn user_row() -> users::Model {
        users::Model {
            id: Uuid::now_v7(),
            email: "ada@example.io".into(),
            password_hash: Some("$argon2id$v=19$...".into()),
            created_at: datetime!(2026-02-06 10:15:23 UTC),
            last_signin_at: None,
        }
    }

    #[test]
    fn a_valid_task_row_converts_field_for_field() {
        let row = task_row();
        let task = Task::try_from(row.clone()).unwrap();
        assert_eq!(task.id.as_uuid(), row.id);
        assert_eq!(task.owner.as_uuid(), row.user_id);
        assert_eq!(task.title.as_str(), "Buy milk");
        assert_eq!(task.description.unwrap().as_str(), "2 litres");
        assert!(task.completed);
        assert_eq!(task.created_at.as_datetime(), row.created_at);
        assert_eq!(
            task.updated_at.as_datetime(),
            datetime!(2026-02-06 10:00:00 UTC)
        );
    }

    #[test]
    fn a_null_description_is_none() {
        let row = tasks::Model {
            description: None,
            ..task_row()
        };
        assert_eq!(Task::try_from(row).unwrap().description, None);
    }

    #[test]
    fn an_over_long_stored_title_is_refused() {
        let row = tasks::Model {
            title: "a".repeat(501),
            ..task_row()
        };
        let err = Task::try_from(row).unwrap_err();
        assert_eq!(err.column, "title");
        assert!(err.rule.is_some());
    }

    #[test]
    fn an_untrimmed_stored_title_is_refused() {
        let row = tasks::Model {
            title: " Buy milk".into(),
            ..task_row()
        };
        assert_eq!(Task::try_from(row).unwrap_err().column, "title");
    }

    #[test]
    fn a_blank_stored_description_is_refused() {
        let row = tasks::Model {
            description: Some("   ".into()),
            ..task_row()
        };
        assert_eq!(Task::try_from(row).unwrap_err().column, "description");
    }

    #[test]
    fn the_error_names_the_row_but_not_the_value() {
        let row = tasks::Model {
            title: "secret plans\0".into(),
            ..task_row()
        };
        let id = row.id;
        let message = Task::try_from(row).unwrap_err().to_string();
        assert!(message.contains(&id.to_string()));
        assert!(!message.contains("secret"));
    }

    #[test]
    fn a_stored_row_that_breaks_a_rule_is_an_unexpected_domain_error() {
        let row = tasks::Model {
            title: String::new(),
            ..task_row()
        };
        let err = DomainError::from(Task::try_from(row).unwrap_err());
        assert!(matches!(err, DomainError::Unexpected(_)));
    }

    #[test]
    fn a_valid_user_row_converts() {
        let row = users::Model {
            last_signin_at: Some(datetime!(2026-02-07 09:00:00.5 UTC)),
            ..user_row()
        };
        let user = User::try_from(row.clone()).unwrap();
        assert_eq!(user.id.as_uuid(), row.id);
        assert_eq!(user.email.as_str(), "ada@example.io");
        assert_eq!(user.created_at.as_datetime(), row.created_at);
        assert_eq!(
            user.last_signin_at.map(|at| at.as_datetime()),
            row.last_signin_at
        );
    }

    #[test]
    fn a_stored_email_that_is_not_normalised_is_refused() {
        for email in ["Ada@Example.io", "not an email"] {
            let row = users::Model {
                email: email.into(),
                ..user_row()
            };
            assert_eq!(User::try_from(row).unwrap_err().column, "email", "{email}");
        }
    }
}
