use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use futures_util::future::{Ready, ready};
use todo_domain::{TaskId, TaskService};

use crate::auth::AuthenticatedUser;
use crate::body::{JsonBody, OptionalJsonBody};
use crate::dto::{CompletionRequest, TaskRequest, TaskResponse};
use crate::error::ApiError;

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

/// `GET /api/tasks`
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
    Ok(HttpResponse::Ok().json(list))
}

/// `POST /api/tasks`
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

/// `GET /api/tasks/{id}`
pub async fn get_task(
    caller: AuthenticatedUser,
    tasks: web::Data<TaskService>,
    TaskIdPath(id): TaskIdPath,
) -> Result<HttpResponse, ApiError> {
    let task = tasks.get(caller.user_id, id).await?;
    Ok(HttpResponse::Ok().json(TaskResponse::from(task)))
}

/// `PUT /api/tasks/{id}`
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

/// `DELETE /api/tasks/{id}`
pub async fn delete_task(
    caller: AuthenticatedUser,
    tasks: web::Data<TaskService>,
    TaskIdPath(id): TaskIdPath,
) -> Result<HttpResponse, ApiError> {
    tasks.delete(caller.user_id, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `PATCH /api/tasks/{id}/complete`
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
