//! Event brokers against real servers: every stored event is published in Rasa's
//! broker JSON to RabbitMQ (consumed from a real queue and compared with the tracker)
//! and to SQL tables; while RabbitMQ cannot be reached requests are answered at once,
//! and the queued events are delivered, in order, once it is back.

mod common;
mod stores_support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{send, Options, Server};
use lapin::options::{BasicGetOptions, ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{Connection, ConnectionProperties};
use serde_json::{json, Value};
use stores_support::{unique, PgDb};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

async fn message(server: &Server, sender: &str, text: &str) -> Duration {
    let started = Instant::now();
    let (status, body) = send(
        server
            .client
            .post(server.url("/webhooks/rest/webhook"))
            .json(&json!({"sender": sender, "message": text})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    started.elapsed()
}

/// Every event of a conversation, as the tracker API gives them.
async fn all_events(server: &Server, sender: &str) -> Vec<Value> {
    server.tracker(sender, "&include_events=ALL").await["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The broker message Rasa publishes for an event.
fn expected(sender: &str, event: &Value) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("sender_id".into(), json!(sender));
    m.extend(event.as_object().cloned().unwrap_or_default());
    Value::Object(m)
}

/// Takes messages from `queue` until `n` arrived (or `wait` passed). The queue appears
/// when palaver first connects.
async fn consume(
    conn: &Connection,
    queue: &str,
    n: usize,
    wait: Duration,
) -> Vec<(String, Option<u8>)> {
    let mut channel = conn.create_channel().await.unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + wait;
    while got.len() < n && Instant::now() < deadline {
        let options = BasicGetOptions { no_ack: true };
        match channel.basic_get(queue.into(), options).await {
            Ok(Some(m)) => got.push((
                String::from_utf8(m.delivery.data.clone()).unwrap(),
                *m.delivery.properties.delivery_mode(),
            )),
            Ok(None) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(_) => {
                // Not declared yet (the error closed the channel).
                tokio::time::sleep(Duration::from_millis(100)).await;
                channel = conn.create_channel().await.unwrap();
            }
        }
    }
    got
}

async fn cleanup(conn: &Connection, queue: &str, exchange: &str) {
    let channel = conn.create_channel().await.unwrap();
    let _ = channel
        .queue_delete(queue.into(), QueueDeleteOptions::default())
        .await;
    let _ = channel
        .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
        .await;
}

#[tokio::test]
async fn pika_publishes_every_event_in_rasa_json() {
    let Some(amqp) = stores_support::service_url("PALAVER_TEST_AMQP_URL") else {
        return;
    };
    let (queue, exchange) = (unique("q"), unique("x"));
    let server = Server::with(Options {
        endpoints: Some(format!(
            "event_broker:\n  type: pika\n  url: {amqp}\n  queues:\n    - {queue}\n  \
             exchange_name: {exchange}\n"
        )),
        ..Options::default()
    })
    .await;
    for text in ["/greet", "/goodbye", "Grüße 🌍"] {
        message(&server, "broker-user", text).await;
    }
    let events = all_events(&server, "broker-user").await;
    assert!(events.len() >= 10, "{events:?}");
    let conn = Connection::connect(&amqp, ConnectionProperties::default())
        .await
        .unwrap();
    let got = consume(&conn, &queue, events.len(), Duration::from_secs(15)).await;
    let extra = consume(&conn, &queue, 1, Duration::from_millis(500)).await;
    cleanup(&conn, &queue, &exchange).await;
    assert_eq!(got.len(), events.len(), "one message per stored event");
    assert_eq!(extra, vec![], "nothing more");
    for ((body, mode), event) in got.iter().zip(&events) {
        // Python's json.dumps: ", " and ": " separators, ASCII only, sender_id first.
        assert!(
            body.starts_with("{\"sender_id\": \"broker-user\", \"event\": "),
            "{body}"
        );
        assert!(body.is_ascii(), "{body}");
        let parsed: Value = serde_json::from_str(body).unwrap();
        assert_eq!(parsed, expected("broker-user", event));
        assert_eq!(*mode, Some(2), "persistent messages");
    }
}

/// A TCP relay in front of RabbitMQ that the test can cut and restore.
struct Relay {
    port: u16,
    upstream: String,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Relay {
    async fn start(upstream: String) -> Relay {
        let relay = Relay {
            port: stores_support::free_port(),
            upstream,
            tasks: Arc::new(Mutex::new(Vec::new())),
        };
        relay.resume().await;
        relay
    }

    async fn resume(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        let upstream = self.upstream.clone();
        let tasks = self.tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let conn = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                tasks.lock().unwrap().push(conn);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    /// Closes the listener and every relayed connection.
    fn cut(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_outage_neither_blocks_requests_nor_loses_events() {
    let Some(amqp) = stores_support::service_url("PALAVER_TEST_AMQP_URL") else {
        return;
    };
    let url = reqwest::Url::parse(&amqp).unwrap();
    let relay = Relay::start(format!(
        "{}:{}",
        url.host_str().unwrap(),
        url.port().unwrap_or(5672)
    ))
    .await;
    let (queue, exchange) = (unique("q"), unique("x"));
    // Rasa's key-by-key settings, the relay as the server.
    let server = Server::with(Options {
        endpoints: Some(format!(
            "event_broker:\n  type: pika\n  url: 127.0.0.1\n  port: {}\n  username: {}\n  \
             password: {}\n  queues: {queue}\n  exchange_name: {exchange}\n",
            relay.port,
            url.username(),
            url.password().unwrap_or("guest")
        )),
        ..Options::default()
    })
    .await;
    message(&server, "o", "/greet").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    relay.cut();
    // RabbitMQ is unreachable: requests are answered as fast as ever.
    for text in ["/goodbye", "/greet", "/goodbye"] {
        let took = message(&server, "o", text).await;
        assert!(took < Duration::from_secs(2), "{took:?}");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    relay.resume().await;
    let events = all_events(&server, "o").await;
    let conn = Connection::connect(&amqp, ConnectionProperties::default())
        .await
        .unwrap();
    let got = consume(&conn, &queue, events.len(), Duration::from_secs(15)).await;
    cleanup(&conn, &queue, &exchange).await;
    // Delivery is at least once: drop repeats, then every event is there, in order.
    let mut unique_bodies: Vec<Value> = Vec::new();
    for (body, _) in &got {
        let v: Value = serde_json::from_str(body).unwrap();
        if !unique_bodies.contains(&v) {
            unique_bodies.push(v);
        }
    }
    let want: Vec<Value> = events.iter().map(|e| expected("o", e)).collect();
    assert_eq!(unique_bodies, want);
}

async fn sql_broker_rows(server: &Server, rows: impl AsyncFn() -> Vec<(Option<String>, String)>) {
    message(server, "s", "/greet").await;
    message(server, "s", "/goodbye").await;
    let events = all_events(server, "s").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let got = loop {
        let got = rows().await;
        if got.len() >= events.len() || Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(got.len(), events.len());
    for ((sender, data), event) in got.iter().zip(&events) {
        assert_eq!(sender.as_deref(), Some("s"));
        let v: Value = serde_json::from_str(data).unwrap();
        assert_eq!(v, expected("s", event));
    }
}

#[tokio::test]
async fn sql_broker_writes_rasa_rows_to_sqlite_and_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let server = Server::with(Options {
        endpoints: Some(format!(
            "event_broker:\n  type: SQL\n  dialect: sqlite\n  db: {}\n",
            path.display()
        )),
        ..Options::default()
    })
    .await;
    let url = format!("sqlite://{}", path.display());
    sql_broker_rows(&server, async || {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let rows = sqlx::query_as("SELECT sender_id, data FROM events ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        rows
    })
    .await;
    drop(server);

    let Some(db) = PgDb::create().await else {
        return;
    };
    let server = Server::with(Options {
        endpoints: Some(format!(
            "event_broker:\n  type: SQL\n  dialect: postgresql\n  url: {}\n",
            db.url()
        )),
        ..Options::default()
    })
    .await;
    sql_broker_rows(&server, async || {
        let mut conn = db.connect().await;
        sqlx::query_as("SELECT sender_id, data FROM events ORDER BY id")
            .fetch_all(&mut conn)
            .await
            .unwrap()
    })
    .await;
}
