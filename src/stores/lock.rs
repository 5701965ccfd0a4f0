//! The in-process lock store: one FIFO mutex per conversation.
//!
//! tokio's `Mutex` queues waiters fairly, so requests for one conversation are applied
//! in the order they arrived. Entries are removed when nobody holds or waits for them,
//! so the map does not grow with the number of conversations ever seen.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::OwnedMutexGuard;

use super::{ConversationLock, LockStore, StoreError};

type Locks = Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>;

/// Per-conversation locks for a single palaver process.
#[derive(Default, Clone)]
pub struct InMemoryLockStore {
    locks: Locks,
}

impl InMemoryLockStore {
    /// An empty lock store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of conversations currently locked or waited for (for tests and metrics).
    pub fn active(&self) -> usize {
        self.locks.lock().map(|m| m.len()).unwrap_or(0)
    }
}

struct Held {
    guard: Option<OwnedMutexGuard<()>>,
    sender_id: String,
    locks: Locks,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.guard.take();
        let mut map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = map.get(&self.sender_id) {
            // Only the map holds it now: nobody is waiting, so forget it.
            if Arc::strong_count(m) == 1 {
                map.remove(&self.sender_id);
            }
        }
    }
}

#[async_trait]
impl LockStore for InMemoryLockStore {
    async fn lock(&self, sender_id: &str) -> Result<ConversationLock, StoreError> {
        let mutex = {
            let mut map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(sender_id.to_owned()).or_default().clone()
        };
        let guard = mutex.lock_owned().await;
        Ok(ConversationLock::new(Held {
            guard: Some(guard),
            sender_id: sender_id.to_owned(),
            locks: self.locks.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn one_holder_at_a_time_in_arrival_order() {
        let store = InMemoryLockStore::new();
        let order = Arc::new(Mutex::new(Vec::new()));
        let first = store.lock("a").await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..5 {
            let store = store.clone();
            let order = order.clone();
            tasks.push(tokio::spawn(async move {
                let _l = store.lock("a").await.unwrap();
                order.lock().unwrap().push(i);
            }));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // A different conversation is not blocked.
        let _other = store.lock("b").await.unwrap();
        drop(first);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
        drop(_other);
        assert_eq!(store.active(), 0);
    }
}
