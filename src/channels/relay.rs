//! socket.io pushes across replicas, through Redis pub/sub.
//!
//! A socket is connected to one palaver process, but with several replicas (a shared
//! tracker store and `lock_store: {type: redis}` in endpoints.yml) the message for it
//! may be produced by another one: an agent's answer posted to any replica, a reminder
//! fired by whichever replica claimed it, a second browser tab of the same session on
//! another replica. So when the lock store is Redis, every bot message a replica emits
//! to a room is also published on the Redis channel `<key_prefix>:socketio` (the lock
//! store's server and `key_prefix`), and every replica emits what the others publish to
//! its own sockets in that room.
//!
//! Delivery is best effort, like socket.io itself: while Redis cannot be reached,
//! messages for sockets on other replicas are dropped (they stay on the tracker), and
//! the subscriber reconnects once a second. Publishing never holds up the conversation:
//! messages wait in a bounded queue for one publisher task, which keeps their order.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use socketioxide::SocketIo;
use tokio::sync::mpsc;

use crate::config::RedisConfig;
use crate::stores::redis::{connect, key_prefix, redis_url};
use crate::stores::StoreError;

/// How long the subscriber waits before reconnecting to Redis.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// Messages waiting to be published; more are dropped (with a warning).
const PUBLISH_QUEUE: usize = 4096;

/// One emission, as published for the other replicas.
#[derive(Debug, Serialize, Deserialize)]
struct Relayed {
    /// The replica that emitted it (which skips its own messages).
    origin: String,
    namespace: String,
    room: String,
    event: String,
    /// The event's argument (none for a custom payload without `data`).
    data: Option<Value>,
}

/// Publishes this replica's socket.io emissions and emits the other replicas' ones to
/// the local sockets. Cheap to share (`Arc`).
pub struct SocketIoRelay {
    origin: String,
    channel: String,
    client: redis::Client,
    conn: ConnectionManager,
    queue: mpsc::Sender<String>,
    /// The publisher's end of `queue`, until [`SocketIoRelay::start`] takes it.
    waiting: Mutex<Option<mpsc::Receiver<String>>>,
}

impl std::fmt::Debug for SocketIoRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client holds the URL, which may hold a password.
        f.debug_struct("SocketIoRelay")
            .field("origin", &self.origin)
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl SocketIoRelay {
    /// A relay on the Redis server of the lock store (connected on first use).
    pub fn new(cfg: &RedisConfig) -> Result<SocketIoRelay, StoreError> {
        let client = redis::Client::open(redis_url(cfg))
            .map_err(|e| StoreError::Unavailable(format!("bad Redis settings: {e}")))?;
        let (queue, waiting) = mpsc::channel(PUBLISH_QUEUE);
        Ok(SocketIoRelay {
            origin: uuid::Uuid::new_v4().simple().to_string(),
            channel: key_prefix(cfg, "socketio"),
            client,
            conn: connect(cfg)?,
            queue,
            waiting: Mutex::new(Some(waiting)),
        })
    }

    /// The Redis channel the replicas share.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Queues an emission for the other replicas (a full queue drops it, with a
    /// warning: the local sockets already have the message).
    pub fn publish(&self, namespace: &str, room: &str, event: &str, data: Option<&Value>) {
        let message = Relayed {
            origin: self.origin.clone(),
            namespace: namespace.to_owned(),
            room: room.to_owned(),
            event: event.to_owned(),
            data: data.cloned(),
        };
        let Ok(text) = serde_json::to_string(&message) else {
            return;
        };
        if self.queue.try_send(text).is_err() {
            tracing::warn!("the socket.io relay queue is full; a message was not relayed to the other replicas");
        }
    }

    /// Emits the other replicas' messages to this replica's sockets until the process
    /// ends, reconnecting to Redis when the connection is lost.
    pub fn start(self: &Arc<Self>, io: SocketIo) {
        let waiting = self
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(mut waiting) = waiting {
            let (mut conn, channel) = (self.conn.clone(), self.channel.clone());
            tokio::spawn(async move {
                while let Some(text) = waiting.recv().await {
                    let sent: redis::RedisResult<i64> = redis::cmd("PUBLISH")
                        .arg(&channel)
                        .arg(text)
                        .query_async(&mut conn)
                        .await;
                    if let Err(e) = sent {
                        tracing::warn!(error = %e, "a socket.io message could not be relayed to the other replicas");
                    }
                }
            });
        }
        let relay = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = relay.listen(&io).await {
                    tracing::warn!(error = %e, "the socket.io relay lost Redis; reconnecting");
                }
                tokio::time::sleep(RECONNECT_DELAY).await;
            }
        });
    }

    async fn listen(&self, io: &SocketIo) -> redis::RedisResult<()> {
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.subscribe(&self.channel).await?;
        tracing::debug!(channel = %self.channel, "socket.io relay subscribed");
        let mut messages = pubsub.into_on_message();
        while let Some(msg) = messages.next().await {
            let Ok(text) = msg.get_payload::<String>() else {
                continue;
            };
            let Ok(m) = serde_json::from_str::<Relayed>(&text) else {
                tracing::warn!("an unreadable socket.io relay message was ignored");
                continue;
            };
            if m.origin != self.origin {
                emit_local(io, &m).await;
            }
        }
        Err(redis::RedisError::from((
            redis::ErrorKind::Io,
            "the subscription ended",
        )))
    }
}

async fn emit_local(io: &SocketIo, m: &Relayed) {
    let Some(ns) = io.of(&m.namespace) else {
        return;
    };
    let op = ns.to(m.room.clone());
    let sent = match &m.data {
        Some(d) => op.emit(&m.event, d).await,
        None => op.emit(&m.event, &super::socketio::NO_ARGS).await,
    };
    if let Err(e) = sent {
        tracing::debug!(error = %e, "a relayed socket.io message could not be sent");
    }
}
