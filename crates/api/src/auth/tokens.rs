use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use todo_domain::{User, UserId};

/// How far in the future an `iat` may lie: the clocks of two instances
/// behind one load balancer may disagree by this much.
pub const CLOCK_SKEW_SECONDS: i64 = 60;

/// The claims of the tokens this service issues.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    email: String,
    iat: i64,
    exp: i64,
    iss: String,
}

/// A freshly signed token and its lifetime in seconds.
#[derive(Debug)]
pub struct IssuedToken {
    /// The compact JWT.
    pub access_token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// Signs and verifies HS256 tokens with the configured secret and issuer.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    lifetime: Duration,
}

impl TokenKeys {
    /// Keys from a secret (already checked to be at least 32 bytes).
    #[must_use]
    pub fn new(secret: &SecretString, issuer: String, lifetime: Duration) -> Self {
        let secret = secret.expose_secret().as_bytes();
        // Pinning the algorithm is what rejects `none`, RS256 and every other
        // header a forger might choose.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 0;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer,
            lifetime,
        }
    }

    /// Signs a token for `user`.
    ///
    /// # Errors
    /// Only if signing itself fails, which HS256 with a valid key does not.
    pub fn issue(&self, user: &User) -> Result<IssuedToken, jsonwebtoken::errors::Error> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let lifetime = self.lifetime.as_secs();
        let claims = Claims {
            sub: user.id.to_string(),
            email: user.email.as_str().to_owned(),
            iat: now,
            exp: now.saturating_add_unsigned(lifetime),
            iss: self.issuer.clone(),
        };
        let access_token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok(IssuedToken {
            access_token,
            expires_in: lifetime,
        })
    }

    /// The user a token speaks for, if the token is genuine, unexpired,
    /// ours, and names a user id. Why it failed is deliberately not told.
    ///
    /// Beyond the signature, a token must also look like one we issue: an
    /// `iat` no later than now (give or take [`CLOCK_SKEW_SECONDS`] between
    /// instances), and a lifetime `exp - iat` no longer than the configured
    /// TTL. So a token minted with a leaked secret and a far-future `exp`
    /// is still refused, and lowering `JWT_TTL_SECONDS` also retires
    /// outstanding tokens that were issued for longer.
    #[must_use]
    pub fn verify(&self, token: &str) -> Option<UserId> {
        self.verify_claims(token).map(|verified| verified.user_id)
    }

    /// As [`Self::verify`], also telling when the token expires.
    #[must_use]
    pub fn verify_claims(&self, token: &str) -> Option<VerifiedToken> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).ok()?;
        let claims = data.claims;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let lifetime = i64::try_from(self.lifetime.as_secs()).unwrap_or(i64::MAX);
        let issued_in_the_future = claims.iat > now.saturating_add(CLOCK_SKEW_SECONDS);
        let lives_too_long = claims.exp.saturating_sub(claims.iat) > lifetime;
        if issued_in_the_future || lives_too_long {
            return None;
        }
        let user_id = UserId::parse(&claims.sub).ok()?;
        Some(VerifiedToken {
            user_id,
            expires_at: claims.exp,
        })
    }
}

/// What a genuine token of ours says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The user it speaks for.
    pub user_id: UserId,
    /// Its `exp`, in Unix seconds: valid while the clock reads no later.
    pub expires_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use todo_domain::{Email, Timestamp};

    const SECRET: &str = "a-test-secret-of-at-least-32-bytes!!";

    fn keys(issuer: &str, lifetime: Duration) -> TokenKeys {
        TokenKeys::new(&SecretString::from(SECRET), issuer.to_owned(), lifetime)
    }

    fn user() -> User {
        User {
            id: UserId::generate(),
            email: Email::parse("a@b.io").unwrap(),
            created_at: Timestamp::now(),
            last_signin_at: None,
        }
    }

    #[test]
    fn an_issued_token_verifies_to_its_user() {
        let keys = keys("todo-api", Duration::from_secs(60));
        let user = user();
        let token = keys.issue(&user).unwrap();
        assert_eq!(keys.verify(&token.access_token), Some(user.id));
        assert_eq!(token.expires_in, 60);
    }

    #[test]
    fn a_token_of_another_issuer_is_rejected() {
        let token = keys("someone-else", Duration::from_secs(60))
            .issue(&user())
            .unwrap();
        assert_eq!(
            keys("todo-api", Duration::from_secs(60)).verify(&token.access_token),
            None
        );
    }

    #[test]
    fn an_expired_token_is_rejected() {
        let keys = keys("todo-api", Duration::ZERO);
        let token = keys.issue(&user()).unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(keys.verify(&token.access_token), None);
    }

    fn signed(claims: &serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    fn now() -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    #[test]
    fn a_lifetime_longer_than_the_ttl_is_rejected_even_with_our_signature() {
        let keys = keys("todo-api", Duration::from_secs(60));
        let sub = UserId::generate().to_string();
        let claims = |iat: i64, exp: i64| serde_json::json!({"sub": sub, "email": "a@b.io", "iat": iat, "exp": exp, "iss": "todo-api"});
        assert!(keys.verify(&signed(&claims(now(), now() + 60))).is_some());
        assert_eq!(keys.verify(&signed(&claims(now(), now() + 61))), None);
        // Year 2200.
        assert_eq!(keys.verify(&signed(&claims(now(), 7_258_118_400))), None);
    }

    #[test]
    fn an_iat_in_the_future_or_missing_is_rejected() {
        let keys = keys("todo-api", Duration::from_secs(3600));
        let sub = UserId::generate().to_string();
        let later = now() + CLOCK_SKEW_SECONDS + 5;
        let future = serde_json::json!({"sub": sub, "email": "a@b.io", "iat": later, "exp": later + 60, "iss": "todo-api"});
        assert_eq!(keys.verify(&signed(&future)), None);
        let skewed = serde_json::json!({"sub": sub, "email": "a@b.io", "iat": now() + 30, "exp": now() + 90, "iss": "todo-api"});
        assert!(keys.verify(&signed(&skewed)).is_some());
        let missing = serde_json::json!({"sub": sub, "email": "a@b.io", "exp": now() + 60, "iss": "todo-api"});
        assert_eq!(keys.verify(&signed(&missing)), None);
    }

    #[test]
    fn a_token_with_trailing_garbage_is_rejected() {
        let keys = keys("todo-api", Duration::from_secs(60));
        let token = keys.issue(&user()).unwrap();
        assert_eq!(keys.verify(&format!("{}x", token.access_token)), None);
    }
}
