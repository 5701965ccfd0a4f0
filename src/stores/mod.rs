//! Where conversations live: tracker stores and lock stores.
//!
//! The processor talks to storage only through two small traits, so that the same
//! dialogue code runs on the embedded SQLite default, in memory, or (later) on shared
//! PostgreSQL/Redis stores:
//!
//! - [`TrackerStore`]: an append-only log of events per conversation. An append that
//!   returns `Ok` is durable (as durable as the store can make it).
//! - [`LockStore`]: a per-conversation lock, so that requests for one conversation
//!   are applied one at a time, in arrival order.

pub mod lock;
pub mod memory;
pub mod sqlite;

use async_trait::async_trait;

use crate::events::Event;

/// A storage failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached or refused the operation; retrying later may work.
    #[error("the tracker store is unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be read back.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// An append-only log of conversation events.
#[async_trait]
pub trait TrackerStore: Send + Sync {
    /// Every stored event of a conversation, oldest first; `None` if it has none.
    async fn retrieve(&self, sender_id: &str) -> Result<Option<Vec<Event>>, StoreError>;

    /// Appends events after the stored ones. Returns only once they are durable.
    async fn append(&self, sender_id: &str, events: &[Event]) -> Result<(), StoreError>;

    /// Replaces a conversation's whole history with `events` (which may be empty).
    async fn replace(&self, sender_id: &str, events: &[Event]) -> Result<(), StoreError>;

    /// Ids of all stored conversations.
    async fn keys(&self) -> Result<Vec<String>, StoreError>;

    /// Checks that the store can be used (for readiness probes).
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Held while a conversation is being changed; dropping it releases the lock.
pub struct ConversationLock {
    _guard: Box<dyn Send + Sync>,
}

impl ConversationLock {
    /// Wraps whatever keeps the lock held until it is dropped.
    pub fn new(guard: impl Send + Sync + 'static) -> ConversationLock {
        ConversationLock {
            _guard: Box::new(guard),
        }
    }
}

/// Per-conversation mutual exclusion, fair in arrival order.
#[async_trait]
pub trait LockStore: Send + Sync {
    /// Waits for the conversation's lock.
    async fn lock(&self, sender_id: &str) -> Result<ConversationLock, StoreError>;
}
