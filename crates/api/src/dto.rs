//! The JSON shapes of requests and responses. Requests hold raw values and
//! become domain values through `into_domain`; responses are built from
//! domain values and never expose more than the contract shows.

use serde::{Deserialize, Serialize, Serializer};
use todo_domain::{
    CompletionChange, DomainError, NewTask, Task, TaskChanges, TaskDescription, TaskTitle,
    Timestamp, User,
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

/// Body of `POST /api/tasks` and `PUT /api/tasks/{id}`. Fields a client
/// must not set (`id`, `user_id`, timestamps) are simply not read.
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
}

impl TaskRequest {
    /// A new task; `completed` defaults to false.
    ///
    /// # Errors
    /// `InvalidTitle` or `InvalidDescription`.
    pub fn into_new_task(self) -> Result<NewTask, DomainError> {
        Ok(NewTask {
            title: TaskTitle::parse(&self.title)?,
            description: TaskDescription::parse(self.description.as_deref())?,
            completed: self.completed.unwrap_or(false),
        })
    }

    /// A replacement: an absent description clears it, an absent
    /// `completed` keeps the current state.
    ///
    /// # Errors
    /// `InvalidTitle` or `InvalidDescription`.
    pub fn into_changes(self) -> Result<TaskChanges, DomainError> {
        Ok(TaskChanges {
            title: TaskTitle::parse(&self.title)?,
            description: TaskDescription::parse(self.description.as_deref())?,
            completed: self.completed,
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
            created_at: task.created_at,
            updated_at: task.updated_at,
        }
    }
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
