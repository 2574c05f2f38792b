//! Reading JSON request bodies exactly as the contract describes: only
//! `application/json`, at most 64 KiB as received (chunked or not), and
//! every malformed body a 422 that names the field at fault.
//!
//! actix's own `web::Json` answers all of these with 400 and accepts
//! `text/json`, so the body is read here instead.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::web::BytesMut;
use actix_web::{FromRequest, HttpMessage, HttpRequest, mime};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldError};

/// The largest body accepted, in bytes.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

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
        let checks = HeaderChecks::of(request);
        let mut payload = payload.take();
        Box::pin(async move {
            checks.declared_size_fits()?;
            checks.is_json()?;
            let bytes = read_limited(&mut payload).await?;
            parse(&bytes).map(JsonBody)
        })
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
            let bytes = read_limited(&mut payload).await?;
            if bytes.is_empty() {
                return Ok(OptionalJsonBody(None));
            }
            checks.is_json()?;
            parse(&bytes).map(|value| OptionalJsonBody(Some(value)))
        })
    }
}

/// What the headers say about the body, taken before the request is
/// borrowed away by the async read.
struct HeaderChecks {
    content_length: Option<u64>,
    json_content_type: bool,
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
        Self {
            content_length,
            json_content_type,
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
}

/// Reads the whole body, counting bytes as they arrive so that a chunked
/// upload is held to the same limit as one with a `Content-Length`.
async fn read_limited(payload: &mut Payload) -> Result<BytesMut, ApiError> {
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
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize(&mut deserializer) {
        Ok(value) => match deserializer.end() {
            Ok(()) => Ok(value),
            Err(error) => Err(invalid_body(".".to_owned(), &error)),
        },
        Err(error) => Err(invalid_body(error.path().to_string(), error.inner())),
    }
}

fn invalid_body(field: String, error: &serde_json::Error) -> ApiError {
    let message = error.to_string();
    ApiError::Validation {
        detail: format!("Request body is not valid: {message}"),
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
    fn trailing_garbage_is_rejected() {
        assert!(parse::<Sample>(br#"{"title": "a"} x"#).is_err());
    }

    #[test]
    fn invalid_utf8_is_a_validation_error() {
        let error = parse::<Sample>(b"{\"title\": \"\xff\"}").unwrap_err();
        assert!(matches!(error, ApiError::Validation { .. }));
    }

    #[test]
    fn a_lone_surrogate_is_a_validation_error() {
        let error = parse::<Sample>(br#"{"title": "\ud800"}"#).unwrap_err();
        assert!(matches!(error, ApiError::Validation { .. }));
    }
}
