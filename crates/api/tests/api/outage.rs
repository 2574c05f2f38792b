//! A database outage in the middle of a run: requests get 503 quickly,
//! `/health` stays up, `/health/ready` reports it, and the service recovers
//! by itself with every acknowledged write intact.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use futures_util::StreamExt;

use crate::db_probe::DbProbe;
use crate::helpers::{TestApp, TestUser, assert_error, postgres_database, spawn_app_with};
use crate::metrics::{sample, scrape};
use crate::server_process::report;

/// A TCP relay between the app and PostgreSQL that the test can cut (the
/// port refuses connections and open ones are reset) and restore, or
/// stall (connections stay open and accepted, but no byte goes through).
struct CuttableRelay {
    address: SocketAddr,
    target: SocketAddr,
    connections: Option<tokio::task::JoinHandle<()>>,
    stalled: tokio::sync::watch::Sender<bool>,
}

impl CuttableRelay {
    async fn start(target: SocketAddr) -> CuttableRelay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let stalled = tokio::sync::watch::Sender::new(false);
        CuttableRelay {
            address,
            target,
            connections: Some(tokio::spawn(relay(listener, target, stalled.subscribe()))),
            stalled,
        }
    }

    /// From now on the database is silent, as behind a network that drops
    /// packets: nothing is refused or reset, nothing is answered.
    fn stall(&self) {
        self.stalled.send_replace(true);
    }

    /// Stops listening and drops every relayed connection.
    fn cut(&mut self) {
        if let Some(task) = self.connections.take() {
            task.abort();
        }
    }

    async fn restore(&mut self) {
        let listener = TcpListener::bind(self.address).await.unwrap();
        let stalled = self.stalled.subscribe();
        self.connections = Some(tokio::spawn(relay(listener, self.target, stalled)));
    }
}

/// Accepts and relays until aborted; aborting drops the listener and, with
/// the `JoinSet`, every open connection. Once `stalled` turns true, every
/// connection, open or new, stops relaying but is held open.
async fn relay(
    listener: TcpListener,
    target: SocketAddr,
    stalled: tokio::sync::watch::Receiver<bool>,
) {
    let mut open = JoinSet::new();
    while let Ok((mut client, _)) = listener.accept().await {
        let mut stalled = stalled.clone();
        open.spawn(async move {
            if let Ok(mut server) = TcpStream::connect(target).await {
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
                    _ = stalled.wait_for(|stalled| *stalled) => {}
                }
                // Both ends stay open and unanswered until the relay ends.
                std::future::pending::<()>().await;
                drop((client, server));
            }
        });
    }
}

/// `host:port` of a `postgres://user@host:port/db?…` URL, and the URL with
/// that part replaced.
fn redirect(url: &str, to: SocketAddr) -> (SocketAddr, String) {
    let scheme_end = url.find("://").unwrap() + 3;
    let authority_end = scheme_end + url[scheme_end..].find('/').unwrap();
    let authority = &url[scheme_end..authority_end];
    let host_start = authority.rfind('@').map_or(0, |at| at + 1);
    let host_port = &authority[host_start..];
    let host_port = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:5432")
    };
    let host_port = host_port.replace("localhost", "127.0.0.1");
    let target: SocketAddr = host_port
        .parse()
        .expect("the test database is reached over TCP");
    let redirected = format!(
        "{}{}{}",
        &url[..scheme_end + host_start],
        to,
        &url[authority_end..]
    );
    (target, redirected)
}

/// The app on a fresh PostgreSQL database that it reaches through a relay
/// the test controls, with a 1 s acquire timeout. `None`, with a note on
/// stderr naming `test`, where only SQLite is available (never in CI:
/// `preferred` insists on PostgreSQL there).
async fn app_behind_relay(test: &str) -> Option<(CuttableRelay, TestApp)> {
    app_behind_relay_with(test, &[("DATABASE_ACQUIRE_TIMEOUT", "1")]).await
}

/// As [`app_behind_relay`], with `settings` instead of the 1 s acquire
/// timeout.
async fn app_behind_relay_with(
    test: &str,
    settings: &[(&str, &str)],
) -> Option<(CuttableRelay, TestApp)> {
    let database = postgres_database(test).await?;
    let (target, _) = redirect(database.url(), "127.0.0.1:1".parse().unwrap());
    let relay = CuttableRelay::start(target).await;
    let (_, relayed_url) = redirect(database.url(), relay.address);
    let mut settings = settings.to_vec();
    settings.push(("DATABASE_URL", &relayed_url));
    let app = spawn_app_with(database, &settings).await;
    Some((relay, app))
}

#[tokio::test]
async fn an_outage_answers_503_and_the_service_recovers_by_itself() {
    let Some((mut relay, app)) = app_behind_relay("outage").await else {
        return;
    };

    let user = TestUser::signed_up(&app).await;
    let acknowledged = app
        .created_task(&user.token, "written before the outage")
        .await;
    let id = acknowledged["id"].as_str().unwrap().to_owned();

    relay.cut();

    let started = Instant::now();
    assert_error(
        app.list_tasks(&user.token).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
    )
    .await;
    let create = app
        .create_task(&user.token, &json!({"title": "during"}))
        .await;
    assert_error(
        create,
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
    )
    .await;
    let flip = app.flip_task(&user.token, &id).await;
    assert_error(flip, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answered in {:?}",
        started.elapsed()
    );

    let health = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let ready = app
        .client
        .get(app.url("/health/ready"))
        .send()
        .await
        .unwrap();
    assert_error(ready, StatusCode::SERVICE_UNAVAILABLE, "not_ready").await;

    relay.restore().await;

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ready = app
            .client
            .get(app.url("/health/ready"))
            .send()
            .await
            .unwrap();
        if ready.status() == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not ready 15 s after the database came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut task = app.get_task(&user.token, &id).await;
    // A pooled connection that died with the outage may fail once more.
    if task.status() == StatusCode::SERVICE_UNAVAILABLE {
        task = app.get_task(&user.token, &id).await;
    }
    assert_eq!(task.status(), StatusCode::OK);
    assert_eq!(task.json::<Value>().await.unwrap(), acknowledged);
    let list: Vec<Value> = app.list_tasks(&user.token).await.json().await.unwrap();
    assert_eq!(
        list.len(),
        1,
        "the write refused during the outage left nothing behind"
    );
    assert_eq!(
        app.create_task(&user.token, &json!({"title": "after"}))
            .await
            .status(),
        StatusCode::CREATED
    );
}

/// One request: its status and how long the answer took.
struct Outcome {
    status: u16,
    took: Duration,
    /// A sign-up, which hashes the password before it reaches the database.
    hashes: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_an_outage_no_request_hangs_or_fails_500_and_no_acknowledged_write_is_lost() {
    const WRITERS: usize = 8;
    const BARRAGE: usize = 200;
    let Some((mut relay, app)) = app_behind_relay("outage").await else {
        return;
    };
    let app = std::sync::Arc::new(app);
    // A sign-up spends most of its time on Argon2, not on the database.
    let signing_up = Instant::now();
    let user = TestUser::signed_up(&app).await;
    let one_sign_up = signing_up.elapsed();
    let task_id = app.created_task(&user.token, "target").await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // A write burst that runs before, through and after the outage.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = JoinSet::new();
    for writer in 0..WRITERS {
        let (app, token, stop) = (app.clone(), user.token.clone(), stop.clone());
        writers.spawn(async move {
            let mut outcomes = Vec::new();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let title = format!("w{writer}-{n:05}");
                let sent = Instant::now();
                let response = app.create_task(&token, &json!({"title": title})).await;
                outcomes.push((
                    title,
                    Outcome {
                        status: response.status().as_u16(),
                        took: sent.elapsed(),
                        hashes: false,
                    },
                ));
                n += 1;
            }
            outcomes
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    relay.cut();
    let cut_at = Instant::now();

    // Meanwhile, every route at once: 200 requests, 20 at a time.
    let requests: Vec<_> = (0..BARRAGE)
        .map(|n| {
            let (app, token, id) = (app.clone(), user.token.clone(), task_id.clone());
            async move {
                let sent = Instant::now();
                let response = match n % 9 {
                    0 => app.list_tasks(&token).await,
                    1 => app.get_task(&token, &id).await,
                    2 => app.replace_task(&token, &id, &json!({"title": "x"})).await,
                    3 => app.flip_task(&token, &id).await,
                    4 => app.delete_task(&token, &id).await,
                    5 => app.me(&token).await,
                    6 => app.sign_in("someone@example.io", "password1").await,
                    7 => {
                        app.sign_up(&format!("new{n}@example.io"), "password1")
                            .await
                    }
                    _ => app
                        .client
                        .get(app.url("/health/ready"))
                        .send()
                        .await
                        .unwrap(),
                };
                Outcome {
                    status: response.status().as_u16(),
                    took: sent.elapsed(),
                    hashes: n % 9 == 7,
                }
            }
        })
        .collect();
    let barrage: Vec<Outcome> = futures_util::stream::iter(requests)
        .buffer_unordered(20)
        .collect()
        .await;
    let health = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    // And one sign-up on its own, with no other hash to wait for.
    let sent = Instant::now();
    let lone_sign_up = app.sign_up("alone@example.io", "password1").await;
    let lone_sign_up = Outcome {
        status: lone_sign_up.status().as_u16(),
        took: sent.elapsed(),
        hashes: true,
    };
    let outage_for = cut_at.elapsed().max(Duration::from_secs(3));
    tokio::time::sleep(outage_for.saturating_sub(cut_at.elapsed())).await;
    relay.restore().await;
    let restored_at = Instant::now();
    let deadline = restored_at + Duration::from_secs(15);
    while app
        .client
        .get(app.url("/health/ready"))
        .send()
        .await
        .unwrap()
        .status()
        != StatusCode::OK
    {
        assert!(
            Instant::now() < deadline,
            "not ready 15 s after the database came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered_after = restored_at.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut writes = Vec::new();
    while let Some(outcomes) = writers.join_next().await {
        writes.extend(outcomes.unwrap());
    }

    // Never a 500, never longer than the acquire timeout plus slack. A
    // sign-up hashes the password before it reaches the database, and the
    // hasher runs one hash per two cores (`password.rs`): alone, a sign-up
    // may take one sign-up's time more; in the barrage, where its 22
    // sign-ups queue for the hasher, as many sign-ups' times more. On a
    // slower machine the queue alone took 3 s.
    let limit = Duration::from_secs(3);
    let sign_ups_in_barrage = u32::try_from(barrage.iter().filter(|o| o.hashes).count()).unwrap();
    let slowest = barrage
        .iter()
        .chain(writes.iter().map(|(_, outcome)| outcome))
        .filter(|outcome| !outcome.hashes)
        .map(|outcome| outcome.took)
        .max()
        .unwrap();
    for outcome in barrage.iter().chain([&lone_sign_up]) {
        assert_eq!(outcome.status, 503, "during the outage");
    }
    assert!(
        lone_sign_up.took < limit + one_sign_up,
        "a sign-up alone took {:?} (one before the outage: {one_sign_up:?})",
        lone_sign_up.took
    );
    for outcome in barrage.iter().filter(|o| o.hashes) {
        assert!(
            outcome.took < limit + one_sign_up * sign_ups_in_barrage,
            "a sign-up in the barrage took {:?} (one before the outage: {one_sign_up:?})",
            outcome.took
        );
    }
    for (title, outcome) in &writes {
        assert!(
            matches!(outcome.status, 201 | 503),
            "{title}: {}",
            outcome.status
        );
    }
    assert!(slowest < limit, "slowest answer {slowest:?}");

    // Every acknowledged write is stored; nothing else but what was tried.
    let stored: std::collections::HashSet<String> = DbProbe::connect(app.database.url())
        .await
        .tasks()
        .await
        .into_iter()
        .filter_map(|row| row[2].clone())
        .collect();
    let acknowledged: Vec<&String> = writes
        .iter()
        .filter(|(_, outcome)| outcome.status == 201)
        .map(|(title, _)| title)
        .collect();
    let refused = writes.len() - acknowledged.len();
    let lost = acknowledged
        .iter()
        .filter(|t| !stored.contains(**t))
        .count();
    assert_eq!(lost, 0, "acknowledged writes missing after recovery");
    let refused_but_stored = writes
        .iter()
        .filter(|(title, outcome)| outcome.status == 503 && stored.contains(title))
        .count();
    let tried: std::collections::HashSet<&String> = writes.iter().map(|(t, _)| t).collect();
    assert!(
        stored
            .iter()
            .all(|title| title == "target" || tried.contains(title)),
        "only attempted titles are stored"
    );
    assert!(refused > 0 && !acknowledged.is_empty());
    report(&format!(
        "outage (relay cut ~{outage_for:?}, DATABASE_ACQUIRE_TIMEOUT=1): barrage of {BARRAGE} \
         requests on 9 routes -> {BARRAGE} x 503; write burst of {} creates by {WRITERS} writers \
         -> {} x 201 (all {} stored after recovery, 0 lost), {refused} x 503 ({refused_but_stored} \
         of them committed before the cut reached the answer), 0 x 500; slowest answer \
         {slowest:?} ({:?} for a sign-up, which hashes first; {one_sign_up:?} before the \
         outage); ready again {recovered_after:?} after the database came back",
        writes.len(),
        acknowledged.len(),
        acknowledged.len(),
        barrage
            .iter()
            .chain([&lone_sign_up])
            .filter(|o| o.hashes)
            .map(|o| o.took)
            .max()
            .unwrap(),
    ));
}

/// When the database falls silent instead of refusing (packets dropped,
/// sockets left open), the ping of every idle connection hangs rather than
/// fails. The pool checks idle connections one after another, so without
/// one deadline over the whole wait each idle connection would add a whole
/// DATABASE_ACQUIRE_TIMEOUT; a request still gets its 503 within one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_database_costs_a_request_one_acquire_timeout_however_many_connections_idle() {
    let Some((relay, app)) = app_behind_relay("silent-database").await else {
        return;
    };
    let user = TestUser::signed_up(&app).await;

    // Lists at once until the pool holds several connections, all idle.
    let mut idle = 0.0;
    for _ in 0..20 {
        let lists = (0..16).map(|_| app.list_tasks(&user.token));
        for response in futures_util::future::join_all(lists).await {
            assert_eq!(response.status(), StatusCode::OK);
        }
        let metrics = scrape(&app).await;
        idle = sample(&metrics, "todo_api_db_pool_connections", r#"state="idle""#).unwrap_or(0.0);
        if idle >= 4.0 {
            break;
        }
    }
    assert!(idle >= 4.0, "the pool opened only {idle} connections");
    // Idle long enough that the pool pings each before handing it out.
    tokio::time::sleep(Duration::from_millis(1_300)).await;

    relay.stall();
    let sent = Instant::now();
    let response = app.list_tasks(&user.token).await;
    let took = sent.elapsed();
    assert_error(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
    )
    .await;
    assert!(
        took < Duration::from_millis(1_800),
        "503 after {took:?} with {idle} idle connections and a 1 s acquire timeout"
    );
}

/// A statement already sent when the database falls silent: nothing can
/// cancel it on the server's side, so the service must give up by itself,
/// shortly after `DATABASE_STATEMENT_TIMEOUT`. The acquire timeout is set
/// far above that, so a 503 in time cannot come from waiting for a
/// connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_stuck_on_a_silent_database_ends_in_503_within_the_statement_timeout() {
    const TIMEOUT: Duration = Duration::from_secs(1);
    let Some((relay, app)) = app_behind_relay_with(
        "silent-statement",
        &[
            ("DATABASE_STATEMENT_TIMEOUT", "1"),
            ("DATABASE_ACQUIRE_TIMEOUT", "30"),
            ("DATABASE_MAX_CONNECTIONS", "1"),
        ],
    )
    .await
    else {
        return;
    };
    let user = TestUser::signed_up(&app).await;
    // One connection, just used: the next request gets it without the
    // idle ping, so its statement is what meets the silence.
    assert_eq!(app.list_tasks(&user.token).await.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(100)).await;

    relay.stall();
    let list = app
        .client
        .get(app.url("/api/tasks"))
        .bearer_auth(&user.token)
        // Without a statement deadline the request would hang; fail the
        // test instead.
        .timeout(Duration::from_secs(15))
        .send();
    let sent = Instant::now();
    let response = list.await.expect("an answer, not a hang");
    let took = sent.elapsed();
    assert_error(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
    )
    .await;
    assert!(
        took >= TIMEOUT && took < TIMEOUT + Duration::from_secs(1),
        "503 after {took:?} with DATABASE_STATEMENT_TIMEOUT=1"
    );

    // The readiness probe is bounded the same way.
    let sent = Instant::now();
    let ready = app
        .client
        .get(app.url("/health/ready"))
        .timeout(Duration::from_secs(15))
        .send()
        .await
        .expect("an answer, not a hang");
    let ready_took = sent.elapsed();
    assert_error(ready, StatusCode::SERVICE_UNAVAILABLE, "not_ready").await;
    assert!(
        ready_took < TIMEOUT + Duration::from_secs(1),
        "readiness answered after {ready_took:?}"
    );
    report(&format!(
        "silent database mid-statement (relay stalled, DATABASE_STATEMENT_TIMEOUT=1, \
         DATABASE_ACQUIRE_TIMEOUT=30): list -> 503 after {took:?}; /health/ready -> 503 \
         after {ready_took:?}"
    ));
}

/// A statement the server itself cancels at `statement_timeout`
/// (SQLSTATE 57014) is a 503, not a 500: here an update waits for a row
/// that another session keeps locked. That it was the server's cancel, not
/// the service's own deadline, shows in `pg_stat_activity`: no session is
/// left waiting for the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_the_server_cancels_at_the_statement_timeout_is_a_503() {
    use sea_orm::sqlx::postgres::PgConnection;
    use sea_orm::sqlx::{AssertSqlSafe, Connection as _, Executor as _, Row as _};

    let Some(database) = postgres_database("server-side statement timeout").await else {
        return;
    };
    let url = database.url().to_owned();
    let app = spawn_app_with(database, &[("DATABASE_STATEMENT_TIMEOUT", "1")]).await;
    let user = TestUser::signed_up(&app).await;
    let id = app.created_task(&user.token, "locked").await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Another session locks the row and sleeps in its transaction, far
    // longer than the statement timeout.
    let mut holder = PgConnection::connect(&url).await.unwrap();
    holder.execute("BEGIN").await.unwrap();
    holder
        .execute(AssertSqlSafe(format!(
            "SELECT id FROM tasks WHERE id = '{id}' FOR UPDATE"
        )))
        .await
        .unwrap();
    let holder_pid: i32 = holder
        .fetch_one("SELECT pg_backend_pid()")
        .await
        .unwrap()
        .get(0);
    let sleeper = tokio::spawn(async move {
        let slept = holder.execute("SELECT pg_sleep(30)").await;
        (holder, slept)
    });

    let sent = Instant::now();
    let flip = app
        .client
        .patch(app.url(&format!("/api/tasks/{id}/complete")))
        .bearer_auth(&user.token)
        .timeout(Duration::from_secs(15))
        .send()
        .await
        .expect("an answer, not a hang");
    let took = sent.elapsed();
    let status = flip.status();
    assert_error(flip, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;

    let mut observer = PgConnection::connect(&url).await.unwrap();
    let waiting: i64 = observer
        .fetch_one(AssertSqlSafe(format!(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock' \
             AND pid <> {holder_pid}"
        )))
        .await
        .unwrap()
        .get(0);
    assert_eq!(waiting, 0, "a session still waits for the lock");
    // PostgreSQL times the statement on its own clock, from its start, so
    // the client can see a hair under the second.
    assert!(
        took >= Duration::from_millis(990) && took < Duration::from_secs(3),
        "answered after {took:?}"
    );

    // End the sleeper, then the lock goes with its transaction.
    observer
        .execute(AssertSqlSafe(format!(
            "SELECT pg_cancel_backend({holder_pid})"
        )))
        .await
        .unwrap();
    let (holder, _) = sleeper.await.unwrap();
    let _ = holder.close().await;
    let _ = observer.close().await;
    let after = app.flip_task(&user.token, &id).await;
    assert_eq!(
        after.status(),
        StatusCode::OK,
        "the service recovers at once"
    );
    report(&format!(
        "row lock held past DATABASE_STATEMENT_TIMEOUT=1 on PostgreSQL: flip -> {status} \
         after {took:?}, no session left waiting on the lock (the server cancelled it)"
    ));
}
