//! Several palaver processes sharing PostgreSQL (tracker store) and Redis (lock
//! store): any replica serves any conversation, each conversation's requests are
//! applied one at a time in order, a replica killed with SIGKILL leaves nothing
//! acknowledged lost and its locks expire, and a Redis restart gives clean 503s.

mod common;
mod stores_support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Options, Server, TOKEN};
use serde_json::{json, Value};
use stores_support::{unique, PgDb, PrivateRedis};

/// Messages per conversation are sent in waves of this many at once (to different
/// replicas); a wave starts when the previous one is answered.
const WAVE: usize = 2;

fn endpoints(pg_url: &str, redis_host: &str, redis_port: u16, prefix: &str) -> String {
    format!(
        "tracker_store:\n  type: SQL\n  dialect: postgresql\n  url: {pg_url}\n\
         lock_store:\n  type: redis\n  url: {redis_host}\n  port: {redis_port}\n  db: 1\n  \
         key_prefix: {prefix}\n  lock_lifetime: 2\n"
    )
}

/// What the client knows of one message.
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    /// Answered 200: it must be stored, once, in its wave's place.
    Acknowledged,
    /// No answer (the replica died) or an error: stored at most once.
    Unknown,
}

#[derive(Default)]
struct Log {
    /// Per conversation: (text, wave, outcome), in send order.
    sent: HashMap<String, Vec<(String, usize, Outcome)>>,
}

async fn post_message(client: &reqwest::Client, base: &str, sender: &str, text: &str) -> bool {
    match client
        .post(format!("{base}/webhooks/rest/webhook"))
        .timeout(Duration::from_secs(30))
        .json(&json!({"sender": sender, "message": text}))
        .send()
        .await
    {
        Ok(r) if r.status() == 200 => {
            let body: Value = r.json().await.unwrap_or(Value::Null);
            assert_eq!(body[0]["text"], "Hello!", "{body}");
            true
        }
        _ => false,
    }
}

/// Sends `per_conversation` messages to each of `conversations`, at most `concurrency`
/// requests at once, round-robin over the replicas that are up.
async fn run_load(
    bases: Arc<Mutex<Vec<Option<String>>>>,
    conversations: usize,
    per_conversation: usize,
    concurrency: usize,
    acked: Arc<AtomicUsize>,
    tag: &str,
) -> Log {
    let client = reqwest::Client::new();
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let next = Arc::new(AtomicUsize::new(0));
    let log = Arc::new(Mutex::new(Log::default()));
    let mut tasks = Vec::new();
    for c in 0..conversations {
        let (client, permits, next, log, bases, acked) = (
            client.clone(),
            permits.clone(),
            next.clone(),
            log.clone(),
            bases.clone(),
            acked.clone(),
        );
        let sender = format!("{tag}-conv-{c}");
        tasks.push(tokio::spawn(async move {
            let mut sent = 0;
            let mut wave = 0;
            while sent < per_conversation {
                let mut in_wave = Vec::new();
                for _ in 0..WAVE.min(per_conversation - sent) {
                    let text = format!("/greet{{\"name\": \"{sender}-{sent}\"}}");
                    sent += 1;
                    let base = loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let bases = bases.lock().unwrap();
                        if let Some(b) = &bases[i % bases.len()] {
                            break b.clone();
                        }
                    };
                    let (client, permits, sender) =
                        (client.clone(), permits.clone(), sender.clone());
                    in_wave.push(tokio::spawn(async move {
                        let _p = permits.acquire_owned().await.unwrap();
                        let ok = post_message(&client, &base, &sender, &text).await;
                        (text, ok)
                    }));
                }
                for t in in_wave {
                    let (text, ok) = t.await.unwrap();
                    let outcome = if ok {
                        acked.fetch_add(1, Ordering::Relaxed);
                        Outcome::Acknowledged
                    } else {
                        Outcome::Unknown
                    };
                    log.lock()
                        .unwrap()
                        .sent
                        .entry(sender.clone())
                        .or_default()
                        .push((text, wave, outcome));
                }
                wave += 1;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    Arc::try_unwrap(log)
        .ok()
        .expect("tasks finished")
        .into_inner()
        .unwrap()
}

/// Checks a conversation's stored events against what the client knows.
fn check_conversation(sender: &str, events: &[Value], sent: &[(String, usize, Outcome)]) {
    let names: Vec<String> = events
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["event"].as_str().unwrap_or_default(),
                e["name"].as_str().unwrap_or_default()
            )
        })
        .collect();
    // One session start: two requests never saw the same empty tracker.
    assert_eq!(
        names
            .iter()
            .filter(|n| *n == "action:action_session_start")
            .count(),
        1,
        "{sender}: {names:?}"
    );
    assert_eq!(
        &names[..3],
        &[
            "action:action_session_start",
            "session_started:",
            "action:action_listen"
        ]
    );
    // Every stored message has its whole turn, not interleaved with another's.
    let users: Vec<usize> = (0..events.len())
        .filter(|&i| events[i]["event"] == "user")
        .collect();
    for (k, &i) in users.iter().enumerate() {
        let end = users.get(k + 1).copied().unwrap_or(events.len());
        let turn: Vec<&str> = names[i + 1..end].iter().map(String::as_str).collect();
        let turn: Vec<&str> = turn
            .into_iter()
            .filter(|n| *n != "slot:name" && *n != "user_featurization:")
            .collect();
        assert_eq!(
            turn,
            vec!["action:utter_greet", "bot:", "action:action_listen"],
            "{sender}: turn of {}",
            events[i]["text"]
        );
    }
    // Acknowledged messages: all there, once; unknown ones at most once; waves in order.
    let stored: Vec<&str> = users
        .iter()
        .map(|&i| events[i]["text"].as_str().unwrap_or_default())
        .collect();
    let mut seen = HashSet::new();
    for t in &stored {
        assert!(seen.insert(*t), "{sender}: {t} stored twice");
    }
    let wave_of: HashMap<&str, (usize, &Outcome)> =
        sent.iter().map(|(t, w, o)| (t.as_str(), (*w, o))).collect();
    for (t, _, o) in sent {
        if *o == Outcome::Acknowledged {
            assert!(
                seen.contains(t.as_str()),
                "{sender}: acknowledged {t} is lost"
            );
        }
    }
    let mut last_wave = 0;
    for t in &stored {
        let (w, _) = wave_of
            .get(t)
            .unwrap_or_else(|| panic!("{sender}: {t} was never sent"));
        assert!(
            *w >= last_wave,
            "{sender}: {t} (wave {w}) after wave {last_wave}"
        );
        last_wave = *w;
    }
}

async fn tracker_events(base: &str, sender: &str) -> Vec<Value> {
    let r = reqwest::Client::new()
        .get(format!(
            "{base}/conversations/{sender}/tracker?token={TOKEN}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    t["events"].as_array().cloned().unwrap_or_default()
}

async fn start_replicas(n: usize, endpoints: &str) -> Vec<Server> {
    let mut servers = Vec::new();
    for _ in 0..n {
        servers.push(
            Server::with(Options {
                endpoints: Some(endpoints.to_owned()),
                ..Options::default()
            })
            .await,
        );
    }
    servers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_conversations_and_survive_a_sigkill() {
    let Some(db) = PgDb::create().await else {
        return;
    };
    let Some(redis_url) = stores_support::service_url("PALAVER_TEST_REDIS_URL") else {
        return;
    };
    let redis = reqwest::Url::parse(&redis_url).unwrap();
    let prefix = unique("rep");
    let endpoints = endpoints(
        &db.url(),
        redis.host_str().unwrap(),
        redis.port().unwrap_or(6379),
        &prefix,
    );
    let mut servers = start_replicas(3, &endpoints).await;
    let bases = Arc::new(Mutex::new(
        servers
            .iter()
            .map(|s| Some(s.base.clone()))
            .collect::<Vec<_>>(),
    ));

    // Phase 1: 2,000 messages, 50 conversations, 32 at once, all replicas up.
    let started = Instant::now();
    let acked = Arc::new(AtomicUsize::new(0));
    let log = run_load(bases.clone(), 50, 40, 32, acked.clone(), "p1").await;
    eprintln!(
        "2000 messages over 3 replicas in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        acked.load(Ordering::Relaxed),
        2000,
        "every message answered"
    );
    for (sender, sent) in &log.sent {
        let events = tracker_events(&servers[sent.len() % 3].base, sender).await;
        check_conversation(sender, &events, sent);
    }

    // Phase 2: replica 3 is killed with SIGKILL mid-run; the others carry on.
    let acked = Arc::new(AtomicUsize::new(0));
    let load = tokio::spawn(run_load(bases.clone(), 30, 20, 32, acked.clone(), "p2"));
    while acked.load(Ordering::Relaxed) < 200 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    servers[2].kill9();
    let killed_at = Instant::now();
    bases.lock().unwrap()[2] = None;
    let log = load.await.unwrap();
    eprintln!(
        "after the kill: {} acknowledged, run ended {:.1} s later",
        acked.load(Ordering::Relaxed),
        killed_at.elapsed().as_secs_f64()
    );
    let unknown: usize = log
        .sent
        .values()
        .flatten()
        .filter(|(_, _, o)| *o == Outcome::Unknown)
        .count();
    assert!(unknown <= 32, "{unknown} messages lost to the kill");
    assert_eq!(acked.load(Ordering::Relaxed) + unknown, 600);
    for (sender, sent) in &log.sent {
        let events = tracker_events(&servers[0].base, sender).await;
        check_conversation(sender, &events, sent);
    }
    // The dead replica's locks expired (or were never held): every conversation
    // takes new messages at once, and no lock key is left behind.
    for c in 0..30 {
        let sender = format!("p2-conv-{c}");
        let base = servers[c % 2].base.clone();
        assert!(post_message(&reqwest::Client::new(), &base, &sender, "/greet").await);
    }
    let mut conn = redis::Client::open(format!("{}/1", redis_url.trim_end_matches('/')))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:lock:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_gives_503_then_service_resumes() {
    let Some(db) = PgDb::create().await else {
        return;
    };
    let mut redis = PrivateRedis::start();
    let endpoints = endpoints(&db.url(), "127.0.0.1", redis.port, &unique("rr"));
    let servers = start_replicas(2, &endpoints).await;
    let client = reqwest::Client::new();
    let mut acknowledged: Vec<String> = Vec::new();
    let mut n = 0;
    let mut next_text = || {
        n += 1;
        format!("/greet{{\"name\": \"r{n}\"}}")
    };
    for i in 0..6 {
        let text = next_text();
        assert!(post_message(&client, &servers[i % 2].base, "c", &text).await);
        acknowledged.push(text);
    }
    redis.kill();
    for i in 0..4 {
        let text = next_text();
        let started = Instant::now();
        let r = client
            .post(servers[i % 2].url("/webhooks/rest/webhook"))
            .json(&json!({"sender": "c", "message": text}))
            .send()
            .await
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(15));
        assert_eq!(r.status(), 503);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["reason"], "ServiceUnavailable", "{body}");
        assert_eq!(body["status"], "failure");
    }
    redis.start_again();
    // Each replica reconnects by itself (its first call after the restart may still
    // fail, with a 503, as a client retrying would see).
    for server in &servers {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = next_text();
            if post_message(&client, &server.base, "c", &text).await {
                acknowledged.push(text);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no recovery after the Redis restart"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    for i in 0..4 {
        let text = next_text();
        assert!(post_message(&client, &servers[i % 2].base, "c", &text).await);
        acknowledged.push(text);
    }
    let events = tracker_events(&servers[1].base, "c").await;
    let users: Vec<String> = events
        .iter()
        .filter(|e| e["event"] == "user")
        .map(|e| e["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(users, acknowledged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_on_the_redis_tracker_store() {
    let Some(redis_url) = stores_support::service_url("PALAVER_TEST_REDIS_URL") else {
        return;
    };
    let redis = reqwest::Url::parse(&redis_url).unwrap();
    let (host, port) = (redis.host_str().unwrap(), redis.port().unwrap_or(6379));
    let prefix = unique("rt");
    let endpoints = format!(
        "tracker_store:\n  type: redis\n  url: {host}\n  port: {port}\n  db: 2\n  \
         key_prefix: {prefix}\n  record_exp: 600\n\
         lock_store:\n  type: redis\n  url: {host}\n  port: {port}\n  db: 1\n  \
         key_prefix: {prefix}\n  lock_lifetime: 2\n"
    );
    let servers = start_replicas(3, &endpoints).await;
    let bases = Arc::new(Mutex::new(
        servers
            .iter()
            .map(|s| Some(s.base.clone()))
            .collect::<Vec<_>>(),
    ));
    let acked = Arc::new(AtomicUsize::new(0));
    let log = run_load(bases, 20, 20, 32, acked.clone(), "rt").await;
    assert_eq!(acked.load(Ordering::Relaxed), 400, "every message answered");
    for (i, (sender, sent)) in log.sent.iter().enumerate() {
        let events = tracker_events(&servers[i % 3].base, sender).await;
        check_conversation(sender, &events, sent);
    }
    let mut conn = redis::Client::open(format!("{}/2", redis_url.trim_end_matches('/')))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:tracker:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 20);
    let _: () = redis::cmd("DEL")
        .arg(keys)
        .query_async(&mut conn)
        .await
        .unwrap();
}
