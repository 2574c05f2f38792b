//! The failed-sign-in limit of `AccountService::sign_in`: which key is
//! checked, counted and cleared, and that a blocked key costs neither a
//! lookup nor a hash.

use time::macros::datetime;

use super::*;
use crate::SignInKey;

/// The key every attempt with `email()` is counted under.
fn ada_key() -> SignInKey {
    SignInKey::from_typed("ada@example.io")
}

/// A failure store that reports `key` blocked until `until` and expects
/// nothing else.
fn failures_blocking(until: Timestamp) -> MockSignInFailureRepository {
    let mut failures = MockSignInFailureRepository::new();
    failures
        .expect_blocked_until()
        .with(eq(ada_key()), eq(clock_time()))
        .times(1)
        .returning(move |_, _| Ok(Some(until)));
    failures.expect_record_failure().times(0);
    failures.expect_clear().times(0);
    failures
}

/// A failure store where `key` is not blocked and that expects exactly one
/// recorded failure of `key` at the clock time under the service's limit.
fn failures_expecting_one_failure_of(key: SignInKey) -> MockSignInFailureRepository {
    let mut failures = MockSignInFailureRepository::new();
    let checked = key.clone();
    failures
        .expect_blocked_until()
        .withf(move |asked, _| *asked == checked)
        .times(1)
        .returning(|_, _| Ok(None));
    failures
        .expect_record_failure()
        .with(eq(key), eq(clock_time()), eq(sign_in_limit()))
        .times(1)
        .returning(|_, _, _| Ok(()));
    failures.expect_clear().times(0);
    failures
}

/// Ninety seconds after the clock time.
fn in_ninety_seconds() -> Timestamp {
    Timestamp::from_datetime(datetime!(2031-03-14 15:10:56.535897 UTC))
}

#[tokio::test]
async fn a_blocked_email_is_refused_before_any_lookup_or_hash() {
    let mut users = MockUserRepository::new();
    users.expect_find_credentials().times(0);
    users.expect_record_sign_in().times(0);
    let mut hasher = MockPasswordHasher::new();
    hasher.expect_verify().times(0);
    let service = account_service_counting(users, hasher, failures_blocking(in_ninety_seconds()));

    let error = service
        .sign_in("ada@example.io", SIGN_IN_PASSWORD)
        .await
        .unwrap_err();

    assert!(
        matches!(error, DomainError::TooManyFailedSignIns { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_blocked_email_is_told_how_long_the_block_lasts() {
    let service = account_service_counting(
        MockUserRepository::new(),
        MockPasswordHasher::new(),
        failures_blocking(in_ninety_seconds()),
    );

    let error = service
        .sign_in("ada@example.io", SIGN_IN_PASSWORD)
        .await
        .unwrap_err();

    let DomainError::TooManyFailedSignIns { retry_after } = error else {
        panic!("not blocked: {error:?}");
    };
    assert_eq!(retry_after, std::time::Duration::from_secs(90));
}

#[tokio::test]
async fn the_email_is_checked_and_counted_as_typed_trimmed_and_lowercased() {
    let service = account_service_counting(
        users_without_accounts(),
        hasher_expecting_no_hash(),
        failures_expecting_one_failure_of(ada_key()),
    );

    let result = service.sign_in("  Ada@Example.IO ", SIGN_IN_PASSWORD).await;

    assert!(result.is_err(), "{result:?}");
}

#[tokio::test]
async fn a_wrong_password_counts_one_failure_and_fails_with_invalid_credentials() {
    let mut users = users_knowing(UserId::generate());
    users.expect_record_sign_in().times(0);
    let service = account_service_counting(
        users,
        hasher_answering(false),
        failures_expecting_one_failure_of(ada_key()),
    );

    let error = service
        .sign_in("ada@example.io", SIGN_IN_PASSWORD)
        .await
        .unwrap_err();

    assert!(
        matches!(error, DomainError::InvalidCredentials),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_unknown_email_counts_one_failure_like_a_known_one() {
    let service = account_service_counting(
        users_without_accounts(),
        hasher_expecting_no_hash(),
        failures_expecting_one_failure_of(ada_key()),
    );

    let error = service
        .sign_in("ada@example.io", SIGN_IN_PASSWORD)
        .await
        .unwrap_err();

    assert!(
        matches!(error, DomainError::InvalidCredentials),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_unparsable_email_counts_one_failure_under_what_was_typed() {
    let mut users = MockUserRepository::new();
    users.expect_find_credentials().times(0);
    let service = account_service_counting(
        users,
        hasher_expecting_no_hash(),
        failures_expecting_one_failure_of(SignInKey::from_typed("not an email")),
    );

    let error = service
        .sign_in(" Not An Email", SIGN_IN_PASSWORD)
        .await
        .unwrap_err();

    assert!(
        matches!(error, DomainError::InvalidCredentials),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_account_deleted_during_sign_in_counts_one_failure() {
    let mut users = users_knowing(UserId::generate());
    users
        .expect_record_sign_in()
        .return_once(|_, _| Err(DomainError::UserNotFound));
    let service = account_service_counting(
        users,
        hasher_answering(true),
        failures_expecting_one_failure_of(ada_key()),
    );

    let error = service
        .sign_in("ada@example.io", SIGN_IN_PASSWORD)
        .await
        .unwrap_err();

    assert!(
        matches!(error, DomainError::InvalidCredentials),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_success_clears_the_failures_and_counts_none() {
    let user_id = UserId::generate();
    let mut users = users_knowing(user_id);
    users
        .expect_record_sign_in()
        .returning(|id, _| Ok(sample_user(id)));
    let mut failures = MockSignInFailureRepository::new();
    failures.expect_blocked_until().returning(|_, _| Ok(None));
    failures.expect_record_failure().times(0);
    failures
        .expect_clear()
        .with(eq(ada_key()))
        .times(1)
        .returning(|_| Ok(()));

    let user = account_service_counting(users, hasher_answering(true), failures)
        .sign_in(" ADA@example.io", SIGN_IN_PASSWORD)
        .await
        .unwrap();

    assert_eq!(user.id, user_id);
}

#[tokio::test]
async fn storage_failure_while_checking_the_block_propagates_before_any_lookup_or_hash() {
    let mut users = MockUserRepository::new();
    users.expect_find_credentials().times(0);
    let mut hasher = MockPasswordHasher::new();
    hasher.expect_verify().times(0);
    let mut failures = MockSignInFailureRepository::new();
    failures
        .expect_blocked_until()
        .return_once(|_, _| Err(storage_down()));

    let error = account_service_counting(users, hasher, failures)
        .sign_in("ada@example.io", SIGN_IN_PASSWORD)
        .await
        .unwrap_err();

    assert_storage_down(&error);
}

#[tokio::test]
async fn storage_failure_while_counting_a_failure_propagates() {
    let mut failures = MockSignInFailureRepository::new();
    failures.expect_blocked_until().returning(|_, _| Ok(None));
    failures
        .expect_record_failure()
        .return_once(|_, _, _| Err(storage_down()));

    let error = account_service_counting(
        users_without_accounts(),
        hasher_expecting_no_hash(),
        failures,
    )
    .sign_in("ada@example.io", SIGN_IN_PASSWORD)
    .await
    .unwrap_err();

    assert_storage_down(&error);
}

#[tokio::test]
async fn storage_failure_while_clearing_after_a_success_propagates() {
    let mut users = users_knowing(UserId::generate());
    users
        .expect_record_sign_in()
        .returning(|id, _| Ok(sample_user(id)));
    let mut failures = MockSignInFailureRepository::new();
    failures.expect_blocked_until().returning(|_, _| Ok(None));
    failures.expect_clear().return_once(|_| Err(storage_down()));

    let error = account_service_counting(users, hasher_answering(true), failures)
        .sign_in("ada@example.io", SIGN_IN_PASSWORD)
        .await
        .unwrap_err();

    assert_storage_down(&error);
}

#[tokio::test]
async fn a_hasher_failure_counts_no_failure() {
    let mut users = users_knowing(UserId::generate());
    users.expect_record_sign_in().times(0);
    let mut hasher = MockPasswordHasher::new();
    hasher
        .expect_verify()
        .return_once(|_, _| Err(DomainError::Unexpected("hasher broke".into())));
    let mut failures = MockSignInFailureRepository::new();
    failures.expect_blocked_until().returning(|_, _| Ok(None));
    failures.expect_record_failure().times(0);
    failures.expect_clear().times(0);

    let error = account_service_counting(users, hasher, failures)
        .sign_in("ada@example.io", SIGN_IN_PASSWORD)
        .await
        .unwrap_err();

    assert!(matches!(error, DomainError::Unexpected(_)), "{error:?}");
}

#[tokio::test]
async fn expired_failures_are_forgotten_as_of_the_clock_time() {
    let mut failures = MockSignInFailureRepository::new();
    failures
        .expect_forget_expired()
        .with(eq(clock_time()))
        .times(1)
        .returning(|_| Ok(3));

    let forgotten = account_service_counting(
        MockUserRepository::new(),
        MockPasswordHasher::new(),
        failures,
    )
    .forget_expired_sign_in_failures()
    .await
    .unwrap();

    assert_eq!(forgotten, 3);
}
