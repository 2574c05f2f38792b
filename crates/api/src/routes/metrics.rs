use actix_web::{HttpResponse, web};
use todo_domain::DomainError;
use todo_persistence::DatabaseConnection;

use crate::error::ApiError;
use crate::metrics::{CONTENT_TYPE, Metrics};

/// `GET /metrics`: Prometheus text format. Mounted only when
/// `METRICS_ENABLED` is on.
pub async fn metrics(
    metrics: web::Data<Metrics>,
    db: web::Data<DatabaseConnection>,
) -> Result<HttpResponse, ApiError> {
    let text = metrics
        .render(&db)
        .map_err(|error| DomainError::Unexpected(Box::new(error)))?;
    Ok(HttpResponse::Ok().content_type(CONTENT_TYPE).body(text))
}
