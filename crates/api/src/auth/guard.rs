use std::sync::Arc;
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{AUTHORIZATION, HeaderMap};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, ResponseError, web};
use futures_util::future::{Ready, ready};
use moka::sync::Cache;
use todo_domain::{AccountService, DomainError, Email, IdentityService, UserId};

use super::external::ExternalTokens;
use super::{TokenKeys, VerifiedToken};
use crate::error::ApiError;

/// How long a user id, once seen in the database, is trusted without asking
/// again. Accounts are never deleted through the API, so this only bounds
/// how long a user removed by an operator keeps access.
const KNOWN_USER_TTL: Duration = Duration::from_secs(60);
/// Bounds the cache's memory: about 100 bytes an entry.
const KNOWN_USER_CAPACITY: u64 = 100_000;
/// Bounds the verified-token cache: about 400 bytes an entry, so 4 MB.
const VERIFIED_TOKEN_CAPACITY: u64 = 10_000;

/// Checks bearer tokens and that the user they name still exists.
pub struct Authenticator {
    keys: Arc<TokenKeys>,
    accounts: Arc<AccountService>,
    /// Users found in the database recently. Only hits are cached: a forged
    /// token with a random `sub` reaches the database every time and fails.
    known_users: Cache<UserId, ()>,
    /// Our own tokens that passed verification and whose user was found,
    /// for as long as `KNOWN_USER_TTL`: the same token on the next request
    /// skips the signature check, its base64 and its JSON, which were an
    /// eighth of the server's work on a `GET`. Keyed by the whole token, so
    /// a hit is exactly as strong as a verification; `exp` is still checked
    /// on every hit. Only genuine tokens get in, so junk cannot fill it.
    verified_tokens: Cache<String, VerifiedToken>,
    /// Tokens of the external identity provider, when one is configured.
    external: Option<ExternalAuthentication>,
}

/// The external provider's verifier and the users its identities map to.
struct ExternalAuthentication {
    tokens: ExternalTokens,
    identities: Arc<IdentityService>,
    /// Subject → our user and the email last stored, for identities
    /// resolved recently. A token whose email differs goes to the service,
    /// which stores the new one.
    known_identities: Cache<String, (UserId, Email)>,
}

impl ExternalAuthentication {
    async fn authenticate(&self, token: &str) -> Result<AuthenticatedUser, ApiError> {
        let verified = self.tokens.verify(token).await?;
        let expires_at = verified.expires_at;
        let caller = |user_id| AuthenticatedUser {
            user_id,
            expires_at,
        };
        let subject = verified.identity.subject().to_owned();
        if let Some((user_id, email)) = self.known_identities.get(&subject)
            && email == verified.email
        {
            return Ok(caller(user_id));
        }
        match self
            .identities
            .resolve(verified.identity, verified.email)
            .await
        {
            Ok(user) => {
                self.known_identities.insert(subject, (user.id, user.email));
                Ok(caller(user.id))
            }
            // Deleted while being resolved; the next request provisions
            // the identity afresh.
            Err(DomainError::UserNotFound) => Err(ApiError::InvalidToken),
            Err(other) => Err(other.into()),
        }
    }
}

impl Authenticator {
    /// A guard over the token keys and the account service.
    #[must_use]
    pub fn new(keys: Arc<TokenKeys>, accounts: Arc<AccountService>) -> Self {
        Self {
            keys,
            accounts,
            known_users: Cache::builder()
                .max_capacity(KNOWN_USER_CAPACITY)
                .time_to_live(KNOWN_USER_TTL)
                .build(),
            verified_tokens: Cache::builder()
                .max_capacity(VERIFIED_TOKEN_CAPACITY)
                .time_to_live(KNOWN_USER_TTL)
                .build(),
            external: None,
        }
    }

    /// Also accepts tokens of an external identity provider: those whose
    /// `iss` is the provider's are verified against its keys only, and the
    /// identity they prove is resolved to one of our users (created on
    /// first sight).
    #[must_use]
    pub fn with_external_tokens(
        mut self,
        tokens: ExternalTokens,
        identities: Arc<IdentityService>,
    ) -> Self {
        self.external = Some(ExternalAuthentication {
            tokens,
            identities,
            known_identities: Cache::builder()
                .max_capacity(KNOWN_USER_CAPACITY)
                .time_to_live(KNOWN_USER_TTL)
                .build(),
        });
        self
    }

    /// The caller named by the `Authorization` header.
    ///
    /// # Errors
    /// `NotAuthenticated` without a bearer header; `InvalidToken` for any
    /// token that fails verification or names a missing user;
    /// `AuthUnavailable` when an external token's key cannot be fetched; a
    /// storage error when the user lookup cannot be made.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<AuthenticatedUser, ApiError> {
        let token = bearer_token(headers)?;
        // The unverified `iss` picks the verifier, never the `alg` header:
        // a token naming the provider meets only the provider's keys, and
        // every other token only our HS256 key.
        if let Some(external) = &self.external
            && external.tokens.claims_issuer(token)
        {
            return external.authenticate(token).await;
        }
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        if let Some(seen) = self.verified_tokens.get(token)
            && seen.expires_at >= now
        {
            return Ok(AuthenticatedUser {
                user_id: seen.user_id,
                expires_at: seen.expires_at,
            });
        }
        let verified = self
            .keys
            .verify_claims(token)
            .ok_or(ApiError::InvalidToken)?;
        let user_id = verified.user_id;
        if !self.known_users.contains_key(&user_id) {
            match self.accounts.profile(user_id).await {
                Ok(_) => self.known_users.insert(user_id, ()),
                Err(DomainError::UserNotFound) => return Err(ApiError::InvalidToken),
                Err(other) => return Err(other.into()),
            }
        }
        self.verified_tokens.insert(token.to_owned(), verified);
        Ok(AuthenticatedUser {
            user_id,
            expires_at: verified.expires_at,
        })
    }
}

/// The token of an `Authorization: Bearer <token>` header. The scheme is
/// matched without regard to case, as HTTP auth schemes are.
fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers
        .get(AUTHORIZATION)
        .ok_or(ApiError::NotAuthenticated)?
        .as_bytes();
    let (scheme, token) = match value.iter().position(|byte| *byte == b' ') {
        Some(space) => (&value[..space], &value[space + 1..]),
        None => (value, &b""[..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(ApiError::NotAuthenticated);
    }
    // A JWT is ASCII; anything else in a Bearer header is not a token.
    let token = std::str::from_utf8(token)
        .map_err(|_| ApiError::InvalidToken)?
        .trim();
    if token.is_empty() || !token.is_ascii() {
        return Err(ApiError::InvalidToken);
    }
    Ok(token)
}

/// Middleware for every route that needs a caller.
///
/// Authentication runs here, before the handler's extractors, because the
/// contract puts 401 ahead of every malformed-request error: were it an
/// extractor, a path or body error could be reported first while the user
/// lookup is still pending. Failures are returned as responses, not errors,
/// so that the CORS middleware outside still decorates them.
pub async fn require_user(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let outcome = match request.app_data::<web::Data<Authenticator>>() {
        Some(authenticator) => authenticator.authenticate(request.headers()).await,
        None => Err(ApiError::Domain(DomainError::Unexpected(
            "the authenticator is not registered as app data".into(),
        ))),
    };
    match outcome {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.call(request)
                .await
                .map(ServiceResponse::map_into_left_body)
        }
        Err(error) => {
            let response = error.error_response();
            Ok(request.into_response(response).map_into_right_body())
        }
    }
}

/// The verified caller of a request that passed [`require_user`].
#[derive(Debug, Clone, Copy)]
pub struct AuthenticatedUser {
    /// The caller's id, from the verified token only.
    pub user_id: UserId,
    /// The token's `exp`, in Unix seconds: the caller is who they say until
    /// the clock passes it. A request is over long before; a live event
    /// stream ends then.
    pub expires_at: i64,
}

impl FromRequest for AuthenticatedUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Absent only on a route that was mounted without `require_user`;
        // refusing is the safe answer to that wiring mistake.
        ready(
            request
                .extensions()
                .get::<AuthenticatedUser>()
                .copied()
                .ok_or(ApiError::NotAuthenticated),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(authorization).unwrap());
        headers
    }

    #[test]
    fn a_missing_header_is_not_authenticated() {
        assert!(matches!(
            bearer_token(&HeaderMap::new()),
            Err(ApiError::NotAuthenticated)
        ));
    }

    #[test]
    fn another_scheme_is_not_authenticated() {
        assert!(matches!(
            bearer_token(&headers("Basic abc")),
            Err(ApiError::NotAuthenticated)
        ));
        assert!(matches!(
            bearer_token(&headers("Bearertoken")),
            Err(ApiError::NotAuthenticated)
        ));
    }

    #[test]
    fn the_scheme_ignores_case() {
        assert_eq!(bearer_token(&headers("bearer abc")).unwrap(), "abc");
        assert_eq!(bearer_token(&headers("BEARER abc")).unwrap(), "abc");
    }

    #[test]
    fn a_non_ascii_header_of_another_scheme_is_not_authenticated() {
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_bytes(b"Basic \xff\xfe").unwrap(),
        );
        assert!(matches!(
            bearer_token(&headers),
            Err(ApiError::NotAuthenticated)
        ));
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap(),
        );
        assert!(matches!(
            bearer_token(&headers),
            Err(ApiError::InvalidToken)
        ));
    }

    #[test]
    fn an_empty_token_is_invalid() {
        assert!(matches!(
            bearer_token(&headers("Bearer ")),
            Err(ApiError::InvalidToken)
        ));
    }
}
