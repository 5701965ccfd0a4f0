//! Understanding a user message: the parse data of a `user` event.
//!
//! Texts of the form `/intent`, `/intent@0.8` or `/intent{"entity": "value"}` set the
//! intent directly (Rasa's `RegexMessageHandler`) when the intent is in the domain.
//! Other texts go to the NLU pipeline trained at start-up from the project's NLU data
//! ([`NluModel`]); without one (`pipeline: []` or no examples) they get no intent.
//!
//! The pipeline, in the order a text goes through it:
//! * [`tokenizer`]: Rasa's `WhitespaceTokenizer`;
//! * [`features`]: word and character n-grams, regex and lookup-table features;
//! * [`intent`]: a linear classifier with calibrated confidences, averaged with
//!   [`mlp`], a one-hidden-layer network (`DIETClassifier`);
//! * [`fallback`]: `FallbackClassifier` (`nlu_fallback`);
//! * [`tagger`], [`regex_entities`]: entity extraction; [`synonyms`]: synonym mapping;
//! * [`selector`]: `ResponseSelector` (the response key of a retrieval intent);
//! * [`pipeline`] maps config.yml to these; [`model`] trains and runs them.

pub mod cache;
pub mod evaluate;
pub mod fallback;
pub mod features;
pub mod intent;
pub mod mlp;
pub mod model;
pub mod pipeline;
pub mod regex_entities;
pub mod remote;
mod rng;
pub mod selector;
pub mod synonyms;
pub mod tagger;
pub mod tokenizer;

pub use model::NluModel;
pub use remote::RemoteNlu;

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{json, Value};

use crate::domain::Domain;
use crate::events::JsonMap;

static SHORTCUT: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^/(?P<intent>[^{@]+)(?P<confidence>@[0-9.]+)?(?P<entities>\{.+\})?$").ok()
});

/// Parse data for an intent shortcut (`/intent@conf{"entity": "value"}`), or `None` if
/// the text is not one or names an intent the domain does not have.
pub fn parse_shortcut(text: &str, domain: &Domain) -> Option<JsonMap> {
    let re = SHORTCUT.as_ref()?;
    let caps = re.captures(text.trim())?;
    let intent = caps.name("intent")?.as_str().trim();
    if !domain.intent_exists(intent) {
        tracing::warn!(
            intent,
            "the message names an intent the domain does not have"
        );
        return None;
    }
    let confidence = caps
        .name("confidence")
        .and_then(|c| c.as_str()[1..].parse::<f64>().ok())
        .unwrap_or(1.0);
    let mut entities = Vec::new();
    if let Some(m) = caps.name("entities") {
        match serde_json::from_str::<Value>(m.as_str()) {
            Ok(Value::Object(map)) => {
                for (entity, value) in map {
                    let values = match value {
                        Value::Array(items) => items,
                        v => vec![v],
                    };
                    for v in values {
                        entities.push(
                            json!({"entity": entity, "value": v, "start": m.start(), "end": m.end(),
                            "extractor": "RegexMessageHandler"}),
                        );
                    }
                }
            }
            _ => tracing::warn!(
                text,
                "the entities of an intent shortcut are not a JSON object; ignored"
            ),
        }
    }
    let mut p = JsonMap::new();
    p.insert(
        "intent".into(),
        json!({"name": intent, "confidence": confidence}),
    );
    p.insert("entities".into(), Value::Array(entities));
    p.insert("text".into(), json!(text));
    p.insert(
        "intent_ranking".into(),
        json!([{"name": intent, "confidence": confidence}]),
    );
    Some(p)
}

/// Parse data of a message: the shortcut when it is one, else the trained model's
/// parse, else no intent.
pub fn parse(text: Option<&str>, domain: &Domain, model: Option<&NluModel>) -> JsonMap {
    if let Some(p) = text.and_then(|t| parse_shortcut(t, domain)) {
        return p;
    }
    if let (Some(t), Some(m)) = (text, model) {
        return m.parse(t);
    }
    let mut p = JsonMap::new();
    p.insert("intent".into(), json!({"name": null, "confidence": 0.0}));
    p.insert("entities".into(), json!([]));
    p.insert("text".into(), json!(text));
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain() -> Domain {
        Domain {
            intents: vec!["greet".into(), "introduce".into()],
            ..Domain::default()
        }
    }

    #[test]
    fn shortcuts() {
        let p = parse_shortcut("/introduce{\"name\":\"Ada\"}", &domain()).unwrap();
        assert_eq!(p["intent"], json!({"name": "introduce", "confidence": 1.0}));
        assert_eq!(
            p["entities"],
            json!([{"entity": "name", "value": "Ada", "start": 10, "end": 24, "extractor": "RegexMessageHandler"}])
        );
        let p = parse_shortcut("/greet@0.5", &domain()).unwrap();
        assert_eq!(p["intent"]["confidence"], 0.5);
        assert!(parse_shortcut("/unknown", &domain()).is_none());
        assert!(parse_shortcut("hello", &domain()).is_none());
        assert_eq!(
            parse(Some("hello"), &domain(), None)["intent"]["name"],
            Value::Null
        );
    }
}
