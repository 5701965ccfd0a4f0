//! Dialogue policies: Rasa 3.6's `RulePolicy`, `MemoizationPolicy` and
//! `AugmentedMemoizationPolicy`, trained from the project's stories and rules at
//! start-up, and the ensemble that picks one prediction (`rasa/core/policies/
//! ensemble.py`).
//!
//! [`PolicyEnsemble::train`] reads `policies:` from `config.yml`. Machine-learning
//! policies (TED, UnexpecTED, ...) are skipped with one warning each; without any
//! `policies:` the ensemble is Rasa's default deterministic part: MemoizationPolicy
//! and RulePolicy.
//!
//! [`PolicyEnsemble::predict`] asks every policy and combines as Rasa does:
//!
//! 1. if the last `action`-or-`action_execution_rejected` event is a rejection, that
//!    action's probability is set to 0 in every prediction;
//! 2. if any prediction is a "no user" prediction (a loop's happy path) only those
//!    compete, else if any is end-to-end only those;
//! 3. the winner has the highest (max probability, priority) pair — RulePolicy 4,
//!    (Augmented)MemoizationPolicy 3 — and on an exact tie the policy listed first in
//!    `config.yml` wins;
//! 4. the action is the first index with the highest probability; all zeros give
//!    index 0, `action_listen` (e.g. a memoization-only ensemble with no match:
//!    `action_listen` with confidence 0.0).
//!
//! Events: every prediction's events (e.g. `loop_interrupted`) are returned; the
//! caller adds `user_featurization` (with [`PolicyPrediction::use_text_for_featurization`])
//! after an `action_listen`.

pub mod memoization;
pub mod rule;
pub mod state;

use serde_json::Value;

use crate::domain::Domain;
use crate::events::{Event, EventKind};
use crate::tracker::{applied_event_indices, DialogueStateTracker};
use crate::training_data::TrainingData;
use memoization::MemoizationPolicy;
use rule::{RuleConfig, RulePolicy};
use state::{LoopState, Message, RuleOnlyData, SimTracker};

/// The ensemble's choice.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyPrediction {
    /// The winning action name.
    pub action: String,
    /// The policy class name Rasa writes in `action` events (e.g. `RulePolicy`);
    /// `None` when no policy is configured.
    pub policy: Option<String>,
    /// The winner's highest probability.
    pub confidence: f64,
    /// Events to log before the action, e.g. `loop_interrupted` (not
    /// `user_featurization`, which the caller adds).
    pub events: Vec<Event>,
    /// Whether the action event gets `hide_rule_turn: true`.
    pub hide_rule_turn: bool,
    /// Whether this is a loop happy-path prediction.
    pub is_no_user: bool,
    /// Whether the prediction used the user's text (end-to-end): the value of the
    /// `user_featurization` event the caller adds after `action_listen`.
    pub use_text_for_featurization: bool,
    /// One score per action, in the domain's action order (end-to-end bot texts of
    /// the stories follow the domain's actions).
    pub scores: Vec<(String, f64)>,
}

/// A policy configuration or training problem.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// `config.yml` `policies:` is invalid, or the domain lacks a configured action.
    #[error("invalid policy configuration: {0}")]
    Config(String),
    /// Rules are invalid: contradicting, incomplete, or too long.
    #[error("{0}")]
    InvalidRule(String),
}

/// One policy's prediction before combination (Rasa's `PolicyPrediction`).
#[derive(Debug, Clone)]
pub(crate) struct PolicyPrediction0 {
    pub probabilities: Vec<f64>,
    pub policy: &'static str,
    pub priority: u8,
    pub events: Vec<Event>,
    pub is_end_to_end: bool,
    pub is_no_user: bool,
    pub hide_rule_turn: bool,
}

impl PolicyPrediction0 {
    fn max(&self) -> f64 {
        self.probabilities.iter().copied().fold(0.0, f64::max)
    }
}

/// Index of the first maximum (0 for an empty or all-zero vector).
pub(crate) fn argmax(p: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in p.iter().enumerate() {
        if *v > p[best] {
            best = i;
        }
    }
    best
}

/// What the policies read from a conversation: the applied events (for the states)
/// and the live tracker's latest action, message and loop.
pub(crate) struct Conv<'a> {
    pub applied: Vec<&'a Event>,
    pub latest_action: Option<String>,
    pub message: Option<Message>,
    pub active_loop: Option<LoopState>,
}

impl<'a> Conv<'a> {
    fn from_tracker(t: &'a DialogueStateTracker) -> Conv<'a> {
        let lm = t.latest_message();
        let message = Message {
            intent: lm.intent_name().map(str::to_owned),
            confidence: lm
                .parse_data
                .get("intent")
                .and_then(|i| i.get("confidence"))
                .and_then(Value::as_f64),
            text: lm
                .parse_data
                .get("text")
                .and_then(Value::as_str)
                .map(str::to_owned),
            entities: lm.entities.clone(),
            use_text: lm.use_text_for_featurization,
        };
        Conv {
            applied: t.applied_events(),
            latest_action: t.latest_action_name().map(str::to_owned),
            message: Some(message),
            active_loop: t.active_loop().map(|l| LoopState {
                name: l.name.clone(),
                rejected: l.rejected,
                interrupted: l.is_interrupted,
            }),
        }
    }

    /// A conversation made of `events` (a training tracker being replayed).
    pub(crate) fn from_events(events: &'a [Event], domain: &Domain) -> Conv<'a> {
        let applied: Vec<&Event> = applied_event_indices(events)
            .into_iter()
            .map(|i| &events[i])
            .collect();
        let mut sim = SimTracker::new(&domain.slots);
        for e in &applied {
            sim.apply(e);
        }
        Conv {
            latest_action: sim.latest_action_name().map(str::to_owned),
            message: sim.message.clone(),
            active_loop: sim.active_loop.clone(),
            applied,
        }
    }

    /// The active loop, unless none or `should_not_be_set`.
    pub(crate) fn active_loop_name(&self) -> Option<&str> {
        self.active_loop
            .as_ref()
            .map(|l| l.name.as_str())
            .filter(|n| *n != crate::training_data::graph::SHOULD_NOT_BE_SET)
    }

    /// The latest intent's confidence.
    pub(crate) fn intent_confidence(&self) -> Option<f64> {
        self.message.as_ref().and_then(|m| m.confidence)
    }
}

#[derive(Debug, Clone)]
enum Policy {
    Rule(RulePolicy),
    Memo(MemoizationPolicy),
}

/// The trained policies.
#[derive(Debug, Clone)]
pub struct PolicyEnsemble {
    actions: Vec<String>,
    policies: Vec<Policy>,
    rule_only: RuleOnlyData,
    /// Warnings from training (skipped policies, unknown actions in stories).
    pub warnings: Vec<String>,
}

fn opt_usize(v: Option<&Value>, key: &str, policy: &str) -> Result<Option<usize>, PolicyError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64().map(|x| x as usize)),
        Some(other) => Err(PolicyError::Config(format!(
            "{policy}: '{key}' must be a positive whole number or null, found {other}"
        ))),
    }
}

fn opt_bool(
    v: Option<&Value>,
    key: &str,
    policy: &str,
    default: bool,
) -> Result<bool, PolicyError> {
    match v {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(PolicyError::Config(format!(
            "{policy}: '{key}' must be true or false, found {other}"
        ))),
    }
}

const ML_POLICIES: &[&str] = &[
    "TEDPolicy",
    "UnexpecTEDIntentPolicy",
    "SklearnPolicy",
    "KerasPolicy",
    "EmbeddingPolicy",
];

impl PolicyEnsemble {
    /// Trains the policies of `config` (the whole parsed `config.yml`) on the
    /// training data. Contradicting or incomplete rules are errors (unless
    /// `check_for_contradictions: false`).
    pub fn train(
        config: &Value,
        domain: &Domain,
        data: &TrainingData,
    ) -> Result<PolicyEnsemble, PolicyError> {
        let mut warnings = Vec::new();
        let mut actions = domain.action_names();
        for t in data.action_texts() {
            if !actions.contains(&t) {
                actions.push(t);
            }
        }
        let entries: Vec<Value> = match config.get("policies") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a.clone(),
            Some(other) => {
                return Err(PolicyError::Config(format!(
                    "'policies' must be a list, found {other}"
                )))
            }
        };
        let entries = if entries.is_empty() {
            vec![
                serde_json::json!({"name": "MemoizationPolicy"}),
                serde_json::json!({"name": "RulePolicy"}),
            ]
        } else {
            entries
        };
        let stories = data.story_trackers(domain);
        let rules = data.rule_trackers(domain);
        for t in stories.iter().chain(&rules) {
            for e in &t.events {
                if let EventKind::Action(a) = &e.kind {
                    if let Some(n) = &a.name {
                        if !actions.contains(n) && n != crate::domain::RULE_SNIPPET_ACTION_NAME {
                            warnings.push(format!(
                                "{}: the action '{n}' is not in the domain",
                                t.location
                            ));
                            actions.push(n.clone());
                        }
                    }
                }
            }
        }
        let mut policies = Vec::new();
        for entry in &entries {
            let o = entry.as_object().ok_or_else(|| {
                PolicyError::Config(format!(
                    "a policy must be a map with a 'name', found {entry}"
                ))
            })?;
            let full = o.get("name").and_then(Value::as_str).ok_or_else(|| {
                PolicyError::Config(format!("a policy needs a 'name', found {entry}"))
            })?;
            let name = full.rsplit('.').next().unwrap_or(full);
            match name {
                "RulePolicy" => {
                    let defaults = RuleConfig::default();
                    let threshold = match o.get("core_fallback_threshold") {
                        None | Some(Value::Null) => defaults.core_fallback_threshold,
                        Some(v) => v.as_f64().ok_or_else(|| {
                            PolicyError::Config(format!(
                                "RulePolicy: 'core_fallback_threshold' must be a number, found {v}"
                            ))
                        })?,
                    };
                    let fallback = match o.get("core_fallback_action_name") {
                        None | Some(Value::Null) => defaults.core_fallback_action_name.clone(),
                        Some(Value::String(s)) => s.clone(),
                        Some(v) => {
                            return Err(PolicyError::Config(format!(
                                "RulePolicy: 'core_fallback_action_name' must be an action name, found {v}"
                            )))
                        }
                    };
                    let cfg = RuleConfig {
                        core_fallback_threshold: threshold,
                        core_fallback_action_name: fallback,
                        enable_fallback_prediction: opt_bool(
                            o.get("enable_fallback_prediction"),
                            "enable_fallback_prediction",
                            name,
                            true,
                        )?,
                        restrict_rules: opt_bool(
                            o.get("restrict_rules"),
                            "restrict_rules",
                            name,
                            true,
                        )?,
                        check_for_contradictions: opt_bool(
                            o.get("check_for_contradictions"),
                            "check_for_contradictions",
                            name,
                            true,
                        )?,
                        use_nlu_confidence_as_score: opt_bool(
                            o.get("use_nlu_confidence_as_score"),
                            "use_nlu_confidence_as_score",
                            name,
                            false,
                        )?,
                    };
                    policies.push(Policy::Rule(RulePolicy::train(
                        cfg, &rules, &stories, domain, &actions,
                    )?));
                }
                "MemoizationPolicy" | "AugmentedMemoizationPolicy" => {
                    let max_history = opt_usize(o.get("max_history"), "max_history", name)?;
                    let nlu = opt_bool(
                        o.get("use_nlu_confidence_as_score"),
                        "use_nlu_confidence_as_score",
                        name,
                        false,
                    )?;
                    policies.push(Policy::Memo(MemoizationPolicy::train(
                        &stories,
                        domain,
                        max_history,
                        name == "AugmentedMemoizationPolicy",
                        nlu,
                    )));
                }
                other => {
                    let what = if ML_POLICIES.contains(&other) {
                        "is a machine-learning policy palaver does not run"
                    } else {
                        "is not a policy palaver knows"
                    };
                    let w = format!("policy '{full}' {what}; it is skipped");
                    tracing::warn!("{w}");
                    warnings.push(w);
                }
            }
        }
        let rule_only = policies
            .iter()
            .find_map(|p| match p {
                Policy::Rule(r) => Some(r.rule_only.clone()),
                Policy::Memo(_) => None,
            })
            .unwrap_or_default();
        for w in &warnings {
            if w.contains("not in the domain") {
                tracing::warn!("{w}");
            }
        }
        Ok(PolicyEnsemble {
            actions,
            policies,
            rule_only,
            warnings,
        })
    }

    /// The actions scores are given for: the domain's actions in Rasa's order, then
    /// end-to-end bot texts from the stories.
    pub fn action_names(&self) -> &[String] {
        &self.actions
    }

    /// The names of the policies that run, in `config.yml` order.
    pub fn policy_names(&self) -> Vec<&'static str> {
        self.policies
            .iter()
            .map(|p| match p {
                Policy::Rule(_) => "RulePolicy",
                Policy::Memo(m) => m.name(),
            })
            .collect()
    }

    /// Predicts the next action for the tracker (its applied events are the
    /// history; pass a tracker holding the current session).
    pub fn predict(&self, tracker: &DialogueStateTracker, domain: &Domain) -> PolicyPrediction {
        let conv = Conv::from_tracker(tracker);
        let rejected = tracker.events().iter().rev().find_map(|e| match &e.kind {
            EventKind::Action(_) => Some(None),
            EventKind::ActionExecutionRejected { name, .. } => Some(name.clone()),
            _ => None,
        });
        self.predict_conv(&conv, domain, rejected.flatten())
    }

    fn predict_conv(
        &self,
        conv: &Conv<'_>,
        domain: &Domain,
        rejected: Option<String>,
    ) -> PolicyPrediction {
        let n = self.actions.len();
        let index_of = |a: &str| self.actions.iter().position(|x| x == a);
        let mut predictions: Vec<PolicyPrediction0> = self
            .policies
            .iter()
            .map(|p| match p {
                Policy::Rule(r) => r.predict(conv, domain, n, &index_of).prediction,
                Policy::Memo(m) => m.predict(conv, domain, &self.rule_only, n, &index_of),
            })
            .collect();
        if let Some(i) = rejected.as_deref().and_then(index_of) {
            for p in &mut predictions {
                p.probabilities[i] = 0.0;
            }
        }
        let is_no_user = predictions.iter().any(|p| p.is_no_user);
        let is_e2e = predictions.iter().any(|p| p.is_end_to_end);
        let mut events = Vec::new();
        let mut best: Option<usize> = None;
        let mut best_conf = (-1.0f64, -1i32);
        for (i, p) in predictions.iter().enumerate() {
            events.extend(p.events.iter().cloned());
            if p.is_no_user != is_no_user {
                continue;
            }
            if !is_no_user && p.is_end_to_end != is_e2e {
                continue;
            }
            let conf = (p.max(), i32::from(p.priority));
            if conf.0 > best_conf.0 || (conf.0 == best_conf.0 && conf.1 > best_conf.1) {
                best_conf = conf;
                best = Some(i);
            }
        }
        let Some(best) = best else {
            return PolicyPrediction {
                action: self
                    .actions
                    .first()
                    .cloned()
                    .unwrap_or_else(|| crate::events::ACTION_LISTEN.to_owned()),
                policy: None,
                confidence: 0.0,
                events,
                hide_rule_turn: false,
                is_no_user: false,
                use_text_for_featurization: false,
                scores: self.actions.iter().map(|a| (a.clone(), 0.0)).collect(),
            };
        };
        let w = &predictions[best];
        let idx = argmax(&w.probabilities);
        PolicyPrediction {
            action: self.actions[idx].clone(),
            policy: Some(w.policy.to_owned()),
            confidence: w.max(),
            events,
            hide_rule_turn: w.hide_rule_turn,
            is_no_user: w.is_no_user,
            use_text_for_featurization: w.is_end_to_end,
            scores: self
                .actions
                .iter()
                .cloned()
                .zip(w.probabilities.iter().copied())
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests;
