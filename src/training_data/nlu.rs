//! NLU training data in Rasa 3.x YAML (`rasa/shared/nlu/training_data/formats/
//! rasa_yaml.py`, `entities_parser.py`): intent examples with inline entity
//! annotations, synonyms, regexes and lookup tables.
//!
//! Entity offsets (`start`, `end`) count Unicode code points, as Python's string
//! indices do, in the example text with the annotations removed.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{json, Map, Value};

use super::{short, LineIndex, TrainingDataError};

/// An entity annotated in an example.
#[derive(Debug, Clone, PartialEq)]
pub struct NluEntity {
    /// Start (code points, in the plain text).
    pub start: usize,
    /// End (exclusive).
    pub end: usize,
    /// The value: the annotated text unless a value was given.
    pub value: Value,
    /// Entity type.
    pub entity: String,
    /// Role, if annotated.
    pub role: Option<String>,
    /// Group, if annotated.
    pub group: Option<String>,
}

impl NluEntity {
    /// The entity as Rasa writes it in parse data (`start`, `end`, `value`, `entity`,
    /// then `role`/`group` when set).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("start".into(), json!(self.start));
        m.insert("end".into(), json!(self.end));
        m.insert("value".into(), self.value.clone());
        m.insert("entity".into(), json!(self.entity));
        if let Some(r) = &self.role {
            m.insert("role".into(), json!(r));
        }
        if let Some(g) = &self.group {
            m.insert("group".into(), json!(g));
        }
        Value::Object(m)
    }
}

/// One intent example.
#[derive(Debug, Clone, PartialEq)]
pub struct NluExample {
    /// The text without annotations.
    pub text: String,
    /// The intent (full name for retrieval intents, e.g. `faq/ask_name`).
    pub intent: String,
    /// Annotated entities.
    pub entities: Vec<NluEntity>,
    /// Example or intent `metadata`, if any.
    pub metadata: Option<Value>,
}

/// A `regex:` feature.
#[derive(Debug, Clone, PartialEq)]
pub struct RegexFeature {
    /// Name (often an entity name).
    pub name: String,
    /// The pattern as written.
    pub pattern: String,
}

/// A `lookup:` table.
#[derive(Debug, Clone, PartialEq)]
pub struct LookupTable {
    /// Name (often an entity name).
    pub name: String,
    /// Elements.
    pub elements: Vec<String>,
}

/// All NLU data.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NluData {
    /// Intent examples in file order.
    pub examples: Vec<NluExample>,
    /// Entity synonyms: text as it appears → value to use. From `synonym:` blocks and
    /// from annotations whose value differs from the annotated text.
    pub synonyms: BTreeMap<String, String>,
    /// Regex features.
    pub regexes: Vec<RegexFeature>,
    /// Lookup tables.
    pub lookups: Vec<LookupTable>,
    /// Responses of retrieval intents (`utter_faq/ask_name`), Rasa's
    /// `TrainingData.responses`: the `responses:` of the data files, plus the domain's
    /// retrieval responses once the project is loaded. The response selector reports
    /// them with its prediction.
    pub responses: Map<String, Value>,
}

impl NluData {
    /// Intent names with at least one example, in first-seen order.
    pub fn intents(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for e in &self.examples {
            if !out.contains(&e.intent) {
                out.push(e.intent.clone());
            }
        }
        out
    }
}

static ENTITY_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"\[(?P<text>[^\]]+?)\](\((?P<entity>[^:)]+?)(?::(?P<value>[^)]+))?\)|\{(?P<dict>[^}]+?)\}|\[(?P<list>.*?)\])",
    )
    .expect("valid entity regex")
});

fn char_len(s: &str) -> usize {
    s.chars().count()
}

fn entity_from_dict(
    text: &str,
    d: &Map<String, Value>,
    start: usize,
    end: usize,
) -> Option<NluEntity> {
    let entity = d.get("entity")?.as_str()?.to_owned();
    let opt = |k: &str| d.get(k).and_then(Value::as_str).map(str::to_owned);
    Some(NluEntity {
        start,
        end,
        value: d.get("value").cloned().unwrap_or_else(|| json!(text)),
        entity,
        role: opt("role"),
        group: opt("group"),
    })
}

/// Parses an annotated example: returns the plain text and the entities, with the
/// offsets Rasa computes. Malformed JSON annotations are left out.
pub fn parse_annotated(example: &str) -> (String, Vec<NluEntity>) {
    let mut entities = Vec::new();
    let mut offset = 0usize;
    for caps in ENTITY_RE.captures_iter(example) {
        let Some(whole) = caps.get(0) else { continue };
        let text = caps.name("text").map(|m| m.as_str()).unwrap_or_default();
        let start = char_len(&example[..whole.start()]) - offset;
        let end = start + char_len(text);
        offset += char_len(whole.as_str()) - char_len(text);
        if let Some(dict) = caps.name("dict") {
            if let Ok(Value::Object(d)) = serde_json::from_str(&format!("{{{}}}", dict.as_str())) {
                entities.extend(entity_from_dict(text, &d, start, end));
            }
        } else if let Some(list) = caps.name("list") {
            if let Ok(Value::Array(items)) = serde_json::from_str(&format!("[{}]", list.as_str())) {
                for item in items {
                    if let Value::Object(d) = item {
                        entities.extend(entity_from_dict(text, &d, start, end));
                    }
                }
            }
        } else if let Some(entity) = caps.name("entity") {
            let value = caps.name("value").map(|m| m.as_str()).unwrap_or(text);
            entities.push(NluEntity {
                start,
                end,
                value: json!(value),
                entity: entity.as_str().to_owned(),
                role: None,
                group: None,
            });
        }
    }
    let plain = ENTITY_RE
        .replace_all(example, |c: &regex::Captures<'_>| {
            c.name("text")
                .map(|m| m.as_str().to_owned())
                .unwrap_or_default()
        })
        .into_owned();
    (plain, entities)
}

/// [`parse_annotated`] with the entities as JSON objects.
pub fn parse_annotated_text(example: &str) -> (String, Vec<Value>) {
    let (plain, ents) = parse_annotated(example);
    (plain, ents.iter().map(NluEntity::to_json).collect())
}

/// Entities of a `/intent{"entity": "value"}` text, as Rasa's story reader unpacks
/// them (offsets of the JSON part); `None` when the text is not such a shortcut.
pub fn parse_intent_shortcut(text: &str) -> Option<Vec<Value>> {
    static SHORTCUT: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^/(?P<intent>[^{@]+)(?P<conf>@[0-9.]+)?(?P<ents>\{.+\})?(?P<rest>.*)$")
            .expect("valid shortcut regex")
    });
    let caps = SHORTCUT.captures(text.trim())?;
    let Some(ents) = caps.name("ents") else {
        return Some(Vec::new());
    };
    let start = char_len(&text.trim()[..ents.start()]);
    let end = start + char_len(ents.as_str());
    let Ok(Value::Object(m)) = serde_json::from_str::<Value>(ents.as_str()) else {
        return Some(Vec::new());
    };
    let mut out = Vec::new();
    for (entity, values) in m {
        let values = match values {
            Value::Array(a) => a,
            v => vec![v],
        };
        for v in values {
            out.push(json!({"entity": entity, "value": v, "start": start, "end": end}));
        }
    }
    Some(out)
}

/// The examples of a `examples: |` block (or a list of `text:` maps).
fn example_texts(
    v: Option<&Value>,
    file: &str,
    line: Option<usize>,
    what: &str,
    warnings: &mut Vec<String>,
) -> Result<Vec<(String, Option<Value>)>, TrainingDataError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(block)) => {
            let mut out = Vec::new();
            for l in block.lines() {
                match l.strip_prefix('-') {
                    Some(rest) => {
                        let t = rest.trim();
                        if t.is_empty() {
                            warnings.push(format!("{file}: {what} has an empty example"));
                        } else {
                            out.push((t.to_owned(), None));
                        }
                    }
                    None if l.trim().is_empty() => {}
                    None => warnings.push(format!(
                        "{file}: {what}: the example '{l}' does not start with '-'; it is skipped"
                    )),
                }
            }
            Ok(out)
        }
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for item in items {
                match item {
                    Value::Object(o) => match o.get("text") {
                        Some(Value::String(t)) => {
                            out.push((t.trim().to_owned(), o.get("metadata").cloned()))
                        }
                        _ => {
                            return Err(TrainingDataError::invalid(
                                file,
                                line,
                                format!("{what}: an example needs a 'text', found {}", short(item)),
                            ))
                        }
                    },
                    Value::String(t) => out.push((t.trim().to_owned(), None)),
                    other => {
                        return Err(TrainingDataError::invalid(
                            file,
                            line,
                            format!("{what}: invalid example {}", short(other)),
                        ))
                    }
                }
            }
            Ok(out)
        }
        Some(other) => Err(TrainingDataError::invalid(
            file,
            line,
            format!(
                "{what}: 'examples' must be a text block or a list, found {}",
                short(other)
            ),
        )),
    }
}

/// Parses the list under `nlu:`.
pub(crate) fn parse_items(
    items: &Value,
    file: &str,
    lines: &LineIndex,
    nlu: &mut NluData,
    warnings: &mut Vec<String>,
) -> Result<(), TrainingDataError> {
    let items = match items {
        Value::Null => return Ok(()),
        Value::Array(a) => a,
        other => {
            return Err(TrainingDataError::invalid(
                file,
                None,
                format!("'nlu' must be a list, found {}", short(other)),
            ))
        }
    };
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, item) in items.iter().enumerate() {
        let Value::Object(o) = item else {
            warnings.push(format!(
                "{file}: nlu item {} is not a map; it is skipped",
                index + 1
            ));
            continue;
        };
        let Some(key) = ["intent", "synonym", "regex", "lookup"]
            .into_iter()
            .find(|k| o.contains_key(*k))
        else {
            warnings.push(format!(
                "{file}: nlu item {} has none of intent, synonym, regex, lookup; it is skipped",
                index + 1
            ));
            continue;
        };
        let n = counts.entry(key).or_default();
        let line = lines.nth_item(key, *n);
        *n += 1;
        let name = match o.get(key) {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
            Some(Value::Number(n)) => n.to_string(),
            other => {
                return Err(TrainingDataError::invalid(
                    file,
                    line,
                    format!(
                        "'{key}' must be a name, found {}",
                        other.map(short).unwrap_or_else(|| "nothing".into())
                    ),
                ))
            }
        };
        let what = format!("{key} '{name}'");
        let examples = example_texts(o.get("examples"), file, line, &what, warnings)?;
        match key {
            "intent" => {
                let intent_meta = o.get("metadata").cloned();
                for (text, meta) in examples {
                    let (plain, entities) = parse_annotated(&text);
                    for e in &entities {
                        let covered: String =
                            plain.chars().skip(e.start).take(e.end - e.start).collect();
                        let value = match &e.value {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        if covered != value {
                            nlu.synonyms.insert(covered, value);
                        }
                    }
                    nlu.examples.push(NluExample {
                        text: plain,
                        intent: name.clone(),
                        entities,
                        metadata: meta.or_else(|| intent_meta.clone()),
                    });
                }
            }
            "synonym" => {
                for (text, _) in examples {
                    nlu.synonyms.insert(text, name.clone());
                }
            }
            "regex" => {
                for (pattern, _) in examples {
                    nlu.regexes.push(RegexFeature {
                        name: name.clone(),
                        pattern,
                    });
                }
            }
            _ => {
                let elements: Vec<String> = examples.into_iter().map(|(t, _)| t).collect();
                match nlu.lookups.iter_mut().find(|l| l.name == name) {
                    Some(l) => l.elements.extend(elements),
                    None => nlu.lookups.push(LookupTable {
                        name: name.clone(),
                        elements,
                    }),
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::TrainingData;
    use super::*;

    #[test]
    fn annotations() {
        let (plain, e) =
            parse_annotated("my name is [Ada](name) and I fly to [NYC](city:New York)");
        assert_eq!(plain, "my name is Ada and I fly to NYC");
        assert_eq!(
            e[0].to_json(),
            json!({"start": 11, "end": 14, "value": "Ada", "entity": "name"})
        );
        assert_eq!(e[1].start, 28);
        assert_eq!(e[1].value, json!("New York"));
        let (plain, e) = parse_annotated(
            r#"from [Berlin]{"entity": "city", "role": "from"} to [Köln]{"entity": "city", "role": "to", "value": "Cologne", "group": "1"}"#,
        );
        assert_eq!(plain, "from Berlin to Köln");
        assert_eq!(
            e[1].to_json(),
            json!({"start": 15, "end": 19, "value": "Cologne", "entity": "city", "role": "to", "group": "1"})
        );
        assert_eq!(e[0].role.as_deref(), Some("from"));
        let (plain, e) = parse_annotated(
            r#"[ab]{"entity": "x"} [cd][{"entity": "y"}, {"entity": "z", "value": 3}]"#,
        );
        assert_eq!(plain, "ab cd");
        assert_eq!(e.len(), 3);
        assert_eq!((e[1].start, e[1].end, e[2].value.clone()), (3, 5, json!(3)));
    }

    #[test]
    fn shortcut_entities() {
        assert_eq!(
            parse_intent_shortcut(r#"/inform{"email": "a@b.c"}"#).unwrap(),
            vec![json!({"entity": "email", "value": "a@b.c", "start": 7, "end": 25})]
        );
        assert_eq!(
            parse_intent_shortcut("/greet").unwrap(),
            Vec::<Value>::new()
        );
        assert!(parse_intent_shortcut("hello").is_none());
    }

    #[test]
    fn nlu_sections() {
        let d = TrainingData::from_yaml(
            r#"nlu:
- intent: inform
  metadata: {sentiment: neutral}
  examples: |
    - I live in [Berlin](city)
    - [NY](city:New York)
    not an example
- intent: faq/ask_name
  examples:
  - text: what is your name
    metadata: {a: 1}
- synonym: savings
  examples: |
    - pink pig
- regex: zipcode
  examples: |
    - \d{5}
- lookup: city
  examples: |
    - Paris
    - Rome
- something: else
"#,
        )
        .unwrap();
        let n = &d.nlu;
        assert_eq!(n.examples.len(), 3);
        assert_eq!(n.examples[0].text, "I live in Berlin");
        assert_eq!(
            n.examples[0].metadata,
            Some(json!({"sentiment": "neutral"}))
        );
        assert_eq!(n.examples[2].intent, "faq/ask_name");
        assert_eq!(n.examples[2].metadata, Some(json!({"a": 1})));
        assert_eq!(n.synonyms.get("NY").map(String::as_str), Some("New York"));
        assert_eq!(
            n.synonyms.get("pink pig").map(String::as_str),
            Some("savings")
        );
        assert_eq!(n.regexes[0].pattern, r"\d{5}");
        assert_eq!(n.lookups[0].elements, ["Paris", "Rome"]);
        assert_eq!(n.intents(), ["inform", "faq/ask_name"]);
        assert_eq!(d.warnings.len(), 2, "{:?}", d.warnings);
    }
}
