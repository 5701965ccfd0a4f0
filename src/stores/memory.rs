//! The in-memory tracker store (`tracker_store: {type: in_memory}`): nothing survives a
//! restart. Useful for tests and throw-away bots.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{ConversationPage, ConversationQuery, ConversationSummary, StoreError, TrackerStore};
use crate::events::Event;

/// Conversations kept in a map in this process.
#[derive(Default)]
pub struct InMemoryTrackerStore {
    conversations: Mutex<HashMap<String, Vec<Event>>>,
}

impl InMemoryTrackerStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Event>>> {
        // A panic while holding this lock cannot leave the map half-changed (every
        // change is a single push/insert), so a poisoned lock is still usable.
        self.conversations
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl TrackerStore for InMemoryTrackerStore {
    async fn retrieve(&self, sender_id: &str) -> Result<Option<Vec<Event>>, StoreError> {
        Ok(self.map().get(sender_id).filter(|e| !e.is_empty()).cloned())
    }

    async fn append(&self, sender_id: &str, events: &[Event]) -> Result<(), StoreError> {
        self.map()
            .entry(sender_id.to_owned())
            .or_default()
            .extend_from_slice(events);
        Ok(())
    }

    async fn replace(&self, sender_id: &str, events: &[Event]) -> Result<(), StoreError> {
        self.map().insert(sender_id.to_owned(), events.to_vec());
        Ok(())
    }

    async fn keys(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .map()
            .iter()
            .filter(|(_, e)| !e.is_empty())
            .map(|(k, _)| k.clone())
            .collect())
    }

    async fn list_conversations(
        &self,
        query: &ConversationQuery,
    ) -> Result<ConversationPage, StoreError> {
        // Summarised in place: no conversation is copied.
        let all = self
            .map()
            .iter()
            .filter_map(|(k, events)| ConversationSummary::of(k, events))
            .collect();
        Ok(ConversationPage::from_summaries(all, query))
    }
}
