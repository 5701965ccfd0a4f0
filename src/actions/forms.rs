//! Forms: Rasa's `FormAction`, the loop that asks for the slots a form requires.
//!
//! A form runs as Rasa 3.6's `LoopAction`: activate it if it is not the active loop
//! (logging `active_loop`, filling slots with `action_extract_slots` and validating the
//! required slots that already have values), then — unless it is done — validate what
//! the user just said and ask for the next empty required slot, and deactivate it
//! (`active_loop: null`) once nothing is left to ask.
//!
//! Slots are filled by `action_extract_slots` after each user message; the form only
//! sends them to the action server's `validate_<form>` action when the domain lists one
//! (rasa_sdk's `FormValidationAction`) and logs what that action answers. Asking runs the first of `action_ask_<form>_<slot>`, `utter_ask_<form>_<slot>`,
//! `action_ask_<slot>`, `utter_ask_<slot>` that the domain has. When the form was
//! expecting a slot and the user's message filled none, the form rejects itself
//! (`action_execution_rejected`) so that the policies can answer the message instead.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{extract_slots, resolve, utter, ActionKind, ActionOutcome};
use crate::agent::Agent;
use crate::events::{is_truthy, Event, EventKind, JsonMap, ACTION_LISTEN};
use crate::slots::REQUESTED_SLOT;
use crate::tracker::DialogueStateTracker;

/// Why a form stopped before it produced its events.
#[derive(Debug)]
enum Abort {
    /// The form (or its validation action) rejected the execution.
    Rejected,
    /// An action the form runs failed.
    Failed(String),
}

type FormResult = Result<Vec<Event>, Abort>;

/// The slots a form requires, in the domain's order.
pub fn required_slots(agent: &Agent, form: &str) -> Vec<String> {
    let Some(spec) = agent.domain.forms.get(form) else {
        return Vec::new();
    };
    match spec.get("required_slots") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        // Rasa 2.x wrote required slots as a map of slot to mappings.
        Some(Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// Whether a `from_entity` mapping fills exactly one of the form's required slots (an
/// entity with a role, say, rather than one that several slots take).
pub fn entity_mapping_is_unique(agent: &Agent, form: &str, mapping: &Value) -> bool {
    let key = canonical(mapping);
    let mut count = 0;
    for slot in required_slots(agent, form) {
        if let Some(def) = agent.domain.slot(&slot) {
            count += def
                .mappings
                .iter()
                .filter(|m| {
                    m.get("type").and_then(Value::as_str) == Some("from_entity")
                        && canonical(m) == key
                })
                .count();
        }
    }
    count == 1
}

/// Runs form `form` on `tracker` (the conversation with the prediction's events).
pub async fn run(
    agent: &Agent,
    tracker: &DialogueStateTracker,
    form: &str,
    channel: Option<&str>,
) -> ActionOutcome {
    let form = Form {
        agent,
        name: form,
        channel,
    };
    match form.run(tracker).await {
        Ok(events) => ActionOutcome::Events(events),
        Err(Abort::Rejected) => ActionOutcome::Rejected,
        Err(Abort::Failed(why)) => ActionOutcome::Failed(why),
    }
}

struct Form<'a> {
    agent: &'a Agent,
    name: &'a str,
    channel: Option<&'a str>,
}

fn slot_event(name: &str, value: Value) -> Event {
    Event::new(EventKind::Slot {
        name: name.to_owned(),
        value,
    })
}

fn slot_names(events: &[Event]) -> BTreeSet<&str> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Slot { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect()
}

fn is_rejection(e: &Event) -> bool {
    matches!(e.kind, EventKind::ActionExecutionRejected { .. })
}

/// JSON with object keys sorted, as Python's `json.dumps(..., sort_keys=True)` compares.
fn canonical(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let mut out = serde_json::Map::new();
                for k in keys {
                    out.insert(k.clone(), sorted(&m[k]));
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(v).to_string()
}

impl Form<'_> {
    /// `LoopAction.run`.
    async fn run(&self, tracker: &DialogueStateTracker) -> FormResult {
        let mut events = Vec::new();
        let activated = tracker.active_loop().is_some_and(|l| l.name == self.name);
        if !activated {
            let activation = Event::new(EventKind::ActiveLoop {
                name: Some(self.name.to_owned()),
            });
            let mut temp = tracker.clone();
            temp.update(activation.clone());
            events.push(activation);
            events.extend(self.activate(&mut temp).await?);
        }
        if !is_done(&events) {
            let more = self.do_form(tracker, &events).await?;
            events.extend(more);
        }
        if is_done(&events) {
            events.push(Event::new(EventKind::ActiveLoop { name: None }));
        }
        Ok(events)
    }

    /// Fills slots at activation (`action_extract_slots` again, now that the form is
    /// active, e.g. for `from_trigger_intent`), then validates the required slots that
    /// already have values.
    async fn activate(&self, tracker: &mut DialogueStateTracker) -> FormResult {
        let extracted: Vec<Event> = extract_slots::run(self.agent, tracker, self.channel)
            .await
            .into_iter()
            .filter(|e| matches!(e.kind, EventKind::Slot { .. }))
            .collect();
        for e in &extracted {
            tracker.update(e.clone());
        }
        let prefilled: Vec<(String, Value)> = required_slots(self.agent, self.name)
            .into_iter()
            .filter_map(|s| {
                let v = tracker.slot_value(&s).filter(|v| !v.is_null())?.clone();
                Some((s, v))
            })
            .collect();
        if !self.has_validation_action() {
            return Ok(extracted);
        }
        let validated = self.validate_slots(prefilled, tracker).await?;
        let names: BTreeSet<String> = slot_names(&validated)
            .into_iter()
            .map(str::to_owned)
            .collect();
        let mut out = validated;
        out.extend(
            extracted.into_iter().filter(
                |e| !matches!(&e.kind, EventKind::Slot { name, .. } if names.contains(name)),
            ),
        );
        Ok(out)
    }

    /// Validates the user's input (unless activation already validated slots) and asks
    /// for the next slot.
    async fn do_form(&self, tracker: &DialogueStateTracker, events_so_far: &[Event]) -> FormResult {
        let validated_at_activation = events_so_far
            .iter()
            .any(|e| !matches!(e.kind, EventKind::ActiveLoop { .. }));
        let mut events = if validated_at_activation {
            Vec::new()
        } else {
            self.validate_if_required(tracker).await?
        };
        if !events.iter().any(is_rejection) {
            let mut so_far = events_so_far.to_vec();
            so_far.extend(events.iter().cloned());
            events.extend(self.request_next_slot(tracker, &so_far).await?);
        }
        Ok(events)
    }

    /// Validates the user's input when the form runs right after it (and was not
    /// interrupted); on the way back from an unhappy path only asks again.
    async fn validate_if_required(&self, tracker: &DialogueStateTracker) -> FormResult {
        let needs_validation = match tracker.active_loop() {
            None => true,
            Some(l) => tracker.latest_action_name() == Some(ACTION_LISTEN) && !l.is_interrupted,
        };
        if needs_validation {
            self.validate(tracker).await
        } else {
            self.validate_slots(Vec::new(), tracker).await
        }
    }

    /// The slot this form asked for, if it is the active loop.
    fn slot_to_fill(&self, tracker: &DialogueStateTracker) -> Option<Value> {
        if tracker.active_loop().map(|l| l.name.as_str()) == Some(self.name) {
            tracker.slot_value(REQUESTED_SLOT).cloned()
        } else {
            None
        }
        .filter(|v| !v.is_null())
    }

    /// The slots set since the latest user message (or restart) that this form cares
    /// about: its required slots and the requested one.
    fn slot_extractions(&self, tracker: &DialogueStateTracker) -> Vec<(String, Value)> {
        let events = tracker.events();
        let start = events
            .iter()
            .rposition(|e| matches!(e.kind, EventKind::User(_) | EventKind::Restart))
            .unwrap_or(events.len().saturating_sub(1));
        let mut required: BTreeSet<String> =
            required_slots(self.agent, self.name).into_iter().collect();
        if let Some(Value::String(s)) = self.slot_to_fill(tracker) {
            required.insert(s);
        }
        let mut values: Vec<(String, Value)> = Vec::new();
        for e in &events[start..] {
            let EventKind::Slot { name, value } = &e.kind else {
                continue;
            };
            if !required.contains(name) {
                continue;
            }
            match values.iter_mut().find(|(k, _)| k == name) {
                Some(slot) => slot.1 = value.clone(),
                None => values.push((name.clone(), value.clone())),
            }
        }
        values
    }

    /// `FormAction.validate`: validates what the user said, rejecting the form when it
    /// asked for a slot and the message filled none.
    async fn validate(&self, tracker: &DialogueStateTracker) -> FormResult {
        let candidates = self.slot_extractions(tracker);
        let nothing_extracted = candidates.is_empty();
        let events = self.validate_slots(candidates, tracker).await?;
        let some_validated = events
            .iter()
            .any(|e| matches!(&e.kind, EventKind::Slot { name, .. } if name != REQUESTED_SLOT));
        if self.slot_to_fill(tracker).is_some()
            && nothing_extracted
            && !some_validated
            && !events.iter().any(is_rejection)
        {
            tracing::debug!(
                form = self.name,
                "nothing was extracted for the requested slot"
            );
            return Err(Abort::Rejected);
        }
        Ok(events)
    }

    fn has_validation_action(&self) -> bool {
        super::is_known_action(self.agent, &format!("validate_{}", self.name))
    }

    /// Sends slot candidates to `validate_<form>` and returns what it answers; without
    /// such an action there is nothing to add (the slots are already set).
    async fn validate_slots(
        &self,
        candidates: Vec<(String, Value)>,
        tracker: &DialogueStateTracker,
    ) -> FormResult {
        if !self.has_validation_action() {
            return Ok(Vec::new());
        }
        let events: Vec<Event> = candidates
            .into_iter()
            .map(|(k, v)| slot_event(&k, v))
            .collect();
        let temp = self.temporary_tracker(tracker, &events);
        self.run_action(&format!("validate_{}", self.name), &temp)
            .await
    }

    /// The tracker the form's own actions see: the conversation since the latest
    /// restart, the form's requested slot, the form's `action` event, and `extra`.
    fn temporary_tracker(
        &self,
        tracker: &DialogueStateTracker,
        extra: &[Event],
    ) -> DialogueStateTracker {
        let mut events: Vec<Event> = tracker.events_after_restart().to_vec();
        events.push(slot_event(
            REQUESTED_SLOT,
            self.slot_to_fill(tracker).unwrap_or(Value::Null),
        ));
        events.push(Event::action(self.name, None, None));
        events.extend(extra.iter().cloned());
        DialogueStateTracker::from_events(tracker.sender_id(), tracker.slot_defs().clone(), events)
    }

    async fn request_next_slot(
        &self,
        tracker: &DialogueStateTracker,
        events_so_far: &[Event],
    ) -> FormResult {
        if is_done(events_so_far) {
            // The validation action stopped the form early.
            return Ok(vec![slot_event(REQUESTED_SLOT, Value::Null)]);
        }
        let mut slot_to_request = events_so_far
            .iter()
            .find_map(|e| match &e.kind {
                EventKind::Slot { name, value } if name == REQUESTED_SLOT => Some(value.clone()),
                _ => None,
            })
            .filter(is_truthy);
        let temp = self.temporary_tracker(tracker, events_so_far);
        let mut events = Vec::new();
        if slot_to_request.is_none() {
            let next = required_slots(self.agent, self.name)
                .into_iter()
                .find(|s| temp.slot_value(s).is_none_or(Value::is_null));
            let value = next.clone().map(Value::String).unwrap_or(Value::Null);
            events.push(slot_event(REQUESTED_SLOT, value));
            slot_to_request = next.map(Value::String);
        }
        match slot_to_request {
            Some(slot) => {
                let slot = match &slot {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                events.extend(self.ask_for_slot(&slot, &temp).await?);
                Ok(events)
            }
            None => Ok(vec![slot_event(REQUESTED_SLOT, Value::Null)]),
        }
    }

    async fn ask_for_slot(&self, slot: &str, tracker: &DialogueStateTracker) -> FormResult {
        let form = self.name;
        let candidates = [
            format!("action_ask_{form}_{slot}"),
            format!("utter_ask_{form}_{slot}"),
            format!("action_ask_{slot}"),
            format!("utter_ask_{slot}"),
        ];
        let Some(ask) = candidates
            .iter()
            .find(|a| super::is_known_action(self.agent, a))
        else {
            tracing::debug!(form, slot, "no action asks for the slot");
            return Ok(Vec::new());
        };
        self.run_action(ask, tracker).await
    }

    /// Runs a response or custom action on behalf of the form.
    async fn run_action(&self, name: &str, tracker: &DialogueStateTracker) -> FormResult {
        match resolve(self.agent, name) {
            Some(ActionKind::Response(r)) => {
                Ok(
                    utter(self.agent, tracker, &r, self.channel, &JsonMap::new())
                        .into_iter()
                        .collect(),
                )
            }
            Some(ActionKind::RetrieveResponse(r)) => {
                match super::retrieve_response(self.agent, tracker, &r, self.channel) {
                    ActionOutcome::Events(events) => Ok(events),
                    ActionOutcome::Rejected => Err(Abort::Rejected),
                    ActionOutcome::Failed(why) => Err(Abort::Failed(why)),
                }
            }
            Some(ActionKind::Remote(r)) => {
                let outcome = self
                    .agent
                    .executor
                    .run(
                        self.agent,
                        tracker,
                        &r,
                        self.agent.domain_json.clone(),
                        self.channel,
                    )
                    .await;
                match outcome {
                    ActionOutcome::Events(events) => Ok(events),
                    ActionOutcome::Rejected => Err(Abort::Rejected),
                    ActionOutcome::Failed(why) => Err(Abort::Failed(why)),
                }
            }
            _ => Err(Abort::Failed(format!(
                "form '{}' cannot run '{name}': it is not a response or a custom action",
                self.name
            ))),
        }
    }
}

/// `LoopAction.is_done`: not rejected, and the last `requested_slot` event sets it to
/// null or the last `active_loop` event deactivates the loop.
fn is_done(events: &[Event]) -> bool {
    if events.iter().any(is_rejection) {
        return false;
    }
    let last_requested = events.iter().rev().find_map(|e| match &e.kind {
        EventKind::Slot { name, value } if name == REQUESTED_SLOT => Some(value),
        _ => None,
    });
    let last_loop = events.iter().rev().find_map(|e| match &e.kind {
        EventKind::ActiveLoop { name } => Some(name),
        _ => None,
    });
    last_requested.is_some_and(Value::is_null) || last_loop.is_some_and(Option::is_none)
}
