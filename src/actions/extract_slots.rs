//! `action_extract_slots`: fill slots from the latest user message through the slot
//! `mappings` of the domain, after every user message, as Rasa 3.x does.
//!
//! Mapping types: `from_entity` (with `role`/`group`), `from_text`, `from_intent`,
//! `from_trigger_intent`, each filtered by `intent`/`not_intent` and `conditions`
//! (`active_loop`, `requested_slot`). `custom` mappings are filled by custom actions.

use serde_json::Value;

use crate::agent::Agent;
use crate::events::{is_truthy, Event, EventKind};
use crate::slots::{SlotType, REQUESTED_SLOT, SESSION_STARTED_METADATA};
use crate::tracker::DialogueStateTracker;

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

/// The `slot` events the built-in mappings give for the latest user message.
pub fn extract(agent: &Agent, tracker: &DialogueStateTracker) -> Vec<Event> {
    let mut events = Vec::new();
    for slot in agent.domain.slots.iter() {
        if slot.name == REQUESTED_SLOT || slot.name == SESSION_STARTED_METADATA {
            continue;
        }
        for mapping in &slot.mappings {
            let kind = mapping
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if kind == "from_entity"
                && !mapping
                    .get("entity")
                    .and_then(Value::as_str)
                    .is_some_and(|e| agent.domain.entities.iter().any(|d| d == e))
            {
                continue;
            }
            if !intent_allowed(agent, tracker, mapping) {
                continue;
            }
            if kind != "from_trigger_intent" && !conditions_hold(tracker, &slot.name, mapping) {
                continue;
            }
            let Some(value) = candidate(tracker, &slot.slot_type, mapping) else {
                continue;
            };
            let current = tracker.slot_value(&slot.name).filter(|v| !v.is_null());
            if is_truthy(&value) || !value.is_null() || current.is_some() {
                events.push(Event::new(EventKind::Slot {
                    name: slot.name.clone(),
                    value,
                }));
                break;
            }
        }
    }
    events
}
