//! Rasa's `ResponseSelector`: for a retrieval intent (`faq`, with examples written as
//! `faq/ask_name`, `faq/ask_age`, ...) it picks the response key the text asks for, so
//! that the retrieval action `utter_faq` can send `utter_faq/ask_name`.
//!
//! palaver trains a linear classifier (the one of [`super::intent`]) over the same
//! sparse sentence features as the intent classifier, on the examples that carry a
//! response key: all retrieval intents together (Rasa's `default` selector) or one
//! (`retrieval_intent: faq`). Training is deterministic (seeded). The output has Rasa
//! 3.6's shape (`rasa/nlu/selectors/response_selector.py`, `process`):
//!
//! ```json
//! {"all_retrieval_intents": ["faq"],
//!  "default": {"response": {"responses": [{"text": "I am palaver"}], "confidence": 0.97,
//!                           "intent_response_key": "faq/ask_name",
//!                           "utter_action": "utter_faq/ask_name"},
//!              "ranking": [{"confidence": 0.97, "intent_response_key": "faq/ask_name"}]}}
//! ```
//!
//! A selector with nothing to learn (no retrieval intents, or none matching its
//! `retrieval_intent`) answers as Rasa's untrained one does: no response, confidence 0,
//! `utter_action` `utter_None`, an empty ranking and no retrieval intents.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::features::SparseVec;
use super::intent::{ClassifierConfig, LinearClassifier};
use crate::training_data::NluData;

/// The key of a selector trained on every retrieval intent (Rasa's
/// `RESPONSE_SELECTOR_DEFAULT_INTENT`).
pub const DEFAULT_SELECTOR: &str = "default";

/// What separates a retrieval intent from its response key (`faq/ask_name`).
pub const RESPONSE_IDENTIFIER_DELIMITER: char = '/';

/// The name prefix of response actions.
const UTTER_PREFIX: &str = "utter_";

/// One `ResponseSelector` of config.yml's pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectorConfig {
    /// `retrieval_intent`: the one retrieval intent this selector learns; `None`
    /// learns them all and answers under `default`.
    pub retrieval_intent: Option<String>,
    /// Response keys listed in `ranking` (Rasa's `ranking_length`, 10; 0 = all).
    pub ranking_length: usize,
    /// Training settings of the linear classifier.
    pub classifier: ClassifierConfig,
}

impl Default for SelectorConfig {
    fn default() -> Self {
        SelectorConfig {
            retrieval_intent: None,
            ranking_length: 10,
            classifier: ClassifierConfig::default(),
        }
    }
}

impl SelectorConfig {
    /// The key this selector's output goes under in `response_selector`.
    pub fn key(&self) -> &str {
        self.retrieval_intent.as_deref().unwrap_or(DEFAULT_SELECTOR)
    }
}

/// The retrieval intent and the response key of an intent name (`faq/ask_name` ->
/// (`faq`, `Some("faq/ask_name")`)); a plain intent has no response key.
pub fn split_intent_response_key(intent: &str) -> (&str, Option<&str>) {
    match intent.split_once(RESPONSE_IDENTIFIER_DELIMITER) {
        Some((base, _)) => (base, Some(intent)),
        None => (intent, None),
    }
}

/// The retrieval intents of the data (base names of the examples with a response
/// key), sorted.
pub fn retrieval_intents(data: &NluData) -> Vec<String> {
    let mut out: Vec<String> = data
        .examples
        .iter()
        .filter_map(|e| match split_intent_response_key(&e.intent) {
            (base, Some(_)) => Some(base.to_owned()),
            _ => None,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A trained selector.
#[derive(Debug, Clone)]
pub struct ResponseSelector {
    /// Its pipeline settings.
    pub config: SelectorConfig,
    /// The classifier over response keys (its classes, sorted), `None` when there was
    /// nothing to learn.
    pub classifier: Option<LinearClassifier>,
    /// Every retrieval intent of the data (empty when untrained, as in Rasa).
    pub all_retrieval_intents: Vec<String>,
}

impl ResponseSelector {
    /// The training examples of this selector: indices into `data.examples` and their
    /// response keys.
    pub fn training_examples<'a>(
        config: &SelectorConfig,
        data: &'a NluData,
    ) -> Vec<(usize, &'a str)> {
        data.examples
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                let (base, key) = split_intent_response_key(&e.intent);
                let key = key?;
                match &config.retrieval_intent {
                    Some(ri) if ri != base => None,
                    _ => Some((i, key)),
                }
            })
            .collect()
    }

    /// Trains on the examples' features `xs` (one per example of `data`, from the
    /// shared featurizer of `dim` features).
    pub fn train(
        config: SelectorConfig,
        data: &NluData,
        xs: &[SparseVec],
        dim: usize,
    ) -> ResponseSelector {
        let examples = Self::training_examples(&config, data);
        if examples.is_empty() {
            return ResponseSelector {
                config,
                classifier: None,
                all_retrieval_intents: Vec::new(),
            };
        }
        let mut labels: Vec<String> = examples.iter().map(|(_, k)| (*k).to_owned()).collect();
        labels.sort();
        labels.dedup();
        let sub_xs: Vec<SparseVec> = examples.iter().map(|(i, _)| xs[*i].clone()).collect();
        let ys: Vec<usize> = examples
            .iter()
            .map(|(_, k)| labels.iter().position(|l| l == k).unwrap_or(0))
            .collect();
        let classifier = LinearClassifier::train(labels, dim, &sub_xs, &ys, &config.classifier);
        ResponseSelector {
            config,
            classifier: Some(classifier),
            all_retrieval_intents: retrieval_intents(data),
        }
    }

    /// The selector rebuilt from a cached classifier.
    pub fn from_parts(
        config: SelectorConfig,
        classifier: Option<LinearClassifier>,
        data: &NluData,
    ) -> ResponseSelector {
        let all_retrieval_intents = if classifier.is_some() {
            retrieval_intents(data)
        } else {
            Vec::new()
        };
        ResponseSelector {
            config,
            classifier,
            all_retrieval_intents,
        }
    }

    /// The ranked response keys of a feature vector: `(key, confidence)`, best first,
    /// at most `ranking_length` (all when 0). Empty when untrained or without features.
    pub fn rank(&self, x: Option<&SparseVec>) -> Vec<(String, f64)> {
        let (Some(c), Some(x)) = (&self.classifier, x) else {
            return Vec::new();
        };
        let mut ranked: Vec<(String, f64)> = c
            .rank(x)
            .into_iter()
            .map(|(i, p)| (c.classes[i].clone(), p as f64))
            .collect();
        if self.config.ranking_length > 0 {
            ranked.truncate(self.config.ranking_length);
        }
        ranked
    }

    /// This selector's entry of `response_selector` for a feature vector (`None`: the
    /// text has no tokens), with the responses of `responses` (`utter_<key>` names).
    pub fn predict(&self, x: Option<&SparseVec>, responses: &Map<String, Value>) -> Value {
        let ranked = self.rank(x);
        let Some((top, confidence)) = ranked.first().cloned() else {
            // Rasa's selector without a prediction: the label name is None.
            return json!({
                "response": {"responses": null, "confidence": 0.0,
                             "intent_response_key": null, "utter_action": "utter_None"},
                "ranking": [],
            });
        };
        let key = resolve_intent_response_key(&top, responses).unwrap_or_else(|| top.clone());
        let utter_action = format!("{UTTER_PREFIX}{key}");
        let label_responses = match responses.get(&utter_action) {
            Some(Value::Array(r)) if !r.is_empty() => Value::Array(r.clone()),
            _ => {
                // Rasa raises a Python warning: shown once per response key.
                super::pipeline::warn_once(
                    &format!("ResponseSelector:no-responses:{key}"),
                    &format!(
                        "Unable to fetch responses for {key} This means that there is likely \
                         an issue with the training data.Please make sure you have added \
                         responses for this intent."
                    ),
                );
                json!([{"text": key}])
            }
        };
        let ranking: Vec<Value> = ranked
            .iter()
            .map(|(label, c)| {
                let k =
                    resolve_intent_response_key(label, responses).unwrap_or_else(|| label.clone());
                json!({"confidence": c, "intent_response_key": k})
            })
            .collect();
        json!({
            "response": {
                "responses": label_responses,
                "confidence": confidence,
                "intent_response_key": key,
                "utter_action": utter_action,
            },
            "ranking": ranking,
        })
    }
}

/// Rasa's `_resolve_intent_response_key`: the response key whose response is named
/// after the label, or whose variations' text is the label.
fn resolve_intent_response_key(label: &str, responses: &Map<String, Value>) -> Option<String> {
    for (name, variations) in responses {
        let Some(search_key) = name.split(UTTER_PREFIX).nth(1) else {
            continue;
        };
        if search_key == label {
            return Some(search_key.to_owned());
        }
        let text_matches = variations.as_array().is_some_and(|vs| {
            vs.iter()
                .any(|v| v.get("text").and_then(Value::as_str) == Some(label))
        });
        if text_matches {
            return Some(search_key.to_owned());
        }
    }
    None
}

/// The `response_selector` of a parse: `all_retrieval_intents` (of the last selector,
/// as each Rasa selector overwrites it) and one entry per selector, in pipeline order.
pub fn response_selector_json(
    selectors: &[ResponseSelector],
    x: Option<&SparseVec>,
    responses: &Map<String, Value>,
) -> Value {
    let mut out = Map::new();
    for s in selectors {
        out.insert(
            "all_retrieval_intents".into(),
            json!(s.all_retrieval_intents),
        );
        out.insert(s.config.key().to_owned(), s.predict(x, responses));
    }
    Value::Object(out)
}

/// Rasa's `MessageProcessor._update_full_retrieval_intent`: when the predicted intent
/// is a retrieval intent, `intent.full_retrieval_intent_name` is the response key the
/// selector for that intent chose (null when only a `default` selector answered, as in
/// Rasa, which looks the intent name up among the selector keys).
pub fn update_full_retrieval_intent(parse_data: &mut Map<String, Value>) {
    let Some(name) = parse_data
        .get("intent")
        .and_then(|i| i.get("name"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
    else {
        return;
    };
    let Some(rs) = parse_data.get("response_selector") else {
        return;
    };
    let is_retrieval = rs
        .get("all_retrieval_intents")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|i| i.as_str() == Some(&name)));
    if !is_retrieval {
        return;
    }
    let full = rs
        .get(&name)
        .and_then(|s| s.get("response"))
        .and_then(|r| r.get("intent_response_key"))
        .cloned()
        .unwrap_or(Value::Null);
    if let Some(Value::Object(intent)) = parse_data.get_mut("intent") {
        intent.insert("full_retrieval_intent_name".into(), full);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training_data::TrainingData;

    const DATA: &str = "nlu:
- intent: greet
  examples: |
    - hi
- intent: faq/ask_name
  examples: |
    - what is your name
    - who are you
- intent: faq/ask_age
  examples: |
    - how old are you
- intent: chitchat/ask_weather
  examples: |
    - how is the weather
responses:
  utter_faq/ask_name:
  - text: I am palaver
  utter_chitchat/ask_weather:
  - text: Sunny
";

    fn data() -> NluData {
        TrainingData::from_yaml(DATA).unwrap().nlu
    }

    /// One feature per example: example i has feature i.
    fn xs(n: usize) -> Vec<SparseVec> {
        (0..n)
            .map(|i| SparseVec::from_pairs(&[(i as u32, 1.0)]))
            .collect()
    }

    #[test]
    fn splits_retrieval_intents() {
        assert_eq!(
            split_intent_response_key("faq/ask_name"),
            ("faq", Some("faq/ask_name"))
        );
        assert_eq!(split_intent_response_key("greet"), ("greet", None));
        assert_eq!(retrieval_intents(&data()), ["chitchat", "faq"]);
    }

    #[test]
    fn default_selector_learns_every_retrieval_intent() {
        let d = data();
        let s = ResponseSelector::train(SelectorConfig::default(), &d, &xs(5), 5);
        let c = s.classifier.as_ref().unwrap();
        assert_eq!(
            c.classes,
            ["chitchat/ask_weather", "faq/ask_age", "faq/ask_name"]
        );
        assert_eq!(s.all_retrieval_intents, ["chitchat", "faq"]);
        // "who are you" (example 2) -> faq/ask_name with its responses.
        let out = s.predict(Some(&SparseVec::from_pairs(&[(2, 1.0)])), &d.responses);
        let r = &out["response"];
        assert_eq!(r["intent_response_key"], "faq/ask_name");
        assert_eq!(r["utter_action"], "utter_faq/ask_name");
        assert_eq!(r["responses"], json!([{"text": "I am palaver"}]));
        assert!(r["confidence"].as_f64().unwrap() > 0.5, "{out}");
        let ranking = out["ranking"].as_array().unwrap();
        assert_eq!(ranking.len(), 3);
        assert_eq!(ranking[0]["intent_response_key"], "faq/ask_name");
        assert_eq!(ranking[0]["confidence"], r["confidence"]);
        let keys: Vec<&str> = ranking[0]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["confidence", "intent_response_key"]);
        // A key without responses: Rasa sends the key itself as the text.
        let out = s.predict(Some(&SparseVec::from_pairs(&[(3, 1.0)])), &d.responses);
        assert_eq!(out["response"]["intent_response_key"], "faq/ask_age");
        assert_eq!(
            out["response"]["responses"],
            json!([{"text": "faq/ask_age"}])
        );
        // Deterministic.
        let again = ResponseSelector::train(SelectorConfig::default(), &d, &xs(5), 5);
        assert_eq!(again.classifier.unwrap().w, c.w);
    }

    #[test]
    fn a_selector_for_one_retrieval_intent() {
        let d = data();
        let cfg = SelectorConfig {
            retrieval_intent: Some("chitchat".into()),
            ranking_length: 1,
            ..SelectorConfig::default()
        };
        let s = ResponseSelector::train(cfg, &d, &xs(5), 5);
        assert_eq!(
            s.classifier.as_ref().unwrap().classes,
            ["chitchat/ask_weather"]
        );
        let out = response_selector_json(
            &[s],
            Some(&SparseVec::from_pairs(&[(1, 1.0)])),
            &d.responses,
        );
        assert_eq!(out["all_retrieval_intents"], json!(["chitchat", "faq"]));
        assert_eq!(out["chitchat"]["response"]["confidence"], 1.0);
        assert_eq!(
            out["chitchat"]["response"]["utter_action"],
            "utter_chitchat/ask_weather"
        );
        assert_eq!(out["chitchat"]["ranking"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn untrained_selector_answers_like_rasa() {
        let d = TrainingData::from_yaml("nlu:\n- intent: greet\n  examples: |\n    - hi\n")
            .unwrap()
            .nlu;
        let s = ResponseSelector::train(SelectorConfig::default(), &d, &xs(1), 1);
        assert!(s.classifier.is_none());
        let out =
            response_selector_json(&[s], Some(&SparseVec::from_pairs(&[(0, 1.0)])), &Map::new());
        assert_eq!(
            out,
            json!({"all_retrieval_intents": [], "default": {"response": {
                "responses": null, "confidence": 0.0, "intent_response_key": null,
                "utter_action": "utter_None"}, "ranking": []}})
        );
    }

    #[test]
    fn full_retrieval_intent_name() {
        let updated = |parse_data: Value| {
            let mut p: Map<String, Value> = serde_json::from_value(parse_data).unwrap();
            update_full_retrieval_intent(&mut p);
            p
        };
        let p = updated(json!({
            "intent": {"name": "faq", "confidence": 0.9},
            "response_selector": {"all_retrieval_intents": ["faq"],
                "faq": {"response": {"intent_response_key": "faq/ask_name"}, "ranking": []}}
        }));
        assert_eq!(p["intent"]["full_retrieval_intent_name"], "faq/ask_name");
        // Only a default selector: Rasa sets the key to null.
        let p = updated(json!({
            "intent": {"name": "faq", "confidence": 0.9},
            "response_selector": {"all_retrieval_intents": ["faq"],
                "default": {"response": {"intent_response_key": "faq/ask_name"}, "ranking": []}}
        }));
        assert_eq!(p["intent"]["full_retrieval_intent_name"], Value::Null);
        // Not a retrieval intent: untouched.
        let p = updated(json!({
            "intent": {"name": "greet", "confidence": 0.9},
            "response_selector": {"all_retrieval_intents": ["faq"]}
        }));
        assert!(p["intent"].get("full_retrieval_intent_name").is_none());
    }
}
