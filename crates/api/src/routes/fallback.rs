use actix_web::HttpResponse;

use crate::error::ApiError;

/// Any path no route claims.
pub async fn route_not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::RouteNotFound)
}

/// A known path asked with a method it does not serve; `allow` lists the
/// methods it does.
pub fn method_not_allowed(
    allow: &'static str,
) -> impl Fn() -> std::future::Ready<Result<HttpResponse, ApiError>> + Clone + 'static {
    move || std::future::ready(Err(ApiError::MethodNotAllowed { allow }))
}
