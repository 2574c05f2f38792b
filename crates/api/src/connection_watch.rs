//! Bounds the time a kept-alive connection may spend between requests.
//!
//! actix-http times only the head of the *first* request on a connection
//! (`client_request_timeout`). Once an answer has gone out and the client
//! starts on another request, nothing reliably times that second head: a
//! client could trickle it in a byte at a time and keep the connection for
//! as long as it liked. Turning keep-alive off closes the hole, but every
//! request then pays for a new TCP connection, which costs a large share
//! of the throughput (docs/performance.md).
//!
//! So every connection is watched instead. [`track_requests`] notes when a
//! request starts and ends; a small task per connection shuts the socket
//! down when no request has been in progress for longer than the limit (the
//! keep-alive idle time plus the head timeout, which a well-behaved client
//! never reaches: actix closes a silent connection at the idle time, and a
//! real request head arrives at once). The task sleeps until the moment the
//! limit could next pass, so a busy or streaming connection costs it about
//! one wake-up per limit, not one a second.

use std::any::Any;
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Extensions, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use tokio::sync::oneshot;

/// Past the moment the limit passes, so the look that follows finds it
/// passed rather than a millisecond short.
const LOOK_AFTER: Duration = Duration::from_millis(1);

/// What the request middleware reports to a connection's watch.
struct Activity {
    opened: Instant,
    requests_in_progress: AtomicUsize,
    /// Milliseconds after `opened` at which the connection last fell idle.
    idle_since_millis: AtomicU64,
}

impl Activity {
    fn idle_for(&self) -> Duration {
        if self.requests_in_progress.load(Ordering::Acquire) > 0 {
            return Duration::ZERO;
        }
        let idle_since = Duration::from_millis(self.idle_since_millis.load(Ordering::Acquire));
        self.opened.elapsed().saturating_sub(idle_since)
    }
}

/// Kept in the connection's data for the middleware to find; dropping it
/// (the connection closed) tells the watch to stop at once.
pub struct ConnectionWatch {
    activity: Arc<Activity>,
    _closed: oneshot::Sender<()>,
}

/// The `on_connect` hook that puts a watch on every plain TCP connection.
pub fn watch_connections(
    limit: Duration,
) -> impl Fn(&dyn Any, &mut Extensions) + Send + Sync + 'static {
    move |connection, data| {
        let Some(stream) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() else {
            return;
        };
        // A second handle on the same socket, so the watch can shut it down
        // while actix owns the stream. Without one (descriptors exhausted)
        // the connection simply goes unwatched.
        let Ok(handle) = stream.as_fd().try_clone_to_owned() else {
            return;
        };
        let socket = std::net::TcpStream::from(handle);
        let activity = Arc::new(Activity {
            opened: Instant::now(),
            requests_in_progress: AtomicUsize::new(0),
            idle_since_millis: AtomicU64::new(0),
        });
        let (closed_sender, closed) = oneshot::channel();
        actix_web::rt::spawn(watch(socket, Arc::downgrade(&activity), closed, limit));
        data.insert(ConnectionWatch {
            activity,
            _closed: closed_sender,
        });
    }
}

async fn watch(
    socket: std::net::TcpStream,
    activity: Weak<Activity>,
    mut closed: oneshot::Receiver<()>,
    limit: Duration,
) {
    let mut wait = limit;
    loop {
        tokio::select! {
            // The sender is dropped with the connection; the second handle
            // is closed right here rather than at the next look.
            _ = &mut closed => return,
            () = tokio::time::sleep(wait) => {}
        }
        let Some(activity) = activity.upgrade() else {
            return;
        };
        // A request in progress now ends no sooner than now, so the limit
        // cannot pass within the next `limit`; an idle connection's passes
        // at a known moment.
        let idle_for = activity.idle_for();
        if idle_for > limit {
            // Both directions: actix sees the end of input and drops the
            // connection; the client sees it closed.
            let _ = socket.shutdown(Shutdown::Both);
            return;
        }
        wait = limit - idle_for + LOOK_AFTER;
    }
}

/// Marks a request as in progress for its connection's watch until the
/// handler's future completes or is dropped.
pub struct InProgress(Arc<Activity>);

impl InProgress {
    /// Marks `request` as in progress for as long as the returned value
    /// lives: for a response whose body outlives its handler (the live
    /// event stream), which the watch must not take for an idle
    /// connection. `None` on an unwatched connection.
    #[must_use]
    pub fn hold(request: &actix_web::HttpRequest) -> Option<Self> {
        request
            .conn_data::<ConnectionWatch>()
            .map(|watch| Self::begin(Arc::clone(&watch.activity)))
    }
}

impl InProgress {
    fn begin(activity: Arc<Activity>) -> Self {
        activity.requests_in_progress.fetch_add(1, Ordering::AcqRel);
        Self(activity)
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        let since_open = u64::try_from(self.0.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0
            .idle_since_millis
            .store(since_open, Ordering::Release);
        self.0.requests_in_progress.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Middleware: tells the connection's watch (if any) when a request is in
/// progress.
pub async fn track_requests(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let _in_progress = request
        .conn_data::<ConnectionWatch>()
        .map(|watch| InProgress::begin(Arc::clone(&watch.activity)));
    next.call(request).await
}
