//! How instants are written, the one place that knows the two backends
//! store them differently.

use sea_orm::Value;
use todo_domain::Timestamp;

use crate::Backend;

/// The value to bind for an instant written to (or compared with) a
/// timestamp column.
///
/// PostgreSQL gets a typed `timestamptz`. SQLite has no date type and
/// compares the stored text byte by byte, so the text must sort like the
/// instants: sqlx would write RFC 3339 with trailing fraction zeros trimmed
/// (`…:23.5Z` sorts after `…:23.50001Z`), hence a fixed-width form with
/// always six fraction digits. sqlx parses that form back as RFC 3339.
pub(crate) fn timestamp_value(backend: Backend, at: Timestamp) -> Value {
    match backend {
        Backend::Postgres => Value::from(at.as_datetime()),
        Backend::Sqlite => Value::from(at.to_fixed_rfc3339()),
    }
}

/// As [`timestamp_value`], for a nullable column: `None` binds a NULL of
/// the column's type.
pub(crate) fn optional_timestamp_value(backend: Backend, at: Option<Timestamp>) -> Value {
    match (at, backend) {
        (Some(at), _) => timestamp_value(backend, at),
        (None, Backend::Postgres) => Value::TimeDateTimeWithTimeZone(None),
        (None, Backend::Sqlite) => Value::String(None),
    }
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;
    use time::macros::datetime;

    use super::*;

    fn stamp(instant: OffsetDateTime) -> Timestamp {
        Timestamp::from_datetime(instant)
    }

    #[test]
    fn sqlite_text_always_has_six_fraction_digits() {
        let cases = [
            (
                datetime!(2026-02-06 10:15:23 UTC),
                "2026-02-06T10:15:23.000000Z",
            ),
            (
                datetime!(2026-02-06 10:15:23.5 UTC),
                "2026-02-06T10:15:23.500000Z",
            ),
            (
                datetime!(2026-02-06 10:15:23.000_001 UTC),
                "2026-02-06T10:15:23.000001Z",
            ),
            (
                datetime!(0999-01-02 03:04:05.123_456 UTC),
                "0999-01-02T03:04:05.123456Z",
            ),
        ];
        for (instant, text) in cases {
            assert_eq!(stamp(instant).to_fixed_rfc3339(), text);
        }
    }

    #[test]
    fn sqlite_text_is_in_utc() {
        let text = stamp(datetime!(2026-02-06 12:00:00 +02:00)).to_fixed_rfc3339();
        assert_eq!(text, "2026-02-06T10:00:00.000000Z");
    }

    #[test]
    fn sqlite_text_sorts_like_the_instants() {
        let instants = [
            datetime!(2026-02-06 10:15:23.5 UTC),
            datetime!(2026-02-06 10:15:23.500_01 UTC),
            datetime!(2026-02-06 10:15:23.12 UTC),
            datetime!(2026-02-06 10:15:23.123 UTC),
            datetime!(2026-02-06 10:15:23 UTC),
            datetime!(2026-02-06 10:15:24 UTC),
        ];
        let mut by_instant = instants.to_vec();
        by_instant.sort();
        let mut by_text = instants.to_vec();
        by_text.sort_by_key(|instant| stamp(*instant).to_fixed_rfc3339());
        assert_eq!(by_text, by_instant);
    }

    #[test]
    fn sqlite_text_parses_back_to_the_same_instant() {
        let at = stamp(datetime!(2026-02-06 10:15:23.120_000 UTC));
        let parsed = OffsetDateTime::parse(&at.to_fixed_rfc3339(), &Rfc3339).unwrap();
        assert_eq!(Timestamp::from_datetime(parsed), at);
    }

    #[test]
    fn a_missing_instant_is_a_typed_null() {
        assert_eq!(
            optional_timestamp_value(Backend::Postgres, None),
            Value::TimeDateTimeWithTimeZone(None)
        );
        assert_eq!(
            optional_timestamp_value(Backend::Sqlite, None),
            Value::String(None)
        );
        let at = stamp(datetime!(2026-02-06 10:15:23 UTC));
        assert_eq!(
            optional_timestamp_value(Backend::Sqlite, Some(at)),
            timestamp_value(Backend::Sqlite, at)
        );
    }

    #[test]
    fn postgres_gets_a_typed_value() {
        let at = stamp(datetime!(2026-02-06 10:15:23.120_000 UTC));
        assert_eq!(
            timestamp_value(Backend::Postgres, at),
            Value::TimeDateTimeWithTimeZone(Some(at.as_datetime()))
        );
    }
}
