//! The task fields of the front-end model: due date, priority and labels.
//! Each is parsed once, at the edge, into a value that can only be valid.

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use crate::Timestamp;

/// The most labels a task may carry, counted after merging case variants.
pub const LABELS_MAX: usize = 20;
/// The longest label, in Unicode scalar values, after trimming.
pub const LABEL_MAX_CHARS: usize = 50;

/// An instant a client wrote that is not RFC 3339 with seconds and an
/// explicit offset, or lies outside the years 1 to 9999 in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be an RFC 3339 date-time with seconds and an offset, e.g. 2026-02-06T10:15:30Z")]
pub struct InstantError;

/// Reads an instant a client wrote: `YYYY-MM-DDTHH:MM:SS`, an optional
/// fraction of one to six digits, then `Z` or `±HH:MM` (the `T` and `Z` in
/// either case, as RFC 3339 allows). A date alone, a missing offset, a
/// seventh fraction digit or a leap second are refused.
///
/// The shape is checked here because `time`'s RFC 3339 parser is more
/// lenient (it takes any number of fraction digits, and second 60); the
/// values themselves are then checked by that parser. The instant must lie
/// in the years 1 to 9999 once in UTC, the range both databases store and
/// sort alike.
///
/// # Errors
/// [`InstantError`] for anything else.
pub fn parse_client_instant(raw: &str) -> Result<Timestamp, InstantError> {
    if !has_rfc3339_shape(raw.as_bytes()) {
        return Err(InstantError);
    }
    let instant = OffsetDateTime::parse(raw, &Rfc3339).map_err(|_| InstantError)?;
    // An offset can carry the instant past year 9999 in UTC, which `time`
    // cannot hold; the checked conversion says so instead of panicking.
    let utc = instant
        .checked_to_offset(UtcOffset::UTC)
        .ok_or(InstantError)?;
    let stamp = Timestamp::from_datetime(utc);
    let year = stamp.as_datetime().year();
    if (1..=9999).contains(&year) {
        Ok(stamp)
    } else {
        Err(InstantError)
    }
}

fn has_rfc3339_shape(bytes: &[u8]) -> bool {
    // The fixed part: `YYYY-MM-DDTHH:MM:SS`, 19 bytes.
    const SHAPE: &[u8; 19] = b"dddd-dd-ddTdd:dd:dd";
    if bytes.len() < SHAPE.len() {
        return false;
    }
    let (head, mut rest) = bytes.split_at(SHAPE.len());
    let head_fits = head.iter().zip(SHAPE).all(|(&byte, &shape)| match shape {
        b'd' => byte.is_ascii_digit(),
        b'T' => byte.eq_ignore_ascii_case(&b'T'),
        other => byte == other,
    });
    if !head_fits || &head[17..19] == b"60" {
        return false;
    }
    if let Some(fraction) = rest.strip_prefix(b".") {
        let digits = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
        if !(1..=6).contains(&digits) {
            return false;
        }
        rest = &fraction[digits..];
    }
    match rest {
        [z] => z.eq_ignore_ascii_case(&b'Z'),
        [sign, h1, h2, b':', m1, m2] => {
            matches!(sign, b'+' | b'-') && [h1, h2, m1, m2].iter().all(|b| b.is_ascii_digit())
        }
        _ => false,
    }
}

/// How urgent a task is. The order is the order of the variants:
/// `None < Low < Medium < High`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Priority {
    /// No priority given (the default).
    #[default]
    None,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
}

/// A priority word that is not one of `none`, `low`, `medium`, `high`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Priority must be one of none, low, medium, high")]
pub struct PriorityError;

impl Priority {
    /// Every priority, lowest first.
    pub const ALL: [Priority; 4] = [Self::None, Self::Low, Self::Medium, Self::High];

    /// Reads one of the four words, exactly as the contract spells them.
    ///
    /// # Errors
    /// [`PriorityError`] for anything else.
    pub fn parse(raw: &str) -> Result<Self, PriorityError> {
        Self::ALL
            .into_iter()
            .find(|priority| priority.as_str() == raw)
            .ok_or(PriorityError)
    }

    /// The word clients read and write.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }

    /// The priority as a number that sorts like it: 0 for `None` to 3 for
    /// `High`. Storage keeps this.
    #[must_use]
    pub fn rank(self) -> i16 {
        match self {
            Self::None => 0,
            Self::Low => 1,
            Self::Medium => 2,
            Self::High => 3,
        }
    }

    /// The priority of a rank, if it is one.
    #[must_use]
    pub fn from_rank(rank: i16) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|priority| priority.rank() == rank)
    }
}

/// Why a list of labels was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LabelsError {
    /// A label is empty after trimming.
    #[error("Labels cannot be empty")]
    Empty,
    /// A label is longer than [`LABEL_MAX_CHARS`] after trimming.
    #[error("Labels must be at most 50 characters")]
    TooLong,
    /// A label holds a control character (U+0000 to U+001F, or U+007F).
    #[error("Labels must not contain control characters")]
    ControlCharacter,
    /// More than [`LABELS_MAX`] labels once case variants are merged.
    #[error("A task can have at most 20 labels")]
    TooMany,
}

/// One label: trimmed, 1 to 50 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    name: String,
    key: String,
}

impl Label {
    /// Trims Unicode white space and checks the label rules.
    ///
    /// # Errors
    /// The first [`LabelsError`] that applies to this one label.
    pub fn parse(raw: &str) -> Result<Self, LabelsError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(LabelsError::Empty);
        }
        if name.chars().any(|c| c <= '\u{1f}' || c == '\u{7f}') {
            return Err(LabelsError::ControlCharacter);
        }
        if name.chars().count() > LABEL_MAX_CHARS {
            return Err(LabelsError::TooLong);
        }
        Ok(Self {
            key: label_key(name),
            name: name.to_owned(),
        })
    }

    /// The label as the client first spelled it.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The label compared without case: what filters match on and what
    /// makes two spellings one label.
    #[must_use]
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// The case-folded form of a label name; two names are one label exactly
/// when their keys are equal.
#[must_use]
pub fn label_key(name: &str) -> String {
    name.to_lowercase()
}

/// A task's labels: each valid, no two equal but for case (the first
/// spelling wins), in the order given, at most [`LABELS_MAX`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Labels(Vec<Label>);

impl Labels {
    /// No labels.
    #[must_use]
    pub fn none() -> Self {
        Self::default()
    }

    /// Checks each label, merges case variants, then counts.
    ///
    /// # Errors
    /// The first [`LabelsError`] of a label, in order; or
    /// [`LabelsError::TooMany`].
    pub fn parse<S: AsRef<str>>(raw: &[S]) -> Result<Self, LabelsError> {
        let mut labels: Vec<Label> = Vec::with_capacity(raw.len().min(LABELS_MAX));
        for name in raw {
            let label = Label::parse(name.as_ref())?;
            if !labels.iter().any(|kept| kept.key == label.key) {
                labels.push(label);
            }
        }
        if labels.len() > LABELS_MAX {
            return Err(LabelsError::TooMany);
        }
        Ok(Self(labels))
    }

    /// The labels, in order.
    #[must_use]
    pub fn as_slice(&self) -> &[Label] {
        &self.0
    }

    /// The labels' names, in order.
    pub fn names(&self) -> impl ExactSizeIterator<Item = &str> {
        self.0.iter().map(Label::as_str)
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use time::Month;

    use super::*;

    fn day(year: i32, month: Month, day: u8) -> Timestamp {
        let date = time::Date::from_calendar_date(year, month, day).unwrap();
        Timestamp::from_datetime(date.midnight().assume_utc())
    }

    #[test]
    fn an_instant_in_utc_is_read() {
        let at = parse_client_instant("2026-02-06T10:15:30Z").unwrap();
        assert_eq!(at.to_fixed_rfc3339(), "2026-02-06T10:15:30.000000Z");
    }

    #[test]
    fn an_offset_is_converted_to_utc() {
        let at = parse_client_instant("2026-02-06T12:15:30.5+02:00").unwrap();
        assert_eq!(at.to_fixed_rfc3339(), "2026-02-06T10:15:30.500000Z");
    }

    #[test]
    fn six_fraction_digits_are_kept_exactly() {
        let at = parse_client_instant("2026-02-06T10:15:30.123456-05:30").unwrap();
        assert_eq!(at.to_fixed_rfc3339(), "2026-02-06T15:45:30.123456Z");
    }

    #[test]
    fn lower_case_t_and_z_are_rfc_3339_too() {
        assert_eq!(
            parse_client_instant("2026-02-06t10:15:30z"),
            parse_client_instant("2026-02-06T10:15:30Z")
        );
    }

    #[test]
    fn a_date_without_time_is_refused() {
        assert_eq!(parse_client_instant("2026-02-06"), Err(InstantError));
    }

    #[test]
    fn a_missing_offset_or_seconds_is_refused() {
        for raw in [
            "2026-02-06T10:15:30",
            "2026-02-06T10:15Z",
            "2026-02-06 10:15:30Z",
            "2026-02-06T10:15:30+0200",
            "2026-02-06T10:15:30+02",
        ] {
            assert_eq!(parse_client_instant(raw), Err(InstantError), "{raw}");
        }
    }

    #[test]
    fn a_seventh_fraction_digit_or_an_empty_fraction_is_refused() {
        assert_eq!(
            parse_client_instant("2026-02-06T10:15:30.1234567Z"),
            Err(InstantError)
        );
        assert_eq!(
            parse_client_instant("2026-02-06T10:15:30.Z"),
            Err(InstantError)
        );
    }

    #[test]
    fn impossible_dates_and_leap_seconds_are_refused() {
        for raw in [
            "2026-02-30T10:15:30Z",
            "2026-13-01T10:15:30Z",
            "2026-02-06T24:00:00Z",
            "2026-12-31T23:59:60Z",
            "2026-02-06T10:15:30+24:00",
        ] {
            assert_eq!(parse_client_instant(raw), Err(InstantError), "{raw}");
        }
    }

    #[test]
    fn instants_outside_years_1_to_9999_in_utc_are_refused() {
        assert_eq!(
            parse_client_instant("0001-01-01T00:30:00+01:00"),
            Err(InstantError)
        );
        assert_eq!(
            parse_client_instant("9999-12-31T23:30:00-01:00"),
            Err(InstantError)
        );
        assert_eq!(
            parse_client_instant("0001-01-01T00:00:00Z"),
            Ok(day(1, Month::January, 1))
        );
    }

    #[test]
    fn junk_around_an_instant_is_refused() {
        for raw in [
            " 2026-02-06T10:15:30Z",
            "2026-02-06T10:15:30Z ",
            "２０２６-02-06T10:15:30Z",
            "",
        ] {
            assert_eq!(parse_client_instant(raw), Err(InstantError), "{raw:?}");
        }
    }

    #[test]
    fn priorities_are_the_four_words() {
        for priority in Priority::ALL {
            assert_eq!(Priority::parse(priority.as_str()), Ok(priority));
            assert_eq!(Priority::from_rank(priority.rank()), Some(priority));
        }
    }

    #[test]
    fn other_priority_words_are_refused() {
        for raw in ["", "High", "urgent", " low", "3"] {
            assert_eq!(Priority::parse(raw), Err(PriorityError), "{raw:?}");
        }
        assert_eq!(Priority::from_rank(4), None);
    }

    #[test]
    fn priorities_sort_from_none_to_high() {
        let mut shuffled = [
            Priority::High,
            Priority::None,
            Priority::Medium,
            Priority::Low,
        ];
        shuffled.sort();
        assert_eq!(shuffled, Priority::ALL);
        let mut ranks = shuffled.map(Priority::rank);
        ranks.sort_unstable();
        assert_eq!(ranks, [0, 1, 2, 3]);
    }

    #[test]
    fn labels_are_trimmed_and_keep_their_order() {
        let labels = Labels::parse(&[" work ", "home", "\u{3000}errands"]).unwrap();
        assert_eq!(
            labels.names().collect::<Vec<_>>(),
            ["work", "home", "errands"]
        );
    }

    #[test]
    fn labels_that_differ_only_in_case_are_one_and_the_first_spelling_wins() {
        let labels = Labels::parse(&["Work", "home", "WORK", "work "]).unwrap();
        assert_eq!(labels.names().collect::<Vec<_>>(), ["Work", "home"]);
        assert_eq!(labels.as_slice()[0].key(), "work");
    }

    #[test]
    fn case_is_folded_beyond_ascii() {
        let labels = Labels::parse(&["Äpfel", "äpfel", "ΣΟΦΙΑ", "σοφια"]).unwrap();
        assert_eq!(labels.names().collect::<Vec<_>>(), ["Äpfel", "ΣΟΦΙΑ"]);
    }

    #[test]
    fn an_empty_label_is_refused() {
        assert_eq!(Labels::parse(&["work", "  "]), Err(LabelsError::Empty));
    }

    #[test]
    fn a_label_of_50_characters_is_accepted_and_51_refused() {
        assert!(Labels::parse(&["é".repeat(50)]).is_ok());
        assert_eq!(Labels::parse(&["é".repeat(51)]), Err(LabelsError::TooLong));
    }

    #[test]
    fn control_characters_are_refused_after_trimming() {
        assert!(Labels::parse(&["\twork\n"]).is_ok());
        for raw in ["wo\trk", "a\u{0}b", "a\u{1f}b", "a\u{7f}b"] {
            assert_eq!(
                Labels::parse(&[raw]),
                Err(LabelsError::ControlCharacter),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn twenty_labels_are_accepted_and_twenty_one_refused() {
        let twenty: Vec<String> = (0..20).map(|n| format!("l{n}")).collect();
        assert_eq!(Labels::parse(&twenty).unwrap().as_slice().len(), 20);
        let mut twenty_one = twenty.clone();
        twenty_one.push("one more".into());
        assert_eq!(Labels::parse(&twenty_one), Err(LabelsError::TooMany));
    }

    #[test]
    fn labels_are_counted_after_merging() {
        let mut labels: Vec<String> = (0..20).map(|n| format!("l{n}")).collect();
        labels.extend((0..20).map(|n| format!("L{n}")));
        assert_eq!(Labels::parse(&labels).unwrap().as_slice().len(), 20);
    }

    #[test]
    fn no_labels_is_valid() {
        assert!(Labels::parse::<&str>(&[]).unwrap().is_empty());
    }
}
