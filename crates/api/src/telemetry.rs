//! Logging: the global subscriber (`RUST_LOG` filters, default `info`;
//! `LOG_FORMAT` picks JSON lines or human-readable lines), and the request
//! span: tracing-actix-web's `TracingLogger` with [`RequestSpan`] names
//! every request, runs it inside a span that carries its id, and writes
//! one line when it is answered; [`echo_request_id`] returns the id.
//!
//! The request line holds the method (an overlong one cut), the route
//! pattern (never the path with its ids, nor the query), the status, the
//! latency and the request id: nothing a client sent in a header or a
//! body, so neither tokens nor passwords can reach the log through it.

use std::borrow::Cow;
use std::io::IsTerminal;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};
use tracing::Span;
use tracing_actix_web::RootSpanBuilder;
use tracing_subscriber::EnvFilter;

/// The header a request id is read from and echoed in.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");
/// The longest request id taken from a client; a longer one is replaced.
const MAX_REQUEST_ID_LEN: usize = 128;
/// The longest method written whole in the request line; any token is a
/// method, so a longer one is cut.
const MAX_LOGGED_METHOD_LEN: usize = 16;

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
/// UUIDv7. Handlers can read it from the request's extensions (not
/// tracing-actix-web's own `RequestId`, a random UUID that ignores the
/// client's header).
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

/// The root span builder of `tracing_actix_web::TracingLogger`: settles
/// the request id, opens the `request` span with it, and writes the one
/// request line when the answer is ready.
pub struct RequestSpan;

/// What the request line needs from the start of a request, kept in its
/// extensions: the method as sent (inner middleware may rename an unknown
/// one for the metrics) and when the request began.
struct RequestStart {
    started: Instant,
    method: Method,
    route: String,
}

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let request_id = RequestId::of(request.headers());
        let span = tracing::info_span!("request", request_id = request_id.as_str());
        // The pattern is known before routing: actix matches it against the
        // app's resource map.
        let route = request
            .match_pattern()
            .unwrap_or_else(|| crate::metrics::UNMATCHED_ROUTE.to_owned());
        let mut extensions = request.extensions_mut();
        extensions.insert(RequestStart {
            started: Instant::now(),
            method: request.method().clone(),
            route,
        });
        extensions.insert(request_id);
        span
    }

    fn on_request_end<B: MessageBody>(_span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        // Called inside the request span, so the line carries its id too.
        let response = match outcome {
            Ok(response) => response,
            // No layer of ours answers with an `Err` (each turns its errors
            // into responses), and an `Err` no longer holds the request, so
            // all that is known is its status.
            Err(error) => {
                let status = error.as_response_error().status_code();
                tracing::info!(status = status.as_u16(), "request");
                return;
            }
        };
        let extensions = response.request().extensions();
        let (Some(start), Some(request_id)) = (
            extensions.get::<RequestStart>(),
            extensions.get::<RequestId>(),
        ) else {
            // Both were inserted by `on_request_start` for this request.
            return;
        };
        tracing::info!(
            method = loggable_method(&start.method).as_ref(),
            route = start.route.as_str(),
            status = response.status().as_u16(),
            // Until the response is ready; our bodies are small and sent whole.
            latency_ms = start.started.elapsed().as_secs_f64() * 1000.0,
            request_id = request_id.as_str(),
            "request"
        );
    }
}

/// The method for the request line: whole up to
/// [`MAX_LOGGED_METHOD_LEN`] bytes, else its start and a marker. A method
/// is an HTTP token, all ASCII, so any byte is a character boundary.
fn loggable_method(method: &Method) -> Cow<'_, str> {
    let method = method.as_str();
    match method.get(..MAX_LOGGED_METHOD_LEN) {
        Some(start) if method.len() > MAX_LOGGED_METHOD_LEN => Cow::Owned(format!("{start}…")),
        _ => Cow::Borrowed(method),
    }
}

/// Middleware just inside `TracingLogger`: echoes the request's id in
/// `X-Request-Id`, which tracing-actix-web does not do.
pub async fn echo_request_id(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let mut response = next.call(request).await?;
    // The id is visible ASCII (checked by `RequestId::of`) or a UUID, so
    // the conversion cannot fail; `and_then` just avoids an unwrap.
    let value = response
        .request()
        .extensions()
        .get::<RequestId>()
        .and_then(|id| HeaderValue::from_str(id.as_str()).ok());
    if let Some(value) = value {
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
    fn a_short_method_is_logged_whole_and_a_long_one_cut() {
        let method = |raw: &str| Method::from_bytes(raw.as_bytes()).unwrap();
        assert_eq!(loggable_method(&Method::GET), "GET");
        assert_eq!(loggable_method(&method(&"M".repeat(16))), "M".repeat(16));
        assert_eq!(
            loggable_method(&method(&"M".repeat(100_000))),
            format!("{}…", "M".repeat(16))
        );
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
