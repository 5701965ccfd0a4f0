//! socket.io pushes across replicas: two palaver processes sharing a Redis tracker
//! store and Redis locks relay their socket.io emissions through Redis pub/sub, so a
//! message produced on one replica (an agent's answer, a reminder, an answer to a
//! message sent through the other replica) reaches the sockets connected to the
//! other one. Needs `PALAVER_TEST_REDIS_URL` (set by `.ci/run`) and the socket.io
//! clients of tests/browser.

mod common;
mod socketio_support;
mod stores_support;

use common::{Options, Server};
use serde_json::json;
use socketio_support::Clients;
use stores_support::{service_url, unique};

async fn replica(redis_url: &str, prefix: &str) -> Server {
    let parsed = reqwest::Url::parse(redis_url).expect("PALAVER_TEST_REDIS_URL is a URL");
    let (host, port) = (
        parsed.host_str().unwrap_or("127.0.0.1").to_owned(),
        parsed.port().unwrap_or(6379),
    );
    Server::with(Options {
        endpoints: Some(format!(
            "tracker_store:\n  type: redis\n  url: {host}\n  port: {port}\n  db: 3\n  key_prefix: {prefix}\n\
             lock_store:\n  type: redis\n  url: {host}\n  port: {port}\n  db: 1\n  key_prefix: {prefix}\n"
        )),
        credentials: Some("rest:\nsocketio:\n  session_persistence: true\n".into()),
        ..Options::default()
    })
    .await
}

/// Waits until `n` replicas listen on the relay channel (they subscribe at start-up).
async fn wait_for_subscribers(redis_url: &str, channel: &str, n: i64) {
    let client = redis::Client::open(redis_url).expect("a Redis URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("cannot reach PALAVER_TEST_REDIS_URL");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let counts: Vec<(String, i64)> = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(channel)
            .query_async(&mut conn)
            .await
            .expect("PUBSUB NUMSUB");
        if counts.first().map(|c| c.1) == Some(n) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the replicas did not subscribe to {channel}: {counts:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn agent_answer(s: &Server, id: &str, text: &str) {
    let (status, body) = s
        .post_events(
            id,
            &json!({"event": "bot", "text": text, "metadata": {"human_agent": "ann"}}),
            "&execute_side_effects=true&output_channel=latest",
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_message_made_on_one_replica_reaches_sockets_on_the_other() {
    let Some(redis) = service_url("PALAVER_TEST_REDIS_URL") else {
        return;
    };
    let prefix = unique("sio");
    let a = replica(&redis, &prefix).await;
    let b = replica(&redis, &prefix).await;
    wait_for_subscribers(&redis, &format!("{prefix}:socketio"), 2).await;
    let Some(mut c) = Clients::start(&a.base).await else {
        return;
    };
    // One tab of the session on replica A, another on replica B.
    c.connected("on-a", json!({})).await;
    c.session("on-a", json!("relay-1")).await;
    c.connected("on-b", json!({"url": b.base})).await;
    c.session("on-b", json!("relay-1")).await;

    // A message through A: both tabs get the answer, once each.
    c.emit_acked(
        "on-a",
        "user_uttered",
        json!([{"message": "/greet", "session_id": "relay-1"}]),
    )
    .await;
    let hello = vec![json!({"text": "Hello!"})];
    assert_eq!(c.bot("on-a", "bot_uttered").await, hello);
    assert_eq!(c.bot("on-b", "bot_uttered").await, hello);

    // An agent's answer posted to B reaches the tab on A (and the one on B).
    agent_answer(&b, "relay-1", "Ann here, from replica B.").await;
    let from_b = vec![json!({"text": "Ann here, from replica B."})];
    assert_eq!(c.bot("on-a", "bot_uttered").await, from_b);
    assert_eq!(c.bot("on-b", "bot_uttered").await, from_b);

    // And the other way round; nothing is delivered twice: the next message each tab
    // sees is this one.
    agent_answer(&a, "relay-1", "And from A.").await;
    let from_a = vec![json!({"text": "And from A."})];
    assert_eq!(c.bot("on-b", "bot_uttered").await, from_a);
    assert_eq!(c.bot("on-a", "bot_uttered").await, from_a);

    // Other conversations' messages are not relayed to these sockets.
    agent_answer(&b, "someone-else", "not for you").await;
    agent_answer(&b, "relay-1", "last").await;
    let last = vec![json!({"text": "last"})];
    assert_eq!(c.bot("on-a", "bot_uttered").await, last);
    assert_eq!(c.bot("on-b", "bot_uttered").await, last);
    assert!(c.drain("on-a", "bot_uttered").is_empty());
    assert!(c.drain("on-b", "bot_uttered").is_empty());
    let events = a.tracker("relay-1", "").await["events"].clone();
    let answers = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["metadata"]["human_agent"] == "ann")
        .count();
    assert_eq!(answers, 3);
    c.stop().await;
}
