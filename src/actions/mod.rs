//! Actions: what the bot does after a prediction.
//!
//! An action name resolves, as in Rasa, to a default action (unless the domain lists it
//! to override it), an `utter_*` response, or a custom action run by the action server
//! (see [`remote`]). Running an action gives the events to log; it never changes the
//! tracker itself — the processor logs the events and sends the messages.

pub mod extract_slots;
pub mod remote;

use serde_json::{json, Value};

use crate::agent::Agent;
use crate::domain::DEFAULT_ACTION_NAMES;
use crate::events::{Event, EventKind, JsonMap, ACTION_LISTEN, ACTION_SESSION_START};
use crate::nlg;
use crate::slots::REQUESTED_SLOT;
use crate::tracker::DialogueStateTracker;

/// What running an action gave.
#[derive(Debug)]
pub enum ActionOutcome {
    /// The action ran; log these events after its `action` event.
    Events(Vec<Event>),
    /// The action refused to run (logged as `action_execution_rejected`).
    Rejected,
    /// The action failed; its `action` event is still logged, its events are lost.
    Failed(String),
}

/// What an action name refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionKind {
    /// A built-in default action.
    Default(String),
    /// An `utter_*` response of the domain.
    Response(String),
    /// A custom action of the action server.
    Remote(String),
}

/// Whether `name` is an action of the domain (default, custom, response or form).
pub fn is_known_action(agent: &Agent, name: &str) -> bool {
    let d = &agent.domain;
    DEFAULT_ACTION_NAMES.contains(&name)
        || d.actions.iter().any(|a| a == name)
        || d.responses.contains_key(name)
        || d.forms.contains_key(name)
}

/// Resolves an action name as Rasa does; `None` for a name that is not in the domain.
pub fn resolve(agent: &Agent, name: &str) -> Option<ActionKind> {
    if !is_known_action(agent, name) {
        return None;
    }
    let d = &agent.domain;
    let overridden = d.actions.iter().any(|a| a == name) || d.forms.contains_key(name);
    if DEFAULT_ACTION_NAMES.contains(&name) && !overridden {
        return Some(ActionKind::Default(name.to_owned()));
    }
    if name.starts_with("utter_") && d.responses.contains_key(name) {
        return Some(ActionKind::Response(name.to_owned()));
    }
    Some(ActionKind::Remote(name.to_owned()))
}

/// Current slot values as a map (for response placeholders).
pub fn slot_values(tracker: &DialogueStateTracker) -> JsonMap {
    match tracker.slots_json() {
        Value::Object(m) => m,
        _ => JsonMap::new(),
    }
}

/// The `bot` event of response `name`, or `None` if the domain has none that fits.
pub fn utter(
    agent: &Agent,
    tracker: &DialogueStateTracker,
    name: &str,
    channel: Option<&str>,
    kwargs: &JsonMap,
) -> Option<Event> {
    let mut message = nlg::generate(
        &agent.domain.responses,
        name,
        &slot_values(tracker),
        kwargs,
        channel,
    )?;
    message.insert("utter_action".into(), json!(name));
    Some(nlg::bot_event(message))
}

/// The events of Rasa's default `action_session_start`: `session_started`, the slots
/// carried over from the applied events (if the domain says so), `action_listen`.
pub fn session_start_events(agent: &Agent, tracker: &DialogueStateTracker) -> Vec<Event> {
    let mut events = vec![Event::new(EventKind::SessionStarted)];
    if agent.domain.session_config.carry_over_slots_to_new_session {
        for e in tracker.applied_events() {
            if matches!(e.kind, EventKind::Slot { .. }) {
                events.push(Event {
                    timestamp: crate::events::now(),
                    metadata: e.metadata.clone(),
                    kind: e.kind.clone(),
                });
            }
        }
    }
    events.push(Event::action(ACTION_LISTEN, None, None));
    events
}

fn rewind() -> Event {
    Event::new(EventKind::Rewind)
}

/// Runs a default action.
pub fn run_default(
    agent: &Agent,
    tracker: &DialogueStateTracker,
    name: &str,
    channel: Option<&str>,
) -> ActionOutcome {
    let utter_opt = |response: &str| utter(agent, tracker, response, channel, &JsonMap::new());
    let events = match name {
        ACTION_LISTEN
        | "action_unlikely_intent"
        | "action_revert_fallback_events"
        | "action_extract_slots"
        | "..." => Vec::new(),
        "action_restart" => utter_opt("utter_restart")
            .into_iter()
            .chain([Event::new(EventKind::Restart)])
            .collect(),
        ACTION_SESSION_START => session_start_events(agent, tracker),
        "action_default_fallback" => utter_opt("utter_default")
            .into_iter()
            .chain([rewind()])
            .collect(),
        "action_back" => utter_opt("utter_back")
            .into_iter()
            .chain([rewind(), rewind()])
            .collect(),
        "action_deactivate_loop" => vec![
            Event::new(EventKind::ActiveLoop { name: None }),
            Event::new(EventKind::Slot {
                name: REQUESTED_SLOT.into(),
                value: Value::Null,
            }),
        ],
        "action_default_ask_affirmation" => vec![ask_affirmation(tracker)],
        "action_default_ask_rephrase" => utter_opt("utter_ask_rephrase").into_iter().collect(),
        "action_two_stage_fallback" => two_stage_fallback(agent, tracker, channel),
        other => return ActionOutcome::Failed(format!("'{other}' is not a default action")),
    };
    ActionOutcome::Events(events)
}

fn ask_affirmation(tracker: &DialogueStateTracker) -> Event {
    let latest = tracker.latest_message();
    let mut intent = latest.intent_name().unwrap_or_default().to_owned();
    if intent == "nlu_fallback" {
        if let Some(second) = latest
            .parse_data
            .get("intent_ranking")
            .and_then(|r| r.get(1))
            .and_then(|i| i.get("name"))
            .and_then(Value::as_str)
        {
            intent = second.to_owned();
        }
    }
    let mut message = JsonMap::new();
    message.insert("text".into(), json!(format!("Did you mean '{intent}'?")));
    message.insert(
        "buttons".into(),
        json!([{"title": "Yes", "payload": format!("/{intent}")}, {"title": "No", "payload": "/out_of_scope"}]),
    );
    message.insert(
        "utter_action".into(),
        json!("action_default_ask_affirmation"),
    );
    nlg::bot_event(message)
}

/// Rasa's two-stage fallback loop: ask to affirm the intent, then to rephrase, then
/// give up with the default fallback.
fn two_stage_fallback(
    agent: &Agent,
    tracker: &DialogueStateTracker,
    channel: Option<&str>,
) -> Vec<Event> {
    const NAME: &str = "action_two_stage_fallback";
    let latest = tracker
        .latest_message()
        .intent_name()
        .unwrap_or_default()
        .to_owned();
    let active = tracker.active_loop().map(|l| l.name.as_str()) == Some(NAME);
    // Intents of the user messages since the loop started.
    let mut intents: Vec<String> = Vec::new();
    for e in tracker.applied_events().iter().rev() {
        match &e.kind {
            EventKind::User(u) => intents.push(u.intent_name().unwrap_or_default().to_owned()),
            EventKind::ActiveLoop { name: Some(n) } if n == NAME => break,
            _ => {}
        }
    }
    intents.reverse();
    let mut events = Vec::new();
    if !active {
        events.push(Event::new(EventKind::ActiveLoop {
            name: Some(NAME.into()),
        }));
        events.push(ask_affirmation(tracker));
        return events;
    }
    let n = intents.len();
    let two_fallbacks =
        n >= 2 && intents[n - 1] == "nlu_fallback" && intents[n - 2] == "nlu_fallback";
    let oos_sequence = n >= 3
        && intents[n - 3] == "out_of_scope"
        && intents[n - 2] == "nlu_fallback"
        && intents[n - 1] == "out_of_scope";
    if two_fallbacks || oos_sequence {
        events.extend(utter(
            agent,
            tracker,
            "utter_default",
            channel,
            &JsonMap::new(),
        ));
        events.push(Event::new(EventKind::ActiveLoop { name: None }));
        events.push(rewind());
        return events;
    }
    match latest.as_str() {
        "nlu_fallback" => events.push(ask_affirmation(tracker)),
        "out_of_scope" => events.extend(utter(
            agent,
            tracker,
            "utter_ask_rephrase",
            channel,
            &JsonMap::new(),
        )),
        _ => {
            // Clarified: drop the fallback turns and replay the clarified message as
            // if it had been understood at once.
            let clarified = tracker
                .applied_events()
                .into_iter()
                .rev()
                .find(|e| matches!(e.kind, EventKind::User(_)))
                .map(|e| {
                    let mut c = e.clone();
                    if let EventKind::User(u) = &mut c.kind {
                        if let Some(Value::Object(i)) = u.parse_data.get_mut("intent") {
                            i.insert("confidence".into(), json!(1.0));
                        }
                    }
                    c
                });
            events.push(Event::new(EventKind::ActiveLoop { name: None }));
            let user_turns = intents.len();
            for _ in 0..user_turns.max(1) {
                events.push(rewind());
            }
            events.push(Event::action(ACTION_LISTEN, None, None));
            if let Some(mut c) = clarified {
                c.timestamp = crate::events::now();
                events.push(c);
            }
        }
    }
    events
}
