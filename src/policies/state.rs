//! Dialogue states: what the policies see of a conversation (Rasa's
//! `Domain.states_for_tracker_history`, `get_active_state`, the slot featurization of
//! `rasa/shared/core/slots.py` and the tracker featurizers' user-input clean-up).
//!
//! A conversation becomes one [`State`] for the tracker as it was before each `action`
//! of the applied events, plus one for the current tracker. A state holds the latest
//! user message (intent and entity labels, or text for end-to-end turns), the previous
//! action, the influencing slots with a non-zero featurization, and the active loop.
//! States are keyed by their Python `json.dumps(..., sort_keys=True)` text, as Rasa
//! keys its lookups; [`states_key`] reproduces it byte for byte (the rule policy picks
//! the longest matching key).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::domain::Domain;
use crate::events::{is_truthy, Event, EventKind, ACTION_LISTEN};
use crate::slots::{Slot, SlotType};
use crate::training_data::graph::SHOULD_NOT_BE_SET;

/// A slot's part of a state.
#[derive(Debug, Clone, PartialEq)]
pub enum SlotFeature {
    /// The featurized value (at least one entry non-zero).
    Values(Vec<f64>),
    /// Rules only: the slot must not be set.
    ShouldNotBeSet,
}

/// The user part of a state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UserSub {
    /// Intent name.
    pub intent: Option<String>,
    /// Text (end-to-end turns).
    pub text: Option<String>,
    /// Sorted entity labels (`entity`, `entity#role`, `entity#group`).
    pub entities: Vec<String>,
}

impl UserSub {
    fn is_empty(&self) -> bool {
        self.intent.is_none() && self.text.is_none() && self.entities.is_empty()
    }
}

/// The previous action of a state.
#[derive(Debug, Clone, PartialEq)]
pub enum PrevAction {
    /// `{"action_name": ...}`
    Name(String),
    /// `{"action_text": ...}`
    Text(String),
}

impl PrevAction {
    /// The name or text.
    pub fn as_str(&self) -> &str {
        match self {
            PrevAction::Name(s) | PrevAction::Text(s) => s,
        }
    }
}

/// One dialogue state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct State {
    /// Latest user message.
    pub user: Option<UserSub>,
    /// Previous action.
    pub prev_action: Option<PrevAction>,
    /// Influencing slots, by name.
    pub slots: BTreeMap<String, SlotFeature>,
    /// Active loop name (`should_not_be_set` in rules).
    pub active_loop: Option<String>,
}

impl State {
    /// Whether the previous action is `action_listen`.
    pub fn prev_is_listen(&self) -> bool {
        matches!(&self.prev_action, Some(PrevAction::Name(n)) if n == ACTION_LISTEN)
    }

    /// The previous action's name (not text).
    pub fn prev_action_name(&self) -> Option<&str> {
        match &self.prev_action {
            Some(PrevAction::Name(n)) => Some(n),
            _ => None,
        }
    }

    /// Rasa's `get_active_loop_name(state)`: the loop, unless `should_not_be_set`.
    pub fn active_loop_name(&self) -> Option<&str> {
        self.active_loop
            .as_deref()
            .filter(|l| *l != SHOULD_NOT_BE_SET)
    }

    /// Python `json.dumps(state, sort_keys=True)`.
    pub fn to_python_json(&self, out: &mut String) {
        out.push('{');
        let mut first = true;
        let mut key = |out: &mut String, k: &str| {
            if !first {
                out.push_str(", ");
            }
            first = false;
            crate::pyjson::write_str(out, k);
            out.push_str(": ");
        };
        if let Some(l) = &self.active_loop {
            key(out, "active_loop");
            out.push('{');
            crate::pyjson::write_str(out, "name");
            out.push_str(": ");
            crate::pyjson::write_str(out, l);
            out.push('}');
        }
        if let Some(p) = &self.prev_action {
            key(out, "prev_action");
            out.push('{');
            match p {
                PrevAction::Name(n) => {
                    crate::pyjson::write_str(out, "action_name");
                    out.push_str(": ");
                    crate::pyjson::write_str(out, n);
                }
                PrevAction::Text(t) => {
                    crate::pyjson::write_str(out, "action_text");
                    out.push_str(": ");
                    crate::pyjson::write_str(out, t);
                }
            }
            out.push('}');
        }
        if !self.slots.is_empty() {
            key(out, "slots");
            out.push('{');
            for (i, (name, f)) in self.slots.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                crate::pyjson::write_str(out, name);
                out.push_str(": ");
                match f {
                    SlotFeature::ShouldNotBeSet => crate::pyjson::write_str(out, SHOULD_NOT_BE_SET),
                    SlotFeature::Values(v) => {
                        out.push('[');
                        for (j, x) in v.iter().enumerate() {
                            if j > 0 {
                                out.push_str(", ");
                            }
                            out.push_str(&crate::domain::python_float(*x));
                        }
                        out.push(']');
                    }
                }
            }
            out.push('}');
        }
        if let Some(u) = &self.user {
            key(out, "user");
            out.push('{');
            let mut parts = 0;
            if !u.entities.is_empty() {
                crate::pyjson::write_str(out, "entities");
                out.push_str(": [");
                for (j, e) in u.entities.iter().enumerate() {
                    if j > 0 {
                        out.push_str(", ");
                    }
                    crate::pyjson::write_str(out, e);
                }
                out.push(']');
                parts += 1;
            }
            if let Some(i) = &u.intent {
                if parts > 0 {
                    out.push_str(", ");
                }
                crate::pyjson::write_str(out, "intent");
                out.push_str(": ");
                crate::pyjson::write_str(out, i);
                parts += 1;
            }
            if let Some(t) = &u.text {
                if parts > 0 {
                    out.push_str(", ");
                }
                crate::pyjson::write_str(out, "text");
                out.push_str(": ");
                crate::pyjson::write_str(out, t);
            }
            out.push('}');
        }
        out.push('}');
    }
}

/// Python `json.dumps(states, sort_keys=True)` of a list of states.
pub fn states_key(states: &[State]) -> String {
    let mut out = String::from("[");
    for (i, s) in states.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        s.to_python_json(&mut out);
    }
    out.push(']');
    out
}

/// Rasa's `bool_from_any`.
fn bool_from_any(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_f64().map(|f| f == 1.0),
        Value::String(s) => {
            let t = s.trim().to_lowercase();
            match t.as_str() {
                "true" => Some(true),
                "false" => Some(false),
                _ => t.parse::<f64>().ok().map(|f| f == 1.0),
            }
        }
        _ => None,
    }
}

/// Python `float(x)` of a slot value.
fn float_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
}

/// Python `str(x).lower()` of a slot value.
fn python_lower(v: &Value) -> String {
    match v {
        Value::String(s) => s.to_lowercase(),
        Value::Bool(b) => if *b { "true" } else { "false" }.to_owned(),
        Value::Number(n) if n.is_f64() => crate::domain::python_float(n.as_f64().unwrap_or(0.0)),
        other => other.to_string().to_lowercase(),
    }
}

/// A slot's featurization (`Slot.as_feature()`): empty when it does not influence
/// the conversation.
pub fn slot_features(slot: &Slot, value: &Value) -> Vec<f64> {
    if !slot.influence_conversation {
        return Vec::new();
    }
    match &slot.slot_type {
        SlotType::Any => Vec::new(),
        SlotType::Text | SlotType::Custom(_) => vec![if value.is_null() { 0.0 } else { 1.0 }],
        SlotType::List => {
            let non_empty = match value {
                Value::Array(a) => !a.is_empty(),
                Value::String(s) => !s.is_empty(),
                Value::Object(o) => !o.is_empty(),
                _ => false,
            };
            vec![if non_empty { 1.0 } else { 0.0 }]
        }
        SlotType::Bool => match (value.is_null(), bool_from_any(value)) {
            (false, Some(b)) => vec![1.0, if b { 1.0 } else { 0.0 }],
            _ => vec![0.0, 0.0],
        },
        SlotType::Float {
            min_value,
            max_value,
        } => match float_of(value) {
            Some(f) => {
                let capped = f.min(*max_value).max(*min_value);
                let range = (max_value - min_value).abs();
                let range = if range > 0.0 { range } else { 1.0 };
                vec![1.0, (capped - min_value) / range]
            }
            None => vec![0.0, 0.0],
        },
        SlotType::Categorical { values } => {
            let mut r = vec![0.0; values.len()];
            if value.is_null() {
                return r;
            }
            let v = python_lower(value);
            match values.iter().position(|x| *x == v) {
                Some(i) => r[i] = 1.0,
                None => {
                    if let Some(i) = values.iter().position(|x| x == "__other__") {
                        r[i] = 1.0;
                    }
                }
            }
            r
        }
    }
}

/// The latest user message as the state builder sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Message {
    /// Intent name.
    pub intent: Option<String>,
    /// Intent confidence, if given.
    pub confidence: Option<f64>,
    /// Text.
    pub text: Option<String>,
    /// Entity objects.
    pub entities: Vec<Value>,
    /// Set by `user_featurization`.
    pub use_text: Option<bool>,
}

/// The active loop as the state builder sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoopState {
    /// Loop name (may be `should_not_be_set` in rule data).
    pub name: String,
    /// Rejected flag.
    pub rejected: bool,
    /// Interrupted flag.
    pub interrupted: bool,
}

/// A light tracker that applies events the way `DialogueStateTracker` does, keeping
/// what states need (including whether each slot "has been set").
#[derive(Debug, Clone)]
pub struct SimTracker<'d> {
    slots: &'d [Slot],
    values: Vec<Value>,
    set: Vec<bool>,
    /// The latest user message (`None` before the first).
    pub message: Option<Message>,
    /// The latest action.
    pub latest_action: Option<PrevAction>,
    /// The active loop.
    pub active_loop: Option<LoopState>,
    /// The pending followup action.
    pub followup: Option<String>,
}

impl<'d> SimTracker<'d> {
    /// A fresh tracker (slots at their initial values, followup `action_listen`).
    pub fn new(slots: &'d [Slot]) -> Self {
        SimTracker {
            slots,
            values: slots.iter().map(|s| s.initial_value.clone()).collect(),
            set: vec![false; slots.len()],
            message: None,
            latest_action: None,
            active_loop: None,
            followup: Some(ACTION_LISTEN.to_owned()),
        }
    }

    fn reset(&mut self) {
        *self = SimTracker::new(self.slots);
    }

    /// The latest action's name or text.
    pub fn latest_action_name(&self) -> Option<&str> {
        self.latest_action.as_ref().map(PrevAction::as_str)
    }

    /// The active loop's name, `None` for no loop or `should_not_be_set`.
    pub fn active_loop_name(&self) -> Option<&str> {
        self.active_loop
            .as_ref()
            .map(|l| l.name.as_str())
            .filter(|n| *n != SHOULD_NOT_BE_SET)
    }

    /// A slot's current value.
    pub fn slot_value(&self, name: &str) -> Option<&Value> {
        let i = self.slots.iter().position(|s| s.name == name)?;
        self.values.get(i)
    }

    /// Applies one event.
    pub fn apply(&mut self, e: &Event) {
        let listening = self.latest_action_name() == Some(ACTION_LISTEN);
        match &e.kind {
            EventKind::User(u) => {
                self.message = Some(Message {
                    intent: u.intent_name().map(str::to_owned),
                    confidence: u
                        .parse_data
                        .get("intent")
                        .and_then(|i| i.get("confidence"))
                        .and_then(Value::as_f64),
                    text: u.text.clone(),
                    entities: u.entities().to_vec(),
                    use_text: None,
                });
                self.followup = None;
            }
            EventKind::UserFeaturization {
                use_text_for_featurization,
            } if listening => {
                if let Some(m) = self.message.as_mut() {
                    m.use_text = Some(is_truthy(use_text_for_featurization));
                }
            }
            EventKind::EntitiesAdded { entities } if listening => {
                if let Some(m) = self.message.as_mut() {
                    for x in entities {
                        if !m.entities.contains(x) {
                            m.entities.push(x.clone());
                        }
                    }
                }
            }
            EventKind::Slot { name, value } => {
                if let Some(i) = self.slots.iter().position(|s| &s.name == name) {
                    self.values[i] = self.slots[i].coerce(value.clone());
                    self.set[i] = true;
                }
            }
            EventKind::Restart | EventKind::SessionStarted => self.reset(),
            EventKind::ResetSlots => {
                self.values = self.slots.iter().map(|s| s.initial_value.clone()).collect();
                self.set = vec![false; self.slots.len()];
            }
            EventKind::Followup { name } => self.followup = name.clone(),
            EventKind::Action(a) => {
                self.latest_action = match (&a.name, &a.action_text) {
                    (Some(n), _) if !n.is_empty() => Some(PrevAction::Name(n.clone())),
                    (_, Some(t)) => Some(PrevAction::Text(t.clone())),
                    (Some(n), None) => Some(PrevAction::Name(n.clone())),
                    (None, None) => None,
                };
                if let Some(l) = self.active_loop.as_mut() {
                    l.interrupted = false;
                    if a.name.as_deref() == Some(l.name.as_str()) {
                        l.rejected = false;
                    }
                }
                self.followup = None;
            }
            EventKind::ActiveLoop { name } => {
                self.active_loop = name.as_ref().map(|n| LoopState {
                    name: n.clone(),
                    rejected: false,
                    interrupted: false,
                });
            }
            EventKind::LoopInterrupted { is_interrupted } => {
                if let Some(l) = self.active_loop.as_mut() {
                    l.interrupted = *is_interrupted;
                }
            }
            EventKind::ActionExecutionRejected { name, .. } => {
                if let Some(l) = self.active_loop.as_mut() {
                    if name.as_deref() == Some(l.name.as_str()) {
                        l.rejected = true;
                    }
                }
            }
            _ => {}
        }
    }

    /// `Domain.get_active_state`: the state of this tracker now.
    pub fn active_state(&self, domain: &Domain, omit_unset_slots: bool) -> State {
        let mut state = State::default();
        if let Some(m) = &self.message {
            if m.text.is_some() || m.intent.is_some() {
                let mut u = UserSub::default();
                if m.text.is_some() && m.use_text != Some(false) {
                    u.text = m.text.clone();
                }
                if m.use_text != Some(true) {
                    u.intent = m.intent.clone();
                    u.entities = domain.featurized_entities(m.intent.as_deref(), &m.entities);
                }
                if !u.is_empty() {
                    state.user = Some(u);
                }
            }
        }
        for (i, slot) in self.slots.iter().enumerate() {
            let features = slot_features(slot, &self.values[i]);
            if features.is_empty() || (omit_unset_slots && !self.set[i]) {
                continue;
            }
            if self.values[i].as_str() == Some(SHOULD_NOT_BE_SET) {
                state
                    .slots
                    .insert(slot.name.clone(), SlotFeature::ShouldNotBeSet);
            } else if features.iter().any(|f| *f != 0.0) {
                state
                    .slots
                    .insert(slot.name.clone(), SlotFeature::Values(features));
            }
        }
        state.prev_action = self.latest_action.clone();
        state.active_loop = self.active_loop.as_ref().map(|l| l.name.clone());
        state
    }
}

/// Slots and loops that appear only in rules (Rasa's `rule_only_data`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleOnlyData {
    /// Rule-only slots.
    pub slots: BTreeSet<String>,
    /// Rule-only loops.
    pub loops: BTreeSet<String>,
}

/// How to build states.
#[derive(Debug, Clone, Copy, Default)]
pub struct StateOptions<'a> {
    /// Rules: leave out slots never set.
    pub omit_unset_slots: bool,
    /// Memoization: skip turns predicted by rules that are not in stories.
    pub ignore_rule_only_turns: bool,
    /// With `ignore_rule_only_turns`: slots and loops to remove.
    pub rule_only: Option<&'a RuleOnlyData>,
}

/// `Domain.states_for_tracker_history` over the applied events of a conversation.
pub fn states_for_history(
    events: &[&Event],
    domain: &Domain,
    opts: StateOptions<'_>,
) -> Vec<State> {
    let mut states: Vec<State> = Vec::new();
    let mut t = SimTracker::new(&domain.slots);
    let mut last_ml_action: Option<Option<PrevAction>> = None;
    let mut turn_was_hidden = false;
    let mut emit = |t: &SimTracker<'_>, hide: bool, states: &mut Vec<State>| {
        if opts.ignore_rule_only_turns {
            if !turn_was_hidden {
                last_ml_action = Some(t.latest_action.clone());
            }
            if t.followup.is_none() && t.latest_action_name() != t.active_loop_name() {
                turn_was_hidden = hide;
            }
            if turn_was_hidden {
                return;
            }
        }
        let mut state = t.active_state(domain, opts.omit_unset_slots);
        if opts.ignore_rule_only_turns {
            if let Some(r) = opts.rule_only {
                for s in &r.slots {
                    state.slots.remove(s);
                }
                if state
                    .active_loop
                    .as_ref()
                    .is_some_and(|l| r.loops.contains(l))
                {
                    state.active_loop = None;
                }
            }
            if let Some(prev) = states.last() {
                if !state.prev_is_listen() {
                    if prev.user.is_none() {
                        state.user = None;
                    } else {
                        state.user = prev.user.clone();
                    }
                }
            }
            if let Some(Some(a)) = &last_ml_action {
                state.prev_action = Some(a.clone());
            }
        }
        states.push(state);
    };
    for e in events {
        if let EventKind::Action(a) = &e.kind {
            emit(&t, a.hide_rule_turn, &mut states);
        }
        t.apply(e);
    }
    emit(&t, false, &mut states);
    states
}

/// The tracker featurizer's user-input clean-up: in the last state (when it follows
/// `action_listen`) keep only the text (`use_text`) or only the intent; in every other
/// state drop the text where an intent is present.
pub fn choose_last_user_input(states: &mut [State], use_text: bool) {
    if let Some(last) = states.last_mut() {
        if last.prev_is_listen() {
            if let Some(u) = last.user.as_mut() {
                if use_text {
                    u.intent = None;
                    u.entities.clear();
                } else {
                    u.text = None;
                }
                if u.is_empty() {
                    last.user = None;
                }
            }
        }
    }
    remove_user_text_if_intent(states);
}

/// Drops the text of user states that have an intent.
pub fn remove_user_text_if_intent(states: &mut [State]) {
    for s in states.iter_mut() {
        if let Some(u) = s.user.as_mut() {
            if u.intent.is_some() && u.text.is_some() {
                u.text = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn slot(t: SlotType) -> Slot {
        Slot {
            name: "s".into(),
            slot_type: t,
            initial_value: Value::Null,
            influence_conversation: true,
            mappings: Vec::new(),
        }
    }

    #[test]
    fn slot_featurization() {
        assert_eq!(slot_features(&slot(SlotType::Text), &json!("x")), [1.0]);
        assert_eq!(slot_features(&slot(SlotType::Text), &Value::Null), [0.0]);
        assert_eq!(
            slot_features(&slot(SlotType::Bool), &json!("TRUE ")),
            [1.0, 1.0]
        );
        assert_eq!(slot_features(&slot(SlotType::Bool), &json!(0)), [1.0, 0.0]);
        assert_eq!(
            slot_features(&slot(SlotType::Bool), &json!("maybe")),
            [0.0, 0.0]
        );
        let f = SlotType::Float {
            min_value: 0.0,
            max_value: 10.0,
        };
        assert_eq!(slot_features(&slot(f.clone()), &json!(15)), [1.0, 1.0]);
        assert_eq!(slot_features(&slot(f), &json!("2.5")), [1.0, 0.25]);
        assert_eq!(slot_features(&slot(SlotType::List), &json!([])), [0.0]);
        let c = SlotType::Categorical {
            values: vec!["a".into(), "b".into(), "__other__".into()],
        };
        assert_eq!(
            slot_features(&slot(c.clone()), &json!("B")),
            [0.0, 1.0, 0.0]
        );
        assert_eq!(
            slot_features(&slot(c.clone()), &json!("zz")),
            [0.0, 0.0, 1.0]
        );
        assert_eq!(slot_features(&slot(c), &Value::Null), [0.0, 0.0, 0.0]);
        let mut s = slot(SlotType::Text);
        s.influence_conversation = false;
        assert!(slot_features(&s, &json!("x")).is_empty());
    }

    #[test]
    fn python_json_keys() {
        let mut s = State {
            user: Some(UserSub {
                intent: Some("greet".into()),
                text: None,
                entities: vec!["name".into(), "name#role".into()],
            }),
            prev_action: Some(PrevAction::Name("action_listen".into())),
            active_loop: Some("f".into()),
            ..State::default()
        };
        s.slots
            .insert("b".into(), SlotFeature::Values(vec![1.0, 0.5]));
        s.slots.insert("a".into(), SlotFeature::ShouldNotBeSet);
        assert_eq!(
            states_key(&[State::default(), s]),
            r#"[{}, {"active_loop": {"name": "f"}, "prev_action": {"action_name": "action_listen"}, "slots": {"a": "should_not_be_set", "b": [1.0, 0.5]}, "user": {"entities": ["name", "name#role"], "intent": "greet"}}]"#
        );
        let mut out = String::new();
        crate::pyjson::write_str(&mut out, "é\"😀");
        assert_eq!(out, r#""\u00e9\"\ud83d\ude00""#);
    }
}
