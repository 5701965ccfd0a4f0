//! Three palaver replicas on PostgreSQL (tracker store and reminders) and Redis (lock
//! store): 1,000 reminders due within the same few seconds, five per conversation,
//! scheduled through every replica, each fire exactly once (counted in the stored
//! events), and a reminder scheduled before a restart fires once after it. Reminders
//! with the Redis tracker store: kept in Redis, fired once by two replicas, across a
//! restart.

mod common;
mod stores_support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use common::{Options, Server};
use futures::StreamExt;
use serde_json::{json, Value};
use sqlx::Row;
use stores_support::{unique, PgDb};

const CONVERSATIONS: usize = 200;
const PER_CONVERSATION: usize = 5;

fn reminders_bot() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reminders_bot")
}

/// Per conversation: the PERSON of every external event and of every answer.
async fn fired(db: &PgDb) -> HashMap<String, (Vec<String>, Vec<String>)> {
    let mut conn = db.connect().await;
    let rows = sqlx::query("SELECT sender_id, type_name, data FROM events ORDER BY id")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let mut out: HashMap<String, (Vec<String>, Vec<String>)> = HashMap::new();
    for r in rows {
        let sender: String = r.get("sender_id");
        let data: String = r.get("data");
        let e: Value = serde_json::from_str(&data).unwrap();
        let entry = out.entry(sender).or_default();
        match r.get::<String, _>("type_name").as_str() {
            "user" if e["metadata"]["is_external"] == true => entry.0.push(
                e["parse_data"]["entities"][0]["value"]
                    .as_str()
                    .unwrap_or("?")
                    .to_owned(),
            ),
            "bot" => entry.1.push(e["text"].as_str().unwrap_or("?").to_owned()),
            _ => {}
        }
    }
    out
}

async fn pending(db: &PgDb) -> i64 {
    let mut conn = db.connect().await;
    sqlx::query_scalar("SELECT COUNT(*) FROM palaver_reminders")
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_on_postgres_and_redis_fire_each_of_1000_reminders_once() {
    let Some(db) = PgDb::create().await else {
        return;
    };
    let Some(redis_url) = stores_support::service_url("PALAVER_TEST_REDIS_URL") else {
        return;
    };
    let redis = reqwest::Url::parse(&redis_url).unwrap();
    let endpoints = format!(
        "{}lock_store:\n  type: redis\n  url: {}\n  port: {}\n  db: 1\n  key_prefix: {}\n  \
         lock_lifetime: 2\n",
        db.endpoints(),
        redis.host_str().unwrap(),
        redis.port().unwrap_or(6379),
        unique("rem")
    );
    let options = Options {
        bot: Some(reminders_bot()),
        endpoints: Some(endpoints),
        args: vec!["--metrics".into()],
        ..Default::default()
    };
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(Server::with(options.clone()).await);
    }

    // 1,000 reminders: five per conversation (different names, same due second), each
    // conversation's five scheduled through different replicas.
    let due = Utc::now() + chrono::Duration::seconds(8);
    let started = Instant::now();
    let jobs: Vec<(usize, usize)> = (0..PER_CONVERSATION)
        .flat_map(|k| (0..CONVERSATIONS).map(move |c| (c, k)))
        .collect();
    let mut posts = futures::stream::iter(jobs.into_iter().map(|(c, k)| {
        let s = &replicas[(c + k) % 3];
        let at = due + chrono::Duration::milliseconds((c % 20) as i64 * 100);
        let body = json!({"event": "reminder", "intent": "EXTERNAL_reminder",
            "name": format!("r{k}"),
            "entities": [{"entity": "PERSON", "value": format!("p{c}-{k}")}],
            "date_time": at.to_rfc3339(), "kill_on_user_msg": false});
        async move {
            let (status, out) = s
                .post_events(
                    &format!("conv-{c}"),
                    &body,
                    "&execute_side_effects=true&include_events=NONE",
                )
                .await;
            assert_eq!(status, 200, "{out}");
        }
    }))
    .buffer_unordered(24);
    while posts.next().await.is_some() {}
    drop(posts);
    let total = CONVERSATIONS * PER_CONVERSATION;
    eprintln!(
        "scheduled {total} reminders through 3 replicas in {:?}",
        started.elapsed()
    );
    assert!(
        Utc::now() < due,
        "scheduling took longer than the test allows"
    );

    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let n: usize = fired(&db).await.values().map(|(ext, _)| ext.len()).sum();
        if n >= total || Instant::now() > deadline {
            eprintln!("{n} fired {:?} after the first was due", Utc::now() - due);
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Time for a duplicate to show up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let counts = fired(&db).await;
    for c in 0..CONVERSATIONS {
        let (mut ext, mut bots) = counts
            .get(&format!("conv-{c}"))
            .cloned()
            .unwrap_or_default();
        ext.sort();
        bots.sort();
        let want: Vec<String> = (0..PER_CONVERSATION).map(|k| format!("p{c}-{k}")).collect();
        assert_eq!(ext, want, "conv-{c}: the external events");
        let answers: Vec<String> = want
            .iter()
            .map(|p| format!("Remember to call {p}!"))
            .collect();
        assert_eq!(bots, answers, "conv-{c}: the answers");
    }
    assert_eq!(pending(&db).await, 0);
    let mut per_replica = Vec::new();
    for s in &replicas {
        let text = s
            .client
            .get(s.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        per_replica.push(
            text.lines()
                .find(|l| l.starts_with("palaver_reminders_total{outcome=\"fired\"}"))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0),
        );
    }
    eprintln!("fired per replica: {per_replica:?}");
    assert_eq!(per_replica.iter().sum::<f64>(), total as f64);

    // A reminder scheduled, then every replica killed and started again before it is
    // due: once. (A lock a killed replica held expires after `lock_lifetime`.)
    let at = (Utc::now() + chrono::Duration::seconds(3)).to_rfc3339();
    let (status, _) = replicas[0]
        .post_events(
            "after-restart",
            &json!({"event": "reminder", "intent": "EXTERNAL_reminder", "name": "x",
                "entities": {"PERSON": "Ada"}, "date_time": at}),
            "&execute_side_effects=true",
        )
        .await;
    assert_eq!(status, 200);
    for s in &mut replicas {
        s.kill9();
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    for s in &mut replicas {
        s.restart().await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while fired(&db)
        .await
        .get("after-restart")
        .is_none_or(|(e, _)| e.is_empty())
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        fired(&db).await.get("after-restart").cloned(),
        Some((
            vec!["Ada".to_owned()],
            vec!["Remember to call Ada!".to_owned()]
        ))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_redis_tracker_store_reminders_live_in_redis() {
    let Some(redis_url) = stores_support::service_url("PALAVER_TEST_REDIS_URL") else {
        return;
    };
    let redis = reqwest::Url::parse(&redis_url).unwrap();
    let prefix = unique("remr");
    let (host, port) = (redis.host_str().unwrap(), redis.port().unwrap_or(6379));
    let options = Options {
        bot: Some(reminders_bot()),
        endpoints: Some(format!(
            "tracker_store:\n  type: redis\n  url: {host}\n  port: {port}\n  db: 2\n  \
             key_prefix: {prefix}\n\
             lock_store:\n  type: redis\n  url: {host}\n  port: {port}\n  db: 1\n  \
             key_prefix: {prefix}\n  lock_lifetime: 2\n"
        )),
        ..Default::default()
    };
    let mut a = Server::with(options.clone()).await;
    let mut b = Server::with(options).await;
    let soon = |ms: i64| (Utc::now() + chrono::Duration::milliseconds(ms)).to_rfc3339();
    // Twenty conversations through both replicas, one cancelled; both replicas are
    // killed before they are due and started again after.
    for i in 0..20 {
        let s = if i % 2 == 0 { &a } else { &b };
        let (status, out) = s
            .post_events(
                &format!("r{i}"),
                &json!({"event": "reminder", "intent": "EXTERNAL_reminder", "name": "x",
                    "entities": [{"entity": "PERSON", "value": format!("p{i}")}],
                    "date_time": soon(1500), "kill_on_user_msg": false}),
                "&execute_side_effects=true&include_events=NONE",
            )
            .await;
        assert_eq!(status, 200, "{out}");
    }
    let (status, _) = b
        .post_events(
            "r3",
            &json!({"event": "cancel_reminder", "name": "x"}),
            "&execute_side_effects=true",
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = a
        .post_events(
            "later",
            &json!({"event": "reminder", "intent": "EXTERNAL_reminder", "name": "y",
                "entities": {"PERSON": "Ada"}, "date_time": soon(3000)}),
            "&execute_side_effects=true",
        )
        .await;
    assert_eq!(status, 200);
    a.kill9();
    b.kill9();
    tokio::time::sleep(Duration::from_secs(4)).await;
    a.restart().await;
    b.restart().await;
    let answers = |t: &Value| -> Vec<String> {
        t["events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["event"] == "bot")
            .filter_map(|e| e["text"].as_str().map(str::to_owned))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let t = b.tracker("later", "&include_events=ALL").await;
        if !answers(&t).is_empty() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in 0..20 {
        let t = b.tracker(&format!("r{i}"), "&include_events=ALL").await;
        let want: Vec<String> = if i == 3 {
            vec![]
        } else {
            vec![format!("Remember to call p{i}!")]
        };
        assert_eq!(answers(&t), want, "r{i}");
    }
    assert_eq!(
        answers(&a.tracker("later", "&include_events=ALL").await),
        vec!["Remember to call Ada!"]
    );
}
