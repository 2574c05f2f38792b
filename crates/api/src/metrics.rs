//! Prometheus metrics: request counts and latency histograms per route
//! pattern, method and status (recorded by actix-web-prom's middleware),
//! and the database pools' usage, read at each scrape.
//!
//! Every label comes from a bounded set, so anonymous requests cannot grow
//! `/metrics`: the route is a matched pattern or [`UNMATCHED_ROUTE`], the
//! status one the app answers with, and the method one of HTTP's own or
//! [`OTHER_METHOD`] (see [`bound_method`]).
//!
//! Each [`Metrics`] owns its registry, so several applications in one
//! process (the test suite) do not count each other's requests.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web_prom::{
    ActixMetricsConfiguration, LabelsConfiguration, PrometheusMetrics, PrometheusMetricsBuilder,
};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use prometheus::{Encoder, IntGauge, IntGaugeVec, Opts, TextEncoder};
use todo_persistence::{Database, PoolUsage};

/// Prefix of every metric name.
pub const NAMESPACE: &str = "todo_api";
/// The `route` label of requests no route matched: their paths are
/// unbounded, so they share one label value.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The `method` label of every method outside [`STANDARD_METHODS`]: any
/// token is a method, so each one sent would otherwise be a new series.
pub const OTHER_METHOD: &str = "OTHER";

/// The methods HTTP itself defines (RFC 9110 and PATCH).
const STANDARD_METHODS: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
    Method::CONNECT,
    Method::TRACE,
];

/// The content type of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Why the metrics could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("metrics: {0}")]
pub struct MetricsError(String);

impl From<prometheus::Error> for MetricsError {
    fn from(error: prometheus::Error) -> Self {
        Self(error.to_string())
    }
}

/// The request middleware and the pool gauges, over one registry.
#[derive(Clone)]
pub struct Metrics {
    requests: PrometheusMetrics,
    pool_connections: IntGaugeVec,
    pool_max_connections: IntGauge,
    /// Every pool the instance's statements run on, summed at each scrape.
    pools: Arc<Mutex<Vec<Weak<PoolSlot>>>>,
}

/// Where a pool is found once it is open: the instance's own from the
/// start, a worker's once that worker has opened it. The metrics only
/// look through it, so a pool whose owner is gone (a worker that actix
/// restarted) stops being counted, and is closed, with that owner.
pub type PoolSlot = tokio::sync::OnceCell<Database>;

impl Metrics {
    /// A fresh registry with the request and pool metrics registered.
    ///
    /// # Errors
    /// Only if two metrics were given the same name.
    pub fn new() -> Result<Self, MetricsError> {
        let requests = PrometheusMetricsBuilder::new(NAMESPACE)
            .mask_unmatched_patterns(UNMATCHED_ROUTE)
            .metrics_configuration(
                ActixMetricsConfiguration::default()
                    .labels(LabelsConfiguration::default().endpoint("route")),
            )
            .build()
            .map_err(|error| MetricsError(error.to_string()))?;
        let pool_connections = IntGaugeVec::new(
            Opts::new(
                "db_pool_connections",
                "Open database connections, by state (idle or in_use).",
            )
            .namespace(NAMESPACE),
            &["state"],
        )?;
        let pool_max_connections = IntGauge::with_opts(
            Opts::new(
                "db_pool_max_connections",
                "The most database connections the pool will open.",
            )
            .namespace(NAMESPACE),
        )?;
        requests
            .registry
            .register(Box::new(pool_connections.clone()))?;
        requests
            .registry
            .register(Box::new(pool_max_connections.clone()))?;
        Ok(Self {
            requests,
            pool_connections,
            pool_max_connections,
            pools: Arc::default(),
        })
    }

    /// Counts the pool in `slot` in the pool gauges for as long as the
    /// slot's owner keeps it.
    pub fn watch_pool(&self, slot: &Arc<PoolSlot>) {
        let mut pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        pools.retain(|pool| pool.strong_count() > 0);
        pools.push(Arc::downgrade(slot));
    }

    /// Adds a metric kept elsewhere (the password hasher's) to this
    /// registry.
    ///
    /// # Errors
    /// If a metric of the same name is already registered.
    pub fn register(
        &self,
        collector: Box<dyn prometheus::core::Collector>,
    ) -> Result<(), MetricsError> {
        Ok(self.requests.registry.register(collector)?)
    }

    /// The middleware that counts and times every request.
    pub fn middleware(&self) -> PrometheusMetrics {
        self.requests.clone()
    }

    /// Every metric in the text exposition format, the pool gauges read
    /// just now.
    ///
    /// # Errors
    /// Only if a metric cannot be encoded.
    pub fn render(&self) -> Result<String, MetricsError> {
        let usage = self
            .pools
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(Weak::upgrade)
            .filter_map(|slot| slot.get().and_then(todo_persistence::pool_usage))
            .fold(PoolUsage::default(), |all, one| all + one);
        self.pool_connections
            .with_label_values(&["idle"])
            .set(usage.idle.into());
        self.pool_connections
            .with_label_values(&["in_use"])
            .set(usage.in_use().into());
        self.pool_max_connections.set(usage.max.into());
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.requests.registry.gather(), &mut buffer)?;
        String::from_utf8(buffer).map_err(|error| MetricsError(error.to_string()))
    }
}

/// Middleware just outside the request metrics: a method outside
/// [`STANDARD_METHODS`] is renamed [`OTHER_METHOD`] for everything inside,
/// because actix-web-prom labels a request with its method as it stands and
/// has no way to map it. No route serves a non-standard method, so the
/// answer (405 on a known path, 404 elsewhere) is the same either way; the
/// request line, outside, keeps the method as sent.
pub async fn bound_method(
    mut request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if !STANDARD_METHODS.contains(request.method()) {
        // `head_mut` needs the only handle on the request; no middleware
        // keeps one across its call (actix's routing needs it unshared as
        // well). "OTHER" is a valid token, so the `if let` always holds.
        if let Ok(other) = Method::from_bytes(OTHER_METHOD.as_bytes()) {
            request.head_mut().method = other;
        }
    }
    next.call(request).await
}
