//! `RulePolicy` (`rasa/core/policies/rule_policy.py`, Rasa 3.x).
//!
//! Training builds a lookup from rule conversations: for each predictable action the
//! states before it (unset slots left out), with everything up to and including the
//! last state after a `...` snippet removed. A second "loop unhappy path" lookup,
//! from rules and stories, records when a loop is predicted right after a user message
//! (`loop_was_interrupted`) or when another action follows a non-listen action inside
//! a loop (`do_not_predict_loop_action`). With `check_for_contradictions` (default)
//! the rules are replayed against rules and stories: contradictions are errors,
//! rule-only slots/loops are collected, and rules never used by a story mark their
//! predictions `hide_rule_turn`.
//!
//! Prediction order: end-to-end rules, default intents (`restart`, `back`,
//! `session_start` right after `action_listen`), the active loop's happy path, the
//! longest matching rule (inside a loop, a generic rule predicting `action_listen`
//! predicts the loop instead), else `core_fallback_action_name` at
//! `core_fallback_threshold`.
//!
//! Tie-breaking (Rasa leaves it to Python's set order, which changes from run to run):
//! among matching rules of equal key length, the lexicographically smallest key wins.

use std::collections::{BTreeMap, BTreeSet};

use super::memoization::training_examples;
use super::state::{
    choose_last_user_input, states_for_history, states_key, PrevAction, RuleOnlyData, SlotFeature,
    State, StateOptions,
};
use super::{Conv, PolicyError, PolicyPrediction0};
use crate::domain::{Domain, RULE_SNIPPET_ACTION_NAME};
use crate::events::{Event, EventKind, ACTION_LISTEN};
use crate::training_data::graph::SHOULD_NOT_BE_SET;
use crate::training_data::TrainingTracker;

/// Rasa 3.x `RULE_POLICY_PRIORITY`.
pub const RULE_PRIORITY: u8 = 4;

const DEFAULT_RULES: &str = "predicting default action with intent ";
const LOOP_RULES: &str = "handling active loops and forms - ";
const LOOP_RULES_SEPARATOR: &str = " - ";
const DEFAULT_ACTION_MAPPINGS: &[(&str, &str)] = &[
    ("restart", "action_restart"),
    ("back", "action_back"),
    ("session_start", "action_session_start"),
];

/// RulePolicy settings (`config.yml`).
#[derive(Debug, Clone, PartialEq)]
pub struct RuleConfig {
    /// `core_fallback_threshold` (0.3).
    pub core_fallback_threshold: f64,
    /// `core_fallback_action_name` (`action_default_fallback`).
    pub core_fallback_action_name: String,
    /// `enable_fallback_prediction` (true).
    pub enable_fallback_prediction: bool,
    /// `restrict_rules` (true): at most one user message per rule.
    pub restrict_rules: bool,
    /// `check_for_contradictions` (true).
    pub check_for_contradictions: bool,
    /// `use_nlu_confidence_as_score` (false).
    pub use_nlu_confidence_as_score: bool,
}

impl Default for RuleConfig {
    fn default() -> Self {
        RuleConfig {
            core_fallback_threshold: 0.3,
            core_fallback_action_name: "action_default_fallback".into(),
            enable_fallback_prediction: true,
            restrict_rules: true,
            check_for_contradictions: true,
            use_nlu_confidence_as_score: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unhappy {
    LoopWasInterrupted,
    DoNotPredictLoopAction,
}

#[derive(Debug, Clone)]
struct Entry<T> {
    states: Vec<State>,
    value: T,
}

/// A trained rule policy.
#[derive(Debug, Clone)]
pub struct RulePolicy {
    /// The settings.
    pub config: RuleConfig,
    rules: BTreeMap<String, Entry<String>>,
    unhappy: BTreeMap<String, Entry<Unhappy>>,
    rules_not_in_stories: BTreeSet<String>,
    /// Slots and loops that only rules use.
    pub rule_only: RuleOnlyData,
}

/// Called for each replayed prediction: (policy, conversation name, predicted, gold,
/// prediction source); a returned rule key is deleted.
type CheckFn<'a> = dyn FnMut(&RulePolicy, &str, &str, &str, &str) -> Option<String> + 'a;

/// What `_predict` found, with the "prediction source" Rasa uses to tell rules apart.
pub(crate) struct RuleResult {
    pub prediction: PolicyPrediction0,
    pub source: Option<String>,
}

/// Rasa's `_create_feature_key` for rules: the states after the last `...` state.
fn feature_key(states: &[State]) -> Option<(String, Vec<State>)> {
    let start = states
        .iter()
        .rposition(|s| s.prev_action_name() == Some(RULE_SNIPPET_ACTION_NAME))
        .map(|i| i + 1)
        .unwrap_or(0);
    let kept = &states[start..];
    if kept.is_empty() {
        return None;
    }
    Some((states_key(kept), kept.to_vec()))
}

/// `_does_rule_match_state`.
fn rule_matches_state(rule: &State, conv: &State) -> bool {
    if let Some(ru) = &rule.user {
        let cu = conv.user.as_ref();
        if let Some(i) = &ru.intent {
            if cu.and_then(|u| u.intent.as_ref()) != Some(i) {
                return false;
            }
        }
        if let Some(t) = &ru.text {
            if cu.and_then(|u| u.text.as_ref()) != Some(t) {
                return false;
            }
        }
        if !ru.entities.is_empty() && cu.map(|u| &u.entities) != Some(&ru.entities) {
            return false;
        }
    }
    if let Some(rp) = &rule.prev_action {
        let ok = match (rp, &conv.prev_action) {
            (PrevAction::Name(a), Some(PrevAction::Name(b))) => a == b,
            (PrevAction::Text(a), Some(PrevAction::Text(b))) => a == b,
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    for (slot, rv) in &rule.slots {
        let cv = conv.slots.get(slot);
        match rv {
            SlotFeature::ShouldNotBeSet => {
                if matches!(cv, Some(SlotFeature::Values(_))) {
                    return false;
                }
            }
            SlotFeature::Values(v) => {
                if !matches!(cv, Some(SlotFeature::Values(w)) if w == v) {
                    return false;
                }
            }
        }
    }
    if let Some(rl) = &rule.active_loop {
        if rl == SHOULD_NOT_BE_SET {
            if conv
                .active_loop
                .as_deref()
                .is_some_and(|c| c != SHOULD_NOT_BE_SET)
            {
                return false;
            }
        } else if conv.active_loop.as_ref() != Some(rl) {
            return false;
        }
    }
    true
}

/// `_is_rule_applicable` for every turn: the keys whose states fit the conversation.
fn possible_keys<'a, T>(
    lookup: &'a BTreeMap<String, Entry<T>>,
    states: &[State],
) -> Vec<&'a String> {
    lookup
        .iter()
        .filter(|(_, entry)| {
            let rule = &entry.states;
            // Turns before the rule's first state always fit.
            states
                .iter()
                .rev()
                .take(rule.len())
                .enumerate()
                .all(|(i, conv)| {
                    let r = &rule[rule.len() - 1 - i];
                    match (r.prev_action.is_some(), conv.prev_action.is_some()) {
                        (false, false) => true,
                        (true, true) => rule_matches_state(r, conv),
                        _ => false,
                    }
                })
        })
        .map(|(k, _)| k)
        .collect()
}

/// The longest key; equal lengths: the lexicographically smallest.
fn best_key<'a>(keys: &[&'a String]) -> Option<&'a String> {
    keys.iter()
        .copied()
        .max_by(|a, b| a.len().cmp(&b.len()).then_with(|| b.cmp(a)))
}

fn count_user_messages(t: &TrainingTracker) -> usize {
    t.events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::User(_)))
        .count()
}

impl RulePolicy {
    /// Trains on rule and story conversations.
    pub fn train(
        config: RuleConfig,
        rules: &[TrainingTracker],
        stories: &[TrainingTracker],
        domain: &Domain,
        actions: &[String],
    ) -> Result<RulePolicy, PolicyError> {
        if !actions.contains(&config.core_fallback_action_name) {
            return Err(PolicyError::Config(format!(
                "The fallback action '{}' which was configured for the RulePolicy must be \
                 present in the domain.",
                config.core_fallback_action_name
            )));
        }
        if config.restrict_rules {
            let too_long: Vec<&str> = rules
                .iter()
                .filter(|t| count_user_messages(t) > 1)
                .map(|t| t.name.as_str())
                .collect();
            if !too_long.is_empty() {
                return Err(PolicyError::InvalidRule(format!(
                    "Found rules '{}' that contain more than 1 user message. Rules are not meant \
                     to hardcode a state machine. Please use stories for these cases.",
                    too_long.join(", ")
                )));
            }
        }
        if config.check_for_contradictions {
            check_incomplete_rules(rules, domain)?;
        }
        let rule_examples: Vec<(Vec<State>, String)> = rules
            .iter()
            .flat_map(|t| training_examples(t, domain, true))
            .collect();
        let story_examples: Vec<(Vec<State>, String)> = stories
            .iter()
            .flat_map(|t| training_examples(t, domain, false))
            .collect();

        // The rule lookup, with ambiguous keys forgotten (as MemoizationPolicy does).
        let mut lookup: BTreeMap<String, Entry<String>> = BTreeMap::new();
        let mut ambiguous: BTreeSet<String> = BTreeSet::new();
        for (states, action) in &rule_examples {
            let Some((key, kept)) = feature_key(states) else {
                continue;
            };
            if ambiguous.contains(&key) {
                continue;
            }
            match lookup.get(&key) {
                Some(e) if e.value != *action => {
                    lookup.remove(&key);
                    ambiguous.insert(key);
                }
                Some(_) => {}
                None => {
                    lookup.insert(
                        key,
                        Entry {
                            states: kept,
                            value: action.clone(),
                        },
                    );
                }
            }
        }
        lookup.retain(|_, e| e.value != RULE_SNIPPET_ACTION_NAME);

        let mut rule_only = RuleOnlyData::default();
        if config.check_for_contradictions {
            let collect = |examples: &[(Vec<State>, String)]| {
                let mut slots = BTreeSet::new();
                let mut loops = BTreeSet::new();
                for (states, _) in examples {
                    for s in states {
                        slots.extend(s.slots.keys().cloned());
                        if let Some(l) = &s.active_loop {
                            loops.insert(l.clone());
                        }
                    }
                }
                (slots, loops)
            };
            // Examples hold every prefix; the full conversations add their final state.
            let with_final = |ts: &[TrainingTracker], omit: bool| -> Vec<(Vec<State>, String)> {
                ts.iter()
                    .map(|t| {
                        let idx = crate::tracker::applied_event_indices(&t.events);
                        let applied: Vec<&Event> = idx.iter().map(|&i| &t.events[i]).collect();
                        (
                            states_for_history(
                                &applied,
                                domain,
                                StateOptions {
                                    omit_unset_slots: omit,
                                    ..StateOptions::default()
                                },
                            ),
                            String::new(),
                        )
                    })
                    .collect()
            };
            let (rule_slots, rule_loops) = collect(&with_final(rules, true));
            let (story_slots, story_loops) = collect(&with_final(stories, false));
            rule_only.slots = rule_slots
                .difference(&story_slots)
                .filter(|s| *s != SHOULD_NOT_BE_SET)
                .cloned()
                .collect();
            rule_only.loops = rule_loops
                .difference(&story_loops)
                .filter(|s| *s != SHOULD_NOT_BE_SET)
                .cloned()
                .collect();
        }

        let mut unhappy: BTreeMap<String, Entry<Unhappy>> = BTreeMap::new();
        for (states, action) in rule_examples.iter().chain(&story_examples) {
            let Some(last) = states.last() else { continue };
            let Some(active_loop) = last.active_loop_name() else {
                continue;
            };
            let reduced: Vec<State> =
                if states.len() == 1 || states[states.len() - 2].prev_action.is_none() {
                    vec![last.clone()]
                } else {
                    vec![
                        State {
                            prev_action: states[states.len() - 2].prev_action.clone(),
                            ..State::default()
                        },
                        last.clone(),
                    ]
                };
            let Some((key, kept)) = feature_key(&reduced) else {
                continue;
            };
            let listen = last.prev_is_listen();
            let value = if listen && action == active_loop {
                Unhappy::LoopWasInterrupted
            } else if !listen && action != active_loop {
                Unhappy::DoNotPredictLoopAction
            } else {
                continue;
            };
            unhappy.insert(
                key,
                Entry {
                    states: kept,
                    value,
                },
            );
        }

        let mut policy = RulePolicy {
            config,
            rules: lookup,
            unhappy,
            rules_not_in_stories: BTreeSet::new(),
            rule_only,
        };
        if policy.config.check_for_contradictions {
            policy.rules_not_in_stories = policy.analyze_rules(rules, stories, domain, actions)?;
        }
        Ok(policy)
    }

    /// Number of learned rule keys.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether no rule was learned.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The probabilities without a match: zeros and the fallback action at the
    /// threshold (when enabled).
    fn default_probs(&self, n: usize, index_of: &dyn Fn(&str) -> Option<usize>) -> Vec<f64> {
        let mut p = vec![0.0; n];
        if self.config.enable_fallback_prediction {
            if let Some(i) = index_of(&self.config.core_fallback_action_name) {
                p[i] = self.config.core_fallback_threshold;
            }
        }
        p
    }

    fn result_probs(
        &self,
        action: &str,
        conv: &Conv<'_>,
        n: usize,
        index_of: &dyn Fn(&str) -> Option<usize>,
    ) -> Vec<f64> {
        let mut p = self.default_probs(n, index_of);
        let score = if self.config.use_nlu_confidence_as_score {
            conv.intent_confidence().unwrap_or(1.0)
        } else {
            1.0
        };
        if let Some(i) = index_of(action) {
            p[i] = score;
        }
        p
    }

    fn prediction_states(&self, conv: &Conv<'_>, domain: &Domain, use_text: bool) -> Vec<State> {
        let mut states = states_for_history(&conv.applied, domain, StateOptions::default());
        choose_last_user_input(&mut states, use_text);
        states
    }

    /// `_find_action_from_rules`: (action, source, returning from unhappy path).
    fn find_action_from_rules(
        &self,
        conv: &Conv<'_>,
        domain: &Domain,
        use_text: bool,
    ) -> (Option<String>, Option<String>, bool) {
        if use_text && conv.latest_action.as_deref() != Some(ACTION_LISTEN) {
            return (None, None, false);
        }
        let states = self.prediction_states(conv, domain, use_text);
        let mut returning_from_unhappy_path = false;
        let keys = possible_keys(&self.rules, &states);
        let best = best_key(&keys).cloned();
        let mut predicted = best.as_ref().map(|k| self.rules[k].value.clone());
        if let Some(loop_name) = conv.active_loop_name() {
            let conditions: Vec<Unhappy> = possible_keys(&self.unhappy, &states)
                .into_iter()
                .map(|k| self.unhappy[k].value)
                .collect();
            let listen_from_general_rule = predicted.as_deref() == Some(ACTION_LISTEN)
                && best
                    .as_ref()
                    .and_then(|k| self.rules[k].states.last())
                    .is_none_or(|s| s.active_loop_name().is_none());
            if listen_from_general_rule {
                if !conditions.contains(&Unhappy::DoNotPredictLoopAction) {
                    return (Some(loop_name.to_owned()), best, false);
                }
                predicted = None;
            }
            if conditions.contains(&Unhappy::LoopWasInterrupted) {
                returning_from_unhappy_path = true;
            }
        }
        let source = best.or_else(|| feature_key(&states).map(|(k, _)| k));
        (predicted, source, returning_from_unhappy_path)
    }

    fn rule_prediction(
        &self,
        probabilities: Vec<f64>,
        source: &Option<String>,
        returning_from_unhappy_path: bool,
        is_end_to_end: bool,
        is_no_user: bool,
    ) -> PolicyPrediction0 {
        PolicyPrediction0 {
            probabilities,
            policy: "RulePolicy",
            priority: RULE_PRIORITY,
            events: if returning_from_unhappy_path {
                vec![Event::new(EventKind::LoopInterrupted {
                    is_interrupted: true,
                })]
            } else {
                Vec::new()
            },
            is_end_to_end,
            is_no_user,
            hide_rule_turn: source
                .as_ref()
                .is_some_and(|s| self.rules_not_in_stories.contains(s)),
        }
    }

    /// `RulePolicy._predict`.
    pub(crate) fn predict(
        &self,
        conv: &Conv<'_>,
        domain: &Domain,
        n: usize,
        index_of: &dyn Fn(&str) -> Option<usize>,
    ) -> RuleResult {
        let (text_action, text_source, text_unhappy) =
            self.find_action_from_rules(conv, domain, true);

        // Default intents right after the user spoke.
        if text_action.is_none() && conv.latest_action.as_deref() == Some(ACTION_LISTEN) {
            if let Some(intent) = conv.message.as_ref().and_then(|m| m.intent.as_deref()) {
                if let Some((_, action)) =
                    DEFAULT_ACTION_MAPPINGS.iter().find(|(i, _)| *i == intent)
                {
                    let source = Some(format!("{DEFAULT_RULES}{intent}"));
                    let p = self.result_probs(action, conv, n, index_of);
                    return RuleResult {
                        prediction: self.rule_prediction(p, &source, false, false, false),
                        source,
                    };
                }
            }
        }

        // The active loop's happy path.
        if let Some(l) = &conv.active_loop {
            if l.name != SHOULD_NOT_BE_SET && !l.rejected {
                let loop_name = l.name.clone();
                let (action, source) = match conv.latest_action.as_deref() {
                    Some(a) if a == loop_name => (
                        ACTION_LISTEN.to_owned(),
                        format!("{LOOP_RULES}{loop_name}{LOOP_RULES_SEPARATOR}{ACTION_LISTEN}"),
                    ),
                    Some(_) => (loop_name.clone(), format!("{LOOP_RULES}{loop_name}")),
                    None => (String::new(), String::new()),
                };
                if !action.is_empty() {
                    let source = Some(source);
                    let p = self.result_probs(&action, conv, n, index_of);
                    return RuleResult {
                        prediction: self.rule_prediction(p, &source, false, false, true),
                        source,
                    };
                }
            }
        }

        if let Some(action) = &text_action {
            let p = self.result_probs(action, conv, n, index_of);
            return RuleResult {
                prediction: self.rule_prediction(p, &text_source, text_unhappy, true, false),
                source: text_source,
            };
        }

        let (action, source, unhappy) = self.find_action_from_rules(conv, domain, false);
        let p = match &action {
            Some(a) => self.result_probs(a, conv, n, index_of),
            None => self.default_probs(n, index_of),
        };
        RuleResult {
            prediction: self.rule_prediction(p, &source, text_unhappy || unhappy, false, false),
            source,
        }
    }

    /// `_analyze_rules`: replays rules and stories, fails on contradictions, returns
    /// the prediction sources that no story uses.
    fn analyze_rules(
        &mut self,
        rules: &[TrainingTracker],
        stories: &[TrainingTracker],
        domain: &Domain,
        actions: &[String],
    ) -> Result<BTreeSet<String>, PolicyError> {
        let mut sources: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for t in rules {
            self.run_on_tracker(
                t,
                domain,
                actions,
                &mut |_, name, predicted, gold, source| {
                    let (rule_name, gold) =
                        if source.starts_with(DEFAULT_RULES) || source.starts_with(LOOP_RULES) {
                            (source.to_owned(), predicted.to_owned())
                        } else {
                            (name.to_owned(), gold.to_owned())
                        };
                    sources
                        .entry(source.to_owned())
                        .or_default()
                        .push((rule_name, gold));
                    None
                },
            );
        }
        let mut errors: Vec<String> = Vec::new();
        let mut used_in_stories: BTreeSet<String> = BTreeSet::new();
        let fallback = self.config.core_fallback_action_name.clone();
        for t in stories.iter().chain(rules) {
            self.run_on_tracker(t, domain, actions, &mut |policy, name, predicted, gold, source| {
                if !t.is_rule && predicted == gold {
                    used_in_stories.insert(source.to_owned());
                }
                if predicted == gold {
                    return None;
                }
                // `_should_delete`: a story's action after a rule's last action.
                if !t.is_rule && source.matches("prev_action").count() <= 1 && predicted == ACTION_LISTEN {
                    let prefix = &source[..source.len().saturating_sub(2)];
                    if policy
                        .rules
                        .keys()
                        .any(|k| k.starts_with(prefix) && k != source)
                    {
                        return Some(source.to_owned());
                    }
                }
                let contradicting: BTreeSet<&str> = sources
                    .get(source)
                    .map(|v| {
                        v.iter()
                            .filter(|(_, a)| a != gold)
                            .map(|(r, _)| r.as_str())
                            .collect()
                    })
                    .unwrap_or_default();
                if contradicting.is_empty() {
                    return None;
                }
                let kind = if t.is_rule { "rule" } else { "story" };
                let mut msg = format!(
                    "- the prediction of the action '{gold}' in {kind} '{name}' is contradicting with rule(s) '{}'",
                    contradicting.into_iter().collect::<Vec<_>>().join(", ")
                );
                if predicted != fallback {
                    msg.push_str(&format!(" which predicted action '{predicted}'"));
                }
                msg.push('.');
                errors.push(msg);
                None
            });
        }
        if !errors.is_empty() {
            return Err(PolicyError::InvalidRule(format!(
                "Contradicting rules or stories found 🚨\n\n{}\nPlease update your stories and \
                 rules so that they don't contradict each other.",
                errors.join("\n")
            )));
        }
        let mut all: BTreeSet<String> = sources.into_keys().collect();
        for (intent, _) in DEFAULT_ACTION_MAPPINGS {
            all.insert(format!("{DEFAULT_RULES}{intent}"));
        }
        for form in domain.forms.keys() {
            all.insert(format!("{LOOP_RULES}{form}"));
            all.insert(format!(
                "{LOOP_RULES}{form}{LOOP_RULES_SEPARATOR}{ACTION_LISTEN}"
            ));
        }
        Ok(all.difference(&used_in_stories).cloned().collect())
    }

    /// `_run_prediction_on_trackers` for one conversation: predicts every predictable
    /// action and calls `check(policy, name, predicted, gold, source)`. A returned key
    /// is deleted from the rules immediately (Rasa deletes it while iterating).
    fn run_on_tracker(
        &mut self,
        t: &TrainingTracker,
        domain: &Domain,
        actions: &[String],
        check: &mut CheckFn<'_>,
    ) {
        let index_of = |a: &str| actions.iter().position(|x| x == a);
        let idx = crate::tracker::applied_event_indices(&t.events);
        let mut running: Vec<Event> = Vec::new();
        let mut unpredictable_next = true;
        for i in idx {
            let e = &t.events[i];
            let EventKind::Action(a) = &e.kind else {
                running.push(e.clone());
                continue;
            };
            if a.name.as_deref() == Some(RULE_SNIPPET_ACTION_NAME) {
                unpredictable_next = true;
                running.push(e.clone());
                continue;
            }
            if unpredictable_next || t.unpredictable.get(i).copied().unwrap_or(false) {
                unpredictable_next = false;
                running.push(e.clone());
                continue;
            }
            let gold = a
                .name
                .clone()
                .filter(|n| !n.is_empty())
                .or_else(|| a.action_text.clone())
                .unwrap_or_default();
            let (mut predicted, mut source) =
                self.predict_for_analysis(&running, domain, actions, t.is_rule, &index_of);
            let active = Conv::from_events(&running, domain)
                .active_loop_name()
                .map(str::to_owned);
            if let Some(loop_name) = active {
                if predicted.as_deref() != Some(gold.as_str())
                    && predicted.as_deref() == Some(loop_name.as_str())
                {
                    running.push(Event::new(EventKind::ActionExecutionRejected {
                        name: Some(loop_name),
                        policy: None,
                        confidence: None,
                    }));
                    (predicted, source) =
                        self.predict_for_analysis(&running, domain, actions, t.is_rule, &index_of);
                }
            }
            if let (Some(p), Some(s)) = (&predicted, &source) {
                if let Some(key) = check(self, &t.name, p, &gold, s) {
                    self.rules.remove(&key);
                }
            }
            running.push(e.clone());
        }
    }

    /// `_predict_next_action`: the argmax, or nothing for a story without a match.
    fn predict_for_analysis(
        &self,
        running: &[Event],
        domain: &Domain,
        actions: &[String],
        is_rule: bool,
        index_of: &dyn Fn(&str) -> Option<usize>,
    ) -> (Option<String>, Option<String>) {
        let conv = Conv::from_events(running, domain);
        let r = self.predict(&conv, domain, actions.len(), index_of);
        let default = self.default_probs(actions.len(), index_of);
        if r.prediction.probabilities == default && !is_rule {
            return (None, r.source);
        }
        let best = super::argmax(&r.prediction.probabilities);
        (actions.get(best).cloned(), r.source)
    }
}

/// `_check_for_incomplete_rules`: an action that sets slots or a loop in some rules
/// must do so in every rule (or the rule must end with `wait_for_user_input: false`).
fn check_incomplete_rules(rules: &[TrainingTracker], domain: &Domain) -> Result<(), PolicyError> {
    // Action fingerprints: the featurized slots and the loops set right after an action.
    let featurized: BTreeSet<&str> = domain
        .slots
        .iter()
        .filter(|s| !super::state::slot_features(s, &serde_json::Value::Null).is_empty())
        .map(|s| s.name.as_str())
        .collect();
    let mut slots_after: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut loops_after: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut has_fingerprint: BTreeSet<String> = BTreeSet::new();
    for t in rules {
        let mut action: Option<String> = None;
        for e in &t.events {
            match &e.kind {
                EventKind::Action(a) => {
                    action = a
                        .name
                        .clone()
                        .filter(|n| !n.is_empty())
                        .or_else(|| a.action_text.clone());
                }
                EventKind::User(_) => action = None,
                kind => {
                    if let Some(a) = &action {
                        has_fingerprint.insert(a.clone());
                        match kind {
                            EventKind::Slot { name, .. } if featurized.contains(name.as_str()) => {
                                slots_after
                                    .entry(a.clone())
                                    .or_default()
                                    .insert(name.clone());
                            }
                            EventKind::ActiveLoop { name } => {
                                loops_after
                                    .entry(a.clone())
                                    .or_default()
                                    .insert(name.clone().unwrap_or_else(|| "None".into()));
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
    }
    let mut errors = Vec::new();
    for t in rules {
        let idx = crate::tracker::applied_event_indices(&t.events);
        let applied: Vec<&Event> = idx.iter().map(|&i| &t.events[i]).collect();
        let states = states_for_history(&applied, domain, StateOptions::default());
        let mut next: Vec<Option<String>> = states
            .iter()
            .skip(1)
            .map(|s| s.prev_action_name().map(str::to_owned))
            .collect();
        next.push(Some(ACTION_LISTEN.to_owned()));
        for (state, next_action) in states.iter().zip(next) {
            let Some(prev) = state.prev_action_name() else {
                continue;
            };
            if !has_fingerprint.contains(prev)
                || next_action.as_deref() == Some(RULE_SNIPPET_ACTION_NAME)
                || prev == RULE_SNIPPET_ACTION_NAME
            {
                continue;
            }
            if let Some(expected) = slots_after.get(prev) {
                let missing: Vec<&str> = expected
                    .iter()
                    .filter(|s| !state.slots.contains_key(*s))
                    .map(String::as_str)
                    .collect();
                if !missing.is_empty() {
                    errors.push(format!(
                        "- the action '{prev}' in rule '{}' does not set some of the slots that it sets \
                         in other rules. Slots not set in rule '{}': '{}'. Please update the rule with \
                         an appropriate slot or if it is the last action add 'wait_for_user_input: false' \
                         after this action.",
                        t.name,
                        t.name,
                        missing.join(", ")
                    ));
                }
            }
            if let Some(expected) = loops_after.get(prev) {
                let current = state.active_loop.clone();
                if !current.as_ref().is_some_and(|c| expected.contains(c)) {
                    let mut shown: Vec<String> = expected
                        .iter()
                        .map(|l| {
                            if l == SHOULD_NOT_BE_SET {
                                "null".to_owned()
                            } else {
                                l.clone()
                            }
                        })
                        .collect();
                    shown.push(prev.to_owned());
                    shown.sort();
                    shown.dedup();
                    errors.push(format!(
                        "- the form '{prev}' in rule '{}' does not set the 'active_loop', that it sets \
                         in other rules: '{}'. Please update the rule with the appropriate 'active loop' \
                         property or if it is the last action add 'wait_for_user_input: false' after this action.",
                        t.name,
                        shown.join(", ")
                    ));
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(PolicyError::InvalidRule(format!(
            "Incomplete rules found🚨\n\n{}\nPlease note that if some slots or active loops should \
             not be set during prediction you need to explicitly set them to 'null' in the rules.",
            errors.join("\n")
        )))
    }
}
