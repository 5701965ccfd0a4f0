//! Property tests: arbitrary and mutated event JSON thrown at the parser and at the
//! events endpoint. The parser never panics and round-trips what it accepts; the
//! endpoint never answers an unexpected 5xx and never applies part of a list.

mod common;

use common::Server;
use palaver::events::{validate_events, Event, EventError};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

const KEYS: &[&str] = &[
    "name",
    "value",
    "text",
    "parse_data",
    "intent",
    "entities",
    "date_time",
    "timestamp",
    "metadata",
    "policy",
    "confidence",
    "action_text",
    "hide_rule_turn",
    "kill_on_user_msg",
    "is_interrupted",
    "validate",
    "data",
    "input_channel",
    "message_id",
    "use_text_for_featurization",
    "path",
    "event",
];

/// Every type Rasa accepts, plus the ignored legacy `topic` and one unknown type.
fn event_types() -> Vec<&'static str> {
    let mut types = palaver::events::EVENT_TYPE_NAMES.to_vec();
    types.extend(["topic", "bogus"]);
    types
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i32>().prop_map(Value::from),
        (-1e12f64..1e12).prop_map(Value::from),
        "[a-z_/ ]{0,12}".prop_map(Value::from),
        Just(json!("2031-05-01T10:00:00")),
        Just(json!({"name": "greet", "confidence": 0.5})),
        Just(json!([{"entity": "name", "value": "Ada"}])),
    ]
}

fn any_json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..4).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

/// An event object: a known (or unknown) type with random known keys.
fn event_json() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(event_types()),
        prop::collection::vec((prop::sample::select(KEYS), any_json()), 0..5),
        prop::option::of(any_json()),
    )
        .prop_map(|(t, kv, parse_data)| {
            let mut m = Map::new();
            m.insert("event".into(), json!(t));
            for (k, v) in kv {
                if k != "event" {
                    m.insert(k.to_string(), v);
                }
            }
            if let Some(p) = parse_data {
                m.insert("parse_data".into(), p);
            }
            Value::Object(m)
        })
}

fn body() -> impl Strategy<Value = Value> {
    prop_oneof![
        event_json(),
        prop::collection::vec(event_json(), 0..4).prop_map(Value::Array),
        any_json(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parser_never_panics_and_round_trips(v in body()) {
        if let Ok(items) = validate_events(&v) {
            for item in items {
                match Event::from_json(item) {
                    Ok(Some(e)) => {
                        // What palaver writes, it reads back to the same event.
                        let again = Event::from_json(&e.to_json()).unwrap().unwrap();
                        prop_assert_eq!(again.to_json(), e.to_json());
                    }
                    Ok(None) | Err(EventError::Unusable(_)) => {}
                    Err(EventError::Invalid(m)) => prop_assert!(false, "validated but invalid: {}", m),
                }
            }
        }
    }
}

#[test]
fn endpoint_never_fails_unexpectedly_or_half_applies() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(Server::start());
    let ids: Vec<String> = (0..7).map(|i| format!("prop-{i}")).collect();
    for id in &ids {
        // Existing conversations: no session start is added, so counts are exact.
        let (status, _) = rt.block_on(server.post_events(id, &json!({"event": "resume"}), ""));
        assert_eq!(status, 200);
    }
    let count = |id: &str| {
        let t = rt.block_on(server.tracker(id, "&include_events=ALL"));
        t["events"].as_array().map_or(0, Vec::len)
    };
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(300));
    let n = std::cell::Cell::new(0usize);
    runner
        .run(&body(), |body| {
            n.set(n.get() + 1);
            let id = &ids[n.get() % ids.len()];
            let before = count(id);
            let (status, answer) =
                rt.block_on(server.post_events(id, &body, "&include_events=NONE"));
            let after = count(id);
            match status {
                200 => {
                    let posted = match &body {
                        Value::Array(items) => {
                            items.iter().filter(|e| e["event"] != "topic").count()
                        }
                        _ => usize::from(body["event"] != "topic"),
                    };
                    prop_assert_eq!(after - before, posted, "for {}", body);
                }
                400 => {
                    prop_assert_eq!(&answer["reason"], "BadRequest");
                    prop_assert_eq!(
                        after,
                        before,
                        "a rejected list changed the conversation: {}",
                        body
                    );
                }
                500 => {
                    // Only the well-formed errors Rasa itself gives for such input
                    // (a user event without parse_data, an action without a name, a
                    // reminder without a date, an empty list).
                    prop_assert_eq!(&answer["reason"], "ConversationError");
                    prop_assert_eq!(
                        after,
                        before,
                        "a failed list changed the conversation: {}",
                        body
                    );
                }
                other => prop_assert!(
                    false,
                    "unexpected status {} for {}: {}",
                    other,
                    body,
                    answer
                ),
            }
            Ok(())
        })
        .unwrap();
}
