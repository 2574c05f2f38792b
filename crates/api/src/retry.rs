//! The HTTP side of safe retries: the `Idempotency-Key` header, the
//! fingerprint that tells one request from another, and the answers of the
//! single-task routes, rendered once so that a replay repeats the first
//! answer exactly.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::Value;
use sha2::{Digest, Sha256};
use todo_domain::{
    DomainError, IdempotencyKey, IdempotentRequest, RecordedResponse, RequestFingerprint,
    ResponseRecorder, Task,
};

use crate::conditional::entity_tag;
use crate::dto::TaskResponse;
use crate::error::ApiError;

/// The request header naming a retry-safe request.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// The response header that marks a replayed answer.
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The key the request names, if any.
///
/// # Errors
/// `InvalidIdempotencyKey` when the key breaks its rules or the header is
/// sent more than once (which of two keys would be meant is anyone's guess).
pub fn idempotency_key(request: &HttpRequest) -> Result<Option<IdempotencyKey>, ApiError> {
    let mut values = request.headers().get_all(IDEMPOTENCY_KEY);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::InvalidIdempotencyKey);
    }
    IdempotencyKey::parse(value.as_bytes())
        .map(Some)
        .map_err(|_| ApiError::InvalidIdempotencyKey)
}

/// A retry-safe request: `key` with the fingerprint of `method`, `path`
/// and `body`, answered as `answer` renders it.
///
/// # Errors
/// Only if `body`, which was parsed as JSON already, no longer parses.
pub fn idempotent_request(
    key: IdempotencyKey,
    method: &str,
    path: &str,
    body: &[u8],
    answer: TaskAnswer,
) -> Result<IdempotentRequest, ApiError> {
    Ok(IdempotentRequest {
        key,
        fingerprint: fingerprint(method, path, body)?,
        recorder: Arc::new(answer),
    })
}

/// SHA-256 over the method, the path and the body as canonical JSON, so
/// that two requests whose bodies are the same JSON value (members in
/// another order, other white space) are the same request. No body and an
/// empty body are the same request too.
fn fingerprint(method: &str, path: &str, body: &[u8]) -> Result<RequestFingerprint, ApiError> {
    let mut digest = Sha256::new();
    // Neither the method nor the path can hold a NUL byte, so the fields
    // cannot run into each other.
    digest.update(method.as_bytes());
    digest.update([0]);
    digest.update(path.as_bytes());
    digest.update([0]);
    if !body.is_empty() {
        let value: Value = serde_json::from_slice(body)
            .map_err(|error| ApiError::from(DomainError::Unexpected(Box::new(error))))?;
        let mut canonical = Vec::with_capacity(body.len());
        write_canonical(&value, &mut canonical);
        digest.update(&canonical);
    }
    Ok(RequestFingerprint::new(digest.finalize().to_vec()))
}

/// Writes `value` as compact JSON with the members of every object sorted
/// by name, whatever order `serde_json::Map` keeps them in.
fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::Object(members) => {
            let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
            sorted.sort_unstable_by_key(|(name, _)| *name);
            out.push(b'{');
            for (index, (name, member)) in sorted.into_iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_scalar(&Value::String(name.clone()), out);
                out.push(b':');
                write_canonical(member, out);
            }
            out.push(b'}');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(value: &Value, out: &mut Vec<u8>) {
    // Writing a scalar into a Vec cannot fail: serde_json fails only on
    // I/O errors (a Vec has none) and on maps with non-string keys.
    let _ = serde_json::to_writer(&mut *out, value);
}

/// How a single-task route answers: the status and, for a creation, the
/// `Location`. Every such answer carries the task's `ETag`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskAnswer {
    /// 201 with `Location`.
    Created,
    /// 200.
    Ok,
}

impl TaskAnswer {
    /// The answer to send with `task`.
    #[must_use]
    pub fn render(self, task: Task) -> RecordedResponse {
        let mut headers = Vec::with_capacity(2);
        if self == Self::Created {
            headers.push((
                header::LOCATION.as_str().to_owned(),
                format!("/api/tasks/{}", task.id),
            ));
        }
        headers.push((header::ETAG.as_str().to_owned(), entity_tag(task.version)));
        let status = match self {
            Self::Created => StatusCode::CREATED,
            Self::Ok => StatusCode::OK,
        };
        // A task serializes without fail: its fields are strings, booleans
        // and timestamps of four-digit years, which the timestamp writer
        // always handles; an empty body would only follow a broken invariant.
        let body = serde_json::to_string(&TaskResponse::from(task)).unwrap_or_default();
        RecordedResponse {
            status: status.as_u16(),
            headers,
            body,
        }
    }

    /// `task` as an HTTP answer: the same status, headers and body as
    /// [`TaskAnswer::render`], written straight into the response, since
    /// most answers (every `GET`) are never recorded.
    #[must_use]
    pub fn respond(self, task: Task) -> HttpResponse {
        let mut response = match self {
            Self::Created => {
                let mut response = HttpResponse::Created();
                response.insert_header((header::LOCATION, format!("/api/tasks/{}", task.id)));
                response
            }
            Self::Ok => HttpResponse::Ok(),
        };
        response
            .insert_header((header::ETAG, entity_tag(task.version)))
            .json(TaskResponse::from(task))
    }
}

impl ResponseRecorder for TaskAnswer {
    fn record(&self, task: &Task) -> RecordedResponse {
        self.render(task.clone())
    }
}

/// Sends a rendered answer; a replay says so in `Idempotent-Replayed`.
#[must_use]
pub fn respond(recorded: RecordedResponse, replayed: bool) -> HttpResponse {
    let status = StatusCode::from_u16(recorded.status).unwrap_or(StatusCode::OK);
    let mut response = HttpResponse::build(status);
    for (name, value) in &recorded.headers {
        response.insert_header((name.as_str(), value.as_str()));
    }
    if replayed {
        response.insert_header((IDEMPOTENT_REPLAYED, "true"));
    }
    response
        .content_type(header::ContentType::json())
        .body(recorded.body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn print(body: &str) -> String {
        let value: Value = serde_json::from_str(body).unwrap();
        let mut out = Vec::new();
        write_canonical(&value, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn canonical_json_sorts_members_at_every_depth_and_drops_white_space() {
        assert_eq!(
            print(r#" { "b" : [ {"z": 1, "a": null} ], "a": "x\"y" } "#),
            r#"{"a":"x\"y","b":[{"a":null,"z":1}]}"#
        );
    }

    #[test]
    fn bodies_that_are_the_same_json_value_have_one_fingerprint() {
        let one = fingerprint("POST", "/api/tasks", br#"{"title":"a","labels":["x","y"]}"#);
        let two = fingerprint(
            "POST",
            "/api/tasks",
            b"{\n  \"labels\": [\"x\", \"y\"],\n  \"title\": \"a\"\n}",
        );
        assert_eq!(one.unwrap(), two.unwrap());
    }

    #[test]
    fn another_body_method_or_path_is_another_request() {
        let base = fingerprint("POST", "/api/tasks", br#"{"title":"a"}"#).unwrap();
        for other in [
            fingerprint("POST", "/api/tasks", br#"{"title":"b"}"#),
            fingerprint("POST", "/api/tasks", br#"{"title":"a","labels":["y","x"]}"#),
            fingerprint("PATCH", "/api/tasks", br#"{"title":"a"}"#),
            fingerprint("POST", "/api/tasks/x", br#"{"title":"a"}"#),
        ] {
            assert_ne!(other.unwrap(), base);
        }
    }

    #[test]
    fn no_body_differs_from_an_empty_object() {
        assert_ne!(
            fingerprint("PATCH", "/p", b"").unwrap(),
            fingerprint("PATCH", "/p", b"{}").unwrap()
        );
    }

    fn sample_task() -> Task {
        let now = todo_domain::Timestamp::now();
        Task {
            id: todo_domain::TaskId::generate(),
            owner: todo_domain::UserId::generate(),
            title: todo_domain::TaskTitle::parse("Pay rent").unwrap(),
            description: None,
            completed: false,
            completed_at: None,
            due_at: Some(now),
            priority: todo_domain::Priority::High,
            labels: todo_domain::Labels::parse(&["home"]).unwrap(),
            created_at: now,
            updated_at: now,
            version: todo_domain::TaskVersion::new(3),
        }
    }

    #[actix_web::test]
    async fn a_first_answer_and_its_recording_are_the_same_answer() {
        for answer in [TaskAnswer::Created, TaskAnswer::Ok] {
            let task = sample_task();
            let recorded = answer.render(task.clone());
            let sent = answer.respond(task);
            assert_eq!(sent.status().as_u16(), recorded.status);
            let mut headers: Vec<(String, String)> = sent
                .headers()
                .iter()
                .filter(|(name, _)| *name != header::CONTENT_TYPE)
                .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
                .collect();
            headers.sort();
            let mut expected = recorded.headers.clone();
            expected.sort();
            assert_eq!(headers, expected);
            let body = actix_web::body::to_bytes(sent.into_body()).await.unwrap();
            assert_eq!(body, recorded.body.as_bytes());
        }
    }

    #[test]
    fn a_missing_key_is_none_and_a_bad_or_doubled_one_is_refused() {
        let none = TestRequest::default().to_http_request();
        assert_eq!(idempotency_key(&none).unwrap(), None);
        let good = TestRequest::default()
            .insert_header((IDEMPOTENCY_KEY, "k-1"))
            .to_http_request();
        assert_eq!(idempotency_key(&good).unwrap().unwrap().as_str(), "k-1");
        let spaced = TestRequest::default()
            .insert_header((IDEMPOTENCY_KEY, "a b"))
            .to_http_request();
        assert!(matches!(
            idempotency_key(&spaced),
            Err(ApiError::InvalidIdempotencyKey)
        ));
        let doubled = TestRequest::default()
            .append_header((IDEMPOTENCY_KEY, "a"))
            .append_header((IDEMPOTENCY_KEY, "a"))
            .to_http_request();
        assert!(matches!(
            idempotency_key(&doubled),
            Err(ApiError::InvalidIdempotencyKey)
        ));
    }
}
