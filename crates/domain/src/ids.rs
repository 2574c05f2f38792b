use std::fmt;

use uuid::Uuid;

/// A string that is not a UUID in hyphenated form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a UUID in hyphenated form")]
pub struct InvalidId;

/// Parses the 36-character hyphenated form, in either letter case.
///
/// `uuid` also accepts the simple, braced and URN forms; ids in URLs are only
/// ever written hyphenated, so the other forms are refused rather than
/// silently given a second spelling.
fn parse_hyphenated(raw: &str) -> Result<Uuid, InvalidId> {
    if raw.len() != 36 {
        return Err(InvalidId);
    }
    Uuid::try_parse(raw).map_err(|_| InvalidId)
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-ordered (UUIDv7) id.
            #[must_use]
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an id read back from storage or a verified token.
            #[must_use]
            pub fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            /// Parses an id written by a client.
            ///
            /// # Errors
            /// [`InvalidId`] unless `raw` is a hyphenated UUID.
            pub fn parse(raw: &str) -> Result<Self, InvalidId> {
                parse_hyphenated(raw).map(Self)
            }

            /// The underlying UUID.
            #[must_use]
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            /// Canonical lowercase hyphenated form.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }
    };
}

uuid_id!(
    /// Identifies one task.
    TaskId
);
uuid_id!(
    /// Identifies one user; the owner of tasks.
    UserId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_version_7() {
        assert_eq!(TaskId::generate().as_uuid().get_version_num(), 7);
    }

    #[test]
    fn ids_display_in_lowercase_hyphenated_form() {
        let id = TaskId::parse("0190A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B").unwrap();
        assert_eq!(id.to_string(), "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
    }

    #[test]
    fn simple_braced_and_urn_forms_are_refused() {
        for raw in [
            "0190a1b2c3d47e5f8a9b0c1d2e3f4a5b",
            "{0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b}",
            "urn:uuid:0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        ] {
            assert_eq!(TaskId::parse(raw), Err(InvalidId), "{raw}");
        }
    }

    #[test]
    fn garbage_is_refused() {
        for raw in ["", "abc", "not-a-uuid-not-a-uuid-not-a-uuid-xx", "1"] {
            assert_eq!(UserId::parse(raw), Err(InvalidId), "{raw}");
        }
    }

    #[test]
    fn ids_generated_in_sequence_sort_in_sequence() {
        let first = TaskId::generate();
        let second = TaskId::generate();
        assert!(first < second);
    }
}
