//! Response headers that every answer carries, errors and 401s included.
//!
//! - `X-Content-Type-Options: nosniff`: a browser must not guess a type
//!   other than the `application/json` we send.
//! - `Cache-Control: no-store`: every answer is per caller and per moment
//!   (tasks, profiles, tokens, health), so no cache may keep one. RFC 6749
//!   §5.1 asks for it on token responses in particular. A route that wants
//!   caching can set its own `Cache-Control`; it is only added when absent.
//! - `X-Frame-Options: DENY` and `Content-Security-Policy:
//!   frame-ancestors 'none'`: nothing here is meant to be framed.
//! - No `Server` header: actix-web sends none, and one set by a handler is
//!   removed, so the stack and its version are not advertised.
//!
//! The only answers without these headers are the bodiless 400, 408 and
//! 431 that actix-http's parser sends before a request reaches the app
//! (see `docs/reliability.md`).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;

/// The middleware; mount it outermost so it also sees CORS pre-flights.
///
/// Handler and extractor errors reach it as responses already (actix turns
/// them into responses at the handler), and our own middleware answer with
/// responses rather than errors for the same reason, so every answer of
/// the app passes through here. (The request cannot be cloned to build a
/// response from an escaped error: routing needs it unshared.)
pub async fn add_security_headers(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut response = next.call(request).await?;
    decorate(response.headers_mut());
    Ok(response)
}

fn decorate(headers: &mut HeaderMap) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("frame-ancestors 'none'"),
        );
    }
    headers.remove(HeaderName::from_static("server"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_response_gets_every_header() {
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static("server"),
            HeaderValue::from_static("x/1.0"),
        );
        decorate(&mut headers);
        assert_eq!(
            headers.get(header::X_CONTENT_TYPE_OPTIONS).unwrap(),
            "nosniff"
        );
        assert_eq!(headers.get(header::CACHE_CONTROL).unwrap(), "no-store");
        assert!(headers.get("server").is_none());
    }

    #[test]
    fn a_routes_own_cache_control_is_kept() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("max-age=60"),
        );
        decorate(&mut headers);
        assert_eq!(headers.get(header::CACHE_CONTROL).unwrap(), "max-age=60");
    }
}
