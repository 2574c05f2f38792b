use actix_web::{HttpResponse, web};
use todo_domain::{AccountService, Email, Password};

use crate::auth::{AuthenticatedUser, TokenKeys};
use crate::body::JsonBody;
use crate::dto::{AuthResponse, CredentialsRequest, UserResponse};
use crate::error::ApiError;
use crate::openapi::responses::{
    EmailTaken, InvalidCredentials, InvalidSignUp, MalformedBody, PayloadTooLarge, RateLimited,
    RequestTimeout, ServiceOrAuthUnavailable, ServiceUnavailableOrBusy, SignInRateLimited,
    Unauthenticated, UnsupportedMediaType,
};

/// Sign up
///
/// Creates an account and signs it in. Of several sign-ups racing for one
/// email, exactly one succeeds.
#[utoipa::path(
    post, path = "/api/auth/signup", tag = "auth",
    request_body(content = CredentialsRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Created and signed in.", body = AuthResponse),
        InvalidSignUp, EmailTaken, RequestTimeout, PayloadTooLarge, UnsupportedMediaType,
        MalformedBody, RateLimited, ServiceUnavailableOrBusy,
    ),
)]
pub async fn sign_up(
    accounts: web::Data<AccountService>,
    keys: web::Data<TokenKeys>,
    JsonBody(body): JsonBody<CredentialsRequest>,
) -> Result<HttpResponse, ApiError> {
    let email = Email::parse(&body.email).map_err(todo_domain::DomainError::from)?;
    let password = Password::parse(&body.password).map_err(todo_domain::DomainError::from)?;
    let user = accounts.sign_up(email, password).await?;
    let token = keys.issue(&user).map_err(ApiError::TokenIssue)?;
    Ok(HttpResponse::Created().json(AuthResponse::new(token, user)))
}

/// Sign in
///
/// The email is trimmed and lowercased as at sign-up. Records
/// `last_signin_at`. Failed sign-ins are limited per email as well as per
/// client address.
#[utoipa::path(
    post, path = "/api/auth/signin", tag = "auth",
    request_body(content = CredentialsRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Signed in.", body = AuthResponse),
        InvalidCredentials, RequestTimeout, PayloadTooLarge, UnsupportedMediaType,
        MalformedBody, SignInRateLimited, ServiceUnavailableOrBusy,
    ),
)]
pub async fn sign_in(
    accounts: web::Data<AccountService>,
    keys: web::Data<TokenKeys>,
    JsonBody(body): JsonBody<CredentialsRequest>,
) -> Result<HttpResponse, ApiError> {
    let user = accounts.sign_in(&body.email, &body.password).await?;
    let token = keys.issue(&user).map_err(ApiError::TokenIssue)?;
    Ok(HttpResponse::Ok().json(AuthResponse::new(token, user)))
}

/// The caller's profile
#[utoipa::path(
    get, path = "/api/auth/me", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller.", body = UserResponse),
        Unauthenticated, ServiceOrAuthUnavailable,
    ),
)]
pub async fn me(
    caller: AuthenticatedUser,
    accounts: web::Data<AccountService>,
) -> Result<HttpResponse, ApiError> {
    let user = accounts.profile(caller.user_id).await?;
    Ok(HttpResponse::Ok().json(UserResponse::from(user)))
}
