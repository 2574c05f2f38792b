use actix_web::dev::Payload;
use actix_web::http::header::{self, ContentType};
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use futures_util::future::{Ready, ready};
use todo_domain::{DomainError, TaskId, TaskService};

use crate::auth::AuthenticatedUser;
use crate::body::{JsonBody, OptionalJsonBody};
use crate::dto::{CompletionRequest, TaskRequest, TaskResponse};
use crate::error::ApiError;
use crate::openapi::responses::{
    Forbidden, InvalidTask, InvalidTaskId, MalformedBody, MalformedBodyOrTaskId, PayloadTooLarge,
    RequestTimeout, ServiceOrAuthUnavailable, TaskNotFound, Unauthenticated, UnsupportedMediaType,
};

/// The `{id}` segment of a task route, parsed.
pub struct TaskIdPath(TaskId);

impl FromRequest for TaskIdPath {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let parsed = request
            .match_info()
            .get("id")
            .and_then(|raw| TaskId::parse(raw).ok())
            .map(TaskIdPath)
            .ok_or(ApiError::InvalidTaskId);
        ready(parsed)
    }
}

/// List the caller's tasks
///
/// Only the caller's own tasks, newest first (`created_at` descending, then
/// `id` descending).
#[utoipa::path(
    get, path = "/api/tasks", tag = "tasks", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's tasks, newest first.", body = [TaskResponse]),
        Unauthenticated, ServiceOrAuthUnavailable,
    ),
)]
pub async fn list_tasks(
    caller: AuthenticatedUser,
    tasks: web::Data<TaskService>,
) -> Result<HttpResponse, ApiError> {
    let list: Vec<TaskResponse> = tasks
        .list(caller.user_id)
        .await?
        .into_iter()
        .map(TaskResponse::from)
        .collect();
    // Written into a buffer sized for the answer up front: grown from empty,
    // as `HttpResponse::json` does, a list answer is copied several times
    // over while it grows.
    let mut body = Vec::with_capacity(list.len() * TYPICAL_TASK_JSON_BYTES + 2);
    serde_json::to_writer(&mut body, &list)
        .map_err(|error| ApiError::from(DomainError::Unexpected(Box::new(error))))?;
    Ok(HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(body))
}

/// About the size of one task in a list answer with a short title and no
/// description; longer ones grow the buffer as usual.
const TYPICAL_TASK_JSON_BYTES: usize = 224;

/// Create a task
///
/// `completed` defaults to `false`. Fields a client must not set (`id`,
/// `user_id`, timestamps) are ignored.
#[utoipa::path(
    post, path = "/api/tasks", tag = "tasks", security(("bearer" = [])),
    request_body(content = TaskRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Created.", body = TaskResponse,
            headers(("Location" = String, description = "`/api/tasks/{id}` of the new task."))),
        InvalidTask, Unauthenticated, RequestTimeout, PayloadTooLarge, UnsupportedMediaType,
        MalformedBody, ServiceOrAuthUnavailable,
    ),
)]
pub async fn create_task(
    caller: AuthenticatedUser,
    tasks: web::Data<TaskService>,
    JsonBody(body): JsonBody<TaskRequest>,
) -> Result<HttpResponse, ApiError> {
    let task = tasks.create(caller.user_id, body.into_new_task()?).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/tasks/{}", task.id)))
        .json(TaskResponse::from(task)))
}

/// Get one task
#[utoipa::path(
    get, path = "/api/tasks/{id}", tag = "tasks", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The task's id.")),
    responses(
        (status = 200, description = "The task.", body = TaskResponse),
        Unauthenticated, Forbidden, TaskNotFound, InvalidTaskId, ServiceOrAuthUnavailable,
    ),
)]
pub async fn get_task(
    caller: AuthenticatedUser,
    tasks: web::Data<TaskService>,
    TaskIdPath(id): TaskIdPath,
) -> Result<HttpResponse, ApiError> {
    let task = tasks.get(caller.user_id, id).await?;
    Ok(HttpResponse::Ok().json(TaskResponse::from(task)))
}

/// Replace a task's title and description
///
/// An absent `description` clears it; `completed` changes only when sent.
#[utoipa::path(
    put, path = "/api/tasks/{id}", tag = "tasks", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The task's id.")),
    request_body(content = TaskRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The task as it is now.", body = TaskResponse),
        InvalidTask, Unauthenticated, Forbidden, TaskNotFound, RequestTimeout, PayloadTooLarge,
        UnsupportedMediaType, MalformedBodyOrTaskId, ServiceOrAuthUnavailable,
    ),
)]
pub async fn replace_task(
    caller: AuthenticatedUser,
    tasks: web::Data<TaskService>,
    TaskIdPath(id): TaskIdPath,
    JsonBody(body): JsonBody<TaskRequest>,
) -> Result<HttpResponse, ApiError> {
    let task = tasks
        .update(caller.user_id, id, body.into_changes()?)
        .await?;
    Ok(HttpResponse::Ok().json(TaskResponse::from(task)))
}

/// Delete a task
///
/// A second delete of the same task is 404.
#[utoipa::path(
    delete, path = "/api/tasks/{id}", tag = "tasks", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The task's id.")),
    responses(
        (status = 204, description = "Deleted; no body."),
        Unauthenticated, Forbidden, TaskNotFound, InvalidTaskId, ServiceOrAuthUnavailable,
    ),
)]
pub async fn delete_task(
    caller: AuthenticatedUser,
    tasks: web::Data<TaskService>,
    TaskIdPath(id): TaskIdPath,
) -> Result<HttpResponse, ApiError> {
    tasks.delete(caller.user_id, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Complete, reopen or flip a task
///
/// No body, an empty body, or `{}` flips `completed`; `{"completed": true}`
/// or `false` sets it (so repeating it changes nothing). Concurrent flips
/// never lose an update.
#[utoipa::path(
    patch, path = "/api/tasks/{id}/complete", tag = "tasks", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The task's id.")),
    request_body(content = Option<CompletionRequest>, content_type = "application/json",
        description = "Optional."),
    responses(
        (status = 200, description = "The task as it is now.", body = TaskResponse),
        Unauthenticated, Forbidden, TaskNotFound, RequestTimeout, PayloadTooLarge,
        UnsupportedMediaType, MalformedBodyOrTaskId, ServiceOrAuthUnavailable,
    ),
)]
pub async fn change_completion(
    caller: AuthenticatedUser,
    tasks: web::Data<TaskService>,
    TaskIdPath(id): TaskIdPath,
    OptionalJsonBody(body): OptionalJsonBody<CompletionRequest>,
) -> Result<HttpResponse, ApiError> {
    let change = CompletionRequest::change(body);
    let task = tasks.change_completion(caller.user_id, id, change).await?;
    Ok(HttpResponse::Ok().json(TaskResponse::from(task)))
}
