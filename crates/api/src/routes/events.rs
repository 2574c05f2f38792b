//! `GET /api/tasks/events`: the caller's changes, live, as server-sent
//! events (contract section 7, specs/004-sync/spec.md).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::time::Duration;

use actix_web::http::ConnectionType;
use actix_web::http::header::HeaderName;
use actix_web::{HttpRequest, HttpResponse, Responder, web};
use actix_web_lab::sse;
use futures_util::StreamExt;
use todo_domain::{DomainError, FeedPosition, TaskService, UserId};

use crate::auth::AuthenticatedUser;
use crate::connection_watch::InProgress;
use crate::error::ApiError;
use crate::events::{EventPage, StreamHub, StreamSlot, Wake};
use crate::list_query::{CursorKeys, parse_changes};
use crate::openapi::params::EventsParams;
use crate::openapi::responses::{
    CursorExpired, InvalidChangesQuery, ServiceOrAuthUnavailable, TooManyStreams, Unauthenticated,
};

/// The header a reconnecting client names its last event with.
pub const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// How many times a stream tries to read the feed while the database is
/// unavailable, [`READ_RETRY_PAUSE`] apart: long enough to ride out a
/// database restart.
const READ_ATTEMPTS: u32 = 20;
const READ_RETRY_PAUSE: Duration = Duration::from_millis(500);

/// How often an open stream carries a comment at the least.
#[derive(Debug, Clone, Copy)]
pub struct StreamHeartbeat(pub Duration);

/// Follow changes live
///
/// A `text/event-stream` of the caller's changes. Each event is one change
/// of the feed (`GET /api/tasks/changes`): `event:` is `upsert` or
/// `delete`, `data:` the change object as the feed gives it, and `id:` a
/// feed cursor standing just after that change. With `Last-Event-ID` (or
/// `since`; the header wins) the stream first replays what changed after
/// that cursor, then goes live; without either, it carries every change
/// made after its headers were sent. A comment line comes at least every
/// 15 seconds. The stream ends when the token expires or the server stops;
/// reconnect with the last `id` to miss nothing. At most 5 streams per
/// user on one instance.
#[utoipa::path(
    get, path = "/api/tasks/events", tag = "tasks", security(("bearer" = [])),
    params(EventsParams),
    responses(
        (status = 200, description = "The stream: events `upsert` and `delete`, each with a \
            cursor as `id:` and a change of the feed as JSON `data:`, and comment lines.",
            content_type = "text/event-stream", body = String),
        InvalidChangesQuery, Unauthenticated, CursorExpired, TooManyStreams,
        ServiceOrAuthUnavailable,
    ),
)]
pub async fn task_events(
    request: HttpRequest,
    caller: AuthenticatedUser,
    tasks: web::Data<TaskService>,
    cursors: web::Data<CursorKeys>,
    hub: web::Data<StreamHub>,
    heartbeat: web::Data<StreamHeartbeat>,
) -> Result<HttpResponse, ApiError> {
    let user = caller.user_id;
    let since = requested_position(&request, &cursors, user)?;
    let slot = hub.open(user).ok_or(ApiError::TooManyStreams)?;
    // The first read happens here, before the headers, so a bad or expired
    // cursor is an error answer rather than a stream that ends at once.
    // The slot was taken first: a write that commits after this read rings
    // its bell.
    let mut reader = Reader {
        tasks: tasks.clone(),
        cursors: cursors.clone(),
        user,
        position: FeedPosition::at(0),
        pending: VecDeque::new(),
        read_more: false,
        slot,
        expiry: Box::pin(tokio::time::sleep(until_expiry(caller.expires_at))),
        _in_progress: InProgress::hold(&request),
    };
    match since {
        Some(since) => {
            reader.position = since;
            let page = tasks.changes(user, Some(since)).await?;
            reader.take(&EventPage::from_feed(page, &cursors, user));
        }
        None => reader.position = tasks.feed_head(user).await?,
    }
    let events = futures_util::stream::unfold(reader, Reader::next).map(Ok::<_, Infallible>);
    let mut response = sse::Sse::from_stream(events)
        .with_keep_alive(heartbeat.0)
        .respond_to(&request);
    // A stream ends only when the token expires or the server stops; the
    // connection closes with it, so a stopping server has no idle
    // keep-alive connection left to wait for.
    response
        .head_mut()
        .set_connection_type(ConnectionType::Close);
    Ok(response)
}

/// `Last-Event-ID`, else `since`. The query's names are checked either
/// way; a `since` the header overrides is not opened.
fn requested_position(
    request: &HttpRequest,
    cursors: &CursorKeys,
    user: UserId,
) -> Result<Option<FeedPosition>, ApiError> {
    let from_query = parse_changes(request.query_string(), cursors, user);
    // An empty id is how the event-stream format says "no last event", so
    // an empty header counts as none.
    let Some(header) = request
        .headers()
        .get(&LAST_EVENT_ID)
        .filter(|value| !value.as_bytes().trim_ascii().is_empty())
    else {
        return from_query;
    };
    match from_query {
        Ok(_) | Err(ApiError::InvalidCursor) => {}
        Err(other) => return Err(other),
    }
    let raw = header.to_str().map_err(|_| ApiError::InvalidCursor)?;
    cursors.open_feed(raw.trim(), user).map(Some)
}

/// How long until a token whose `exp` is `expires_at` stops being valid:
/// it is valid while the clock reads no later than `exp`.
fn until_expiry(expires_at: i64) -> Duration {
    let now = time::OffsetDateTime::now_utc();
    let end = time::OffsetDateTime::from_unix_timestamp(expires_at.saturating_add(1))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    Duration::try_from(end - now).unwrap_or(Duration::ZERO)
}

/// One stream's walk along its user's feed.
struct Reader {
    tasks: web::Data<TaskService>,
    cursors: web::Data<CursorKeys>,
    user: UserId,
    /// Where the events sent (or queued) so far leave the client.
    position: FeedPosition,
    /// Events read but not yet sent.
    pending: VecDeque<sse::Event>,
    /// The last page said more follow at once.
    read_more: bool,
    slot: StreamSlot,
    expiry: Pin<Box<tokio::time::Sleep>>,
    /// Keeps the connection from looking idle while the stream is open.
    _in_progress: Option<InProgress>,
}

impl Reader {
    /// The next event; `None` ends the stream.
    async fn next(mut self) -> Option<(sse::Event, Self)> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some((event, self));
            }
            let page = if self.read_more {
                self.read().await?
            } else {
                if !self.wait(None).await {
                    return None;
                }
                // What news brought whole, when it is all that changed;
                // else the feed.
                match self.slot.brought_after(self.position) {
                    Some(brought) => brought,
                    None => self.read().await?,
                }
            };
            self.take(&page);
        }
    }

    /// Waits until the user's tasks change, or `at_most` has passed when
    /// given. `false` when the stream must end instead: the server is
    /// stopping or the token expired.
    async fn wait(&mut self, at_most: Option<Duration>) -> bool {
        let pause = async {
            match at_most {
                Some(pause) => tokio::time::sleep(pause).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            wake = self.slot.wait() => wake == Wake::Changed,
            () = &mut self.expiry => false,
            () = pause => true,
        }
    }

    /// The feed after the stream's position. A database that is away for a
    /// moment (a restart, a failover) is given [`READ_ATTEMPTS`] tries to
    /// come back before the stream ends; `None` ends it, and the client
    /// then reconnects with its last id and misses nothing (an expired
    /// cursor is answered 410).
    async fn read(&mut self) -> Option<EventPage> {
        let mut attempts = 1;
        loop {
            let (tasks, cursors, user, position) =
                (&self.tasks, &self.cursors, self.user, self.position);
            let read = async move {
                let page = tasks.changes(user, Some(position)).await?;
                Ok(EventPage::from_feed(page, cursors, user))
            };
            match self.slot.read_shared(position, read).await {
                Ok(page) => return Some(page),
                Err(DomainError::Unavailable(error)) if attempts < READ_ATTEMPTS => {
                    tracing::warn!(%error, attempts, "an event stream could not read the feed; retrying");
                    attempts += 1;
                    if !self.wait(Some(READ_RETRY_PAUSE)).await {
                        return None;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "an event stream could not read the feed and ends");
                    return None;
                }
            }
        }
    }

    /// Queues a page's events.
    fn take(&mut self, page: &EventPage) {
        self.read_more = page.has_more;
        self.pending.extend(page.events.iter().cloned());
        self.position = page.next;
    }
}
