//! What `GET /api/tasks` asks for: filters, an order, and a page.
//!
//! Pages are found by position (keyset pagination): a page starts after the
//! sort value and id of the last task of the page before, so a page costs
//! the same wherever it lies, and tasks created or deleted meanwhile never
//! make a walk skip or repeat a task that existed throughout.

use crate::{Labels, Priority, Task, TaskId, TaskTitle, Timestamp};

/// The longest search text, in Unicode scalar values: no task field is
/// longer, so nothing longer could match.
pub const SEARCH_MAX_CHARS: usize = 2000;
/// The most tasks one page may hold.
pub const PAGE_LIMIT_MAX: u16 = 100;

/// Text to look for, literally, in a task's title, description and labels.
/// Never empty: an empty search is no search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchText(String);

/// A search text that cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SearchTextError {
    /// Longer than [`SEARCH_MAX_CHARS`].
    #[error("must be at most 2000 characters")]
    TooLong,
    /// Holds U+0000, which no stored text can hold.
    #[error("must not contain NUL characters")]
    ContainsNul,
}

impl SearchText {
    /// `None` for the empty text, which every task contains.
    ///
    /// # Errors
    /// A [`SearchTextError`] when the text breaks a rule.
    pub fn parse(raw: &str) -> Result<Option<Self>, SearchTextError> {
        if raw.contains('\0') {
            return Err(SearchTextError::ContainsNul);
        }
        if raw.chars().count() > SEARCH_MAX_CHARS {
            return Err(SearchTextError::TooLong);
        }
        Ok((!raw.is_empty()).then(|| Self(raw.to_owned())))
    }

    /// The text, exactly as given.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Which tasks a list holds. Every condition set must hold (AND); an unset
/// one lets every task through.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskFilter {
    /// Only done (`true`) or only open (`false`) tasks.
    pub completed: Option<bool>,
    /// Only tasks with one of these priorities; empty: any.
    pub priorities: Vec<Priority>,
    /// Only tasks that carry every one of these labels (compared without
    /// case); empty: any.
    pub labels: Labels,
    /// Only tasks due strictly before this instant.
    pub due_before: Option<Timestamp>,
    /// Only tasks due at or after this instant.
    pub due_after: Option<Timestamp>,
    /// `true`: only overdue tasks (due before now and not done); `false`:
    /// only tasks that are not overdue.
    pub overdue: Option<bool>,
    /// Only tasks whose title, description or a label contains this text.
    pub search: Option<SearchText>,
}

/// The field a list is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortField {
    /// Creation time (the default).
    CreatedAt,
    /// Time of the last change.
    UpdatedAt,
    /// Due date; tasks without one come last in both orders.
    DueAt,
    /// Priority, `none < low < medium < high`.
    Priority,
    /// Title, ignoring the case of ASCII letters.
    Title,
}

impl SortField {
    /// The order a client gets when it names only the field: `title` and
    /// `due_at` read naturally from the start, times and priorities from
    /// the latest or highest.
    #[must_use]
    pub fn default_order(self) -> SortOrder {
        match self {
            Self::Title | Self::DueAt => SortOrder::Asc,
            Self::CreatedAt | Self::UpdatedAt | Self::Priority => SortOrder::Desc,
        }
    }
}

/// Ascending or descending. Ties are broken by id in the same direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortOrder {
    /// Smallest first.
    Asc,
    /// Largest first.
    Desc,
}

/// A sort field and its direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TaskSort {
    /// The field.
    pub field: SortField,
    /// The direction.
    pub order: SortOrder,
}

impl Default for TaskSort {
    /// Newest first, as [core] lists have always been.
    fn default() -> Self {
        Self {
            field: SortField::CreatedAt,
            order: SortOrder::Desc,
        }
    }
}

/// Where a task stands in a sorted list: its value of the sort field and
/// its id. A page starts strictly after such a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskPosition {
    /// The task's value of the sort field.
    pub key: SortKey,
    /// The task's id, which breaks ties.
    pub id: TaskId,
}

/// A value of the sort field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortKey {
    /// `created_at`.
    CreatedAt(Timestamp),
    /// `updated_at`.
    UpdatedAt(Timestamp),
    /// `due_at`, absent for tasks without a due date.
    DueAt(Option<Timestamp>),
    /// `priority`.
    Priority(Priority),
    /// `title` as stored; storage compares it without ASCII case.
    Title(TaskTitle),
}

impl SortKey {
    /// The field this value belongs to.
    #[must_use]
    pub fn field(&self) -> SortField {
        match self {
            Self::CreatedAt(_) => SortField::CreatedAt,
            Self::UpdatedAt(_) => SortField::UpdatedAt,
            Self::DueAt(_) => SortField::DueAt,
            Self::Priority(_) => SortField::Priority,
            Self::Title(_) => SortField::Title,
        }
    }
}

impl TaskPosition {
    /// The position of `task` in a list sorted by `field`.
    #[must_use]
    pub fn of(task: &Task, field: SortField) -> Self {
        let key = match field {
            SortField::CreatedAt => SortKey::CreatedAt(task.created_at),
            SortField::UpdatedAt => SortKey::UpdatedAt(task.updated_at),
            SortField::DueAt => SortKey::DueAt(task.due_at),
            SortField::Priority => SortKey::Priority(task.priority),
            SortField::Title => SortKey::Title(task.title.clone()),
        };
        Self { key, id: task.id }
    }
}

/// How many tasks a page holds: 1 to [`PAGE_LIMIT_MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimit(u16);

/// A page size outside 1 to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be a whole number from 1 to 100")]
pub struct PageLimitError;

impl PageLimit {
    /// Checks the range.
    ///
    /// # Errors
    /// [`PageLimitError`] outside 1 to 100.
    pub fn new(limit: u16) -> Result<Self, PageLimitError> {
        if (1..=PAGE_LIMIT_MAX).contains(&limit) {
            Ok(Self(limit))
        } else {
            Err(PageLimitError)
        }
    }

    /// The size.
    #[must_use]
    pub fn get(self) -> u16 {
        self.0
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// How many tasks at most.
    pub limit: PageLimit,
    /// Start after this position; `None`: the first page.
    pub after: Option<TaskPosition>,
}

/// A list request. Without a page, the whole list comes back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskQuery {
    /// Which tasks.
    pub filter: TaskFilter,
    /// In which order.
    pub sort: TaskSort,
    /// Which page, if paged.
    pub page: Option<PageRequest>,
}

/// A list answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskPage {
    /// The tasks, in order.
    pub tasks: Vec<Task>,
    /// How many tasks match the filter in all, on every page.
    pub total: u64,
    /// Where the next page starts, when more tasks follow.
    pub next: Option<TaskPosition>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_search_is_no_search() {
        assert_eq!(SearchText::parse(""), Ok(None));
    }

    #[test]
    fn search_text_is_kept_literally() {
        let text = SearchText::parse(" 100%_done\\ ").unwrap().unwrap();
        assert_eq!(text.as_str(), " 100%_done\\ ");
    }

    #[test]
    fn search_text_with_nul_or_over_2000_characters_is_refused() {
        assert_eq!(SearchText::parse("a\0"), Err(SearchTextError::ContainsNul));
        assert_eq!(
            SearchText::parse(&"é".repeat(2001)),
            Err(SearchTextError::TooLong)
        );
        assert!(SearchText::parse(&"é".repeat(2000)).is_ok());
    }

    #[test]
    fn page_limits_run_from_1_to_100() {
        assert_eq!(PageLimit::new(0), Err(PageLimitError));
        assert_eq!(PageLimit::new(1).unwrap().get(), 1);
        assert_eq!(PageLimit::new(100).unwrap().get(), 100);
        assert_eq!(PageLimit::new(101), Err(PageLimitError));
    }

    #[test]
    fn title_and_due_date_sort_ascending_by_default_the_rest_descending() {
        assert_eq!(SortField::Title.default_order(), SortOrder::Asc);
        assert_eq!(SortField::DueAt.default_order(), SortOrder::Asc);
        assert_eq!(SortField::CreatedAt.default_order(), SortOrder::Desc);
        assert_eq!(SortField::UpdatedAt.default_order(), SortOrder::Desc);
        assert_eq!(SortField::Priority.default_order(), SortOrder::Desc);
    }

    #[test]
    fn the_default_list_is_newest_first() {
        assert_eq!(
            TaskSort::default(),
            TaskSort {
                field: SortField::CreatedAt,
                order: SortOrder::Desc
            }
        );
    }
}
