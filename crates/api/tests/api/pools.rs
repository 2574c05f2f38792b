//! How the instance shares `DATABASE_MAX_CONNECTIONS` out on PostgreSQL:
//! a small pool of its own, and one for each actix worker's task and
//! account routes.

use std::time::Duration;

use reqwest::StatusCode;
use sea_orm::sqlx::postgres::PgConnection;
use sea_orm::sqlx::{Connection as _, Executor as _, Row as _};

use crate::helpers::{TestUser, postgres_database, spawn_app_with};
use crate::metrics::{sample, scrape};

const MAX_CONNECTIONS: usize = 5;

/// Many clients at once, each on its own HTTP connection, so actix hands
/// them to every worker: the pools together open the whole configured
/// maximum, and the sessions PostgreSQL sees never pass it (plus the one
/// connection that listens for change news). How the maximum is split
/// among the pools is `startup`'s unit tests' business.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_many_clients_the_pools_open_the_maximum_and_never_more() {
    let Some(database) = postgres_database("pools-per-worker").await else {
        return;
    };
    let url = database.url().to_owned();
    let app = spawn_app_with(
        database,
        &[("DATABASE_MAX_CONNECTIONS", &MAX_CONNECTIONS.to_string())],
    )
    .await;
    let user = TestUser::signed_up(&app).await;
    app.created_task(&user.token, "one").await;

    let mut observer = PgConnection::connect(&url).await.unwrap();
    let sessions = "SELECT count(*) FROM pg_stat_activity \
                    WHERE datname = current_database() AND pid <> pg_backend_pid()";
    let mut most_sessions = 0_i64;
    for _ in 0..5 {
        let lists: Vec<_> = (0..40)
            .map(|_| {
                let request = reqwest::Client::new()
                    .get(app.url("/api/tasks"))
                    .bearer_auth(&user.token)
                    .timeout(Duration::from_secs(10))
                    .send();
                tokio::spawn(request)
            })
            .collect();
        let now: i64 = observer.fetch_one(sessions).await.unwrap().get(0);
        most_sessions = most_sessions.max(now);
        for list in lists {
            assert_eq!(list.await.unwrap().unwrap().status(), StatusCode::OK);
        }
    }
    let now: i64 = observer.fetch_one(sessions).await.unwrap().get(0);
    most_sessions = most_sessions.max(now);
    let _ = observer.close().await;

    let text = scrape(&app).await;
    let open = sample(&text, "todo_api_db_pool_connections", r#"state="idle""#).unwrap()
        + sample(&text, "todo_api_db_pool_connections", r#"state="in_use""#).unwrap();
    #[allow(clippy::cast_precision_loss)] // a handful of connections
    let max = MAX_CONNECTIONS as f64;
    assert_eq!(
        sample(&text, "todo_api_db_pool_max_connections", ""),
        Some(max)
    );
    assert_eq!(open, max, "{text}");
    assert!(
        most_sessions <= i64::try_from(MAX_CONNECTIONS).unwrap() + 1,
        "{most_sessions} sessions with DATABASE_MAX_CONNECTIONS={MAX_CONNECTIONS}"
    );
}
