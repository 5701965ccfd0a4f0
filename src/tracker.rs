//! The dialogue state tracker: a conversation's events and the state they build.
//!
//! This mirrors Rasa's `DialogueStateTracker` (`rasa/shared/core/trackers.py`):
//! each event changes the state as its `apply_to` does; `restart`, `session_started`,
//! `rewind` and `undo` reset the state, and the last two replay the
//! [`applied_events`]. [`DialogueStateTracker::current_state`] is the JSON of the
//! HTTP API and of action server requests.
//!
//! There are two ways to build a tracker from stored events, and Rasa uses both:
//! [`DialogueStateTracker::from_events`] applies every event in order (what a
//! running conversation sees), [`DialogueStateTracker::recreate`] resets and replays
//! only the applied events (what Rasa's tracker store hands back on a later request).
//! They differ in a few corners, e.g. the followup action a `restart` leaves behind.

use std::collections::HashSet;
use std::sync::Arc;

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{json, Value};

use crate::events::{is_truthy, Event, EventKind, JsonMap, ACTION_LISTEN, ACTION_SESSION_START};
use crate::slots::Slot;

/// Which events a tracker JSON includes (`include_events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventVerbosity {
    /// `events` is `null`.
    None,
    /// Only the events that build the current state.
    Applied,
    /// Every event after the latest `restart` (the default).
    AfterRestart,
    /// Every event.
    All,
}

impl EventVerbosity {
    /// Parses an `include_events` value, case-insensitively.
    pub fn parse(s: &str) -> Option<EventVerbosity> {
        match s.to_ascii_uppercase().as_str() {
            "NONE" => Some(EventVerbosity::None),
            "APPLIED" => Some(EventVerbosity::Applied),
            "AFTER_RESTART" => Some(EventVerbosity::AfterRestart),
            "ALL" => Some(EventVerbosity::All),
            _ => None,
        }
    }
}

/// The latest user message as the tracker holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestMessage {
    /// The parse data of the `user` event.
    pub parse_data: JsonMap,
    /// Its entities, extended by later `entities` events.
    pub entities: Vec<Value>,
    /// Set by `user_featurization` events.
    pub use_text_for_featurization: Option<bool>,
}

impl LatestMessage {
    fn empty() -> LatestMessage {
        let mut parse_data = JsonMap::new();
        parse_data.insert("intent".into(), json!({}));
        parse_data.insert("entities".into(), json!([]));
        parse_data.insert("text".into(), Value::Null);
        parse_data.insert("message_id".into(), Value::Null);
        parse_data.insert("metadata".into(), json!({}));
        LatestMessage {
            parse_data,
            entities: Vec::new(),
            use_text_for_featurization: None,
        }
    }

    /// The intent name, if any.
    pub fn intent_name(&self) -> Option<&str> {
        self.parse_data
            .get("intent")
            .and_then(|i| i.get("name"))
            .and_then(Value::as_str)
    }

    /// The parse data with the (possibly extended) entity list, as in `latest_message`.
    pub fn to_json(&self) -> Value {
        let mut m = self.parse_data.clone();
        m.insert("entities".into(), Value::Array(self.entities.clone()));
        Value::Object(m)
    }
}

/// The latest action: by name, or by text for end-to-end predictions.
#[derive(Debug, Clone, PartialEq)]
pub enum LatestAction {
    /// No action since the last reset.
    None,
    /// `{"action_name": ...}`
    Name(String),
    /// `{"action_text": ...}`
    Text(String),
}

/// The active loop (form) of a conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveLoop {
    /// Loop name.
    pub name: String,
    /// Whether another action answered the user while the loop was active.
    pub is_interrupted: bool,
    /// Whether the loop rejected its execution.
    pub rejected: bool,
    /// Parse data of the message that activated the loop.
    pub trigger_message: Value,
}

/// A conversation: its events and the state they build.
#[derive(Debug, Clone)]
pub struct DialogueStateTracker {
    sender_id: String,
    slot_defs: Arc<Vec<Slot>>,
    events: Vec<Event>,
    slot_values: Vec<Value>,
    paused: bool,
    followup_action: Option<String>,
    latest_action: LatestAction,
    latest_message: LatestMessage,
    active_loop: Option<ActiveLoop>,
    latest_input_channel: Option<String>,
}

impl DialogueStateTracker {
    /// A new tracker without events, slots at their initial values.
    pub fn new(sender_id: impl Into<String>, slot_defs: Arc<Vec<Slot>>) -> Self {
        let mut t = DialogueStateTracker {
            sender_id: sender_id.into(),
            slot_values: Vec::new(),
            slot_defs,
            events: Vec::new(),
            paused: false,
            followup_action: None,
            latest_action: LatestAction::None,
            latest_message: LatestMessage::empty(),
            active_loop: None,
            latest_input_channel: None,
        };
        t.reset();
        t
    }

    /// A tracker built by applying every event in order (Rasa's `from_events`).
    pub fn from_events(sender_id: &str, slot_defs: Arc<Vec<Slot>>, events: Vec<Event>) -> Self {
        let mut t = DialogueStateTracker::new(sender_id, slot_defs);
        t.events.reserve(events.len());
        for e in events {
            t.update(e);
        }
        t
    }

    /// A tracker built as Rasa's tracker stores rebuild one: reset, then replay the
    /// applied events.
    pub fn recreate(sender_id: &str, slot_defs: Arc<Vec<Slot>>, events: Vec<Event>) -> Self {
        let mut t = DialogueStateTracker::new(sender_id, slot_defs);
        t.latest_input_channel = events
            .iter()
            .rev()
            .find_map(|e| match &e.kind {
                EventKind::User(u) => Some(u.input_channel.clone()),
                _ => None,
            })
            .flatten();
        t.events = events;
        t.replay();
        t
    }

    /// Appends an event and applies it.
    pub fn update(&mut self, event: Event) {
        if let EventKind::User(u) = &event.kind {
            self.latest_input_channel = u.input_channel.clone();
        }
        self.events.push(event);
        let idx = self.events.len() - 1;
        self.apply_at(idx);
    }

    /// The conversation id.
    pub fn sender_id(&self) -> &str {
        &self.sender_id
    }

    /// Every event, oldest first.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Whether the conversation is paused.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// The action forced to run next, if any.
    pub fn followup_action(&self) -> Option<&str> {
        self.followup_action.as_deref()
    }

    /// The latest user message.
    pub fn latest_message(&self) -> &LatestMessage {
        &self.latest_message
    }

    /// Name (or end-to-end text) of the latest action.
    pub fn latest_action_name(&self) -> Option<&str> {
        match &self.latest_action {
            LatestAction::None => None,
            LatestAction::Name(s) | LatestAction::Text(s) => Some(s),
        }
    }

    /// The active loop, if any.
    pub fn active_loop(&self) -> Option<&ActiveLoop> {
        self.active_loop.as_ref()
    }

    /// `input_channel` of the most recent `user` event.
    pub fn latest_input_channel(&self) -> Option<&str> {
        self.latest_input_channel.as_deref()
    }

    /// The current value of a slot (`None` if the domain has no such slot).
    pub fn slot_value(&self, name: &str) -> Option<&Value> {
        let i = self.slot_defs.iter().position(|s| s.name == name)?;
        self.slot_values.get(i)
    }

    /// The slot definitions this tracker was built with.
    pub fn slot_defs(&self) -> &Arc<Vec<Slot>> {
        &self.slot_defs
    }

    /// Timestamp of the last event.
    pub fn latest_event_time(&self) -> Option<f64> {
        self.events.last().map(|e| e.timestamp)
    }

    fn reset_slots(&mut self) {
        self.slot_values = self
            .slot_defs
            .iter()
            .map(|s| s.initial_value.clone())
            .collect();
    }

    fn reset(&mut self) {
        self.reset_slots();
        self.paused = false;
        self.latest_action = LatestAction::None;
        self.latest_message = LatestMessage::empty();
        self.followup_action = Some(ACTION_LISTEN.to_owned());
        self.active_loop = None;
    }

    /// Rebuilds the state the way a tracker store would: reset, then replay the
    /// applied events.
    pub fn replay_applied(&mut self) {
        self.replay();
    }

    fn replay(&mut self) {
        self.reset();
        for i in applied_event_indices(&self.events) {
            self.apply_at(i);
        }
    }

    fn apply_at(&mut self, idx: usize) {
        // Split borrows: the event is read while the rest of the state changes.
        let event = &self.events[idx];
        let listening = self.latest_action_name() == Some(ACTION_LISTEN);
        match &event.kind {
            EventKind::User(u) => {
                self.latest_message = LatestMessage {
                    parse_data: u.parse_data.clone(),
                    entities: u.entities().to_vec(),
                    use_text_for_featurization: None,
                };
                self.followup_action = None;
            }
            EventKind::UserFeaturization {
                use_text_for_featurization,
            } => {
                if listening {
                    self.latest_message.use_text_for_featurization =
                        Some(is_truthy(use_text_for_featurization));
                }
            }
            EventKind::EntitiesAdded { entities } => {
                if listening {
                    for e in entities {
                        if !self.latest_message.entities.contains(e) {
                            self.latest_message.entities.push(e.clone());
                        }
                    }
                }
            }
            EventKind::Slot { name, value } => {
                if let Some(i) = self.slot_defs.iter().position(|s| &s.name == name) {
                    self.slot_values[i] = self.slot_defs[i].coerce(value.clone());
                }
            }
            EventKind::Restart => {
                self.reset();
                self.followup_action = Some(ACTION_SESSION_START.to_owned());
            }
            EventKind::Rewind | EventKind::Undo => self.replay(),
            EventKind::ResetSlots => self.reset_slots(),
            EventKind::Pause => self.paused = true,
            EventKind::Resume => self.paused = false,
            EventKind::SessionStarted => self.reset(),
            EventKind::Followup { name } => self.followup_action = name.clone(),
            EventKind::Action(a) => {
                self.latest_action = match (&a.name, &a.action_text) {
                    (Some(n), _) if !n.is_empty() => LatestAction::Name(n.clone()),
                    (_, Some(t)) => LatestAction::Text(t.clone()),
                    (Some(n), None) => LatestAction::Name(n.clone()),
                    (None, None) => LatestAction::None,
                };
                if let Some(active) = self.active_loop.as_mut() {
                    active.is_interrupted = false;
                    if a.name.as_deref() == Some(active.name.as_str()) {
                        active.rejected = false;
                    }
                }
                self.followup_action = None;
            }
            EventKind::ActiveLoop { name } => {
                self.active_loop = name.as_ref().map(|n| ActiveLoop {
                    name: n.clone(),
                    is_interrupted: false,
                    rejected: false,
                    trigger_message: Value::Object(self.latest_message.parse_data.clone()),
                });
            }
            EventKind::LoopInterrupted { is_interrupted } => {
                if let Some(active) = self.active_loop.as_mut() {
                    active.is_interrupted = *is_interrupted;
                }
            }
            EventKind::ActionExecutionRejected { name, .. } => {
                if let Some(active) = self.active_loop.as_mut() {
                    if name.as_deref() == Some(active.name.as_str()) {
                        active.rejected = true;
                    }
                }
            }
            EventKind::Bot { .. }
            | EventKind::Reminder(_)
            | EventKind::CancelReminder { .. }
            | EventKind::Export { .. }
            | EventKind::Agent { .. } => {}
        }
    }

    /// The events that build the current state (Rasa's `applied_events()`).
    pub fn applied_events(&self) -> Vec<&Event> {
        applied_event_indices(&self.events)
            .into_iter()
            .map(|i| &self.events[i])
            .collect()
    }

    /// The events after the most recent `restart`.
    pub fn events_after_restart(&self) -> &[Event] {
        let start = self
            .events
            .iter()
            .rposition(|e| matches!(e.kind, EventKind::Restart))
            .map(|i| i + 1)
            .unwrap_or(0);
        &self.events[start..]
    }

    /// A tracker with the events up to (and including) time `until`, applied in order
    /// (Rasa's `travel_back_in_time`).
    pub fn travel_back_in_time(&self, until: f64) -> DialogueStateTracker {
        let events = self
            .events
            .iter()
            .take_while(|e| e.timestamp <= until)
            .cloned()
            .collect();
        DialogueStateTracker::from_events(&self.sender_id, self.slot_defs.clone(), events)
    }

    /// The tracker JSON (`current_state`), serialised lazily.
    pub fn current_state(&self, verbosity: EventVerbosity) -> CurrentState<'_> {
        CurrentState {
            tracker: self,
            verbosity,
        }
    }

    /// `{slot name: value}` for every slot of the domain.
    pub fn slots_json(&self) -> Value {
        let mut m = JsonMap::new();
        for (def, value) in self.slot_defs.iter().zip(&self.slot_values) {
            m.insert(def.name.clone(), value.clone());
        }
        Value::Object(m)
    }

    /// The `active_loop` JSON: `{}` when no loop is active.
    pub fn active_loop_json(&self) -> Value {
        match &self.active_loop {
            None => json!({}),
            Some(l) => json!({
                "name": l.name,
                "is_interrupted": l.is_interrupted,
                "rejected": l.rejected,
                "trigger_message": l.trigger_message,
            }),
        }
    }

    /// The `latest_action` JSON: `{}` when there is none.
    pub fn latest_action_json(&self) -> Value {
        match &self.latest_action {
            LatestAction::None => json!({}),
            LatestAction::Name(n) => json!({ "action_name": n }),
            LatestAction::Text(t) => json!({ "action_text": t }),
        }
    }
}

/// Indices of Rasa's `applied_events()`: everything since the latest `restart` or
/// `session_started`, minus what `undo`/`rewind` reverted, minus the intermediate turns
/// of a loop on its happy path.
pub fn applied_event_indices(events: &[Event]) -> Vec<usize> {
    let loop_names: HashSet<&str> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ActiveLoop { name: Some(n) } => Some(n.as_str()),
            _ => None,
        })
        .collect();
    let is_action = |i: &usize| matches!(events[*i].kind, EventKind::Action(_));
    let is_user = |i: &usize| matches!(events[*i].kind, EventKind::User(_));
    let mut applied: Vec<usize> = Vec::new();
    let undo_till = |applied: &mut Vec<usize>, pred: &dyn Fn(&usize) -> bool| {
        while let Some(i) = applied.pop() {
            if pred(&i) {
                break;
            }
        }
    };
    for (i, e) in events.iter().enumerate() {
        match &e.kind {
            EventKind::Restart | EventKind::SessionStarted => applied.clear(),
            EventKind::Undo => undo_till(&mut applied, &is_action),
            EventKind::Rewind => {
                undo_till(&mut applied, &is_user);
                undo_till(&mut applied, &is_action);
            }
            EventKind::Action(a)
                if a.name.as_deref().is_some_and(|n| loop_names.contains(n))
                    && !first_loop_execution_or_unhappy_path(
                        events,
                        &applied,
                        a.name.as_deref().unwrap_or_default(),
                    ) =>
            {
                let loop_name = a.name.as_deref().unwrap_or_default();
                undo_till_previous_loop_execution(events, &mut applied, loop_name);
            }
            _ => applied.push(i),
        }
    }
    applied
}

fn first_loop_execution_or_unhappy_path(
    events: &[Event],
    applied: &[usize],
    loop_name: &str,
) -> bool {
    let mut next_action: Option<&str> = None;
    for &i in applied.iter().rev() {
        match &events[i].kind {
            EventKind::ActiveLoop { name: None } => return true,
            EventKind::ActionExecutionRejected { name, .. }
                if name.as_deref() == Some(loop_name) =>
            {
                return true
            }
            EventKind::User(_) if next_action.is_some_and(|n| n != loop_name) => return true,
            EventKind::Action(a) => {
                if a.name.as_deref() == Some(loop_name) {
                    return false;
                }
                // Rasa remembers the action name, which is None for end-to-end text.
                next_action = a.name.as_deref();
            }
            _ => {}
        }
    }
    true
}

fn undo_till_previous_loop_execution(events: &[Event], applied: &mut Vec<usize>, loop_name: &str) {
    let mut offset = 0;
    let snapshot: Vec<usize> = applied.clone();
    for &i in snapshot.iter().rev() {
        match &events[i].kind {
            EventKind::Action(a) if a.name.as_deref() == Some(loop_name) => break,
            EventKind::Action(_) | EventKind::User(_) | EventKind::UserFeaturization { .. } => {
                let at = applied.len() - 1 - offset;
                applied.remove(at);
            }
            _ => offset += 1,
        }
    }
}

/// A view of a tracker that serialises as Rasa's `current_state` JSON.
pub struct CurrentState<'a> {
    tracker: &'a DialogueStateTracker,
    verbosity: EventVerbosity,
}

struct EventList<'a>(Vec<&'a Event>);

impl Serialize for EventList<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for e in &self.0 {
            seq.serialize_element(e)?;
        }
        seq.end()
    }
}

impl Serialize for CurrentState<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.tracker;
        let mut m = s.serialize_map(Some(11))?;
        m.serialize_entry("sender_id", &t.sender_id)?;
        m.serialize_entry("slots", &t.slots_json())?;
        m.serialize_entry("latest_message", &t.latest_message.to_json())?;
        m.serialize_entry("latest_event_time", &t.latest_event_time())?;
        m.serialize_entry("followup_action", &t.followup_action)?;
        m.serialize_entry("paused", &t.paused)?;
        match self.verbosity {
            EventVerbosity::None => m.serialize_entry("events", &Value::Null)?,
            EventVerbosity::All => {
                m.serialize_entry("events", &EventList(t.events.iter().collect()))?
            }
            EventVerbosity::AfterRestart => m.serialize_entry(
                "events",
                &EventList(t.events_after_restart().iter().collect()),
            )?,
            EventVerbosity::Applied => {
                m.serialize_entry("events", &EventList(t.applied_events()))?
            }
        }
        m.serialize_entry("latest_input_channel", &t.latest_input_channel)?;
        m.serialize_entry("active_loop", &t.active_loop_json())?;
        m.serialize_entry("latest_action", &t.latest_action_json())?;
        m.serialize_entry("latest_action_name", &t.latest_action_name())?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slots::SlotType;
    use serde_json::json;

    fn slots() -> Arc<Vec<Slot>> {
        Arc::new(vec![
            Slot::builtin("name", SlotType::Text),
            Slot::builtin("items", SlotType::List),
        ])
    }

    fn ev(v: Value) -> Event {
        Event::from_json(&v).unwrap().unwrap()
    }

    fn user(intent: &str) -> Event {
        ev(json!({"event": "user", "text": format!("/{intent}"),
            "parse_data": {"intent": {"name": intent}, "entities": []}}))
    }

    fn action(name: &str) -> Event {
        ev(json!({"event": "action", "name": name}))
    }

    fn names(events: &[&Event]) -> Vec<String> {
        events
            .iter()
            .map(|e| match &e.kind {
                EventKind::Action(a) => format!("action:{}", a.name.clone().unwrap_or_default()),
                EventKind::User(u) => format!("user:{}", u.intent_name().unwrap_or_default()),
                _ => e.type_name().to_owned(),
            })
            .collect()
    }

    #[test]
    fn new_tracker_state() {
        let t = DialogueStateTracker::new("a", slots());
        let v = serde_json::to_value(t.current_state(EventVerbosity::All)).unwrap();
        assert_eq!(v["followup_action"], "action_listen");
        assert_eq!(
            v["latest_message"],
            json!({"intent": {}, "entities": [], "text": null, "message_id": null, "metadata": {}})
        );
        assert_eq!(v["latest_action"], json!({}));
        assert_eq!(v["active_loop"], json!({}));
        assert_eq!(v["events"], json!([]));
        assert_eq!(v["slots"], json!({"name": null, "items": null}));
    }

    #[test]
    fn rewind_drops_the_user_message_and_listen() {
        let t = DialogueStateTracker::from_events(
            "a",
            slots(),
            vec![
                action("action_listen"),
                user("greet"),
                action("utter_greet"),
                action("action_listen"),
                user("gibberish"),
                action("action_default_fallback"),
                ev(json!({"event": "rewind"})),
            ],
        );
        assert_eq!(
            names(&t.applied_events()),
            ["action:action_listen", "user:greet", "action:utter_greet"]
        );
        assert_eq!(t.latest_message().intent_name(), Some("greet"));
        assert_eq!(t.latest_action_name(), Some("utter_greet"));
    }

    #[test]
    fn undo_drops_the_last_action_and_its_events() {
        let t = DialogueStateTracker::from_events(
            "a",
            slots(),
            vec![
                action("utter_a"),
                action("action_custom"),
                ev(json!({"event": "slot", "name": "name", "value": "x"})),
                ev(json!({"event": "undo"})),
            ],
        );
        // undo pops back to and including the most recent action: the slot goes too.
        assert_eq!(names(&t.applied_events()), ["action:utter_a"]);
        assert_eq!(t.slot_value("name"), Some(&Value::Null));
    }

    #[test]
    fn restart_followup_differs_between_live_and_recreated() {
        let events = vec![
            ev(json!({"event": "slot", "name": "name", "value": "x"})),
            ev(json!({"event": "restart"})),
            ev(json!({"event": "slot", "name": "items", "value": "y"})),
        ];
        let live = DialogueStateTracker::from_events("a", slots(), events.clone());
        let stored = DialogueStateTracker::recreate("a", slots(), events);
        assert_eq!(live.followup_action(), Some("action_session_start"));
        assert_eq!(stored.followup_action(), Some("action_listen"));
        assert_eq!(live.slot_value("items"), Some(&json!(["y"])));
        assert_eq!(stored.slot_value("name"), Some(&Value::Null));
    }

    #[test]
    fn happy_loop_turns_collapse() {
        let events = vec![
            user("request"),
            action("form"),
            ev(json!({"event": "active_loop", "name": "form"})),
            ev(json!({"event": "slot", "name": "name", "value": "a"})),
            action("action_listen"),
            user("inform"),
            ev(json!({"event": "user_featurization", "use_text_for_featurization": false})),
            action("form"),
        ];
        let t = DialogueStateTracker::from_events("a", slots(), events);
        assert_eq!(
            names(&t.applied_events()),
            ["user:request", "action:form", "active_loop", "slot"]
        );
    }

    #[test]
    fn rejection_keeps_loop_turns() {
        let events = vec![
            action("form"),
            ev(json!({"event": "active_loop", "name": "form"})),
            action("action_listen"),
            user("chitchat"),
            ev(json!({"event": "action_execution_rejected", "name": "form"})),
            action("utter_chitchat"),
            action("form"),
        ];
        let t = DialogueStateTracker::from_events("a", slots(), events);
        assert_eq!(t.applied_events().len(), 7);
    }

    #[test]
    fn pause_resume_and_followup() {
        let mut t = DialogueStateTracker::new("a", slots());
        t.update(ev(json!({"event": "pause"})));
        assert!(t.is_paused());
        t.update(ev(json!({"event": "resume"})));
        t.update(ev(json!({"event": "followup", "name": "action_x"})));
        assert!(!t.is_paused());
        assert_eq!(t.followup_action(), Some("action_x"));
        t.update(user("greet"));
        assert_eq!(t.followup_action(), None);
    }

    #[test]
    fn entities_event_extends_latest_message_after_listen() {
        let mut t = DialogueStateTracker::new("a", slots());
        t.update(action("action_listen"));
        t.update(user("greet"));
        t.update(ev(
            json!({"event": "entities", "entities": [{"entity": "e", "value": 1}]}),
        ));
        assert_eq!(t.latest_message().entities.len(), 1);
        let v = serde_json::to_value(t.current_state(EventVerbosity::None)).unwrap();
        assert_eq!(v["latest_message"]["entities"][0]["entity"], "e");
        assert_eq!(v["events"], Value::Null);
    }

    #[test]
    fn verbosity_views() {
        let t = DialogueStateTracker::from_events(
            "a",
            slots(),
            vec![
                action("action_session_start"),
                ev(json!({"event": "session_started"})),
                action("action_listen"),
                ev(json!({"event": "restart"})),
                action("action_listen"),
                ev(json!({"event": "session_started"})),
                action("utter_x"),
            ],
        );
        assert_eq!(t.events_after_restart().len(), 3);
        assert_eq!(names(&t.applied_events()), ["action:utter_x"]);
    }
}
