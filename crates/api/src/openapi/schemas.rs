//! Schemas of request fields whose rules go beyond their JSON type. The
//! domain's rules are spelled out as JSON Schema so that a client (or a
//! fuzzer) can tell a valid value from an invalid one without sending it:
//! every string a pattern accepts, the domain accepts, and every string it
//! refuses, the domain refuses too (unit tests below hold both directions).

use todo_domain::{DESCRIPTION_MAX_CHARS, PASSWORD_MAX_CHARS, PASSWORD_MIN_CHARS, TITLE_MAX_CHARS};
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};

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
    use todo_domain::{TaskDescription, TaskTitle};

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
}
