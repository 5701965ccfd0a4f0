//! `rasa data validate` for a domain and its training data.
//!
//! Errors: intents, entities, actions, responses, slots or forms used in stories,
//! rules or NLU data but missing from the domain; stories whose identical histories
//! (the last `max_history` states) lead to different actions; rules that contradict
//! each other or the stories (as RulePolicy training finds them).
//! Warnings: domain intents without NLU examples.

use std::collections::{BTreeMap, BTreeSet};

use super::graph::TrainingTracker;
use super::stories::{OrAlternative, Step, Story};
use super::TrainingData;
use crate::domain::{Domain, DEFAULT_INTENTS, RULE_SNIPPET_ACTION_NAME};
use crate::events::{Event, EventKind, ACTION_LISTEN};
use crate::policies::state::{
    remove_user_text_if_intent, states_for_history, states_key, StateOptions,
};

/// How serious an issue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum IssueLevel {
    /// Rasa fails validation.
    Error,
    /// Rasa warns.
    Warning,
}

/// One validation finding.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationIssue {
    /// Error or warning.
    pub level: IssueLevel,
    /// What is wrong.
    pub message: String,
    /// `file:line` of the story or rule, when known.
    pub location: Option<String>,
}

impl std::fmt::Display for ValidationIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let level = match self.level {
            IssueLevel::Error => "error",
            IssueLevel::Warning => "warning",
        };
        match &self.location {
            Some(l) => write!(f, "{level}: {l}: {}", self.message),
            None => write!(f, "{level}: {}", self.message),
        }
    }
}

fn error(message: String, location: Option<String>) -> ValidationIssue {
    ValidationIssue {
        level: IssueLevel::Error,
        message,
        location,
    }
}

fn kind(s: &Story) -> &'static str {
    if s.is_rule {
        "rule"
    } else {
        "story"
    }
}

/// Validates the project as `rasa data validate` does (story structure with the
/// whole history; see [`validate_story_structure`] for a `max_history`).
pub fn validate_project(domain: &Domain, data: &TrainingData) -> Vec<ValidationIssue> {
    let mut issues = Vec::new();
    let nlu_intents = data.nlu.intents();
    let base = |i: &str| i.split('/').next().unwrap_or(i).to_owned();
    for intent in &nlu_intents {
        if !domain.intent_exists(&base(intent)) {
            issues.push(error(
                format!(
                    "The intent '{intent}' is listed in the NLU training data, but is not in the domain file."
                ),
                None,
            ));
        }
    }
    let with_examples: BTreeSet<String> = nlu_intents.iter().map(|i| base(i)).collect();
    for intent in &domain.intents {
        if !with_examples.contains(intent) && !DEFAULT_INTENTS.contains(&intent.as_str()) {
            issues.push(ValidationIssue {
                level: IssueLevel::Warning,
                message: format!(
                    "The intent '{intent}' is listed in the domain file, but is not found in the NLU training data."
                ),
                location: None,
            });
        }
    }
    let mut known_actions: BTreeSet<String> = domain.action_names().into_iter().collect();
    known_actions.extend(domain.responses.keys().cloned());
    known_actions.extend(data.responses.keys().cloned());
    for story in data.stories.iter().chain(&data.rules) {
        let loc = Some(story.location());
        let what = format!("{} '{}'", kind(story), story.name);
        for u in story.user_steps() {
            if let Some(i) = &u.intent {
                if !domain.intent_exists(i) {
                    issues.push(error(
                        format!("The intent '{i}' is used in the {what}, but it is not listed in the domain file."),
                        loc.clone(),
                    ));
                }
            }
            for e in &u.entities {
                if let Some(name) = e.get("entity").and_then(|n| n.as_str()) {
                    if !domain.entities.iter().any(|d| d == name) {
                        issues.push(error(
                            format!("The entity '{name}' is used in the {what}, but it is not listed in the domain file."),
                            loc.clone(),
                        ));
                    }
                }
            }
        }
        let mut slot_names: Vec<&str> = Vec::new();
        for step in story.conditions.iter().chain(&story.steps) {
            match step {
                Step::Action(a) if a != RULE_SNIPPET_ACTION_NAME && !known_actions.contains(a) => {
                    let msg = if a.starts_with("utter_") {
                        format!(
                            "The action '{a}' is used in the {what}, but is not a valid utterance action. \
                             Please make sure the action is listed in your domain and there is a response defined with its name."
                        )
                    } else {
                        format!("The action '{a}' is used in the {what}, but it is not listed in the domain file.")
                    };
                    issues.push(error(msg, loc.clone()));
                }
                Step::SlotWasSet(slots) => slot_names.extend(slots.iter().map(|(s, _)| s.as_str())),
                Step::Checkpoint { slots, .. } => {
                    slot_names.extend(slots.iter().map(|(s, _)| s.as_str()))
                }
                Step::Or(alts) => {
                    for a in alts {
                        if let OrAlternative::Slot(s, _) = a {
                            slot_names.push(s);
                        }
                    }
                }
                Step::ActiveLoop(Some(l))
                    if !domain.forms.contains_key(l) && !known_actions.contains(l) =>
                {
                    issues.push(error(
                        format!("The form '{l}' is used in the {what}, but it is not listed in the domain file."),
                        loc.clone(),
                    ));
                }
                _ => {}
            }
        }
        for s in slot_names {
            if domain.slot(s).is_none() {
                issues.push(error(
                    format!("The slot '{s}' is used in the {what}, but it is not a valid slot in the domain file."),
                    loc.clone(),
                ));
            }
        }
    }
    issues.extend(validate_story_structure(domain, data, None));
    let config = serde_json::json!({"policies": [{"name": "RulePolicy"}]});
    if !data.rules.is_empty() {
        if let Err(e) = crate::policies::PolicyEnsemble::train(&config, domain, data) {
            issues.push(error(e.to_string(), None));
        }
    }
    issues
}

fn last_user_intent(events: &[&Event]) -> Option<String> {
    events.iter().rev().find_map(|e| match &e.kind {
        EventKind::User(u) => Some(
            u.intent_name()
                .map(str::to_owned)
                .or_else(|| u.text.clone())
                .unwrap_or_default(),
        ),
        _ => None,
    })
}

/// Story conflicts: identical state histories (the last `max_history` states, all of
/// them when `None`) followed by different actions in different stories.
pub fn validate_story_structure(
    domain: &Domain,
    data: &TrainingData,
    max_history: Option<usize>,
) -> Vec<ValidationIssue> {
    let trackers: Vec<TrainingTracker> = data.story_trackers(domain);
    // key -> action -> (stories, description of the turn)
    let mut seen: BTreeMap<String, BTreeMap<String, (BTreeSet<String>, String)>> = BTreeMap::new();
    for t in &trackers {
        let idx = crate::tracker::applied_event_indices(&t.events);
        let applied: Vec<&Event> = idx.iter().map(|&i| &t.events[i]).collect();
        let mut states = states_for_history(&applied, domain, StateOptions::default());
        remove_user_text_if_intent(&mut states);
        let mut n = 0;
        for (pos, e) in applied.iter().enumerate() {
            let EventKind::Action(a) = &e.kind else {
                continue;
            };
            n += 1;
            let sliced = match max_history {
                Some(m) if m > 0 && n > m => &states[n - m..n],
                _ => &states[..n],
            };
            let action = a
                .name
                .clone()
                .filter(|x| !x.is_empty())
                .or_else(|| a.action_text.clone())
                .unwrap_or_default();
            let after = match applied[..pos].iter().rev().find_map(|e| e.action_name()) {
                Some(ACTION_LISTEN) | None => match last_user_intent(&applied[..pos]) {
                    Some(i) => format!("intent '{i}'"),
                    None => "the conversation start".to_owned(),
                },
                Some(prev) => format!("action '{prev}'"),
            };
            let entry = seen
                .entry(states_key(sliced))
                .or_default()
                .entry(action)
                .or_insert_with(|| (BTreeSet::new(), after));
            entry.0.insert(t.name.clone());
        }
    }
    let mut issues = Vec::new();
    for actions in seen.values() {
        if actions.len() < 2 {
            continue;
        }
        let after = actions
            .values()
            .next()
            .map(|(_, a)| a.clone())
            .unwrap_or_default();
        let mut msg = format!("Story structure conflict after {after}:");
        for (action, (stories, _)) in actions {
            let names: Vec<String> = stories.iter().map(|s| format!("'{s}'")).collect();
            msg.push_str(&format!("\n  {action} predicted in {}", names.join(", ")));
        }
        issues.push(error(msg, None));
    }
    issues
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(text: &str) -> Domain {
        Domain::from_documents(&[(
            "domain.yml".into(),
            crate::yaml::parse_str(text, "domain.yml").unwrap(),
        )])
        .unwrap()
    }

    #[test]
    fn reference_bot_is_clean() {
        let root =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference_bot");
        let d = Domain::load(&root.join("domain.yml")).unwrap();
        let data = super::super::load(&root.join("data")).unwrap();
        let issues = validate_project(&d, &data);
        let errors: Vec<String> = issues
            .iter()
            .filter(|i| i.level == IssueLevel::Error)
            .map(|i| i.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn finds_unknown_names() {
        let d = domain(
            "intents: [greet, lonely]\nentities: [city]\nslots:\n  s: {type: text, mappings: []}\nresponses:\n  utter_hi: [{text: hi}]\nactions: [action_x]\n",
        );
        let data = TrainingData::from_yaml(
            "nlu:\n- intent: greet\n  examples: |\n    - hi\n- intent: unknown_nlu\n  examples: |\n    - x\nstories:\n- story: s1\n  steps:\n  - intent: nope\n    entities: [town]\n  - action: utter_missing\n  - action: action_missing\n  - slot_was_set:\n    - ghost: 1\n  - active_loop: no_form\n  - action: utter_hi\n  - action: action_x\n",
        )
        .unwrap();
        let issues = validate_project(&d, &data);
        let text: Vec<String> = issues.iter().map(|i| i.to_string()).collect();
        let has = |s: &str| text.iter().any(|t| t.contains(s));
        assert!(has("intent 'unknown_nlu' is listed in the NLU"), "{text:?}");
        assert!(has("warning: The intent 'lonely'"), "{text:?}");
        assert!(has("intent 'nope' is used in the story 's1'"), "{text:?}");
        assert!(has("entity 'town'"), "{text:?}");
        assert!(
            has("'utter_missing' is used in the story 's1', but is not a valid utterance"),
            "{text:?}"
        );
        assert!(has("'action_missing' is used"), "{text:?}");
        assert!(has("slot 'ghost'"), "{text:?}");
        assert!(has("form 'no_form'"), "{text:?}");
        assert!(!has("utter_hi") && !has("'action_x'"), "{text:?}");
        assert!(text
            .iter()
            .all(|t| t.starts_with("error") || t.starts_with("warning")));
    }

    #[test]
    fn story_conflicts() {
        let d =
            domain("intents: [a, b]\nresponses:\n  utter_x: [{text: x}]\n  utter_y: [{text: y}]\n");
        let data = TrainingData::from_yaml(
            "stories:\n- story: one\n  steps:\n  - intent: b\n  - intent: a\n  - action: utter_x\n- story: two\n  steps:\n  - intent: a\n  - action: utter_y\n",
        )
        .unwrap();
        assert!(validate_story_structure(&d, &data, None).is_empty());
        let issues = validate_story_structure(&d, &data, Some(1));
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert!(
            issues[0].message.contains("after intent 'a'"),
            "{}",
            issues[0].message
        );
        assert!(issues[0].message.contains("utter_x predicted in 'one'"));
        assert!(issues[0].message.contains("utter_y predicted in 'two'"));
    }

    #[test]
    fn contradicting_rules_are_errors() {
        let d =
            domain("intents: [a]\nresponses:\n  utter_x: [{text: x}]\n  utter_y: [{text: y}]\n");
        let data = TrainingData::from_yaml(
            "rules:\n- rule: r1\n  steps:\n  - intent: a\n  - action: utter_x\n- rule: r2\n  steps:\n  - intent: a\n  - action: utter_y\n",
        )
        .unwrap();
        let issues = validate_project(&d, &data);
        assert!(
            issues
                .iter()
                .any(|i| i.level == IssueLevel::Error && i.message.contains("Contradicting rules")),
            "{issues:?}"
        );
    }
}
