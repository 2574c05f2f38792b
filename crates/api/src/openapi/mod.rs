//! The OpenAPI 3.1 description of the HTTP API, generated from the code:
//! the handlers' `#[utoipa::path]` attributes, the DTOs' schemas, and error
//! responses built from the error mapping itself. Served at
//! `GET /openapi.json`, shown at `/docs`, and committed as
//! `docs/openapi.json` (a test fails when the two differ).

pub mod params;
pub mod responses;
pub mod schemas;

use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{Ref, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::dto::{
    AuthResponse, ChangeResponse, ChangesResponse, CompletionRequest, CredentialsRequest,
    DeletedResponse, StatusResponse, TaskPatchRequest, TaskRequest, TaskResponse, UserResponse,
};
use crate::error::FieldError;
use crate::routes::{auth, events, health, tasks};
use responses::{
    CreateConflict, CursorExpired, EmailTaken, Forbidden, InternalError, InvalidChangesQuery,
    InvalidClearQuery, InvalidCredentials, InvalidIdempotencyKey, InvalidListQuery, InvalidNewTask,
    InvalidSignUp, InvalidTask, InvalidTaskId, KeyInUse, MalformedBody, MalformedBodyOrTaskId,
    MalformedCreate, MalformedRetryOrTaskId, NotReady, PayloadTooLarge, PreconditionFailed,
    RateLimited, RequestTimeout, ServiceOrAuthUnavailable, ServiceUnavailableOrBusy,
    SignInRateLimited, TaskNotFound, TooManyStreams, Unauthenticated, UnsupportedMediaType,
    UnsupportedPatchType,
};

/// The name of the bearer scheme that protected operations refer to.
pub const BEARER_SCHEME: &str = "bearer";

/// Rules every operation shares, shown at the top of `/docs`.
const OVERVIEW: &str = "\
A multi-user task list. Sign up or sign in under **auth** to get a JWT, then send it as \
`Authorization: Bearer <token>` (in `/docs`: the **Authorize** button) to the **tasks** routes.

* JSON in and out, UTF-8. Every error body is `{\"detail\": \"...\", \"code\": \"...\"}`; \
`code` is stable and listed per response below, and 422 bodies may add `errors`.
* Timestamps are RFC 3339 in UTC with six fraction digits and `Z`; ids are UUIDs.
* A known path with a method it does not serve answers 405 `method_not_allowed` with an \
`Allow` header; an unknown path answers 404 `not_found`. `HEAD` is served wherever `GET` \
is: the same status and headers, no body.
* Error precedence on one request: 429 (sign-up and sign-in only), then 401 or 503 \
`auth_unavailable`, then 408/413/415/422 (a body not received in time, or malformed), \
then 400 (a rule broken), then 404/403/409.
* Before any route is matched, the HTTP parser itself answers a request whose line and \
headers are not received within `CLIENT_REQUEST_TIMEOUT_SECONDS` with 408, one it cannot \
parse with 400, and one whose head is larger than 128 KiB or has more than 96 headers with \
431; these have no body.
* Every response carries `X-Request-Id`: the one the request sent (if it is 1 to 128 visible \
ASCII characters), else a fresh UUID; quote it when reporting a problem.
* Browsers may call the API from the origins in `CORS_ALLOWED_ORIGINS`.";

/// The document's root: every operation, its schemas and shared responses.
#[derive(OpenApi)]
#[openapi(
    info(title = "todo-api", description = OVERVIEW, license(name = "MIT")),
    paths(
        auth::sign_up,
        auth::sign_in,
        auth::me,
        tasks::list_tasks,
        tasks::task_changes,
        events::task_events,
        tasks::create_task,
        tasks::delete_completed_tasks,
        tasks::get_task,
        tasks::replace_task,
        tasks::patch_task,
        tasks::delete_task,
        tasks::change_completion,
        health::health,
        health::ready,
    ),
    components(
        schemas(
            AuthResponse,
            ChangeResponse,
            ChangesResponse,
            CompletionRequest,
            CredentialsRequest,
            DeletedResponse,
            FieldError,
            StatusResponse,
            TaskPatchRequest,
            TaskRequest,
            TaskResponse,
            UserResponse,
        ),
        responses(
            CreateConflict,
            CursorExpired,
            EmailTaken,
            Forbidden,
            InternalError,
            InvalidChangesQuery,
            InvalidClearQuery,
            InvalidCredentials,
            InvalidIdempotencyKey,
            InvalidListQuery,
            InvalidNewTask,
            InvalidSignUp,
            InvalidTask,
            InvalidTaskId,
            KeyInUse,
            TooManyStreams,
            MalformedBody,
            MalformedBodyOrTaskId,
            MalformedCreate,
            MalformedRetryOrTaskId,
            NotReady,
            PayloadTooLarge,
            PreconditionFailed,
            RateLimited,
            RequestTimeout,
            ServiceOrAuthUnavailable,
            ServiceUnavailableOrBusy,
            SignInRateLimited,
            TaskNotFound,
            Unauthenticated,
            UnsupportedMediaType,
            UnsupportedPatchType,
        ),
    ),
    modifiers(&BearerScheme, &InternalErrorEverywhere, &OptionalBodiesAreNeverNull),
    tags(
        (name = "auth", description = "Accounts and tokens."),
        (name = "tasks", description = "The caller's own tasks. Every route needs a bearer token."),
        (name = "health", description = "Probes for orchestrators; no token."),
    ),
)]
pub struct ApiDoc;

/// The HS256 JWTs that sign-up and sign-in hand out.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER_SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "The `access_token` of sign-up or sign-in, valid for `expires_in` seconds.",
                    ))
                    .build(),
            ),
        );
    }
}

/// Any operation can fail in a way only an operator can act on; saying so
/// once here beats repeating it on every handler.
struct InternalErrorEverywhere;

impl Modify for InternalErrorEverywhere {
    fn modify(&self, openapi: &mut Document) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                operation.responses.responses.insert(
                    "500".to_owned(),
                    RefOr::Ref(Ref::from_response_name("InternalError")),
                );
            }
        }
    }
}

/// utoipa describes an `Option<T>` body as "`null` or T", but an optional
/// body ([`crate::body::OptionalJsonBody`]) may be left out, not sent as
/// `null` (a JSON `null` is a 422 like any other wrong shape). An absent
/// body is what `required: false` says already, so the `null` alternative
/// is dropped.
struct OptionalBodiesAreNeverNull;

impl Modify for OptionalBodiesAreNeverNull {
    fn modify(&self, openapi: &mut Document) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [&mut item.put, &mut item.post, &mut item.patch];
            for operation in operations.into_iter().flatten() {
                let Some(body) = operation.request_body.as_mut() else {
                    continue;
                };
                for content in body.content.values_mut() {
                    if let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema {
                        let mut alternatives = one_of.items.iter().filter(|item| !is_null(item));
                        if let (Some(only), None) = (alternatives.next(), alternatives.next()) {
                            content.schema = Some(only.clone());
                        }
                    }
                }
            }
        }
    }
}

fn is_null(schema: &RefOr<Schema>) -> bool {
    matches!(schema, RefOr::T(Schema::Object(object))
        if object.schema_type == Type::Null.into())
}

/// The document as served and committed: pretty JSON with a final newline.
///
/// # Errors
/// Only if serialization fails, which a document of plain data does not.
pub fn document_json() -> Result<String, serde_json::Error> {
    ApiDoc::openapi().to_pretty_json().map(|mut json| {
        json.push('\n');
        json
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::path::PathBuf;

    fn committed_path() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
    }

    /// `UPDATE_OPENAPI=1 cargo test -p todo-api --lib openapi` rewrites the
    /// committed file from the code; without it, any difference fails.
    #[test]
    fn the_committed_document_matches_the_code() {
        let generated = document_json().expect("the document serializes");
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(committed_path(), &generated).expect("docs/openapi.json is writable");
        }
        let committed = std::fs::read_to_string(committed_path()).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/openapi.json is out of date: run `UPDATE_OPENAPI=1 cargo test -p todo-api --lib openapi` and commit it"
        );
    }

    fn document() -> Value {
        serde_json::to_value(ApiDoc::openapi()).expect("the document is JSON")
    }

    fn references(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    found.push(target.clone());
                }
                map.values().for_each(|v| references(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| references(v, found)),
            _ => {}
        }
    }

    #[test]
    fn it_is_openapi_3_1() {
        assert!(document()["openapi"].as_str().unwrap().starts_with("3.1."));
    }

    #[test]
    fn every_reference_resolves() {
        let document = document();
        let mut found = Vec::new();
        references(&document, &mut found);
        assert!(!found.is_empty());
        for target in found {
            let pointer = target.strip_prefix('#').expect("a local reference");
            assert!(document.pointer(pointer).is_some(), "{target} is dangling");
        }
    }

    #[test]
    fn every_operation_that_takes_a_token_says_so_and_documents_its_401() {
        let document = document();
        let mut protected = 0;
        for (path, item) in document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let needs_token = path.starts_with("/api/tasks") || path == "/api/auth/me";
                let declared = operation.get("security").is_some();
                assert_eq!(declared, needs_token, "{method} {path}");
                if needs_token {
                    protected += 1;
                    assert_eq!(
                        operation["responses"]["401"]["$ref"],
                        "#/components/responses/Unauthenticated",
                        "{method} {path}"
                    );
                }
                assert!(operation["responses"]["500"].is_object(), "{method} {path}");
            }
        }
        assert_eq!(protected, 11);
    }

    /// Every (method, path, operation) of the document.
    fn operations(document: &Value) -> Vec<(String, String, Value)> {
        let mut found = Vec::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                found.push((method.clone(), path.clone(), operation.clone()));
            }
        }
        found
    }

    fn codes_of(document: &Value, reference: &Value) -> Value {
        let name = reference["$ref"]
            .as_str()
            .and_then(|target| target.strip_prefix("#/components/responses/"))
            .expect("a reference to a shared response");
        document["components"]["responses"][name]["content"]["application/json"]["schema"]
            ["properties"]["code"]["enum"]
            .clone()
    }

    #[test]
    fn every_operation_that_reads_a_body_documents_its_408() {
        let document = document();
        let mut with_body = 0;
        for (method, path, operation) in operations(&document) {
            let reads_body = operation.get("requestBody").is_some();
            let timeout = &operation["responses"]["408"];
            if reads_body {
                with_body += 1;
                assert_eq!(
                    codes_of(&document, timeout),
                    serde_json::json!(["request_timeout"]),
                    "{method} {path}"
                );
            } else {
                assert!(timeout.is_null(), "{method} {path}");
            }
        }
        // sign-up, sign-in, create, replace, patch, change completion
        assert_eq!(with_body, 6);
    }

    #[test]
    fn only_sign_up_and_sign_in_are_rate_limited_and_say_when_to_retry() {
        let document = document();
        for (method, path, operation) in operations(&document) {
            let limited = path == "/api/auth/signup" || path == "/api/auth/signin";
            let response = &operation["responses"]["429"];
            // The event stream's 429 is a cap on open streams, not a rate:
            // no `Retry-After`, since only closing one frees a slot.
            if path == "/api/tasks/events" {
                assert_eq!(
                    codes_of(&document, response),
                    serde_json::json!(["too_many_streams"]),
                    "{method} {path}"
                );
                continue;
            }
            if !limited {
                assert!(response.is_null(), "{method} {path}");
                continue;
            }
            assert_eq!(
                codes_of(&document, response),
                serde_json::json!(["rate_limited"]),
                "{method} {path}"
            );
        }
        for name in ["RateLimited", "SignInRateLimited"] {
            let header = &document["components"]["responses"][name]["headers"]["Retry-After"];
            assert_eq!(header["schema"]["type"], "integer", "{name}");
            assert_eq!(header["schema"]["minimum"], 1, "{name}");
        }
    }

    #[test]
    fn every_guarded_operation_may_answer_auth_unavailable_and_no_other_does() {
        let document = document();
        for (method, path, operation) in operations(&document) {
            let guarded = operation.get("security").is_some();
            let unavailable = &operation["responses"]["503"];
            let codes = if unavailable.is_null() {
                serde_json::json!([])
            } else {
                codes_of(&document, unavailable)
            };
            let says_auth = codes
                .as_array()
                .unwrap()
                .contains(&serde_json::json!("auth_unavailable"));
            assert_eq!(says_auth, guarded, "{method} {path}");
            if guarded {
                assert_eq!(
                    codes,
                    serde_json::json!(["service_unavailable", "auth_unavailable"]),
                    "{method} {path}"
                );
            }
        }
    }

    #[test]
    fn the_bearer_scheme_is_a_jwt() {
        let scheme = &document()["components"]["securitySchemes"][BEARER_SCHEME];
        assert_eq!(scheme["type"], "http");
        assert_eq!(scheme["scheme"], "bearer");
        assert_eq!(scheme["bearerFormat"], "JWT");
    }

    #[test]
    fn an_error_response_lists_exactly_its_codes() {
        let response = &document()["components"]["responses"]["Unauthenticated"];
        let codes =
            &response["content"]["application/json"]["schema"]["properties"]["code"]["enum"];
        assert_eq!(
            codes,
            &serde_json::json!(["not_authenticated", "invalid_token"])
        );
        assert!(response["headers"]["WWW-Authenticate"].is_object());
    }
}
