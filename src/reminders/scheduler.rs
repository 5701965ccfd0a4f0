//! The reminder scheduler: one task per server that claims due reminders and fires
//! them, as Rasa's `MessageProcessor.handle_reminder` does.
//!
//! Firing one reminder: take the conversation's lock; check that the claim still
//! holds (a cancellation or a rescheduling while it waited removes it); run the
//! session check (its messages go to the reminder's output channel); drop the reminder
//! if `kill_on_user_msg` is set and the user spoke since it was scheduled, or if it is
//! no longer among the applied events (a restart, a new session or a rewind removed
//! it); otherwise log the intent as an external `user` event and run the prediction
//! loop, sending the bot's messages to the output channel of the request that
//! scheduled it (socket.io and callback push; a REST client reads them from the
//! tracker). A paused conversation gets the external `user` event and its slots but no
//! bot action, as in Rasa. A dropped reminder stores nothing, as in Rasa.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Semaphore};

use super::{ReminderStore, Reminders, ScheduledReminder};
use crate::channels::{CollectingOutputChannel, OutputChannel};
use crate::events::{EventKind, ACTION_LISTEN};
use crate::processor::messages::{run_action, update_session, Prediction};
use crate::server::dialogue::{external_entities, trigger_external};
use crate::server::AppState;
use crate::stores::StoreError;
use crate::tracker::DialogueStateTracker;

/// How the scheduler works.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// How long a claim holds before other replicas may take the reminder over; it is
    /// renewed while the reminder fires.
    pub lease: Duration,
    /// Longest sleep between two looks at the store (reminders scheduled by other
    /// replicas are seen within this time).
    pub poll: Duration,
    /// Reminders fired at the same time, at most.
    pub concurrency: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            lease: Duration::from_secs(30),
            poll: Duration::from_millis(500),
            concurrency: 64,
        }
    }
}

impl SchedulerConfig {
    /// The defaults, with the lease from `PALAVER_REMINDER_LEASE` when set (seconds,
    /// one at least): how soon another replica takes over the reminders of one that
    /// died while firing them.
    pub fn from_env() -> SchedulerConfig {
        let mut config = SchedulerConfig::default();
        if let Some(secs) = std::env::var("PALAVER_REMINDER_LEASE")
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 1.0)
        {
            config.lease = Duration::from_secs_f64(secs);
        }
        config
    }
}

/// Why a due reminder was not triggered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// `kill_on_user_msg` and the user spoke after it was scheduled.
    UserSpoke,
    /// Its `reminder` event is no longer applied (restart, new session, rewind).
    Outdated,
}

/// Whether a due reminder fires on this tracker (Rasa's `_has_message_after_reminder`
/// and `_is_reminder_still_valid`).
pub fn check(tracker: &DialogueStateTracker, r: &ScheduledReminder) -> Result<(), DropReason> {
    let is_it = |kind: &EventKind| matches!(kind, EventKind::Reminder(x) if x.name == r.name);
    if r.kill_on_user_msg {
        let mut spoke = true;
        for e in tracker.events().iter().rev() {
            if is_it(&e.kind) {
                spoke = false;
                break;
            }
            if let EventKind::User(u) = &e.kind {
                if u.text.as_deref().is_some_and(|t| !t.is_empty()) {
                    break;
                }
            }
        }
        if spoke {
            return Err(DropReason::UserSpoke);
        }
    }
    if !tracker
        .applied_events()
        .iter()
        .rev()
        .any(|e| is_it(&e.kind))
    {
        return Err(DropReason::Outdated);
    }
    Ok(())
}

/// What became of a claimed reminder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fired {
    /// The intent was triggered.
    Triggered,
    /// Dropped for this reason.
    Dropped(DropReason),
    /// Cancelled or rescheduled while it waited for the conversation.
    Gone,
    /// No bot is loaded; it stays claimed and is retried when the lease ends.
    NoBot,
}

fn now() -> f64 {
    crate::events::now()
}

/// The output channel a reminder's messages go to.
fn output_channel(state: &AppState, r: &ScheduledReminder) -> Arc<dyn OutputChannel> {
    match r.output_channel.as_deref() {
        Some(name) => state
            .push
            .output_channel(name)
            .unwrap_or_else(|| Arc::new(CollectingOutputChannel::named(name))),
        None => Arc::new(CollectingOutputChannel::new()),
    }
}

/// Keeps a claim alive until dropped.
struct Renewer(tokio::task::JoinHandle<()>);

impl Renewer {
    fn start(store: Arc<dyn ReminderStore>, id: String, claimer: String, lease: Duration) -> Self {
        Renewer(tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                let until = now() + lease.as_secs_f64();
                if !matches!(store.renew(&id, &claimer, until).await, Ok(true)) {
                    return;
                }
            }
        }))
    }
}

impl Drop for Renewer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Fires one claimed reminder (see the module documentation).
pub async fn fire(
    state: &AppState,
    r: &ScheduledReminder,
    claimer: &str,
    lease: Duration,
) -> Result<Fired, StoreError> {
    let store = state.conversations.reminders().store().clone();
    let Ok(agent) = state.agent() else {
        return Ok(Fired::NoBot);
    };
    let _renewer = Renewer::start(store.clone(), r.id.clone(), claimer.to_owned(), lease);
    let mut txn = state.conversations.open(&r.sender_id, agent).await?;
    if !store
        .renew(&r.id, claimer, now() + lease.as_secs_f64())
        .await?
    {
        return Ok(Fired::Gone);
    }
    let out = output_channel(state, r);
    update_session(&mut txn, None, out.as_ref()).await;
    let verdict = check(&txn.tracker(), r);
    if let Err(reason) = verdict {
        drop(txn);
        store.complete(&r.id, claimer).await?;
        return Ok(Fired::Dropped(reason));
    }
    match (&r.intent, &r.legacy_action) {
        (Some(intent), _) => {
            let entities = external_entities(Some(&r.entities));
            trigger_external(&mut txn, intent, entities, out.as_ref()).await;
        }
        (None, Some(action)) => {
            // A 1.x reminder names an action instead of an intent: run it and listen
            // (Rasa 3's policies have no rule for what follows it).
            let more = run_action(
                &mut txn,
                action,
                Prediction::fixed(None, Some(1.0)),
                out.as_ref(),
            )
            .await;
            if more && txn.tracker().latest_action_name() != Some(ACTION_LISTEN) {
                txn.log(crate::events::Event::action(ACTION_LISTEN, None, None));
            }
        }
        (None, None) => {
            tracing::warn!(sender = %r.sender_id, name = %r.name, "a reminder without an intent is dropped");
            drop(txn);
            store.complete(&r.id, claimer).await?;
            return Ok(Fired::Dropped(DropReason::Outdated));
        }
    }
    txn.commit().await?;
    crate::telemetry::reminder_lag(now() - r.due_at);
    store.complete(&r.id, claimer).await?;
    Ok(Fired::Triggered)
}

/// A running scheduler; [`Scheduler::stop`] ends it.
pub struct Scheduler {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Scheduler {
    /// Starts the scheduler of a server and registers its stop as a shutdown hook.
    pub fn start(state: Arc<AppState>, config: SchedulerConfig) {
        let scheduler = Scheduler::spawn(state.clone(), config);
        state
            .lifecycle
            .on_shutdown("reminder scheduler", move || scheduler.stop());
    }

    /// Starts the scheduler task.
    pub fn spawn(state: Arc<AppState>, config: SchedulerConfig) -> Scheduler {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(state, config, stopped));
        Scheduler { stop, task }
    }

    /// Stops claiming, lets the reminders being fired finish, gives back unfired
    /// claims.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn run(state: Arc<AppState>, config: SchedulerConfig, mut stopped: watch::Receiver<bool>) {
    let reminders: Arc<Reminders> = state.conversations.reminders().clone();
    let store = reminders.store().clone();
    let claimer = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple());
    let permits = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let mut counted_at = 0.0;
    tracing::info!(%claimer, "reminder scheduler started");
    loop {
        if *stopped.borrow() {
            break;
        }
        if now() - counted_at > 5.0 {
            counted_at = now();
            if let Ok(n) = store.count().await {
                crate::telemetry::set_pending_reminders(n as usize);
            }
        }
        let free = permits.available_permits();
        if free == 0 {
            tokio::select! {
                p = permits.clone().acquire_owned() => drop(p),
                _ = stopped.changed() => {}
            }
            continue;
        }
        let t = now();
        let until = t + config.lease.as_secs_f64();
        match store.claim_due(t, free, &claimer, until).await {
            Ok(batch) => {
                let full = batch.len() == free;
                for r in batch {
                    let Ok(permit) = permits.clone().acquire_owned().await else {
                        break;
                    };
                    let (state, claimer, lease) = (state.clone(), claimer.clone(), config.lease);
                    tokio::spawn(async move {
                        let outcome = fire(&state, &r, &claimer, lease).await;
                        match &outcome {
                            Ok(Fired::Triggered) => {
                                tracing::info!(sender = %r.sender_id, name = %r.name, "reminder fired")
                            }
                            Ok(other) => {
                                tracing::info!(sender = %r.sender_id, name = %r.name, outcome = ?other, "reminder not triggered")
                            }
                            Err(e) => {
                                tracing::error!(sender = %r.sender_id, name = %r.name, error = %e, "firing a reminder failed; retried when its lease ends")
                            }
                        }
                        crate::telemetry::reminder_outcome(match outcome {
                            Ok(Fired::Triggered) => "fired",
                            Ok(Fired::Dropped(_)) | Ok(Fired::Gone) => "dropped",
                            Ok(Fired::NoBot) | Err(_) => "failed",
                        });
                        drop(permit);
                    });
                }
                if full {
                    continue;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim due reminders");
            }
        }
        let wait = match store.next_due().await {
            Ok(Some(at)) => Duration::from_secs_f64((at - now()).clamp(0.005, 3600.0)),
            Ok(None) => config.poll,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the next reminder");
                config.poll
            }
        }
        .min(config.poll);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = reminders.scheduled() => {}
            _ = stopped.changed() => {}
        }
    }
    // Wait for the reminders being fired, then hand back what is still claimed.
    let _ = permits.acquire_many(config.concurrency.max(1) as u32).await;
    if let Err(e) = store.release(&claimer).await {
        tracing::warn!(error = %e, "cannot release reminder claims");
    }
    tracing::info!("reminder scheduler stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Event;
    use serde_json::json;
    use std::sync::Arc as StdArc;

    fn ev(v: serde_json::Value) -> Event {
        Event::from_json(&v).unwrap().unwrap()
    }

    fn tracker(events: Vec<serde_json::Value>) -> DialogueStateTracker {
        DialogueStateTracker::from_events(
            "s",
            StdArc::new(Vec::new()),
            events.into_iter().map(ev).collect(),
        )
    }

    fn due(name: &str, kill: bool) -> ScheduledReminder {
        let mut r = super::super::memory::tests::reminder("s", name, 0.0);
        r.kill_on_user_msg = kill;
        r
    }

    fn reminder(name: &str) -> serde_json::Value {
        json!({"event": "reminder", "intent": "i", "name": name, "date_time": "2030-01-01T00:00:00"})
    }

    fn user(text: &str) -> serde_json::Value {
        json!({"event": "user", "text": text, "parse_data": {"intent": {"name": "x"}, "entities": []}})
    }

    #[test]
    fn kill_on_user_msg_drops_after_a_user_message_only() {
        let t = tracker(vec![reminder("a"), user("hi")]);
        assert_eq!(check(&t, &due("a", true)), Err(DropReason::UserSpoke));
        assert_eq!(check(&t, &due("a", false)), Ok(()));
        // A user event without text does not count; a later reminder of the name does.
        let t = tracker(vec![user("hi"), reminder("a"), user("")]);
        assert_eq!(check(&t, &due("a", true)), Ok(()));
        let t = tracker(vec![reminder("a"), user("hi"), reminder("a")]);
        assert_eq!(check(&t, &due("a", true)), Ok(()));
        // External messages count as the user speaking, as in Rasa.
        let t = tracker(vec![reminder("a"), user("EXTERNAL: x")]);
        assert_eq!(check(&t, &due("a", true)), Err(DropReason::UserSpoke));
    }

    #[test]
    fn restarts_and_new_sessions_outdate_a_reminder() {
        let t = tracker(vec![reminder("a"), json!({"event": "restart"})]);
        assert_eq!(check(&t, &due("a", false)), Err(DropReason::Outdated));
        let t = tracker(vec![reminder("a"), json!({"event": "session_started"})]);
        assert_eq!(check(&t, &due("a", false)), Err(DropReason::Outdated));
        let t = tracker(vec![json!({"event": "restart"}), reminder("a")]);
        assert_eq!(check(&t, &due("a", false)), Ok(()));
        // Another name is not this reminder.
        let t = tracker(vec![reminder("b")]);
        assert_eq!(check(&t, &due("a", false)), Err(DropReason::Outdated));
    }
}
