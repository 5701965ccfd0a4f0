//! The domain: what the bot knows about (intents, entities, slots, responses, actions,
//! forms) and its session settings, read from `domain.yml` or a `domain/` folder.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::slots::{Slot, SlotType, REQUESTED_SLOT, SESSION_STARTED_METADATA};
use crate::yaml::{self, YamlError};

/// A domain that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// A file could not be read or is not valid YAML.
    #[error(transparent)]
    Yaml(#[from] YamlError),
    /// The content is valid YAML but not a valid domain.
    #[error("{file}: {message}")]
    Invalid {
        /// The file the problem is in.
        file: String,
        /// What is wrong.
        message: String,
    },
}

/// `session_config` of the domain.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionConfig {
    /// Minutes of user silence after which a new session starts; 0 = never.
    pub session_expiration_time: f64,
    /// Whether slots are carried over into a new session.
    pub carry_over_slots_to_new_session: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            session_expiration_time: 60.0,
            carry_over_slots_to_new_session: true,
        }
    }
}

/// The loaded domain.
#[derive(Debug, Clone, Default)]
pub struct Domain {
    /// Intent names in domain order.
    pub intents: Vec<String>,
    /// Entity names in domain order.
    pub entities: Vec<String>,
    /// Slots in domain order, followed by the slots palaver adds
    /// (`requested_slot` when there are forms, then `session_started_metadata`).
    pub slots: Vec<Slot>,
    /// Responses by name, as written in the domain.
    pub responses: Map<String, Value>,
    /// Custom action names listed under `actions:`.
    pub actions: Vec<String>,
    /// Forms by name, as written in the domain.
    pub forms: Map<String, Value>,
    /// Session settings.
    pub session_config: SessionConfig,
}

fn invalid(file: &str, message: impl Into<String>) -> DomainError {
    DomainError::Invalid {
        file: file.to_owned(),
        message: message.into(),
    }
}

/// The names in a domain list whose entries are either names or `{name: {...}}` maps.
fn names_of(list: &Value, key: &str, file: &str) -> Result<Vec<String>, DomainError> {
    let mut out = Vec::new();
    match list {
        Value::Null => {}
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::String(s) => out.push(s.clone()),
                    Value::Object(o) if o.len() == 1 => {
                        out.extend(o.keys().cloned());
                    }
                    other => {
                        return Err(invalid(
                            file,
                            format!("'{key}' entries must be names or one-key maps, found {other}"),
                        ))
                    }
                }
            }
        }
        other => {
            return Err(invalid(
                file,
                format!("'{key}' must be a list, found {other}"),
            ))
        }
    }
    Ok(out)
}

fn parse_slot(name: &str, def: &Value, file: &str) -> Result<Slot, DomainError> {
    let o = def
        .as_object()
        .ok_or_else(|| invalid(file, format!("slot '{name}' must be a map")))?;
    let type_name = o
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(file, format!("slot '{name}' has no 'type'")))?;
    let slot_type = match type_name {
        "text" | "rasa.shared.core.slots.TextSlot" => SlotType::Text,
        "bool" | "rasa.shared.core.slots.BooleanSlot" => SlotType::Bool,
        "float" | "rasa.shared.core.slots.FloatSlot" => {
            let min_value = o.get("min_value").and_then(Value::as_f64).unwrap_or(0.0);
            let max_value = o.get("max_value").and_then(Value::as_f64).unwrap_or(1.0);
            if min_value >= max_value {
                return Err(invalid(
                    file,
                    format!(
                        "slot '{name}': min_value {min_value} must be below max_value {max_value}"
                    ),
                ));
            }
            SlotType::Float {
                min_value,
                max_value,
            }
        }
        "list" | "rasa.shared.core.slots.ListSlot" => SlotType::List,
        "categorical" | "rasa.shared.core.slots.CategoricalSlot" => {
            let mut values: Vec<String> = match o.get("values") {
                Some(Value::Array(vs)) => vs
                    .iter()
                    .filter(|v| !v.is_null())
                    .map(|v| match v {
                        Value::String(s) => s.to_lowercase(),
                        other => other.to_string().to_lowercase(),
                    })
                    .collect(),
                None | Some(Value::Null) => Vec::new(),
                Some(other) => {
                    return Err(invalid(
                        file,
                        format!("slot '{name}': 'values' must be a list, found {other}"),
                    ))
                }
            };
            if !values.iter().any(|v| v == "__other__") {
                values.push("__other__".into());
            }
            SlotType::Categorical { values }
        }
        "any" | "rasa.shared.core.slots.AnySlot" => SlotType::Any,
        custom if custom.contains('.') => SlotType::Custom(custom.to_owned()),
        other => {
            return Err(invalid(
                file,
                format!(
                    "slot '{name}' has unknown type '{other}' \
                     (text, bool, float, list, categorical, any, or a module.Class path)"
                ),
            ))
        }
    };
    let influence_default = !matches!(slot_type, SlotType::Any);
    let influence_conversation = match o.get("influence_conversation") {
        None | Some(Value::Null) => influence_default,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(invalid(
                file,
                format!(
                    "slot '{name}': influence_conversation must be true or false, found {other}"
                ),
            ))
        }
    };
    if influence_conversation && matches!(slot_type, SlotType::Any) {
        return Err(invalid(
            file,
            format!("slot '{name}' of type 'any' cannot influence the conversation"),
        ));
    }
    let mappings = match o.get("mappings") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(m)) => m.clone(),
        Some(other) => {
            return Err(invalid(
                file,
                format!("slot '{name}': 'mappings' must be a list, found {other}"),
            ))
        }
    };
    Ok(Slot {
        name: name.to_owned(),
        slot_type,
        initial_value: o.get("initial_value").cloned().unwrap_or(Value::Null),
        influence_conversation,
        mappings,
    })
}

impl Domain {
    /// Builds a domain from the parsed YAML documents of one or more domain files,
    /// merged in order.
    pub fn from_documents(docs: &[(String, Value)]) -> Result<Domain, DomainError> {
        let mut d = Domain::default();
        let mut session_seen = false;
        for (file, doc) in docs {
            let doc = match doc {
                Value::Null => continue,
                Value::Object(o) => o,
                other => {
                    return Err(invalid(
                        file,
                        format!("a domain must be a map, found {other}"),
                    ))
                }
            };
            for name in names_of(doc.get("intents").unwrap_or(&Value::Null), "intents", file)? {
                if !d.intents.contains(&name) {
                    d.intents.push(name);
                }
            }
            for name in names_of(
                doc.get("entities").unwrap_or(&Value::Null),
                "entities",
                file,
            )? {
                if !d.entities.contains(&name) {
                    d.entities.push(name);
                }
            }
            for name in names_of(doc.get("actions").unwrap_or(&Value::Null), "actions", file)? {
                if !d.actions.contains(&name) {
                    d.actions.push(name);
                }
            }
            match doc.get("slots") {
                None | Some(Value::Null) => {}
                Some(Value::Object(slots)) => {
                    for (name, def) in slots {
                        let slot = parse_slot(name, def, file)?;
                        match d.slots.iter_mut().find(|s| &s.name == name) {
                            Some(existing) => *existing = slot,
                            None => d.slots.push(slot),
                        }
                    }
                }
                Some(other) => {
                    return Err(invalid(
                        file,
                        format!("'slots' must be a map, found {other}"),
                    ))
                }
            }
            for (key, target) in [("responses", &mut d.responses), ("forms", &mut d.forms)] {
                match doc.get(key) {
                    None | Some(Value::Null) => {}
                    Some(Value::Object(m)) => {
                        for (k, v) in m {
                            target.insert(k.clone(), v.clone());
                        }
                    }
                    Some(other) => {
                        return Err(invalid(
                            file,
                            format!("'{key}' must be a map, found {other}"),
                        ))
                    }
                }
            }
            if let Some(sc) = doc.get("session_config") {
                if !session_seen {
                    session_seen = true;
                    if let Some(t) = sc.get("session_expiration_time") {
                        d.session_config.session_expiration_time = t.as_f64().ok_or_else(|| {
                            invalid(file, "session_expiration_time must be a number of minutes")
                        })?;
                    }
                    if let Some(c) = sc.get("carry_over_slots_to_new_session") {
                        d.session_config.carry_over_slots_to_new_session =
                            c.as_bool().ok_or_else(|| {
                                invalid(
                                    file,
                                    "carry_over_slots_to_new_session must be true or false",
                                )
                            })?;
                    }
                }
            }
        }
        if !d.forms.is_empty() && !d.slots.iter().any(|s| s.name == REQUESTED_SLOT) {
            d.slots.push(Slot::builtin(REQUESTED_SLOT, SlotType::Text));
        }
        if !d.slots.iter().any(|s| s.name == SESSION_STARTED_METADATA) {
            d.slots
                .push(Slot::builtin(SESSION_STARTED_METADATA, SlotType::Any));
        }
        Ok(d)
    }

    /// Loads `domain.yml` (or every YAML file of a `domain/` folder, recursively,
    /// in name order).
    pub fn load(path: &Path) -> Result<Domain, DomainError> {
        let mut files = Vec::new();
        if path.is_dir() {
            collect_yaml_files(path, &mut files);
            files.sort();
        } else {
            files.push(path.to_path_buf());
        }
        let mut docs = Vec::new();
        for f in files {
            docs.push((f.display().to_string(), yaml::read_file(&f)?));
        }
        Domain::from_documents(&docs)
    }

    /// The slot definition with this name.
    pub fn slot(&self, name: &str) -> Option<&Slot> {
        self.slots.iter().find(|s| s.name == name)
    }
}

fn collect_yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                collect_yaml_files(&p, out);
            } else if matches!(p.extension().and_then(|x| x.to_str()), Some("yml" | "yaml")) {
                out.push(p);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(text: &str) -> Result<Domain, DomainError> {
        Domain::from_documents(&[(
            "domain.yml".into(),
            yaml::parse_str(text, "domain.yml").unwrap(),
        )])
    }

    #[test]
    fn slots_in_order_with_builtins() {
        let d = domain(
            "intents: [greet, {bye: {use_entities: []}}]\nslots:\n  b:\n    type: text\n  a:\n    type: bool\n    initial_value: true\nforms:\n  f:\n    required_slots: [a]\n",
        )
        .unwrap();
        let names: Vec<_> = d.slots.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["b", "a", REQUESTED_SLOT, SESSION_STARTED_METADATA]);
        assert_eq!(d.intents, ["greet", "bye"]);
        assert_eq!(d.slots[1].initial_value, Value::Bool(true));
    }

    #[test]
    fn bad_slot_types_are_named() {
        let e = domain("slots:\n  x:\n    type: texty\n").unwrap_err();
        assert!(
            e.to_string().contains("slot 'x' has unknown type 'texty'"),
            "{e}"
        );
        let e =
            domain("slots:\n  x:\n    type: any\n    influence_conversation: true\n").unwrap_err();
        assert!(e.to_string().contains("cannot influence"), "{e}");
    }
}
