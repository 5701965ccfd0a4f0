//! `/model/parse?emulation_mode=...`: the parse result in the shape of another NLU
//! service (wit.ai, LUIS v3, Dialogflow ES), as Rasa's emulators write it, for clients
//! that were built against those services.

use serde_json::{json, Map, Value};

/// An NLU service whose response format `/model/parse` can imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emulation {
    /// wit.ai `GET /message`.
    Wit,
    /// LUIS endpoint API v3 `/predict`.
    Luis,
    /// Dialogflow ES `detectIntent`.
    Dialogflow,
}

impl Emulation {
    /// The emulation named by the query parameter (any case), if it is one.
    pub fn from_param(mode: &str) -> Option<Emulation> {
        match mode.to_ascii_lowercase().as_str() {
            "wit" => Some(Emulation::Wit),
            "luis" => Some(Emulation::Luis),
            "dialogflow" => Some(Emulation::Dialogflow),
            _ => None,
        }
    }

    /// Reshapes Rasa's parse data.
    pub fn response(self, data: &Value) -> Value {
        match self {
            Emulation::Wit => wit(data),
            Emulation::Luis => luis(data),
            Emulation::Dialogflow => dialogflow(data),
        }
    }
}

fn entities(data: &Value) -> &[Value] {
    data.get("entities")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn text(data: &Value) -> Value {
    data.get("text").cloned().unwrap_or(Value::Null)
}

/// The characters `start..end` of `s` (Rasa's offsets count characters).
fn char_slice(s: &str, start: usize, end: usize) -> String {
    s.chars()
        .skip(start)
        .take(end.saturating_sub(start))
        .collect()
}

fn wit(data: &Value) -> Value {
    let full = data.get("text").and_then(Value::as_str).unwrap_or_default();
    let mut grouped: Map<String, Value> = Map::new();
    for e in entities(data) {
        let name = e.get("entity").and_then(Value::as_str).unwrap_or_default();
        let role = e
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or(name)
            .to_owned();
        let start = e.get("start").and_then(Value::as_u64).unwrap_or(0) as usize;
        let end = e.get("end").and_then(Value::as_u64).unwrap_or(0) as usize;
        let confidence = e
            .get("confidence_entity")
            .filter(|c| c.as_f64().is_some_and(|c| c != 0.0))
            .cloned()
            .unwrap_or(json!(1));
        let normalized = json!({
            "confidence": confidence,
            "name": name,
            "value": e.get("value").cloned().unwrap_or(Value::Null),
            "body": char_slice(full, start, end),
            "start": e.get("start").cloned().unwrap_or(Value::Null),
            "end": e.get("end").cloned().unwrap_or(Value::Null),
            "role": role,
            "entities": [],
        });
        let key = format!("{name}:{role}");
        match grouped.get_mut(&key) {
            Some(Value::Array(items)) => items.push(normalized),
            _ => {
                grouped.insert(key, json!([normalized]));
            }
        }
    }
    json!({
        "text": text(data),
        "intents": [data.get("intent").cloned().unwrap_or(Value::Null)],
        "entities": grouped,
    })
}

fn luis(data: &Value) -> Value {
    let top = data.get("intent").filter(|i| i.is_object());
    let mut intents = Map::new();
    match data.get("intent_ranking").and_then(Value::as_array) {
        Some(ranking) if !ranking.is_empty() => {
            for i in ranking {
                if let Some(name) = i.get("name").and_then(Value::as_str) {
                    intents.insert(
                        name.to_owned(),
                        json!({"score": i.get("confidence").cloned().unwrap_or(Value::Null)}),
                    );
                }
            }
        }
        _ => {
            if let Some(name) = top.and_then(|t| t.get("name")).and_then(Value::as_str) {
                intents.insert(
                    name.to_owned(),
                    json!({"score": top.and_then(|t| t.get("confidence")).cloned().unwrap_or(Value::Null)}),
                );
            }
        }
    }
    let mut ents = Map::new();
    if data.get("entities").is_some() {
        let mut instance = Map::new();
        for e in entities(data) {
            let key = e
                .get("role")
                .and_then(Value::as_str)
                .or_else(|| e.get("entity").and_then(Value::as_str))
                .unwrap_or_default()
                .to_owned();
            let length = match (
                e.get("start").and_then(Value::as_i64),
                e.get("end").and_then(Value::as_i64),
            ) {
                (Some(s), Some(end)) => json!(end - s),
                _ => Value::Null,
            };
            ents.insert(
                key.clone(),
                json!([e.get("value").cloned().unwrap_or(Value::Null)]),
            );
            instance.insert(
                key,
                json!([{
                    "role": e.get("role").cloned().unwrap_or(Value::Null),
                    "type": e.get("entity").cloned().unwrap_or(Value::Null),
                    "text": e.get("value").cloned().unwrap_or(Value::Null),
                    "startIndex": e.get("start").cloned().unwrap_or(Value::Null),
                    "length": length,
                    "score": e.get("confidence").cloned().unwrap_or(Value::Null),
                    "modelType": e.get("extractor").cloned().unwrap_or(Value::Null),
                }]),
            );
        }
        ents.insert("$instance".into(), Value::Object(instance));
    }
    json!({
        "query": text(data),
        "prediction": {
            "normalizedQuery": text(data),
            "topIntent": top.and_then(|t| t.get("name")).cloned().unwrap_or(Value::Null),
            "intents": intents,
            "entities": ents,
        }
    })
}

fn dialogflow(data: &Value) -> Value {
    let mut parameters: Map<String, Value> = Map::new();
    for e in entities(data) {
        let name = e.get("entity").and_then(Value::as_str).unwrap_or_default();
        let value = e.get("value").cloned().unwrap_or(Value::Null);
        match parameters.get_mut(name) {
            Some(Value::Array(items)) => items.push(value),
            _ => {
                parameters.insert(name.to_owned(), json!([value]));
            }
        }
    }
    let intent = data.get("intent").cloned().unwrap_or(Value::Null);
    let name = intent.get("name").cloned().unwrap_or(Value::Null);
    json!({
        "responseId": uuid::Uuid::new_v4().to_string(),
        "queryResult": {
            "queryText": text(data),
            "action": name,
            "parameters": parameters,
            "fulfillmentText": "",
            "fulfillmentMessages": [],
            "outputContexts": [],
            "intent": {"name": name, "displayName": name},
            "intentDetectionConfidence": intent.get("confidence").cloned().unwrap_or(Value::Null),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed() -> Value {
        json!({
            "text": "fly from Berlin to Rome",
            "intent": {"name": "book", "confidence": 0.9},
            "entities": [
                {"entity": "city", "value": "Berlin", "start": 9, "end": 15, "role": "from",
                 "extractor": "CRFEntityExtractor", "confidence_entity": 0.8},
                {"entity": "city", "value": "Rome", "start": 19, "end": 23, "extractor": "RegexEntityExtractor"}
            ],
            "intent_ranking": [{"name": "book", "confidence": 0.9}, {"name": "greet", "confidence": 0.1}]
        })
    }

    #[test]
    fn modes_are_case_insensitive() {
        assert_eq!(Emulation::from_param("WIT"), Some(Emulation::Wit));
        assert_eq!(Emulation::from_param("Luis"), Some(Emulation::Luis));
        assert_eq!(
            Emulation::from_param("dialogflow"),
            Some(Emulation::Dialogflow)
        );
        assert_eq!(Emulation::from_param("alexa"), None);
    }

    #[test]
    fn wit_groups_entities_by_name_and_role() {
        let w = Emulation::Wit.response(&parsed());
        assert_eq!(w["intents"], json!([{"name": "book", "confidence": 0.9}]));
        assert_eq!(w["entities"]["city:from"][0]["body"], "Berlin");
        assert_eq!(w["entities"]["city:from"][0]["confidence"], 0.8);
        assert_eq!(w["entities"]["city:city"][0]["role"], "city");
        assert_eq!(w["entities"]["city:city"][0]["confidence"], 1);
    }

    #[test]
    fn luis_keys_entities_by_role() {
        let l = Emulation::Luis.response(&parsed());
        assert_eq!(l["prediction"]["topIntent"], "book");
        assert_eq!(l["prediction"]["intents"]["greet"]["score"], 0.1);
        assert_eq!(l["prediction"]["entities"]["from"], json!(["Berlin"]));
        assert_eq!(l["prediction"]["entities"]["city"], json!(["Rome"]));
        assert_eq!(
            l["prediction"]["entities"]["$instance"]["from"][0]["length"],
            6
        );
    }

    #[test]
    fn dialogflow_lists_parameter_values() {
        let d = Emulation::Dialogflow.response(&parsed());
        assert_eq!(
            d["queryResult"]["parameters"]["city"],
            json!(["Berlin", "Rome"])
        );
        assert_eq!(d["queryResult"]["intent"]["displayName"], "book");
        assert_eq!(d["queryResult"]["intentDetectionConfidence"], 0.9);
    }
}
