//! Response headers that every answer carries, errors and 401s included.
//!
//! - `X-Content-Type-Options: nosniff`: a browser must not guess a type
//!   other than the `application/json` we send.
//! - `Cache-Control: no-store`: every answer is per caller and per moment
//!   (tasks, profiles, tokens, health), so no cache may keep one. RFC 6749
//!   §5.1 asks for it on token responses in particular.
//! - `X-Frame-Options: DENY` and `Content-Security-Policy:
//!   frame-ancestors 'none'`: nothing here is meant to be framed.
//!
//! actix-web's `DefaultHeaders` adds each one only when the answer lacks
//! it, so a route that wants caching can set its own `Cache-Control`. No
//! `Server` header is sent: actix-web writes none and no handler sets one.
//!
//! The only answers without these headers are the bodiless 400, 408 and
//! 431 that actix-http's parser sends before a request reaches the app
//! (see `docs/reliability.md`).

use actix_web::http::header;
use actix_web::middleware::DefaultHeaders;

/// The middleware; mount it outside `Cors` and `json_error_bodies` so it
/// also sees pre-flights and rewritten error bodies.
///
/// Handler and extractor errors reach it as responses already (actix turns
/// them into responses at the handler), and our own middleware answer with
/// responses rather than errors for the same reason, so every answer of
/// the app passes through here.
#[must_use]
pub fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::CACHE_CONTROL, "no-store"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::CONTENT_SECURITY_POLICY, "frame-ancestors 'none'"))
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderValue;
    use actix_web::{App, HttpResponse, test, web};

    use super::*;

    /// The headers of an answer whose handler set `cache_control`, if any.
    async fn headers_of(cache_control: Option<&'static str>) -> header::HeaderMap {
        let handler = move || {
            let mut response = HttpResponse::Ok();
            if let Some(value) = cache_control {
                response.insert_header((header::CACHE_CONTROL, value));
            }
            std::future::ready(response.finish())
        };
        let app = test::init_service(
            App::new()
                .wrap(security_headers())
                .route("/", web::get().to(handler)),
        )
        .await;
        let response = test::call_service(&app, test::TestRequest::get().to_request()).await;
        response.headers().clone()
    }

    #[actix_web::test]
    async fn a_bare_response_gets_every_header() {
        let headers = headers_of(None).await;
        for (name, value) in [
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CONTENT_SECURITY_POLICY, "frame-ancestors 'none'"),
        ] {
            assert_eq!(headers.get(&name), Some(&HeaderValue::from_static(value)));
        }
        assert!(headers.get(header::SERVER).is_none());
    }

    #[actix_web::test]
    async fn a_routes_own_cache_control_is_kept() {
        let headers = headers_of(Some("max-age=60")).await;
        assert_eq!(headers.get_all(header::CACHE_CONTROL).count(), 1);
        assert_eq!(headers.get(header::CACHE_CONTROL).unwrap(), "max-age=60");
    }
}
