//! Reusable error responses. Each is built from sample [`ApiError`]s, so
//! the status, the `code` values and the example `detail`s in the document
//! come from the single mapping in `error.rs` and cannot drift from it.
//! The `code` property of each response is an `enum` of exactly the codes
//! that response can carry, so a client can branch on it and a fuzzer can
//! hold the server to it.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use serde_json::json;
use todo_domain::{
    DomainError, EmailError, InstantError, LabelsError, PasswordError, PriorityError,
    TaskDescriptionError, TaskTitleError,
};
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Ref, Type};
use utoipa::openapi::{RefOr, Schema};

use crate::error::ApiError;

/// Declares one response type per entry: a unit struct that a handler's
/// `#[utoipa::path(responses(...))]` names, and that the document lists
/// once under `components/responses`.
macro_rules! error_responses {
    ($($(#[$doc:meta])* $name:ident: $description:literal => [$($sample:expr),+ $(,)?];)+) => {
        $(
            $(#[$doc])*
            pub struct $name;

            impl utoipa::IntoResponses for $name {
                fn responses() -> BTreeMap<String, RefOr<Response>> {
                    let samples = [$($sample),+];
                    BTreeMap::from([(
                        status_of(&samples).as_str().to_owned(),
                        RefOr::Ref(Ref::from_response_name(stringify!($name))),
                    )])
                }
            }

            impl utoipa::ToResponse<'static> for $name {
                fn response() -> (&'static str, RefOr<Response>) {
                    (stringify!($name), RefOr::T(build($description, &[$($sample),+])))
                }
            }
        )+

        /// Every error response: its component name and its samples.
        #[cfg(test)]
        pub(crate) fn catalogue() -> Vec<(&'static str, Vec<ApiError>)> {
            vec![$((stringify!($name), vec![$($sample),+])),+]
        }
    };
}

error_responses! {
    /// 401 on every route that needs a caller.
    Unauthenticated: "No `Authorization: Bearer` header (`not_authenticated`), or a token that is \
        malformed, forged, expired, of another issuer, or of a user that no longer exists \
        (`invalid_token`). Carries `WWW-Authenticate: Bearer`." => [
        ApiError::NotAuthenticated,
        ApiError::InvalidToken,
    ];
    /// 401 of a failed sign-in.
    InvalidCredentials: "Unknown email or wrong password; the two are not told apart. \
        Carries `WWW-Authenticate: Bearer`." => [
        ApiError::Domain(DomainError::InvalidCredentials),
    ];
    /// 400 of a sign-up that breaks a rule.
    InvalidSignUp: "The email is not a plausible address, or the password is too short or too long." => [
        ApiError::Domain(EmailError::Malformed.into()),
        ApiError::Domain(EmailError::TooLong.into()),
        ApiError::Domain(PasswordError::TooShort.into()),
        ApiError::Domain(PasswordError::TooLong.into()),
    ];
    /// 400 of a task body that breaks a rule.
    InvalidTask: "A field breaks its rule: the title is empty after trimming, too long, or \
        contains U+0000 (`invalid_title`; a `null` title too); the description is too long or \
        contains U+0000 (`invalid_description`); `due_at` is not an RFC 3339 instant with \
        seconds and an offset in the years 1 to 9999 (`invalid_due_at`); `priority` is not one \
        of the four words (`invalid_priority`); a label is empty, too long or holds a control \
        character, or there are more than 20 (`invalid_labels`)." => [
        ApiError::Domain(TaskTitleError::Empty.into()),
        ApiError::Domain(TaskTitleError::TooLong.into()),
        ApiError::Domain(TaskTitleError::ContainsNul.into()),
        ApiError::Domain(TaskDescriptionError::TooLong.into()),
        ApiError::Domain(TaskDescriptionError::ContainsNul.into()),
        ApiError::Domain(DomainError::InvalidDueAt(InstantError)),
        ApiError::Domain(PriorityError.into()),
        ApiError::Domain(LabelsError::Empty.into()),
        ApiError::Domain(LabelsError::TooLong.into()),
        ApiError::Domain(LabelsError::ControlCharacter.into()),
        ApiError::Domain(LabelsError::TooMany.into()),
    ];
    /// 400 of a creation: a field's rule, or the `Idempotency-Key`.
    InvalidNewTask: "A field breaks its rule (`invalid_title`, `invalid_description`, \
        `invalid_due_at`, `invalid_priority`, `invalid_labels`, as for a replacement), or the \
        `Idempotency-Key` is not 1 to 255 visible ASCII characters \
        (`invalid_idempotency_key`)." => [
        ApiError::Domain(TaskTitleError::Empty.into()),
        ApiError::Domain(TaskDescriptionError::TooLong.into()),
        ApiError::Domain(DomainError::InvalidDueAt(InstantError)),
        ApiError::Domain(PriorityError.into()),
        ApiError::Domain(LabelsError::TooMany.into()),
        ApiError::InvalidIdempotencyKey,
    ];
    /// 400 of a bad `Idempotency-Key`.
    InvalidIdempotencyKey: "The `Idempotency-Key` is not 1 to 255 visible ASCII characters, \
        or is sent more than once." => [
        ApiError::InvalidIdempotencyKey,
    ];
    /// 400 of a list query.
    InvalidListQuery: "A query parameter is unknown, given twice (only `label` may repeat), or \
        has a bad value; `detail` names it, never its value (`invalid_query`). Or the cursor is \
        not one this service wrote for this caller and these filters, `sort` and `order` \
        (`invalid_cursor`)." => [
        ApiError::InvalidQuery { detail: "Query parameter `limit` must be a whole number from 1 to 100".into() },
        ApiError::InvalidCursor,
    ];
    /// 400 of the changes feed.
    InvalidChangesQuery: "A query parameter other than `since`, or `since` given twice; \
        `detail` names it, never its value (`invalid_query`). Or `since` is not a cursor this \
        service wrote for this caller's feed (`invalid_cursor`)." => [
        ApiError::InvalidQuery { detail: "Unknown query parameter `limit`".into() },
        ApiError::InvalidCursor,
    ];
    /// 410 of the changes feed.
    CursorExpired: "`since` is older than the kept history: a deletion after it has been \
        forgotten (deletions are kept `CHANGES_RETENTION_DAYS`, 30 by default). Read the feed \
        again without `since` and replace what the client holds (`cursor_expired`)." => [
        ApiError::Domain(DomainError::CursorExpired),
    ];
    /// 429 of the event stream.
    TooManyStreams: "The caller already has 5 event streams open on this instance \
        (`too_many_streams`). Close one and connect again." => [
        ApiError::TooManyStreams,
    ];
    /// 400 of clearing completed tasks.
    InvalidClearQuery: "The query is not exactly `completed=true`; nothing was deleted." => [
        ApiError::InvalidQuery { detail: "Query parameter `completed` is required: DELETE /api/tasks clears completed tasks only with `completed=true`".into() },
    ];
    /// 412 of a conditional write.
    PreconditionFailed: "`If-Match` names none of the task's current `ETag`: the task changed \
        since it was read. Nothing was written; read it again." => [
        ApiError::Domain(DomainError::PreconditionFailed),
    ];
    /// 409 of a creation.
    CreateConflict: "The caller already has `MAX_TASKS_PER_USER` tasks (`task_limit_reached`), \
        or a request with this `Idempotency-Key` is still running (`idempotency_key_in_use`; \
        retry later)." => [
        ApiError::Domain(DomainError::TaskLimitReached),
        ApiError::Domain(DomainError::IdempotencyKeyInUse),
    ];
    /// 409 of a retry-safe request whose key is held.
    KeyInUse: "A request with this `Idempotency-Key` is still running; retry later." => [
        ApiError::Domain(DomainError::IdempotencyKeyInUse),
    ];
    /// 403: the task is someone else's.
    Forbidden: "The task belongs to another user." => [
        ApiError::Domain(DomainError::Forbidden),
    ];
    /// 404: no task has this id.
    TaskNotFound: "No task has this id (or it was deleted)." => [
        ApiError::Domain(DomainError::TaskNotFound),
    ];
    /// 409: the email is registered already.
    EmailTaken: "Another account uses this email (after trimming and lowercasing)." => [
        ApiError::Domain(DomainError::EmailTaken),
    ];
    /// 413 of an oversized body.
    PayloadTooLarge: "The body is larger than 65,536 bytes as received (chunked uploads included)." => [
        ApiError::PayloadTooLarge,
    ];
    /// 415 of a body that is not JSON.
    UnsupportedMediaType: "The body is not `application/json` (parameters such as \
        `; charset=utf-8` are fine; `text/json` is not)." => [
        ApiError::UnsupportedMediaType,
    ];
    /// 415 of a merge patch that is not JSON.
    UnsupportedPatchType: "The body is neither `application/merge-patch+json` nor \
        `application/json` (parameters such as `; charset=utf-8` are fine)." => [
        ApiError::UnsupportedMediaType,
    ];
    /// 422 of a malformed body.
    MalformedBody: "The body is not UTF-8, not JSON, or not of the expected shape (a missing \
        field, a wrong type). `errors` names the field at fault." => [
        malformed_body_sample(),
    ];
    /// 422 of a bad `{id}` segment.
    InvalidTaskId: "The `{id}` path segment is not a hyphenated UUID." => [
        ApiError::InvalidTaskId,
    ];
    /// 422 of a route with both an `{id}` and a body.
    MalformedBodyOrTaskId: "The `{id}` path segment is not a hyphenated UUID \
        (`invalid_task_id`), or the body is malformed (`validation_error`, with `errors`)." => [
        ApiError::InvalidTaskId,
        malformed_body_sample(),
    ];
    /// 422 of a creation.
    MalformedCreate: "The body is malformed (`validation_error`, with `errors`), or the \
        `Idempotency-Key` was used for another request (`idempotency_key_reused`)." => [
        malformed_body_sample(),
        ApiError::Domain(DomainError::IdempotencyKeyReused),
    ];
    /// 422 of the completion route.
    MalformedRetryOrTaskId: "The `{id}` path segment is not a hyphenated UUID \
        (`invalid_task_id`), the body is malformed (`validation_error`, with `errors`), or the \
        `Idempotency-Key` was used for another request (`idempotency_key_reused`)." => [
        ApiError::InvalidTaskId,
        malformed_body_sample(),
        ApiError::Domain(DomainError::IdempotencyKeyReused),
    ];
    /// 503 of sign-up and sign-in: the database, or the hasher's queue.
    ServiceUnavailableOrBusy: "The database cannot be reached right now \
        (`service_unavailable`), or too many sign-ups and sign-ins are already waiting for \
        the password hasher (`busy`: more than `PASSWORD_HASH_QUEUE` of them wait, or this \
        one got no turn within `PASSWORD_HASH_WAIT_SECONDS`). A `busy` answer carries \
        `Retry-After`. Either way, retry later." => [
        ApiError::Domain(DomainError::Unavailable("the database is unreachable".into())),
        ApiError::Domain(DomainError::Busy { retry_after: std::time::Duration::from_secs(2) }),
    ];
    /// 503 of a route behind the token guard: the database, or (with an
    /// external identity provider configured) the provider's keys.
    ServiceOrAuthUnavailable: "The database cannot be reached right now \
        (`service_unavailable`). Only when an external identity provider is configured \
        (`AUTH_JWKS_URL`, `AUTH_ISSUER`, `AUTH_AUDIENCE`): a token of that provider could not \
        be checked because its key set (JWKS) cannot be fetched and no cached key fits \
        (`auth_unavailable`). Either way, retry later." => [
        ApiError::Domain(DomainError::Unavailable("the database is unreachable".into())),
        ApiError::AuthUnavailable,
    ];
    /// 429 of sign-up and sign-in.
    RateLimited: "Too many sign-ups and sign-ins from this client address: the two share one \
        budget per address of `AUTH_RATE_LIMIT_BURST` attempts at once, refilled at \
        `AUTH_RATE_LIMIT_PER_MINUTE`. Answered before the body is read. Always carries \
        `Retry-After`: the whole seconds until the next attempt can succeed." => [
        ApiError::RateLimited { retry_after_seconds: 30 },
    ];
    /// 429 of sign-in: the per-address limit, or the per-email one.
    SignInRateLimited: "Too many sign-ups and sign-ins from this client address (a budget of \
        `AUTH_RATE_LIMIT_BURST` attempts at once, refilled at `AUTH_RATE_LIMIT_PER_MINUTE`, \
        checked before the body is read), or too many failed sign-ins for this email from any \
        address: `SIGN_IN_FAILURES_PER_ACCOUNT` failures within \
        `SIGN_IN_FAILURE_WINDOW_SECONDS` block it for that long, whether or not an account has \
        it, and even the right password is refused until the block ends. A successful sign-in \
        clears the count. Always carries `Retry-After`: the whole seconds until the next attempt \
        can succeed." => [
        ApiError::RateLimited { retry_after_seconds: 30 },
        ApiError::Domain(DomainError::TooManyFailedSignIns {
            retry_after: std::time::Duration::from_secs(900),
        }),
    ];
    /// 408 of a route that reads a body.
    RequestTimeout: "The body did not arrive in full within `REQUEST_BODY_TIMEOUT_SECONDS` \
        (default 10) of the request head. The connection is closed after this answer." => [
        ApiError::RequestTimeout,
    ];
    /// 503 of the readiness probe.
    NotReady: "The database does not answer." => [
        ApiError::NotReady,
    ];
    /// 500, on any route: a failure only an operator can act on.
    InternalError: "An unexpected failure; the body is generic and the cause is in the \
        service's log." => [
        ApiError::Domain(DomainError::Unexpected("a bug".into())),
    ];
}

/// A real parse failure of a task body, so the example shows the server's
/// own wording.
fn malformed_body_sample() -> ApiError {
    match crate::body::parse::<crate::dto::TaskRequest>(br#"{"title": 5}"#) {
        Err(error) => error,
        // Unreachable (a number is never a title), but the document is
        // still right with a generic sample.
        Ok(_) => ApiError::Validation {
            detail: "Request body is not valid".into(),
            errors: Vec::new(),
        },
    }
}

/// The status every sample answers with (the first one's; the unit tests
/// check that they agree).
fn status_of(samples: &[ApiError]) -> StatusCode {
    samples
        .first()
        .map_or(StatusCode::INTERNAL_SERVER_ERROR, |sample| sample.parts().0)
}

/// A response whose body is the error shape with `code` limited to the
/// samples' codes, one example per sample.
fn build(description: &str, samples: &[ApiError]) -> Response {
    let mut codes: Vec<&'static str> = Vec::new();
    let mut examples = Vec::new();
    let mut has_field_errors = false;
    for sample in samples {
        let (_, code, detail) = sample.parts();
        if !codes.contains(&code) {
            codes.push(code);
        }
        let mut body = json!({"detail": detail, "code": code});
        if let ApiError::Validation { errors, .. } = sample {
            has_field_errors = true;
            body["errors"] = json!(errors);
        }
        let name = match examples.len() {
            0 => code.to_owned(),
            n => format!("{code} ({})", n + 1),
        };
        examples.push((
            name,
            ExampleBuilder::new().summary(detail).value(Some(body)),
        ));
    }

    let mut body = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            "detail",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("For people; may change between versions.")),
        )
        .required("detail")
        .property(
            "code",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("Stable; for programs to branch on."))
                .enum_values(Some(codes)),
        )
        .required("code");
    if has_field_errors {
        body = body.property(
            "errors",
            ArrayBuilder::new().items(Ref::from_schema_name("FieldError")),
        );
    }
    let schema: Schema = body.into();

    let mut response = ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(schema))
            .examples_from_iter(examples)
            .build(),
    );
    // The headers error.rs adds to a status, described beside it.
    match status_of(samples) {
        StatusCode::UNAUTHORIZED => {
            response = response.header(
                "WWW-Authenticate",
                HeaderBuilder::new()
                    .schema(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .examples(["Bearer"]),
                    )
                    .description(Some("`Bearer`: the scheme to authenticate with."))
                    .build(),
            );
        }
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
            if let Some(seconds) = samples.iter().find_map(retry_after_seconds) {
                // utoipa 5.5's header object has no `required`, so the
                // response's description says when it is sent.
                response = response.header(
                    "Retry-After",
                    HeaderBuilder::new()
                        .schema(
                            ObjectBuilder::new()
                                .schema_type(Type::Integer)
                                .minimum(Some(1))
                                .examples([seconds]),
                        )
                        .description(Some(
                            if status_of(samples) == StatusCode::TOO_MANY_REQUESTS {
                                "Whole seconds to wait before the next attempt (rounded up, at \
                             least 1)."
                            } else {
                                "Sent with `busy` only: whole seconds to wait before the next \
                             attempt (rounded up, at least 1)."
                            },
                        ))
                        .build(),
                );
            }
        }
        _ => {}
    }
    response.build()
}

/// The `Retry-After` a sample answers with, if any (as `error.rs` sets it).
fn retry_after_seconds(sample: &ApiError) -> Option<u64> {
    match sample {
        ApiError::RateLimited {
            retry_after_seconds,
        } => Some(*retry_after_seconds),
        ApiError::Domain(DomainError::Busy { retry_after }) => Some(retry_after.as_secs().max(1)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_of_a_response_has_the_same_status() {
        for (name, samples) in catalogue() {
            let status = status_of(&samples);
            assert!(
                status.is_client_error() || status.is_server_error(),
                "{name}"
            );
            for sample in &samples {
                assert_eq!(sample.parts().0, status, "{name}: {sample:?}");
            }
        }
    }

    #[test]
    fn the_malformed_body_sample_is_a_real_parse_failure() {
        let sample = malformed_body_sample();
        let ApiError::Validation { errors, .. } = sample else {
            panic!("not a validation error: {sample:?}");
        };
        assert_eq!(errors[0].field, "title");
    }
}
