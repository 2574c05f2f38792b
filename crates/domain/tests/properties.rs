//! Property tests of the value types: any string either parses into a
//! value that keeps every rule, or yields exactly the documented error for
//! the rule it breaks. Never a panic (a panic fails the property).
//!
//! Case count: proptest's default (256 per property), or `PROPTEST_CASES`
//! (the larger form in `docs/reliability.md` used 20,000).

use proptest::prelude::*;
use todo_domain::{
    Email, EmailError, Password, PasswordError, TaskDescription, TaskDescriptionError, TaskId,
    TaskTitle, TaskTitleError, UserId,
};

/// Strings that reach the interesting edges: any Unicode, white space of
/// all kinds, NUL, and lengths around the limits.
fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ \\t\\n\\u{a0}\\u{3000}\\u{0}a-zé🦀@.-]{0,40}",
        (0_usize..2100, "[a\\u{0} é🦀]").prop_map(|(n, c)| c.repeat(n)),
        (490_usize..510, 0_usize..3).prop_map(|(n, pad)| format!(
            "{}{}{}",
            " ".repeat(pad),
            "t".repeat(n),
            "\u{3000}".repeat(pad)
        )),
    ]
}

proptest! {
    #[test]
    fn a_title_is_valid_or_the_documented_error(raw in hostile_string()) {
        let trimmed = raw.trim();
        match TaskTitle::parse(&raw) {
            Ok(title) => {
                prop_assert_eq!(title.as_str(), trimmed);
                prop_assert!(!trimmed.is_empty() && trimmed.chars().count() <= 500);
                prop_assert!(!title.as_str().contains('\0'));
                prop_assert_eq!(TaskTitle::parse(title.as_str()), Ok(title.clone()));
            }
            Err(TaskTitleError::ContainsNul) => prop_assert!(raw.contains('\0')),
            Err(TaskTitleError::Empty) => {
                prop_assert!(!raw.contains('\0') && trimmed.is_empty());
            }
            Err(TaskTitleError::TooLong) => {
                prop_assert!(!raw.contains('\0') && trimmed.chars().count() > 500);
            }
        }
    }

    #[test]
    fn a_description_is_valid_absent_or_the_documented_error(raw in hostile_string()) {
        let trimmed = raw.trim();
        match TaskDescription::parse(Some(&raw)) {
            Ok(Some(description)) => {
                prop_assert_eq!(description.as_str(), trimmed);
                prop_assert!(!trimmed.is_empty() && trimmed.chars().count() <= 2000);
                prop_assert!(!raw.contains('\0'));
            }
            Ok(None) => prop_assert!(!raw.contains('\0') && trimmed.is_empty()),
            Err(TaskDescriptionError::ContainsNul) => prop_assert!(raw.contains('\0')),
            Err(TaskDescriptionError::TooLong) => {
                prop_assert!(!raw.contains('\0') && trimmed.chars().count() > 2000);
            }
        }
    }

    #[test]
    fn an_email_is_normalised_and_plausible_or_refused(raw in prop_oneof![
        hostile_string(),
        "[ ]{0,2}[A-Za-z0-9._%+-]{1,20}@[A-Za-z0-9-]{1,10}(\\.[A-Za-z0-9-]{0,5}){0,3}[ ]{0,2}",
    ]) {
        let normalised = raw.trim().to_lowercase();
        match Email::parse(&raw) {
            Ok(email) => {
                prop_assert_eq!(email.as_str(), normalised.as_str());
                prop_assert!(email.as_str().chars().count() <= 254);
                prop_assert_eq!(email.as_str().matches('@').count(), 1);
                let (local, domain) = email.as_str().split_once('@').unwrap();
                prop_assert!(!local.is_empty());
                let labels: Vec<&str> = domain.split('.').collect();
                prop_assert!(labels.len() >= 2 && labels.iter().all(|l| !l.is_empty()));
                prop_assert!(!email.as_str().chars().any(|c| c.is_whitespace() || c.is_control()));
                prop_assert_eq!(Email::parse(email.as_str()), Ok(email.clone()));
            }
            Err(EmailError::TooLong) => prop_assert!(normalised.chars().count() > 254),
            Err(EmailError::Malformed) => prop_assert!(normalised.chars().count() <= 254),
        }
    }

    #[test]
    fn a_password_is_kept_verbatim_or_refused_by_length(raw in hostile_string()) {
        let length = raw.chars().count();
        match Password::parse(&raw) {
            Ok(password) => {
                prop_assert_eq!(password.expose(), raw.as_str());
                prop_assert!((8..=128).contains(&length));
            }
            Err(PasswordError::TooShort) => prop_assert!(length < 8),
            Err(PasswordError::TooLong) => prop_assert!(length > 128),
        }
    }

    #[test]
    fn an_id_parses_only_from_the_hyphenated_form(raw in prop_oneof![
        hostile_string(),
        "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
        "[0-9a-fA-F-]{30,40}",
    ]) {
        match TaskId::parse(&raw) {
            Ok(id) => {
                prop_assert_eq!(raw.len(), 36);
                prop_assert_eq!(id.to_string(), raw.to_lowercase());
                prop_assert_eq!(UserId::parse(&raw).map(|u| u.as_uuid()), Ok(id.as_uuid()));
            }
            Err(_) => prop_assert!(
                raw.len() != 36 || uuid_shape(&raw).is_none(),
                "refused a hyphenated UUID: {raw:?}"
            ),
        }
    }
}

/// `Some` when `raw` is five groups of 8-4-4-4-12 hex digits.
fn uuid_shape(raw: &str) -> Option<()> {
    let groups: Vec<&str> = raw.split('-').collect();
    let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    (lengths == [8, 4, 4, 4, 12]
        && groups
            .iter()
            .all(|g| g.chars().all(|c| c.is_ascii_hexdigit())))
    .then_some(())
}
