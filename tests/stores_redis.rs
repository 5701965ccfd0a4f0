//! The Redis tracker store and the Redis lock store against a real server: Rasa's key
//! and JSON formats both ways, record expiry, ticket-lock fairness across processes,
//! expiry of a dead holder's lock, and clean failures while Redis is down.

mod common;
mod stores_support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{send, Options, Server};
use palaver::config::{RedisConfig, RedisTrackerConfig};
use palaver::stores::redis::RedisTrackerStore;
use palaver::stores::redis_lock::RedisLockStore;
use palaver::stores::{LockStore, StoreError, TrackerStore};
use serde_json::{json, Value};
use stores_support::{every_event_type, parse, unique, PrivateRedis};

/// The test server's settings with a key prefix of this test's own.
fn redis_config(url: &str, db: i64) -> RedisConfig {
    let parsed = reqwest::Url::parse(url).unwrap();
    RedisConfig {
        host: parsed.host_str().unwrap_or("127.0.0.1").to_owned(),
        port: parsed.port().unwrap_or(6379),
        db,
        username: None,
        password: parsed.password().map(str::to_owned),
        use_ssl: false,
        key_prefix: Some(unique("t")),
    }
}

async fn raw(url: &str, db: i64) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(format!("{}/{db}", url.trim_end_matches('/'))).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}

#[tokio::test]
async fn tracker_round_trips_every_event_type_in_rasa_format() {
    let Some(url) = stores_support::service_url("PALAVER_TEST_REDIS_URL") else {
        return;
    };
    let cfg = RedisTrackerConfig {
        redis: redis_config(&url, 0),
        record_exp: Some(300.0),
    };
    let prefix = format!("{}:tracker:", cfg.redis.key_prefix.as_deref().unwrap());
    let store = RedisTrackerStore::new(&cfg).unwrap();
    assert_eq!(store.retrieve("a").await.unwrap(), None);
    let samples = every_event_type();
    let events = parse(&samples);
    store.append("a", &events[..4]).await.unwrap();
    store.append("a", &events[4..]).await.unwrap();
    store.append("b", &events[..1]).await.unwrap();
    assert_eq!(store.retrieve("a").await.unwrap(), Some(events.clone()));
    assert_eq!(
        store.keys().await.unwrap(),
        vec!["a".to_string(), "b".to_string()]
    );

    // Stored as Rasa's serialised tracker: json.dumps({"events": [...], "name": id}).
    let mut conn = raw(&url, 0).await;
    let text: String = redis::cmd("GET")
        .arg(format!("{prefix}a"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        text.starts_with("{\"events\": [{\"event\": \"action\", "),
        "{text}"
    );
    assert!(text.ends_with("], \"name\": \"a\"}"), "{text}");
    assert!(text.is_ascii(), "non-ASCII is escaped as Python does");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["events"].as_array().unwrap().len(), samples.len());
    // record_exp is the key's expiry.
    let ttl: i64 = redis::cmd("TTL")
        .arg(format!("{prefix}a"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((250..=300).contains(&ttl), "{ttl}");

    store.replace("a", &events[1..3]).await.unwrap();
    assert_eq!(
        store.retrieve("a").await.unwrap(),
        Some(events[1..3].to_vec())
    );
    store.replace("a", &[]).await.unwrap();
    assert_eq!(store.retrieve("a").await.unwrap(), None);
    store.replace("b", &[]).await.unwrap();
    store.ping().await.unwrap();
}

#[tokio::test]
async fn serves_a_tracker_rasa_wrote() {
    let Some(url) = stores_support::service_url("PALAVER_TEST_REDIS_URL") else {
        return;
    };
    let prefix = unique("r");
    // Rasa's RedisTrackerStore.save: json.dumps(tracker.as_dialogue().as_dict()).
    let rasa = r#"{"events": [{"event": "action", "timestamp": 1700000000.5, "metadata": {"model_id": "m"}, "name": "action_session_start", "policy": null, "confidence": 1.0, "action_text": null, "hide_rule_turn": false}, {"event": "session_started", "timestamp": 1700000000.6, "metadata": {"model_id": "m"}}, {"event": "action", "timestamp": 1700000000.7, "metadata": {"model_id": "m"}, "name": "action_listen", "policy": null, "confidence": null, "action_text": null, "hide_rule_turn": false}, {"event": "user", "timestamp": 1700000001.0, "metadata": {}, "text": "/greet", "parse_data": {"intent": {"name": "greet", "confidence": 1.0}, "entities": [], "text": "/greet", "message_id": "x", "metadata": {}}, "input_channel": "rest", "message_id": "x"}, {"event": "slot", "timestamp": 1700000001.1, "name": "name", "value": "Andr\u00e9"}], "name": "rasa-user"}"#;
    let mut conn = raw(&url, 3).await;
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}:tracker:rasa-user"))
        .arg(rasa)
        .query_async(&mut conn)
        .await
        .unwrap();
    let parsed = reqwest::Url::parse(&url).unwrap();
    let server = Server::with(Options {
        endpoints: Some(format!(
            "tracker_store:\n  type: redis\n  url: {}\n  port: {}\n  db: 3\n  key_prefix: {prefix}\n",
            parsed.host_str().unwrap(),
            parsed.port().unwrap_or(6379)
        )),
        ..Options::default()
    })
    .await;
    let t = server.tracker("rasa-user", "").await;
    assert_eq!(t["events"].as_array().unwrap().len(), 5);
    assert_eq!(t["slots"]["name"], "André");
    let (status, body) = send(
        server
            .client
            .post(server.url("/webhooks/rest/webhook"))
            .json(&json!({"sender": "rasa-user", "message": "/goodbye"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0]["text"], "Bye André!");
    let text: String = redis::cmd("GET")
        .arg(format!("{prefix}:tracker:rasa-user"))
        .query_async(&mut conn)
        .await
        .unwrap();
    // Rasa's events are kept as Rasa wrote them; palaver's follow.
    assert!(text.starts_with(&rasa[..rasa.len() - "], \"name\": \"rasa-user\"}".len()]));
    let v: Value = serde_json::from_str(&text).unwrap();
    let types: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    // Rasa's session had expired (old timestamps): a new one starts, then the turn.
    assert_eq!(&types[5..7], &["action", "session_started"]);
    assert!(types[7..].contains(&"user"));
    assert_eq!(&types[types.len() - 3..], &["action", "bot", "action"]);
    let _: () = redis::cmd("DEL")
        .arg(format!("{prefix}:tracker:rasa-user"))
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn ticket_locks_are_fair_across_processes() {
    let Some(url) = stores_support::service_url("PALAVER_TEST_REDIS_URL") else {
        return;
    };
    let cfg = redis_config(&url, 1);
    // Two lock stores with connections of their own: two processes.
    let a = RedisLockStore::new(&cfg, Duration::from_secs(10)).unwrap();
    let b = RedisLockStore::new(&cfg, Duration::from_secs(10)).unwrap();
    let first = a.lock("c").await.unwrap();
    // The lock is Rasa's JSON under Rasa's key.
    let mut conn = raw(&url, 1).await;
    let key = format!("{}:lock:c", cfg.key_prefix.as_deref().unwrap());
    let text: String = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let lock: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(lock["conversation_id"], "c");
    assert_eq!(lock["tickets"][0]["number"], 0);
    assert!(lock["tickets"][0]["expires"].as_f64().unwrap() > palaver::events::now());

    let order = Arc::new(Mutex::new(Vec::new()));
    let inside = Arc::new(Mutex::new(0));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let order = order.clone();
        let inside = inside.clone();
        tasks.push(tokio::spawn(async move {
            let _held = store.lock("c").await.unwrap();
            {
                let mut n = inside.lock().unwrap();
                *n += 1;
                assert_eq!(*n, 1, "two holders at once");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            order.lock().unwrap().push(i);
            *inside.lock().unwrap() -= 1;
        }));
        // Each takes its ticket before the next one asks.
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    // Another conversation is not blocked.
    let other = tokio::time::timeout(Duration::from_secs(2), b.lock("d"))
        .await
        .expect("another conversation waited")
        .unwrap();
    drop(other);
    drop(first);
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), (0..8).collect::<Vec<_>>());
    // Every ticket was given back: the key is gone.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(exists, 0);
}

#[tokio::test]
async fn a_dead_holders_lock_expires_and_a_live_holder_keeps_it() {
    let Some(url) = stores_support::service_url("PALAVER_TEST_REDIS_URL") else {
        return;
    };
    let cfg = redis_config(&url, 1);
    let store = RedisLockStore::new(&cfg, Duration::from_millis(1500)).unwrap();
    let mut conn = raw(&url, 1).await;
    let key = format!("{}:lock:dead", cfg.key_prefix.as_deref().unwrap());
    // A process (Rasa's or palaver's) died holding the lock: its ticket stays until it
    // expires, 1.5 s from now.
    let expires = palaver::events::now() + 1.5;
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(format!(
            "{{\"conversation_id\": \"dead\", \"tickets\": [{{\"number\": 0, \"expires\": {expires}}}]}}"
        ))
        .query_async(&mut conn)
        .await
        .unwrap();
    let started = Instant::now();
    let held = store.lock("dead").await.unwrap();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1200), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");

    // A live holder renews its ticket: holding for 3 lifetimes, it is not overtaken.
    let other = store.clone();
    let contender = tokio::spawn(async move {
        let started = Instant::now();
        let _l = other.lock("dead").await.unwrap();
        started.elapsed()
    });
    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert!(!contender.is_finished(), "the live holder's lock was taken");
    drop(held);
    let waited = contender.await.unwrap();
    assert!(waited >= Duration::from_millis(4400), "{waited:?}");
}

#[tokio::test]
async fn redis_down_fails_cleanly_and_recovers() {
    if stores_support::service_url("PALAVER_TEST_REDIS_URL").is_none() {
        return;
    }
    let mut redis = PrivateRedis::start();
    let cfg = redis_config(&redis.url(), 0);
    let locks = RedisLockStore::new(&cfg, Duration::from_secs(5)).unwrap();
    let trackers = RedisTrackerStore::new(&RedisTrackerConfig {
        redis: cfg.clone(),
        record_exp: None,
    })
    .unwrap();
    let events = parse(&every_event_type());
    drop(locks.lock("x").await.unwrap());
    trackers.append("x", &events).await.unwrap();
    redis.kill();
    let started = Instant::now();
    assert!(matches!(
        locks.lock("x").await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        trackers.append("x", &events).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        trackers.retrieve("x").await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(locks.ping().await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    redis.start_again();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match locks.lock("x").await {
            Ok(l) => {
                drop(l);
                break;
            }
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("Redis did not come back: {e}"),
        }
    }
    // The tracker store's own connection comes back too (a read first: its first call
    // after the restart may still fail).
    let deadline = Instant::now() + Duration::from_secs(15);
    while trackers.retrieve("y").await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the tracker store did not come back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    trackers.append("y", &events).await.unwrap();
    assert_eq!(trackers.retrieve("y").await.unwrap(), Some(events));
}
