//! How busy the connection pool is, for the service's metrics. Read from
//! the pool's own counters, so it costs no query.

use sea_orm::sqlx::{self, Pool};
use sea_orm::{DatabaseConnection, DatabaseConnectionType};

use crate::Database;

/// A snapshot of a connection pool, or the sum of several.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolUsage {
    /// Connections open now, idle or in use.
    pub open: u32,
    /// Open connections waiting for a query.
    pub idle: u32,
    /// The most connections the pool will open.
    pub max: u32,
}

impl PoolUsage {
    /// Open connections that are serving a query now.
    #[must_use]
    pub fn in_use(&self) -> u32 {
        self.open.saturating_sub(self.idle)
    }
}

impl std::ops::Add for PoolUsage {
    type Output = Self;

    fn add(self, other: Self) -> Self {
        Self {
            open: self.open.saturating_add(other.open),
            idle: self.idle.saturating_add(other.idle),
            max: self.max.saturating_add(other.max),
        }
    }
}

/// The usage of the pool `db`'s statements run on. `None` only for a handle
/// without a pool ([`crate::connect`] makes none such).
#[must_use]
pub fn pool_usage(db: &Database) -> Option<PoolUsage> {
    usage_of_connection(db.connection())
}

fn usage_of_connection(db: &DatabaseConnection) -> Option<PoolUsage> {
    // Matching on the variant first makes the `get_*_pool` accessors, which
    // panic on a different variant, safe to call.
    match &db.inner {
        DatabaseConnectionType::SqlxPostgresPoolConnection(_) => {
            Some(usage_of(db.get_postgres_connection_pool()))
        }
        DatabaseConnectionType::SqlxSqlitePoolConnection(_) => {
            Some(usage_of(db.get_sqlite_connection_pool()))
        }
        _ => None,
    }
}

fn usage_of<DB: sqlx::Database>(pool: &Pool<DB>) -> PoolUsage {
    PoolUsage {
        open: pool.size(),
        // The idle count cannot exceed the open count, a u32.
        idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
        max: pool.options().get_max_connections(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disconnected_handle_has_no_pool() {
        assert_eq!(usage_of_connection(&DatabaseConnection::default()), None);
    }

    #[test]
    fn in_use_is_open_minus_idle() {
        let usage = PoolUsage {
            open: 5,
            idle: 2,
            max: 10,
        };
        assert_eq!(usage.in_use(), 3);
    }

    #[tokio::test]
    async fn a_sqlite_pool_reports_its_limit_and_connections() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("pool.db").display());
        let db = crate::connect(&crate::DatabaseSettings {
            url,
            max_connections: 3,
            acquire_timeout: std::time::Duration::from_secs(5),
            statement_timeout: std::time::Duration::from_secs(5),
        })
        .await
        .unwrap();
        let usage = pool_usage(&db).expect("a sqlx pool");
        assert_eq!(usage.max, 3);
        assert!(usage.open >= 1, "{usage:?}");
        assert!(usage.idle <= usage.open, "{usage:?}");
    }
}
