use actix_web::{HttpResponse, web};
use todo_persistence::DatabaseConnection;

use crate::dto::StatusResponse;
use crate::error::ApiError;

/// `GET /health`: the process is up. Touches nothing else.
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(StatusResponse { status: "ok" })
}

/// `GET /health/ready`: the database answers.
pub async fn ready(db: web::Data<DatabaseConnection>) -> Result<HttpResponse, ApiError> {
    if todo_persistence::is_ready(&db).await {
        Ok(HttpResponse::Ok().json(StatusResponse { status: "ready" }))
    } else {
        Err(ApiError::NotReady)
    }
}
