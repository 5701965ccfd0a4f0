//! `MemoizationPolicy` and `AugmentedMemoizationPolicy`
//! (`rasa/core/policies/memoization.py`): exact recall of story turns.
//!
//! Training: for every predictable action of every story (not rule) conversation,
//! the states before it, cut to the last `max_history` states, are a key for that
//! action. A key seen with two different actions is ambiguous and forgotten.
//!
//! Prediction: the conversation's states, leaving out turns predicted by rules that
//! stories do not contain (`hide_rule_turn`) and rule-only slots and loops, cut to
//! `max_history`; a hit predicts its action with 1.0 (or the NLU confidence).
//! The augmented variant retries on the conversation cut at successive actions
//! (forgetting older slots) until a key matches.

use std::collections::{BTreeMap, BTreeSet};

use super::state::{
    choose_last_user_input, remove_user_text_if_intent, states_for_history, states_key,
    RuleOnlyData, State, StateOptions,
};
use super::{Conv, PolicyPrediction0};
use crate::domain::Domain;
use crate::events::{Event, EventKind, ACTION_LISTEN};
use crate::tracker::applied_event_indices;
use crate::training_data::TrainingTracker;

/// Rasa 3.x `MEMOIZATION_POLICY_PRIORITY`.
pub const MEMOIZATION_PRIORITY: u8 = 3;

/// A trained memoization policy.
#[derive(Debug, Clone)]
pub struct MemoizationPolicy {
    /// `max_history` (`None` = the whole conversation, Rasa 3.x's default).
    pub max_history: Option<usize>,
    /// Whether this is `AugmentedMemoizationPolicy`.
    pub augmented: bool,
    /// `use_nlu_confidence_as_score`.
    pub use_nlu_confidence_as_score: bool,
    lookup: BTreeMap<String, String>,
}

/// The training examples of one conversation: (states before the action, action),
/// with the states not yet cut to a history length.
pub(crate) fn training_examples(
    t: &TrainingTracker,
    domain: &Domain,
    omit_unset_slots: bool,
) -> Vec<(Vec<State>, String)> {
    let idx = applied_event_indices(&t.events);
    let applied: Vec<&Event> = idx.iter().map(|&i| &t.events[i]).collect();
    let mut states = states_for_history(
        &applied,
        domain,
        StateOptions {
            omit_unset_slots,
            ..StateOptions::default()
        },
    );
    remove_user_text_if_intent(&mut states);
    let mut out = Vec::new();
    let mut label_index = 0;
    for &i in &idx {
        if let EventKind::Action(a) = &t.events[i].kind {
            label_index += 1;
            if t.unpredictable.get(i).copied().unwrap_or(false) {
                continue;
            }
            let label = a
                .name
                .clone()
                .filter(|n| !n.is_empty())
                .or_else(|| a.action_text.clone())
                .unwrap_or_default();
            out.push((states[..label_index].to_vec(), label));
        }
    }
    out
}

fn slice(states: &[State], max_history: Option<usize>) -> &[State] {
    match max_history {
        Some(n) if n > 0 && states.len() > n => &states[states.len() - n..],
        _ => states,
    }
}

impl MemoizationPolicy {
    /// Trains on the story conversations.
    pub fn train(
        stories: &[TrainingTracker],
        domain: &Domain,
        max_history: Option<usize>,
        augmented: bool,
        use_nlu_confidence_as_score: bool,
    ) -> MemoizationPolicy {
        let mut lookup: BTreeMap<String, String> = BTreeMap::new();
        let mut ambiguous: BTreeSet<String> = BTreeSet::new();
        for t in stories.iter().filter(|t| !t.is_rule) {
            for (states, action) in training_examples(t, domain, false) {
                let states = slice(&states, max_history);
                if states.is_empty() {
                    continue;
                }
                let key = states_key(states);
                if ambiguous.contains(&key) {
                    continue;
                }
                match lookup.get(&key) {
                    Some(existing) if *existing != action => {
                        lookup.remove(&key);
                        ambiguous.insert(key);
                    }
                    Some(_) => {}
                    None => {
                        lookup.insert(key, action);
                    }
                }
            }
        }
        MemoizationPolicy {
            max_history,
            augmented,
            use_nlu_confidence_as_score,
            lookup,
        }
    }

    /// The class name Rasa writes in `action` events.
    pub fn name(&self) -> &'static str {
        if self.augmented {
            "AugmentedMemoizationPolicy"
        } else {
            "MemoizationPolicy"
        }
    }

    /// Number of memorised turns.
    pub fn len(&self) -> usize {
        self.lookup.len()
    }

    /// Whether nothing was memorised.
    pub fn is_empty(&self) -> bool {
        self.lookup.is_empty()
    }

    fn prediction_states(
        &self,
        applied: &[&Event],
        domain: &Domain,
        rule_only: &RuleOnlyData,
    ) -> Vec<State> {
        let mut states = states_for_history(
            applied,
            domain,
            StateOptions {
                omit_unset_slots: false,
                ignore_rule_only_turns: true,
                rule_only: Some(rule_only),
            },
        );
        states.retain(|s| s.prev_action_name() != Some("action_unlikely_intent"));
        let mut states = slice(&states, self.max_history).to_vec();
        choose_last_user_input(&mut states, false);
        states
    }

    fn recall(&self, states: &[State]) -> Option<&String> {
        if states.is_empty() {
            return None;
        }
        self.lookup.get(&states_key(states))
    }

    /// The applied events of a tracker rebuilt from `events`.
    fn applied_of(events: &[Event]) -> Vec<&Event> {
        applied_event_indices(events)
            .into_iter()
            .map(|i| &events[i])
            .collect()
    }

    fn recall_with_truncation(
        &self,
        old_states: Vec<State>,
        conv: &Conv<'_>,
        domain: &Domain,
        rule_only: &RuleOnlyData,
    ) -> Option<String> {
        // `_trim_tracker_by_max_history`: keep the events back to the action_listen
        // before the last `max_history` actions.
        let applied: Vec<Event> = conv.applied.iter().map(|e| (*e).clone()).collect();
        let mut current: Vec<Event> = match self.max_history.filter(|n| *n > 0) {
            Some(max) => {
                let mut num_events = 0;
                let mut num_actions = 0;
                let mut cut = None;
                for e in applied.iter().rev() {
                    num_events += 1;
                    if let EventKind::Action(a) = &e.kind {
                        num_actions += 1;
                        if num_actions > max && a.name.as_deref() == Some(ACTION_LISTEN) {
                            cut = Some(num_events);
                            break;
                        }
                    }
                }
                match cut {
                    Some(n) => applied[applied.len() - n..].to_vec(),
                    None => applied,
                }
            }
            None => applied,
        };
        let strip = |events: &[Event], again: bool| -> Option<Vec<Event>> {
            let applied = Self::applied_of(events);
            let mut actions = applied
                .iter()
                .enumerate()
                .filter(|(_, e)| matches!(e.kind, EventKind::Action(_)))
                .map(|(i, _)| i);
            let first = actions.next();
            let idx = if again { actions.next() } else { first }?;
            let rest: Vec<Event> = applied[idx..].iter().map(|e| (*e).clone()).collect();
            if rest.is_empty() {
                None
            } else {
                Some(rest)
            }
        };
        let mut old = old_states;
        let mut next = strip(&current, false);
        while let Some(events) = next {
            current = events;
            let applied = Self::applied_of(&current);
            let states = self.prediction_states(&applied, domain, rule_only);
            if states != old {
                if let Some(a) = self.recall(&states) {
                    return Some(a.clone());
                }
                old = states;
            }
            next = strip(&current, true);
        }
        None
    }

    /// Predicts from the conversation.
    pub(crate) fn predict(
        &self,
        conv: &Conv<'_>,
        domain: &Domain,
        rule_only: &RuleOnlyData,
        n_actions: usize,
        index_of: &dyn Fn(&str) -> Option<usize>,
    ) -> PolicyPrediction0 {
        let mut probs = vec![0.0; n_actions];
        let states = self.prediction_states(&conv.applied, domain, rule_only);
        let recalled = match self.recall(&states) {
            Some(a) => Some(a.clone()),
            None if self.augmented => self.recall_with_truncation(states, conv, domain, rule_only),
            None => None,
        };
        if let Some(action) = &recalled {
            let score = if self.use_nlu_confidence_as_score {
                conv.intent_confidence().unwrap_or(1.0)
            } else {
                1.0
            };
            if let Some(i) = index_of(action) {
                probs[i] = score;
            }
        }
        PolicyPrediction0 {
            probabilities: probs,
            policy: self.name(),
            priority: MEMOIZATION_PRIORITY,
            events: Vec::new(),
            is_end_to_end: false,
            is_no_user: false,
            hide_rule_turn: false,
        }
    }
}
