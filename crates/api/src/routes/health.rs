use actix_web::{HttpResponse, web};
use todo_persistence::Database;

use crate::dto::StatusResponse;
use crate::error::ApiError;
use crate::openapi::responses::NotReady;

/// Liveness
///
/// The process is up. Touches nothing else.
#[utoipa::path(
    get, path = "/health", tag = "health",
    responses((status = 200, description = "`{\"status\": \"ok\"}`", body = StatusResponse)),
)]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(StatusResponse { status: "ok" })
}

/// Readiness
///
/// The database answers.
#[utoipa::path(
    get, path = "/health/ready", tag = "health",
    responses(
        (status = 200, description = "`{\"status\": \"ready\"}`", body = StatusResponse),
        NotReady,
    ),
)]
pub async fn ready(db: web::Data<Database>) -> Result<HttpResponse, ApiError> {
    if todo_persistence::is_ready(&db).await {
        Ok(HttpResponse::Ok().json(StatusResponse { status: "ready" }))
    } else {
        Err(ApiError::NotReady)
    }
}
