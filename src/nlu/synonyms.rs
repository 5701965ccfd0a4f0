//! Rasa's `EntitySynonymMapper`: an extracted entity whose text is a known synonym gets
//! the synonym's value, matched case-insensitively, and names the mapper in its
//! `processors`.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

/// Synonyms, lower-cased text → value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SynonymMapper {
    /// The table.
    pub synonyms: HashMap<String, String>,
}

impl SynonymMapper {
    /// From the training data's synonyms (text → value).
    pub fn new(synonyms: &BTreeMap<String, String>) -> SynonymMapper {
        SynonymMapper {
            synonyms: synonyms
                .iter()
                .map(|(k, v)| (k.to_lowercase(), v.clone()))
                .collect(),
        }
    }

    /// Replaces the values of entities that are synonyms.
    pub fn process(&self, entities: &mut [Value]) {
        for e in entities.iter_mut() {
            let Some(obj) = e.as_object_mut() else {
                continue;
            };
            let text = match obj.get("value") {
                Some(Value::String(s)) => s.to_lowercase(),
                Some(v) if !v.is_null() => v.to_string().to_lowercase(),
                _ => continue,
            };
            if let Some(value) = self.synonyms.get(&text) {
                obj.insert("value".into(), json!(value));
                match obj.get_mut("processors") {
                    Some(Value::Array(p)) => p.push(json!("EntitySynonymMapper")),
                    _ => {
                        obj.insert("processors".into(), json!(["EntitySynonymMapper"]));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_case_insensitively() {
        let mut s = BTreeMap::new();
        s.insert("NYC".to_owned(), "New York".to_owned());
        let m = SynonymMapper::new(&s);
        let mut ents = vec![
            json!({"entity": "city", "value": "nyc"}),
            json!({"entity": "city", "value": "Paris"}),
        ];
        m.process(&mut ents);
        assert_eq!(ents[0]["value"], "New York");
        assert_eq!(ents[0]["processors"], json!(["EntitySynonymMapper"]));
        assert_eq!(ents[1], json!({"entity": "city", "value": "Paris"}));
    }
}
