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

    /// The later of `self` and `other`.
    #[must_use]
    pub fn max(self, other: Self) -> Self {
        std::cmp::max(self, other)
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
    fn now_has_no_sub_microsecond_part() {
        assert_eq!(Timestamp::now().as_datetime().nanosecond() % 1_000, 0);
    }
}
