//! Logging set-up: `RUST_LOG` filters, default `info`.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls do nothing (tests start
/// many apps in one process).
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
}
