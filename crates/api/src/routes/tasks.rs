use actix_web::dev::Payload;
use actix_web::http::header::{self, ContentType, HeaderName};
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use futures_util::future::{Ready, ready};
use todo_domain::{DomainError, Outcome, TaskId, TaskService};

use crate::auth::AuthenticatedUser;
use crate::body::{JsonBody, JsonBodyWithBytes, MergePatchBody, OptionalJsonBodyWithBytes};
use crate::conditional::{IfNoneMatch, entity_tag, if_match};
use crate::dto::{
    ChangeResponse, ChangesResponse, CompletionRequest, DeletedResponse, TaskPatchRequest,
    TaskRequest, TaskResponse,
};
use crate::error::ApiError;
use crate::list_query::{CursorKeys, ListQuery, parse_changes, parse_clear_completed};
use crate::openapi::params::{
    ChangesParams, ClearCompletedParams, IdempotencyKeyParam, IfMatchParam, IfNoneMatchParam,
    ListTasksParams,
};
use crate::openapi::responses::{
    CreateConflict, CursorExpired, Forbidden, InvalidChangesQuery, InvalidClearQuery,
    InvalidIdempotencyKey, InvalidListQuery, InvalidNewTask, InvalidTask, InvalidTaskId, KeyInUse,
    MalformedBodyOrTaskId, MalformedCreate, MalformedRetryOrTaskId, PayloadTooLarge,
    PreconditionFailed, RequestTimeout, ServiceOrAuthUnavailable, TaskNotFound, Unauthenticated,
    UnsupportedMediaType, UnsupportedPatchType,
};
use crate::retry::{TaskAnswer, idempotency_key, idempotent_request, respond};

/// How many tasks match the list's filters in all, on every page.
pub const X_TOTAL_COUNT: HeaderName = HeaderName::from_static("x-total-count");

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
/// Only the caller's own tasks, filtered, sorted and paged as the query
/// says; without a query, all of them, newest first (`created_at`
/// descending, then `id` descending). Every answer says in
/// `X-Total-Count` how many tasks match in all; a page that is not the
/// last links to the next one in `Link`. Pages are found by position, so
/// a walk never skips or repeats a task that existed throughout it.
#[utoipa::path(
    get, path = "/api/tasks", tag = "tasks", security(("bearer" = [])),
    params(ListTasksParams),
    responses(
        (status = 200, description = "The caller's tasks that match, in the order asked for.",
            body = [TaskResponse],
            headers(
                ("X-Total-Count" = u64, description = "How many tasks match the filters in all, \
                    the same on every page."),
                ("Link" = String, description = "Only when more tasks follow: \
                    `</api/tasks?…&cursor=…>; rel=\"next\"`, this query in canonical form with \
                    the cursor of the next page."),
            )),
        InvalidListQuery, Unauthenticated, ServiceOrAuthUnavailable,
    ),
)]
pub async fn list_tasks(
    request: HttpRequest,
    caller: AuthenticatedUser,
    tasks: web::Data<TaskService>,
    cursors: web::Data<CursorKeys>,
) -> Result<HttpResponse, ApiError> {
    let list = ListQuery::parse(request.query_string(), &cursors, caller.user_id)?;
    let page = tasks.list(caller.user_id, &list.query).await?;
    let link = page.next.as_ref().map(|next| {
        format!(
            "<{}>; rel=\"next\"",
            list.next_link(next, &cursors, caller.user_id)
        )
    });
    let answer: Vec<TaskResponse> = page.tasks.into_iter().map(TaskResponse::from).collect();
    // Written into a buffer sized for the answer up front: grown from empty,
    // as `HttpResponse::json` does, a list answer is copied several times
    // over while it grows.
    let mut body = Vec::with_capacity(answer.len() * TYPICAL_TASK_JSON_BYTES + 2);
    serde_json::to_writer(&mut body, &answer)
        .map_err(|error| ApiError::from(DomainError::Unexpected(Box::new(error))))?;
    let mut response = HttpResponse::Ok();
    response
        .content_type(ContentType::json())
        .insert_header((X_TOTAL_COUNT, page.total));
    if let Some(link) = link {
        response.insert_header((header::LINK, link));
    }
    Ok(response.body(body))
}

/// About the size of one task in a list answer with a short title and no
/// description; longer ones grow the buffer as usual.
const TYPICAL_TASK_JSON_BYTES: usize = 288;

/// Read what changed
///
/// The caller's changes after `since`, in the order they happened: a task
/// created or changed is an `upsert` with its latest state, a deleted one a
/// `delete` with its id; each task at most once, at the position of its
/// latest change. Without `since`, every current task as an `upsert`. At
/// most 500 changes a page; `has_more` says more follow at once. Either
/// way, send `cursor` back as `since` to read what changed after.
#[utoipa::path(
    get, path = "/api/tasks/changes", tag = "tasks", security(("bearer" = [])),
    params(ChangesParams),
    responses(
        (status = 200, description = "What changed after `since`, and where to read on.",
            body = ChangesResponse),
        InvalidChangesQuery, Unauthenticated, CursorExpired, ServiceOrAuthUnavailable,
    ),
)]
pub async fn task_changes(
    request: HttpRequest,
    caller: AuthenticatedUser,
    tasks: web::Data<TaskService>,
    cursors: web::Data<CursorKeys>,
) -> Result<HttpResponse, ApiError> {
    let since = parse_changes(request.query_string(), &cursors, caller.user_id)?;
    let page = tasks.changes(caller.user_id, since).await?;
    Ok(HttpResponse::Ok().json(ChangesResponse {
        cursor: cursors.seal_feed(page.next, caller.user_id),
        has_more: page.has_more,
        changes: page.changes.into_iter().map(ChangeResponse::from).collect(),
    }))
}

/// Clear completed tasks
///
/// Deletes every completed task of the caller. The query must be exactly
/// `completed=true`; anything else deletes nothing and answers 400.
#[utoipa::path(
    delete, path = "/api/tasks", tag = "tasks", security(("bearer" = [])),
    params(ClearCompletedParams),
    responses(
        (status = 200, description = "How many tasks were deleted.", body = DeletedResponse),
        InvalidClearQuery, Unauthenticated, ServiceOrAuthUnavailable,
    ),
)]
pub async fn delete_completed_tasks(
    request: HttpRequest,
    caller: AuthenticatedUser,
    tasks: web::Data<TaskService>,
) -> Result<HttpResponse, ApiError> {
    parse_clear_completed(request.query_string())?;
    let deleted = tasks.delete_completed(caller.user_id).await?;
    Ok(HttpResponse::Ok().json(DeletedResponse { deleted }))
}

/// Create a task
///
/// `completed` defaults to `false`, `due_at` to none, `priority` to `none`
/// and `labels` to none. Fields a client must not set (`id`, `user_id`,
/// `completed_at`, timestamps) are ignored.
///
/// With an `Idempotency-Key`, a retry of the same request (same body as a
/// JSON value) within 24 hours answers the first answer again, with
/// `Idempotent-Replayed: true`, and creates nothing.
#[utoipa::path(
    post, path = "/api/tasks", tag = "tasks", security(("bearer" = [])),
    params(IdempotencyKeyParam),
    request_body(content = TaskRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Created (or, with `Idempotent-Replayed: true`, the answer \
            to the first request with this `Idempotency-Key`).", body = TaskResponse,
            headers(
                ("Location" = String, description = "`/api/tasks/{id}` of the new task."),
                ("ETag" = String, description = "The task's entity tag."),
                ("Idempotent-Replayed" = String, description = "`true` on a replayed answer; \
                    absent otherwise."),
            )),
        InvalidNewTask, Unauthenticated, RequestTimeout, CreateConflict, PayloadTooLarge,
        UnsupportedMediaType, MalformedCreate, ServiceOrAuthUnavailable,
    ),
)]
pub async fn create_task(
    request: HttpRequest,
    caller: AuthenticatedUser,
    tasks: web::Data<TaskService>,
    body: JsonBodyWithBytes<TaskRequest>,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&request)?;
    let new_task = body.value.into_new_task()?;
    let retry = key
        .map(|key| idempotent_request(key, "POST", "/api/tasks", &body.bytes, TaskAnswer::Created))
        .transpose()?;
    Ok(match tasks.create(caller.user_id, new_task, retry).await? {
        Outcome::Done(task) => TaskAnswer::Created.respond(task),
        Outcome::Replayed(recorded) => respond(recorded, true),
    })
}

/// Get one task
///
/// With `If-None-Match` naming the task's current `ETag` (or `*`), 304 with
/// no body.
#[utoipa::path(
    get, path = "/api/tasks/{id}", tag = "tasks", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The task's id."), IfNoneMatchParam),
    responses(
        (status = 200, description = "The task.", body = TaskResponse,
            headers(("ETag" = String, description = "The task's entity tag."))),
        (status = 304, description = "The task is still as `If-None-Match` names it; no body.",
            headers(("ETag" = String, description = "The task's entity tag."))),
        Unauthenticated, Forbidden, TaskNotFound, InvalidTaskId, ServiceOrAuthUnavailable,
    ),
)]
pub async fn get_task(
    request: HttpRequest,
    caller: AuthenticatedUser,
    tasks: web::Data<TaskService>,
    TaskIdPath(id): TaskIdPath,
) -> Result<HttpResponse, ApiError> {
    let task = tasks.get(caller.user_id, id).await?;
    if IfNoneMatch::of(&request).matches(task.version) {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, entity_tag(task.version)))
            .finish());
    }
    Ok(TaskAnswer::Ok.respond(task))
}

/// Replace a task's title and description
///
/// An absent `description` clears it; `completed`, `due_at`, `priority`
/// and `labels` change only when sent (`null` resets the last three to
/// their defaults), so a client that does not know them never erases them.
/// A replacement that changes nothing leaves `updated_at` and the `ETag`
/// as they were.
#[utoipa::path(
    put, path = "/api/tasks/{id}", tag = "tasks", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The task's id."), IfMatchParam),
    request_body(content = TaskRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The task as it is now.", body = TaskResponse,
            headers(("ETag" = String, description = "The task's entity tag."))),
        InvalidTask, Unauthenticated, Forbidden, TaskNotFound, RequestTimeout,
        PreconditionFailed, PayloadTooLarge, UnsupportedMediaType, MalformedBodyOrTaskId,
        ServiceOrAuthUnavailable,
    ),
)]
pub async fn replace_task(
    request: HttpRequest,
    caller: AuthenticatedUser,
    tasks: web::Data<TaskService>,
    TaskIdPath(id): TaskIdPath,
    JsonBody(body): JsonBody<TaskRequest>,
) -> Result<HttpResponse, ApiError> {
    let patch = body.into_patch()?;
    let task = tasks
        .update(caller.user_id, id, patch, if_match(&request))
        .await?;
    Ok(TaskAnswer::Ok.respond(task))
}

/// Change some of a task's fields
///
/// A JSON Merge Patch (RFC 7396): a member left out keeps its field;
/// `null` clears `description` and `due_at` and resets `priority` to
/// `none` and `labels` to none. `title` and `completed` cannot be `null`.
/// The same rules and codes as creation apply to every value sent. A patch
/// that changes nothing leaves `updated_at` and the `ETag` as they were.
#[utoipa::path(
    patch, path = "/api/tasks/{id}", tag = "tasks", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The task's id."), IfMatchParam),
    request_body(content(
        (TaskPatchRequest = "application/merge-patch+json"),
        (TaskPatchRequest = "application/json"),
    )),
    responses(
        (status = 200, description = "The task as it is now.", body = TaskResponse,
            headers(("ETag" = String, description = "The task's entity tag."))),
        InvalidTask, Unauthenticated, Forbidden, TaskNotFound, RequestTimeout,
        PreconditionFailed, PayloadTooLarge, UnsupportedPatchType, MalformedBodyOrTaskId,
        ServiceOrAuthUnavailable,
    ),
)]
pub async fn patch_task(
    request: HttpRequest,
    caller: AuthenticatedUser,
    tasks: web::Data<TaskService>,
    TaskIdPath(id): TaskIdPath,
    MergePatchBody(body): MergePatchBody<TaskPatchRequest>,
) -> Result<HttpResponse, ApiError> {
    let patch = body.into_patch()?;
    let task = tasks
        .update(caller.user_id, id, patch, if_match(&request))
        .await?;
    Ok(TaskAnswer::Ok.respond(task))
}

/// Delete a task
///
/// A second delete of the same task is 404.
#[utoipa::path(
    delete, path = "/api/tasks/{id}", tag = "tasks", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The task's id."), IfMatchParam),
    responses(
        (status = 204, description = "Deleted; no body."),
        Unauthenticated, Forbidden, TaskNotFound, PreconditionFailed, InvalidTaskId,
        ServiceOrAuthUnavailable,
    ),
)]
pub async fn delete_task(
    request: HttpRequest,
    caller: AuthenticatedUser,
    tasks: web::Data<TaskService>,
    TaskIdPath(id): TaskIdPath,
) -> Result<HttpResponse, ApiError> {
    tasks.delete(caller.user_id, id, if_match(&request)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Complete, reopen or flip a task
///
/// No body, an empty body, or `{}` flips `completed`; `{"completed": true}`
/// or `false` sets it (so repeating it changes nothing). Concurrent flips
/// never lose an update. With an `Idempotency-Key`, a retry of the same
/// request within 24 hours answers the first answer again, with
/// `Idempotent-Replayed: true`, and changes nothing (a retried flip does
/// not flip back).
#[utoipa::path(
    patch, path = "/api/tasks/{id}/complete", tag = "tasks", security(("bearer" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "The task's id."),
        IfMatchParam, IdempotencyKeyParam,
    ),
    request_body(content = Option<CompletionRequest>, content_type = "application/json",
        description = "Optional."),
    responses(
        (status = 200, description = "The task as it is now (or, with \
            `Idempotent-Replayed: true`, the answer to the first request with this \
            `Idempotency-Key`).", body = TaskResponse,
            headers(
                ("ETag" = String, description = "The task's entity tag."),
                ("Idempotent-Replayed" = String, description = "`true` on a replayed answer; \
                    absent otherwise."),
            )),
        InvalidIdempotencyKey, Unauthenticated, Forbidden, TaskNotFound, RequestTimeout,
        KeyInUse, PreconditionFailed, PayloadTooLarge, UnsupportedMediaType,
        MalformedRetryOrTaskId, ServiceOrAuthUnavailable,
    ),
)]
pub async fn change_completion(
    request: HttpRequest,
    caller: AuthenticatedUser,
    tasks: web::Data<TaskService>,
    TaskIdPath(id): TaskIdPath,
    body: OptionalJsonBodyWithBytes<CompletionRequest>,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&request)?;
    let change = CompletionRequest::change(body.value);
    let retry = key
        .map(|key| {
            let path = format!("/api/tasks/{id}/complete");
            idempotent_request(key, "PATCH", &path, &body.bytes, TaskAnswer::Ok)
        })
        .transpose()?;
    let outcome = tasks
        .change_completion(caller.user_id, id, change, if_match(&request), retry)
        .await?;
    Ok(match outcome {
        Outcome::Done(task) => TaskAnswer::Ok.respond(task),
        Outcome::Replayed(recorded) => respond(recorded, true),
    })
}
