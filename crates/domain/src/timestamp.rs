use std::fmt;

use time::{OffsetDateTime, UtcOffset};

/// An instant in UTC with microsecond precision.
///
/// PostgreSQL's `timestamptz` keeps microseconds; truncating here, once, means
/// a value reads back from either database exactly as it was written, and
/// comparisons made before and after a round trip agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// The current time, truncated to microseconds.
    #[must_use]
    pub fn now() -> Self {
        Self::from_datetime(OffsetDateTime::now_utc())
    }

    /// Converts any instant to UTC and drops everything below a microsecond.
    #[must_use]
    pub fn from_datetime(instant: OffsetDateTime) -> Self {
        let utc = instant.to_offset(UtcOffset::UTC);
        let whole_micros = utc.nanosecond() / 1_000 * 1_000;
        // A nanosecond count rounded down stays within 0..1_000_000_000, the
        // only range `replace_nanosecond` rejects values outside of.
        let truncated = utc.replace_nanosecond(whole_micros).unwrap_or(utc);
        Self(truncated)
    }

    /// The instant as a `time` value, always at UTC offset.
    #[must_use]
    pub fn as_datetime(&self) -> OffsetDateTime {
        self.0
    }

    /// The instant as `YYYY-MM-DDTHH:MM:SS.ffffffZ`: RFC 3339 in UTC with
    /// always six fraction digits. Fixed width, so comparing the texts
    /// compares the instants (SQLite stores and sorts this text), and what
    /// clients read. Years outside 0 to 9999, which no clock of this
    /// service produces, get a sign or more digits and are not RFC 3339.
    ///
    /// Written into a fixed template rather than through `time`'s general
    /// formatter, which is slow for a path that formats two instants per
    /// task in every list answer (docs/performance.md).
    #[must_use]
    pub fn to_fixed_rfc3339(&self) -> String {
        if let Some(text) = self.fixed_rfc3339_bytes() {
            // The template is ASCII and only ASCII digits were written into it.
            return std::str::from_utf8(&text)
                .expect("an ASCII template with ASCII digits is UTF-8")
                .to_owned();
        }
        let instant = self.0;
        let year = instant.year();
        let sign = if year < 0 { "-" } else { "" };
        format!(
            "{sign}{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            year.unsigned_abs(),
            u8::from(instant.month()),
            instant.day(),
            instant.hour(),
            instant.minute(),
            instant.second(),
            instant.microsecond()
        )
    }

    /// The ASCII text of [`Timestamp::to_fixed_rfc3339`] in a stack buffer,
    /// for years 0 to 9999 (`None` otherwise): a serializer that only
    /// borrows the text then needs no allocation.
    #[must_use]
    pub fn fixed_rfc3339_bytes(&self) -> Option<[u8; 27]> {
        // One conversion each for the date and the time: `time` derives
        // month and day from the ordinal date anew on every accessor call.
        let (year, month, day) = self.0.to_calendar_date();
        let (hour, minute, second, micros) = self.0.to_hms_micro();
        let Ok(four_digit_year @ 0..=9999) = u32::try_from(year) else {
            return None;
        };
        let mut text = *b"0000-00-00T00:00:00.000000Z";
        write_digits(&mut text[0..4], four_digit_year);
        write_digits(&mut text[5..7], u32::from(u8::from(month)));
        write_digits(&mut text[8..10], u32::from(day));
        write_digits(&mut text[11..13], u32::from(hour));
        write_digits(&mut text[14..16], u32::from(minute));
        write_digits(&mut text[17..19], u32::from(second));
        write_digits(&mut text[20..26], micros);
        Some(text)
    }

    /// The later of `self` and `other`.
    #[must_use]
    pub fn max(self, other: Self) -> Self {
        std::cmp::max(self, other)
    }
}

/// Writes `value` into `slot` as decimal digits, zero-padded to the slot's
/// width; `value` has at most that many digits (a month, a year up to 9999,
/// microseconds below a million).
fn write_digits(slot: &mut [u8], mut value: u32) {
    for digit in slot.iter_mut().rev() {
        // `value % 10` is a single decimal digit, so it fits a u8.
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn sub_microsecond_digits_are_dropped() {
        let instant = datetime!(2026-02-06 10:15:30.123_456_789 UTC);
        let stamp = Timestamp::from_datetime(instant);
        assert_eq!(
            stamp.as_datetime(),
            datetime!(2026-02-06 10:15:30.123_456 UTC)
        );
    }

    #[test]
    fn other_offsets_are_converted_to_utc() {
        let instant = datetime!(2026-02-06 12:15:30 +02:00);
        let stamp = Timestamp::from_datetime(instant);
        assert_eq!(stamp.as_datetime().offset(), UtcOffset::UTC);
        assert_eq!(stamp.as_datetime(), datetime!(2026-02-06 10:15:30 UTC));
    }

    #[test]
    fn fixed_rfc3339_has_six_fraction_digits_and_a_z() {
        let cases = [
            (
                datetime!(2026-02-06 10:15:30.1 UTC),
                "2026-02-06T10:15:30.100000Z",
            ),
            (
                datetime!(2026-02-06 10:15:30 UTC),
                "2026-02-06T10:15:30.000000Z",
            ),
            (
                datetime!(0999-01-02 03:04:05.000_001 UTC),
                "0999-01-02T03:04:05.000001Z",
            ),
            (
                datetime!(9999-12-31 23:59:59.999_999 UTC),
                "9999-12-31T23:59:59.999999Z",
            ),
            (
                datetime!(-0042-03-04 05:06:07.000_008 UTC),
                "-0042-03-04T05:06:07.000008Z",
            ),
        ];
        for (instant, text) in cases {
            assert_eq!(Timestamp::from_datetime(instant).to_fixed_rfc3339(), text);
        }
    }

    #[test]
    fn now_has_no_sub_microsecond_part() {
        assert_eq!(Timestamp::now().as_datetime().nanosecond() % 1_000, 0);
    }
}
