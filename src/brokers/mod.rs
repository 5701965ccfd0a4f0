//! Event brokers (`event_broker:` in endpoints.yml): every event stored in the tracker
//! store is also published, in Rasa's broker JSON, to RabbitMQ ([`pika`]) or to a SQL
//! table ([`sql`]), for analytics and other consumers.
//!
//! Publishing is off the request path: a stored event is put on a bounded in-memory
//! queue ([`EventPublisher`]) and a background task delivers the queue in order,
//! retrying with backoff while the broker is unreachable. A request never waits for,
//! nor fails because of, the broker. Delivery is at least once: after an outage a
//! message whose confirmation was lost may be delivered again. If the broker stays
//! down until the queue is full, further events are dropped and counted
//! (`palaver_broker_dropped_events_total`) rather than growing memory without bound.

pub mod pika;
pub mod sql;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::events::Event;
use crate::stores::{ConversationPage, ConversationQuery, StoreError, TrackerStore};

/// A failed delivery.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the event broker is unavailable: {0}")]
pub struct BrokerError(pub String);

/// A delivery that stopped part-way: the first `delivered` messages were accepted.
#[derive(Debug, Clone)]
pub struct PartialDelivery {
    /// How many messages, from the first, the broker accepted.
    pub delivered: usize,
    /// Why the next one was not.
    pub error: BrokerError,
}

/// Somewhere events are published to.
#[async_trait]
pub trait EventBroker: Send + Sync {
    /// Delivers messages (each one event's broker JSON) in order; `Ok` once the broker
    /// has accepted all of them.
    async fn publish(&self, messages: &[String]) -> Result<(), PartialDelivery>;
}

/// Rasa's broker message for an event: `{"sender_id": ..., <the event's fields>}`,
/// written as Python's `json.dumps` writes it.
pub fn broker_message(sender_id: &str, event: &Event) -> String {
    let mut body = serde_json::Map::new();
    body.insert(
        "sender_id".into(),
        serde_json::Value::String(sender_id.to_owned()),
    );
    if let serde_json::Value::Object(fields) = event.to_json() {
        body.extend(fields);
    }
    crate::pyjson::dumps(&serde_json::Value::Object(body))
}

/// Metric: events dropped because the broker queue was full.
pub const BROKER_DROPPED: &str = "palaver_broker_dropped_events_total";

/// Most messages handed to the broker in one call.
const MAX_BATCH: usize = 256;

/// The queue between requests and the broker, and the task that empties it.
#[derive(Clone)]
pub struct EventPublisher {
    tx: mpsc::Sender<String>,
    pending: Arc<AtomicUsize>,
}

impl EventPublisher {
    /// Starts the delivery task; at most `capacity` messages wait for the broker.
    pub fn start(broker: Arc<dyn EventBroker>, capacity: usize) -> EventPublisher {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let pending = Arc::new(AtomicUsize::new(0));
        tokio::spawn(deliver(broker, rx, pending.clone()));
        EventPublisher { tx, pending }
    }

    /// Queues a conversation's newly stored events; never waits.
    pub fn publish_events(&self, sender_id: &str, events: &[Event]) {
        for event in events {
            self.pending.fetch_add(1, Ordering::SeqCst);
            if self.tx.try_send(broker_message(sender_id, event)).is_err() {
                self.pending.fetch_sub(1, Ordering::SeqCst);
                metrics::counter!(BROKER_DROPPED).increment(1);
                tracing::error!(
                    sender_id,
                    event = event.type_name(),
                    "the event broker queue is full: event not published"
                );
            }
        }
    }

    /// Messages queued or being delivered.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    /// Waits until every queued message is delivered (for shutdown and tests).
    pub async fn flush(&self) {
        while self.pending() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn deliver(
    broker: Arc<dyn EventBroker>,
    mut rx: mpsc::Receiver<String>,
    pending: Arc<AtomicUsize>,
) {
    let mut batch: Vec<String> = Vec::new();
    let mut backoff = Duration::from_millis(100);
    loop {
        if batch.is_empty() {
            match rx.recv().await {
                Some(m) => batch.push(m),
                None => return,
            }
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        match broker.publish(&batch).await {
            Ok(()) => {
                pending.fetch_sub(batch.len(), Ordering::SeqCst);
                batch.clear();
                backoff = Duration::from_millis(100);
            }
            Err(partial) => {
                let delivered = partial.delivered.min(batch.len());
                batch.drain(..delivered);
                pending.fetch_sub(delivered, Ordering::SeqCst);
                tracing::warn!(
                    error = %partial.error,
                    waiting = batch.len(),
                    retry_in_ms = backoff.as_millis() as u64,
                    "publishing events failed; retrying"
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// A tracker store that publishes every event it stores (appends; a replaced history
/// is not re-published, as in Rasa where only events new to the tracker are).
pub struct PublishingTrackerStore {
    inner: Arc<dyn TrackerStore>,
    publisher: EventPublisher,
}

impl PublishingTrackerStore {
    /// Wraps `inner`.
    pub fn wrap(inner: Arc<dyn TrackerStore>, publisher: EventPublisher) -> Arc<dyn TrackerStore> {
        Arc::new(PublishingTrackerStore { inner, publisher })
    }
}

#[async_trait]
impl TrackerStore for PublishingTrackerStore {
    async fn retrieve(&self, sender_id: &str) -> Result<Option<Vec<Event>>, StoreError> {
        self.inner.retrieve(sender_id).await
    }

    async fn append(&self, sender_id: &str, events: &[Event]) -> Result<(), StoreError> {
        self.inner.append(sender_id, events).await?;
        self.publisher.publish_events(sender_id, events);
        Ok(())
    }

    async fn replace(&self, sender_id: &str, events: &[Event]) -> Result<(), StoreError> {
        self.inner.replace(sender_id, events).await
    }

    async fn keys(&self) -> Result<Vec<String>, StoreError> {
        self.inner.keys().await
    }

    async fn list_conversations(
        &self,
        query: &ConversationQuery,
    ) -> Result<ConversationPage, StoreError> {
        self.inner.list_conversations(query).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A broker that fails its first calls, then accepts part of a batch once.
    struct Flaky {
        calls: Mutex<usize>,
        got: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl EventBroker for Flaky {
        async fn publish(&self, messages: &[String]) -> Result<(), PartialDelivery> {
            let call = {
                let mut c = self.calls.lock().unwrap();
                *c += 1;
                *c
            };
            let error = BrokerError("down".into());
            match call {
                1 => Err(PartialDelivery {
                    delivered: 0,
                    error,
                }),
                2 => {
                    self.got.lock().unwrap().push(messages[0].clone());
                    Err(PartialDelivery {
                        delivered: 1,
                        error,
                    })
                }
                _ => {
                    self.got.lock().unwrap().extend(messages.iter().cloned());
                    Ok(())
                }
            }
        }
    }

    #[tokio::test]
    async fn queued_events_are_retried_in_order_until_delivered() {
        let broker = Arc::new(Flaky {
            calls: Mutex::new(0),
            got: Mutex::new(Vec::new()),
        });
        let publisher = EventPublisher::start(broker.clone(), 100);
        let events: Vec<Event> = (0..5)
            .map(|i| {
                Event::from_json(
                    &serde_json::json!({"event": "slot", "name": "s", "value": i,
                    "timestamp": 1.5}),
                )
                .unwrap()
                .unwrap()
            })
            .collect();
        publisher.publish_events("c", &events);
        tokio::time::timeout(Duration::from_secs(5), publisher.flush())
            .await
            .unwrap();
        let got = broker.got.lock().unwrap().clone();
        assert_eq!(got.len(), 5);
        for (i, m) in got.iter().enumerate() {
            assert_eq!(
                m,
                &format!(
                    "{{\"sender_id\": \"c\", \"event\": \"slot\", \"timestamp\": 1.5, \"name\": \"s\", \"value\": {i}}}"
                )
            );
        }
    }

    #[tokio::test]
    async fn a_full_queue_drops_instead_of_blocking() {
        struct Never;
        #[async_trait]
        impl EventBroker for Never {
            async fn publish(&self, _: &[String]) -> Result<(), PartialDelivery> {
                std::future::pending().await
            }
        }
        let publisher = EventPublisher::start(Arc::new(Never), 3);
        let e = Event::new(crate::events::EventKind::Pause);
        let events = vec![e; 10];
        // Returns at once although nothing can be delivered.
        publisher.publish_events("c", &events);
        assert!(publisher.pending() <= 4, "{}", publisher.pending());
    }
}
