use std::sync::Arc;

use crate::ports::IdentityRepository;
use crate::{
    Clock, DomainError, Email, ExternalIdentity, NewExternalUser, Provisioned, User, UserId,
};

/// Users who sign in at an external identity provider: each verified token
/// is resolved to one of our users, who is created on first sight.
pub struct IdentityService {
    identities: Arc<dyn IdentityRepository>,
    clock: Arc<dyn Clock>,
}

impl IdentityService {
    /// Builds the service over its ports.
    #[must_use]
    pub fn new(identities: Arc<dyn IdentityRepository>, clock: Arc<dyn Clock>) -> Self {
        Self { identities, clock }
    }

    /// The user an external identity stands for, created (with `email`)
    /// the first time the identity is seen. The identity was taken from a
    /// verified token; `email` is what that token says now, and replaces
    /// the stored one when it changed at the provider.
    ///
    /// Racing first requests of one identity both try to create a user;
    /// storage lets one win, and the loser reads the winner's user, so
    /// every request gets the same id.
    ///
    /// # Errors
    /// `UserNotFound` when the linked user was deleted while this ran (the
    /// next request provisions afresh); `Unavailable` or `Unexpected` from
    /// storage.
    pub async fn resolve(
        &self,
        identity: ExternalIdentity,
        email: Email,
    ) -> Result<User, DomainError> {
        if let Some(user) = self.identities.find_user(&identity).await? {
            return self.with_current_email(user, &email).await;
        }
        let new_user = NewExternalUser {
            id: UserId::generate(),
            identity,
            email,
            created_at: self.clock.now(),
        };
        match self.identities.insert_linked_user(&new_user).await? {
            Provisioned::Created(user) => Ok(user),
            Provisioned::AlreadyLinked => {
                let winner = self
                    .identities
                    .find_user(&new_user.identity)
                    .await?
                    .ok_or(DomainError::UserNotFound)?;
                self.with_current_email(winner, &new_user.email).await
            }
        }
    }

    async fn with_current_email(&self, user: User, email: &Email) -> Result<User, DomainError> {
        if user.email == *email {
            Ok(user)
        } else {
            self.identities.update_email(user.id, email).await
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use mockall::Sequence;
    use mockall::predicate::eq;
    use time::macros::datetime;

    use super::*;
    use crate::Timestamp;
    use crate::clock::MockClock;
    use crate::ports::MockIdentityRepository;

    fn clock_time() -> Timestamp {
        Timestamp::from_datetime(datetime!(2031-03-14 15:09:26.535897 UTC))
    }

    fn service(identities: MockIdentityRepository) -> IdentityService {
        let mut clock = MockClock::new();
        clock.expect_now().return_const(clock_time());
        IdentityService::new(Arc::new(identities), Arc::new(clock))
    }

    fn identity() -> ExternalIdentity {
        ExternalIdentity::new(
            "https://auth.example.io",
            "q2T9xLk0aPz8wR4mN6bV1cY3dF5gH7jK",
        )
        .unwrap()
    }

    fn email(raw: &str) -> Email {
        Email::parse(raw).unwrap()
    }

    fn stored_user(id: UserId, address: &str) -> User {
        User {
            id,
            email: email(address),
            created_at: Timestamp::from_datetime(datetime!(2030-01-01 08:00 UTC)),
            last_signin_at: None,
        }
    }

    fn storage_down() -> DomainError {
        DomainError::Unavailable("connection refused".into())
    }

    #[tokio::test]
    async fn a_known_identity_with_an_unchanged_email_is_its_user_without_writes() {
        let user = stored_user(UserId::generate(), "ada@example.io");
        let answer = user.clone();
        let mut identities = MockIdentityRepository::new();
        identities
            .expect_find_user()
            .with(eq(identity()))
            .times(1)
            .return_once(move |_| Ok(Some(answer)));
        identities.expect_insert_linked_user().times(0);
        identities.expect_update_email().times(0);

        let resolved = service(identities)
            .resolve(identity(), email("ada@example.io"))
            .await
            .unwrap();

        assert_eq!(resolved, user);
    }

    #[tokio::test]
    async fn a_known_identity_with_a_new_email_gets_it_stored() {
        let id = UserId::generate();
        let mut identities = MockIdentityRepository::new();
        identities
            .expect_find_user()
            .return_once(move |_| Ok(Some(stored_user(id, "old@example.io"))));
        identities
            .expect_update_email()
            .with(eq(id), eq(email("new@example.io")))
            .times(1)
            .returning(|id, _| Ok(stored_user(id, "new@example.io")));

        let resolved = service(identities)
            .resolve(identity(), email("new@example.io"))
            .await
            .unwrap();

        assert_eq!(resolved.email.as_str(), "new@example.io");
        assert_eq!(resolved.id, id);
    }

    #[tokio::test]
    async fn an_unknown_identity_is_provisioned_with_a_fresh_id_the_email_and_the_clock_time() {
        let inserted: Arc<Mutex<Option<NewExternalUser>>> = Arc::default();
        let record = inserted.clone();
        let mut order = Sequence::new();
        let mut identities = MockIdentityRepository::new();
        identities
            .expect_find_user()
            .times(1)
            .in_sequence(&mut order)
            .returning(|_| Ok(None));
        identities
            .expect_insert_linked_user()
            .times(1)
            .in_sequence(&mut order)
            .returning(move |new_user| {
                *record.lock().unwrap() = Some(new_user.clone());
                Ok(Provisioned::Created(User {
                    id: new_user.id,
                    email: new_user.email.clone(),
                    created_at: new_user.created_at,
                    last_signin_at: None,
                }))
            });

        let resolved = service(identities)
            .resolve(identity(), email("ada@example.io"))
            .await
            .unwrap();

        let new_user = inserted.lock().unwrap().clone().unwrap();
        assert_eq!(new_user.identity, identity());
        assert_eq!(new_user.email, email("ada@example.io"));
        assert_eq!(new_user.created_at, clock_time());
        assert_eq!(new_user.id.as_uuid().get_version_num(), 7);
        assert_eq!(resolved.id, new_user.id);
    }

    #[tokio::test]
    async fn losing_the_provisioning_race_answers_the_winners_user() {
        let winner = stored_user(UserId::generate(), "ada@example.io");
        let answer = winner.clone();
        let mut order = Sequence::new();
        let mut identities = MockIdentityRepository::new();
        identities
            .expect_find_user()
            .times(1)
            .in_sequence(&mut order)
            .returning(|_| Ok(None));
        identities
            .expect_insert_linked_user()
            .times(1)
            .in_sequence(&mut order)
            .returning(|_| Ok(Provisioned::AlreadyLinked));
        identities
            .expect_find_user()
            .with(eq(identity()))
            .times(1)
            .in_sequence(&mut order)
            .return_once(move |_| Ok(Some(answer)));
        identities.expect_update_email().times(0);

        let resolved = service(identities)
            .resolve(identity(), email("ada@example.io"))
            .await
            .unwrap();

        assert_eq!(resolved, winner);
    }

    #[tokio::test]
    async fn a_winner_deleted_before_it_could_be_read_is_user_not_found() {
        let mut identities = MockIdentityRepository::new();
        identities
            .expect_find_user()
            .times(2)
            .returning(|_| Ok(None));
        identities
            .expect_insert_linked_user()
            .returning(|_| Ok(Provisioned::AlreadyLinked));

        let error = service(identities)
            .resolve(identity(), email("ada@example.io"))
            .await
            .unwrap_err();

        assert!(matches!(error, DomainError::UserNotFound), "{error:?}");
    }

    #[tokio::test]
    async fn storage_failure_while_looking_up_propagates_and_creates_nothing() {
        let mut identities = MockIdentityRepository::new();
        identities
            .expect_find_user()
            .return_once(|_| Err(storage_down()));
        identities.expect_insert_linked_user().times(0);

        let error = service(identities)
            .resolve(identity(), email("ada@example.io"))
            .await
            .unwrap_err();

        assert!(matches!(error, DomainError::Unavailable(_)), "{error:?}");
    }

    #[tokio::test]
    async fn storage_failure_while_provisioning_propagates() {
        let mut identities = MockIdentityRepository::new();
        identities.expect_find_user().returning(|_| Ok(None));
        identities
            .expect_insert_linked_user()
            .return_once(|_| Err(storage_down()));

        let error = service(identities)
            .resolve(identity(), email("ada@example.io"))
            .await
            .unwrap_err();

        assert!(matches!(error, DomainError::Unavailable(_)), "{error:?}");
    }
}
