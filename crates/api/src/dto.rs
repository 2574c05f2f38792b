//! The JSON shapes of requests and responses. Requests hold raw values and
//! become domain values through `into_domain`; responses are built from
//! domain values and never expose more than the contract shows.

use serde::de::{Error as _, Unexpected};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use todo_domain::{
    Change, CompletionChange, DomainError, Labels, NewTask, Priority, Task, TaskDescription,
    TaskPatch, TaskTitle, TaskTitleError, Timestamp, User, parse_client_instant,
};
use utoipa::ToSchema;

use uuid::Uuid;

use crate::auth::IssuedToken;

/// Writes `stamp` as RFC 3339 in UTC with exactly six fraction digits and
/// a `Z` (`2026-02-06T10:15:30.123456Z`), the domain's fixed-width form.
fn serialize_timestamp<S: Serializer>(stamp: &Timestamp, serializer: S) -> Result<S::Ok, S::Error> {
    let Some(text) = stamp.fixed_rfc3339_bytes() else {
        // Four-digit years cover every instant this service can produce;
        // the general formatter handles (or refuses) anything else.
        let text = stamp
            .as_datetime()
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(serde::ser::Error::custom)?;
        return serializer.serialize_str(&text);
    };
    serializer.serialize_str(std::str::from_utf8(&text).map_err(serde::ser::Error::custom)?)
}

fn serialize_optional_timestamp<S: Serializer>(
    stamp: &Option<Timestamp>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match stamp {
        Some(stamp) => serialize_timestamp(stamp, serializer),
        None => serializer.serialize_none(),
    }
}

/// Body of sign-up and sign-in.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = Credentials)]
pub struct CredentialsRequest {
    /// As typed; normalised by the domain.
    #[schema(schema_with = crate::openapi::schemas::email)]
    pub email: String,
    /// As typed.
    #[schema(schema_with = crate::openapi::schemas::password)]
    pub password: String,
}

/// A member of a JSON object as the client sent it: left out, `null`, or a
/// value. PUT and PATCH tell the three apart (absent keeps a field, `null`
/// resets it), which `Option` cannot.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Member<T> {
    /// Not in the object.
    #[default]
    Absent,
    /// `null`.
    Null,
    /// A value of the expected JSON type.
    Value(T),
}

/// A JSON type a field may hold, with the words a 422 uses for it. The
/// value is checked after it is read as a plain JSON tree, so a refusal
/// can name the kind of value found without quoting it (a client's value
/// never comes back in an error).
pub trait JsonKind: Sized {
    /// What the field expects, as a 422 says it.
    const EXPECTED: &'static str;
    /// The same, where `null` is allowed too.
    const EXPECTED_OR_NULL: &'static str;
    /// The value, if it is of this kind.
    fn from_json(value: Value) -> Option<Self>;
}

impl JsonKind for String {
    const EXPECTED: &'static str = "a string";
    const EXPECTED_OR_NULL: &'static str = "a string or null";
    fn from_json(value: Value) -> Option<Self> {
        match value {
            Value::String(text) => Some(text),
            _ => None,
        }
    }
}

impl JsonKind for bool {
    const EXPECTED: &'static str = "a boolean";
    const EXPECTED_OR_NULL: &'static str = "a boolean or null";
    fn from_json(value: Value) -> Option<Self> {
        value.as_bool()
    }
}

impl JsonKind for Vec<String> {
    const EXPECTED: &'static str = "an array of strings";
    const EXPECTED_OR_NULL: &'static str = "an array of strings or null";
    fn from_json(value: Value) -> Option<Self> {
        match value {
            Value::Array(items) => items.into_iter().map(String::from_json).collect(),
            _ => None,
        }
    }
}

/// The kind of a JSON value, for a refusal that must not quote it.
fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads a value of kind `T`, or refuses naming only the kinds.
fn of_kind<'de, D: Deserializer<'de>, T: JsonKind>(
    value: Value,
    expected: &'static str,
) -> Result<T, D::Error> {
    let found = kind_of(&value);
    T::from_json(value).ok_or_else(|| D::Error::invalid_type(Unexpected::Other(found), &expected))
}

impl<'de, T: JsonKind> Deserialize<'de> for Member<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::Null => Ok(Self::Null),
            value => of_kind::<D, T>(value, T::EXPECTED_OR_NULL).map(Self::Value),
        }
    }
}

/// For `#[serde(deserialize_with)]`: a member that may be left out but,
/// when sent, must be a `T` (`null` included in what is refused).
fn present<'de, D: Deserializer<'de>, T: JsonKind>(deserializer: D) -> Result<Option<T>, D::Error> {
    of_kind::<D, T>(Value::deserialize(deserializer)?, T::EXPECTED).map(Some)
}

fn due_at_of(raw: &str) -> Result<Timestamp, DomainError> {
    parse_client_instant(raw).map_err(DomainError::InvalidDueAt)
}

fn priority_of(raw: &str) -> Result<Priority, DomainError> {
    Ok(Priority::parse(raw)?)
}

fn labels_of(raw: &[String]) -> Result<Labels, DomainError> {
    Ok(Labels::parse(raw)?)
}

/// A due date, priority or labels member as a change: absent keeps the
/// field, `null` sets its default.
fn change_of<T, V>(
    member: Member<T>,
    default: V,
    parse: impl FnOnce(T) -> Result<V, DomainError>,
) -> Result<Option<V>, DomainError> {
    match member {
        Member::Absent => Ok(None),
        Member::Null => Ok(Some(default)),
        Member::Value(raw) => parse(raw).map(Some),
    }
}

/// Body of `POST /api/tasks` and `PUT /api/tasks/{id}`. Fields a client
/// must not set (`id`, `user_id`, `completed_at`, timestamps) are simply
/// not read.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = TaskInput)]
pub struct TaskRequest {
    #[schema(schema_with = crate::openapi::schemas::title)]
    title: String,
    #[serde(default)]
    #[schema(schema_with = crate::openapi::schemas::description)]
    description: Option<String>,
    /// On creation, defaults to `false`; on replacement, left as it is
    /// when absent or `null`.
    #[serde(default)]
    completed: Option<bool>,
    #[serde(default)]
    #[schema(schema_with = crate::openapi::schemas::due_at_input)]
    due_at: Member<String>,
    #[serde(default)]
    #[schema(schema_with = crate::openapi::schemas::priority_input)]
    priority: Member<String>,
    #[serde(default)]
    #[schema(schema_with = crate::openapi::schemas::labels_input)]
    labels: Member<Vec<String>>,
}

impl TaskRequest {
    /// A new task; `completed` defaults to false, and the other fields,
    /// absent or `null`, to their defaults.
    ///
    /// # Errors
    /// The first field that breaks its rule, in the order of the fields.
    pub fn into_new_task(self) -> Result<NewTask, DomainError> {
        let title = TaskTitle::parse(&self.title)?;
        let description = TaskDescription::parse(self.description.as_deref())?;
        let due_at = change_of(self.due_at, None, |raw| due_at_of(&raw).map(Some))?;
        let priority = change_of(self.priority, Priority::None, |raw| priority_of(&raw))?;
        let labels = change_of(self.labels, Labels::none(), |raw| labels_of(&raw))?;
        Ok(NewTask {
            title,
            description,
            completed: self.completed.unwrap_or(false),
            due_at: due_at.flatten(),
            priority: priority.unwrap_or_default(),
            labels: labels.unwrap_or_default(),
        })
    }

    /// A replacement: title and description always (an absent description
    /// clears it); `completed`, `due_at`, `priority` and `labels` only when
    /// sent, so a client that does not know them never erases them.
    ///
    /// # Errors
    /// The first field that breaks its rule, in the order of the fields.
    pub fn into_patch(self) -> Result<TaskPatch, DomainError> {
        Ok(TaskPatch {
            title: Some(TaskTitle::parse(&self.title)?),
            description: Some(TaskDescription::parse(self.description.as_deref())?),
            completed: self.completed,
            due_at: change_of(self.due_at, None, |raw| due_at_of(&raw).map(Some))?,
            priority: change_of(self.priority, Priority::None, |raw| priority_of(&raw))?,
            labels: change_of(self.labels, Labels::none(), |raw| labels_of(&raw))?,
        })
    }
}

/// Body of `PATCH /api/tasks/{id}`: a JSON Merge Patch (RFC 7396) of the
/// client fields. A member left out keeps its field; `null` clears it.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = TaskPatchInput)]
pub struct TaskPatchRequest {
    #[serde(default)]
    #[schema(schema_with = crate::openapi::schemas::title)]
    title: Member<String>,
    #[serde(default)]
    #[schema(schema_with = crate::openapi::schemas::description)]
    description: Member<String>,
    /// `true` or `false`; `null` is refused (422).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = bool)]
    completed: Option<bool>,
    #[serde(default)]
    #[schema(schema_with = crate::openapi::schemas::due_at_input)]
    due_at: Member<String>,
    #[serde(default)]
    #[schema(schema_with = crate::openapi::schemas::priority_input)]
    priority: Member<String>,
    #[serde(default)]
    #[schema(schema_with = crate::openapi::schemas::labels_input)]
    labels: Member<Vec<String>>,
}

impl TaskPatchRequest {
    /// The change the patch asks for. A title cannot be cleared: `null`
    /// breaks the rule that a title is never empty.
    ///
    /// # Errors
    /// The first field that breaks its rule, in the order of the fields.
    pub fn into_patch(self) -> Result<TaskPatch, DomainError> {
        let title = match self.title {
            Member::Absent => None,
            Member::Null => return Err(TaskTitleError::Empty.into()),
            Member::Value(raw) => Some(TaskTitle::parse(&raw)?),
        };
        let description = change_of(self.description, None, |raw| {
            TaskDescription::parse(Some(&raw)).map_err(DomainError::from)
        })?;
        Ok(TaskPatch {
            title,
            description,
            completed: self.completed,
            due_at: change_of(self.due_at, None, |raw| due_at_of(&raw).map(Some))?,
            priority: change_of(self.priority, Priority::None, |raw| priority_of(&raw))?,
            labels: change_of(self.labels, Labels::none(), |raw| labels_of(&raw))?,
        })
    }
}

/// Optional body of `PATCH /api/tasks/{id}/complete`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = CompletionInput)]
pub struct CompletionRequest {
    /// `true` or `false` sets the state; absent or `null` flips it.
    #[serde(default)]
    completed: Option<bool>,
}

impl CompletionRequest {
    /// No body, `{}` or `{"completed": null}` flip; a boolean sets.
    #[must_use]
    pub fn change(body: Option<Self>) -> CompletionChange {
        match body.and_then(|body| body.completed) {
            Some(value) => CompletionChange::Set(value),
            None => CompletionChange::Toggle,
        }
    }
}

/// A task as clients see it: no owner.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Task)]
pub struct TaskResponse {
    id: Uuid,
    /// Trimmed, 1 to 500 characters.
    title: String,
    /// Trimmed, 1 to 2000 characters, or `null`.
    #[schema(required = true)]
    description: Option<String>,
    completed: bool,
    /// When the change that made the task done happened (its creation, for
    /// a task created done); `null` exactly while `completed` is false.
    #[serde(serialize_with = "serialize_optional_timestamp")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    completed_at: Option<Timestamp>,
    /// When the task is due, in UTC; `null` when it has no due date.
    #[serde(serialize_with = "serialize_optional_timestamp")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    due_at: Option<Timestamp>,
    #[schema(schema_with = crate::openapi::schemas::priority_output)]
    priority: &'static str,
    /// Trimmed, no two equal but for case, in the order first sent.
    labels: Vec<String>,
    #[serde(serialize_with = "serialize_timestamp")]
    #[schema(value_type = String, format = DateTime, example = "2026-02-06T10:15:30.123456Z")]
    created_at: Timestamp,
    #[serde(serialize_with = "serialize_timestamp")]
    #[schema(value_type = String, format = DateTime, example = "2026-02-06T10:15:30.123456Z")]
    updated_at: Timestamp,
}

impl From<Task> for TaskResponse {
    fn from(task: Task) -> Self {
        Self {
            id: task.id.as_uuid(),
            title: task.title.into_string(),
            description: task.description.map(TaskDescription::into_string),
            completed: task.completed,
            completed_at: task.completed_at,
            due_at: task.due_at,
            priority: task.priority.as_str(),
            labels: task.labels.names().map(str::to_owned).collect(),
            created_at: task.created_at,
            updated_at: task.updated_at,
        }
    }
}

/// One change of the feed: a task as it is now, or the id of a deleted
/// one.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "op", rename_all = "lowercase")]
#[schema(as = Change)]
pub enum ChangeResponse {
    /// The task was created or changed; this is its latest state.
    Upsert {
        /// The task, as `GET /api/tasks/{id}` answers it.
        task: TaskResponse,
    },
    /// The task was deleted.
    Delete {
        /// The deleted task's id.
        id: Uuid,
    },
}

impl From<Change> for ChangeResponse {
    fn from(change: Change) -> Self {
        match change {
            Change::Upsert(task) => Self::Upsert {
                task: TaskResponse::from(task),
            },
            Change::Delete(id) => Self::Delete { id: id.as_uuid() },
        }
    }
}

/// A page of the changes feed.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Changes)]
pub struct ChangesResponse {
    /// What changed, oldest first; each task at most once, at its latest
    /// change. At most 500.
    pub changes: Vec<ChangeResponse>,
    /// Opaque: send it back as `since` to read what changed after this
    /// page.
    #[schema(pattern = "^[A-Za-z0-9_-]+$")]
    pub cursor: String,
    /// Whether more changes follow at once: read again with `cursor`.
    pub has_more: bool,
}

/// The answer to `DELETE /api/tasks?completed=true`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Deleted)]
pub struct DeletedResponse {
    /// How many tasks were deleted.
    pub deleted: u64,
}

/// A user's profile: no password hash.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = User)]
pub struct UserResponse {
    id: Uuid,
    /// Trimmed and lowercased.
    #[schema(example = "ada@example.io")]
    email: String,
    #[serde(serialize_with = "serialize_timestamp")]
    #[schema(value_type = String, format = DateTime, example = "2026-02-06T10:15:30.123456Z")]
    created_at: Timestamp,
    /// `null` until the first sign-in.
    #[serde(serialize_with = "serialize_optional_timestamp")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    last_signin_at: Option<Timestamp>,
}

impl From<User> for UserResponse {
    fn from(user: User) -> Self {
        Self {
            id: user.id.as_uuid(),
            email: user.email.as_str().to_owned(),
            created_at: user.created_at,
            last_signin_at: user.last_signin_at,
        }
    }
}

/// The answer to a successful sign-up or sign-in.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthResponse {
    /// A JWT (HS256) to send as `Authorization: Bearer <access_token>`.
    access_token: String,
    /// Always `bearer`.
    #[schema(value_type = String, pattern = "^bearer$", example = "bearer")]
    token_type: &'static str,
    /// Seconds until the token expires.
    #[schema(example = 86400)]
    expires_in: u64,
    user: UserResponse,
}

impl AuthResponse {
    /// Pairs a token with the profile it was issued for.
    #[must_use]
    pub fn new(token: IssuedToken, user: User) -> Self {
        Self {
            access_token: token.access_token,
            token_type: "bearer",
            expires_in: token.expires_in,
            user: user.into(),
        }
    }
}

/// The body of the health endpoints.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Status)]
pub struct StatusResponse {
    /// `ok` or `ready`.
    #[schema(value_type = String, example = "ok")]
    pub status: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn timestamps_have_six_fraction_digits_and_a_z() {
        let user = User {
            id: todo_domain::UserId::generate(),
            email: todo_domain::Email::parse("a@b.io").unwrap(),
            created_at: Timestamp::from_datetime(datetime!(2026-02-06 10:15:30.1 UTC)),
            last_signin_at: None,
        };
        let json = serde_json::to_value(UserResponse::from(user)).unwrap();
        assert_eq!(json["created_at"], "2026-02-06T10:15:30.100000Z");
        assert!(json["last_signin_at"].is_null());
    }

    #[test]
    fn the_hand_written_format_matches_the_general_one() {
        let instants = [
            datetime!(2026-02-06 10:15:30.123456 UTC),
            datetime!(0001-01-01 00:00:00 UTC),
            datetime!(9999-12-31 23:59:59.999999 UTC),
            datetime!(2024-02-29 07:08:09.000001 UTC),
        ];
        let general = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
        );
        for instant in instants {
            let stamp = Timestamp::from_datetime(instant);
            let mut out = Vec::new();
            serialize_timestamp(&stamp, &mut serde_json::Serializer::new(&mut out)).unwrap();
            let expected = format!("\"{}\"", instant.format(general).unwrap());
            assert_eq!(String::from_utf8(out).unwrap(), expected);
        }
    }

    #[test]
    fn ids_serialize_lowercase_hyphenated() {
        let json = serde_json::to_value(UserResponse::from(User {
            id: todo_domain::UserId::parse("0190A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B").unwrap(),
            email: todo_domain::Email::parse("a@b.io").unwrap(),
            created_at: Timestamp::now(),
            last_signin_at: None,
        }))
        .unwrap();
        assert_eq!(json["id"], "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
    }
}
