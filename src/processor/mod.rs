//! The processor: the one place where conversations change.
//!
//! Every change follows the same path: take the conversation's lock, load its tracker
//! (from a cache, or from the tracker store), log events on it, append them to the
//! store, and only then answer. [`Conversations::open`] gives a [`ConversationTxn`]
//! for that; if anything fails before [`ConversationTxn::commit`], the cached tracker
//! is dropped and the next request reads the store again, so the cache never holds
//! events the store does not.

pub mod messages;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use crate::agent::Agent;
use crate::events::{Event, EventKind};
use crate::reminders::{ReminderOp, Reminders};
use crate::stores::{ConversationLock, LockStore, StoreError, TrackerStore};
use crate::tracker::DialogueStateTracker;

type SharedTracker = Arc<RwLock<DialogueStateTracker>>;

fn read(t: &SharedTracker) -> RwLockReadGuard<'_, DialogueStateTracker> {
    t.read().unwrap_or_else(|p| p.into_inner())
}

/// Recently used trackers, so that a request does not replay a long history.
///
/// Entries are only inserted by a request that holds the conversation's lock, so a
/// cached tracker always matches the store. When the cache is full an arbitrary entry
/// is dropped.
struct TrackerCache {
    map: Mutex<HashMap<String, SharedTracker>>,
    capacity: usize,
}

impl TrackerCache {
    fn get(&self, sender_id: &str) -> Option<SharedTracker> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(sender_id)
            .cloned()
    }

    fn insert(&self, sender_id: &str, tracker: SharedTracker) {
        if self.capacity == 0 {
            return;
        }
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= self.capacity && !map.contains_key(sender_id) {
            if let Some(victim) = map.keys().next().cloned() {
                map.remove(&victim);
            }
        }
        map.insert(sender_id.to_owned(), tracker);
    }

    fn remove(&self, sender_id: &str) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(sender_id);
    }

    fn clear(&self) {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// The stores behind all conversations, and the tracker cache in front of them.
pub struct Conversations {
    store: Arc<dyn TrackerStore>,
    locks: Arc<dyn LockStore>,
    cache: TrackerCache,
    reminders: Arc<Reminders>,
}

impl Conversations {
    /// Conversations kept in `store`, locked with `locks`; at most `cache_capacity`
    /// trackers are kept in memory (none with 0: the store is shared with other
    /// processes, so every request must read it).
    pub fn new(
        store: Arc<dyn TrackerStore>,
        locks: Arc<dyn LockStore>,
        cache_capacity: usize,
    ) -> Self {
        Conversations {
            store,
            locks,
            cache: TrackerCache {
                map: Mutex::new(HashMap::new()),
                capacity: cache_capacity,
            },
            reminders: Arc::new(Reminders::in_memory()),
        }
    }

    /// Keeps scheduled reminders in `reminders` (default: in this process's memory).
    pub fn with_reminders(mut self, reminders: Arc<Reminders>) -> Self {
        self.reminders = reminders;
        self
    }

    /// The scheduled reminders.
    pub fn reminders(&self) -> &Arc<Reminders> {
        &self.reminders
    }

    /// The tracker store.
    pub fn store(&self) -> &Arc<dyn TrackerStore> {
        &self.store
    }

    /// The lock store.
    pub fn locks(&self) -> &Arc<dyn LockStore> {
        &self.locks
    }

    /// Forgets every cached tracker (after the domain changed).
    pub fn clear_cache(&self) {
        self.cache.clear();
    }

    async fn load(&self, sender_id: &str, agent: &Agent) -> Result<SharedTracker, StoreError> {
        if let Some(t) = self.cache.get(sender_id) {
            return Ok(t);
        }
        let events = self.store.retrieve(sender_id).await?.unwrap_or_default();
        let tracker = DialogueStateTracker::recreate(sender_id, agent.slots.clone(), events);
        let shared = Arc::new(RwLock::new(tracker));
        self.cache.insert(sender_id, shared.clone());
        Ok(shared)
    }

    /// Locks a conversation for changes and loads its tracker.
    pub async fn open(
        &self,
        sender_id: &str,
        agent: Arc<Agent>,
    ) -> Result<ConversationTxn<'_>, StoreError> {
        let lock = self.locks.lock(sender_id).await?;
        let tracker = self.load(sender_id, &agent).await?;
        Ok(ConversationTxn {
            conversations: self,
            agent,
            sender_id: sender_id.to_owned(),
            _lock: lock,
            tracker,
            pending: Vec::new(),
            reminder_ops: Vec::new(),
            finished: false,
        })
    }

    /// The current tracker of a conversation, for reading. A cached tracker is read
    /// without waiting for the conversation's lock.
    pub async fn read(&self, sender_id: &str, agent: &Agent) -> Result<ReadTracker, StoreError> {
        if let Some(t) = self.cache.get(sender_id) {
            return Ok(ReadTracker(t));
        }
        let _lock = self.locks.lock(sender_id).await?;
        Ok(ReadTracker(self.load(sender_id, agent).await?))
    }

    /// Whether the store holds any event of the conversation.
    pub async fn exists(&self, sender_id: &str, agent: &Agent) -> Result<bool, StoreError> {
        Ok(!self.read(sender_id, agent).await?.get().events().is_empty())
    }
}

/// A conversation's tracker, shared with the cache; see [`ReadTracker::get`].
pub struct ReadTracker(SharedTracker);

impl ReadTracker {
    /// Borrows the tracker. Keep the guard short: writers wait for it.
    pub fn get(&self) -> RwLockReadGuard<'_, DialogueStateTracker> {
        read(&self.0)
    }
}

/// A conversation locked for changes. Log events with [`ConversationTxn::log`]; they
/// are stored by [`ConversationTxn::commit`]. Dropping it uncommitted forgets them.
pub struct ConversationTxn<'a> {
    conversations: &'a Conversations,
    agent: Arc<Agent>,
    sender_id: String,
    _lock: ConversationLock,
    tracker: SharedTracker,
    pending: Vec<Event>,
    reminder_ops: Vec<ReminderOp>,
    finished: bool,
}

impl ConversationTxn<'_> {
    /// The tracker with the events logged so far.
    pub fn tracker(&self) -> RwLockReadGuard<'_, DialogueStateTracker> {
        read(&self.tracker)
    }

    /// The conversation id.
    pub fn sender_id(&self) -> &str {
        &self.sender_id
    }

    /// The loaded bot.
    pub fn agent(&self) -> &Arc<Agent> {
        &self.agent
    }

    /// Logs an event: stamps its metadata, applies it to the tracker and queues it for
    /// storing.
    pub fn log(&mut self, mut event: Event) {
        self.agent.stamp(&mut event);
        self.pending.push(event.clone());
        self.tracker
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .update(event);
    }

    /// Schedules the `reminder`s and applies the `cancel_reminder`s among `events`
    /// (returned by an action, or posted with `execute_side_effects`) when the
    /// transaction commits; `output_channel` is where a reminder's messages will go.
    pub fn schedule_side_effects(&mut self, events: &[Event], output_channel: Option<&str>) {
        self.reminder_ops.extend(crate::reminders::ops_for_events(
            &self.sender_id,
            events,
            output_channel,
        ));
    }

    /// Stores the logged events. Returns once they are durable.
    ///
    /// Reminder side effects are applied first, still under the conversation's lock: a
    /// reminder stored without its events (the append failed) is dropped when it falls
    /// due, because its `reminder` event is not in the conversation.
    pub async fn commit(mut self) -> Result<(), StoreError> {
        self.finished = true;
        if !self.reminder_ops.is_empty() {
            let ops = std::mem::take(&mut self.reminder_ops);
            if let Err(e) = self.conversations.reminders.apply(&ops).await {
                self.conversations.cache.remove(&self.sender_id);
                return Err(e);
            }
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        if let Err(e) = self
            .conversations
            .store
            .append(&self.sender_id, &self.pending)
            .await
        {
            self.conversations.cache.remove(&self.sender_id);
            return Err(e);
        }
        // A stored tracker is rebuilt by replaying its applied events. That gives the
        // same state as applying them one by one except after a restart or inside a
        // loop; keep the cache equal to what a reload would give in those cases.
        let mut t = self.tracker.write().unwrap_or_else(|p| p.into_inner());
        let loop_name = t.active_loop().map(|l| l.name.clone());
        let differs = self.pending.iter().any(|e| match &e.kind {
            EventKind::Restart | EventKind::ActiveLoop { .. } => true,
            EventKind::Action(a) => a.name.is_some() && a.name == loop_name,
            _ => false,
        });
        if differs {
            t.replay_applied();
        }
        Ok(())
    }

    /// Replaces the whole history with `events`, stored exactly as given (no session
    /// start, no model metadata, as Rasa's replace does), and returns the tracker they
    /// build when applied in order.
    pub async fn replace(mut self, events: Vec<Event>) -> Result<DialogueStateTracker, StoreError> {
        self.finished = true;
        if let Err(e) = self
            .conversations
            .store
            .replace(&self.sender_id, &events)
            .await
        {
            self.conversations.cache.remove(&self.sender_id);
            return Err(e);
        }
        let slots = self.agent.slots.clone();
        let response =
            DialogueStateTracker::from_events(&self.sender_id, slots.clone(), events.clone());
        *self.tracker.write().unwrap_or_else(|p| p.into_inner()) =
            DialogueStateTracker::recreate(&self.sender_id, slots, events);
        Ok(response)
    }
}

impl Drop for ConversationTxn<'_> {
    fn drop(&mut self) {
        if !self.finished && !self.pending.is_empty() {
            // The logged events were never stored: the cached tracker is ahead of the
            // store, so forget it.
            self.conversations.cache.remove(&self.sender_id);
        }
    }
}
