//! Logging: the global subscriber (`RUST_LOG` filters, default `info`;
//! `LOG_FORMAT` picks JSON lines or human-readable lines), and the
//! middleware that gives every request an id and writes one line when it
//! is answered.
//!
//! The request line holds the method, the route pattern (never the path
//! with its ids, nor the query), the status, the latency and the request
//! id: nothing a client sent in a header or a body, so neither tokens nor
//! passwords can reach the log through it.

use std::io::IsTerminal;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

/// The header a request id is read from and echoed in.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");
/// The longest request id taken from a client; a longer one is replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object a line, for log collectors.
    Json,
    /// One human-readable line an event, for a terminal.
    Pretty,
}

/// `LOG_FORMAT` holds neither `json` nor `pretty`.
#[derive(Debug, thiserror::Error)]
#[error("LOG_FORMAT is invalid: must be json or pretty")]
pub struct InvalidLogFormat;

impl LogFormat {
    /// Reads `LOG_FORMAT`: `json` or `pretty` (the default), in any case.
    ///
    /// # Errors
    /// [`InvalidLogFormat`] for any other value.
    pub fn from_env() -> Result<Self, InvalidLogFormat> {
        Self::parse(std::env::var("LOG_FORMAT").ok().as_deref())
    }

    fn parse(raw: Option<&str>) -> Result<Self, InvalidLogFormat> {
        match raw.map(str::trim) {
            None | Some("") => Ok(Self::Pretty),
            Some(value) if value.eq_ignore_ascii_case("pretty") => Ok(Self::Pretty),
            Some(value) if value.eq_ignore_ascii_case("json") => Ok(Self::Json),
            Some(_) => Err(InvalidLogFormat),
        }
    }
}

/// Installs the global subscriber once; later calls do nothing (tests start
/// many apps in one process). `.env` is read first, as the settings do,
/// so `LOG_FORMAT` and `RUST_LOG` may live there too.
///
/// # Errors
/// [`InvalidLogFormat`] when `LOG_FORMAT` is set to something unknown.
pub fn init() -> Result<(), InvalidLogFormat> {
    // A missing .env file is the normal case in production.
    let _ = dotenvy::dotenv();
    let format = LogFormat::from_env()?;
    let filter = log_filter(std::env::var("RUST_LOG").ok().as_deref());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    // `try_init` fails only when a subscriber is installed already.
    let _ = match format {
        // Fields at the top level; the enclosing request span (and so the
        // request id) is attached to every event logged inside a request.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        // Colours only on a terminal: escape codes do not belong in files.
        LogFormat::Pretty => builder
            .with_ansi(std::io::stdout().is_terminal())
            .try_init(),
    };
    Ok(())
}

/// The filter of `RUST_LOG`, or the default when it is unset, blank (as
/// every setting treats a blank value; an empty filter would silence even
/// errors) or not a valid filter.
fn log_filter(raw: Option<&str>) -> EnvFilter {
    raw.filter(|value| !value.trim().is_empty())
        .and_then(|value| EnvFilter::try_new(value).ok())
        .unwrap_or_else(|| EnvFilter::new(DEFAULT_LOG_FILTER))
}

/// What is logged without `RUST_LOG`: the service's own events from `info`
/// up, and only warnings from the database crates, whose `info` is one line
/// per statement.
const DEFAULT_LOG_FILTER: &str = "info,sqlx=warn,sea_orm=warn";

/// The id of one request: the client's `X-Request-Id` when it is 1 to 128
/// visible ASCII characters (safe in a header and a log line), else a new
/// UUIDv7. Handlers can read it from the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    fn of(headers: &HeaderMap) -> Self {
        headers
            .get(&REQUEST_ID_HEADER)
            .and_then(|value| value.to_str().ok())
            .filter(|value| {
                (1..=MAX_REQUEST_ID_LEN).contains(&value.len())
                    && value.bytes().all(|byte| byte.is_ascii_graphic())
            })
            .map_or_else(
                || Self(uuid::Uuid::now_v7().to_string()),
                |value| Self(value.to_owned()),
            )
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Middleware, outermost: names the request, runs it inside a span that
/// carries the id, logs one line with the outcome, and echoes the id in
/// `X-Request-Id`.
pub async fn trace_request(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let request_id = RequestId::of(request.headers());
    let method = request.method().clone();
    // The pattern is known before routing: actix matches it against the
    // app's resource map.
    let route = request
        .match_pattern()
        .unwrap_or_else(|| crate::metrics::UNMATCHED_ROUTE.to_owned());
    request.extensions_mut().insert(request_id.clone());

    let span = tracing::info_span!("request", request_id = request_id.as_str());
    let outcome = next.call(request).instrument(span).await;
    // Handlers and the inner middleware answer errors with responses; an
    // `Err` here would be rendered by actix itself, after this layer, so
    // it is logged with its status but cannot carry the id header.
    let status = match &outcome {
        Ok(response) => response.status(),
        Err(error) => error.as_response_error().status_code(),
    };

    tracing::info!(
        method = method.as_str(),
        route = route.as_str(),
        status = status.as_u16(),
        // Until the response is ready; our bodies are small and sent whole.
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        request_id = request_id.as_str(),
        "request"
    );
    let mut response = outcome?;
    // The id is visible ASCII (checked above) or a UUID, so the conversion
    // cannot fail; `if let` just avoids an unwrap.
    if let Ok(value) = HeaderValue::from_str(request_id.as_str()) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id_of(value: &str) -> RequestId {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID_HEADER, HeaderValue::from_str(value).unwrap());
        RequestId::of(&headers)
    }

    fn is_generated(id: &RequestId) -> bool {
        uuid::Uuid::parse_str(id.as_str()).is_ok_and(|uuid| uuid.get_version_num() == 7)
    }

    #[test]
    fn a_blank_or_invalid_rust_log_is_the_default_filter() {
        use tracing_subscriber::filter::LevelFilter;
        for raw in [None, Some(""), Some("  "), Some("debug,sqlx=nonsense")] {
            assert_eq!(
                log_filter(raw).max_level_hint(),
                Some(LevelFilter::INFO),
                "{raw:?}"
            );
        }
        assert_eq!(
            log_filter(Some("warn")).max_level_hint(),
            Some(LevelFilter::WARN)
        );
    }

    #[test]
    fn a_visible_ascii_id_is_kept() {
        assert_eq!(id_of("abc-123_X.y").as_str(), "abc-123_X.y");
        assert_eq!(id_of(&"a".repeat(128)).as_str(), "a".repeat(128));
    }

    #[test]
    fn a_missing_id_is_generated() {
        assert!(is_generated(&RequestId::of(&HeaderMap::new())));
    }

    #[test]
    fn an_unsafe_or_oversized_id_is_replaced() {
        for value in ["", "has space", "tab\there", &"a".repeat(129)] {
            assert!(is_generated(&id_of(value)), "{value:?}");
        }
    }

    #[test]
    fn log_formats_are_json_or_pretty() {
        assert_eq!(LogFormat::parse(None).unwrap(), LogFormat::Pretty);
        assert_eq!(LogFormat::parse(Some("")).unwrap(), LogFormat::Pretty);
        assert_eq!(LogFormat::parse(Some("JSON")).unwrap(), LogFormat::Json);
        assert_eq!(LogFormat::parse(Some("pretty")).unwrap(), LogFormat::Pretty);
        assert!(LogFormat::parse(Some("xml")).is_err());
    }
}
