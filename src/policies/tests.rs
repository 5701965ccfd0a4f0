//! Unit tests of the policies on small hand-written bots.

use std::sync::Arc;

use serde_json::json;

use super::*;

const DOMAIN: &str = r#"
intents: [greet, bye, chitchat, inform, ask, deny, affirm, request]
entities: [city]
slots:
  vip:
    type: bool
    mappings: []
  city:
    type: text
    mappings: []
  quiet:
    type: text
    influence_conversation: false
    mappings: []
forms:
  f:
    required_slots: [city]
responses:
  utter_greet: [{text: hi}]
  utter_vip: [{text: hi vip}]
  utter_bye: [{text: bye}]
  utter_chitchat: [{text: chat}]
  utter_a: [{text: a}]
  utter_b: [{text: b}]
  utter_c: [{text: c}]
  utter_welcome: [{text: welcome}]
  utter_submit: [{text: done}]
  utter_ask_continue: [{text: sure?}]
actions: [action_check]
"#;

fn domain() -> Domain {
    Domain::from_documents(&[(
        "domain.yml".into(),
        crate::yaml::parse_str(DOMAIN, "domain.yml").unwrap(),
    )])
    .unwrap()
}

fn train(data: &str, config: serde_json::Value) -> Result<(Domain, PolicyEnsemble), PolicyError> {
    let d = domain();
    let data = TrainingData::from_yaml(data).unwrap();
    let e = PolicyEnsemble::train(&config, &d, &data)?;
    Ok((d, e))
}

fn both() -> serde_json::Value {
    json!({"policies": [{"name": "MemoizationPolicy"}, {"name": "RulePolicy"}]})
}

/// A conversation under construction.
struct Conversation {
    events: Vec<Event>,
}

impl Conversation {
    fn new() -> Self {
        Conversation {
            events: vec![
                Event::action("action_session_start", None, Some(1.0)),
                Event::new(EventKind::SessionStarted),
                Event::action("action_listen", None, None),
            ],
        }
    }

    fn user(mut self, intent: &str) -> Self {
        self.events.push(
            Event::from_json(&json!({"event": "user", "text": format!("/{intent}"),
                "parse_data": {"intent": {"name": intent, "confidence": 0.8}, "entities": []}}))
            .unwrap()
            .unwrap(),
        );
        self
    }

    fn user_with(mut self, intent: &str, entities: serde_json::Value) -> Self {
        self.events.push(
            Event::from_json(&json!({"event": "user", "text": "x",
                "parse_data": {"intent": {"name": intent, "confidence": 0.8}, "entities": entities}}))
            .unwrap()
            .unwrap(),
        );
        self
    }

    fn action(mut self, name: &str) -> Self {
        self.events
            .push(Event::action(name, Some("RulePolicy"), Some(1.0)));
        self
    }

    fn slot(mut self, name: &str, value: serde_json::Value) -> Self {
        self.events.push(Event::new(EventKind::Slot {
            name: name.into(),
            value,
        }));
        self
    }

    fn active_loop(mut self, name: Option<&str>) -> Self {
        self.events.push(Event::new(EventKind::ActiveLoop {
            name: name.map(str::to_owned),
        }));
        self
    }

    fn reject(mut self, name: &str) -> Self {
        self.events
            .push(Event::new(EventKind::ActionExecutionRejected {
                name: Some(name.into()),
                policy: None,
                confidence: None,
            }));
        self
    }

    fn predict(&self, d: &Domain, e: &PolicyEnsemble) -> PolicyPrediction {
        let t =
            DialogueStateTracker::from_events("t", Arc::new(d.slots.clone()), self.events.clone());
        e.predict(&t, d)
    }
}

fn who(p: &PolicyPrediction) -> (&str, Option<&str>, f64) {
    (p.action.as_str(), p.policy.as_deref(), p.confidence)
}

#[test]
fn empty_ensemble_listens() {
    let domain = Domain::default();
    let e = PolicyEnsemble::train(
        &json!({"policies": [{"name": "TEDPolicy"}, {"name": "rasa.core.policies.ted_policy.UnexpecTEDIntentPolicy"}]}),
        &domain,
        &TrainingData::default(),
    )
    .unwrap();
    assert!(e.policy_names().is_empty());
    let t = DialogueStateTracker::new("x", Arc::new(Vec::new()));
    let p = e.predict(&t, &domain);
    assert_eq!(
        (p.action.as_str(), p.policy, p.confidence),
        ("action_listen", None, 0.0)
    );
    assert_eq!(e.warnings.len(), 2);
}

#[test]
fn default_config_is_memoization_and_rules() {
    let (_, e) = train("", json!({})).unwrap();
    assert_eq!(e.policy_names(), ["MemoizationPolicy", "RulePolicy"]);
    let (_, e) = train(
        "",
        json!({"policies": [{"name": "AugmentedMemoizationPolicy", "max_history": 3}]}),
    )
    .unwrap();
    assert_eq!(e.policy_names(), ["AugmentedMemoizationPolicy"]);
    assert!(matches!(
        train(
            "",
            json!({"policies": [{"name": "MemoizationPolicy", "max_history": "x"}]})
        ),
        Err(PolicyError::Config(_))
    ));
    assert!(matches!(
        train(
            "",
            json!({"policies": [{"name": "RulePolicy", "core_fallback_action_name": "nope"}]})
        ),
        Err(PolicyError::Config(_))
    ));
}

#[test]
fn rule_with_slot_condition_beats_generic_rule() {
    let (d, e) = train(
        r#"rules:
- rule: greet
  steps:
  - intent: greet
  - action: utter_greet
- rule: greet vip
  condition:
  - slot_was_set:
    - vip: true
  steps:
  - intent: greet
  - action: utter_vip
- rule: greet not vip
  condition:
  - slot_was_set:
    - city: null
  steps:
  - intent: bye
  - action: utter_bye
"#,
        both(),
    )
    .unwrap();
    let c = Conversation::new().user("greet");
    assert_eq!(
        who(&c.predict(&d, &e)),
        ("utter_greet", Some("RulePolicy"), 1.0)
    );
    let c = Conversation::new().slot("vip", json!(true)).user("greet");
    assert_eq!(c.predict(&d, &e).action, "utter_vip");
    let c = Conversation::new().slot("vip", json!(false)).user("greet");
    assert_eq!(c.predict(&d, &e).action, "utter_greet");
    // `null` in a rule: the slot must not be set.
    let c = Conversation::new().user("bye");
    assert_eq!(c.predict(&d, &e).action, "utter_bye");
    let c = Conversation::new().slot("city", json!("Paris")).user("bye");
    assert_eq!(
        who(&c.predict(&d, &e)),
        ("action_default_fallback", Some("RulePolicy"), 0.3)
    );
    // After the rule's action: listen.
    let c = Conversation::new().user("greet").action("utter_greet");
    assert_eq!(c.predict(&d, &e).action, "action_listen");
}

#[test]
fn conversation_start_rules_match_only_the_first_turn() {
    let (d, e) = train(
        "rules:\n- rule: welcome\n  conversation_start: true\n  steps:\n  - intent: greet\n  - action: utter_welcome\n",
        both(),
    )
    .unwrap();
    let c = Conversation::new().user("greet");
    assert_eq!(c.predict(&d, &e).action, "utter_welcome");
    let c = Conversation::new()
        .user("greet")
        .action("utter_welcome")
        .action("action_listen")
        .user("greet");
    assert_eq!(c.predict(&d, &e).action, "action_default_fallback");
}

#[test]
fn wait_for_user_input_false_chains_rules() {
    let (d, e) = train(
        r#"rules:
- rule: check then ask
  wait_for_user_input: false
  steps:
  - intent: inform
  - action: action_check
- rule: after check
  steps:
  - action: action_check
  - action: utter_ask_continue
"#,
        both(),
    )
    .unwrap();
    let c = Conversation::new().user("inform");
    assert_eq!(c.predict(&d, &e).action, "action_check");
    let c = c.action("action_check");
    assert_eq!(c.predict(&d, &e).action, "utter_ask_continue");
    let c = c.action("utter_ask_continue");
    assert_eq!(c.predict(&d, &e).action, "action_listen");
}

#[test]
fn default_intents_and_fallback_threshold() {
    let (d, e) = train(
        "",
        json!({"policies": [{"name": "RulePolicy", "core_fallback_threshold": 0.4,
            "core_fallback_action_name": "utter_bye"}]}),
    )
    .unwrap();
    for (intent, action) in [
        ("restart", "action_restart"),
        ("back", "action_back"),
        ("session_start", "action_session_start"),
    ] {
        let p = Conversation::new().user(intent).predict(&d, &e);
        assert_eq!(who(&p), (action, Some("RulePolicy"), 1.0));
        assert!(p.hide_rule_turn);
    }
    let p = Conversation::new().user("greet").predict(&d, &e);
    assert_eq!(who(&p), ("utter_bye", Some("RulePolicy"), 0.4));
    let (d, e) = train(
        "",
        json!({"policies": [{"name": "RulePolicy", "enable_fallback_prediction": false}]}),
    )
    .unwrap();
    let p = Conversation::new().user("greet").predict(&d, &e);
    assert_eq!(who(&p), ("action_listen", Some("RulePolicy"), 0.0));
}

#[test]
fn nlu_confidence_as_score() {
    let data = "rules:\n- rule: r\n  steps:\n  - intent: greet\n  - action: utter_greet\n";
    let (d, e) = train(
        data,
        json!({"policies": [{"name": "RulePolicy", "use_nlu_confidence_as_score": true}]}),
    )
    .unwrap();
    assert_eq!(
        who(&Conversation::new().user("greet").predict(&d, &e)),
        ("utter_greet", Some("RulePolicy"), 0.8)
    );
}

const FORM_RULES: &str = r#"rules:
- rule: activate
  steps:
  - intent: request
  - action: f
  - active_loop: f
- rule: submit
  condition:
  - active_loop: f
  steps:
  - action: f
  - active_loop: null
  - slot_was_set:
    - requested_slot: null
  - action: utter_submit
- rule: chitchat
  steps:
  - intent: chitchat
  - action: utter_chitchat
stories:
- story: chitchat in form
  steps:
  - intent: request
  - action: f
  - active_loop: f
  - intent: chitchat
  - action: utter_chitchat
  - action: f
  - active_loop: null
  - action: utter_submit
- story: deny in form
  steps:
  - intent: request
  - action: f
  - active_loop: f
  - intent: deny
  - action: action_deactivate_loop
  - active_loop: null
  - action: utter_bye
"#;

#[test]
fn loop_happy_path_and_unhappy_paths() {
    let (d, e) = train(FORM_RULES, both()).unwrap();
    let c = Conversation::new().user("request");
    let p = c.predict(&d, &e);
    assert_eq!(who(&p), ("f", Some("RulePolicy"), 1.0));
    let c = c.action("f").active_loop(Some("f"));
    let p = c.predict(&d, &e);
    assert_eq!((p.action.as_str(), p.is_no_user), ("action_listen", true));
    // A message inside the form: the form runs first, whatever the intent.
    let c = c.action("action_listen").user("chitchat");
    let p = c.predict(&d, &e);
    assert_eq!((p.action.as_str(), p.is_no_user), ("f", true));
    // After a rejection the form's score is zeroed: the chitchat rule answers.
    let c = c.reject("f");
    let p = c.predict(&d, &e);
    assert_eq!(who(&p), ("utter_chitchat", Some("RulePolicy"), 1.0));
    assert!(p.events.is_empty());
    // The generic rule predicts listen: inside the loop that becomes the loop, and
    // the form is told it was interrupted.
    let c = c.action("utter_chitchat");
    let p = c.predict(&d, &e);
    assert_eq!(p.action, "f");
    assert!(!p.is_no_user);
    // Deny story: after the deactivation, the story's action.
    let c = Conversation::new()
        .user("request")
        .action("f")
        .active_loop(Some("f"))
        .action("action_listen")
        .user("deny")
        .reject("f");
    let p = c.predict(&d, &e);
    assert_eq!(
        who(&p),
        ("action_deactivate_loop", Some("MemoizationPolicy"), 1.0)
    );
}

#[test]
fn unhappy_lookup_flags() {
    let (d, e) = train(
        r#"rules:
- rule: activate
  steps:
  - intent: request
  - action: f
  - active_loop: f
- rule: ask inside form, then back to it
  condition:
  - active_loop: f
  steps:
  - intent: ask
  - action: utter_a
  - action: f
- rule: chitchat inside form, no return
  condition:
  - active_loop: f
  steps:
  - intent: chitchat
  - action: utter_chitchat
  - action: utter_b
stories:
- story: loop right after a message
  steps:
  - intent: request
  - action: f
  - active_loop: f
  - intent: inform
  - action: f
"#,
        json!({"policies": [{"name": "RulePolicy", "check_for_contradictions": false}]}),
    )
    .unwrap();
    let base = || {
        Conversation::new()
            .user("request")
            .action("f")
            .active_loop(Some("f"))
            .action("action_listen")
    };
    let c = base().user("ask").reject("f");
    assert_eq!(c.predict(&d, &e).action, "utter_a");
    let c = c.action("utter_a");
    let p = c.predict(&d, &e);
    assert_eq!(p.action, "f");
    // Another action after a non-listen action inside the loop
    // (`do_not_predict_loop_action`).
    let c = base().user("chitchat").reject("f").action("utter_chitchat");
    assert_eq!(c.predict(&d, &e).action, "utter_b");
}

#[test]
fn loop_interrupted_event_after_unhappy_path() {
    let (d, e) = train(
        r#"rules:
- rule: activate
  steps:
  - intent: request
  - action: f
  - active_loop: f
- rule: inform inside form
  condition:
  - active_loop: f
  steps:
  - intent: inform
  - action: f
"#,
        json!({"policies": [{"name": "RulePolicy", "check_for_contradictions": false}]}),
    )
    .unwrap();
    let c = Conversation::new()
        .user("request")
        .action("f")
        .active_loop(Some("f"))
        .action("action_listen")
        .user("inform")
        .reject("f");
    let p = c.predict(&d, &e);
    assert_eq!(p.action, "action_default_fallback");
    // The form stays rejected until it runs again: the rule brings it back, and as the
    // loop follows a user message (`loop_was_interrupted`) the prediction carries
    // `loop_interrupted(true)`, so the form skips validation.
    let c = Conversation::new()
        .user("request")
        .action("f")
        .active_loop(Some("f"))
        .action("action_listen")
        .user("inform")
        .reject("f")
        .action("utter_a")
        .action("action_listen")
        .user("inform");
    let p = c.predict(&d, &e);
    assert_eq!(who(&p), ("f", Some("RulePolicy"), 1.0));
    assert!(p.events.iter().any(|e| matches!(
        e.kind,
        EventKind::LoopInterrupted {
            is_interrupted: true
        }
    )));
}

#[test]
fn rejection_zeroes_the_rejected_action_only_right_after() {
    let (d, e) = train(
        "rules:\n- rule: r\n  steps:\n  - intent: greet\n  - action: action_check\n",
        both(),
    )
    .unwrap();
    let c = Conversation::new().user("greet").reject("action_check");
    assert_eq!(
        who(&c.predict(&d, &e)),
        ("action_default_fallback", Some("RulePolicy"), 0.3)
    );
    let c = Conversation::new()
        .user("greet")
        .reject("action_check")
        .action("utter_a");
    assert_eq!(c.predict(&d, &e).action, "action_default_fallback");
    let c = Conversation::new().user("greet");
    assert_eq!(c.predict(&d, &e).action, "action_check");
}

#[test]
fn memoization_max_history() {
    let data = r#"stories:
- story: a after greet
  steps:
  - intent: greet
  - action: utter_greet
  - intent: inform
  - action: utter_a
- story: b after bye
  steps:
  - intent: bye
  - action: utter_bye
  - intent: inform
  - action: utter_b
"#;
    let (d, e) = train(
        data,
        json!({"policies": [{"name": "MemoizationPolicy", "max_history": 3}]}),
    )
    .unwrap();
    let c = Conversation::new()
        .user("greet")
        .action("utter_greet")
        .action("action_listen")
        .user("inform");
    assert_eq!(
        who(&c.predict(&d, &e)),
        ("utter_a", Some("MemoizationPolicy"), 1.0)
    );
    let c = Conversation::new()
        .user("bye")
        .action("utter_bye")
        .action("action_listen")
        .user("inform");
    assert_eq!(c.predict(&d, &e).action, "utter_b");
    // With max_history 1 only the last state counts: `inform` is ambiguous and forgotten.
    let (d, e) = train(
        data,
        json!({"policies": [{"name": "MemoizationPolicy", "max_history": 1}]}),
    )
    .unwrap();
    let c = Conversation::new()
        .user("greet")
        .action("utter_greet")
        .action("action_listen")
        .user("inform");
    assert_eq!(
        who(&c.predict(&d, &e)),
        ("action_listen", Some("MemoizationPolicy"), 0.0)
    );
    // Unlimited history: the whole conversation must match a story.
    let (d, e) = train(data, json!({"policies": [{"name": "MemoizationPolicy"}]})).unwrap();
    let c = Conversation::new()
        .user("chitchat")
        .action("utter_chitchat")
        .action("action_listen")
        .user("greet");
    assert_eq!(c.predict(&d, &e).confidence, 0.0);
}

#[test]
fn augmented_memoization_forgets_old_turns() {
    let data = r#"stories:
- story: a
  steps:
  - intent: greet
  - action: utter_greet
  - intent: inform
  - action: utter_a
"#;
    let conv = || {
        Conversation::new()
            .user("bye")
            .action("utter_bye")
            .slot("vip", json!(true))
            .action("action_listen")
            .user("greet")
            .action("utter_greet")
            .action("action_listen")
            .user("inform")
    };
    let (d, e) = train(
        data,
        json!({"policies": [{"name": "MemoizationPolicy", "max_history": 3}]}),
    )
    .unwrap();
    assert_eq!(conv().predict(&d, &e).confidence, 0.0);
    let (d, e) = train(
        data,
        json!({"policies": [{"name": "AugmentedMemoizationPolicy", "max_history": 3}]}),
    )
    .unwrap();
    assert_eq!(
        who(&conv().predict(&d, &e)),
        ("utter_a", Some("AugmentedMemoizationPolicy"), 1.0)
    );
}

#[test]
fn memoization_skips_rule_only_turns() {
    let (d, e) = train(
        r#"rules:
- rule: chitchat
  steps:
  - intent: chitchat
  - action: utter_chitchat
stories:
- story: s
  steps:
  - intent: greet
  - action: utter_greet
  - intent: inform
  - action: utter_a
"#,
        both(),
    )
    .unwrap();
    let c = Conversation::new()
        .user("greet")
        .action("utter_greet")
        .action("action_listen")
        .user("chitchat");
    let p = c.predict(&d, &e);
    assert_eq!(
        (p.action.as_str(), p.hide_rule_turn),
        ("utter_chitchat", true)
    );
    // The hidden chitchat turn does not break the story.
    let mut c = c;
    c.events.push(Event::new(EventKind::Action(
        crate::events::ActionExecuted {
            name: Some("utter_chitchat".into()),
            policy: Some("RulePolicy".into()),
            confidence: Some(1.0),
            action_text: None,
            hide_rule_turn: true,
        },
    )));
    let p = c.predict(&d, &e);
    assert_eq!(
        (p.action.as_str(), p.hide_rule_turn),
        ("action_listen", true)
    );
    c.events.push(Event::new(EventKind::Action(
        crate::events::ActionExecuted {
            name: Some("action_listen".into()),
            policy: Some("RulePolicy".into()),
            confidence: Some(1.0),
            action_text: None,
            hide_rule_turn: true,
        },
    )));
    let c = c.user("inform");
    assert_eq!(
        who(&c.predict(&d, &e)),
        ("utter_a", Some("MemoizationPolicy"), 1.0)
    );
}

#[test]
fn ambiguous_memories_are_forgotten() {
    let (d, e) = train(
        r#"stories:
- story: one
  steps:
  - intent: greet
  - action: utter_a
- story: two
  steps:
  - intent: greet
  - action: utter_b
- story: three
  steps:
  - intent: bye
  - action: utter_bye
"#,
        json!({"policies": [{"name": "MemoizationPolicy"}]}),
    )
    .unwrap();
    assert_eq!(
        Conversation::new().user("greet").predict(&d, &e).confidence,
        0.0
    );
    assert_eq!(
        Conversation::new().user("bye").predict(&d, &e).action,
        "utter_bye"
    );
}

#[test]
fn rules_beat_stories_on_ties_and_entities_filter_states() {
    let (d, e) = train(
        r#"rules:
- rule: inform with city
  steps:
  - intent: inform
    entities:
    - city
  - action: utter_a
stories:
- story: inform
  steps:
  - intent: inform
  - action: utter_b
"#,
        both(),
    )
    .unwrap();
    let c = Conversation::new().user_with("inform", json!([{"entity": "city", "value": "Rome"}]));
    assert_eq!(
        who(&c.predict(&d, &e)),
        ("utter_a", Some("RulePolicy"), 1.0)
    );
    let c = Conversation::new().user("inform");
    assert_eq!(
        who(&c.predict(&d, &e)),
        ("utter_b", Some("MemoizationPolicy"), 1.0)
    );
}

#[test]
fn contradictions_are_errors() {
    let err = train(
        "rules:\n- rule: r1\n  steps:\n  - intent: greet\n  - action: utter_a\nstories:\n- story: s1\n  steps:\n  - intent: greet\n  - action: utter_b\n",
        both(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("Contradicting rules or stories found"),
        "{err}"
    );
    assert!(
        err.contains("the prediction of the action 'utter_b' in story 's1' is contradicting with rule(s) 'r1' which predicted action 'utter_a'"),
        "{err}"
    );
    // Switched off: no error.
    assert!(train(
        "rules:\n- rule: r1\n  steps:\n  - intent: greet\n  - action: utter_a\nstories:\n- story: s1\n  steps:\n  - intent: greet\n  - action: utter_b\n",
        json!({"policies": [{"name": "RulePolicy", "check_for_contradictions": false}]}),
    )
    .is_ok());
    // A story continuing after a rule's action contradicts the rule's final listen,
    // unless the rule says `wait_for_user_input: false`.
    let story = "stories:\n- story: s1\n  steps:\n  - intent: greet\n  - action: utter_a\n  - action: utter_b\n";
    let err = train(
        &format!("rules:\n- rule: r1\n  steps:\n  - intent: greet\n  - action: utter_a\n{story}"),
        both(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("which predicted action 'action_listen'"),
        "{err}"
    );
    assert!(train(
        &format!(
            "rules:\n- rule: r1\n  wait_for_user_input: false\n  steps:\n  - intent: greet\n  - action: utter_a\n{story}"
        ),
        both(),
    )
    .is_ok());
}

#[test]
fn restricted_and_incomplete_rules() {
    let err = train(
        "rules:\n- rule: long\n  steps:\n  - intent: greet\n  - action: utter_a\n  - intent: bye\n  - action: utter_b\n",
        both(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("Found rules 'long' that contain more than 1 user message"),
        "{err}"
    );
    assert!(train(
        "rules:\n- rule: long\n  steps:\n  - intent: greet\n  - action: utter_a\n  - intent: bye\n  - action: utter_b\n",
        json!({"policies": [{"name": "RulePolicy", "restrict_rules": false}]}),
    )
    .is_ok());
    let err = train(
        r#"rules:
- rule: sets vip
  steps:
  - intent: greet
  - action: action_check
  - slot_was_set:
    - vip: true
- rule: forgets vip
  steps:
  - intent: bye
  - action: action_check
"#,
        both(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("Incomplete rules found"), "{err}");
    assert!(
        err.contains("'action_check' in rule 'forgets vip'"),
        "{err}"
    );
}

#[test]
fn end_to_end_rules_use_the_text() {
    let (d, e) = train(
        "rules:\n- rule: e2e\n  steps:\n  - user: hello robot\n  - bot: Hello human\n",
        both(),
    )
    .unwrap();
    let mut c = Conversation::new();
    c.events.push(
        Event::from_json(&json!({"event": "user", "text": "hello robot",
            "parse_data": {"intent": {"name": "greet", "confidence": 0.9}, "entities": []}}))
        .unwrap()
        .unwrap(),
    );
    let p = c.predict(&d, &e);
    assert_eq!(
        (p.action.as_str(), p.use_text_for_featurization),
        ("Hello human", true)
    );
    assert!(e.action_names().contains(&"Hello human".to_owned()));
}
