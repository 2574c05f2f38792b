//! The query string of `GET`/`HEAD /api/tasks` (filters, order, page) and
//! of `DELETE /api/tasks`, read strictly: an unknown parameter, one given
//! twice (only `label` may repeat) or a bad value is a 400 `invalid_query`
//! that names the parameter but never repeats its value.
//!
//! The string is read here rather than through actix's `web::Query`, which
//! would take the last of two `sort`s silently, replace bad UTF-8, and
//! answer a bad value with its own message and status.

mod cursor;

use std::borrow::Cow;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use todo_domain::{
    FeedPosition, Labels, LabelsError, PageLimit, PageRequest, Priority, SearchText, SortField,
    SortOrder, TaskFilter, TaskPosition, TaskQuery, TaskSort, UserId, parse_client_instant,
};

pub use cursor::CursorKeys;

use crate::error::ApiError;

/// Every parameter of the list, in the order the canonical form writes them.
pub const LIST_PARAMETERS: [&str; 11] = [
    "completed",
    "priority",
    "label",
    "due_after",
    "due_before",
    "overdue",
    "q",
    "sort",
    "order",
    "limit",
    "cursor",
];

/// The longest unknown parameter name an error repeats; longer ones, and
/// names with anything but ASCII letters, digits, `_`, `-`, `.`, `[` and
/// `]`, are "an unknown parameter", so the error never carries what could
/// be a value pasted in the wrong place.
const MAX_ECHOED_NAME_CHARS: usize = 32;

/// A parsed list request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// What the service is asked for.
    pub query: TaskQuery,
}

impl ListQuery {
    /// Reads the raw query string of a list request for `caller`, opening
    /// its cursor, if any, with `cursors`.
    ///
    /// # Errors
    /// `InvalidQuery` naming the first parameter at fault; `InvalidCursor`
    /// for a cursor that is not this caller's for this query.
    pub fn parse(raw: &str, cursors: &CursorKeys, caller: UserId) -> Result<Self, ApiError> {
        // The [core] list, and the most frequent request: nothing to read.
        if raw.is_empty() {
            return Ok(Self {
                query: TaskQuery::default(),
            });
        }
        let mut seen = Seen::default();
        for pair in pairs(raw) {
            let (name, value) = pair?;
            let Some(value) = value else {
                return Err(match known(&name) {
                    // A cursor is opaque: garbage in it is a bad cursor.
                    Some("cursor") => ApiError::InvalidCursor,
                    Some(known) => bad_value(known, "is not valid UTF-8 once decoded"),
                    None => unknown(&name),
                });
            };
            seen.take(&name, &value)?;
        }
        seen.into_list_query(cursors, caller)
    }

    /// The relative URL of the page after `next`: this query in canonical
    /// form, the same `limit`, and the cursor of `next`.
    #[must_use]
    pub fn next_link(&self, next: &TaskPosition, cursors: &CursorKeys, caller: UserId) -> String {
        let parameters = canonical(&self.query.filter, self.query.sort);
        let cursor = cursors.seal(next, caller, &binding(&parameters));
        let mut url = String::from("/api/tasks?");
        for (name, value) in &parameters {
            url.push_str(name);
            url.push('=');
            url.extend(utf8_percent_encode(value, VALUE));
            url.push('&');
        }
        if let Some(page) = &self.query.page {
            url.push_str(&format!("limit={}&", page.limit.get()));
        }
        url.push_str("cursor=");
        url.push_str(&cursor);
        url
    }
}

/// Checks the query string of `DELETE /api/tasks`, which clears completed
/// tasks and must say so: exactly `completed=true`.
///
/// # Errors
/// `InvalidQuery` for anything else, naming the parameter at fault.
pub fn parse_clear_completed(raw: &str) -> Result<(), ApiError> {
    let mut completed = false;
    for pair in pairs(raw) {
        let (name, value) = pair?;
        match name.as_ref() {
            "completed" if completed => return Err(repeated("completed")),
            "completed" if value.as_deref() == Some("true") => completed = true,
            "completed" => {
                return Err(invalid(
                    "Query parameter `completed` must be `true`: only completed tasks can be \
                     cleared",
                ));
            }
            other => {
                return Err(invalid(match plain_name(other) {
                    Some(name) => format!(
                        "Query parameter `{name}` is not accepted: DELETE /api/tasks takes only \
                         `completed=true`"
                    ),
                    None => "The query has an unknown parameter: DELETE /api/tasks takes only \
                             `completed=true`"
                        .to_owned(),
                }));
            }
        }
    }
    if completed {
        Ok(())
    } else {
        Err(invalid(
            "Query parameter `completed` is required: DELETE /api/tasks clears completed tasks \
             only with `completed=true`",
        ))
    }
}

/// Reads the query string of `GET /api/tasks/changes` for `caller`: at
/// most one `since`, a cursor of the caller's feed; `None` without it.
///
/// # Errors
/// `InvalidQuery` naming an unknown or repeated parameter;
/// `InvalidCursor` for a `since` that is not this caller's feed cursor.
pub fn parse_changes(
    raw: &str,
    cursors: &CursorKeys,
    caller: UserId,
) -> Result<Option<FeedPosition>, ApiError> {
    let mut since = None;
    for pair in pairs(raw) {
        let (name, value) = pair?;
        if name != "since" {
            return Err(unknown(&name));
        }
        // A cursor is opaque: undecodable bytes in it make a bad cursor.
        let value = value.ok_or(ApiError::InvalidCursor)?;
        once(&mut since, "since", value)?;
    }
    since.map(|raw| cursors.open_feed(&raw, caller)).transpose()
}

/// Characters a value keeps as they are in a `Link`: the unreserved ones,
/// and `,` and `:`, which a query may hold literally and which make
/// priorities and times readable. Everything else, `+` and space included,
/// is percent-encoded.
const VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b',')
    .remove(b':');

fn invalid(detail: impl Into<Cow<'static, str>>) -> ApiError {
    ApiError::InvalidQuery {
        detail: detail.into(),
    }
}

fn bad_value(name: &'static str, rule: &'static str) -> ApiError {
    invalid(format!("Query parameter `{name}` {rule}"))
}

fn repeated(name: &'static str) -> ApiError {
    invalid(format!(
        "Query parameter `{name}` is given more than once; only `label` may repeat"
    ))
}

/// `name`, when it is short and plain enough to be repeated in an error.
fn plain_name(name: &str) -> Option<&str> {
    let plain = !name.is_empty()
        && name.len() <= MAX_ECHOED_NAME_CHARS
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.[]".contains(&b));
    plain.then_some(name)
}

fn unknown(name: &str) -> ApiError {
    invalid(match plain_name(name) {
        Some(name) => format!("Unknown query parameter `{name}`"),
        None => "The query has an unknown parameter".to_owned(),
    })
}

/// The `name=value` pairs of a query string, decoded as HTML forms encode
/// them (`+` is a space, `%XX` a byte), so `URLSearchParams` and curl's
/// `--data-urlencode` both work. Empty segments (`a=1&&b=2`) are skipped.
/// A value whose bytes are not UTF-8 is `None`, for the caller to refuse
/// in its own terms.
fn pairs(raw: &str) -> impl Iterator<Item = Result<(String, Option<String>), ApiError>> + '_ {
    raw.split('&')
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            let (name, value) = segment.split_once('=').unwrap_or((segment, ""));
            let name = decode(name).ok_or_else(|| unknown(""))?;
            Ok((name, decode(value)))
        })
}

/// Decodes one component; `None` when the bytes are not UTF-8 (they are
/// refused rather than replaced, which would search for another text).
fn decode(component: &str) -> Option<String> {
    let spaced;
    let text = if component.contains('+') {
        spaced = component.replace('+', " ");
        spaced.as_str()
    } else {
        component
    };
    percent_decode_str(text)
        .decode_utf8()
        .ok()
        .map(Cow::into_owned)
}

/// The static name of a list parameter.
fn known(name: &str) -> Option<&'static str> {
    LIST_PARAMETERS
        .iter()
        .copied()
        .find(|parameter| *parameter == name)
}

/// What the query string said, parameter by parameter.
#[derive(Default)]
struct Seen {
    completed: Option<bool>,
    priorities: Option<Vec<Priority>>,
    labels: Vec<String>,
    due_before: Option<todo_domain::Timestamp>,
    due_after: Option<todo_domain::Timestamp>,
    overdue: Option<bool>,
    search: Option<Option<SearchText>>,
    sort: Option<SortField>,
    order: Option<SortOrder>,
    limit: Option<PageLimit>,
    cursor: Option<String>,
}

/// Sets a parameter that may be given once.
fn once<T>(slot: &mut Option<T>, name: &'static str, value: T) -> Result<(), ApiError> {
    if slot.is_some() {
        return Err(repeated(name));
    }
    *slot = Some(value);
    Ok(())
}

fn boolean(name: &'static str, value: &str) -> Result<bool, ApiError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad_value(name, "must be `true` or `false`")),
    }
}

const INSTANT_RULE: &str = "must be an RFC 3339 date-time with seconds and an offset, such as \
    2026-12-24T18:00:00Z (in a URL, write `+` as %2B)";

impl Seen {
    fn take(&mut self, name: &str, value: &str) -> Result<(), ApiError> {
        match name {
            "completed" => once(
                &mut self.completed,
                "completed",
                boolean("completed", value)?,
            ),
            "overdue" => once(&mut self.overdue, "overdue", boolean("overdue", value)?),
            "priority" => {
                let priorities = value
                    .split(',')
                    .map(Priority::parse)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| {
                        bad_value(
                            "priority",
                            "must be a comma-separated list of `none`, `low`, `medium`, `high`",
                        )
                    })?;
                once(&mut self.priorities, "priority", priorities)
            }
            "label" => {
                self.labels.push(value.to_owned());
                Ok(())
            }
            "due_before" => {
                let at = parse_client_instant(value)
                    .map_err(|_| bad_value("due_before", INSTANT_RULE))?;
                once(&mut self.due_before, "due_before", at)
            }
            "due_after" => {
                let at = parse_client_instant(value)
                    .map_err(|_| bad_value("due_after", INSTANT_RULE))?;
                once(&mut self.due_after, "due_after", at)
            }
            "q" => {
                let search = SearchText::parse(value).map_err(|_| {
                    bad_value("q", "must be at most 2000 characters and hold no U+0000")
                })?;
                once(&mut self.search, "q", search)
            }
            "sort" => {
                let field = match value {
                    "created_at" => SortField::CreatedAt,
                    "updated_at" => SortField::UpdatedAt,
                    "due_at" => SortField::DueAt,
                    "priority" => SortField::Priority,
                    "title" => SortField::Title,
                    _ => {
                        return Err(bad_value(
                            "sort",
                            "must be one of `created_at`, `updated_at`, `due_at`, `priority`, \
                             `title`",
                        ));
                    }
                };
                once(&mut self.sort, "sort", field)
            }
            "order" => {
                let order = match value {
                    "asc" => SortOrder::Asc,
                    "desc" => SortOrder::Desc,
                    _ => return Err(bad_value("order", "must be `asc` or `desc`")),
                };
                once(&mut self.order, "order", order)
            }
            "limit" => {
                let limit = value
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                    .then(|| value.parse::<u16>().ok())
                    .flatten()
                    .and_then(|limit| PageLimit::new(limit).ok())
                    .ok_or_else(|| bad_value("limit", "must be a whole number from 1 to 100"))?;
                once(&mut self.limit, "limit", limit)
            }
            "cursor" => once(&mut self.cursor, "cursor", value.to_owned()),
            other => Err(unknown(other)),
        }
    }

    fn into_list_query(self, cursors: &CursorKeys, caller: UserId) -> Result<ListQuery, ApiError> {
        let labels = Labels::parse(&self.labels).map_err(|error| match error {
            LabelsError::TooMany => bad_value("label", "may be given at most 20 times"),
            _ => bad_value(
                "label",
                "must be 1 to 50 characters after trimming, with no control characters",
            ),
        })?;
        let mut priorities = self.priorities.unwrap_or_default();
        priorities.sort_unstable();
        priorities.dedup();
        let filter = TaskFilter {
            completed: self.completed,
            priorities,
            labels,
            due_before: self.due_before,
            due_after: self.due_after,
            overdue: self.overdue,
            search: self.search.flatten(),
        };
        let field = self.sort.unwrap_or(SortField::CreatedAt);
        let sort = TaskSort {
            field,
            order: self.order.unwrap_or_else(|| field.default_order()),
        };
        let page = match (self.limit, self.cursor) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(bad_value(
                    "cursor",
                    "needs `limit`: a cursor continues a paged list",
                ));
            }
            (Some(limit), cursor) => {
                let after = match cursor {
                    None => None,
                    Some(raw) => {
                        let binding = binding(&canonical(&filter, sort));
                        Some(cursors.open(&raw, caller, &binding, field)?)
                    }
                };
                Some(PageRequest { limit, after })
            }
        };
        Ok(ListQuery {
            query: TaskQuery { filter, sort, page },
        })
    }
}

/// The filters, sort and order as parameters in one fixed form: every
/// parameter in the order of [`LIST_PARAMETERS`], priorities lowest first,
/// labels by their case-free key in text order, times in UTC, and the sort
/// and order always, after defaults. Two queries that select and order the
/// same tasks have the same form, which is what a cursor is bound to.
fn canonical(filter: &TaskFilter, sort: TaskSort) -> Vec<(&'static str, String)> {
    let mut parameters = Vec::new();
    if let Some(completed) = filter.completed {
        parameters.push(("completed", completed.to_string()));
    }
    if !filter.priorities.is_empty() {
        let words: Vec<&str> = filter.priorities.iter().map(|p| p.as_str()).collect();
        parameters.push(("priority", words.join(",")));
    }
    let mut keys: Vec<&str> = filter.labels.as_slice().iter().map(|l| l.key()).collect();
    keys.sort_unstable();
    parameters.extend(keys.into_iter().map(|key| ("label", key.to_owned())));
    if let Some(at) = filter.due_after {
        parameters.push(("due_after", at.to_fixed_rfc3339()));
    }
    if let Some(at) = filter.due_before {
        parameters.push(("due_before", at.to_fixed_rfc3339()));
    }
    if let Some(overdue) = filter.overdue {
        parameters.push(("overdue", overdue.to_string()));
    }
    if let Some(search) = &filter.search {
        parameters.push(("q", search.as_str().to_owned()));
    }
    let field = match sort.field {
        SortField::CreatedAt => "created_at",
        SortField::UpdatedAt => "updated_at",
        SortField::DueAt => "due_at",
        SortField::Priority => "priority",
        SortField::Title => "title",
    };
    parameters.push(("sort", field.to_owned()));
    let order = match sort.order {
        SortOrder::Asc => "asc",
        SortOrder::Desc => "desc",
    };
    parameters.push(("order", order.to_owned()));
    parameters
}

/// The canonical parameters as bytes for a cursor's tag: each name, a NUL,
/// the value's length and the value, so no two lists read alike.
fn binding(parameters: &[(&'static str, String)]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (name, value) in parameters {
        bytes.extend_from_slice(name.as_bytes());
        bytes.push(0);
        let length = u32::try_from(value.len()).unwrap_or(u32::MAX);
        bytes.extend_from_slice(&length.to_be_bytes());
        bytes.extend_from_slice(value.as_bytes());
    }
    bytes
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;
    use todo_domain::{SortKey, TaskId, Timestamp};

    use super::*;

    fn keys() -> CursorKeys {
        CursorKeys::derive(&SecretString::from("a secret of at least thirty-two bytes"))
    }

    fn parsed(raw: &str) -> Result<TaskQuery, ApiError> {
        ListQuery::parse(raw, &keys(), UserId::generate()).map(|list| list.query)
    }

    fn detail(raw: &str) -> String {
        match parsed(raw) {
            Err(ApiError::InvalidQuery { detail }) => detail.into_owned(),
            other => panic!("{raw}: expected invalid_query, got {other:?}"),
        }
    }

    #[test]
    fn no_query_is_the_core_list() {
        assert_eq!(parsed("").unwrap(), TaskQuery::default());
    }

    #[test]
    fn every_filter_is_read() {
        let query = parsed(
            "completed=false&priority=high,low&label=Work&label=home&due_before=2026-02-06T12:00:00%2B02:00\
             &due_after=2026-01-01T00:00:00Z&overdue=true&q=buy+milk%25",
        )
        .unwrap();
        let filter = query.filter;
        assert_eq!(filter.completed, Some(false));
        assert_eq!(filter.priorities, [Priority::Low, Priority::High]);
        assert_eq!(filter.labels.names().collect::<Vec<_>>(), ["Work", "home"]);
        assert_eq!(
            filter.due_before.unwrap().to_fixed_rfc3339(),
            "2026-02-06T10:00:00.000000Z"
        );
        assert_eq!(
            filter.due_after.unwrap().to_fixed_rfc3339(),
            "2026-01-01T00:00:00.000000Z"
        );
        assert_eq!(filter.overdue, Some(true));
        assert_eq!(filter.search.unwrap().as_str(), "buy milk%");
        assert_eq!(query.page, None);
    }

    #[test]
    fn sort_alone_takes_the_fields_natural_order() {
        let sort = |raw| parsed(raw).unwrap().sort;
        assert_eq!(sort("sort=title").order, SortOrder::Asc);
        assert_eq!(sort("sort=due_at").order, SortOrder::Asc);
        assert_eq!(sort("sort=priority").order, SortOrder::Desc);
        assert_eq!(sort("sort=updated_at").order, SortOrder::Desc);
        assert_eq!(
            sort("order=asc"),
            TaskSort {
                field: SortField::CreatedAt,
                order: SortOrder::Asc
            }
        );
        assert_eq!(sort("sort=title&order=desc").order, SortOrder::Desc);
    }

    #[test]
    fn an_empty_search_is_no_filter_and_empty_segments_are_skipped() {
        assert_eq!(parsed("q=&&").unwrap(), TaskQuery::default());
        assert_eq!(parsed("q").unwrap(), TaskQuery::default());
    }

    #[test]
    fn limit_runs_from_1_to_100_in_plain_digits() {
        assert_eq!(parsed("limit=100").unwrap().page.unwrap().limit.get(), 100);
        for bad in ["0", "101", "+5", " 5", "5.0", "", "70000", "-1", "1e2"] {
            let raw = format!("limit={}", bad.replace(' ', "%20"));
            assert!(detail(&raw).contains("`limit`"), "{raw}");
        }
    }

    #[test]
    fn a_bad_value_names_the_parameter_and_not_the_value() {
        for (raw, name) in [
            ("completed=yes", "completed"),
            ("overdue=1", "overdue"),
            ("priority=urgent", "priority"),
            ("priority=", "priority"),
            ("priority=high,", "priority"),
            ("label=", "label"),
            ("label=%09", "label"),
            ("due_before=2026-02-06", "due_before"),
            ("due_after=2026-02-06T10:15:30+02:00", "due_after"),
            ("q=a%00b", "q"),
            ("sort=owner", "sort"),
            ("order=up", "order"),
            ("label=%FF", "label"),
        ] {
            let detail = detail(raw);
            assert!(detail.contains(&format!("`{name}`")), "{raw}: {detail}");
            let value = raw.split_once('=').unwrap().1;
            if value.len() > 2 {
                assert!(!detail.contains(value), "{raw}: {detail}");
            }
        }
    }

    #[test]
    fn a_parameter_given_twice_is_refused_but_label_may_repeat() {
        assert!(detail("sort=title&sort=title").contains("`sort`"));
        assert!(detail("q=a&q=").contains("`q`"));
        assert!(detail("limit=5&limit=5").contains("`limit`"));
        let labels: String = (0..20).map(|n| format!("label=l{n}&")).collect();
        assert_eq!(parsed(&labels).unwrap().filter.labels.as_slice().len(), 20);
        assert!(detail(&format!("{labels}label=one-more")).contains("`label`"));
    }

    #[test]
    fn an_unknown_parameter_is_named_only_when_short_and_plain() {
        assert_eq!(detail("colour=red"), "Unknown query parameter `colour`");
        for raw in [
            "password%3Dhunter2=1",
            "x%20y=1",
            "%C3%A9=1",
            &format!("{}=1", "n".repeat(33)),
            "%FF=1",
        ] {
            assert_eq!(detail(raw), "The query has an unknown parameter", "{raw}");
        }
    }

    #[test]
    fn a_cursor_needs_a_limit_and_garbage_is_an_invalid_cursor() {
        assert!(detail("cursor=abc").contains("`cursor`"));
        assert!(matches!(
            parsed("limit=5&cursor=abc"),
            Err(ApiError::InvalidCursor)
        ));
        assert!(matches!(
            parsed("limit=5&cursor="),
            Err(ApiError::InvalidCursor)
        ));
    }

    fn position() -> TaskPosition {
        TaskPosition {
            key: SortKey::DueAt(Some(Timestamp::now())),
            id: TaskId::generate(),
        }
    }

    #[test]
    fn the_next_link_repeats_the_canonical_query_with_a_cursor_that_opens() {
        let keys = keys();
        let caller = UserId::generate();
        let first = ListQuery::parse(
            "label=Work&q=a+b%2Bc&priority=high,none,high&sort=due_at&limit=5",
            &keys,
            caller,
        )
        .unwrap();
        let link = first.next_link(&position(), &keys, caller);
        let (path, query) = link.split_once('?').unwrap();
        assert_eq!(path, "/api/tasks");
        let cursor_at = query.find("&cursor=").unwrap();
        assert_eq!(
            &query[..cursor_at],
            "priority=none,high&label=work&q=a%20b%2Bc&sort=due_at&order=asc&limit=5"
        );
        let second = ListQuery::parse(query, &keys, caller).unwrap();
        // The same filter, the label now spelled by its key.
        let mut expected = first.query.filter.clone();
        expected.labels = Labels::parse(&["work"]).unwrap();
        assert_eq!(second.query.filter, expected);
        assert_eq!(
            second.query.page.unwrap().after.unwrap().key.field(),
            SortField::DueAt
        );
    }

    #[test]
    fn a_cursor_is_bound_to_the_caller_and_the_query_but_not_the_limit() {
        let keys = keys();
        let caller = UserId::generate();
        let first = ListQuery::parse("completed=false&sort=due_at&limit=5", &keys, caller).unwrap();
        let link = first.next_link(&position(), &keys, caller);
        let cursor = link.rsplit_once("cursor=").unwrap().1;
        let open = |query: String, who| ListQuery::parse(&query, &keys, who);
        // The same query spelled another way, with another limit.
        assert!(
            open(
                format!("sort=due_at&order=asc&completed=false&limit=50&cursor={cursor}"),
                caller
            )
            .is_ok()
        );
        for query in [
            format!("completed=true&sort=due_at&limit=5&cursor={cursor}"),
            format!("completed=false&sort=due_at&order=desc&limit=5&cursor={cursor}"),
            format!("completed=false&sort=title&limit=5&cursor={cursor}"),
            format!("completed=false&sort=due_at&q=x&limit=5&cursor={cursor}"),
        ] {
            assert!(
                matches!(open(query.clone(), caller), Err(ApiError::InvalidCursor)),
                "{query}"
            );
        }
        let stranger = UserId::generate();
        assert!(matches!(
            open(
                format!("completed=false&sort=due_at&limit=5&cursor={cursor}"),
                stranger
            ),
            Err(ApiError::InvalidCursor)
        ));
    }

    #[test]
    fn the_feed_takes_one_since_and_nothing_else() {
        let keys = keys();
        let caller = UserId::generate();
        assert_eq!(parse_changes("", &keys, caller).unwrap(), None);
        let cursor = keys.seal_feed(FeedPosition::at(12), caller);
        assert_eq!(
            parse_changes(&format!("since={cursor}"), &keys, caller).unwrap(),
            Some(FeedPosition::at(12))
        );
        let detail = |raw: &str| match parse_changes(raw, &keys, caller) {
            Err(ApiError::InvalidQuery { detail }) => detail.into_owned(),
            other => panic!("{other:?}"),
        };
        assert!(detail(&format!("since={cursor}&since={cursor}")).contains("`since`"));
        assert!(detail("limit=5").contains("`limit`"));
        for raw in ["since=", "since=garbage", "since=%FF"] {
            assert!(matches!(
                parse_changes(raw, &keys, caller),
                Err(ApiError::InvalidCursor)
            ));
        }
        assert!(matches!(
            parse_changes(&format!("since={cursor}"), &keys, UserId::generate()),
            Err(ApiError::InvalidCursor)
        ));
    }

    #[test]
    fn clearing_needs_exactly_completed_true() {
        assert!(parse_clear_completed("completed=true").is_ok());
        for (raw, name) in [
            ("", "completed"),
            ("completed=false", "completed"),
            ("completed=true&completed=true", "completed"),
            ("completed=true&label=x", "label"),
        ] {
            match parse_clear_completed(raw) {
                Err(ApiError::InvalidQuery { detail }) => {
                    assert!(detail.contains(&format!("`{name}`")), "{raw}: {detail}");
                }
                other => panic!("{raw}: {other:?}"),
            }
        }
    }
}
