use std::fmt;

use crate::{Email, Timestamp, User, UserId};

/// The longest issuer accepted, in characters. Issuers are URLs an operator
/// configures; this only bounds what a stored row can hold.
pub const ISSUER_MAX_CHARS: usize = 2048;
/// The longest subject accepted, in characters. Better Auth's ids are 32
/// characters by default; other providers use UUIDs or longer opaque ids.
pub const SUBJECT_MAX_CHARS: usize = 255;

/// Why an issuer or subject was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ExternalIdentityError {
    /// The issuer is empty or longer than [`ISSUER_MAX_CHARS`].
    #[error("issuer must be 1 to 2048 characters")]
    IssuerLength,
    /// The subject is empty or longer than [`SUBJECT_MAX_CHARS`].
    #[error("subject must be 1 to 255 characters")]
    SubjectLength,
    /// A control character (NUL included, which PostgreSQL text cannot
    /// hold) in either part.
    #[error("issuer and subject must not contain control characters")]
    ControlCharacter,
}

/// Who a person is at an external identity provider: the provider (`iss`
/// of its tokens) and the provider's id for the person (`sub`).
///
/// The pair, never the email, decides which of our users a token speaks
/// for: providers may let anyone claim any address, so linking by email
/// would hand one person's tasks to another.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ExternalIdentity {
    issuer: String,
    subject: String,
}

impl ExternalIdentity {
    /// Checks lengths and characters. Both parts are opaque: they are
    /// compared byte for byte and never trimmed or case-folded.
    ///
    /// # Errors
    /// An [`ExternalIdentityError`] naming the broken rule.
    pub fn new(issuer: &str, subject: &str) -> Result<Self, ExternalIdentityError> {
        if issuer.is_empty() || issuer.chars().count() > ISSUER_MAX_CHARS {
            return Err(ExternalIdentityError::IssuerLength);
        }
        if subject.is_empty() || subject.chars().count() > SUBJECT_MAX_CHARS {
            return Err(ExternalIdentityError::SubjectLength);
        }
        if issuer.chars().chain(subject.chars()).any(char::is_control) {
            return Err(ExternalIdentityError::ControlCharacter);
        }
        Ok(Self {
            issuer: issuer.to_owned(),
            subject: subject.to_owned(),
        })
    }

    /// The provider, as its tokens name it.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The provider's id for the person.
    #[must_use]
    pub fn subject(&self) -> &str {
        &self.subject
    }
}

impl fmt::Debug for ExternalIdentity {
    /// The subject is an identifier, not a secret, but it is personal data
    /// of another system; logs get the issuer only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalIdentity")
            .field("issuer", &self.issuer)
            .field("subject", &"<redacted>")
            .finish()
    }
}

/// A user to create on the first verified token of an external identity.
/// Such a user has no password: signing in with one fails exactly like a
/// wrong password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewExternalUser {
    /// Our id for the user, which owns their tasks.
    pub id: UserId,
    /// The identity the user is linked to, for good.
    pub identity: ExternalIdentity,
    /// The address the provider vouched for in the token.
    pub email: Email,
    /// The creation time.
    pub created_at: Timestamp,
}

/// What storing a [`NewExternalUser`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provisioned {
    /// The user and the link were stored.
    Created(User),
    /// Another request linked this identity first; nothing was stored.
    AlreadyLinked,
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "https://auth.example.io";

    #[test]
    fn a_better_auth_subject_is_accepted_as_is() {
        let identity = ExternalIdentity::new(ISSUER, "q2T9xLk0aPz8wR4mN6bV1cY3dF5gH7jK").unwrap();
        assert_eq!(identity.issuer(), ISSUER);
        assert_eq!(identity.subject(), "q2T9xLk0aPz8wR4mN6bV1cY3dF5gH7jK");
    }

    #[test]
    fn parts_are_neither_trimmed_nor_case_folded() {
        let identity = ExternalIdentity::new(ISSUER, " AbC ").unwrap();
        assert_eq!(identity.subject(), " AbC ");
        assert_ne!(identity, ExternalIdentity::new(ISSUER, "abc").unwrap());
    }

    #[test]
    fn empty_parts_are_refused() {
        assert_eq!(
            ExternalIdentity::new("", "s"),
            Err(ExternalIdentityError::IssuerLength)
        );
        assert_eq!(
            ExternalIdentity::new(ISSUER, ""),
            Err(ExternalIdentityError::SubjectLength)
        );
    }

    #[test]
    fn a_subject_of_255_characters_is_accepted_and_256_refused() {
        assert!(ExternalIdentity::new(ISSUER, &"é".repeat(255)).is_ok());
        assert_eq!(
            ExternalIdentity::new(ISSUER, &"é".repeat(256)),
            Err(ExternalIdentityError::SubjectLength)
        );
    }

    #[test]
    fn an_issuer_over_2048_characters_is_refused() {
        assert!(ExternalIdentity::new(&"i".repeat(2048), "s").is_ok());
        assert_eq!(
            ExternalIdentity::new(&"i".repeat(2049), "s"),
            Err(ExternalIdentityError::IssuerLength)
        );
    }

    #[test]
    fn control_characters_are_refused_in_either_part() {
        for (issuer, subject) in [(ISSUER, "a\0b"), ("iss\n", "s"), (ISSUER, "tab\there")] {
            assert_eq!(
                ExternalIdentity::new(issuer, subject),
                Err(ExternalIdentityError::ControlCharacter),
                "{issuer:?} {subject:?}"
            );
        }
    }

    #[test]
    fn debug_output_hides_the_subject() {
        let identity = ExternalIdentity::new(ISSUER, "subject-1234").unwrap();
        let shown = format!("{identity:?}");
        assert!(shown.contains(ISSUER));
        assert!(!shown.contains("subject-1234"));
    }
}
