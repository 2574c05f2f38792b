//! Parameters of the task routes, for the document only: the handlers read
//! the query string and the headers themselves (`list_query`,
//! `conditional`, `retry`). Built by hand rather than derived, because the
//! derive drops `required` and `style` from parameters whose schema is
//! computed, and these schemas are (from the domain's rules).

use utoipa::IntoParams;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn, ParameterStyle};
use utoipa::openapi::{Required, Schema};

use super::schemas;

fn parameter(
    name: &str,
    location: ParameterIn,
    required: bool,
    schema: Schema,
    description: &str,
) -> ParameterBuilder {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(location)
        .required(if required {
            Required::True
        } else {
            Required::False
        })
        .description(Some(description))
        .schema(Some(schema))
}

/// The query of `GET /api/tasks`. All optional and combined with AND; a
/// parameter that is unknown, repeated (only `label` may repeat) or has a
/// bad value is 400 `invalid_query` naming it.
pub struct ListTasksParams;

impl IntoParams for ListTasksParams {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let query = |name, schema, description| {
            parameter(name, ParameterIn::Query, false, schema, description).build()
        };
        vec![
            query(
                "completed",
                schemas::completed_filter(),
                "`true`: done tasks only; `false`: open tasks only.",
            ),
            query(
                "priority",
                schemas::priority_filter(),
                "Comma-separated priorities (`high,medium`): tasks with any of them.",
            ),
            parameter(
                "label",
                ParameterIn::Query,
                false,
                schemas::label_filter(),
                "Tasks carrying this label (compared without case); repeat it \
                 (`label=work&label=home`) for tasks carrying every one.",
            )
            .style(Some(ParameterStyle::Form))
            .explode(Some(true))
            .build(),
            query(
                "due_before",
                schemas::instant_filter(),
                "Tasks due strictly before this instant; tasks without `due_at` never match.",
            ),
            query(
                "due_after",
                schemas::instant_filter(),
                "Tasks due at or after this instant; tasks without `due_at` never match.",
            ),
            query(
                "overdue",
                schemas::overdue_filter(),
                "`true`: tasks due before now and not done; `false`: every other task.",
            ),
            query(
                "q",
                schemas::search_filter(),
                "Text to find, literally and without the case of ASCII letters, in the title, \
                 the description or a label. Empty: no filter.",
            ),
            query(
                "sort",
                schemas::sort_parameter(),
                "The field to sort by; default `created_at`.",
            ),
            query(
                "order",
                schemas::order_parameter(),
                "`asc` or `desc`; default `desc`, but `asc` for `sort=title` and `sort=due_at`.",
            ),
            query(
                "limit",
                schemas::limit_parameter(),
                "Page size, 1 to 100. Without it the whole list comes back.",
            ),
            query(
                "cursor",
                schemas::cursor_parameter(),
                "Where the page starts: copy it from the `Link` of the page before.",
            ),
        ]
    }
}

/// The query of `DELETE /api/tasks`: exactly `completed=true`.
pub struct ClearCompletedParams;

impl IntoParams for ClearCompletedParams {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            parameter(
                "completed",
                ParameterIn::Query,
                true,
                schemas::clear_completed_parameter(),
                "Must be `true`: the call deletes the caller's completed tasks.",
            )
            .build(),
        ]
    }
}

/// The query of `GET /api/tasks/changes`.
pub struct ChangesParams;

impl IntoParams for ChangesParams {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            parameter(
                "since",
                ParameterIn::Query,
                false,
                schemas::since_parameter(),
                "The `cursor` of an earlier answer: only what changed after it. Without it, \
                 every current task as an `upsert`.",
            )
            .build(),
        ]
    }
}

/// The query and header of `GET /api/tasks/events`.
pub struct EventsParams;

impl IntoParams for EventsParams {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            parameter(
                "since",
                ParameterIn::Query,
                false,
                schemas::since_parameter(),
                "A feed cursor (an event's `id`, or the feed's `cursor`): first replay what \
                 changed after it, then go live. `Last-Event-ID` wins over it.",
            )
            .build(),
            parameter(
                "Last-Event-ID",
                ParameterIn::Header,
                false,
                schemas::since_parameter(),
                "The `id` of the last event received: replay what changed after it, then go \
                 live.",
            )
            .build(),
        ]
    }
}

/// `If-Match` on the writes of one task.
pub struct IfMatchParam;

impl IntoParams for IfMatchParam {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            parameter(
                "If-Match",
                ParameterIn::Header,
                false,
                schemas::if_match_header(),
                "Write only if the task's `ETag` is one of these tags (or `*`); else 412.",
            )
            .build(),
        ]
    }
}

/// `If-None-Match` on the read of one task.
pub struct IfNoneMatchParam;

impl IntoParams for IfNoneMatchParam {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            parameter(
                "If-None-Match",
                ParameterIn::Header,
                false,
                schemas::if_none_match_header(),
                "304 with no body if the task's `ETag` is one of these tags (or `*`).",
            )
            .build(),
        ]
    }
}

/// `Idempotency-Key` on the retry-safe routes.
pub struct IdempotencyKeyParam;

impl IntoParams for IdempotencyKeyParam {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            parameter(
                "Idempotency-Key",
                ParameterIn::Header,
                false,
                schemas::idempotency_key_header(),
                "Makes the request safe to retry: a retry with the same key and request \
                 answers the first answer again and does nothing.",
            )
            .build(),
        ]
    }
}
