//! Rows into domain values, in one place.
//!
//! Every text column is parsed with the domain's own rules and must come
//! back exactly as stored: a row that breaks a rule (an over-long title, an
//! email in upper case) was not written by this adapter, and serving it
//! would hand out a value the rest of the code believes impossible.

use sea_orm::prelude::Uuid;
use todo_domain::{
    DomainError, Email, Labels, PasswordHash, Priority, RecordedResponse, Task, TaskDescription,
    TaskId, TaskTitle, TaskVersion, Timestamp, User, UserCredentials, UserId,
};

use crate::entities::{QuietNull, idempotency_keys, tasks, users};

/// Joins a task's label names in `tasks.labels`. No label may hold a
/// control character, so this one can never occur inside a name.
const LABEL_SEPARATOR: char = '\u{1f}';

/// The `tasks.labels` text of `labels`: the names in order, joined with
/// [`LABEL_SEPARATOR`]; `""` for none.
pub(crate) fn stored_labels(labels: &Labels) -> String {
    let mut text = String::new();
    for (index, name) in labels.names().enumerate() {
        if index > 0 {
            text.push(LABEL_SEPARATOR);
        }
        text.push_str(name);
    }
    text
}

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
            Some(QuietNull(raw)) => {
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
        let labels = if row.labels.is_empty() {
            Labels::none()
        } else {
            let names: Vec<&str> = row.labels.split(LABEL_SEPARATOR).collect();
            // Parsing trims and merges case variants; a stored list never
            // needs either, so it must come back name for name.
            match Labels::parse(&names) {
                Ok(labels) if labels.names().eq(names.iter().copied()) => labels,
                Ok(_) => return Err(at("labels").invalid(None)),
                Err(rule) => return Err(at("labels").invalid(Some(Box::new(rule)))),
            }
        };
        let priority = Priority::from_rank(row.priority).ok_or(at("priority").invalid(None))?;
        let version = u64::try_from(row.version)
            .ok()
            .map(TaskVersion::new)
            .filter(|version| *version >= TaskVersion::FIRST)
            .ok_or(at("version").invalid(None))?;
        // A done task has the time it was done, an open one none.
        if row.completed != row.completed_at.is_some() {
            return Err(at("completed_at").invalid(None));
        }
        Ok(Task {
            id: TaskId::from_uuid(row.id),
            owner: UserId::from_uuid(row.user_id),
            title,
            description,
            completed: row.completed,
            completed_at: row
                .completed_at
                .map(|QuietNull(at)| Timestamp::from_datetime(at)),
            due_at: row.due_at.map(|QuietNull(at)| Timestamp::from_datetime(at)),
            priority,
            labels,
            created_at: Timestamp::from_datetime(row.created_at),
            updated_at: Timestamp::from_datetime(row.updated_at),
            version,
        })
    }
}

/// A header that `Name: value` lines cannot hold: a name with a colon, or
/// a line break anywhere. HTTP allows neither, so only a bug produces one.
#[derive(Debug, thiserror::Error)]
#[error("a recorded response header cannot be stored as a `Name: value` line")]
pub struct UnstorableHeader;

impl From<UnstorableHeader> for DomainError {
    fn from(err: UnstorableHeader) -> Self {
        DomainError::Unexpected(Box::new(err))
    }
}

/// The `idempotency_keys.response_headers` text of `headers`: one
/// `Name: value` line each.
pub(crate) fn stored_headers(headers: &[(String, String)]) -> Result<String, UnstorableHeader> {
    let breaks = |text: &str| text.contains(['\r', '\n']);
    let mut text = String::new();
    for (index, (name, value)) in headers.iter().enumerate() {
        if name.is_empty() || name.contains(':') || breaks(name) || breaks(value) {
            return Err(UnstorableHeader);
        }
        if index > 0 {
            text.push('\n');
        }
        text.push_str(name);
        text.push_str(": ");
        text.push_str(value);
    }
    Ok(text)
}

/// The answer recorded under a key, if the request that holds it
/// finished. The three response columns are written together, so a row
/// with some but not all of them was not written by this adapter.
pub(crate) fn recorded_response(
    row: idempotency_keys::Model,
) -> Result<Option<RecordedResponse>, InvalidStoredValue> {
    let at = |column| Column {
        table: "idempotency_keys",
        column,
        id: row.user_id,
    };
    let (status, headers, body) =
        match (row.response_status, row.response_headers, row.response_body) {
            (None, None, None) => return Ok(None),
            (Some(status), Some(headers), Some(body)) => (status, headers, body),
            _ => return Err(at("response_status").invalid(None)),
        };
    let status = u16::try_from(status)
        .ok()
        .filter(|status| (100..=599).contains(status))
        .ok_or(at("response_status").invalid(None))?;
    let mut parsed = Vec::new();
    if !headers.is_empty() {
        for line in headers.split('\n') {
            match line.split_once(": ") {
                Some((name, value)) if !name.is_empty() && !name.contains(':') => {
                    parsed.push((name.to_owned(), value.to_owned()));
                }
                _ => return Err(at("response_headers").invalid(None)),
            }
        }
    }
    Ok(Some(RecordedResponse {
        status,
        headers: parsed,
        body,
    }))
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
            description: Some(QuietNull("2 litres".into())),
            completed: true,
            completed_at: Some(QuietNull(datetime!(2026-02-06 10:30:00 UTC))),
            due_at: Some(QuietNull(datetime!(2026-12-24 18:00:00 UTC))),
            priority: 2,
            labels: "Work\u{1f}home".into(),
            version: 3,
            created_at: datetime!(2026-02-06 10:15:23.123_456 UTC),
            updated_at: datetime!(2026-02-06 11:00:00 +01:00),
        }
    }

    fn key_row() -> idempotency_keys::Model {
        idempotency_keys::Model {
            user_id: Uuid::now_v7(),
            key: "create-1".into(),
            fingerprint: vec![1, 2, 3],
            claim_token: Uuid::now_v7(),
            claimed_at: datetime!(2026-02-06 10:15:23 UTC),
            expires_at: datetime!(2026-02-07 10:15:23 UTC),
            response_status: Some(201),
            response_headers: Some("Location: /api/tasks/1\nETag: \"1\"".into()),
            response_body: Some("{}".into()),
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
        assert_eq!(
            task.completed_at.map(|at| at.as_datetime()),
            row.completed_at.map(|QuietNull(at)| at)
        );
        assert_eq!(
            task.due_at.map(|at| at.as_datetime()),
            row.due_at.map(|QuietNull(at)| at)
        );
        assert_eq!(task.priority, Priority::Medium);
        assert_eq!(task.labels.names().collect::<Vec<_>>(), ["Work", "home"]);
        assert_eq!(task.version, TaskVersion::new(3));
        assert_eq!(task.created_at.as_datetime(), row.created_at);
        assert_eq!(
            task.updated_at.as_datetime(),
            datetime!(2026-02-06 10:00:00 UTC)
        );
    }

    #[test]
    fn empty_label_text_is_no_labels() {
        let row = tasks::Model {
            labels: String::new(),
            ..task_row()
        };
        assert!(Task::try_from(row).unwrap().labels.is_empty());
    }

    #[test]
    fn stored_labels_are_joined_with_the_unit_separator_and_read_back() {
        let labels = Labels::parse(&["Work", "äpfel", "a b"]).unwrap();
        let text = stored_labels(&labels);
        assert_eq!(text, "Work\u{1f}äpfel\u{1f}a b");
        assert_eq!(stored_labels(&Labels::none()), "");
        let row = tasks::Model {
            labels: text,
            ..task_row()
        };
        assert_eq!(Task::try_from(row).unwrap().labels, labels);
    }

    #[test]
    fn stored_labels_that_are_not_canonical_are_refused() {
        for (text, broken_rule) in [
            // Would be trimmed.
            (" Work", false),
            // Case variants the domain would have merged.
            ("Work\u{1f}work", false),
            // An empty name between two separators or at the end.
            ("Work\u{1f}\u{1f}home", true),
            ("Work\u{1f}", true),
            // A control character inside a name.
            ("Wo\trk", true),
        ] {
            let row = tasks::Model {
                labels: text.into(),
                ..task_row()
            };
            let err = Task::try_from(row).unwrap_err();
            assert_eq!(err.column, "labels", "{text:?}");
            assert_eq!(err.rule.is_some(), broken_rule, "{text:?}");
        }
        let twenty_one: Vec<String> = (0..21).map(|n| format!("l{n}")).collect();
        let row = tasks::Model {
            labels: twenty_one.join("\u{1f}"),
            ..task_row()
        };
        assert_eq!(Task::try_from(row).unwrap_err().column, "labels");
    }

    #[test]
    fn each_priority_rank_is_read_and_others_are_refused() {
        for priority in Priority::ALL {
            let row = tasks::Model {
                priority: priority.rank(),
                ..task_row()
            };
            assert_eq!(Task::try_from(row).unwrap().priority, priority);
        }
        for rank in [-1, 4] {
            let row = tasks::Model {
                priority: rank,
                ..task_row()
            };
            assert_eq!(Task::try_from(row).unwrap_err().column, "priority");
        }
    }

    #[test]
    fn a_version_below_one_is_refused() {
        for version in [0, -1, i64::MIN] {
            let row = tasks::Model {
                version,
                ..task_row()
            };
            assert_eq!(Task::try_from(row).unwrap_err().column, "version");
        }
        let row = tasks::Model {
            version: i64::MAX,
            ..task_row()
        };
        assert_eq!(
            Task::try_from(row).unwrap().version.get(),
            i64::MAX.unsigned_abs()
        );
    }

    #[test]
    fn completed_at_must_agree_with_completed() {
        let open_with_time = tasks::Model {
            completed: false,
            ..task_row()
        };
        assert_eq!(
            Task::try_from(open_with_time).unwrap_err().column,
            "completed_at"
        );
        let done_without_time = tasks::Model {
            completed_at: None,
            ..task_row()
        };
        assert_eq!(
            Task::try_from(done_without_time).unwrap_err().column,
            "completed_at"
        );
        let open = tasks::Model {
            completed: false,
            completed_at: None,
            ..task_row()
        };
        assert_eq!(Task::try_from(open).unwrap().completed_at, None);
    }

    #[test]
    fn a_task_without_due_date_reads_as_none() {
        let row = tasks::Model {
            due_at: None,
            ..task_row()
        };
        assert_eq!(Task::try_from(row).unwrap().due_at, None);
    }

    #[test]
    fn recorded_headers_are_stored_as_lines_and_read_back() {
        let headers = vec![
            ("Location".to_owned(), "/api/tasks/1".to_owned()),
            ("ETag".to_owned(), "\"1\"".to_owned()),
            ("X-Empty".to_owned(), String::new()),
        ];
        let text = stored_headers(&headers).unwrap();
        assert_eq!(text, "Location: /api/tasks/1\nETag: \"1\"\nX-Empty: ");
        let row = idempotency_keys::Model {
            response_headers: Some(text),
            ..key_row()
        };
        let response = recorded_response(row).unwrap().unwrap();
        assert_eq!(response.status, 201);
        assert_eq!(response.headers, headers);
        assert_eq!(response.body, "{}");
        assert_eq!(stored_headers(&[]).unwrap(), "");
        let row = idempotency_keys::Model {
            response_headers: Some(String::new()),
            ..key_row()
        };
        assert!(recorded_response(row).unwrap().unwrap().headers.is_empty());
    }

    #[test]
    fn a_header_a_line_cannot_hold_is_not_stored() {
        for (name, value) in [
            ("Bad:Name", "v"),
            ("", "v"),
            ("Name", "one\ntwo"),
            ("Name", "one\rtwo"),
            ("Na\nme", "v"),
        ] {
            assert!(
                stored_headers(&[(name.to_owned(), value.to_owned())]).is_err(),
                "{name:?}: {value:?}"
            );
        }
    }

    #[test]
    fn a_key_still_running_has_no_response() {
        let row = idempotency_keys::Model {
            response_status: None,
            response_headers: None,
            response_body: None,
            ..key_row()
        };
        assert_eq!(recorded_response(row).unwrap(), None);
    }

    #[test]
    fn a_partly_recorded_or_impossible_response_is_refused() {
        let partial = idempotency_keys::Model {
            response_body: None,
            ..key_row()
        };
        assert_eq!(
            recorded_response(partial).unwrap_err().column,
            "response_status"
        );
        for status in [0, 99, 600, -201] {
            let row = idempotency_keys::Model {
                response_status: Some(status),
                ..key_row()
            };
            assert_eq!(
                recorded_response(row).unwrap_err().column,
                "response_status",
                "{status}"
            );
        }
        for headers in ["Location /x", ": x", "Location: /x\n"] {
            let row = idempotency_keys::Model {
                response_headers: Some(headers.into()),
                ..key_row()
            };
            assert_eq!(
                recorded_response(row).unwrap_err().column,
                "response_headers",
                "{headers:?}"
            );
        }
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
            description: Some(QuietNull("   ".into())),
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
