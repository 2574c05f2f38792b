//! Who is calling: token issue and verification (our HS256 tokens, and an
//! external provider's tokens checked against its JWKS), and the guard that
//! turns an `Authorization` header into the caller's [`UserId`].

mod external;
mod guard;
mod jwks;
mod tokens;

pub use external::ExternalTokens;
pub use guard::{AuthenticatedUser, Authenticator, require_user};
pub use jwks::{Jwks, spawn_refresher};
pub use tokens::{IssuedToken, TokenKeys, VerifiedToken};
