//! Who is calling: token issue and verification, and the guard that turns
//! an `Authorization` header into the caller's [`UserId`].

mod guard;
mod tokens;

pub use guard::{AuthenticatedUser, Authenticator, require_user};
pub use tokens::{IssuedToken, TokenKeys};
