//! Entity tags of tasks and the conditional request headers that compare
//! them (RFC 9110, section 13): `If-Match` on writes, `If-None-Match` on
//! reads.
//!
//! A task's tag is its version in quotes (`"7"`): the version is kept in
//! the row and moves with every change, so the tag costs no extra read and
//! two different states of a task never share one. Tags are strong.

use actix_web::HttpRequest;
use actix_web::http::header::{self, HeaderName};
use todo_domain::{Precondition, TaskVersion};

/// The `ETag` value of a task at `version`.
#[must_use]
pub fn entity_tag(version: TaskVersion) -> String {
    format!("\"{}\"", version.get())
}

/// The condition an `If-Match` header sets on a write: `None` without the
/// header or with `*` (every write already needs the task to exist, which
/// is all `*` asks). Only strong tags of our form can match; a header that
/// is not a list of entity tags matches nothing, so the write is refused
/// rather than done unconditionally.
#[must_use]
pub fn if_match(request: &HttpRequest) -> Option<Precondition> {
    match condition(request, &header::IF_MATCH)? {
        Condition::Any => None,
        Condition::Tags(tags) => Some(Precondition::any_of(
            tags.into_iter()
                .filter(|tag| !tag.weak)
                .filter_map(|tag| tag.version)
                .collect(),
        )),
        Condition::Malformed => Some(Precondition::any_of(Vec::new())),
    }
}

/// An `If-None-Match` header, to be compared with a task's version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfNoneMatch(Option<Condition>);

impl IfNoneMatch {
    /// Reads the header (absent: a condition that never matches).
    #[must_use]
    pub fn of(request: &HttpRequest) -> Self {
        Self(condition(request, &header::IF_NONE_MATCH))
    }

    /// Whether the client already holds `version`: `*`, or a tag equal to
    /// its tag by weak comparison (`W/"7"` matches `"7"`).
    #[must_use]
    pub fn matches(&self, version: TaskVersion) -> bool {
        match &self.0 {
            Some(Condition::Any) => true,
            Some(Condition::Tags(tags)) => tags.iter().any(|tag| tag.version == Some(version)),
            Some(Condition::Malformed) | None => false,
        }
    }
}

/// A parsed `If-Match` or `If-None-Match` field.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Condition {
    /// `*`.
    Any,
    /// A list of entity tags.
    Tags(Vec<Tag>),
    /// Anything else.
    Malformed,
}

/// One entity tag of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tag {
    weak: bool,
    /// The version it names, when its opaque part is a version exactly as
    /// we write it; any other tag is well formed but matches no task.
    version: Option<TaskVersion>,
}

/// Every line of the header, read as one comma-separated list; `None`
/// when the header is absent.
fn condition(request: &HttpRequest, name: &HeaderName) -> Option<Condition> {
    let mut lines = request.headers().get_all(name).peekable();
    lines.peek()?;
    let mut joined = Vec::new();
    for (index, line) in lines.enumerate() {
        if index > 0 {
            joined.push(b',');
        }
        joined.extend_from_slice(line.as_bytes());
    }
    Some(parse_condition(&joined))
}

fn is_white_space(byte: u8) -> bool {
    byte == b' ' || byte == b'\t'
}

fn parse_condition(field: &[u8]) -> Condition {
    let trimmed = field.trim_ascii();
    if trimmed == b"*" {
        return Condition::Any;
    }
    let mut tags = Vec::new();
    let mut rest = trimmed;
    loop {
        // Empty list elements (`a, , b`) are allowed by the list syntax.
        while let [first, tail @ ..] = rest
            && (*first == b',' || is_white_space(*first))
        {
            rest = tail;
        }
        if rest.is_empty() {
            break;
        }
        let Some((tag, after)) = parse_tag(rest) else {
            return Condition::Malformed;
        };
        tags.push(tag);
        let after = after.trim_ascii_start();
        match after {
            [] => break,
            [b',', tail @ ..] => rest = tail,
            _ => return Condition::Malformed,
        }
    }
    if tags.is_empty() {
        Condition::Malformed
    } else {
        Condition::Tags(tags)
    }
}

/// `[W/]"<etagc>*"` at the start of `input`, and what follows it.
fn parse_tag(input: &[u8]) -> Option<(Tag, &[u8])> {
    let (weak, quoted) = match input {
        [b'W', b'/', rest @ ..] => (true, rest),
        rest => (false, rest),
    };
    let [b'"', body @ ..] = quoted else {
        return None;
    };
    let end = body.iter().position(|byte| *byte == b'"')?;
    let (opaque, after) = (&body[..end], &body[end + 1..]);
    // etagc: `!`, `#` to `~`, and obs-text; no space, no control byte.
    if opaque
        .iter()
        .any(|byte| *byte < 0x21 || *byte == 0x7f || *byte == b'"')
    {
        return None;
    }
    Some((
        Tag {
            weak,
            version: version_of(opaque),
        },
        after,
    ))
}

/// The version an opaque tag names, if it is written as we write versions:
/// decimal digits, no sign, no leading zero. Strong comparison is exact, so
/// `"07"` is not `"7"`.
fn version_of(opaque: &[u8]) -> Option<TaskVersion> {
    let canonical = !opaque.is_empty()
        && opaque.iter().all(u8::is_ascii_digit)
        && (opaque.len() == 1 || opaque[0] != b'0');
    if !canonical {
        return None;
    }
    std::str::from_utf8(opaque)
        .ok()?
        .parse()
        .ok()
        .map(TaskVersion::new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn versions(field: &str) -> Option<Vec<u64>> {
        let request = TestRequest::default()
            .insert_header((header::IF_MATCH, field))
            .to_http_request();
        if_match(&request).map(|condition| {
            condition
                .versions()
                .iter()
                .map(|version| version.get())
                .collect()
        })
    }

    fn none_match(fields: &[&str], version: u64) -> bool {
        let mut request = TestRequest::default();
        for field in fields {
            request = request.append_header((header::IF_NONE_MATCH, *field));
        }
        IfNoneMatch::of(&request.to_http_request()).matches(TaskVersion::new(version))
    }

    #[test]
    fn the_tag_is_the_quoted_version() {
        assert_eq!(entity_tag(TaskVersion::new(42)), "\"42\"");
    }

    #[test]
    fn no_if_match_header_sets_no_condition() {
        let request = TestRequest::default().to_http_request();
        assert_eq!(if_match(&request), None);
    }

    #[test]
    fn a_star_sets_no_condition() {
        assert_eq!(versions("*"), None);
        assert_eq!(versions("  * "), None);
    }

    #[test]
    fn a_list_of_tags_names_their_versions() {
        assert_eq!(versions("\"3\""), Some(vec![3]));
        assert_eq!(versions("\"3\", \"5\",\"8\""), Some(vec![3, 5, 8]));
        assert_eq!(versions(" , \"3\" ,, "), Some(vec![3]));
    }

    #[test]
    fn weak_tags_never_match_a_write() {
        assert_eq!(versions("W/\"3\""), Some(vec![]));
        assert_eq!(versions("W/\"3\", \"4\""), Some(vec![4]));
    }

    #[test]
    fn tags_of_another_form_are_well_formed_but_match_nothing() {
        assert_eq!(versions("\"07\""), Some(vec![]));
        assert_eq!(versions("\"abc\", \"+1\", \"\""), Some(vec![]));
        assert_eq!(versions("\"18446744073709551616\""), Some(vec![]));
    }

    #[test]
    fn a_header_that_is_not_a_list_of_tags_matches_nothing() {
        for field in [
            "3",
            "\"3",
            "\"3\" \"4\"",
            "*, \"3\"",
            "w/\"3\"",
            "",
            ",",
            "\"a b\"",
        ] {
            assert_eq!(versions(field), Some(vec![]), "{field:?}");
        }
    }

    #[test]
    fn several_if_match_lines_form_one_list() {
        let request = TestRequest::default()
            .append_header((header::IF_MATCH, "\"1\""))
            .append_header((header::IF_MATCH, "\"2\""))
            .to_http_request();
        let condition = if_match(&request).unwrap();
        assert!(condition.is_met_by(TaskVersion::new(2)));
    }

    #[test]
    fn if_none_match_compares_weakly_and_star_matches_any_version() {
        assert!(none_match(&["\"4\""], 4));
        assert!(none_match(&["W/\"4\""], 4));
        assert!(none_match(&["\"1\", W/\"4\""], 4));
        assert!(none_match(&["*"], 9));
        assert!(none_match(&["\"1\"", "\"4\""], 4));
        assert!(!none_match(&["\"5\""], 4));
        assert!(!none_match(&["garbage"], 4));
        assert!(!none_match(&[], 4));
    }
}
