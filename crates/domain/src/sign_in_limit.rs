//! The limit on failed sign-ins per account, beside the per-address limit
//! of the HTTP layer: guessing one account's password from many addresses
//! is slowed down here.

use std::fmt;
use std::time::Duration;

use crate::Timestamp;

/// What the failed-sign-in limit counts against: the email as the client
/// typed it, trimmed and lowercased as sign-in does, whether or not it
/// parses and whether or not an account has it. An unknown address is
/// counted and blocked exactly like a known one, so the limit reveals
/// nothing about which accounts exist.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SignInKey(String);

impl SignInKey {
    /// The key of a sign-in attempt with this email field.
    #[must_use]
    pub fn from_typed(raw_email: &str) -> Self {
        Self(raw_email.trim().to_lowercase())
    }

    /// The normalised text. Adapters store a digest of it, never the text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SignInKey {
    /// Leaves the address out: it is personal data, and for an unknown
    /// account it may be anything a client typed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SignInKey(<redacted>)")
    }
}

/// How many failed sign-ins a key may collect within a window, and how
/// long it is then refused.
///
/// The rule: a failure starts a window of `window` unless one is open; each
/// failure inside it counts one. The failure that brings the count to
/// `failures` blocks the key for `window` from that moment, and the window
/// is stretched to the end of the block, so the count starts afresh after
/// it. A successful sign-in forgets the key's failures. So a key gets at
/// most `failures` wrong guesses per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInLimit {
    /// Failures that block the key; at least 1.
    pub failures: u32,
    /// Length of the window and of the block.
    pub window: Duration,
}

impl SignInLimit {
    /// When a window or block that starts at `at` ends.
    #[must_use]
    pub fn end_of_window(&self, at: Timestamp) -> Timestamp {
        Timestamp::from_datetime(at.as_datetime() + self.window)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn the_key_is_the_typed_email_trimmed_and_lowercased() {
        assert_eq!(
            SignInKey::from_typed("  Ada@Example.IO\t").as_str(),
            "ada@example.io"
        );
    }

    #[test]
    fn an_address_that_does_not_parse_still_has_a_key() {
        assert_eq!(
            SignInKey::from_typed(" Not An Email ").as_str(),
            "not an email"
        );
    }

    #[test]
    fn the_key_of_a_valid_email_is_its_normalised_form() {
        let raw = " Grace.Hopper@Navy.MIL ";
        assert_eq!(
            SignInKey::from_typed(raw).as_str(),
            crate::Email::parse(raw).unwrap().as_str()
        );
    }

    #[test]
    fn debug_output_hides_the_address() {
        let shown = format!("{:?}", SignInKey::from_typed("ada@example.io"));
        assert!(!shown.contains("ada"), "{shown}");
    }

    #[test]
    fn a_window_ends_its_length_after_it_starts() {
        let limit = SignInLimit {
            failures: 10,
            window: Duration::from_secs(900),
        };
        let start = Timestamp::from_datetime(datetime!(2031-03-14 15:00:00.25 UTC));
        assert_eq!(
            limit.end_of_window(start),
            Timestamp::from_datetime(datetime!(2031-03-14 15:15:00.25 UTC))
        );
    }
}
