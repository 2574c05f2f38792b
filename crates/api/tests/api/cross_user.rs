//! Several users doing random operations on each other's task ids, checked
//! against an in-memory model: every status is the one the model predicts,
//! no response ever carries another user's task, and every user's final
//! list equals the model.
//!
//! Operations: `CROSS_USER_OPS` (default 400; the larger form in
//! `docs/reliability.md` used 3,000). Seed: `CROSS_USER_SEED` (default
//! from the clock; printed, so a failure can be replayed).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::helpers::{TestUser, spawn_app};
use crate::server_process::report;

/// SplitMix64: a small, well-mixed generator, seeded for replay.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[derive(Clone, Debug, PartialEq)]
struct ModelTask {
    owner: usize,
    title: String,
    description: Option<String>,
    completed: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_operations_across_users_match_the_model_and_never_leak() {
    const USERS: usize = 4;
    let operations: usize = std::env::var("CROSS_USER_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let seed: u64 = std::env::var("CROSS_USER_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let mut random = Random(seed);
    let app = spawn_app().await;
    let mut users = Vec::new();
    for _ in 0..USERS {
        users.push(TestUser::signed_up(&app).await);
    }
    // Every id ever seen, deleted ones included, plus ids that never existed.
    let mut known_ids: Vec<String> = (0..3).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let mut model: BTreeMap<String, ModelTask> = BTreeMap::new();
    let mut counts = BTreeMap::<&str, u32>::new();

    let task_of = |task: &Value| ModelTask {
        owner: usize::MAX,
        title: task["title"].as_str().unwrap_or_default().to_owned(),
        description: task["description"].as_str().map(str::to_owned),
        completed: task["completed"] == true,
    };

    for step in 0..operations {
        let actor = random.below(USERS);
        let token = &users[actor].token;
        let target = known_ids[random.below(known_ids.len())].clone();
        let context = format!("seed {seed}, step {step}, user {actor}, task {target}");
        // What the model says about the target, from the actor's view.
        let expected_miss = match model.get(&target) {
            Some(task) if task.owner == actor => None,
            Some(_) => Some(403),
            None => Some(404),
        };
        let operation = random.below(7);
        let (name, response) = match operation {
            0 => {
                let title = format!("u{actor}-s{step}");
                ("create", app.create_task(token, &json!({"title": title, "description": if step % 2 == 0 { Value::Null } else { json!(format!("d{step}")) }})).await)
            }
            1 => ("get", app.get_task(token, &target).await),
            2 => {
                let body =
                    json!({"title": format!("r{actor}-s{step}"), "completed": step % 3 == 0});
                ("replace", app.replace_task(token, &target, &body).await)
            }
            3 => ("flip", app.flip_task(token, &target).await),
            4 => (
                "set",
                app.complete_task(token, &target, &json!({"completed": step % 2 == 0}))
                    .await,
            ),
            5 => ("delete", app.delete_task(token, &target).await),
            _ => ("list", app.list_tasks(token).await),
        };
        *counts.entry(name).or_default() += 1;
        let status = response.status().as_u16();
        let body: Value = if status == 204 {
            Value::Null
        } else {
            response.json().await.unwrap()
        };
        // No answer ever names a task the actor does not own.
        for (id, task) in &model {
            if task.owner != actor {
                assert!(
                    !body.to_string().contains(id.as_str()),
                    "{context}: leaked {id}"
                );
            }
        }
        match (name, expected_miss) {
            ("create", _) => {
                assert_eq!(status, 201, "{context}");
                let id = body["id"].as_str().unwrap().to_owned();
                let mut task = task_of(&body);
                task.owner = actor;
                assert_eq!(task.title, format!("u{actor}-s{step}"));
                model.insert(id.clone(), task);
                known_ids.push(id);
            }
            ("list", _) => {
                assert_eq!(status, 200, "{context}");
                let mut listed: Vec<(String, ModelTask)> = body
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|task| {
                        let mut model_task = task_of(task);
                        model_task.owner = actor;
                        (task["id"].as_str().unwrap().to_owned(), model_task)
                    })
                    .collect();
                listed.sort_by(|a, b| a.0.cmp(&b.0));
                let expected: Vec<(String, ModelTask)> = model
                    .iter()
                    .filter(|(_, task)| task.owner == actor)
                    .map(|(id, task)| (id.clone(), task.clone()))
                    .collect();
                assert_eq!(listed, expected, "{context}");
            }
            (_, Some(miss)) => {
                assert_eq!(status, miss, "{context}: {name}");
            }
            (_, None) => {
                let task = model.get_mut(&target).unwrap();
                match name {
                    "get" => {}
                    "replace" => {
                        task.title = format!("r{actor}-s{step}");
                        task.description = None;
                        task.completed = step % 3 == 0;
                    }
                    "flip" => task.completed = !task.completed,
                    "set" => task.completed = step % 2 == 0,
                    _ => {}
                }
                if name == "delete" {
                    assert_eq!(status, 204, "{context}");
                    model.remove(&target);
                } else {
                    assert_eq!(status, 200, "{context}: {name}");
                    let mut seen = task_of(&body);
                    seen.owner = actor;
                    assert_eq!(&seen, model.get(&target).unwrap(), "{context}: {name}");
                    assert_eq!(body["id"], target.as_str());
                }
            }
        }
    }

    // Final state: each user's list is exactly their part of the model.
    for (actor, user) in users.iter().enumerate() {
        let list: Vec<Value> = app.list_tasks(&user.token).await.json().await.unwrap();
        let mut ids: Vec<&str> = list.iter().map(|t| t["id"].as_str().unwrap()).collect();
        ids.sort_unstable();
        let expected: Vec<&str> = model
            .iter()
            .filter(|(_, task)| task.owner == actor)
            .map(|(id, _)| id.as_str())
            .collect();
        assert_eq!(ids, expected, "seed {seed}: final list of user {actor}");
    }
    report(&format!(
        "cross-user model (seed {seed}): {operations} random operations by {USERS} users on {} \
         ids {counts:?}; every status and body as the model predicts, 0 foreign tasks in any \
         answer, {} tasks left, each user's final list equal to the model",
        known_ids.len(),
        model.len()
    ));
}
