use actix_web::{HttpResponse, web};
use todo_domain::DomainError;

use crate::error::ApiError;
use crate::metrics::{CONTENT_TYPE, Metrics};
use crate::routes::fallback;

/// Mounts `GET /metrics`; left out when `METRICS_ENABLED` is off, so the
/// path is then as unknown (404) as any other.
pub fn routes(config: &mut web::ServiceConfig) {
    config.service(
        web::resource("/metrics")
            .route(web::get().to(metrics))
            .default_service(web::to(fallback::method_not_allowed("GET"))),
    );
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(metrics: web::Data<Metrics>) -> Result<HttpResponse, ApiError> {
    let text = metrics
        .render()
        .map_err(|error| DomainError::Unexpected(Box::new(error)))?;
    Ok(HttpResponse::Ok().content_type(CONTENT_TYPE).body(text))
}
