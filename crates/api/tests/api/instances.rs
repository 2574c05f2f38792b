//! The real binary as more than one process: two instances on one
//! PostgreSQL behave like one, and a server killed with SIGKILL mid-burst
//! loses no acknowledged write and leaves nothing half-written.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{Value, json};
use todo_persistence::testing::TestDatabase;
use tokio::task::JoinSet;

use crate::db_probe::DbProbe;
use crate::helpers::{PASSWORD, postgres_database};
use crate::server_process::{ServerProcess, free_port, report};

async fn post(
    client: &reqwest::Client,
    url: String,
    token: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let mut request = client.post(url).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgres_end_in_the_state_one_would() {
    const USERS: usize = 3;
    const TASKS_EACH: usize = 20;
    const FLIPS: usize = 51;
    let Some(database) = postgres_database("two-instance").await else {
        return;
    };
    // Started together on an empty database: both migrate at once.
    let a = ServerProcess::spawn(database.url(), free_port(), &[]);
    let b = ServerProcess::spawn(database.url(), free_port(), &[]);
    a.wait_until_up().await;
    b.wait_until_up().await;
    let servers = [&a, &b];
    let on = |n: usize, path: &str| servers[n % 2].url(path);
    let client = reqwest::Client::new();

    // One email, ten sign-ups spread over both: exactly one account.
    let racing = join_all((0..10).map(|n| {
        post(
            &client,
            on(n, "/api/auth/signup"),
            None,
            json!({"email": "race@example.io", "password": PASSWORD}),
        )
    }))
    .await;
    let created = racing.iter().filter(|(status, _)| *status == 201).count();
    let conflicts = racing.iter().filter(|(status, _)| *status == 409).count();
    assert_eq!((created, conflicts), (1, 9), "{racing:?}");

    let mut tokens = Vec::new();
    for n in 0..USERS {
        let (status, body) = post(
            &client,
            on(n, "/api/auth/signup"),
            None,
            json!({"email": format!("user{n}@example.io"), "password": PASSWORD}),
        )
        .await;
        assert_eq!(status, 201);
        tokens.push(body["access_token"].as_str().unwrap().to_owned());
    }

    // Every user writes through both instances at once.
    let creates = (0..USERS).flat_map(|user| (0..TASKS_EACH).map(move |n| (user, n)));
    let created: Vec<(usize, u16, Value)> = join_all(creates.map(|(user, n)| {
        let (client, token) = (&client, &tokens[user]);
        async move {
            let (status, task) = post(
                client,
                on(user + n, "/api/tasks"),
                Some(token),
                json!({"title": format!("u{user}-t{n:02}")}),
            )
            .await;
            (user, status, task)
        }
    }))
    .await;
    let mut model: BTreeMap<usize, HashSet<String>> = BTreeMap::new();
    for (user, status, task) in &created {
        assert_eq!(*status, 201);
        model
            .entry(*user)
            .or_default()
            .insert(task["title"].as_str().unwrap().to_owned());
    }

    // 51 flips of one task, alternating instances: no flip is lost.
    let contended = created[0].2["id"].as_str().unwrap().to_owned();
    let flips = join_all((0..FLIPS).map(|n| {
        send(
            client
                .patch(on(n, &format!("/api/tasks/{contended}/complete")))
                .bearer_auth(&tokens[0]),
        )
    }))
    .await;
    assert!(flips.iter().all(|(status, _)| *status == 200));
    let shown_true = flips
        .iter()
        .filter(|(_, task)| task["completed"] == true)
        .count();
    assert_eq!(shown_true, FLIPS.div_ceil(2));

    // Another user's task is 403 on both instances.
    for server in servers {
        let (status, _) = send(
            client
                .get(server.url(&format!("/api/tasks/{contended}")))
                .bearer_auth(&tokens[1]),
        )
        .await;
        assert_eq!(status, 403);
    }

    // Both instances show each user exactly the model: no duplicate, no
    // loss, nothing of another user.
    for (user, expected) in &model {
        for server in servers {
            let (status, list) = send(
                client
                    .get(server.url("/api/tasks"))
                    .bearer_auth(&tokens[*user]),
            )
            .await;
            assert_eq!(status, 200);
            let titles: Vec<String> = list
                .as_array()
                .unwrap()
                .iter()
                .map(|task| task["title"].as_str().unwrap().to_owned())
                .collect();
            assert_eq!(titles.len(), TASKS_EACH, "no duplicates");
            assert_eq!(&titles.iter().cloned().collect::<HashSet<_>>(), expected);
            let completed = list
                .as_array()
                .unwrap()
                .iter()
                .filter(|task| task["completed"] == true)
                .count();
            assert_eq!(completed, usize::from(*user == 0), "51 flips: odd, so done");
        }
    }
    let rows = DbProbe::connect(database.url()).await.tasks().await;
    assert_eq!(rows.len(), USERS * TASKS_EACH);
    report(&format!(
        "two instances, one PostgreSQL (started together, both migrating): 10 racing sign-ups \
         -> 1 x 201 + 9 x 409; {} creates by {USERS} users across both -> {} rows, each list \
         equal on both instances; {FLIPS} alternating flips -> {shown_true} showed true, final \
         completed = true; cross-user reads 2 x 403",
        USERS * TASKS_EACH,
        rows.len()
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_burst_loses_no_acknowledged_write_and_leaves_nothing_half_written() {
    const WRITERS: usize = 8;
    let database = TestDatabase::preferred().await;
    let port = free_port();
    let mut server = ServerProcess::spawn(database.url(), port, &[]);
    server.wait_until_up().await;
    let client = reqwest::Client::new();
    let (_, body) = post(
        &client,
        server.url("/api/auth/signup"),
        None,
        json!({"email": "burst@example.io", "password": PASSWORD}),
    )
    .await;
    let token = body["access_token"].as_str().unwrap().to_owned();

    // Each writer creates a task, then replaces its title and description
    // together, over and over. A replacement is all or nothing: title and
    // description always carry the same version number.
    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::<(String, u32)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = JoinSet::new();
    for writer in 0..WRITERS {
        let (client, token, url, acknowledged, stop) = (
            client.clone(),
            token.clone(),
            server.base.clone(),
            acknowledged.clone(),
            stop.clone(),
        );
        writers.spawn(async move {
            let mut attempts = 0_u32;
            while !stop.load(Ordering::Relaxed) {
                let title = format!("w{writer}-{attempts:05}");
                attempts += 1;
                let Ok(response) = client
                    .post(format!("{url}/api/tasks"))
                    .bearer_auth(&token)
                    .json(&json!({"title": format!("{title} v0"), "description": "v0"}))
                    .send()
                    .await
                else {
                    break;
                };
                if response.status() != 201 {
                    break;
                }
                let Ok(task) = response.json::<Value>().await else { break };
                let id = task["id"].as_str().unwrap().to_owned();
                acknowledged.lock().unwrap().push((id.clone(), 0));
                for version in 1..=3_u32 {
                    let replaced = client
                        .put(format!("{url}/api/tasks/{id}"))
                        .bearer_auth(&token)
                        .json(&json!({"title": format!("{title} v{version}"), "description": format!("v{version}")}))
                        .send()
                        .await;
                    match replaced {
                        Ok(response) if response.status() == 200 => {
                            acknowledged.lock().unwrap().push((id.clone(), version));
                        }
                        _ => return attempts,
                    }
                }
            }
            attempts
        });
    }
    // Kill once the burst is well under way.
    let started = Instant::now();
    while acknowledged.lock().unwrap().len() < 200 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "burst too slow"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill_hard().await;
    let killed_after = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    while writers.join_next().await.is_some() {}
    let acknowledged = acknowledged.lock().unwrap().clone();

    // Restart on the same database and read everything back.
    let restarted = ServerProcess::start(database.url(), &[]).await;
    let (status, list) = send(client.get(restarted.url("/api/tasks")).bearer_auth(&token)).await;
    assert_eq!(status, 200, "the old token works after the restart");
    let stored: BTreeMap<String, (String, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|task| {
            (
                task["id"].as_str().unwrap().to_owned(),
                (
                    task["title"].as_str().unwrap().to_owned(),
                    task["description"].as_str().unwrap_or("").to_owned(),
                ),
            )
        })
        .collect();
    // Every acknowledged create is there, at least at the version last
    // acknowledged (a write in flight at the kill may have landed too).
    let mut latest: BTreeMap<&str, u32> = BTreeMap::new();
    for (id, version) in &acknowledged {
        let entry = latest.entry(id).or_default();
        *entry = (*entry).max(*version);
    }
    for (id, version) in &latest {
        let (_, description) = stored.get(*id).unwrap_or_else(|| panic!("task {id} lost"));
        let stored_version: u32 = description[1..].parse().unwrap();
        assert!(
            stored_version >= *version,
            "{id}: acknowledged v{version}, stored {description}"
        );
    }
    // Nothing half-written: each row's title and description agree.
    for (id, (title, description)) in &stored {
        assert!(
            title.ends_with(&format!(" {description}")),
            "{id}: title {title:?} with description {description:?}"
        );
    }
    // The changes feed, read through the new process, holds every stored
    // task once, in its stored state: no acknowledged change is missing
    // from it, and nothing the kill cut short appears in it.
    let mut fed: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut since: Option<String> = None;
    loop {
        let query = since
            .as_ref()
            .map_or(String::new(), |c| format!("?since={c}"));
        let (status, page) = send(
            client
                .get(restarted.url(&format!("/api/tasks/changes{query}")))
                .bearer_auth(&token),
        )
        .await;
        assert_eq!(status, 200, "{page}");
        for change in page["changes"].as_array().unwrap() {
            assert_eq!(change["op"], "upsert", "{change}");
            let task = &change["task"];
            let state = (
                task["title"].as_str().unwrap().to_owned(),
                task["description"].as_str().unwrap_or("").to_owned(),
            );
            assert!(
                fed.insert(task["id"].as_str().unwrap().to_owned(), state)
                    .is_none(),
                "a task twice in the feed: {change}"
            );
        }
        since = Some(page["cursor"].as_str().unwrap().to_owned());
        if page["has_more"] == false {
            break;
        }
    }
    assert_eq!(fed, stored, "the feed and the list disagree after kill -9");
    let in_flight_landed = stored.len() - latest.len();
    report(&format!(
        "kill -9 after {killed_after:?} of a burst by {WRITERS} writers: {} acknowledged writes \
         ({} creates, {} replacements); after restart all {} tasks present at or past their \
         acknowledged version and in the changes feed in that state, {in_flight_landed} \
         unacknowledged creates landed whole, 0 rows with title and description from \
         different writes",
        acknowledged.len(),
        latest.len(),
        acknowledged.len() - latest.len(),
        latest.len(),
    ));
}
