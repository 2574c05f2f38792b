//! The one place where every failure becomes an HTTP status, a stable `code`
//! and a `detail` a person can read.

use std::borrow::Cow;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::middleware::Next;
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
    /// A token of the external identity provider could not be checked: its
    /// key set cannot be fetched and no cached key fits.
    #[error("external token keys unavailable")]
    AuthUnavailable,
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
    /// An error answered by a framework component in its own format (a
    /// rejected CORS pre-flight, say), re-dressed in ours.
    #[error("{detail}")]
    Framework {
        /// The status the component chose.
        status: StatusCode,
        /// Its message, when it is short plain text.
        detail: String,
    },
    /// This client address made too many sign-ups or sign-ins lately.
    #[error("rate limited")]
    RateLimited {
        /// Whole seconds until the next attempt can succeed (at least 1);
        /// the value of the `Retry-After` header.
        retry_after_seconds: u64,
    },
    /// The client did not finish sending the body in time.
    #[error("request body timed out")]
    RequestTimeout,
    /// A query parameter of a list is unknown, repeated or has a bad value.
    #[error("invalid query: {detail}")]
    InvalidQuery {
        /// Names the parameter, never its value.
        detail: Cow<'static, str>,
    },
    /// A list cursor that is not one of ours, or not for this caller and
    /// this query.
    #[error("invalid cursor")]
    InvalidCursor,
    /// An `Idempotency-Key` header that breaks the key's rules.
    #[error("invalid idempotency key")]
    InvalidIdempotencyKey,
    /// The caller already has as many event streams open on this instance
    /// as one user may.
    #[error("too many streams")]
    TooManyStreams,
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
                D::InvalidDueAt(rule) => (
                    StatusCode::BAD_REQUEST,
                    "invalid_due_at",
                    format!("Due date {rule}").into(),
                ),
                D::InvalidPriority(rule) => (
                    StatusCode::BAD_REQUEST,
                    "invalid_priority",
                    rule.to_string().into(),
                ),
                D::InvalidLabels(rule) => (
                    StatusCode::BAD_REQUEST,
                    "invalid_labels",
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
                D::PreconditionFailed => (
                    StatusCode::PRECONDITION_FAILED,
                    "precondition_failed",
                    "The task has changed since the version If-Match names".into(),
                ),
                D::TaskLimitReached => (
                    StatusCode::CONFLICT,
                    "task_limit_reached",
                    "You have as many tasks as an account may hold".into(),
                ),
                D::IdempotencyKeyInUse => (
                    StatusCode::CONFLICT,
                    "idempotency_key_in_use",
                    "A request with this Idempotency-Key is still running; retry later".into(),
                ),
                D::IdempotencyKeyReused => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency_key_reused",
                    "This Idempotency-Key was used for a different request".into(),
                ),
                D::CursorExpired => (
                    StatusCode::GONE,
                    "cursor_expired",
                    "The cursor is older than the kept history of changes; read the feed again \
                     without `since`"
                        .into(),
                ),
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
                D::Busy { .. } => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    "Too many sign-ins and sign-ups are waiting; retry later".into(),
                ),
                // The same answer as the per-address limit: a client learns
                // that it must wait, not which limit it met, nor whether the
                // account exists.
                D::TooManyFailedSignIns { .. } => rate_limited(),
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
            Self::AuthUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "auth_unavailable",
                "Authentication service temporarily unavailable".into(),
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
            Self::Framework { status, detail } => {
                let code = match status.as_u16() {
                    401 => "not_authenticated",
                    403 => "forbidden",
                    404 => "not_found",
                    405 => "method_not_allowed",
                    408 => "request_timeout",
                    413 => "payload_too_large",
                    415 => "unsupported_media_type",
                    422 => "validation_error",
                    429 => "rate_limited",
                    503 => "service_unavailable",
                    500..=599 => return internal_with_status(*status),
                    _ => "bad_request",
                };
                (*status, code, detail.clone().into())
            }
            Self::RateLimited { .. } => rate_limited(),
            Self::RequestTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "Request body was not received in time".into(),
            ),
            Self::InvalidQuery { detail } => {
                (StatusCode::BAD_REQUEST, "invalid_query", detail.clone())
            }
            Self::InvalidCursor => (
                StatusCode::BAD_REQUEST,
                "invalid_cursor",
                "The cursor is not valid for this query".into(),
            ),
            Self::InvalidIdempotencyKey => (
                StatusCode::BAD_REQUEST,
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
            ),
            Self::TooManyStreams => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_streams",
                "At most 5 event streams may be open at once; close one first".into(),
            ),
        };
        (status, code, detail)
    }

    /// The value of the `Retry-After` header, for the errors that have one.
    pub(crate) fn retry_after_seconds(&self) -> Option<u64> {
        match self {
            Self::RateLimited {
                retry_after_seconds,
            } => Some(*retry_after_seconds),
            Self::Domain(
                DomainError::TooManyFailedSignIns { retry_after }
                | DomainError::Busy { retry_after },
            ) => Some(whole_seconds_at_least_one(*retry_after)),
            _ => None,
        }
    }
}

/// Rounded up, and never 0: "retry now" would be a lie.
fn whole_seconds_at_least_one(wait: std::time::Duration) -> u64 {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    seconds.max(1)
}

fn rate_limited() -> (StatusCode, &'static str, Cow<'static, str>) {
    (
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "Too many attempts; retry later".into(),
    )
}

fn internal_with_status(status: StatusCode) -> (StatusCode, &'static str, Cow<'static, str>) {
    (status, "internal_error", "Internal server error".into())
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
        // A refusal for load is expected under a burst, counted in the
        // metrics and in the request log; it has no cause to chase.
        let overloaded = matches!(self, Self::Domain(DomainError::Busy { .. }));
        if status.is_server_error() && !overloaded {
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
        if let Some(seconds) = self.retry_after_seconds() {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        // A client that stopped sending mid-body cannot be answered on the
        // same connection: the rest of its body would be read as a request.
        if matches!(self, Self::RequestTimeout) {
            response.force_close();
        }
        response.json(ErrorBody {
            detail: &detail,
            code,
            errors,
        })
    }
}

/// Middleware, outermost: any error response that is not already our JSON
/// (actix-cors answers a refused pre-flight with plain text, for one) gets
/// the contract's `{"detail", "code"}` body, so clients parse one format.
pub async fn json_error_bodies(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    // Holding a clone of the request across the call would break actix's
    // routing, which needs the request uniquely; errors returned as `Err`
    // (rather than as responses) are rendered by actix with their own
    // `ResponseError`, which for every error of ours is this mapping.
    let response = next.call(request).await?.map_into_boxed_body();
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return Ok(response);
    }
    let (request, response) = response.into_parts();
    let text = actix_web::body::to_bytes_limited(response.into_body(), 512)
        .await
        .ok()
        .and_then(Result::ok)
        .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
        .filter(|text| !text.trim().is_empty())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("Error").to_owned());
    let error = ApiError::Framework {
        status,
        detail: text.trim().to_owned(),
    };
    Ok(ServiceResponse::new(request, error.error_response()))
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn blocked_for(retry_after: Duration) -> ApiError {
        ApiError::Domain(DomainError::TooManyFailedSignIns { retry_after })
    }

    #[test]
    fn a_blocked_email_is_answered_like_any_rate_limit() {
        let blocked = blocked_for(Duration::from_secs(90)).parts();
        let per_address = ApiError::RateLimited {
            retry_after_seconds: 90,
        }
        .parts();
        assert_eq!(blocked, per_address);
        assert_eq!(blocked.0, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(blocked.1, "rate_limited");
    }

    #[test]
    fn a_blocked_email_says_when_to_retry_in_whole_seconds_rounded_up() {
        let response = blocked_for(Duration::from_millis(90_200)).error_response();
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "91");
        let response = blocked_for(Duration::ZERO).error_response();
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "1");
    }
}
