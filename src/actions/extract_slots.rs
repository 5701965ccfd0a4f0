//! `action_extract_slots`: fill slots from the latest user message through the slot
//! `mappings` of the domain, after every user message, as Rasa 3.x does.
//!
//! Mapping types: `from_entity` (with `role`/`group`), `from_text`, `from_intent`,
//! `from_trigger_intent`, each filtered by `intent`/`not_intent` and `conditions`
//! (`active_loop`, `requested_slot`). `custom` mappings are filled by custom actions.

use serde_json::Value;

use super::{forms, ActionOutcome};
use crate::agent::Agent;
use crate::events::{Event, EventKind};
use crate::slots::{SlotType, REQUESTED_SLOT, SESSION_STARTED_METADATA};
use crate::tracker::DialogueStateTracker;

/// The custom action that validates the slots `action_extract_slots` filled.
pub const VALIDATE_SLOT_MAPPINGS: &str = "action_validate_slot_mappings";

fn str_list(v: Option<&Value>) -> Vec<&str> {
    match v {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn form_ignored_intents<'a>(agent: &'a Agent, loop_name: &str) -> Vec<&'a str> {
    str_list(
        agent
            .domain
            .forms
            .get(loop_name)
            .and_then(|f| f.get("ignored_intents")),
    )
}

/// Whether the mapping's `intent` / `not_intent` filters allow the latest intent.
fn intent_allowed(agent: &Agent, tracker: &DialogueStateTracker, mapping: &Value) -> bool {
    let intent = tracker.latest_message().intent_name().unwrap_or_default();
    let wanted = str_list(mapping.get("intent"));
    let mut excluded = str_list(mapping.get("not_intent"));
    if let Some(active) = tracker.active_loop() {
        let conditions = mapping.get("conditions").and_then(Value::as_array);
        let applies = conditions.is_none_or(|cs| {
            cs.is_empty()
                || cs.iter().any(|c| {
                    c.get("active_loop").and_then(Value::as_str) == Some(active.name.as_str())
                })
        });
        if applies {
            excluded.extend(form_ignored_intents(agent, &active.name));
        }
    }
    (wanted.is_empty() && !excluded.contains(&intent)) || wanted.contains(&intent)
}

/// Whether the mapping's `conditions` hold.
fn conditions_hold(tracker: &DialogueStateTracker, slot: &str, mapping: &Value) -> bool {
    let Some(conditions) = mapping.get("conditions").and_then(Value::as_array) else {
        return true;
    };
    if conditions.is_empty() {
        return true;
    }
    let active = tracker.active_loop();
    let requested = tracker
        .slot_value(REQUESTED_SLOT)
        .and_then(Value::as_str)
        .map(str::to_owned);
    if active.is_some_and(|l| l.rejected) && requested.as_deref() == Some(slot) {
        return false;
    }
    conditions.iter().any(|c| {
        let loop_cond = c.get("active_loop");
        match (loop_cond, active) {
            (Some(Value::String(name)), Some(l)) if *name == l.name => {
                match c.get("requested_slot") {
                    None | Some(Value::Null) => true,
                    Some(Value::String(r)) => requested.as_deref() == Some(r.as_str()),
                    _ => false,
                }
            }
            (None | Some(Value::Null), None) => true,
            _ => false,
        }
    })
}

fn entity_matches(e: &Value, mapping: &Value) -> bool {
    let field = |v: &Value, k: &str| v.get(k).filter(|x| !x.is_null()).cloned();
    e.get("entity") == mapping.get("entity")
        && field(e, "role") == field(mapping, "role")
        && field(e, "group") == field(mapping, "group")
}

/// The value a mapping gives, if it applies: `Some(None)` means "applies, no value".
fn candidate(
    tracker: &DialogueStateTracker,
    slot_type: &SlotType,
    mapping: &Value,
) -> Option<Value> {
    let kind = mapping
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match kind {
        "from_entity" => {
            let values: Vec<Value> = tracker
                .latest_message()
                .entities
                .iter()
                .filter(|e| entity_matches(e, mapping))
                .filter_map(|e| e.get("value").cloned())
                .collect();
            if values.is_empty() {
                None
            } else if matches!(slot_type, SlotType::List) {
                Some(Value::Array(values))
            } else {
                values.last().cloned()
            }
        }
        "from_text" => Some(
            tracker
                .latest_message()
                .parse_data
                .get("text")
                .cloned()
                .unwrap_or(Value::Null),
        ),
        "from_intent" => Some(mapping.get("value").cloned().unwrap_or(Value::Null)),
        "from_trigger_intent" => {
            let active = tracker.active_loop()?;
            let loops: Vec<&str> = mapping
                .get("conditions")
                .and_then(Value::as_array)
                .map(|cs| {
                    cs.iter()
                        .filter_map(|c| c.get("active_loop").and_then(Value::as_str))
                        .collect()
                })
                .unwrap_or_default();
            if !loops.is_empty() && !loops.contains(&active.name.as_str()) {
                return None;
            }
            Some(mapping.get("value").cloned().unwrap_or(Value::Null))
        }
        _ => None,
    }
}

/// Whether a `from_entity` mapping must be skipped because a form is active, the slot
/// is one of its required slots but not the requested one, and other required slots
/// take the same entity (Rasa's unique entity mapping check).
fn fails_unique_entity_check(
    agent: &Agent,
    tracker: &DialogueStateTracker,
    slot: &str,
    mapping: &Value,
) -> bool {
    if mapping.get("type").and_then(Value::as_str) != Some("from_entity") {
        return false;
    }
    let Some(form) = tracker.active_loop().map(|l| l.name.as_str()) else {
        return false;
    };
    if tracker.slot_value(REQUESTED_SLOT).and_then(Value::as_str) == Some(slot) {
        return false;
    }
    if !forms::required_slots(agent, form).iter().any(|s| s == slot) {
        return false;
    }
    !forms::entity_mapping_is_unique(agent, form, mapping)
}

/// Whether a `from_intent` mapping names only intents the domain has.
fn mapping_is_valid(agent: &Agent, kind: &str, mapping: &Value) -> bool {
    match kind {
        "from_entity" => mapping
            .get("entity")
            .and_then(Value::as_str)
            .is_some_and(|e| agent.domain.entities.iter().any(|d| d == e)),
        "from_intent" => str_list(mapping.get("intent"))
            .iter()
            .all(|i| i.is_empty() || agent.domain.intent_exists(i.split('/').next().unwrap_or(i))),
        _ => true,
    }
}

/// Runs a custom action for `action_extract_slots`, keeping only its `slot` and `bot`
/// events; a failure is logged and fills nothing, as in Rasa.
async fn run_custom(
    agent: &Agent,
    tracker: &DialogueStateTracker,
    name: &str,
    channel: Option<&str>,
) -> Vec<Event> {
    let outcome = agent
        .executor
        .run(agent, tracker, name, agent.domain_json.clone(), channel)
        .await;
    match outcome {
        ActionOutcome::Events(events) => events
            .into_iter()
            .filter(|e| {
                let kept = matches!(e.kind, EventKind::Slot { .. } | EventKind::Bot { .. });
                if !kept {
                    tracing::info!(
                        action = name,
                        event = e.type_name(),
                        "action_extract_slots ignores this event of a custom slot mapping action"
                    );
                }
                kept
            })
            .collect(),
        ActionOutcome::Rejected => {
            tracing::warn!(
                action = name,
                "a custom slot mapping action rejected itself; no slots filled"
            );
            Vec::new()
        }
        ActionOutcome::Failed(why) => {
            tracing::warn!(
                action = name,
                "a custom slot mapping action failed: {why}; no slots filled"
            );
            Vec::new()
        }
    }
}

/// One step of `action_extract_slots`: a slot filled by a built-in mapping, or a custom
/// mapping action to run.
#[derive(Debug, Clone)]
pub enum Step {
    /// A `slot` event from a built-in mapping.
    Slot(Box<Event>),
    /// A custom slot mapping action (each runs at most once per message).
    Custom(String),
}

/// The built-in part of `action_extract_slots`, in the domain's slot order: what the
/// mappings fill from the latest user message, and which custom actions to run.
pub fn plan(agent: &Agent, tracker: &DialogueStateTracker) -> Vec<Step> {
    let mut steps = Vec::new();
    for slot in agent.domain.slots.iter() {
        if slot.name == REQUESTED_SLOT || slot.name == SESSION_STARTED_METADATA {
            continue;
        }
        for mapping in &slot.mappings {
            let kind = mapping
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !mapping_is_valid(agent, kind, mapping)
                || !intent_allowed(agent, tracker, mapping)
                || (kind != "from_trigger_intent" && !conditions_hold(tracker, &slot.name, mapping))
                || fails_unique_entity_check(agent, tracker, &slot.name, mapping)
            {
                continue;
            }
            if let Some(value) = candidate(tracker, &slot.slot_type, mapping) {
                let current = tracker.slot_value(&slot.name).filter(|v| !v.is_null());
                if !value.is_null() || current.is_some() {
                    steps.push(Step::Slot(Box::new(Event::new(EventKind::Slot {
                        name: slot.name.clone(),
                        value,
                    }))));
                    break;
                }
            }
            if kind == "custom" {
                if let Some(action) = mapping.get("action").and_then(Value::as_str) {
                    let seen = steps
                        .iter()
                        .any(|s| matches!(s, Step::Custom(a) if a == action));
                    if !seen {
                        steps.push(Step::Custom(action.to_owned()));
                    }
                }
            }
        }
    }
    steps
}

/// Whether running the plan needs the action server (custom mapping actions or
/// `action_validate_slot_mappings`).
pub fn needs_action_server(agent: &Agent, steps: &[Step]) -> bool {
    steps.iter().any(|s| matches!(s, Step::Custom(_)))
        || agent
            .domain
            .actions
            .iter()
            .any(|a| a == VALIDATE_SLOT_MAPPINGS)
}

/// The events of a plan that needs no action server.
pub fn plain_events(steps: Vec<Step>) -> Vec<Event> {
    steps
        .into_iter()
        .filter_map(|s| match s {
            Step::Slot(e) => Some(*e),
            Step::Custom(_) => None,
        })
        .collect()
}

/// Runs the plan's custom actions and the validation: Rasa's `action_extract_slots`
/// events (`slot`, and `bot` from the custom actions).
pub async fn execute(
    agent: &Agent,
    tracker: &DialogueStateTracker,
    steps: Vec<Step>,
    channel: Option<&str>,
) -> Vec<Event> {
    let mut events = Vec::new();
    for step in steps {
        match step {
            Step::Slot(e) => events.push(*e),
            Step::Custom(action) => {
                events.extend(run_custom(agent, tracker, &action, channel).await)
            }
        }
    }
    validate(agent, tracker, events, channel).await
}

/// Rasa's `action_extract_slots` on `tracker`.
pub async fn run(
    agent: &Agent,
    tracker: &DialogueStateTracker,
    channel: Option<&str>,
) -> Vec<Event> {
    let steps = plan(agent, tracker);
    execute(agent, tracker, steps, channel).await
}

/// Sends the extracted slots to `action_validate_slot_mappings` if the domain lists it;
/// slots it does not answer for count as valid.
async fn validate(
    agent: &Agent,
    tracker: &DialogueStateTracker,
    extracted: Vec<Event>,
    channel: Option<&str>,
) -> Vec<Event> {
    let slot_events: Vec<Event> = extracted
        .into_iter()
        .filter(|e| matches!(e.kind, EventKind::Slot { .. }))
        .collect();
    if !agent
        .domain
        .actions
        .iter()
        .any(|a| a == VALIDATE_SLOT_MAPPINGS)
    {
        return slot_events;
    }
    let mut events: Vec<Event> = tracker.events_after_restart().to_vec();
    events.extend(slot_events.iter().cloned());
    let temp =
        DialogueStateTracker::from_events(tracker.sender_id(), tracker.slot_defs().clone(), events);
    let validated = run_custom(agent, &temp, VALIDATE_SLOT_MAPPINGS, channel).await;
    let names: Vec<&str> = validated
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Slot { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    let unanswered: Vec<Event> = slot_events
        .iter()
        .filter(
            |e| !matches!(&e.kind, EventKind::Slot { name, .. } if names.contains(&name.as_str())),
        )
        .cloned()
        .collect();
    let mut out = validated;
    out.extend(unanswered);
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::{json, Value};

    use super::{plain_events, plan};
    use crate::agent::Agent;
    use crate::events::{Event, EventKind};
    use crate::tracker::DialogueStateTracker;

    fn agent() -> Agent {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/forms_bot");
        Agent::load_project(&dir, None, None, &Value::Null).expect("the forms bot loads")
    }

    fn ev(v: Value) -> Event {
        Event::from_json(&v).unwrap().unwrap()
    }

    /// A tracker whose latest message is `inform` with `entities`, in `form` (asking
    /// for `requested`) if given.
    fn tracker(
        agent: &Agent,
        text: &str,
        entities: Value,
        form: Option<(&str, &str)>,
    ) -> DialogueStateTracker {
        let mut events = vec![ev(json!({"event": "action", "name": "action_listen"}))];
        if let Some((form, requested)) = form {
            events.push(ev(json!({"event": "active_loop", "name": form})));
            events.push(ev(
                json!({"event": "slot", "name": "requested_slot", "value": requested}),
            ));
            events.push(ev(json!({"event": "action", "name": "action_listen"})));
        }
        events.push(ev(json!({"event": "user", "text": text,
            "parse_data": {"intent": {"name": "inform", "confidence": 1.0}, "entities": entities, "text": text}})));
        DialogueStateTracker::from_events("t", agent.slots.clone(), events)
    }

    fn filled(agent: &Agent, t: &DialogueStateTracker) -> Vec<(String, Value)> {
        plain_events(plan(agent, t))
            .into_iter()
            .filter_map(|e| match e.kind {
                EventKind::Slot { name, value } => Some((name, value)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn entity_roles_pick_the_slot() {
        let a = agent();
        let t = tracker(
            &a,
            "from oslo to rome",
            json!([{"entity": "city", "value": "oslo", "role": "from", "start": 5, "end": 9},
                   {"entity": "city", "value": "rome", "role": "to", "start": 13, "end": 17}]),
            None,
        );
        assert_eq!(
            filled(&a, &t),
            [
                ("departure".to_owned(), json!("oslo")),
                ("destination".to_owned(), json!("rome"))
            ]
        );
    }

    #[test]
    fn a_shared_entity_mapping_fills_only_the_requested_slot_inside_the_form() {
        let a = agent();
        let entities = json!([{"entity": "city", "value": "paris", "start": 0, "end": 5}]);
        // Outside the form the role-less mapping of both slots applies.
        let t = tracker(&a, "paris", entities.clone(), None);
        assert_eq!(
            filled(&a, &t),
            [
                ("departure".to_owned(), json!("paris")),
                ("destination".to_owned(), json!("paris"))
            ]
        );
        // Inside the form only the requested slot takes it.
        let t = tracker(&a, "paris", entities, Some(("booking_form", "destination")));
        assert_eq!(filled(&a, &t), [("destination".to_owned(), json!("paris"))]);
    }

    #[test]
    fn from_text_follows_its_conditions() {
        let a = agent();
        let t = tracker(&a, "ada@example.com", json!([]), None);
        assert!(filled(&a, &t).is_empty());
        let t = tracker(
            &a,
            "ada@example.com",
            json!([]),
            Some(("booking_form", "guests")),
        );
        assert!(filled(&a, &t).is_empty());
        let t = tracker(
            &a,
            "ada@example.com",
            json!([]),
            Some(("booking_form", "email")),
        );
        assert_eq!(
            filled(&a, &t),
            [("email".to_owned(), json!("ada@example.com"))]
        );
    }
}
