//! Where conversations live: tracker stores and lock stores.
//!
//! The processor talks to storage only through two small traits, so that the same
//! dialogue code runs on the embedded SQLite default, in memory, or on PostgreSQL or
//! Redis shared by several palaver processes:
//!
//! - [`TrackerStore`]: an append-only log of events per conversation. An append that
//!   returns `Ok` is durable (as durable as the store can make it).
//! - [`LockStore`]: a per-conversation lock, so that requests for one conversation
//!   are applied one at a time, in arrival order.

pub mod instrumented;
pub mod lock;
pub mod memory;
pub mod postgres;
pub mod redis;
pub mod redis_lock;
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

/// One event as a row of Rasa's `events` table (`SQLTrackerStore`): the columns Rasa
/// fills besides `sender_id`, computed the way Rasa computes them, so that both SQL
/// stores write rows Rasa reads and queries.
pub(crate) struct EventRow {
    /// The event's type name (`user`, `action`, ...).
    pub type_name: &'static str,
    /// The event's timestamp.
    pub timestamp: f64,
    /// `parse_data.intent.name` of a user event.
    pub intent_name: Option<String>,
    /// The event's `name` field (action, slot, form...), as Rasa's `data.get("name")`.
    pub action_name: Option<String>,
    /// The event's JSON.
    pub data: String,
}

impl EventRow {
    /// The row of an event.
    pub fn from_event(e: &Event) -> Result<EventRow, StoreError> {
        Ok(EventRow {
            type_name: e.type_name(),
            timestamp: e.timestamp,
            intent_name: e.intent_name().map(str::to_owned),
            action_name: e.name_field().map(str::to_owned),
            data: serde_json::to_string(e).map_err(|err| StoreError::Corrupt(err.to_string()))?,
        })
    }
}

/// Reads one stored event's JSON (`data` column, or an element of a serialised
/// tracker); `None` for event types palaver drops on reading (Rasa's legacy `topic`).
pub(crate) fn decode_event(sender_id: &str, data: &str) -> Result<Option<Event>, StoreError> {
    let value: serde_json::Value = serde_json::from_str(data)
        .map_err(|e| StoreError::Corrupt(format!("event of '{sender_id}': {e}")))?;
    decode_event_value(sender_id, &value)
}

/// [`decode_event`] for JSON already parsed.
pub(crate) fn decode_event_value(
    sender_id: &str,
    value: &serde_json::Value,
) -> Result<Option<Event>, StoreError> {
    Event::from_json(value).map_err(|e| StoreError::Corrupt(format!("event of '{sender_id}': {e}")))
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

    /// A page of conversations, the most recently active first (`GET /conversations`).
    ///
    /// The default reads every conversation through [`TrackerStore::keys`] and
    /// [`TrackerStore::retrieve`]; stores that can answer with one query should.
    async fn list_conversations(
        &self,
        query: &ConversationQuery,
    ) -> Result<ConversationPage, StoreError> {
        let mut all = Vec::new();
        for sender_id in self.keys().await? {
            if let Some(events) = self.retrieve(&sender_id).await? {
                all.extend(ConversationSummary::of(&sender_id, &events));
            }
        }
        Ok(ConversationPage::from_summaries(all, query))
    }

    /// Checks that the store can be used (for readiness probes).
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Event types that decide whether a conversation is paused: the latest of them.
pub const PAUSE_STATE_EVENTS: [&str; 4] = ["pause", "resume", "restart", "session_started"];

/// One conversation in a listing.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ConversationSummary {
    /// The conversation id.
    pub sender_id: String,
    /// The newest event timestamp (seconds since the epoch): its last activity.
    pub latest_event_time: f64,
    /// Whether the bot is paused: the latest `pause`, `resume`, `restart` or
    /// `session_started` event is a `pause`. (A pause undone by a rewind still counts;
    /// the tracker itself is exact.)
    pub paused: bool,
}

impl ConversationSummary {
    /// The summary of a conversation's events; `None` when it has none.
    pub fn of(sender_id: &str, events: &[Event]) -> Option<ConversationSummary> {
        let latest_event_time = events
            .iter()
            .map(|e| e.timestamp)
            .fold(None, |m: Option<f64>, t| Some(m.map_or(t, |m| m.max(t))))?;
        let paused = events
            .iter()
            .rev()
            .find(|e| PAUSE_STATE_EVENTS.contains(&e.type_name()))
            .is_some_and(|e| e.type_name() == "pause");
        Some(ConversationSummary {
            sender_id: sender_id.to_owned(),
            latest_event_time,
            paused,
        })
    }
}

/// Which conversations to list.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationQuery {
    /// How many to skip (of the ordered, filtered list).
    pub offset: usize,
    /// How many to give at most.
    pub limit: usize,
    /// Only paused (`Some(true)`) or only unpaused (`Some(false)`) ones.
    pub paused: Option<bool>,
}

/// A page of conversations.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationPage {
    /// The conversations, most recently active first (ties: by id).
    pub conversations: Vec<ConversationSummary>,
    /// How many conversations match the query in all.
    pub total: usize,
}

impl ConversationPage {
    /// Filters, orders and pages summaries (for stores that list in memory).
    pub fn from_summaries(
        mut all: Vec<ConversationSummary>,
        query: &ConversationQuery,
    ) -> ConversationPage {
        if let Some(paused) = query.paused {
            all.retain(|c| c.paused == paused);
        }
        all.sort_by(|a, b| {
            b.latest_event_time
                .total_cmp(&a.latest_event_time)
                .then_with(|| a.sender_id.cmp(&b.sender_id))
        });
        let total = all.len();
        let conversations = all
            .into_iter()
            .skip(query.offset)
            .take(query.limit)
            .collect();
        ConversationPage {
            conversations,
            total,
        }
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

    /// Checks that the lock store can be used (for readiness probes).
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
