//! The domain: what the bot knows about (intents, entities, slots, responses, actions,
//! forms) and its session settings, read from `domain.yml` or a `domain/` folder.

use std::collections::{BTreeMap, BTreeSet};
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
#[derive(Debug, Clone)]
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
    /// How each intent (domain intents and Rasa's default intents) filters the
    /// entities the policies see.
    pub intent_properties: BTreeMap<String, IntentProperties>,
    /// Roles, groups and featurization of the entities.
    pub entity_properties: EntityProperties,
    /// `config.store_entities_as_slots` (default true).
    pub store_entities_as_slots: bool,
    /// The merged domain documents as written (empty keys removed), in Rasa 3.6's
    /// `Domain.as_dict()` shape: what `GET /domain` returns.
    pub raw: Map<String, Value>,
}

/// The intents Rasa adds to every domain (`DEFAULT_INTENTS`, 3.6).
pub const DEFAULT_INTENTS: &[&str] = &[
    "restart",
    "back",
    "out_of_scope",
    "session_start",
    "nlu_fallback",
];

/// Rasa 3.6's default actions, in the fixed order that starts every domain's
/// action list (`DEFAULT_ACTION_NAMES`); `...` is the rule snippet placeholder.
pub const DEFAULT_ACTION_NAMES: &[&str] = &[
    "action_listen",
    "action_restart",
    "action_session_start",
    "action_default_fallback",
    "action_deactivate_loop",
    "action_revert_fallback_events",
    "action_default_ask_affirmation",
    "action_default_ask_rephrase",
    "action_two_stage_fallback",
    "action_unlikely_intent",
    "action_back",
    "...",
    "action_extract_slots",
];

/// The rule snippet placeholder action.
pub const RULE_SNIPPET_ACTION_NAME: &str = "...";

/// The properties of one intent, as Rasa uses them internally.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IntentProperties {
    /// Entity labels (`entity`, `entity#role`, `entity#group`) the policies see for
    /// this intent, sorted: `use_entities` minus `ignore_entities`.
    pub used_entities: Vec<String>,
    /// `is_retrieval_intent`, when given.
    pub is_retrieval_intent: bool,
}

/// Roles, groups and `influence_conversation` of the domain's entities.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EntityProperties {
    /// Roles by entity.
    pub roles: BTreeMap<String, Vec<String>>,
    /// Groups by entity.
    pub groups: BTreeMap<String, Vec<String>>,
    /// Entities with `influence_conversation: false`: ignored by default for every
    /// intent that does not list them.
    pub default_ignored_entities: Vec<String>,
}

impl Default for Domain {
    fn default() -> Self {
        Domain {
            intents: Vec::new(),
            entities: Vec::new(),
            slots: Vec::new(),
            responses: Map::new(),
            actions: Vec::new(),
            forms: Map::new(),
            session_config: SessionConfig::default(),
            intent_properties: BTreeMap::new(),
            entity_properties: EntityProperties::default(),
            store_entities_as_slots: true,
            raw: Map::new(),
        }
    }
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
        let mut raw_intents: Vec<(String, Value, String)> = Vec::new();
        let mut raw_entities: Vec<(String, Value, String)> = Vec::new();
        let mut raw_docs = 0usize;
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
            raw_docs += 1;
            merge_raw(&mut d.raw, doc, raw_docs > 1);
            collect_entries(doc.get("intents"), file, &mut raw_intents);
            collect_entries(doc.get("entities"), file, &mut raw_entities);
            if let Some(store) = doc
                .get("config")
                .and_then(|c| c.get("store_entities_as_slots"))
                .and_then(Value::as_bool)
            {
                d.store_entities_as_slots = store;
            }
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
        d.entity_properties = entity_properties(&raw_entities)?;
        d.intent_properties = intent_properties(&raw_intents, &d.entities, &d.entity_properties)?;
        finish_raw(&mut d.raw, d.store_entities_as_slots);
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

    /// Rasa's `action_names_or_texts`: the default actions in their fixed order, then
    /// the `actions:` of the domain, then the response names not listed there
    /// (sorted), then the forms not listed as actions. User actions that shadow a
    /// default action keep the default's position.
    pub fn action_names(&self) -> Vec<String> {
        let mut out: Vec<String> = DEFAULT_ACTION_NAMES.iter().map(|s| s.to_string()).collect();
        let mut seen: BTreeSet<String> = out.iter().cloned().collect();
        let mut responses: Vec<&String> = self
            .responses
            .keys()
            .filter(|r| !self.actions.contains(r))
            .collect();
        responses.sort();
        for a in self.actions.iter().chain(responses) {
            if seen.insert(a.clone()) {
                out.push(a.clone());
            }
        }
        for f in self.forms.keys() {
            if !self.actions.contains(f) && seen.insert(f.clone()) {
                out.push(f.clone());
            }
        }
        out
    }

    /// Whether `name` is one of Rasa's default actions (including `...`).
    pub fn is_default_action(name: &str) -> bool {
        DEFAULT_ACTION_NAMES.contains(&name)
    }

    /// Whether the intent is known: a domain intent or one of Rasa's default intents.
    pub fn intent_exists(&self, name: &str) -> bool {
        self.intents.iter().any(|i| i == name) || DEFAULT_INTENTS.contains(&name)
    }

    /// Adds what the NLU data says about retrieval intents, as Rasa's
    /// `ResponsesSyncImporter.get_domain` does when it loads a project: each retrieval
    /// intent (`faq` of `faq/ask_name` examples) becomes an intent with
    /// `is_retrieval_intent: true` (using every entity again), its retrieval action
    /// `utter_faq` joins the actions, and the data files' `responses:` are merged into
    /// the domain's (a data file's response replaces a domain response of the same
    /// name). `GET /domain` shows the result as Rasa's merged domain does.
    pub fn merge_retrieval_intents(
        &mut self,
        retrieval_intents: &[String],
        responses: &Map<String, Value>,
    ) {
        for ri in retrieval_intents {
            let mut props = Map::new();
            if let Some(existing) = self.intent_properties.get(ri) {
                props.insert(
                    "used_entities".into(),
                    serde_json::json!(existing.used_entities),
                );
            }
            props.insert("is_retrieval_intent".into(), Value::Bool(true));
            let entry = (ri.clone(), Value::Object(props.clone()), String::new());
            if let Ok(mut computed) =
                intent_properties(&[entry], &self.entities, &self.entity_properties)
            {
                if let Some(p) = computed.remove(ri) {
                    self.intent_properties.insert(ri.clone(), p);
                }
            }
            if !self.intents.contains(ri) {
                self.intents.push(ri.clone());
            }
            let mut item = Map::new();
            item.insert(ri.clone(), Value::Object(props));
            upsert_named(&mut self.raw, "intents", ri, Value::Object(item));
            let action = format!("utter_{ri}");
            if !self.actions.contains(&action) {
                self.actions.push(action.clone());
            }
            upsert_named(
                &mut self.raw,
                "actions",
                &action,
                Value::String(action.clone()),
            );
        }
        if let Some(Value::Array(intents)) = self.raw.get_mut("intents") {
            intents.sort_by_key(|i| named_key(i).unwrap_or_default());
        }
        if !responses.is_empty() {
            let raw = self
                .raw
                .entry("responses")
                .or_insert_with(|| Value::Object(Map::new()));
            for (k, v) in responses {
                self.responses.insert(k.clone(), v.clone());
                if let Value::Object(r) = raw {
                    r.insert(k.clone(), v.clone());
                }
            }
        }
    }

    /// The retrieval intents of the domain (`is_retrieval_intent`), sorted.
    pub fn retrieval_intents(&self) -> Vec<String> {
        self.intent_properties
            .iter()
            .filter(|(_, p)| p.is_retrieval_intent)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Whether `name` is the retrieval action of a retrieval intent (`utter_faq` for
    /// `faq`), Rasa's `is_retrieval_action`.
    pub fn is_retrieval_action(&self, name: &str) -> bool {
        name.strip_prefix("utter_")
            .and_then(|i| self.intent_properties.get(i))
            .is_some_and(|p| p.is_retrieval_intent)
    }

    /// Every intent Rasa knows for this domain (domain and default intents), sorted,
    /// as Rasa's `domain.intents`.
    pub fn all_intents(&self) -> Vec<String> {
        let mut all: BTreeSet<String> = self.intents.iter().cloned().collect();
        all.extend(DEFAULT_INTENTS.iter().map(|s| s.to_string()));
        all.into_iter().collect()
    }

    /// The entity labels of a message that the policies see for `intent`: entity
    /// names plus `entity#role` / `entity#group`, filtered by the intent's
    /// `use_entities`/`ignore_entities` (all labels for an unknown intent), sorted
    /// and de-duplicated (Rasa's `_get_featurized_entities`).
    pub fn featurized_entities(&self, intent: Option<&str>, entities: &[Value]) -> Vec<String> {
        let mut labels: BTreeSet<String> = BTreeSet::new();
        for e in entities {
            let Some(o) = e.as_object() else { continue };
            let Some(name) = o.get("entity") else {
                continue;
            };
            let name = python_str(name);
            labels.insert(name.clone());
            for key in ["role", "group"] {
                if let Some(sub) = o.get(key) {
                    labels.insert(format!("{name}#{}", python_str(sub)));
                }
            }
        }
        match intent.and_then(|i| self.intent_properties.get(i)) {
            Some(props) => labels
                .into_iter()
                .filter(|l| props.used_entities.binary_search(l).is_ok())
                .collect(),
            None => labels.into_iter().collect(),
        }
    }

    /// The JSON of `GET /domain` (Rasa 3.6's `Domain.as_dict()`): the domain as
    /// written, empty keys removed, intents sorted by name, plus `version` and
    /// `session_config` when the files had none.
    pub fn to_json(&self) -> Value {
        Value::Object(self.raw.clone())
    }

    /// The YAML of `GET /domain` with `Accept: application/x-yaml` (Rasa's
    /// `Domain.as_yaml()`): the same content as [`Domain::to_json`], `version` first,
    /// written as ruamel writes it.
    pub fn to_yaml(&self) -> String {
        let mut ordered = Map::new();
        ordered.insert(
            "version".into(),
            self.raw
                .get("version")
                .cloned()
                .unwrap_or_else(|| Value::String(LATEST_VERSION.into())),
        );
        for (k, v) in &self.raw {
            if k != "version" {
                ordered.insert(k.clone(), v.clone());
            }
        }
        let mut out = String::new();
        yaml_out::write_map(&mut out, &ordered, 0);
        out
    }
}

/// The training data format version Rasa 3.6 writes.
pub const LATEST_VERSION: &str = "3.1";

/// Python's `str()` of a JSON value, as used in entity labels.
fn python_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        other => other.to_string(),
    }
}

/// Collects the raw `intents:`/`entities:` entries (name, properties, file).
fn collect_entries(list: Option<&Value>, file: &str, out: &mut Vec<(String, Value, String)>) {
    if let Some(Value::Array(items)) = list {
        for item in items {
            match item {
                Value::String(s) => out.push((s.clone(), Value::Bool(true), file.to_owned())),
                Value::Object(o) if o.len() == 1 => {
                    if let Some((k, v)) = o.iter().next() {
                        out.push((k.clone(), v.clone(), file.to_owned()));
                    }
                }
                _ => {}
            }
        }
    }
}

fn str_list(v: &Value, what: &str, file: &str) -> Result<Vec<String>, DomainError> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.clone()),
                other => Err(invalid(
                    file,
                    format!("{what} must be a list of names, found {other}"),
                )),
            })
            .collect(),
        other => Err(invalid(
            file,
            format!("{what} must be a list of names, found {other}"),
        )),
    }
}

/// Rasa's `collect_entity_properties`.
fn entity_properties(entries: &[(String, Value, String)]) -> Result<EntityProperties, DomainError> {
    let mut props = EntityProperties::default();
    for (name, value, file) in entries {
        match value {
            Value::Bool(true) => {}
            Value::Object(o) => {
                if let Some(r) = o.get("roles") {
                    props.roles.insert(
                        name.clone(),
                        str_list(r, &format!("entity '{name}': roles"), file)?,
                    );
                }
                if let Some(g) = o.get("groups") {
                    props.groups.insert(
                        name.clone(),
                        str_list(g, &format!("entity '{name}': groups"), file)?,
                    );
                }
                match o.get("influence_conversation") {
                    None | Some(Value::Bool(true)) => {}
                    Some(Value::Bool(false)) => {
                        if !props.default_ignored_entities.contains(name) {
                            props.default_ignored_entities.push(name.clone());
                        }
                    }
                    Some(other) => {
                        return Err(invalid(
                            file,
                            format!("entity '{name}': influence_conversation must be true or false, found {other}"),
                        ))
                    }
                }
            }
            other => {
                return Err(invalid(
                    file,
                    format!(
                        "the entity '{name}' cannot have the value {other}: remove the ':' after \
                         the entity name or add roles, groups or influence_conversation"
                    ),
                ))
            }
        }
    }
    Ok(props)
}

fn concatenated_labels(
    labels: &BTreeMap<String, Vec<String>>,
    entity: Option<&str>,
) -> Vec<String> {
    labels
        .iter()
        .filter(|(e, _)| entity.is_none_or(|x| x == e.as_str()))
        .flat_map(|(e, subs)| subs.iter().map(move |s| format!("{e}#{s}")))
        .collect()
}

/// Rasa's `collect_intent_properties` (with `_transform_intent_properties_for_internal_use`).
fn intent_properties(
    entries: &[(String, Value, String)],
    entities: &[String],
    ep: &EntityProperties,
) -> Result<BTreeMap<String, IntentProperties>, DomainError> {
    let mut out = BTreeMap::new();
    let default_entry = Value::Bool(true);
    let defaults: Vec<(String, Value, String)> = DEFAULT_INTENTS
        .iter()
        .filter(|i| !entries.iter().any(|(n, _, _)| n == *i))
        .map(|i| (i.to_string(), default_entry.clone(), String::new()))
        .collect();
    for (name, value, file) in entries.iter().chain(defaults.iter()) {
        let (use_entities, ignore_entities, retrieval) = match value {
            Value::Bool(true) => (Value::Bool(true), None, false),
            Value::Object(o) => (
                o.get("use_entities").cloned().unwrap_or(Value::Bool(true)),
                o.get("ignore_entities").cloned(),
                o.get("is_retrieval_intent")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            ),
            other => {
                return Err(invalid(
                    file,
                    format!(
                        "the intent '{name}' cannot have the value {other}: remove the ':' after \
                         the intent name or add use_entities / ignore_entities"
                    ),
                ))
            }
        };
        let ignore: Vec<String> = match ignore_entities {
            None => ep.default_ignored_entities.clone(),
            Some(v) if !crate::events::is_truthy(&v) => Vec::new(),
            Some(v) => str_list(&v, &format!("intent '{name}': ignore_entities"), file)?,
        };
        let mut included: BTreeSet<String> = BTreeSet::new();
        match &use_entities {
            Value::Bool(true) => {
                included.extend(
                    entities
                        .iter()
                        .filter(|e| !ep.default_ignored_entities.contains(e))
                        .cloned(),
                );
                included.extend(concatenated_labels(&ep.roles, None));
                included.extend(concatenated_labels(&ep.groups, None));
            }
            v if !crate::events::is_truthy(v) => {}
            v => {
                for e in str_list(v, &format!("intent '{name}': use_entities"), file)? {
                    included.extend(concatenated_labels(&ep.roles, Some(&e)));
                    included.extend(concatenated_labels(&ep.groups, Some(&e)));
                    included.insert(e);
                }
            }
        }
        let mut excluded: BTreeSet<String> = BTreeSet::new();
        for e in ignore {
            excluded.extend(concatenated_labels(&ep.roles, Some(&e)));
            excluded.extend(concatenated_labels(&ep.groups, Some(&e)));
            excluded.insert(e);
        }
        let used_entities: Vec<String> = included.difference(&excluded).cloned().collect();
        out.insert(
            name.clone(),
            IntentProperties {
                used_entities,
                is_retrieval_intent: retrieval,
            },
        );
    }
    Ok(out)
}

/// The name of a raw list entry (`name` or `{name: {...}}`).
fn named_key(item: &Value) -> Option<String> {
    match item {
        Value::Object(o) => o.keys().next().cloned(),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// Replaces the entry named `name` of the raw list `key` in place, or appends it
/// (Rasa's `merge_lists_of_dicts` with override).
fn upsert_named(raw: &mut Map<String, Value>, key: &str, name: &str, item: Value) {
    let list = raw.entry(key).or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(items) = list {
        match items
            .iter_mut()
            .find(|e| named_key(e).as_deref() == Some(name))
        {
            Some(existing) => *existing = item,
            None => items.push(item),
        }
    }
}

/// Merges one domain document into the raw (as written) domain map.
fn merge_raw(raw: &mut Map<String, Value>, doc: &Map<String, Value>, later: bool) {
    for (k, v) in doc {
        match (raw.get_mut(k), v) {
            (None, _) => {
                raw.insert(k.clone(), v.clone());
            }
            (Some(Value::Object(existing)), Value::Object(new))
                if k != "session_config" && k != "config" =>
            {
                for (nk, nv) in new {
                    existing.entry(nk.clone()).or_insert_with(|| nv.clone());
                }
            }
            (Some(Value::Array(existing)), Value::Array(new)) => {
                let key_of = |x: &Value| match x {
                    Value::Object(o) => o.keys().next().cloned(),
                    Value::String(s) => Some(s.clone()),
                    _ => None,
                };
                for item in new {
                    let key = key_of(item);
                    if !existing.iter().any(|e| key_of(e) == key) {
                        existing.push(item.clone());
                    }
                }
                if later && k == "actions" {
                    existing.sort_by_key(|x| key_of(x).unwrap_or_default());
                }
            }
            (Some(Value::Null), _) => {
                raw.insert(k.clone(), v.clone());
            }
            _ => {}
        }
    }
}

/// Rasa 3.6's `_cleaned_data` + `_preprocess_domain_dict`: drops empty keys, sorts the
/// intents, normalises falsy `use_entities`/`ignore_entities` to `[]`, adds the
/// default `version`, `session_config` and (only when false) `config` keys.
fn finish_raw(raw: &mut Map<String, Value>, store_entities_as_slots: bool) {
    raw.retain(|_, v| match v {
        Value::Null => false,
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    });
    if !raw.contains_key("config") && !store_entities_as_slots {
        raw.insert(
            "config".into(),
            serde_json::json!({"store_entities_as_slots": false}),
        );
    }
    if !raw.contains_key("session_config") {
        raw.insert(
            "session_config".into(),
            serde_json::json!({"session_expiration_time": 60, "carry_over_slots_to_new_session": true}),
        );
    }
    if !raw.contains_key("version") {
        raw.insert("version".into(), Value::String(LATEST_VERSION.into()));
    }
    if let Some(Value::Array(intents)) = raw.get_mut("intents") {
        for intent in intents.iter_mut() {
            if let Value::Object(o) = intent {
                for props in o.values_mut() {
                    if let Value::Object(p) = props {
                        for key in ["use_entities", "ignore_entities"] {
                            if p.get(key).is_some_and(|v| !crate::events::is_truthy(v)) {
                                p.insert(key.into(), Value::Array(Vec::new()));
                            }
                        }
                    }
                }
            }
        }
        intents.sort_by_key(|i| match i {
            Value::String(s) => s.clone(),
            Value::Object(o) => o.keys().next().cloned().unwrap_or_default(),
            other => other.to_string(),
        });
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

/// A small YAML writer that lays documents out as ruamel (Rasa's YAML library) does:
/// block style, two-space mapping indent, sequences flush with their key, plain
/// scalars where YAML 1.2 reads them back as the same string, single quotes otherwise.
pub(crate) mod yaml_out {
    use std::sync::LazyLock;

    use serde_json::{Map, Value};

    fn is_yaml12_non_string(s: &str) -> bool {
        const KEYWORDS: &[&str] = &[
            "~", "null", "Null", "NULL", "true", "True", "TRUE", "false", "False", "FALSE", ".inf",
            ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", ".nan", ".NaN",
            ".NAN",
        ];
        if KEYWORDS.contains(&s) {
            return true;
        }
        static NUMBER: LazyLock<Option<regex::Regex>> = LazyLock::new(|| {
            regex::Regex::new(
                r"^(?:[-+]?[0-9_]+|0o[0-7_]+|0x[0-9a-fA-F_]+|[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+|[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?)$",
            )
            .ok()
        });
        NUMBER.as_ref().is_some_and(|r| r.is_match(s))
    }

    fn plain_ok(s: &str) -> bool {
        if s.is_empty() || is_yaml12_non_string(s) {
            return false;
        }
        if s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) {
            return false;
        }
        if s.contains(['\n', '\r', '\t']) || s.chars().any(|c| c.is_control()) {
            return false;
        }
        let first = s.chars().next().unwrap_or(' ');
        if "#,[]{}&*!|>'\"%@`".contains(first) {
            return false;
        }
        if "-?:".contains(first) {
            let second = s.chars().nth(1);
            if second.is_none_or(|c| c == ' ') {
                return false;
            }
        }
        !(s.contains(": ") || s.contains(" #") || s.ends_with(':'))
    }

    /// One scalar as ruamel writes it.
    pub fn scalar(v: &Value) -> String {
        match v {
            Value::Null => "null".into(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => {
                if n.is_f64() {
                    crate::domain::python_float(n.as_f64().unwrap_or(0.0))
                } else {
                    n.to_string()
                }
            }
            Value::String(s) => {
                if plain_ok(s) {
                    s.clone()
                } else if s.chars().any(|c| c.is_control()) {
                    serde_json::to_string(s).unwrap_or_default()
                } else {
                    format!("'{}'", s.replace('\'', "''"))
                }
            }
            Value::Array(a) if a.is_empty() => "[]".into(),
            Value::Object(o) if o.is_empty() => "{}".into(),
            other => other.to_string(),
        }
    }

    fn is_block(v: &Value) -> bool {
        match v {
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.is_empty(),
            _ => false,
        }
    }

    /// Writes a mapping at `indent` spaces.
    pub fn write_map(out: &mut String, map: &Map<String, Value>, indent: usize) {
        let pad = " ".repeat(indent);
        for (k, v) in map {
            let key = scalar(&Value::String(k.clone()));
            match v {
                Value::Object(o) if !o.is_empty() => {
                    out.push_str(&format!("{pad}{key}:\n"));
                    write_map(out, o, indent + 2);
                }
                Value::Array(a) if !a.is_empty() => {
                    out.push_str(&format!("{pad}{key}:\n"));
                    write_seq(out, a, indent);
                }
                other => out.push_str(&format!("{pad}{key}: {}\n", scalar(other))),
            }
        }
    }

    /// Writes a sequence whose dashes sit at `indent` spaces.
    pub fn write_seq(out: &mut String, items: &[Value], indent: usize) {
        let pad = " ".repeat(indent);
        for item in items {
            if is_block(item) {
                let mut inner = String::new();
                match item {
                    Value::Object(o) => write_map(&mut inner, o, indent + 2),
                    Value::Array(a) => write_seq(&mut inner, a, indent + 2),
                    _ => {}
                }
                out.push_str(&pad);
                out.push_str("- ");
                out.push_str(&inner[indent + 2..]);
            } else {
                out.push_str(&format!("{pad}- {}\n", scalar(item)));
            }
        }
    }
}

/// Python's `repr()` of a float (`1.0`, `0.5`, `1e-05`, `1e+16`).
pub(crate) fn python_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    let exp = f.abs().log10().floor() as i32;
    if (-4..16).contains(&exp) {
        let s = format!("{f}");
        if s.contains('.') {
            s
        } else {
            format!("{s}.0")
        }
    } else {
        // Shortest round-trip digits in scientific form, as Python writes them.
        let s = format!("{f:e}");
        let (mantissa, e) = s.split_once('e').unwrap_or((&s, "0"));
        let e: i32 = e.parse().unwrap_or(0);
        let sign = if e < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", e.abs())
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

    fn reference_domain() -> Domain {
        Domain::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference_bot/domain.yml"),
        )
        .unwrap()
    }

    #[test]
    fn yaml_matches_rasa_recording() {
        let expected = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/reference_bot/domain_as_yaml.yml"),
        )
        .unwrap();
        assert_eq!(reference_domain().to_yaml(), expected);
    }

    #[test]
    fn json_is_the_domain_as_written() {
        let j = reference_domain().to_json();
        let keys: Vec<&str> = j.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "version",
                "intents",
                "entities",
                "slots",
                "forms",
                "responses",
                "actions",
                "session_config"
            ]
        );
        assert_eq!(j["version"], "3.1");
        assert_eq!(j["intents"][0], "EXTERNAL_reminder");
        assert_eq!(j["session_config"]["session_expiration_time"], 60);
        let d = domain("intents: [b, {a: {use_entities: false}}]\n").unwrap();
        let j = d.to_json();
        assert_eq!(
            j["intents"],
            serde_json::json!([{"a": {"use_entities": []}}, "b"])
        );
        assert_eq!(
            j["session_config"],
            serde_json::json!({"session_expiration_time": 60, "carry_over_slots_to_new_session": true})
        );
        assert_eq!(j["version"], "3.1");
        assert!(j.get("config").is_none());
        let d = domain("config:\n  store_entities_as_slots: false\nintents: [a]\n").unwrap();
        assert!(!d.store_entities_as_slots);
    }

    #[test]
    fn action_names_in_rasa_order() {
        let names = reference_domain().action_names();
        assert_eq!(names.len(), 32);
        assert_eq!(
            &names[..3],
            ["action_listen", "action_restart", "action_session_start"]
        );
        assert_eq!(names[11], "...");
        assert_eq!(names[12], "action_extract_slots");
        assert_eq!(names[13], "action_pause_conversation");
        assert_eq!(names[20], "utter_ask_email");
        assert_eq!(names[31], "contact_form");
        let d = domain("actions: [action_restart, my_action, utter_b]\nresponses:\n  utter_b: [{text: b}]\n  utter_a: [{text: a}]\nforms:\n  f: {required_slots: []}\n  my_action: {}\n").unwrap();
        let names = d.action_names();
        assert_eq!(&names[13..], ["my_action", "utter_b", "utter_a", "f"]);
        assert!(Domain::is_default_action("..."));
        assert!(!Domain::is_default_action("my_action"));
        assert!(d.intent_exists("restart") && !d.intent_exists("nope"));
    }

    #[test]
    fn intent_and_entity_properties() {
        let d = domain(
            "intents:\n  - greet\n  - inform: {use_entities: [city]}\n  - chat: {ignore_entities: [city]}\n  - bye: {use_entities: false}\nentities:\n  - city: {roles: [from, to]}\n  - name\n  - secret: {influence_conversation: false}\n",
        )
        .unwrap();
        let used = |i: &str| d.intent_properties[i].used_entities.clone();
        assert_eq!(used("greet"), ["city", "city#from", "city#to", "name"]);
        assert_eq!(used("inform"), ["city", "city#from", "city#to"]);
        assert_eq!(used("chat"), ["name"]);
        assert!(used("bye").is_empty());
        assert_eq!(used("restart"), used("greet"));
        let ents = vec![
            serde_json::json!({"entity": "city", "value": "x", "role": "to"}),
            serde_json::json!({"entity": "secret", "value": "y"}),
            serde_json::json!({"entity": "name", "value": "z"}),
        ];
        assert_eq!(
            d.featurized_entities(Some("inform"), &ents),
            ["city", "city#to"]
        );
        assert_eq!(
            d.featurized_entities(Some("greet"), &ents),
            ["city", "city#to", "name"]
        );
        assert_eq!(
            d.featurized_entities(Some("unknown"), &ents),
            ["city", "city#to", "name", "secret"]
        );
        assert!(domain("intents:\n  - greet:\n").is_err());
    }

    #[test]
    fn yaml_scalars_are_quoted_like_ruamel() {
        use serde_json::json;
        assert_eq!(yaml_out::scalar(&json!("3.1")), "'3.1'");
        assert_eq!(yaml_out::scalar(&json!("true")), "'true'");
        assert_eq!(yaml_out::scalar(&json!("yes")), "yes");
        assert_eq!(yaml_out::scalar(&json!("a: b")), "'a: b'");
        assert_eq!(yaml_out::scalar(&json!("it's")), "it's");
        assert_eq!(yaml_out::scalar(&json!("'q'")), "'''q'''");
        assert_eq!(yaml_out::scalar(&json!("")), "''");
        assert_eq!(yaml_out::scalar(&json!(1.5)), "1.5");
        assert_eq!(yaml_out::scalar(&json!(2.0)), "2.0");
        assert_eq!(python_float(1e-5), "1e-05");
        assert_eq!(python_float(0.0001), "0.0001");
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

    #[test]
    fn retrieval_intents_join_the_domain_as_in_rasa() {
        let mut d = domain(
            "intents:\n  - greet\n  - faq: {use_entities: [city]}\nentities: [city, size]\n\
             actions: [my_action]\nresponses:\n  utter_faq/ask_name: [{text: old}]\n  \
             utter_greet: [{text: hi}]\n",
        )
        .unwrap();
        assert!(d.retrieval_intents().is_empty());
        let mut responses = Map::new();
        responses.insert(
            "utter_faq/ask_name".into(),
            serde_json::json!([{"text": "new"}]),
        );
        responses.insert(
            "utter_chitchat/ask_mood".into(),
            serde_json::json!([{"text": "ok"}]),
        );
        d.merge_retrieval_intents(&["chitchat".into(), "faq".into()], &responses);
        assert_eq!(d.retrieval_intents(), ["chitchat", "faq"]);
        assert!(d.is_retrieval_action("utter_faq") && d.is_retrieval_action("utter_chitchat"));
        assert!(!d.is_retrieval_action("utter_greet") && !d.is_retrieval_action("faq"));
        assert!(d.intent_exists("chitchat"));
        assert_eq!(d.actions, ["my_action", "utter_chitchat", "utter_faq"]);
        // A data file's response replaces the domain's.
        assert_eq!(d.responses["utter_faq/ask_name"][0]["text"], "new");
        assert!(d
            .action_names()
            .contains(&"utter_chitchat/ask_mood".to_owned()));
        // Rasa's merge keeps the internal `used_entities` of the domain's intent in the
        // raw domain and uses every entity again.
        assert_eq!(d.intent_properties["faq"].used_entities, ["city", "size"]);
        let raw = d.to_json();
        assert_eq!(
            raw["intents"],
            serde_json::json!([{"chitchat": {"is_retrieval_intent": true}},
                {"faq": {"used_entities": ["city"], "is_retrieval_intent": true}}, "greet"])
        );
        assert_eq!(
            raw["actions"],
            serde_json::json!(["my_action", "utter_chitchat", "utter_faq"])
        );
        assert_eq!(raw["responses"]["utter_chitchat/ask_mood"][0]["text"], "ok");
    }
}
