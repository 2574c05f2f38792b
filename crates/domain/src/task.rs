use crate::{Labels, Priority, TaskId, Timestamp, UserId};

/// The longest title, in Unicode scalar values, after trimming.
pub const TITLE_MAX_CHARS: usize = 500;
/// The longest description, in Unicode scalar values, after trimming.
pub const DESCRIPTION_MAX_CHARS: usize = 2000;

/// Why a title was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TaskTitleError {
    /// Nothing but white space.
    #[error("Title cannot be empty")]
    Empty,
    /// Longer than [`TITLE_MAX_CHARS`] after trimming.
    #[error("Title must be at most 500 characters")]
    TooLong,
    /// Holds U+0000, which PostgreSQL text cannot store.
    #[error("Title must not contain NUL characters")]
    ContainsNul,
}

/// Why a description was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TaskDescriptionError {
    /// Longer than [`DESCRIPTION_MAX_CHARS`] after trimming.
    #[error("Description must be at most 2000 characters")]
    TooLong,
    /// Holds U+0000, which PostgreSQL text cannot store.
    #[error("Description must not contain NUL characters")]
    ContainsNul,
}

/// A task title: trimmed, 1 to 500 characters, no NUL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskTitle(String);

impl TaskTitle {
    /// Trims Unicode white space and checks the title rules.
    ///
    /// # Errors
    /// The first [`TaskTitleError`] that applies.
    pub fn parse(raw: &str) -> Result<Self, TaskTitleError> {
        Self::checked(raw).map(|trimmed| Self(trimmed.to_owned()))
    }

    /// As [`TaskTitle::parse`], but keeps `raw`'s buffer when there is
    /// nothing to trim, as with every title read back from storage.
    ///
    /// # Errors
    /// The first [`TaskTitleError`] that applies.
    pub fn parse_owned(raw: String) -> Result<Self, TaskTitleError> {
        let trimmed_len = Self::checked(&raw)?.len();
        if trimmed_len == raw.len() {
            Ok(Self(raw))
        } else {
            Ok(Self(raw.trim().to_owned()))
        }
    }

    /// The trimmed title, if it keeps the rules.
    fn checked(raw: &str) -> Result<&str, TaskTitleError> {
        if raw.contains('\0') {
            return Err(TaskTitleError::ContainsNul);
        }
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(TaskTitleError::Empty);
        }
        if trimmed.chars().count() > TITLE_MAX_CHARS {
            return Err(TaskTitleError::TooLong);
        }
        Ok(trimmed)
    }

    /// The title as stored.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The title as an owned string, without copying it.
    #[must_use]
    pub fn into_string(self) -> String {
        self.0
    }
}

/// A task description: trimmed, 1 to 2000 characters, no NUL.
///
/// An absent or blank description is `None`, never an empty `TaskDescription`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDescription(String);

impl TaskDescription {
    /// Trims Unicode white space and checks the description rules; blank
    /// input means "no description".
    ///
    /// # Errors
    /// The first [`TaskDescriptionError`] that applies.
    pub fn parse(raw: Option<&str>) -> Result<Option<Self>, TaskDescriptionError> {
        let Some(raw) = raw else {
            return Ok(None);
        };
        Ok(Self::checked(raw)?.map(|trimmed| Self(trimmed.to_owned())))
    }

    /// As [`TaskDescription::parse`], but keeps `raw`'s buffer when there
    /// is nothing to trim, as with every description read back from storage.
    ///
    /// # Errors
    /// The first [`TaskDescriptionError`] that applies.
    pub fn parse_owned(raw: Option<String>) -> Result<Option<Self>, TaskDescriptionError> {
        let Some(raw) = raw else {
            return Ok(None);
        };
        let Some(trimmed_len) = Self::checked(&raw)?.map(str::len) else {
            return Ok(None);
        };
        if trimmed_len == raw.len() {
            Ok(Some(Self(raw)))
        } else {
            Ok(Some(Self(raw.trim().to_owned())))
        }
    }

    /// The trimmed description, `None` when blank, if it keeps the rules.
    fn checked(raw: &str) -> Result<Option<&str>, TaskDescriptionError> {
        if raw.contains('\0') {
            return Err(TaskDescriptionError::ContainsNul);
        }
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        if trimmed.chars().count() > DESCRIPTION_MAX_CHARS {
            return Err(TaskDescriptionError::TooLong);
        }
        Ok(Some(trimmed))
    }

    /// The description as stored.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The description as an owned string, without copying it.
    #[must_use]
    pub fn into_string(self) -> String {
        self.0
    }
}

/// How many times a task has been written: 1 when created, one more with
/// every change. The `ETag` of a task is made from it, and conditional
/// writes compare it inside the statement that writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskVersion(u64);

impl TaskVersion {
    /// The version of a task just created.
    pub const FIRST: TaskVersion = TaskVersion(1);

    /// A version as stored or as read back from an `ETag`.
    #[must_use]
    pub fn new(version: u64) -> Self {
        Self(version)
    }

    /// The number.
    #[must_use]
    pub fn get(self) -> u64 {
        self.0
    }
}

/// A task as stored. The owner is fixed when the task is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// The task's id.
    pub id: TaskId,
    /// The user the task belongs to; never shown to clients.
    pub owner: UserId,
    /// The title.
    pub title: TaskTitle,
    /// The description, if any.
    pub description: Option<TaskDescription>,
    /// Whether the task is done.
    pub completed: bool,
    /// When the change that made it done happened; `None` exactly while
    /// `completed` is false.
    pub completed_at: Option<Timestamp>,
    /// When the task is due, if ever.
    pub due_at: Option<Timestamp>,
    /// How urgent it is.
    pub priority: Priority,
    /// Its labels, in the order given.
    pub labels: Labels,
    /// When the task was created; never changes.
    pub created_at: Timestamp,
    /// When the task last changed; never before `created_at`.
    pub updated_at: Timestamp,
    /// How many times it was written.
    pub version: TaskVersion,
}

/// What a client gives to create a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTask {
    /// The title.
    pub title: TaskTitle,
    /// The description, if any.
    pub description: Option<TaskDescription>,
    /// The initial state; clients that omit it get `false`.
    pub completed: bool,
    /// The due date, if any.
    pub due_at: Option<Timestamp>,
    /// The priority; clients that omit it get [`Priority::None`].
    pub priority: Priority,
    /// The labels; clients that omit them get none.
    pub labels: Labels,
}

/// A change to some of a task's fields: `None` leaves a field as it is.
///
/// `PATCH` (a JSON Merge Patch) sets only what it names; `PUT` always sets
/// the title and the description and, like a patch, the other fields only
/// when sent. A patch that changes nothing, once compared with the stored
/// values, writes nothing: neither `updated_at` nor the version moves.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskPatch {
    /// A new title.
    pub title: Option<TaskTitle>,
    /// A new description; `Some(None)` clears it.
    pub description: Option<Option<TaskDescription>>,
    /// A new state.
    pub completed: Option<bool>,
    /// A new due date; `Some(None)` clears it.
    pub due_at: Option<Option<Timestamp>>,
    /// A new priority.
    pub priority: Option<Priority>,
    /// New labels, replacing the old ones.
    pub labels: Option<Labels>,
}

impl TaskPatch {
    /// Whether the patch names no field at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// An `If-Match` condition: the write happens only if the task's current
/// version is one of these. An empty list matches no version. (`If-Match:
/// *` asks only that the task exist, which every write asks anyway, so it
/// is no condition at all.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Precondition {
    versions: Vec<TaskVersion>,
}

impl Precondition {
    /// A condition met by any of `versions`.
    #[must_use]
    pub fn any_of(versions: Vec<TaskVersion>) -> Self {
        Self { versions }
    }

    /// The versions that meet it.
    #[must_use]
    pub fn versions(&self) -> &[TaskVersion] {
        &self.versions
    }

    /// Whether `version` meets it.
    #[must_use]
    pub fn is_met_by(&self, version: TaskVersion) -> bool {
        self.versions.contains(&version)
    }
}

/// How a completion request changes a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompletionChange {
    /// Invert the current state, atomically.
    Toggle,
    /// Set the state to this value (idempotent).
    Set(bool),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_parsing_keeps_a_trimmed_buffer_and_the_same_rules() {
        let stored = String::from("Buy milk");
        let address = stored.as_ptr();
        let title = TaskTitle::parse_owned(stored).unwrap();
        assert_eq!(title.as_str().as_ptr(), address, "the buffer was copied");
        assert_eq!(TaskTitle::parse_owned("  a ".into()).unwrap().as_str(), "a");
        assert_eq!(
            TaskTitle::parse_owned(" ".into()),
            Err(TaskTitleError::Empty)
        );
        assert_eq!(
            TaskTitle::parse_owned("x".repeat(TITLE_MAX_CHARS + 1)),
            Err(TaskTitleError::TooLong)
        );
        assert_eq!(
            TaskTitle::parse_owned("a\0b".into()),
            Err(TaskTitleError::ContainsNul)
        );

        let stored = String::from("Two litres");
        let address = stored.as_ptr();
        let description = TaskDescription::parse_owned(Some(stored)).unwrap().unwrap();
        assert_eq!(
            description.as_str().as_ptr(),
            address,
            "the buffer was copied"
        );
        assert_eq!(
            TaskDescription::parse_owned(Some(" b ".into()))
                .unwrap()
                .unwrap()
                .as_str(),
            "b"
        );
        assert_eq!(TaskDescription::parse_owned(Some("  ".into())), Ok(None));
        assert_eq!(TaskDescription::parse_owned(None), Ok(None));
        assert_eq!(
            TaskDescription::parse_owned(Some("a\0".into())),
            Err(TaskDescriptionError::ContainsNul)
        );
    }

    #[test]
    fn title_is_trimmed() {
        assert_eq!(
            TaskTitle::parse("  Buy milk \n").unwrap().as_str(),
            "Buy milk"
        );
    }

    #[test]
    fn title_of_only_spaces_is_rejected() {
        assert_eq!(TaskTitle::parse("   \t\n"), Err(TaskTitleError::Empty));
    }

    #[test]
    fn empty_title_is_rejected() {
        assert_eq!(TaskTitle::parse(""), Err(TaskTitleError::Empty));
    }

    #[test]
    fn unicode_white_space_counts_as_blank() {
        // No-break space and ideographic space.
        assert_eq!(
            TaskTitle::parse("\u{a0}\u{3000}"),
            Err(TaskTitleError::Empty)
        );
        assert_eq!(TaskTitle::parse("\u{3000}x\u{a0}").unwrap().as_str(), "x");
    }

    #[test]
    fn title_of_500_characters_is_accepted() {
        let title = "é".repeat(500);
        assert_eq!(TaskTitle::parse(&title).unwrap().as_str(), title);
    }

    #[test]
    fn title_of_501_characters_is_rejected() {
        assert_eq!(
            TaskTitle::parse(&"a".repeat(501)),
            Err(TaskTitleError::TooLong)
        );
    }

    #[test]
    fn title_length_counts_characters_not_bytes() {
        // 500 four-byte emoji are 2000 bytes but 500 characters.
        assert!(TaskTitle::parse(&"🦀".repeat(500)).is_ok());
    }

    #[test]
    fn surrounding_spaces_do_not_count_towards_the_limit() {
        let title = format!("  {}  ", "a".repeat(500));
        assert!(TaskTitle::parse(&title).is_ok());
    }

    #[test]
    fn title_with_nul_is_rejected() {
        assert_eq!(TaskTitle::parse("a\0b"), Err(TaskTitleError::ContainsNul));
    }

    #[test]
    fn right_to_left_and_emoji_titles_keep_every_byte() {
        let title = "שלום 👋🏽 مرحبا";
        assert_eq!(TaskTitle::parse(title).unwrap().as_str(), title);
    }

    #[test]
    fn absent_description_is_none() {
        assert_eq!(TaskDescription::parse(None), Ok(None));
    }

    #[test]
    fn blank_description_is_none() {
        assert_eq!(TaskDescription::parse(Some(" \u{3000} ")), Ok(None));
    }

    #[test]
    fn description_is_trimmed() {
        let parsed = TaskDescription::parse(Some(" 2 litres ")).unwrap().unwrap();
        assert_eq!(parsed.as_str(), "2 litres");
    }

    #[test]
    fn description_of_2000_characters_is_accepted() {
        assert!(
            TaskDescription::parse(Some(&"d".repeat(2000)))
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn description_of_2001_characters_is_rejected() {
        assert_eq!(
            TaskDescription::parse(Some(&"d".repeat(2001))),
            Err(TaskDescriptionError::TooLong)
        );
    }

    #[test]
    fn description_with_nul_is_rejected() {
        assert_eq!(
            TaskDescription::parse(Some("\0")),
            Err(TaskDescriptionError::ContainsNul)
        );
    }
}
