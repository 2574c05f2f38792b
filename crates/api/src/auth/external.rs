//! Tokens of the external identity provider: which tokens are its, and
//! whether one of them is genuine.

use std::sync::Arc;

use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use todo_domain::{Email, ExternalIdentity};

use super::jwks::{Jwks, KeyLookupError};
use crate::config::ExternalAuthSettings;
use crate::error::ApiError;

/// The algorithms a key of the provider can have (see `jwks`). A token
/// whose header names another one is refused before any key is looked up,
/// so a forged HS256 or `none` token never causes a JWKS fetch.
const ASYMMETRIC: [Algorithm; 4] = [
    Algorithm::EdDSA,
    Algorithm::ES256,
    Algorithm::RS256,
    Algorithm::PS256,
];

/// The claims read from a verified token. `exp`, `iss` and `aud` are
/// checked by the validation; every other claim of the provider (Better
/// Auth puts the whole user object there) is ignored.
#[derive(Deserialize)]
struct Claims {
    sub: String,
    email: Option<String>,
    /// Checked by the validation; kept so a live stream can end with it.
    exp: i64,
}

/// Only the issuer, read before verification to pick the verifier.
#[derive(Deserialize)]
struct IssuerOnly {
    iss: Option<String>,
}

/// What a genuine token of the provider says.
#[derive(Debug)]
pub struct VerifiedIdentity {
    /// The provider and its id for the person.
    pub identity: ExternalIdentity,
    /// The address in the token, normalised.
    pub email: Email,
    /// Its `exp`, in Unix seconds.
    pub expires_at: i64,
}

/// Why a token of the provider was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ExternalTokenError {
    /// Forged, expired, for another audience, signed with an unknown key,
    /// or without the claims this service needs.
    #[error("invalid external token")]
    Invalid,
    /// The key it names is not cached and the provider cannot be reached.
    #[error("external token keys unavailable")]
    Unavailable,
}

impl From<ExternalTokenError> for ApiError {
    fn from(error: ExternalTokenError) -> Self {
        match error {
            ExternalTokenError::Invalid => ApiError::InvalidToken,
            ExternalTokenError::Unavailable => ApiError::AuthUnavailable,
        }
    }
}

/// Verifies tokens of one external issuer against its JWKS.
pub struct ExternalTokens {
    issuer: String,
    jwks: Arc<Jwks>,
    /// Issuer, audience and required claims; the algorithm is set per key.
    validation: Validation,
}

impl ExternalTokens {
    /// A verifier for the configured issuer and audience over `jwks`.
    #[must_use]
    pub fn new(settings: &ExternalAuthSettings, jwks: Arc<Jwks>) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Expired means expired, as for our own tokens; the provider's
        // tokens live 15 minutes, so clock skew of seconds is immaterial.
        validation.leeway = 0;
        validation.validate_nbf = true;
        Self {
            issuer: settings.issuer.clone(),
            jwks,
            validation,
        }
    }

    /// Whether `token` claims to come from this issuer. The claim is read
    /// without verification and only decides which verifier runs: such a
    /// token is then checked against the provider's keys only, and any
    /// other token against our own key only.
    #[must_use]
    pub fn claims_issuer(&self, token: &str) -> bool {
        jsonwebtoken::dangerous::insecure_decode_claims::<IssuerOnly>(token)
            .is_ok_and(|claims| claims.iss.as_deref() == Some(self.issuer.as_str()))
    }

    /// The identity a token of this issuer proves.
    ///
    /// # Errors
    /// `Invalid` for any token that fails a check; `Unavailable` when the
    /// key it names cannot be known because the JWKS cannot be fetched.
    pub async fn verify(&self, token: &str) -> Result<VerifiedIdentity, ExternalTokenError> {
        // The header decides nothing but which key to fetch: the key's own
        // algorithm is the only one allowed, whatever the header says.
        let header = jsonwebtoken::decode_header(token).map_err(|_| ExternalTokenError::Invalid)?;
        if !ASYMMETRIC.contains(&header.alg) {
            return Err(ExternalTokenError::Invalid);
        }
        let kid = header.kid.ok_or(ExternalTokenError::Invalid)?;
        let key = self.jwks.key(&kid).await.map_err(|error| match error {
            KeyLookupError::Unknown => ExternalTokenError::Invalid,
            KeyLookupError::Unavailable => ExternalTokenError::Unavailable,
        })?;
        let mut validation = self.validation.clone();
        validation.algorithms = vec![key.algorithm];
        let claims = jsonwebtoken::decode::<Claims>(token, &key.key, &validation)
            .map_err(|_| ExternalTokenError::Invalid)?
            .claims;
        let identity = ExternalIdentity::new(&self.issuer, &claims.sub)
            .map_err(|_| ExternalTokenError::Invalid)?;
        // Our users all have an address; a token without a plausible one
        // cannot name a user here.
        let email = claims
            .email
            .as_deref()
            .and_then(|raw| Email::parse(raw).ok())
            .ok_or(ExternalTokenError::Invalid)?;
        Ok(VerifiedIdentity {
            identity,
            email,
            expires_at: claims.exp,
        })
    }
}
