//! Reminders in this process's memory, for the in-memory tracker store (and tests):
//! gone when the process ends, like the conversations next to them.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{CancelFilter, ReminderStore, ScheduledReminder};
use crate::stores::StoreError;

/// A claim on a reminder.
#[derive(Debug, Clone)]
struct Claim {
    by: String,
    until: f64,
}

#[derive(Default)]
struct Inner {
    /// Reminders by id, with their claim.
    by_id: HashMap<String, (ScheduledReminder, Option<Claim>)>,
    /// Id by (conversation, name).
    by_name: HashMap<(String, String), String>,
    /// (when it can next be claimed, id), earliest first. The bits of an `f64` that is
    /// not negative order like the number.
    queue: BTreeSet<(u64, String)>,
}

fn key(t: f64) -> u64 {
    t.max(0.0).to_bits()
}

impl Inner {
    fn remove(&mut self, id: &str) -> Option<ScheduledReminder> {
        let (r, claim) = self.by_id.remove(id)?;
        self.queue
            .remove(&(available_at(&r, claim.as_ref()), id.to_owned()));
        self.by_name.remove(&(r.sender_id.clone(), r.name.clone()));
        Some(r)
    }
}

fn available_at(r: &ScheduledReminder, claim: Option<&Claim>) -> u64 {
    key(match claim {
        Some(c) => c.until.max(r.due_at),
        None => r.due_at,
    })
}

/// Reminders in memory, indexed by due time.
#[derive(Default)]
pub struct InMemoryReminderStore {
    inner: Mutex<Inner>,
}

impl InMemoryReminderStore {
    /// An empty store.
    pub fn new() -> InMemoryReminderStore {
        InMemoryReminderStore::default()
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl ReminderStore for InMemoryReminderStore {
    async fn schedule(&self, reminder: &ScheduledReminder) -> Result<(), StoreError> {
        let mut inner = self.inner();
        let name_key = (reminder.sender_id.clone(), reminder.name.clone());
        if let Some(old) = inner.by_name.get(&name_key).cloned() {
            inner.remove(&old);
        }
        inner
            .queue
            .insert((key(reminder.due_at), reminder.id.clone()));
        inner.by_name.insert(name_key, reminder.id.clone());
        inner
            .by_id
            .insert(reminder.id.clone(), (reminder.clone(), None));
        Ok(())
    }

    async fn cancel(&self, sender_id: &str, filter: &CancelFilter) -> Result<u64, StoreError> {
        let mut inner = self.inner();
        let ids: Vec<String> = inner
            .by_name
            .iter()
            .filter(|((s, _), _)| s == sender_id)
            .map(|(_, id)| id.clone())
            .filter(|id| inner.by_id.get(id).is_some_and(|(r, _)| filter.matches(r)))
            .collect();
        for id in &ids {
            inner.remove(id);
        }
        Ok(ids.len() as u64)
    }

    async fn claim_due(
        &self,
        now: f64,
        limit: usize,
        claimer: &str,
        until: f64,
    ) -> Result<Vec<ScheduledReminder>, StoreError> {
        let mut inner = self.inner();
        let due: Vec<(u64, String)> = inner
            .queue
            .iter()
            .take_while(|(at, _)| *at <= key(now))
            .take(limit)
            .cloned()
            .collect();
        let mut claimed = Vec::with_capacity(due.len());
        for entry in due {
            inner.queue.remove(&entry);
            let id = entry.1;
            let claim = Claim {
                by: claimer.to_owned(),
                until,
            };
            let Some(slot) = inner.by_id.get_mut(&id) else {
                continue;
            };
            slot.1 = Some(claim.clone());
            let r = slot.0.clone();
            inner.queue.insert((available_at(&r, Some(&claim)), id));
            claimed.push(r);
        }
        Ok(claimed)
    }

    async fn renew(&self, id: &str, claimer: &str, until: f64) -> Result<bool, StoreError> {
        let mut inner = self.inner();
        let Some((r, claim)) = inner.by_id.get(id).cloned() else {
            return Ok(false);
        };
        if claim.as_ref().map(|c| c.by.as_str()) != Some(claimer) {
            return Ok(false);
        }
        inner
            .queue
            .remove(&(available_at(&r, claim.as_ref()), id.to_owned()));
        let claim = Claim {
            by: claimer.to_owned(),
            until,
        };
        inner
            .queue
            .insert((available_at(&r, Some(&claim)), id.to_owned()));
        if let Some(slot) = inner.by_id.get_mut(id) {
            slot.1 = Some(claim);
        }
        Ok(true)
    }

    async fn complete(&self, id: &str, claimer: &str) -> Result<(), StoreError> {
        let mut inner = self.inner();
        let mine = inner
            .by_id
            .get(id)
            .is_some_and(|(_, c)| c.as_ref().map(|c| c.by.as_str()) == Some(claimer));
        if mine {
            inner.remove(id);
        }
        Ok(())
    }

    async fn release(&self, claimer: &str) -> Result<(), StoreError> {
        let mut inner = self.inner();
        let held: Vec<String> = inner
            .by_id
            .iter()
            .filter(|(_, (_, c))| c.as_ref().is_some_and(|c| c.by == claimer))
            .map(|(id, _)| id.clone())
            .collect();
        for id in held {
            if let Some((r, claim)) = inner.by_id.get(&id).cloned() {
                inner
                    .queue
                    .remove(&(available_at(&r, claim.as_ref()), id.clone()));
                inner.queue.insert((key(r.due_at), id.clone()));
                if let Some(slot) = inner.by_id.get_mut(&id) {
                    slot.1 = None;
                }
            }
        }
        Ok(())
    }

    async fn next_due(&self) -> Result<Option<f64>, StoreError> {
        Ok(self
            .inner()
            .queue
            .first()
            .map(|(at, _)| f64::from_bits(*at)))
    }

    async fn count(&self) -> Result<u64, StoreError> {
        Ok(self.inner().by_id.len() as u64)
    }

    async fn list(&self, sender_id: &str) -> Result<Vec<ScheduledReminder>, StoreError> {
        let inner = self.inner();
        let mut all: Vec<ScheduledReminder> = inner
            .by_id
            .values()
            .filter(|(r, _)| r.sender_id == sender_id)
            .map(|(r, _)| r.clone())
            .collect();
        all.sort_by(|a, b| a.due_at.total_cmp(&b.due_at).then(a.name.cmp(&b.name)));
        Ok(all)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::{json, Value};

    pub(crate) fn reminder(sender: &str, name: &str, due_at: f64) -> ScheduledReminder {
        ScheduledReminder {
            id: format!("{sender}/{name}/{due_at}"),
            sender_id: sender.into(),
            name: name.into(),
            intent: Some("remind".into()),
            entities: json!([{"entity": "who", "value": name}]),
            due_at,
            kill_on_user_msg: false,
            output_channel: Some("callback".into()),
            legacy_action: None,
        }
    }

    /// Schedules 300 reminders through the first handle, then claims them from all
    /// handles at once: each is claimed exactly once. (Reminders of senders not named
    /// `s<i>`, left by a contract run on the same store, are not counted.)
    pub(crate) async fn claims_exclusively(
        handles: Vec<(&'static str, std::sync::Arc<dyn ReminderStore>)>,
    ) {
        for i in 0..300 {
            let r = reminder(&format!("s{i}"), "n", i as f64);
            handles[0].1.schedule(&r).await.unwrap();
        }
        let mut tasks = Vec::new();
        for (who, store) in handles {
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let batch = store.claim_due(1e9, 7, who, 2e9).await.unwrap();
                    if batch.is_empty() {
                        return got;
                    }
                    got.extend(
                        batch
                            .into_iter()
                            .filter(|r| r.sender_id.starts_with('s'))
                            .map(|r| r.sender_id),
                    );
                }
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all.sort();
        let n = all.len();
        all.dedup();
        assert_eq!((n, all.len()), (300, 300));
    }

    /// The behaviour every [`ReminderStore`] must have.
    pub(crate) async fn contract(store: &dyn ReminderStore) {
        // Names are scoped to a conversation; the same name replaces.
        store.schedule(&reminder("a", "r1", 10.0)).await.unwrap();
        store.schedule(&reminder("b", "r1", 11.0)).await.unwrap();
        store.schedule(&reminder("a", "r2", 12.0)).await.unwrap();
        store.schedule(&reminder("a", "r1", 13.0)).await.unwrap();
        assert_eq!(store.count().await.unwrap(), 3);
        let a = store.list("a").await.unwrap();
        assert_eq!(
            a.iter()
                .map(|r| (r.name.as_str(), r.due_at))
                .collect::<Vec<_>>(),
            vec![("r2", 12.0), ("r1", 13.0)]
        );
        assert_eq!(a[1], reminder("a", "r1", 13.0));
        assert_eq!(store.next_due().await.unwrap(), Some(11.0));

        // Claims: due ones only, earliest first, exclusive until the lease ends.
        assert!(store
            .claim_due(10.5, 10, "x", 100.0)
            .await
            .unwrap()
            .is_empty());
        let got = store.claim_due(12.0, 10, "x", 100.0).await.unwrap();
        assert_eq!(
            got.iter().map(|r| r.sender_id.as_str()).collect::<Vec<_>>(),
            vec!["b", "a"]
        );
        assert!(store.claim_due(50.0, 10, "y", 150.0).await.unwrap().len() == 1);
        assert_eq!(store.next_due().await.unwrap(), Some(100.0));
        let b1 = &got[0];
        assert!(store.renew(&b1.id, "x", 200.0).await.unwrap());
        assert!(!store.renew(&b1.id, "y", 200.0).await.unwrap());
        // A lease that ran out can be taken over.
        let taken = store.claim_due(120.0, 10, "y", 300.0).await.unwrap();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].name, "r2");
        assert!(!store.renew(&got[1].id, "x", 400.0).await.unwrap());
        // Completing needs the claim.
        store.complete(&got[1].id, "x").await.unwrap();
        assert_eq!(store.count().await.unwrap(), 3);
        store.complete(&got[1].id, "y").await.unwrap();
        assert_eq!(store.count().await.unwrap(), 2);
        // Rescheduling a claimed name drops the claim (a new id).
        store.schedule(&reminder("b", "r1", 20.0)).await.unwrap();
        assert!(!store.renew(&b1.id, "x", 500.0).await.unwrap());
        // Releasing makes claims available at once.
        let c = store.claim_due(20.0, 10, "z", 1000.0).await.unwrap();
        assert_eq!(c.len(), 1);
        assert!(store
            .claim_due(30.0, 10, "w", 1000.0)
            .await
            .unwrap()
            .is_empty());
        store.release("z").await.unwrap();
        assert_eq!(
            store.claim_due(30.0, 10, "w", 1000.0).await.unwrap().len(),
            1
        );

        // Cancelling by name, intent, entities, or everything of a conversation.
        store.schedule(&reminder("c", "x1", 1.0)).await.unwrap();
        store.schedule(&reminder("c", "x2", 1.0)).await.unwrap();
        store.schedule(&reminder("c", "x3", 1.0)).await.unwrap();
        store.schedule(&reminder("d", "x1", 1.0)).await.unwrap();
        let by_name = CancelFilter::new(Some("x1"), None, &Value::Null);
        assert_eq!(store.cancel("c", &by_name).await.unwrap(), 1);
        let wrong_intent = CancelFilter::new(None, Some("other"), &Value::Null);
        assert_eq!(store.cancel("c", &wrong_intent).await.unwrap(), 0);
        let by_entities = CancelFilter::new(
            None,
            Some("remind"),
            &json!([{"entity": "who", "value": "x2"}]),
        );
        assert_eq!(store.cancel("c", &by_entities).await.unwrap(), 1);
        assert_eq!(
            store.cancel("c", &CancelFilter::default()).await.unwrap(),
            1
        );
        assert!(store.list("c").await.unwrap().is_empty());
        assert_eq!(store.list("d").await.unwrap().len(), 1);

        // Side effects in order: scheduled, then one cancelled again.
        use super::super::ReminderOp;
        store
            .apply(&[
                ReminderOp::Schedule(reminder("e", "x", 1.0)),
                ReminderOp::Schedule(reminder("e", "y", 1.0)),
                ReminderOp::Cancel {
                    sender_id: "e".into(),
                    filter: CancelFilter::new(Some("y"), None, &Value::Null),
                },
            ])
            .await
            .unwrap();
        let e = store.list("e").await.unwrap();
        assert_eq!(
            e.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            vec!["x"]
        );
        store.cancel("e", &CancelFilter::default()).await.unwrap();
    }

    #[tokio::test]
    async fn memory_store_keeps_the_contract() {
        contract(&InMemoryReminderStore::new()).await;
    }
}
