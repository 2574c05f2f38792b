//! The composition root: connects the database, wires adapters into
//! services, and builds the HTTP server. Tests call [`Application::build`]
//! with port 0 and talk to the real server.

use std::net::TcpListener;
use std::sync::{Arc, Weak};
use std::time::Duration;

use actix_cors::Cors;
use actix_web::dev::{Server, ServerHandle};
use actix_web::http::header::HeaderName;
use actix_web::http::{KeepAlive, Method, header};
use actix_web::middleware::{Condition, from_fn};
use actix_web::{App, HttpServer, web};
use secrecy::ExposeSecret;
use todo_domain::ports::ChangeNotifier;
use todo_domain::{
    AccountService, IdentityService, SignInLimit, SystemClock, TaskLimits, TaskService,
};
use todo_persistence::{
    Backend, ChangeListener, ConnectError, Database, DatabaseSettings, PgChangeNotifier,
    SeaIdempotencyStore, SeaIdentityRepository, SeaSignInFailureRepository, SeaTaskRepository,
    SeaUserRepository,
};
use tracing_actix_web::TracingLogger;

use crate::auth::{Authenticator, ExternalTokens, Jwks, TokenKeys, require_user, spawn_refresher};
use crate::body::BodyReadTimeout;
use crate::config::Settings;
use crate::connection_watch::{track_requests, watch_connections};
use crate::error::json_error_bodies;
use crate::events::StreamHub;
use crate::list_query::CursorKeys;
use crate::metrics::{Metrics, MetricsError, PoolSlot, bound_method};
use crate::password::{Argon2PasswordHasher, HashingLimits};
use crate::rate_limit::{AuthRateLimiter, limit_auth_attempts};
use crate::retry::{IDEMPOTENCY_KEY, IDEMPOTENT_REPLAYED};
use crate::routes::events::StreamHeartbeat;
use crate::routes::tasks::X_TOTAL_COUNT;
use crate::routes::{auth, docs, events, fallback, health, metrics, tasks};
use crate::security_headers::security_headers;
use crate::telemetry::{REQUEST_ID_HEADER, RequestSpan, echo_request_id};

/// How often expired idempotency keys are deleted. Keys live 24 hours, so
/// a few minutes more or less only changes how long a dead row stays.
const KEY_PURGE_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The database could not be reached or migrated.
    #[error("database: {0}")]
    Database(#[from] todo_persistence::ConnectError),
    /// The listening socket could not be bound.
    #[error("could not listen on {address}: {source}")]
    Bind {
        /// host:port asked for.
        address: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The password hasher could not be prepared.
    #[error("password hasher: {0}")]
    Hasher(String),
    /// The HTTP client for the external provider's JWKS could not be built.
    #[error("JWKS client: {0}")]
    JwksClient(#[source] reqwest::Error),
    /// The metrics registry could not be built.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
}

/// Shared state handed to every worker.
#[derive(Clone)]
struct AppState {
    tasks: web::Data<TaskService>,
    cursors: web::Data<CursorKeys>,
    accounts: web::Data<AccountService>,
    keys: web::Data<TokenKeys>,
    authenticator: web::Data<Authenticator>,
    db: web::Data<Database>,
    /// On PostgreSQL, what each worker's own pool is opened with.
    worker_database: Option<WorkerDatabase>,
    cors_allowed_origins: Arc<Vec<String>>,
    auth_rate_limiter: web::Data<AuthRateLimiter>,
    body_read_timeout: BodyReadTimeout,
    metrics: web::Data<Metrics>,
    metrics_enabled: bool,
    streams: web::Data<StreamHub>,
    stream_heartbeat: web::Data<StreamHeartbeat>,
}

/// A bound, not yet running server.
pub struct Application {
    port: u16,
    server: Server,
    tasks: web::Data<TaskService>,
    changes_retention: Duration,
    streams: StreamHub,
    /// Listens for as long as the application lives (PostgreSQL only).
    _change_listener: Option<ChangeListener>,
    /// The instance's pool as the metrics find it, counted for as long as
    /// the application lives.
    _db_slot: Arc<PoolSlot>,
}

impl Application {
    /// Connects, migrates, wires and binds.
    ///
    /// # Errors
    /// A [`StartupError`] saying which step failed.
    pub async fn build(settings: &Settings) -> Result<Self, StartupError> {
        let workers = worker_count();
        let url = settings.database_url.expose_secret().to_owned();
        let database_settings = |max_connections| DatabaseSettings {
            url: url.clone(),
            max_connections,
            acquire_timeout: settings.database_acquire_timeout,
            statement_timeout: settings.database_statement_timeout,
        };
        let pools_per_worker = todo_persistence::backend_of_url(&url) == Some(Backend::Postgres);
        let max_connections = settings
            .database_max_connections
            .unwrap_or_else(|| ConnectionShares::default_max(workers));
        let shares = if pools_per_worker {
            ConnectionShares::split(max_connections, workers)
        } else {
            ConnectionShares::unsplit(max_connections)
        };
        let db = todo_persistence::connect(&database_settings(shares.instance)).await?;
        todo_persistence::migrate(&db).await?;

        let clock = Arc::new(SystemClock);
        let hasher = Arc::new(
            Argon2PasswordHasher::new(HashingLimits::for_this_machine(
                settings.hardening.password_hash_queue as usize,
                settings.hardening.password_hash_wait,
            ))
            .map_err(|e| StartupError::Hasher(e.to_string()))?,
        );
        // Every committed write reaches its owner's live streams. On
        // PostgreSQL the news goes through the database, so streams on every
        // instance hear it, this one's included; on SQLite there is one
        // instance and the news stays in process.
        let cursors = Arc::new(CursorKeys::derive(&settings.jwt_secret));
        let streams = StreamHub::new(cursors.clone());
        let change_listener = ChangeListener::start(&db, Arc::new(streams.clone()));
        let notifier: Arc<dyn ChangeNotifier> = match change_listener {
            Some(_) => Arc::new(PgChangeNotifier::start(db.clone())),
            None => Arc::new(streams.clone()),
        };
        let wiring = Wiring {
            clock,
            hasher: hasher.clone(),
            sign_in_limit: settings.sign_in_limit,
            task_limits: TaskLimits {
                max_tasks_per_user: settings.max_tasks_per_user,
            },
            notifier,
        };
        let accounts = Arc::new(wiring.accounts_on(&db));
        spawn_sign_in_failure_clean_up(&accounts, settings.sign_in_limit.window);
        let tasks = web::Data::new(wiring.tasks_on(&db));
        let worker_database = pools_per_worker.then(|| WorkerDatabase {
            settings: database_settings(shares.per_worker),
            wiring,
        });
        let keys = Arc::new(TokenKeys::new(
            &settings.jwt_secret,
            settings.jwt_issuer.clone(),
            settings.jwt_ttl,
        ));
        let mut authenticator = Authenticator::new(keys.clone(), accounts.clone());
        if let Some(external) = &settings.external_auth {
            let jwks = Arc::new(Jwks::new(external).map_err(StartupError::JwksClient)?);
            spawn_refresher(&jwks, external.jwks_refresh_interval);
            let identities = IdentityService::new(
                Arc::new(SeaIdentityRepository::new(db.clone())),
                Arc::new(SystemClock),
            );
            authenticator = authenticator
                .with_external_tokens(ExternalTokens::new(external, jwks), Arc::new(identities));
        }
        let metrics = Metrics::new()?;
        let db_slot = Arc::new(PoolSlot::new_with(Some(db.clone())));
        metrics.watch_pool(&db_slot);
        for collector in hasher.collectors() {
            metrics.register(collector)?;
        }
        let state = AppState {
            tasks: tasks.clone(),
            cursors: web::Data::from(cursors),
            authenticator: web::Data::new(authenticator),
            accounts: web::Data::from(accounts),
            keys: web::Data::from(keys),
            db: web::Data::new(db),
            worker_database,
            cors_allowed_origins: Arc::new(settings.cors_allowed_origins.clone()),
            auth_rate_limiter: web::Data::new(AuthRateLimiter::new(&settings.hardening)),
            body_read_timeout: BodyReadTimeout(settings.hardening.request_body_timeout),
            metrics: web::Data::new(metrics),
            metrics_enabled: settings.metrics_enabled,
            streams: web::Data::new(streams.clone()),
            stream_heartbeat: web::Data::new(StreamHeartbeat(settings.stream_heartbeat)),
        };

        let address = format!("{}:{}", settings.host, settings.port);
        let listener = TcpListener::bind(&address).map_err(|source| StartupError::Bind {
            address: address.clone(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind {
                address: address.clone(),
                source,
            })?
            .port();
        let hardening = &settings.hardening;
        let server = HttpServer::new(move || {
            // The task and account routes' services: on PostgreSQL this
            // worker's own, made when it starts; on SQLite the instance's.
            let app = match &state.worker_database {
                Some(worker_database) => {
                    let slot = Arc::new(PoolSlot::new());
                    state.metrics.watch_pool(&slot);
                    let (for_tasks, for_accounts) =
                        (worker_database.clone(), worker_database.clone());
                    let (tasks_slot, accounts_slot) = (slot.clone(), slot.clone());
                    App::new()
                        // Kept with the app so the metrics count this pool
                        // for exactly as long as the worker lives.
                        .app_data(slot)
                        .data_factory(move || for_tasks.clone().tasks(tasks_slot.clone()))
                        .data_factory(move || for_accounts.clone().accounts(accounts_slot.clone()))
                }
                None => App::new()
                    .app_data(state.tasks.clone())
                    .app_data(state.accounts.clone()),
            };
            // The last `wrap` is the outermost: every response, CORS
            // pre-flights included, is logged and counted.
            app.wrap(cors(&state.cors_allowed_origins))
                .wrap(from_fn(json_error_bodies))
                .wrap(Condition::new(
                    state.metrics_enabled,
                    state.metrics.middleware(),
                ))
                .wrap(from_fn(bound_method))
                // Security headers on every answer, pre-flights and errors
                // included; only the request id and log sit outside them.
                .wrap(security_headers())
                .wrap(from_fn(echo_request_id))
                .wrap(TracingLogger::<RequestSpan>::new())
                .wrap(from_fn(track_requests))
                .app_data(state.cursors.clone())
                .app_data(state.keys.clone())
                .app_data(state.authenticator.clone())
                .app_data(state.db.clone())
                .app_data(state.auth_rate_limiter.clone())
                .app_data(state.body_read_timeout)
                .app_data(state.metrics.clone())
                .app_data(state.streams.clone())
                .app_data(state.stream_heartbeat.clone())
                .configure(routes)
                .configure(docs::routes)
                .configure(|config| {
                    if state.metrics_enabled {
                        metrics::routes(config);
                    }
                })
        })
        .workers(workers)
        // SIGTERM: stop accepting at once, give in-flight requests this
        // long, then exit.
        .shutdown_timeout(hardening.shutdown_timeout.as_secs())
        // The whole request head must arrive within this, however slowly
        // it trickles in; a body is timed by `BodyReadTimeout`.
        .client_request_timeout(hardening.client_request_timeout)
        .keep_alive(match hardening.keep_alive {
            Some(idle) => KeepAlive::Timeout(idle),
            None => KeepAlive::Disabled,
        });
        // With keep-alive on, a watch bounds the time between requests,
        // which actix itself does not reliably do (see `connection_watch`).
        let server = match hardening.keep_alive {
            Some(idle) => {
                server.on_connect(watch_connections(idle + hardening.client_request_timeout))
            }
            None => server,
        };
        let server = server
            .listen(listener)
            .map_err(|source| StartupError::Bind { address, source })?
            .run();
        Ok(Self {
            port,
            server,
            tasks,
            changes_retention: settings.changes_retention(),
            streams,
            _change_listener: change_listener,
            _db_slot: db_slot,
        })
    }

    /// The port actually bound (useful with port 0).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle that can stop the server.
    #[must_use]
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Ends every open event stream, as a stopping server does: for a
    /// caller that stops the server through [`Self::handle`].
    pub fn end_streams(&self) {
        self.streams.stop();
    }

    /// Serves until stopped; SIGTERM and SIGINT drain in-flight requests
    /// first (actix's own signal handling) and end the live event streams
    /// at once, which would otherwise hold the drain for the whole
    /// shutdown timeout.
    ///
    /// # Errors
    /// An I/O error from the server.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let streams = tokio::spawn(end_streams_on_signal(self.streams.clone()));
        let purge = tokio::spawn(purge_expired_keys(self.tasks.clone(), KEY_PURGE_INTERVAL));
        let forget = tokio::spawn(forget_old_deletions(
            self.tasks,
            self.changes_retention,
            DELETION_PURGE_INTERVAL,
        ));
        let outcome = self.server.await;
        purge.abort();
        forget.abort();
        streams.abort();
        outcome
    }
}

/// What the task and account services are built from, beside a database.
#[derive(Clone)]
struct Wiring {
    clock: Arc<SystemClock>,
    hasher: Arc<Argon2PasswordHasher>,
    sign_in_limit: SignInLimit,
    task_limits: TaskLimits,
    notifier: Arc<dyn ChangeNotifier>,
}

impl Wiring {
    fn tasks_on(&self, db: &Database) -> TaskService {
        TaskService::new(
            Arc::new(SeaTaskRepository::new(db.clone())),
            Arc::new(SeaIdempotencyStore::new(db.clone())),
            self.clock.clone(),
            self.task_limits,
        )
        .with_notifier(self.notifier.clone())
    }

    fn accounts_on(&self, db: &Database) -> AccountService {
        AccountService::new(
            Arc::new(SeaUserRepository::new(db.clone())),
            self.hasher.clone(),
            Arc::new(SeaSignInFailureRepository::new(db.clone())),
            self.sign_in_limit,
            self.clock.clone(),
        )
    }
}

/// What a worker's own pool is opened with, and its services wired from
/// (PostgreSQL only).
///
/// A connection's socket belongs to the runtime of the thread that opened
/// it. With one pool shared by every actix worker, about half of each
/// worker's statements ran on a connection another worker had opened, and
/// each answer woke that other thread first. A pool per worker, opened by
/// the worker itself, keeps each statement on one thread
/// (docs/performance.md, "A pool per worker").
#[derive(Clone)]
struct WorkerDatabase {
    settings: DatabaseSettings,
    wiring: Wiring,
}

impl WorkerDatabase {
    async fn tasks(self, slot: Arc<PoolSlot>) -> Result<TaskService, ConnectError> {
        Ok(self.wiring.tasks_on(self.pool(&slot).await?))
    }

    async fn accounts(self, slot: Arc<PoolSlot>) -> Result<AccountService, ConnectError> {
        Ok(self.wiring.accounts_on(self.pool(&slot).await?))
    }

    /// The worker's pool, opened by whichever of its services asks first.
    /// Lazily: [`Application::build`]'s own connection has shown the server
    /// answers, and each connection is then opened on this worker's thread.
    async fn pool<'a>(&self, slot: &'a PoolSlot) -> Result<&'a Database, ConnectError> {
        slot.get_or_try_init(|| todo_persistence::connect_lazily(&self.settings))
            .await
    }
}

/// How many actix workers serve requests: actix's own default, one per
/// core, chosen here because the connections are shared out among them.
fn worker_count() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// How `DATABASE_MAX_CONNECTIONS` is shared out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ConnectionShares {
    /// The instance's own pool: migrations, accounts, health probes, the
    /// change news and the background jobs; on SQLite, every statement.
    instance: u32,
    /// Each worker's pool for its task routes (PostgreSQL only).
    per_worker: u32,
}

/// The most connections the instance's own pool takes on PostgreSQL,
/// where the task routes have pools of their own: its work is sign-ins
/// (held back by the password hasher), probes and jobs.
const INSTANCE_CONNECTIONS: u32 = 4;

/// Each worker's share when `DATABASE_MAX_CONNECTIONS` is not set. A worker
/// is one thread: a few statements in flight keep it busy, and more only
/// wait in the database's run queue, where on a machine shared with
/// PostgreSQL they also crowd out the worker itself.
const WORKER_CONNECTIONS: u32 = 4;

impl ConnectionShares {
    /// The maximum when none is set: the instance's pool and a few
    /// connections for each of `workers`.
    fn default_max(workers: usize) -> u32 {
        INSTANCE_CONNECTIONS.saturating_add(WORKER_CONNECTIONS.saturating_mul(pool_count(workers)))
    }

    /// `max` shared between the instance's pool and `workers` equal pools
    /// (what does not divide evenly is left unused), each pool given at
    /// least one connection.
    fn split(max: u32, workers: usize) -> Self {
        let workers = pool_count(workers);
        let instance = (max / workers.saturating_add(1)).clamp(1, INSTANCE_CONNECTIONS);
        Self {
            instance,
            per_worker: (max.saturating_sub(instance) / workers).max(1),
        }
    }

    /// Everything in the instance's pool (SQLite: one file, one pool).
    fn unsplit(max: u32) -> Self {
        Self {
            instance: max,
            per_worker: 0,
        }
    }
}

/// `workers` as a number of pools: at least one, and no more than a
/// connection count can hold.
fn pool_count(workers: usize) -> u32 {
    u32::try_from(workers).unwrap_or(u32::MAX).max(1)
}

/// Ends the live event streams when SIGTERM or SIGINT arrives. actix
/// hears the same signal and begins its graceful stop; a stream never ends
/// by itself, so without this each would hold that stop for the whole
/// shutdown timeout. tokio hands a signal to every listener, so actix's
/// own handling is untouched.
async fn end_streams_on_signal(streams: StreamHub) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut terminate) = signal(SignalKind::terminate()) else {
            tracing::warn!("SIGTERM cannot be watched: event streams will hold a shutdown");
            return;
        };
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    streams.stop();
}

/// Deletes expired idempotency keys every `interval`, for as long as the
/// server runs, so no job outside the service is needed. A failure (the
/// database is away) is logged and the next round tries again.
async fn purge_expired_keys(tasks: web::Data<TaskService>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match tasks.purge_expired_keys().await {
            Ok(0) => {}
            Ok(purged) => tracing::debug!(purged, "expired idempotency keys deleted"),
            Err(error) => tracing::warn!(%error, "expired idempotency keys could not be deleted"),
        }
    }
}

/// How often the changes feed's old deletions are forgotten: the retention
/// is counted in days, so an hour late is nothing.
const DELETION_PURGE_INTERVAL: Duration = Duration::from_secs(3_600);

/// Forgets the feed's deletions older than `retention` every `interval`,
/// for as long as the server runs, so the history does not grow forever
/// and no job outside the service is needed. With several instances each
/// does it; the deletes are idempotent and a floor only ever rises.
async fn forget_old_deletions(
    tasks: web::Data<TaskService>,
    retention: Duration,
    interval: Duration,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match tasks.forget_old_deletions(retention).await {
            Ok(0) => {}
            Ok(forgotten) => tracing::debug!(forgotten, "old deletions forgotten by the feed"),
            Err(error) => tracing::warn!(%error, "old deletions could not be forgotten"),
        }
    }
}

/// Every route of the contract. Each resource answers unknown methods with
/// 405 and the methods it does serve. HEAD is served wherever GET is, as
/// HTTP expects; actix drops the body of a HEAD response.
fn routes(config: &mut web::ServiceConfig) {
    config
        .service(
            web::resource("/health")
                .route(web::get().to(health::health))
                .route(web::head().to(health::health))
                .default_service(web::to(fallback::method_not_allowed("GET, HEAD"))),
        )
        .service(
            web::resource("/health/ready")
                .route(web::get().to(health::ready))
                .route(web::head().to(health::ready))
                .default_service(web::to(fallback::method_not_allowed("GET, HEAD"))),
        )
        .service(
            web::resource("/api/auth/signup")
                .wrap(from_fn(limit_auth_attempts))
                .route(web::post().to(auth::sign_up))
                .default_service(web::to(fallback::method_not_allowed("POST"))),
        )
        .service(
            web::resource("/api/auth/signin")
                .wrap(from_fn(limit_auth_attempts))
                .route(web::post().to(auth::sign_in))
                .default_service(web::to(fallback::method_not_allowed("POST"))),
        )
        .service(
            web::resource("/api/auth/me")
                .wrap(from_fn(require_user))
                .route(web::get().to(auth::me))
                .route(web::head().to(auth::me))
                .default_service(web::to(fallback::method_not_allowed("GET, HEAD"))),
        )
        // The guard wraps each resource rather than a scope, so an unknown
        // path under /api/tasks is a 404 even without a token.
        .service(
            web::resource("/api/tasks")
                .wrap(from_fn(require_user))
                .route(web::get().to(tasks::list_tasks))
                .route(web::head().to(tasks::list_tasks))
                .route(web::post().to(tasks::create_task))
                .route(web::delete().to(tasks::delete_completed_tasks))
                .default_service(web::to(fallback::method_not_allowed(
                    "GET, HEAD, POST, DELETE",
                ))),
        )
        // Before `/api/tasks/{id}`, which would take `events` for an id.
        // GET only: a HEAD would open a stream just to drop its body.
        .service(
            web::resource("/api/tasks/events")
                .wrap(from_fn(require_user))
                .route(web::get().to(events::task_events))
                .default_service(web::to(fallback::method_not_allowed("GET"))),
        )
        // Before `/api/tasks/{id}`, which would take `changes` for an id.
        .service(
            web::resource("/api/tasks/changes")
                .wrap(from_fn(require_user))
                .route(web::get().to(tasks::task_changes))
                .route(web::head().to(tasks::task_changes))
                .default_service(web::to(fallback::method_not_allowed("GET, HEAD"))),
        )
        .service(
            web::resource("/api/tasks/{id}")
                .wrap(from_fn(require_user))
                .route(web::get().to(tasks::get_task))
                .route(web::head().to(tasks::get_task))
                .route(web::put().to(tasks::replace_task))
                .route(web::patch().to(tasks::patch_task))
                .route(web::delete().to(tasks::delete_task))
                .default_service(web::to(fallback::method_not_allowed(
                    "GET, HEAD, PUT, PATCH, DELETE",
                ))),
        )
        .service(
            web::resource("/api/tasks/{id}/complete")
                .wrap(from_fn(require_user))
                .route(web::patch().to(tasks::change_completion))
                .default_service(web::to(fallback::method_not_allowed("PATCH"))),
        )
        .default_service(web::to(fallback::route_not_found));
}

/// CORS for the configured origins: credentials travel in the
/// `Authorization` header, never in cookies, so none are allowed. Requests
/// from other origins are served without CORS headers (the browser then
/// withholds the answer) rather than refused, so non-browser clients that
/// send an `Origin` keep working.
fn cors(allowed_origins: &[String]) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            REQUEST_ID_HEADER,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            IDEMPOTENCY_KEY,
            HeaderName::from_static("last-event-id"),
        ])
        .expose_headers([
            header::LOCATION,
            header::WWW_AUTHENTICATE,
            REQUEST_ID_HEADER,
            header::ETAG,
            header::LINK,
            header::RETRY_AFTER,
            X_TOTAL_COUNT,
            IDEMPOTENT_REPLAYED,
        ])
        .block_on_origin_mismatch(false)
        .max_age(3600);
    for origin in allowed_origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}

/// Every `interval`, starting now, forgets the failed sign-ins that no
/// longer count, until the service drops `accounts` (the task holds only a
/// weak reference). With several instances each does it; the deletes are
/// idempotent.
fn spawn_sign_in_failure_clean_up(accounts: &Arc<AccountService>, interval: Duration) {
    let accounts: Weak<AccountService> = Arc::downgrade(accounts);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(accounts) = accounts.upgrade() else {
                break;
            };
            if let Err(error) = accounts.forget_expired_sign_in_failures().await {
                // The next round tries again; until then stale rows only
                // take space.
                tracing::warn!(%error, "could not forget expired sign-in failures");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(shares: ConnectionShares, workers: u32) -> u32 {
        shares.instance + workers * shares.per_worker
    }

    #[test]
    fn the_default_maximum_gives_each_worker_its_share_and_all_of_it_is_used() {
        for workers in [1, 2, 8] {
            let max = ConnectionShares::default_max(workers as usize);
            let shares = ConnectionShares::split(max, workers as usize);
            assert_eq!(
                shares,
                ConnectionShares {
                    instance: INSTANCE_CONNECTIONS,
                    per_worker: WORKER_CONNECTIONS
                },
                "{workers} workers"
            );
            assert_eq!(total(shares, workers), max);
        }
    }

    #[test]
    fn a_set_maximum_goes_mostly_to_the_workers_and_all_of_it_is_used() {
        let shares = ConnectionShares::split(32, 2);
        assert_eq!(
            shares,
            ConnectionShares {
                instance: INSTANCE_CONNECTIONS,
                per_worker: 14
            }
        );
        assert_eq!(total(shares, 2), 32);
    }

    #[test]
    fn a_small_maximum_keeps_every_pool_open_and_within_the_maximum() {
        for (max, workers) in [(3, 2), (5, 2), (9, 4), (10, 1)] {
            let shares = ConnectionShares::split(max, workers as usize);
            assert!(shares.instance >= 1 && shares.per_worker >= 1, "{shares:?}");
            assert!(
                total(shares, workers) <= max,
                "{max} over {workers}: {shares:?}"
            );
        }
    }

    #[test]
    fn below_one_connection_a_pool_every_pool_still_gets_one() {
        let shares = ConnectionShares::split(1, 2);
        assert_eq!(
            shares,
            ConnectionShares {
                instance: 1,
                per_worker: 1
            }
        );
    }

    #[test]
    fn sqlite_keeps_the_whole_maximum_in_one_pool() {
        assert_eq!(
            ConnectionShares::unsplit(5),
            ConnectionShares {
                instance: 5,
                per_worker: 0
            }
        );
    }
}
