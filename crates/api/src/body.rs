//! Reading JSON request bodies exactly as the contract describes: only
//! `application/json`, at most 64 KiB as received (chunked or not), and
//! every malformed body a 422 that names the field at fault. Two limits of
//! our own guard against hostile clients: the whole body must arrive
//! within [`BodyReadTimeout`] (else 408), and JSON nested deeper than
//! [`MAX_NESTING_DEPTH`] is refused (422) before it is parsed, ignored
//! fields included.
//!
//! actix's own `web::Json` answers all of these with 400 and accepts
//! `text/json`, so the body is read here instead.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{FromRequest, HttpMessage, HttpRequest, mime};
use futures_util::StreamExt;
use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

mod refusal;

use crate::error::{ApiError, FieldError};

/// The largest body accepted, in bytes.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

/// The deepest nesting of arrays and objects accepted. Every body of the
/// contract is one flat object (depth 1); serde_json stops at 128 levels
/// only in the fields it reads, and skips an ignored field of any depth,
/// so without this a client could make every parse walk 64 KiB of
/// brackets for nothing.
pub const MAX_NESTING_DEPTH: usize = 32;

/// How long a client may take to send a whole body, registered as app
/// data (`REQUEST_BODY_TIMEOUT_SECONDS`). actix-http times the request
/// head but not the body, so without this a client sending a byte a
/// minute holds its connection and request for ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyReadTimeout(pub Duration);

impl Default for BodyReadTimeout {
    fn default() -> Self {
        Self(Duration::from_secs(10))
    }
}

/// A required JSON body.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

/// A JSON body that may be left out: no body at all (or zero bytes) gives
/// `None`; anything else must be JSON like a [`JsonBody`].
#[derive(Debug)]
pub struct OptionalJsonBody<T>(pub Option<T>);

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_required(request, payload, HeaderChecks::is_json);
        Box::pin(async move { parse(&body.await?).map(JsonBody) })
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for OptionalJsonBody<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let checks = HeaderChecks::of(request);
        let mut payload = payload.take();
        Box::pin(async move {
            checks.declared_size_fits()?;
            let bytes = read_limited(&mut payload, checks.read_timeout).await?;
            if bytes.is_empty() {
                return Ok(OptionalJsonBody(None));
            }
            checks.is_json()?;
            parse(&bytes).map(|value| OptionalJsonBody(Some(value)))
        })
    }
}

/// A required JSON body kept with the bytes it was read from, so that a
/// retry-safe request can be compared with its first attempt.
#[derive(Debug)]
pub struct JsonBodyWithBytes<T> {
    /// The parsed body.
    pub value: T,
    /// The body as received.
    pub bytes: Bytes,
}

/// An optional JSON body (as [`OptionalJsonBody`]) kept with the bytes it
/// was read from; no body gives `None` and no bytes.
#[derive(Debug)]
pub struct OptionalJsonBodyWithBytes<T> {
    /// The parsed body, if one was sent.
    pub value: Option<T>,
    /// The body as received.
    pub bytes: Bytes,
}

/// The body of a JSON Merge Patch (RFC 7396): as a [`JsonBody`], but
/// `application/merge-patch+json` is accepted beside `application/json`.
#[derive(Debug)]
pub struct MergePatchBody<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for JsonBodyWithBytes<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_required(request, payload, HeaderChecks::is_json);
        Box::pin(async move {
            let bytes = body.await?;
            let value = parse(&bytes)?;
            Ok(Self { value, bytes })
        })
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for OptionalJsonBodyWithBytes<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let checks = HeaderChecks::of(request);
        let mut payload = payload.take();
        Box::pin(async move {
            checks.declared_size_fits()?;
            let bytes = read_limited(&mut payload, checks.read_timeout)
                .await?
                .freeze();
            if bytes.is_empty() {
                return Ok(Self { value: None, bytes });
            }
            checks.is_json()?;
            let value = parse(&bytes)?;
            Ok(Self {
                value: Some(value),
                bytes,
            })
        })
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for MergePatchBody<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_required(request, payload, HeaderChecks::is_json_or_merge_patch);
        Box::pin(async move { parse(&body.await?).map(MergePatchBody) })
    }
}

/// What the headers say about the body, taken before the request is
/// borrowed away by the async read.
struct HeaderChecks {
    content_length: Option<u64>,
    json_content_type: bool,
    merge_patch_content_type: bool,
    read_timeout: BodyReadTimeout,
}

impl HeaderChecks {
    fn of(request: &HttpRequest) -> Self {
        let content_length = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse().ok());
        // `application/json`, with or without parameters; `text/json`,
        // `application/x-json` and `+json` suffixes are not JSON here.
        let json_content_type = matches!(
            request.mime_type(),
            Ok(Some(mime)) if mime.type_() == mime::APPLICATION
                && mime.subtype() == mime::JSON
                && mime.suffix().is_none()
        );
        let merge_patch_content_type = matches!(
            request.mime_type(),
            Ok(Some(mime)) if mime.type_() == mime::APPLICATION
                && mime.subtype().as_str().eq_ignore_ascii_case("merge-patch")
                && mime.suffix() == Some(mime::JSON)
        );
        let read_timeout = request
            .app_data::<BodyReadTimeout>()
            .copied()
            .unwrap_or_default();
        Self {
            content_length,
            json_content_type,
            merge_patch_content_type,
            read_timeout,
        }
    }

    /// Refuses early when the client announces an oversized body.
    fn declared_size_fits(&self) -> Result<(), ApiError> {
        match self.content_length {
            Some(length) if length > BODY_LIMIT_BYTES as u64 => Err(ApiError::PayloadTooLarge),
            _ => Ok(()),
        }
    }

    fn is_json(&self) -> Result<(), ApiError> {
        if self.json_content_type {
            Ok(())
        } else {
            Err(ApiError::UnsupportedMediaType)
        }
    }

    fn is_json_or_merge_patch(&self) -> Result<(), ApiError> {
        if self.json_content_type || self.merge_patch_content_type {
            Ok(())
        } else {
            Err(ApiError::UnsupportedMediaType)
        }
    }
}

/// The bytes of a body that must be sent: an announced size over the limit
/// is refused first, then a content type `accepts` refuses, and only then
/// is the body read.
fn read_required(
    request: &HttpRequest,
    payload: &mut Payload,
    accepts: fn(&HeaderChecks) -> Result<(), ApiError>,
) -> LocalBoxFuture<'static, Result<Bytes, ApiError>> {
    let checks = HeaderChecks::of(request);
    let mut payload = payload.take();
    Box::pin(async move {
        checks.declared_size_fits()?;
        accepts(&checks)?;
        Ok(read_limited(&mut payload, checks.read_timeout)
            .await?
            .freeze())
    })
}

/// Reads the whole body within the timeout, counting bytes as they arrive
/// so that a chunked upload is held to the same limit as one with a
/// `Content-Length`.
async fn read_limited(
    payload: &mut Payload,
    BodyReadTimeout(limit): BodyReadTimeout,
) -> Result<BytesMut, ApiError> {
    tokio::time::timeout(limit, read_all(payload))
        .await
        .map_err(|_| ApiError::RequestTimeout)?
}

async fn read_all(payload: &mut Payload) -> Result<BytesMut, ApiError> {
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ApiError::Validation {
            detail: "Request body could not be read".into(),
            errors: Vec::new(),
        })?;
        if body.len() + chunk.len() > BODY_LIMIT_BYTES {
            return Err(ApiError::PayloadTooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Deserializes the whole body, reporting the path of the first field that
/// did not fit. Trailing bytes after the JSON value are an error too.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Every body of the contract is an object. serde would also fill a
    // struct from an array (`["title"]`), which no client means.
    let first = bytes.iter().find(|byte| !byte.is_ascii_whitespace());
    if first.is_some_and(|byte| *byte != b'{') {
        return Err(ApiError::Validation {
            detail: "Request body is not valid: expected a JSON object".into(),
            errors: vec![FieldError {
                field: ".".into(),
                message: "expected a JSON object".into(),
            }],
        });
    }
    if nesting_depth(bytes) > MAX_NESTING_DEPTH {
        let message = format!("JSON is nested deeper than {MAX_NESTING_DEPTH} levels");
        return Err(ApiError::Validation {
            detail: format!("Request body is not valid: {message}"),
            errors: vec![FieldError {
                field: ".".to_owned(),
                message,
            }],
        });
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed = T::deserialize(&mut deserializer).and_then(|value| {
        deserializer.end()?;
        Ok(value)
    });
    // serde_json's error text quotes the refused value, which may be a
    // password, so the answer comes from `refusal` instead.
    parsed.map_err(|_| {
        let refusal::Explanation { field, message } = refusal::explain::<T>(bytes);
        invalid_body(field, message)
    })
}

/// The deepest nesting of `[` and `{` outside strings. Not a validator:
/// malformed JSON is left to the parser, which reports it properly.
fn nesting_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0_usize, 0_usize);
    let (mut in_string, mut escaped) = (false, false);
    for &byte in bytes {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

fn invalid_body(field: String, message: String) -> ApiError {
    let detail = if field == "." {
        format!("Request body is not valid: {message}")
    } else {
        format!("Request body is not valid: field `{field}`: {message}")
    };
    ApiError::Validation {
        detail,
        errors: vec![FieldError { field, message }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Sample {
        #[allow(dead_code)]
        title: String,
    }

    fn field_of(error: ApiError) -> String {
        match error {
            ApiError::Validation { errors, .. } => errors[0].field.clone(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn a_wrong_type_names_the_field() {
        let error = parse::<Sample>(br#"{"title": 5}"#).unwrap_err();
        assert_eq!(field_of(error), "title");
    }

    #[test]
    fn an_array_is_not_an_object() {
        let error = parse::<Sample>(br#" ["a"]"#).unwrap_err();
        assert_eq!(field_of(error), ".");
    }

    #[test]
    fn trailing_garbage_is_rejected() {
        assert!(parse::<Sample>(br#"{"title": "a"} x"#).is_err());
    }

    #[test]
    fn invalid_utf8_is_a_validation_error() {
        let error = parse::<Sample>(b"{\"title\": \"\xff\"}").unwrap_err();
        assert!(matches!(error, ApiError::Validation { .. }));
    }

    #[test]
    fn nesting_is_measured_outside_strings_only() {
        assert_eq!(nesting_depth(br#"{"title": "a"}"#), 1);
        assert_eq!(nesting_depth(br#"{"a": [[{"b": 1}]], "c": []}"#), 4);
        assert_eq!(nesting_depth(br#"{"title": "[[[{{{\"[["}"#), 1);
    }

    #[test]
    fn a_deeply_nested_ignored_field_is_refused() {
        let deep = format!(
            r#"{{"title": "a", "extra": {}{}}}"#,
            "[".repeat(MAX_NESTING_DEPTH),
            "]".repeat(MAX_NESTING_DEPTH)
        );
        assert_eq!(field_of(parse::<Sample>(deep.as_bytes()).unwrap_err()), ".");
        let allowed = format!(
            r#"{{"title": "a", "extra": {}{}}}"#,
            "[".repeat(MAX_NESTING_DEPTH - 1),
            "]".repeat(MAX_NESTING_DEPTH - 1)
        );
        assert!(parse::<Sample>(allowed.as_bytes()).is_ok());
    }

    #[test]
    fn a_lone_surrogate_is_a_validation_error() {
        let error = parse::<Sample>(br#"{"title": "\ud800"}"#).unwrap_err();
        assert!(matches!(error, ApiError::Validation { .. }));
    }
}
