//! Decorators that time every tracker store and lock store call.
//!
//! [`InstrumentedTrackerStore`] and [`InstrumentedLockStore`] wrap any store and record
//! the latency and errors of each call (see [`crate::telemetry`]), so that every store —
//! SQLite, in memory, or the shared ones — is measured the same way without each
//! implementation doing it. The lock decorator also counts the conversations that hold
//! or wait for their lock (`palaver_open_conversations`).

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use super::{ConversationLock, LockStore, StoreError, TrackerStore};
use crate::events::Event;
use crate::telemetry::{self, OPEN_CONVERSATIONS};

/// A tracker store whose calls are timed.
pub struct InstrumentedTrackerStore {
    inner: Arc<dyn TrackerStore>,
}

impl InstrumentedTrackerStore {
    /// Wraps `inner`.
    pub fn wrap(inner: Arc<dyn TrackerStore>) -> Arc<dyn TrackerStore> {
        Arc::new(InstrumentedTrackerStore { inner })
    }
}

#[async_trait]
impl TrackerStore for InstrumentedTrackerStore {
    async fn retrieve(&self, sender_id: &str) -> Result<Option<Vec<Event>>, StoreError> {
        let started = Instant::now();
        let r = self.inner.retrieve(sender_id).await;
        telemetry::store_call("tracker", "retrieve", &r, started.elapsed());
        r
    }

    async fn append(&self, sender_id: &str, events: &[Event]) -> Result<(), StoreError> {
        let started = Instant::now();
        let r = self.inner.append(sender_id, events).await;
        telemetry::store_call("tracker", "append", &r, started.elapsed());
        r
    }

    async fn replace(&self, sender_id: &str, events: &[Event]) -> Result<(), StoreError> {
        let started = Instant::now();
        let r = self.inner.replace(sender_id, events).await;
        telemetry::store_call("tracker", "replace", &r, started.elapsed());
        r
    }

    async fn keys(&self) -> Result<Vec<String>, StoreError> {
        let started = Instant::now();
        let r = self.inner.keys().await;
        telemetry::store_call("tracker", "keys", &r, started.elapsed());
        r
    }

    async fn list_conversations(
        &self,
        query: &super::ConversationQuery,
    ) -> Result<super::ConversationPage, StoreError> {
        let started = Instant::now();
        let r = self.inner.list_conversations(query).await;
        telemetry::store_call("tracker", "list_conversations", &r, started.elapsed());
        r
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let started = Instant::now();
        let r = self.inner.ping().await;
        telemetry::store_call("tracker", "ping", &r, started.elapsed());
        r
    }
}

/// A lock store whose calls are timed (the time to get a lock includes waiting for
/// other requests of the conversation).
pub struct InstrumentedLockStore {
    inner: Arc<dyn LockStore>,
}

impl InstrumentedLockStore {
    /// Wraps `inner`.
    pub fn wrap(inner: Arc<dyn LockStore>) -> Arc<dyn LockStore> {
        Arc::new(InstrumentedLockStore { inner })
    }
}

/// Counts one conversation as open while it lives.
struct OpenConversation;

impl OpenConversation {
    fn new() -> OpenConversation {
        metrics::gauge!(OPEN_CONVERSATIONS).increment(1.0);
        OpenConversation
    }
}

impl Drop for OpenConversation {
    fn drop(&mut self) {
        metrics::gauge!(OPEN_CONVERSATIONS).decrement(1.0);
    }
}

#[async_trait]
impl LockStore for InstrumentedLockStore {
    async fn lock(&self, sender_id: &str) -> Result<ConversationLock, StoreError> {
        let open = OpenConversation::new();
        let started = Instant::now();
        let r = self.inner.lock(sender_id).await;
        telemetry::store_call("lock", "lock", &r, started.elapsed());
        // Dropped with the lock (or now, on error), which closes the conversation.
        r.map(|held| ConversationLock::new((held, open)))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let started = Instant::now();
        let r = self.inner.ping().await;
        telemetry::store_call("lock", "ping", &r, started.elapsed());
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stores::lock::InMemoryLockStore;
    use crate::stores::memory::InMemoryTrackerStore;

    #[tokio::test]
    async fn decorators_pass_calls_through() {
        let store = InstrumentedTrackerStore::wrap(Arc::new(InMemoryTrackerStore::new()));
        let e = Event::new(crate::events::EventKind::Pause);
        store.append("a", std::slice::from_ref(&e)).await.unwrap();
        assert_eq!(store.retrieve("a").await.unwrap().unwrap().len(), 1);
        assert_eq!(store.keys().await.unwrap(), vec!["a".to_string()]);
        store.replace("a", &[]).await.unwrap();
        store.ping().await.unwrap();
        let inner = InMemoryLockStore::new();
        let locks = InstrumentedLockStore::wrap(Arc::new(inner.clone()));
        let held = locks.lock("a").await.unwrap();
        assert_eq!(inner.active(), 1);
        drop(held);
        assert_eq!(inner.active(), 0);
        locks.ping().await.unwrap();
    }

    /// A store that is down.
    struct Down;

    #[async_trait]
    impl TrackerStore for Down {
        async fn retrieve(&self, _: &str) -> Result<Option<Vec<Event>>, StoreError> {
            Err(StoreError::Unavailable("down".into()))
        }
        async fn append(&self, _: &str, _: &[Event]) -> Result<(), StoreError> {
            Err(StoreError::Unavailable("down".into()))
        }
        async fn replace(&self, _: &str, _: &[Event]) -> Result<(), StoreError> {
            Err(StoreError::Corrupt("bad row".into()))
        }
        async fn keys(&self) -> Result<Vec<String>, StoreError> {
            Ok(Vec::new())
        }
    }

    #[test]
    fn store_errors_and_latencies_are_recorded() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            futures::executor::block_on(async {
                let store = InstrumentedTrackerStore::wrap(Arc::new(Down));
                assert!(store.append("a", &[]).await.is_err());
                assert!(store.append("a", &[]).await.is_err());
                assert!(store.replace("a", &[]).await.is_err());
                assert!(store.keys().await.is_ok());
            })
        });
        let text = handle.render();
        let line = |needle: &[&str]| {
            text.lines()
                .find(|l| needle.iter().all(|n| l.contains(n)))
                .unwrap_or_else(|| panic!("no {needle:?} in {text}"))
                .rsplit(' ')
                .next()
                .unwrap()
                .to_owned()
        };
        let append_errors = [
            "palaver_store_errors_total{",
            "operation=\"append\"",
            "error=\"unavailable\"",
        ];
        assert_eq!(line(&append_errors), "2");
        let replace_errors = [
            "palaver_store_errors_total{",
            "operation=\"replace\"",
            "error=\"corrupt\"",
        ];
        assert_eq!(line(&replace_errors), "1");
        assert!(!text.contains("operation=\"keys\",error"));
        let keys_count = [
            "palaver_store_operation_duration_seconds_count{",
            "operation=\"keys\"",
        ];
        assert_eq!(line(&keys_count), "1");
    }
}
