//! Schemas of request fields whose rules go beyond their JSON type. The
//! domain's rules are spelled out as JSON Schema so that a client (or a
//! fuzzer) can tell a valid value from an invalid one without sending it:
//! every string a pattern accepts, the domain accepts, and every string it
//! refuses, the domain refuses too (unit tests below hold both directions).

use serde_json::{Value, json};
use todo_domain::{
    DESCRIPTION_MAX_CHARS, LABEL_MAX_CHARS, LABELS_MAX, PAGE_LIMIT_MAX, PASSWORD_MAX_CHARS,
    PASSWORD_MIN_CHARS, Priority, SEARCH_MAX_CHARS, TITLE_MAX_CHARS,
};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};

/// The characters Rust's `str::trim` removes (Unicode `White_Space`),
/// written with escapes that ECMA-262, Python and Rust regexes all read
/// the same way. A pattern cannot use `\s`: each of those engines gives it
/// a slightly different set.
const WHITE_SPACE: &str =
    r"\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// A string that, trimmed, is 1 to `max` characters, with no NUL anywhere:
/// edge white space, one visible character, then up to `max - 2` of
/// anything but NUL closed by another visible character.
fn trimmed_text_pattern(max: usize) -> String {
    let ws = WHITE_SPACE;
    let middle = max.saturating_sub(2);
    format!(r"^[{ws}]*[^{ws}\u0000](?:[^\u0000]{{0,{middle}}}[^{ws}\u0000])?[{ws}]*$")
}

/// Like [`trimmed_text_pattern`], but white space alone is allowed too
/// (it is stored as `null`).
fn optional_trimmed_text_pattern(max: usize) -> String {
    let ws = WHITE_SPACE;
    let middle = max.saturating_sub(2);
    format!(r"^[{ws}]*(?:[^{ws}\u0000](?:[^\u0000]{{0,{middle}}}[^{ws}\u0000])?)?[{ws}]*$")
}

pub(crate) fn title_pattern() -> String {
    trimmed_text_pattern(TITLE_MAX_CHARS)
}

pub(crate) fn description_pattern() -> String {
    optional_trimmed_text_pattern(DESCRIPTION_MAX_CHARS)
}

/// `title` of a task request.
#[must_use]
pub fn title() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(format!(
            "Leading and trailing white space is trimmed; the rest must be 1 to \
             {TITLE_MAX_CHARS} characters (Unicode scalar values) with no U+0000. \
             Otherwise 400 `invalid_title`."
        )))
        .pattern(Some(title_pattern()))
        .examples(["Buy milk"])
        .into()
}

/// `description` of a task request.
#[must_use]
pub fn description() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .description(Some(format!(
            "Optional. Trimmed; empty after trimming (or absent, or null) is stored as null; \
             at most {DESCRIPTION_MAX_CHARS} characters, no U+0000. \
             Otherwise 400 `invalid_description`."
        )))
        .pattern(Some(description_pattern()))
        .examples(["2 litres"])
        .into()
}

/// Characters a label may not hold once trimmed (U+0000 to U+001F and
/// U+007F), as a class body.
const CONTROL: &str = r"\u0000-\u001f\u007f";

/// A label: edge white space, then 1 to 50 characters with no control
/// character, the first and last not white space.
pub(crate) fn label_pattern() -> String {
    let ws = WHITE_SPACE;
    let middle = LABEL_MAX_CHARS - 2;
    format!(r"^[{ws}]*[^{ws}{CONTROL}](?:[^{CONTROL}]{{0,{middle}}}[^{ws}{CONTROL}])?[{ws}]*$")
}

/// A year from 0002 to 9998: far enough from the ends of the range both
/// databases hold (years 1 to 9999 in UTC) that no offset can cross them.
const SAFE_YEAR: &str =
    "(?:000[2-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])";
/// A year divisible by 4 and not by 100, or by 400.
const LEAP_YEAR: &str =
    "(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)";

/// A client instant (see `todo_domain::parse_client_instant`): a real
/// calendar date, a time with seconds (no leap second), up to six fraction
/// digits and an offset. The pattern is a little narrower than the rule
/// (the first and last days of the range, whose validity depends on the
/// offset, are left out), so every instant it accepts is accepted.
pub(crate) fn instant_pattern() -> String {
    let month_day = "(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])\
        |(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)\
        |02-(?:0[1-9]|1[0-9]|2[0-8]))";
    let date = format!("(?:{SAFE_YEAR}-{month_day}|{LEAP_YEAR}-02-29)");
    let time = "[Tt](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{1,6})?";
    let offset = "(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])";
    format!("^{date}{time}{offset}$").replace(['\n', ' '], "")
}

fn instant_description(what: &str) -> String {
    format!(
        "{what} RFC 3339 with seconds and an explicit offset (`Z` or `±hh:mm`), up to six \
         fraction digits, e.g. `2026-12-24T18:00:00Z`; an instant of the years 1 to 9999 in \
         UTC. A date without a time is refused."
    )
}

/// `due_at` of a task request.
#[must_use]
pub fn due_at_input() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .description(Some(format!(
            "{} Answered in UTC. `null` (or, on creation, absent) means no due date; on \
             replacement, absent keeps it. Otherwise 400 `invalid_due_at`.",
            instant_description("Optional.")
        )))
        .pattern(Some(instant_pattern()))
        .examples(["2026-12-24T18:00:00+01:00"])
        .into()
}

fn priority_words() -> Vec<Value> {
    Priority::ALL.iter().map(|p| json!(p.as_str())).collect()
}

/// `priority` of a task request.
#[must_use]
pub fn priority_input() -> Schema {
    let mut words = priority_words();
    words.push(Value::Null);
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .description(Some(
            "One of the four words; `null` (or, on creation, absent) means `none`; on \
             replacement, absent keeps it. Otherwise 400 `invalid_priority`.",
        ))
        .enum_values(Some(words))
        .into()
}

/// `priority` of a task as answered.
#[must_use]
pub fn priority_output() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("`none` < `low` < `medium` < `high`."))
        .enum_values(Some(priority_words()))
        .into()
}

/// `labels` of a task request.
#[must_use]
pub fn labels_input() -> Schema {
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .description(Some(format!(
            "Each label is trimmed and must be 1 to {LABEL_MAX_CHARS} characters with no \
             control character (U+0000 to U+001F, U+007F); labels that differ only in case are \
             one (the first spelling is kept, in the order sent), and at most {LABELS_MAX} remain. \
             `null` (or, on creation, absent) means none; on replacement, absent keeps them. \
             Otherwise 400 `invalid_labels`."
        )))
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(label_pattern())),
        )
        .max_items(Some(LABELS_MAX))
        .examples([json!(["work", "home"])])
        .into()
}

/// `completed` of a list query.
#[must_use]
pub fn completed_filter() -> Schema {
    boolean_words("`true`: done tasks only; `false`: open tasks only.")
}

/// `overdue` of a list query.
#[must_use]
pub fn overdue_filter() -> Schema {
    boolean_words("`true`: tasks due before now and not done; `false`: every other task.")
}

fn boolean_words(description: &str) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Boolean)
        .description(Some(description))
        .into()
}

/// `priority` of a list query.
#[must_use]
pub fn priority_filter() -> Schema {
    let word = "(?:none|low|medium|high)";
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "Comma-separated priorities (`high,medium`): tasks with any of them.",
        ))
        .pattern(Some(format!("^{word}(?:,{word})*$")))
        .examples(["high,medium"])
        .into()
}

/// `label` of a list query.
#[must_use]
pub fn label_filter() -> Schema {
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(label_pattern())),
        )
        .max_items(Some(LABELS_MAX))
        .description(Some(format!(
            "Tasks that carry this label, compared without case. Repeat it \
             (`label=work&label=home`) to ask for tasks that carry every one; at most \
             {LABELS_MAX} different labels."
        )))
        .into()
}

/// `due_before` and `due_after` of a list query.
#[must_use]
pub fn instant_filter() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(format!(
            "{} Tasks without a due date never match. In a URL, `+` must be written `%2B`.",
            instant_description("An instant as for `due_at`:")
        )))
        .pattern(Some(instant_pattern()))
        .examples(["2026-12-24T18:00:00Z"])
        .into()
}

/// `q` of a list query.
#[must_use]
pub fn search_filter() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(format!(
            "Tasks whose title, description or a label contains this text, taken literally \
             (`%`, `_` and `\\` are plain characters), without the case of ASCII letters. \
             Empty: no filter. At most {SEARCH_MAX_CHARS} characters, no U+0000."
        )))
        .max_length(Some(SEARCH_MAX_CHARS))
        .pattern(Some(r"^[^\u0000]*$"))
        .into()
}

/// `sort` of a list query.
#[must_use]
pub fn sort_parameter() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "The field to sort by; default `created_at`. Tasks without `due_at` come last in \
             both orders; `title` ignores the case of ASCII letters; ties go by `id` in the same \
             direction.",
        ))
        .enum_values(Some([
            "created_at",
            "updated_at",
            "due_at",
            "priority",
            "title",
        ]))
        .into()
}

/// `order` of a list query.
#[must_use]
pub fn order_parameter() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "Default `desc`, except `asc` when `sort` is `title` or `due_at`.",
        ))
        .enum_values(Some(["asc", "desc"]))
        .into()
}

/// `limit` of a list query.
#[must_use]
pub fn limit_parameter() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .description(Some(
            "Page size. Without it the whole list comes back in one answer.",
        ))
        .minimum(Some(1))
        .maximum(Some(PAGE_LIMIT_MAX))
        .into()
}

/// `cursor` of a list query.
#[must_use]
pub fn cursor_parameter() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "Opaque: copy it from the `Link` of the page before. It is bound to the caller and \
             to the filters, `sort` and `order` (`limit` may change); any other cursor is 400 \
             `invalid_cursor`. Needs `limit`.",
        ))
        .pattern(Some("^[A-Za-z0-9_-]+$"))
        .into()
}

/// `since` of the changes feed.
#[must_use]
pub fn since_parameter() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "Opaque: the `cursor` of an earlier answer of this caller's feed; any other value is \
             400 `invalid_cursor`, one older than the kept history 410 `cursor_expired`.",
        ))
        .pattern(Some("^[A-Za-z0-9_-]+$"))
        .into()
}

/// `completed` of `DELETE /api/tasks`: only `true`.
#[must_use]
pub fn clear_completed_parameter() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "Must be `true`: the call clears the caller's completed tasks.",
        ))
        .enum_values(Some(["true"]))
        .into()
}

/// `If-Match` of the writes of one task.
#[must_use]
pub fn if_match_header() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "`*`, or one or more entity tags (`\"7\", \"8\"`): the write happens only if the \
             task's current `ETag` is one of them (strong comparison: `W/` tags never match); \
             else 412 `precondition_failed` and the task is unchanged. A missing task is still \
             404 and another user's 403. A value that is not a list of entity tags matches \
             nothing.",
        ))
        .examples(["\"1\""])
        .into()
}

/// `If-None-Match` of a read of one task.
#[must_use]
pub fn if_none_match_header() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "`*`, or one or more entity tags: when one equals the task's current `ETag` (weak \
             comparison: `W/\"7\"` matches `\"7\"`), 304 with no body.",
        ))
        .examples(["\"1\""])
        .into()
}

/// `Idempotency-Key` of a retry-safe request.
#[must_use]
pub fn idempotency_key_header() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "1 to 255 visible ASCII characters (else 400 `invalid_idempotency_key`), kept per \
             user for 24 hours. The same key with the same request (method, path, body as a \
             JSON value) answers the first answer again with `Idempotent-Replayed: true`; with \
             another request, 422 `idempotency_key_reused`; while the first request runs, 409 \
             `idempotency_key_in_use`. Only a success is kept: a failed request leaves the key \
             unused.",
        ))
        .pattern(Some("^[!-~]{1,255}$"))
        .examples(["create-7f3a9c"])
        .into()
}

/// `email` of sign-up and sign-in.
#[must_use]
pub fn email() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(format!(
            "Trimmed and lowercased, then it must look like `local@domain.tld` \
             (no white space or control characters, at most {} characters); at sign-up \
             anything else is 400 `invalid_email`, at sign-in 401 `invalid_credentials`.",
            todo_domain::EMAIL_MAX_CHARS
        )))
        .examples(["ada@example.io"])
        .into()
}

/// `password` of sign-up and sign-in.
#[must_use]
pub fn password() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(format!(
            "{PASSWORD_MIN_CHARS} to {PASSWORD_MAX_CHARS} characters, kept as typed \
             (white space included). At sign-up a shorter or longer one is 400 `weak_password`."
        )))
        .min_length(Some(PASSWORD_MIN_CHARS))
        .max_length(Some(PASSWORD_MAX_CHARS))
        .examples(["correct horse battery"])
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::{Regex, RegexBuilder};
    use todo_domain::{Label, TaskDescription, TaskTitle, parse_client_instant};

    fn compiled(pattern: &str) -> Regex {
        // The bounded repetition of a Unicode class is large once compiled.
        RegexBuilder::new(pattern)
            .size_limit(1 << 28)
            .build()
            .expect("the pattern compiles")
    }

    #[test]
    fn the_white_space_class_is_exactly_what_trim_removes() {
        let class = compiled(&format!("^[{WHITE_SPACE}]$"));
        for c in (0..=0x10_FFFF).filter_map(char::from_u32) {
            assert_eq!(
                class.is_match(c.encode_utf8(&mut [0; 4])),
                c.is_whitespace(),
                "U+{:04X}",
                u32::from(c)
            );
        }
    }

    /// Strings at every edge of the title and description rules.
    fn samples() -> Vec<String> {
        let mut samples: Vec<String> = [
            "",
            " ",
            "a",
            " a ",
            "\u{3000}a\u{00a0}",
            "\u{0085}",
            "\u{feff}",
            "\u{1c}",
            "a\u{0}",
            "\u{0}",
            "a b",
            "a \u{0} b",
            "\n\tmilk\r\n",
            "emoji 🥛 and עברית",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        for n in [498, 499, 500, 501, 1999, 2000, 2001] {
            samples.push("x".repeat(n));
            samples.push(format!("  {}  ", "x".repeat(n)));
            samples.push(format!("y{}y", " ".repeat(n.saturating_sub(2))));
            samples.push("🥛".repeat(n));
        }
        samples
    }

    #[test]
    fn the_title_pattern_accepts_exactly_the_titles_the_domain_accepts() {
        let pattern = compiled(&title_pattern());
        for sample in samples() {
            assert_eq!(
                pattern.is_match(&sample),
                TaskTitle::parse(&sample).is_ok(),
                "{sample:?}"
            );
        }
    }

    #[test]
    fn the_description_pattern_accepts_exactly_the_descriptions_the_domain_accepts() {
        let pattern = compiled(&description_pattern());
        for sample in samples() {
            assert_eq!(
                pattern.is_match(&sample),
                TaskDescription::parse(Some(&sample)).is_ok(),
                "{sample:?}"
            );
        }
    }

    #[test]
    fn the_label_pattern_accepts_exactly_the_labels_the_domain_accepts() {
        let pattern = compiled(&label_pattern());
        let mut samples = samples();
        for raw in [
            "\twork\n",
            "wo\trk",
            "a\u{1f}b",
            "a\u{7f}",
            "a\u{85}b",
            "\u{3000}Ä\u{a0}",
        ] {
            samples.push(raw.to_owned());
        }
        for n in [49, 50, 51] {
            samples.push("é".repeat(n));
            samples.push(format!(" {} ", "l".repeat(n)));
        }
        for sample in samples {
            assert_eq!(
                pattern.is_match(&sample),
                Label::parse(&sample).is_ok(),
                "{sample:?}"
            );
        }
    }

    /// Instants around every edge of the calendar and the clock.
    fn instants() -> Vec<String> {
        let mut instants = Vec::new();
        for date in [
            "2026-01-31",
            "2026-02-28",
            "2026-02-29",
            "2024-02-29",
            "2000-02-29",
            "1900-02-29",
            "2026-04-30",
            "2026-04-31",
            "2026-13-01",
            "2026-00-10",
            "2026-06-00",
            "0000-06-15",
            "0001-06-15",
            "0002-01-01",
            "9998-12-31",
            "9999-06-15",
            "0400-02-29",
            "0001-01-01",
            "9999-12-31",
        ] {
            for time in [
                "T00:00:00Z",
                "t23:59:59z",
                "T23:59:60Z",
                "T24:00:00Z",
                "T12:60:00Z",
                "T12:00:00.1Z",
                "T12:00:00.123456Z",
                "T12:00:00.1234567Z",
                "T12:00:00.Z",
                "T12:00:00+23:59",
                "T12:00:00-00:00",
                "T12:00:00+24:00",
                "T12:00:00+05:60",
                "T12:00:00",
                "T12:00Z",
                " 12:00:00Z",
            ] {
                instants.push(format!("{date}{time}"));
            }
        }
        instants.push("2026-02-06".to_owned());
        instants
    }

    #[test]
    fn every_instant_the_pattern_accepts_the_domain_accepts() {
        let pattern = compiled(&instant_pattern());
        let mut accepted = 0;
        for instant in instants() {
            let domain = parse_client_instant(&instant).is_ok();
            if pattern.is_match(&instant) {
                accepted += 1;
                assert!(domain, "{instant:?} matches but is refused");
            } else {
                // Only the edges of the year range may be refused by the
                // pattern and accepted by the domain.
                assert!(
                    !domain || instant.starts_with("0001") || instant.starts_with("9999"),
                    "{instant:?} is accepted but does not match"
                );
            }
        }
        // 8 valid dates inside the pattern's years, times 6 valid times.
        assert_eq!(accepted, 48);
    }
}
