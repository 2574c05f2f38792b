//! The one place where every failure becomes an HTTP status, a stable `code`
//! and a `detail` a person can read.

use std::borrow::Cow;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use todo_domain::DomainError;

/// One field that failed to deserialize, for the 422 `errors` list.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The JSON path of the field (`title`, `.` for the whole body).
    pub field: String,
    /// What was wrong with it.
    pub message: String,
}

/// Every error the HTTP layer can answer with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A rule of the domain refused the request, or a port failed.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// No `Authorization: Bearer` header.
    #[error("not authenticated")]
    NotAuthenticated,
    /// The bearer token was not acceptable (whatever the reason).
    #[error("invalid token")]
    InvalidToken,
    /// No route has this path.
    #[error("no such route")]
    RouteNotFound,
    /// The path exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed {
        /// The value of the `Allow` header.
        allow: &'static str,
    },
    /// The body is larger than the limit.
    #[error("payload too large")]
    PayloadTooLarge,
    /// The body is not `application/json`.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// The body is not well-formed JSON of the expected shape.
    #[error("validation error: {detail}")]
    Validation {
        /// A summary for people.
        detail: String,
        /// The fields at fault.
        errors: Vec<FieldError>,
    },
    /// The `{id}` path segment is not a UUID.
    #[error("invalid task id")]
    InvalidTaskId,
    /// The database does not answer.
    #[error("not ready")]
    NotReady,
    /// A token could not be signed.
    #[error("token could not be issued")]
    TokenIssue(#[source] jsonwebtoken::errors::Error),
}

impl ApiError {
    /// Status, machine code and human detail: the single mapping (the
    /// API description is built from it too).
    pub(crate) fn parts(&self) -> (StatusCode, &'static str, Cow<'static, str>) {
        use DomainError as D;
        let (status, code, detail): (StatusCode, &'static str, Cow<'static, str>) = match self {
            Self::Domain(error) => match error {
                D::InvalidTitle(rule) => (
                    StatusCode::BAD_REQUEST,
                    "invalid_title",
                    rule.to_string().into(),
                ),
                D::InvalidDescription(rule) => (
                    StatusCode::BAD_REQUEST,
                    "invalid_description",
                    rule.to_string().into(),
                ),
                D::InvalidEmail(rule) => (
                    StatusCode::BAD_REQUEST,
                    "invalid_email",
                    rule.to_string().into(),
                ),
                D::WeakPassword(rule) => (
                    StatusCode::BAD_REQUEST,
                    "weak_password",
                    rule.to_string().into(),
                ),
                D::TaskNotFound => (
                    StatusCode::NOT_FOUND,
                    "task_not_found",
                    "Task not found".into(),
                ),
                D::Forbidden => (StatusCode::FORBIDDEN, "forbidden", "Forbidden".into()),
                // Only reachable when a verified token names a user that has
                // since been deleted.
                D::UserNotFound => (
                    StatusCode::UNAUTHORIZED,
                    "invalid_token",
                    "Invalid authentication credentials".into(),
                ),
                D::EmailTaken => (
                    StatusCode::CONFLICT,
                    "email_taken",
                    "Email already registered".into(),
                ),
                D::InvalidCredentials => (
                    StatusCode::UNAUTHORIZED,
                    "invalid_credentials",
                    "Invalid email or password".into(),
                ),
                D::Unavailable(_) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "service_unavailable",
                    "Service temporarily unavailable".into(),
                ),
                D::Unexpected(_) => internal(),
            },
            Self::NotAuthenticated => (
                StatusCode::UNAUTHORIZED,
                "not_authenticated",
                "Not authenticated".into(),
            ),
            Self::InvalidToken => (
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "Invalid authentication credentials".into(),
            ),
            Self::RouteNotFound => (StatusCode::NOT_FOUND, "not_found", "Not found".into()),
            Self::MethodNotAllowed { .. } => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed".into(),
            ),
            Self::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Request body is larger than 65536 bytes".into(),
            ),
            Self::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Request body must be application/json".into(),
            ),
            Self::Validation { detail, .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_error",
                detail.clone().into(),
            ),
            Self::InvalidTaskId => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_task_id",
                "Task id must be a UUID".into(),
            ),
            Self::NotReady => (
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "Database is not reachable".into(),
            ),
            Self::TokenIssue(_) => internal(),
        };
        (status, code, detail)
    }
}

fn internal() -> (StatusCode, &'static str, Cow<'static, str>) {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "Internal server error".into(),
    )
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    detail: &'a str,
    code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [FieldError]>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.parts().0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, code, detail) = self.parts();
        if status.is_server_error() {
            // The body stays generic; the cause chain is for operators only.
            tracing::error!(error = %ErrorChain(self), code, "request failed");
        }
        let errors = match self {
            Self::Validation { errors, .. } if !errors.is_empty() => Some(errors.as_slice()),
            _ => None,
        };
        let mut response = HttpResponse::build(status);
        // Every 401, a failed sign-in included, names the scheme to use.
        if status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if let Self::MethodNotAllowed { allow } = self {
            response.insert_header((header::ALLOW, *allow));
        }
        response.json(ErrorBody {
            detail: &detail,
            code,
            errors,
        })
    }
}

/// Displays an error followed by each of its sources.
struct ErrorChain<'a>(&'a dyn std::error::Error);

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}
