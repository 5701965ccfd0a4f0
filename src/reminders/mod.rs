//! Reminders: intents that fire later, kept in a store so that they survive restarts
//! and fire once when several replicas share the store.
//!
//! Rasa keeps reminders as jobs of an in-process scheduler: a restart loses them and
//! with several replicas nobody knows which one fires. palaver writes every scheduled
//! reminder to a [`ReminderStore`] (the tracker store's database: SQLite by default,
//! in memory with the in-memory tracker store), and a [`scheduler`] task on each
//! replica claims due reminders with a lease, fires them as Rasa's `handle_reminder`
//! does, and deletes them.
//!
//! - **Scheduling** is a side effect of a `reminder` event returned by an action, or
//!   posted to `/tracker/events?execute_side_effects=true`; a `cancel_reminder` removes
//!   the conversation's reminders that match its non-empty `name`, `intent` and
//!   `entities` (all of them when none is given), as Rasa matches them. Both are
//!   collected by the conversation's transaction ([`ReminderOp`]) and applied when it
//!   commits, while the conversation is still locked.
//! - **Names are scoped to a conversation**: a reminder replaces the earlier one of the
//!   same name *in the same conversation* (Rasa replaces same-named reminders of any
//!   conversation).
//! - **Exactly once**: a replica claims a due reminder by setting `claimed_by` and
//!   `claimed_until` in one atomic statement; it fires only if, once it holds the
//!   conversation lock, the reminder is still there and still its own, and deletes it
//!   after the conversation's events are stored. A replica that dies holding a claim
//!   loses it when the lease runs out and another replica fires the reminder. The one
//!   window where a reminder can fire twice is a crash between storing the fired
//!   conversation's events and deleting the reminder (milliseconds).

pub mod memory;
pub mod postgres;
pub mod redis;
pub mod scheduler;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::Notify;

use crate::events::{is_truthy, Event, EventKind, Reminder};
use crate::stores::StoreError;

/// A reminder as it waits in a [`ReminderStore`].
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledReminder {
    /// Unique id of this scheduling (a rescheduled name gets a new id).
    pub id: String,
    /// The conversation it belongs to.
    pub sender_id: String,
    /// Its name, unique within the conversation.
    pub name: String,
    /// The intent to trigger (`None` for a 1.x reminder naming an action).
    pub intent: Option<String>,
    /// Entities to send with the intent, as given (list, `{entity: value}` or null).
    pub entities: Value,
    /// When it is due, in seconds since the epoch.
    pub due_at: f64,
    /// Drop it if the user speaks before it fires.
    pub kill_on_user_msg: bool,
    /// Name of the output channel of the request that scheduled it (`None`: a
    /// collecting channel without a name); its messages go there, as in Rasa.
    pub output_channel: Option<String>,
    /// The 1.x `action` field: the action to run when `intent` is absent.
    pub legacy_action: Option<String>,
}

impl ScheduledReminder {
    /// The reminder to store for a `reminder` event of conversation `sender_id`,
    /// scheduled through `output_channel`.
    pub fn from_event(
        sender_id: &str,
        reminder: &Reminder,
        output_channel: Option<&str>,
    ) -> ScheduledReminder {
        ScheduledReminder {
            id: uuid::Uuid::new_v4().simple().to_string(),
            sender_id: sender_id.to_owned(),
            name: reminder.name.clone(),
            intent: reminder.intent.clone(),
            entities: reminder.entities.clone(),
            due_at: reminder.date_time.epoch_seconds(),
            kill_on_user_msg: reminder.kill_on_user_msg,
            output_channel: output_channel.map(str::to_owned),
            legacy_action: reminder.legacy_action.clone(),
        }
    }

    /// The entities as the text compared by cancellations (Rasa compares `str()` of
    /// both sides).
    pub fn entities_key(&self) -> String {
        entities_key(&self.entities)
    }
}

/// The text form of entities used to match cancellations.
pub fn entities_key(entities: &Value) -> String {
    serde_json::to_string(entities).unwrap_or_default()
}

/// Which reminders of a conversation a `cancel_reminder` removes: those matching every
/// field that is set (Rasa ignores empty fields; none set = all of them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CancelFilter {
    /// Reminder name.
    pub name: Option<String>,
    /// Intent.
    pub intent: Option<String>,
    /// The entities' text form ([`entities_key`]).
    pub entities: Option<String>,
}

impl CancelFilter {
    /// The filter of a `cancel_reminder` event's fields.
    pub fn new(name: Option<&str>, intent: Option<&str>, entities: &Value) -> CancelFilter {
        CancelFilter {
            name: name.filter(|n| !n.is_empty()).map(str::to_owned),
            intent: intent.filter(|i| !i.is_empty()).map(str::to_owned),
            entities: is_truthy(entities).then(|| entities_key(entities)),
        }
    }

    /// Whether the filter removes `r` (of the same conversation).
    pub fn matches(&self, r: &ScheduledReminder) -> bool {
        self.name.as_ref().is_none_or(|n| *n == r.name)
            && self
                .intent
                .as_ref()
                .is_none_or(|i| Some(i) == r.intent.as_ref())
            && self
                .entities
                .as_ref()
                .is_none_or(|e| *e == r.entities_key())
    }
}

/// A change to the scheduled reminders, collected while a conversation is changed and
/// applied when its events are stored.
#[derive(Debug, Clone, PartialEq)]
pub enum ReminderOp {
    /// Schedule (or replace the same-named reminder of the conversation).
    Schedule(ScheduledReminder),
    /// Remove the conversation's reminders that match.
    Cancel {
        /// The conversation.
        sender_id: String,
        /// What to remove.
        filter: CancelFilter,
    },
}

/// The reminder side effects of events returned by one action (or posted with
/// `execute_side_effects`): first the reminders, then the cancellations, as Rasa runs
/// them.
pub fn ops_for_events(
    sender_id: &str,
    events: &[Event],
    output_channel: Option<&str>,
) -> Vec<ReminderOp> {
    let mut ops: Vec<ReminderOp> =
        events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Reminder(r) => Some(ReminderOp::Schedule(
                    ScheduledReminder::from_event(sender_id, r, output_channel),
                )),
                _ => None,
            })
            .collect();
    ops.extend(events.iter().filter_map(|e| match &e.kind {
        EventKind::CancelReminder {
            name,
            intent,
            entities,
        } => Some(ReminderOp::Cancel {
            sender_id: sender_id.to_owned(),
            filter: CancelFilter::new(name.as_deref(), intent.as_deref(), entities),
        }),
        _ => None,
    }));
    ops
}

/// Where scheduled reminders are kept. Every method is atomic on its own; claims are
/// exclusive across every process sharing the store.
#[async_trait]
pub trait ReminderStore: Send + Sync {
    /// Stores a reminder, replacing one of the same conversation and name (and any
    /// claim on it).
    async fn schedule(&self, reminder: &ScheduledReminder) -> Result<(), StoreError>;

    /// Removes the reminders of a conversation that match; how many.
    async fn cancel(&self, sender_id: &str, filter: &CancelFilter) -> Result<u64, StoreError>;

    /// Claims up to `limit` reminders due at `now` that nobody holds (or whose claim
    /// expired), for `claimer` until `until`; the earliest first.
    async fn claim_due(
        &self,
        now: f64,
        limit: usize,
        claimer: &str,
        until: f64,
    ) -> Result<Vec<ScheduledReminder>, StoreError>;

    /// Extends `claimer`'s claim on reminder `id` to `until`; `false` when the reminder
    /// is gone or no longer `claimer`'s (cancelled, replaced, claimed by another).
    async fn renew(&self, id: &str, claimer: &str, until: f64) -> Result<bool, StoreError>;

    /// Deletes reminder `id` after it fired, if `claimer` still holds it.
    async fn complete(&self, id: &str, claimer: &str) -> Result<(), StoreError>;

    /// Gives up `claimer`'s claims (at shutdown) so that others fire them at once.
    async fn release(&self, claimer: &str) -> Result<(), StoreError>;

    /// When the next reminder that could be claimed is due (claimed ones count from
    /// the end of their lease).
    async fn next_due(&self) -> Result<Option<f64>, StoreError>;

    /// How many reminders wait.
    async fn count(&self) -> Result<u64, StoreError>;

    /// The reminders of a conversation (for tests and the API), earliest first.
    async fn list(&self, sender_id: &str) -> Result<Vec<ScheduledReminder>, StoreError>;

    /// Applies side effects in order; stores that can do so apply them all or none.
    async fn apply(&self, ops: &[ReminderOp]) -> Result<(), StoreError> {
        for op in ops {
            match op {
                ReminderOp::Schedule(r) => self.schedule(r).await?,
                ReminderOp::Cancel { sender_id, filter } => {
                    self.cancel(sender_id, filter).await?;
                }
            }
        }
        Ok(())
    }
}

/// The reminder store of a server and a bell that wakes its scheduler when a
/// reminder is scheduled (so that a reminder due sooner than the scheduler's next
/// wake-up is not late).
pub struct Reminders {
    store: Arc<dyn ReminderStore>,
    wake: Notify,
}

impl Reminders {
    /// Reminders kept in `store`.
    pub fn new(store: Arc<dyn ReminderStore>) -> Reminders {
        Reminders {
            store,
            wake: Notify::new(),
        }
    }

    /// Reminders kept in this process's memory only (lost on restart).
    pub fn in_memory() -> Reminders {
        Reminders::new(Arc::new(memory::InMemoryReminderStore::new()))
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn ReminderStore> {
        &self.store
    }

    /// Applies collected side effects in order and wakes the scheduler.
    pub async fn apply(&self, ops: &[ReminderOp]) -> Result<(), StoreError> {
        self.store.apply(ops).await?;
        for op in ops {
            match op {
                ReminderOp::Schedule(r) => {
                    tracing::debug!(sender = %r.sender_id, name = %r.name, due_at = r.due_at, "reminder scheduled")
                }
                ReminderOp::Cancel { sender_id, filter } => {
                    tracing::debug!(sender = %sender_id, ?filter, "reminders cancelled")
                }
            }
        }
        if ops.iter().any(|op| matches!(op, ReminderOp::Schedule(_))) {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Waits until [`Reminders::apply`] scheduled something.
    pub async fn scheduled(&self) {
        self.wake.notified().await
    }
}

/// A reminder from a `palaver_reminders` row: one reading for the SQL stores (SQLite and
/// PostgreSQL have the same columns); `unavailable` words a column error as its store does.
pub(crate) fn from_sql_row<'r, R>(
    row: &'r R,
    unavailable: fn(sqlx::Error) -> StoreError,
) -> Result<ScheduledReminder, StoreError>
where
    R: sqlx::Row,
    &'r str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    f64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let entities: String = row.try_get("entities").map_err(unavailable)?;
    Ok(ScheduledReminder {
        id: row.try_get("id").map_err(unavailable)?,
        sender_id: row.try_get("sender_id").map_err(unavailable)?,
        name: row.try_get("name").map_err(unavailable)?,
        intent: row.try_get("intent").map_err(unavailable)?,
        entities: serde_json::from_str(&entities)
            .map_err(|e| StoreError::Corrupt(format!("reminder entities: {e}")))?,
        due_at: row.try_get("due_at").map_err(unavailable)?,
        kill_on_user_msg: row.try_get("kill_on_user_msg").map_err(unavailable)?,
        output_channel: row.try_get("output_channel").map_err(unavailable)?,
        legacy_action: row.try_get("legacy_action").map_err(unavailable)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reminder(name: &str, intent: &str, entities: Value) -> ScheduledReminder {
        ScheduledReminder {
            id: name.into(),
            sender_id: "s".into(),
            name: name.into(),
            intent: Some(intent.into()),
            entities,
            due_at: 0.0,
            kill_on_user_msg: true,
            output_channel: None,
            legacy_action: None,
        }
    }

    #[test]
    fn cancel_matches_set_fields_only() {
        let r = reminder("a", "remind", json!([{"entity": "x", "value": 1}]));
        assert!(CancelFilter::new(None, None, &Value::Null).matches(&r));
        assert!(CancelFilter::new(Some(""), Some(""), &json!([])).matches(&r));
        assert!(CancelFilter::new(Some("a"), None, &json!({})).matches(&r));
        assert!(!CancelFilter::new(Some("b"), None, &Value::Null).matches(&r));
        assert!(CancelFilter::new(None, Some("remind"), &Value::Null).matches(&r));
        assert!(!CancelFilter::new(Some("a"), Some("other"), &Value::Null).matches(&r));
        assert!(CancelFilter::new(None, None, &json!([{"entity": "x", "value": 1}])).matches(&r));
        assert!(!CancelFilter::new(None, None, &json!([{"entity": "x", "value": 2}])).matches(&r));
    }

    #[test]
    fn reminders_are_scheduled_before_cancellations() {
        let events = vec![
            Event::from_json(&json!({"event": "cancel_reminder", "name": "a"}))
                .unwrap()
                .unwrap(),
            Event::from_json(&json!({"event": "reminder", "intent": "i", "name": "a",
                "date_time": "2030-01-01T00:00:00+00:00"}))
            .unwrap()
            .unwrap(),
            Event::from_json(&json!({"event": "slot", "name": "x", "value": 1}))
                .unwrap()
                .unwrap(),
        ];
        let ops = ops_for_events("s", &events, Some("callback"));
        assert_eq!(ops.len(), 2);
        match &ops[0] {
            ReminderOp::Schedule(r) => {
                assert_eq!(r.name, "a");
                assert_eq!(r.output_channel.as_deref(), Some("callback"));
                assert_eq!(r.due_at, 1893456000.0);
                assert!(r.kill_on_user_msg);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(&ops[1], ReminderOp::Cancel { filter, .. } if filter.name.as_deref() == Some("a"))
        );
    }
}
