use actix_web::{HttpResponse, web};
use todo_domain::{AccountService, Email, Password};

use crate::auth::{AuthenticatedUser, TokenKeys};
use crate::body::JsonBody;
use crate::dto::{AuthResponse, CredentialsRequest, UserResponse};
use crate::error::ApiError;

/// `POST /api/auth/signup`
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

/// `POST /api/auth/signin`
pub async fn sign_in(
    accounts: web::Data<AccountService>,
    keys: web::Data<TokenKeys>,
    JsonBody(body): JsonBody<CredentialsRequest>,
) -> Result<HttpResponse, ApiError> {
    let user = accounts.sign_in(&body.email, &body.password).await?;
    let token = keys.issue(&user).map_err(ApiError::TokenIssue)?;
    Ok(HttpResponse::Ok().json(AuthResponse::new(token, user)))
}

/// `GET /api/auth/me`
pub async fn me(
    caller: AuthenticatedUser,
    accounts: web::Data<AccountService>,
) -> Result<HttpResponse, ApiError> {
    let user = accounts.profile(caller.user_id).await?;
    Ok(HttpResponse::Ok().json(UserResponse::from(user)))
}
