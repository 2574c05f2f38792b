use std::fmt;

use crate::{Timestamp, UserId};

/// The longest email address, in characters, after normalising.
pub const EMAIL_MAX_CHARS: usize = 254;
/// The shortest password, in characters.
pub const PASSWORD_MIN_CHARS: usize = 8;
/// The longest password, in characters.
pub const PASSWORD_MAX_CHARS: usize = 128;

/// Why an email address was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// Not of the form `local@domain.tld`.
    #[error("Email address is not valid")]
    Malformed,
    /// Longer than [`EMAIL_MAX_CHARS`].
    #[error("Email address must be at most 254 characters")]
    TooLong,
}

/// Why a password was refused at sign-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Shorter than [`PASSWORD_MIN_CHARS`].
    #[error("Password must be at least 8 characters")]
    TooShort,
    /// Longer than [`PASSWORD_MAX_CHARS`].
    #[error("Password must be at most 128 characters")]
    TooLong,
}

/// A normalised (trimmed, lowercased), plausible email address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Trims, lowercases and checks that the address looks deliverable:
    /// one `@`, a non-empty local part, and a domain of at least two
    /// dot-separated labels, none empty, the last at least two characters.
    /// No white space or control characters anywhere.
    ///
    /// # Errors
    /// [`EmailError::TooLong`] or [`EmailError::Malformed`].
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        let normalised = raw.trim().to_lowercase();
        if normalised.chars().count() > EMAIL_MAX_CHARS {
            return Err(EmailError::TooLong);
        }
        if normalised
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(EmailError::Malformed);
        }
        let Some((local, domain)) = normalised.split_once('@') else {
            return Err(EmailError::Malformed);
        };
        if local.is_empty() || domain.contains('@') {
            return Err(EmailError::Malformed);
        }
        let labels: Vec<&str> = domain.split('.').collect();
        let plausible_domain = labels.len() >= 2
            && labels
                .iter()
                .all(|label| !label.is_empty() && !label.starts_with('-') && !label.ends_with('-'))
            && labels.last().is_some_and(|tld| tld.chars().count() >= 2);
        if !plausible_domain {
            return Err(EmailError::Malformed);
        }
        Ok(Self(normalised))
    }

    /// The address as stored.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password as typed by the user at sign-up: 8 to 128 characters.
///
/// It is never stored or logged; `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Checks the sign-up length rule. White space is kept: it is part of
    /// what the user chose.
    ///
    /// # Errors
    /// [`PasswordError::TooShort`] or [`PasswordError::TooLong`].
    pub fn parse(raw: &str) -> Result<Self, PasswordError> {
        let length = raw.chars().count();
        if length < PASSWORD_MIN_CHARS {
            return Err(PasswordError::TooShort);
        }
        if length > PASSWORD_MAX_CHARS {
            return Err(PasswordError::TooLong);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The plain text, for the hasher only.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A password hash in PHC string form, as produced by a `PasswordHasher`.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a PHC string produced by a hasher or read from storage.
    #[must_use]
    pub fn new(phc: String) -> Self {
        Self(phc)
    }

    /// The PHC string.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

/// A user's public profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user's id.
    pub id: UserId,
    /// The normalised address the user signed up with.
    pub email: Email,
    /// When the account was created.
    pub created_at: Timestamp,
    /// The last successful sign-in, if any.
    pub last_signin_at: Option<Timestamp>,
}

/// A user about to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// The new id.
    pub id: UserId,
    /// The normalised address.
    pub email: Email,
    /// The hash of the chosen password.
    pub password_hash: PasswordHash,
    /// The creation time.
    pub created_at: Timestamp,
}

/// What sign-in needs to check a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCredentials {
    /// The user's id.
    pub user_id: UserId,
    /// The stored hash.
    pub password_hash: PasswordHash,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_trimmed_and_lowercased() {
        assert_eq!(
            Email::parse("  Ada@Example.IO ").unwrap().as_str(),
            "ada@example.io"
        );
    }

    #[test]
    fn plausible_addresses_are_accepted() {
        for raw in [
            "a@b.io",
            "first.last+tag@mail.example.co.uk",
            "x_y@sub-domain.dev",
        ] {
            assert!(Email::parse(raw).is_ok(), "{raw}");
        }
    }

    #[test]
    fn implausible_addresses_are_rejected() {
        for raw in [
            "", "plain", "@b.io", "a@", "a@b", "a@b.", "a@.io", "a@b..io", "a@b.c", "a@@b.io",
            "a@b@c.io", "a b@c.io", "a@b c.io", "a@-b.io", "a\0@b.io",
        ] {
            assert_eq!(Email::parse(raw), Err(EmailError::Malformed), "{raw:?}");
        }
    }

    #[test]
    fn email_of_254_characters_is_accepted() {
        let raw = format!("{}@example.io", "a".repeat(254 - "@example.io".len()));
        assert!(Email::parse(&raw).is_ok());
    }

    #[test]
    fn email_of_255_characters_is_rejected() {
        let raw = format!("{}@example.io", "a".repeat(255 - "@example.io".len()));
        assert_eq!(Email::parse(&raw), Err(EmailError::TooLong));
    }

    #[test]
    fn password_of_7_characters_is_too_short() {
        assert_eq!(Password::parse("1234567"), Err(PasswordError::TooShort));
    }

    #[test]
    fn password_length_counts_characters() {
        // Seven characters, fourteen bytes.
        assert_eq!(Password::parse("ééééééé"), Err(PasswordError::TooShort));
        assert!(Password::parse("éééééééé").is_ok());
    }

    #[test]
    fn password_of_128_characters_is_accepted_and_129_rejected() {
        assert!(Password::parse(&"p".repeat(128)).is_ok());
        assert_eq!(
            Password::parse(&"p".repeat(129)),
            Err(PasswordError::TooLong)
        );
    }

    #[test]
    fn password_keeps_its_spaces() {
        assert_eq!(
            Password::parse(" secret pw ").unwrap().expose(),
            " secret pw "
        );
    }

    #[test]
    fn debug_output_hides_secrets() {
        let password = Password::parse("hunter2hunter2").unwrap();
        let hash = PasswordHash::new("$argon2id$v=19$secret".into());
        assert!(!format!("{password:?}").contains("hunter2"));
        assert!(!format!("{hash:?}").contains("argon2id"));
    }
}
