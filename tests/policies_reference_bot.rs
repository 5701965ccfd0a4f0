//! The policies trained on the reference bot predict what Rasa 3.6 predicted in the
//! recorded conformance scenarios: for every `action` event Rasa logged with a
//! policy, the tracker before it (minus that prediction's own events) must give the
//! same action, policy, confidence and `hide_rule_turn`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use palaver::domain::Domain;
use palaver::events::{Event, EventKind};
use palaver::policies::PolicyEnsemble;
use palaver::tracker::DialogueStateTracker;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference_bot")
}

fn bot() -> (Domain, PolicyEnsemble) {
    let domain = Domain::load(&root().join("domain.yml")).unwrap();
    let config = palaver::yaml::read_file(&root().join("config.yml")).unwrap();
    let data = palaver::training_data::load(&root().join("data")).unwrap();
    let ensemble = PolicyEnsemble::train(&config, &domain, &data).unwrap();
    (domain, ensemble)
}

fn recordings() -> serde_json::Map<String, Value> {
    let text = std::fs::read_to_string(root().join("recorded_trackers.json")).unwrap();
    serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_object()
        .unwrap()
        .clone()
}

fn events(list: &Value) -> Vec<Event> {
    list.as_array()
        .unwrap()
        .iter()
        .filter_map(|e| Event::from_json(e).unwrap())
        .collect()
}

fn tracker(domain: &Domain, events: Vec<Event>) -> DialogueStateTracker {
    DialogueStateTracker::from_events("test", Arc::new(domain.slots.clone()), events)
}

#[test]
fn every_recorded_prediction_is_reproduced() {
    let (domain, ensemble) = bot();
    let mut checked = 0;
    let mut failures = Vec::new();
    for (scenario, lists) in recordings() {
        if scenario.starts_with("__") {
            continue;
        }
        for list in lists.as_array().unwrap() {
            let evs = events(list);
            for (i, e) in evs.iter().enumerate() {
                let EventKind::Action(a) = &e.kind else {
                    continue;
                };
                let Some(policy) = a.policy.as_deref() else {
                    continue;
                };
                if !policy.ends_with("Policy") {
                    continue;
                }
                // The events logged with this prediction come right before it.
                let mut end = i;
                let mut prediction_events = Vec::new();
                while end > 0
                    && matches!(
                        evs[end - 1].kind,
                        EventKind::UserFeaturization { .. } | EventKind::LoopInterrupted { .. }
                    )
                {
                    end -= 1;
                    prediction_events.push(evs[end].type_name());
                }
                let t = tracker(&domain, evs[..end].to_vec());
                let p = ensemble.predict(&t, &domain);
                checked += 1;
                let got = (
                    p.action.as_str(),
                    p.policy.as_deref(),
                    p.confidence,
                    p.hide_rule_turn,
                );
                let want = (
                    a.name.as_deref().unwrap(),
                    Some(policy),
                    a.confidence.unwrap(),
                    a.hide_rule_turn,
                );
                if got != want {
                    failures.push(format!("{scenario} event {i}: got {got:?}, Rasa {want:?}"));
                }
                let wants_interrupt = prediction_events.contains(&"loop_interrupted");
                let got_interrupt = p
                    .events
                    .iter()
                    .any(|e| matches!(e.kind, EventKind::LoopInterrupted { .. }));
                if wants_interrupt != got_interrupt {
                    failures.push(format!("{scenario} event {i}: loop_interrupted mismatch"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{checked} checked:\n{}",
        failures.join("\n")
    );
    assert!(checked >= 40, "only {checked} predictions checked");
}

#[test]
fn predict_scores_match_rasa() {
    let (domain, ensemble) = bot();
    let rec = recordings();
    let p = &rec["__predict__"];
    let t = tracker(&domain, events(&p["events"]));
    let got = ensemble.predict(&t, &domain);
    assert_eq!(got.policy.as_deref(), p["policy"].as_str());
    assert_eq!(got.confidence, p["confidence"].as_f64().unwrap());
    let mut want: Vec<(String, f64)> = p["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["action"].as_str().unwrap().to_owned(),
                s["score"].as_f64().unwrap(),
            )
        })
        .collect();
    let mut scores = got.scores.clone();
    want.sort_by(|a, b| a.0.cmp(&b.0));
    scores.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(scores, want);
    // Domain order: action_listen first.
    assert_eq!(got.scores[0].0, "action_listen");
    assert_eq!(got.scores.len(), domain.action_names().len());
}

/// The flows of the reference bot, turn by turn, as the processor would run them.
#[test]
fn conversations_turn_by_turn() {
    let (domain, ensemble) = bot();
    let start = || {
        vec![
            Event::action("action_session_start", None, Some(1.0)),
            Event::new(EventKind::SessionStarted),
            Event::action("action_listen", None, None),
        ]
    };
    let user = |intent: &str| {
        Event::from_json(
            &serde_json::json!({"event": "user", "text": format!("/{intent}"),
            "parse_data": {"intent": {"name": intent, "confidence": 1.0}, "entities": []}}),
        )
        .unwrap()
        .unwrap()
    };
    // Runs predictions until action_listen; returns (action, policy, confidence).
    let run = |events: &mut Vec<Event>| -> Vec<(String, String, f64)> {
        let mut out = Vec::new();
        for _ in 0..10 {
            let t = tracker(&domain, events.clone());
            let p = ensemble.predict(&t, &domain);
            out.push((
                p.action.clone(),
                p.policy.clone().unwrap_or_default(),
                p.confidence,
            ));
            events.extend(p.events);
            events.push(Event::action(
                &p.action,
                p.policy.as_deref(),
                Some(p.confidence),
            ));
            if p.action == "action_listen" {
                break;
            }
        }
        out
    };
    let r = |a: &str, p: &str, c: f64| (a.to_owned(), p.to_owned(), c);

    // Happy path: greet by rule, mood_great memorised.
    let mut ev = start();
    ev.push(user("greet"));
    assert_eq!(
        run(&mut ev),
        [
            r("utter_greet", "RulePolicy", 1.0),
            r("action_listen", "RulePolicy", 1.0)
        ]
    );
    ev.push(user("mood_great"));
    assert_eq!(
        run(&mut ev),
        [
            r("utter_happy", "MemoizationPolicy", 1.0),
            r("action_listen", "MemoizationPolicy", 1.0)
        ]
    );

    // Sad path 2.
    let mut ev = start();
    ev.push(user("greet"));
    run(&mut ev);
    ev.push(user("mood_unhappy"));
    assert_eq!(
        run(&mut ev),
        [
            r("utter_cheer_up", "MemoizationPolicy", 1.0),
            r("utter_did_that_help", "MemoizationPolicy", 1.0),
            r("action_listen", "MemoizationPolicy", 1.0)
        ]
    );
    ev.push(user("deny"));
    assert_eq!(
        run(&mut ev),
        [
            r("utter_goodbye", "MemoizationPolicy", 1.0),
            r("action_listen", "MemoizationPolicy", 1.0)
        ]
    );

    // No rule, no story: the core fallback.
    let mut ev = start();
    ev.push(user("affirm"));
    let t = tracker(&domain, ev.clone());
    let p = ensemble.predict(&t, &domain);
    assert_eq!(
        (
            p.action.as_str(),
            p.policy.as_deref(),
            p.confidence,
            p.hide_rule_turn
        ),
        ("action_default_fallback", Some("RulePolicy"), 0.3, false)
    );

    // The form: activation, happy path, submission; the bot_challenge rule inside it
    // applies only after the form rejected.
    let mut ev = start();
    ev.push(user("request_contact"));
    let t = tracker(&domain, ev.clone());
    let p = ensemble.predict(&t, &domain);
    assert_eq!(
        (p.action.as_str(), p.hide_rule_turn),
        ("contact_form", true)
    );
    ev.push(Event::action("contact_form", Some("RulePolicy"), Some(1.0)));
    ev.push(Event::new(EventKind::ActiveLoop {
        name: Some("contact_form".into()),
    }));
    let t = tracker(&domain, ev.clone());
    let p = ensemble.predict(&t, &domain);
    assert_eq!((p.action.as_str(), p.is_no_user), ("action_listen", true));
    ev.push(Event::action(
        "action_listen",
        Some("RulePolicy"),
        Some(1.0),
    ));
    ev.push(user("bot_challenge"));
    let t = tracker(&domain, ev.clone());
    assert_eq!(ensemble.predict(&t, &domain).action, "contact_form");
    ev.push(Event::new(EventKind::ActionExecutionRejected {
        name: Some("contact_form".into()),
        policy: Some("RulePolicy".into()),
        confidence: Some(1.0),
    }));
    assert_eq!(
        run(&mut ev),
        [
            r("utter_iamabot", "RulePolicy", 1.0),
            r("contact_form", "RulePolicy", 1.0),
            r("action_listen", "RulePolicy", 1.0)
        ]
    );
    // The form deactivates itself: submit by rule.
    ev.push(user("inform"));
    ev.push(Event::action("contact_form", Some("RulePolicy"), Some(1.0)));
    ev.push(Event::new(EventKind::ActiveLoop { name: None }));
    assert_eq!(
        run(&mut ev),
        [
            r("utter_submit_contact", "RulePolicy", 1.0),
            r("action_listen", "RulePolicy", 1.0)
        ]
    );

    // Default intents.
    for (intent, action) in [
        ("restart", "action_restart"),
        ("back", "action_back"),
        ("session_start", "action_session_start"),
    ] {
        let mut ev = start();
        ev.push(user(intent));
        let t = tracker(&domain, ev);
        let p = ensemble.predict(&t, &domain);
        assert_eq!(
            (p.action.as_str(), p.policy.as_deref(), p.confidence),
            (action, Some("RulePolicy"), 1.0)
        );
        assert!(p.hide_rule_turn, "{intent}");
    }
}
