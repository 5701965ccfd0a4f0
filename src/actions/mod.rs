//! Actions: what the bot does after a prediction.
//!
//! An action name resolves, as in Rasa, to a default action (unless the domain lists it
//! to override it), an `utter_*` response, or a custom action run by the action server
//! (see [`remote`]). Running an action gives the events to log; it never changes the
//! tracker itself — the processor logs the events and sends the messages.

pub mod extract_slots;
pub mod forms;
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
    /// The retrieval action of a retrieval intent (`utter_faq`): sends the response
    /// the response selector chose (Rasa's `ActionRetrieveResponse`).
    RetrieveResponse(String),
    /// A form of the domain, run by palaver as Rasa's `FormAction`.
    Form(String),
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
    if name.starts_with("utter_") && d.is_retrieval_action(name) {
        return Some(ActionKind::RetrieveResponse(name.to_owned()));
    }
    if name.starts_with("utter_") && d.responses.contains_key(name) {
        return Some(ActionKind::Response(name.to_owned()));
    }
    // Users can override a form with a custom action of the same name.
    if d.forms.contains_key(name) && !d.actions.iter().any(|a| a == name) {
        return Some(ActionKind::Form(name.to_owned()));
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

/// Runs the retrieval action `name` (`utter_faq`) as Rasa's `ActionRetrieveResponse`:
/// the latest message's `response_selector` entry for the retrieval intent (else the
/// `default` one) names the full response (`utter_faq/ask_name`), which is sent like any
/// response, its `bot` event's metadata saying `utter_action: utter_faq/ask_name`.
///
/// Without a `response_selector` in the parse data (an `/intent` shortcut, a remote NLU
/// server without one) Rasa's action fails and its events are lost; with no entry for
/// the intent, or a response the domain does not have (`utter_None` of an untrained
/// selector), nothing is sent.
pub fn retrieve_response(
    agent: &Agent,
    tracker: &DialogueStateTracker,
    name: &str,
    channel: Option<&str>,
) -> ActionOutcome {
    let latest = tracker.latest_message();
    let Some(selector) = latest.parse_data.get("response_selector") else {
        return ActionOutcome::Failed(format!(
            "Encountered an exception while running action '{name}': the latest user message \
             has no 'response_selector' in its parse data. Bot will continue, but the actions \
             events are lost."
        ));
    };
    let intent = name.strip_prefix("utter_").unwrap_or(name);
    let Some(selected) = selector
        .get(intent)
        .or_else(|| selector.get(crate::nlu::selector::DEFAULT_SELECTOR))
    else {
        tracing::error!("Couldn't create message for response action '{name}'.");
        return ActionOutcome::Events(Vec::new());
    };
    let Some(full) = selected
        .get("response")
        .and_then(|r| r.get("utter_action"))
        .and_then(Value::as_str)
    else {
        return ActionOutcome::Failed(format!(
            "Encountered an exception while running action '{name}': the response selector's \
             prediction has no 'utter_action'. Bot will continue, but the actions events are lost."
        ));
    };
    match utter(agent, tracker, full, channel, &JsonMap::new()) {
        Some(bot) => ActionOutcome::Events(vec![bot]),
        None => {
            tracing::error!("Couldn't create message for response '{full}'.");
            ActionOutcome::Events(Vec::new())
        }
    }
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

/// The intents of the latest `n` user messages since the latest restart, newest first
/// (Rasa's `_last_n_intent_names`).
fn last_intent_names(tracker: &DialogueStateTracker, n: usize) -> Vec<String> {
    tracker
        .events_after_restart()
        .iter()
        .rev()
        .filter_map(|e| match &e.kind {
            EventKind::User(u) => Some(u.intent_name().unwrap_or_default().to_owned()),
            _ => None,
        })
        .take(n)
        .collect()
}

/// Rasa's `TwoStageFallbackAction`, a loop: ask to affirm the intent, then to rephrase;
/// give up with the default fallback after two fallbacks in a row or a second failed
/// affirmation; when the user clarifies, revert the fallback turns and replay the
/// clarified message as if it had been understood at once.
fn two_stage_fallback(
    agent: &Agent,
    tracker: &DialogueStateTracker,
    channel: Option<&str>,
) -> Vec<Event> {
    const NAME: &str = "action_two_stage_fallback";
    const NLU_FALLBACK: &str = "nlu_fallback";
    const OUT_OF_SCOPE: &str = "out_of_scope";
    let latest = tracker
        .latest_message()
        .intent_name()
        .unwrap_or_default()
        .to_owned();
    let last2 = last_intent_names(tracker, 2);
    let last3 = last_intent_names(tracker, 3);
    let two_fallbacks_in_a_row = last2 == [NLU_FALLBACK, NLU_FALLBACK];
    let second_affirmation_failed = last3 == [OUT_OF_SCOPE, NLU_FALLBACK, OUT_OF_SCOPE];
    let clarified = latest != NLU_FALLBACK && latest != OUT_OF_SCOPE;
    let is_done = clarified || two_fallbacks_in_a_row || second_affirmation_failed;

    let mut events = Vec::new();
    let active = tracker.active_loop().map(|l| l.name.as_str()) == Some(NAME);
    if !active {
        events.push(Event::new(EventKind::ActiveLoop {
            name: Some(NAME.into()),
        }));
    }
    if !is_done {
        let just_activated = !active;
        if just_activated || latest == NLU_FALLBACK {
            events.push(ask_affirmation(tracker));
        } else {
            events.extend(utter(
                agent,
                tracker,
                "utter_ask_rephrase",
                channel,
                &JsonMap::new(),
            ));
        }
        return events;
    }
    events.push(Event::new(EventKind::ActiveLoop { name: None }));
    if two_fallbacks_in_a_row || second_affirmation_failed {
        // Give up: action_default_fallback.
        events.extend(utter(
            agent,
            tracker,
            "utter_default",
            channel,
            &JsonMap::new(),
        ));
        events.push(rewind());
        return events;
    }
    // Clarified: revert the fallback turns (the loop's turns collapse in the applied
    // events, so one rewind reaches the message that triggered the fallback) and
    // replay the clarified message with full confidence.
    events.push(rewind());
    events.push(Event::action(ACTION_LISTEN, None, None));
    let clarified_message = tracker
        .events()
        .iter()
        .rev()
        .find(|e| matches!(e.kind, EventKind::User(_)))
        .map(|e| {
            let mut c = e.clone();
            c.timestamp = crate::events::now();
            if let EventKind::User(u) = &mut c.kind {
                if let Some(Value::Object(i)) = u.parse_data.get_mut("intent") {
                    i.insert("confidence".into(), json!(1.0));
                }
            }
            c
        });
    events.extend(clarified_message);
    events
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    /// A bot with the retrieval intent `faq` (from its NLU data) and no NLU pipeline:
    /// the parse data of each test is written by hand.
    fn agent() -> (tempfile::TempDir, Agent) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(p.join("config.yml"), "pipeline: []\npolicies: []\n").unwrap();
        std::fs::write(
            p.join("domain.yml"),
            "intents: [faq]\nslots:\n  user_name:\n    type: text\n    initial_value: Ada\n    \
             mappings: [{type: custom}]\nresponses:\n  utter_greet: [{text: hi}]\n",
        )
        .unwrap();
        std::fs::create_dir(p.join("data")).unwrap();
        std::fs::write(
            p.join("data/nlu.yml"),
            "nlu:\n- intent: faq/ask_name\n  examples: |\n    - who are you\n\
             responses:\n  utter_faq/ask_name:\n  - text: I am palaver, {user_name}.\n",
        )
        .unwrap();
        let agent = Agent::load_project(p, None, None, &Value::Null).unwrap();
        (dir, agent)
    }

    fn tracker(agent: &Agent, parse_data: Value) -> DialogueStateTracker {
        let events = [
            json!({"event": "action", "name": "action_listen"}),
            json!({"event": "user", "text": "who are you", "parse_data": parse_data}),
        ]
        .iter()
        .filter_map(|v| Event::from_json(v).ok().flatten())
        .collect();
        DialogueStateTracker::from_events("t", agent.slots.clone(), events)
    }

    fn selected(key: &str, utter_action: Value) -> Value {
        json!({"intent": {"name": "faq", "confidence": 0.9}, "entities": [],
            "response_selector": {"all_retrieval_intents": ["faq"],
                key: {"response": {"utter_action": utter_action}, "ranking": []}}})
    }

    #[test]
    fn the_retrieval_action_sends_the_selected_response() {
        let (_dir, a) = agent();
        assert_eq!(
            resolve(&a, "utter_faq"),
            Some(ActionKind::RetrieveResponse("utter_faq".into()))
        );
        assert_eq!(
            resolve(&a, "utter_greet"),
            Some(ActionKind::Response("utter_greet".into()))
        );
        for key in ["default", "faq"] {
            let t = tracker(&a, selected(key, json!("utter_faq/ask_name")));
            let ActionOutcome::Events(events) = retrieve_response(&a, &t, "utter_faq", None) else {
                panic!("the action ran");
            };
            assert_eq!(events.len(), 1);
            let EventKind::Bot { text, .. } = &events[0].kind else {
                panic!("a bot event");
            };
            assert_eq!(text.as_deref(), Some("I am palaver, Ada."));
            assert_eq!(events[0].metadata["utter_action"], "utter_faq/ask_name");
        }
    }

    #[test]
    fn the_retrieval_action_without_a_selection_behaves_like_rasa() {
        let (_dir, a) = agent();
        // No response_selector (a shortcut): Rasa's action raises; its events are lost.
        let t = tracker(
            &a,
            json!({"intent": {"name": "faq", "confidence": 1.0}, "entities": []}),
        );
        assert!(matches!(
            retrieve_response(&a, &t, "utter_faq", None),
            ActionOutcome::Failed(_)
        ));
        // A selector for another retrieval intent only: nothing is sent.
        let t = tracker(&a, selected("chitchat", json!("utter_chitchat/x")));
        assert!(matches!(
            retrieve_response(&a, &t, "utter_faq", None),
            ActionOutcome::Events(e) if e.is_empty()
        ));
        // An untrained selector (`utter_None`) or a response the domain lacks: nothing.
        for action in ["utter_None", "utter_faq/unknown"] {
            let t = tracker(&a, selected("default", json!(action)));
            assert!(matches!(
                retrieve_response(&a, &t, "utter_faq", None),
                ActionOutcome::Events(e) if e.is_empty()
            ));
        }
    }
}
