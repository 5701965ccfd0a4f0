//! Stories and rules in Rasa 3.x YAML (`rasa/shared/core/training_data/story_reader/
//! yaml_story_reader.py`), parsed into typed steps.

use serde_json::Value;

use super::nlu::{parse_annotated_text, parse_intent_shortcut};
use super::{short, LineIndex, TrainingDataError};

/// A user turn of a story or rule.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UserStep {
    /// The intent (the base intent for retrieval intents), `None` for an end-to-end
    /// `user:` step without `intent:`.
    pub intent: Option<String>,
    /// `intent: faq/ask_name` keeps the full name here.
    pub full_retrieval_intent: Option<String>,
    /// The text of a `user:` step, annotations removed.
    pub text: Option<String>,
    /// Entity objects (`entity`, `value`, optional `role`, `group`, `start`, `end`).
    pub entities: Vec<Value>,
}

/// One alternative of an `or:` step.
#[derive(Debug, Clone, PartialEq)]
pub enum OrAlternative {
    /// A user message.
    User(UserStep),
    /// One slot set to a value (`None` = written as a bare name).
    Slot(String, Option<Value>),
}

/// One step of a story or rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// `intent:` / `user:` (with `entities:`).
    User(UserStep),
    /// `action: name` (`...` is the rule snippet placeholder).
    Action(String),
    /// `bot: text` (an end-to-end bot utterance).
    Bot(String),
    /// `slot_was_set:`: slots and values in order; `None` = a bare slot name, whose
    /// value Rasa fills with a placeholder depending on the slot type.
    SlotWasSet(Vec<(String, Option<Value>)>),
    /// `active_loop: name` or `active_loop: null`.
    ActiveLoop(Option<String>),
    /// `checkpoint: name` with optional `slot_was_set:` conditions.
    Checkpoint {
        /// Checkpoint name.
        name: String,
        /// Slot conditions (only honoured on a block's start checkpoint).
        slots: Vec<(String, Value)>,
    },
    /// `or:` alternatives (user messages or slots): the story is expanded into one
    /// variant per alternative.
    Or(Vec<OrAlternative>),
}

/// A story or a rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Story {
    /// `story:` / `rule:` name.
    pub name: String,
    /// The file it was read from.
    pub file: String,
    /// The 1-based line of the item, when found.
    pub line: Option<usize>,
    /// Whether this is a rule.
    pub is_rule: bool,
    /// Rule `condition:` steps (empty for stories).
    pub conditions: Vec<Step>,
    /// The steps.
    pub steps: Vec<Step>,
    /// Rule `conversation_start: true`.
    pub conversation_start: bool,
    /// Rule `wait_for_user_input` (default true).
    pub wait_for_user_input: bool,
}

impl Story {
    /// Every user message of the story, `or` alternatives included.
    pub fn user_steps(&self) -> Vec<&UserStep> {
        let mut out = Vec::new();
        for s in self.conditions.iter().chain(&self.steps) {
            match s {
                Step::User(u) => out.push(u),
                Step::Or(alts) => {
                    for a in alts {
                        if let OrAlternative::User(u) = a {
                            out.push(u);
                        }
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// Where this story is: `file:line` (or the file).
    pub fn location(&self) -> String {
        match self.line {
            Some(l) => format!("{}:{l}", self.file),
            None => self.file.clone(),
        }
    }
}

fn kind(is_rule: bool) -> &'static str {
    if is_rule {
        "rule"
    } else {
        "story"
    }
}

/// Parses the list under `stories:` or `rules:`.
pub(crate) fn parse_items(
    items: &Value,
    file: &str,
    is_rule: bool,
    lines: &LineIndex,
    warnings: &mut Vec<String>,
) -> Result<Vec<Story>, TrainingDataError> {
    let title = kind(is_rule);
    let plural = if is_rule { "rules" } else { "stories" };
    let items = match items {
        Value::Null => return Ok(Vec::new()),
        Value::Array(a) => a,
        other => {
            return Err(TrainingDataError::invalid(
                file,
                None,
                format!("'{plural}' must be a list, found {}", short(other)),
            ))
        }
    };
    let mut out = Vec::new();
    let mut titled = 0;
    for (index, item) in items.iter().enumerate() {
        let Value::Object(o) = item else {
            warnings.push(format!(
                "{file}: item {} under '{plural}' is not a map; it is skipped",
                index + 1
            ));
            continue;
        };
        let Some(name) = o.get(title) else {
            warnings.push(format!(
                "{file}: item {} under '{plural}' has no '{title}' key; it is skipped",
                index + 1
            ));
            continue;
        };
        let line = lines.nth_item(title, titled);
        titled += 1;
        let name = match name {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        if name.is_empty() {
            warnings.push(format!("{file}: a {title} has an empty name"));
        }
        let ctx = Ctx {
            file,
            line,
            title,
            name: &name,
        };
        let steps = match o.get("steps") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(s)) => s.clone(),
            Some(other) => {
                return Err(ctx.error(
                    None,
                    format!("'steps' must be a list, found {}", short(other)),
                ))
            }
        };
        if steps.is_empty() {
            warnings.push(format!(
                "{}: the {title} '{name}' has no steps; it is skipped",
                ctx.location()
            ));
            continue;
        }
        let mut conditions = Vec::new();
        if is_rule {
            match o.get("condition") {
                None | Some(Value::Null) => {}
                Some(Value::Array(c)) => {
                    for (i, step) in c.iter().enumerate() {
                        if let Some(s) = parse_step(step, &ctx, Some(i), true, warnings)? {
                            conditions.push(s);
                        }
                    }
                }
                Some(other) => {
                    return Err(ctx.error(
                        None,
                        format!("'condition' must be a list, found {}", short(other)),
                    ))
                }
            }
        }
        let mut parsed = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            if let Some(s) = parse_step(step, &ctx, Some(i), false, warnings)? {
                parsed.push(s);
            }
        }
        let flag = |key: &str, default: bool| -> Result<bool, TrainingDataError> {
            match o.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(Value::Bool(b)) => Ok(*b),
                Some(other) => Err(ctx.error(
                    None,
                    format!("'{key}' must be true or false, found {}", short(other)),
                )),
            }
        };
        let conversation_start = is_rule && flag("conversation_start", false)?;
        let wait_for_user_input = !is_rule || flag("wait_for_user_input", true)?;
        out.push(Story {
            name: name.clone(),
            file: file.to_owned(),
            line,
            is_rule,
            conditions,
            steps: parsed,
            conversation_start,
            wait_for_user_input,
        });
    }
    Ok(out)
}

struct Ctx<'a> {
    file: &'a str,
    line: Option<usize>,
    title: &'a str,
    name: &'a str,
}

impl Ctx<'_> {
    fn location(&self) -> String {
        match self.line {
            Some(l) => format!("{}:{l}", self.file),
            None => self.file.to_owned(),
        }
    }

    fn error(&self, step: Option<usize>, message: impl Into<String>) -> TrainingDataError {
        let at = match step {
            Some(i) => format!("{} '{}', step {}: ", self.title, self.name, i + 1),
            None => format!("{} '{}': ", self.title, self.name),
        };
        TrainingDataError::invalid(self.file, self.line, format!("{at}{}", message.into()))
    }
}

fn parse_step(
    step: &Value,
    ctx: &Ctx<'_>,
    index: Option<usize>,
    is_condition: bool,
    warnings: &mut Vec<String>,
) -> Result<Option<Step>, TrainingDataError> {
    let o = match step {
        Value::Object(o) => o,
        Value::String(s) => {
            warnings.push(format!(
                "{}: {} '{}' has the step '{s}', which is not a map; it is skipped",
                ctx.location(),
                ctx.title,
                ctx.name
            ));
            return Ok(None);
        }
        other => {
            return Err(ctx.error(
                index,
                format!("a step must be a map, found {}", short(other)),
            ))
        }
    };
    let _ = is_condition;
    if o.contains_key("intent") || o.contains_key("user") {
        return Ok(Some(Step::User(parse_user(o, ctx, index, warnings)?)));
    }
    if let Some(alts) = o.get("or") {
        return parse_or(alts, ctx, index, warnings).map(Some);
    }
    if let Some(a) = o.get("action") {
        return match a {
            Value::String(s) if !s.trim().is_empty() => Ok(Some(Step::Action(s.clone()))),
            other => Err(ctx.error(
                index,
                format!("'action' must be an action name, found {}", short(other)),
            )),
        };
    }
    if let Some(b) = o.get("bot") {
        return match b {
            Value::String(s) => Ok(Some(Step::Bot(s.clone()))),
            other => Err(ctx.error(
                index,
                format!("'bot' must be a text, found {}", short(other)),
            )),
        };
    }
    if let Some(c) = o.get("checkpoint") {
        let name = match c {
            Value::String(s) if !s.is_empty() => s.clone(),
            other => {
                return Err(ctx.error(
                    index,
                    format!("'checkpoint' must be a name, found {}", short(other)),
                ))
            }
        };
        let mut slots = Vec::new();
        for (slot, value) in parse_slots(o.get("slot_was_set"), ctx, index)? {
            match value {
                Some(v) => slots.push((slot, v)),
                None => {
                    return Err(ctx.error(
                        index,
                        format!("checkpoint '{name}': slot '{slot}' needs a value"),
                    ))
                }
            }
        }
        return Ok(Some(Step::Checkpoint { name, slots }));
    }
    if o.contains_key("slot_was_set") {
        return Ok(Some(Step::SlotWasSet(parse_slots(
            o.get("slot_was_set"),
            ctx,
            index,
        )?)));
    }
    if let Some(l) = o.get("active_loop") {
        return match l {
            Value::Null => Ok(Some(Step::ActiveLoop(None))),
            Value::String(s) => Ok(Some(Step::ActiveLoop(Some(s.clone())))),
            other => Err(ctx.error(
                index,
                format!(
                    "'active_loop' must be a form name or null, found {}",
                    short(other)
                ),
            )),
        };
    }
    if o.contains_key("metadata") {
        return Ok(None);
    }
    let keys: Vec<&str> = o.keys().map(String::as_str).collect();
    Err(ctx.error(
        index,
        format!(
            "unknown step with key(s) {}; a step needs one of intent, user, action, bot, \
             slot_was_set, active_loop, checkpoint, or",
            keys.join(", ")
        ),
    ))
}

fn parse_slots(
    v: Option<&Value>,
    ctx: &Ctx<'_>,
    index: Option<usize>,
) -> Result<Vec<(String, Option<Value>)>, TrainingDataError> {
    let items = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(ctx.error(
                index,
                format!("'slot_was_set' must be a list, found {}", short(other)),
            ))
        }
    };
    let mut out = Vec::new();
    for item in items {
        match item {
            Value::Object(m) => {
                for (k, v) in m {
                    out.push((k.clone(), Some(v.clone())));
                }
            }
            Value::String(s) => out.push((s.clone(), None)),
            other => {
                return Err(ctx.error(
                    index,
                    format!(
                        "'slot_was_set' items must be `slot: value` maps or slot names, found {}",
                        short(other)
                    ),
                ))
            }
        }
    }
    Ok(out)
}

fn parse_or(
    alts: &Value,
    ctx: &Ctx<'_>,
    index: Option<usize>,
    warnings: &mut Vec<String>,
) -> Result<Step, TrainingDataError> {
    let Value::Array(items) = alts else {
        return Err(ctx.error(index, format!("'or' must be a list, found {}", short(alts))));
    };
    let mut out = Vec::new();
    for item in items {
        let Value::Object(o) = item else {
            return Err(ctx.error(
                index,
                format!("'or' items must be maps, found {}", short(item)),
            ));
        };
        if o.contains_key("intent") || o.contains_key("user") {
            out.push(OrAlternative::User(parse_user(o, ctx, index, warnings)?));
        } else if o.contains_key("slot_was_set") {
            for (slot, value) in parse_slots(o.get("slot_was_set"), ctx, index)? {
                out.push(OrAlternative::Slot(slot, value));
            }
        } else {
            return Err(ctx.error(
                index,
                format!(
                    "an 'or' item must have 'intent' or 'slot_was_set', found {}",
                    short(item)
                ),
            ));
        }
    }
    if out.is_empty() {
        return Err(ctx.error(index, "'or' needs at least one alternative"));
    }
    Ok(Step::Or(out))
}

fn parse_user(
    o: &serde_json::Map<String, Value>,
    ctx: &Ctx<'_>,
    index: Option<usize>,
    warnings: &mut Vec<String>,
) -> Result<UserStep, TrainingDataError> {
    let mut step = UserStep::default();
    match o.get("intent") {
        None => {}
        Some(Value::String(s)) => {
            let mut intent = s.trim().to_owned();
            if let Some(rest) = intent.strip_prefix('/') {
                warnings.push(format!(
                    "{}: user intent '{intent}' starts with '/'; this is not required",
                    ctx.location()
                ));
                intent = rest.to_owned();
            }
            if let Some((base, _)) = intent.split_once('/') {
                step.full_retrieval_intent = Some(intent.clone());
                intent = base.to_owned();
            }
            if !intent.is_empty() {
                step.intent = Some(intent);
            }
        }
        Some(other) => {
            return Err(ctx.error(
                index,
                format!("'intent' must be an intent name, found {}", short(other)),
            ))
        }
    }
    match o.get("user") {
        None => {}
        Some(Value::String(s)) => {
            let (plain, entities) = parse_annotated_text(s.trim());
            step.entities = entities;
            if plain.starts_with('/') {
                if let Some(ents) = parse_intent_shortcut(&plain) {
                    step.entities = ents;
                }
            }
            step.text = Some(plain);
        }
        Some(other) => {
            return Err(ctx.error(
                index,
                format!("'user' must be a text, found {}", short(other)),
            ))
        }
    }
    if step.intent.is_none() && step.text.is_none() {
        return Err(ctx.error(index, "a user step needs an intent or a user text"));
    }
    if step.text.is_none() {
        step.entities = parse_step_entities(o.get("entities"), ctx, index)?;
    }
    Ok(step)
}

/// `entities:` of an intent step: names (value `""`), `{name: value}` maps, or
/// `{entity: name, value: v, role: r, group: g}`-style maps where `role` and `group`
/// are recognised and any other key is the entity name.
fn parse_step_entities(
    v: Option<&Value>,
    ctx: &Ctx<'_>,
    index: Option<usize>,
) -> Result<Vec<Value>, TrainingDataError> {
    let items = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(ctx.error(
                index,
                format!("'entities' must be a list, found {}", short(other)),
            ))
        }
    };
    let mut out = Vec::new();
    for item in items {
        match item {
            Value::String(name) => out.push(serde_json::json!({"entity": name, "value": ""})),
            Value::Object(m) => {
                let mut entity = serde_json::Map::new();
                let mut role = None;
                let mut group = None;
                let mut name = None;
                let mut value = None;
                for (k, v) in m {
                    match k.as_str() {
                        "role" => role = Some(v.clone()),
                        "group" => group = Some(v.clone()),
                        _ => {
                            name = Some(k.clone());
                            value = Some(v.clone());
                        }
                    }
                }
                if let Some(n) = name {
                    entity.insert("entity".into(), Value::String(n));
                }
                if let Some(v) = value.filter(|v| !v.is_null()) {
                    entity.insert("value".into(), v);
                }
                if let Some(r) = role.filter(|v| !v.is_null()) {
                    entity.insert("role".into(), r);
                }
                if let Some(g) = group.filter(|v| !v.is_null()) {
                    entity.insert("group".into(), g);
                }
                out.push(Value::Object(entity));
            }
            other => {
                return Err(ctx.error(
                    index,
                    format!(
                        "'entities' items must be names or maps, found {}",
                        short(other)
                    ),
                ))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::TrainingData;
    use super::*;
    use serde_json::json;

    fn one(text: &str) -> Story {
        let d = TrainingData::from_yaml(text).unwrap();
        d.stories.into_iter().chain(d.rules).next().unwrap()
    }

    #[test]
    fn every_step_kind() {
        let s = one(r#"stories:
- story: all
  steps:
  - checkpoint: start
    slot_was_set:
    - a: 1
  - intent: /inform
    entities:
    - city
    - city: Paris
    - city: Rome
      role: to
      group: g1
  - user: "fly to [Berlin](city:BER) now"
  - user: "hi"
    intent: greet
  - action: utter_x
  - bot: "Hello there"
  - slot_was_set:
    - a: 1
    - b
  - active_loop: f
  - active_loop: null
  - or:
    - intent: yes
    - intent: faq/ask_name
    - slot_was_set:
      - c: true
  - metadata: {x: 1}
  - checkpoint: end
"#);
        assert_eq!(s.steps.len(), 11);
        assert_eq!(
            s.steps[0],
            Step::Checkpoint {
                name: "start".into(),
                slots: vec![("a".into(), json!(1))]
            }
        );
        let Step::User(u) = &s.steps[1] else { panic!() };
        assert_eq!(u.intent.as_deref(), Some("inform"));
        assert_eq!(
            u.entities,
            vec![
                json!({"entity": "city", "value": ""}),
                json!({"entity": "city", "value": "Paris"}),
                json!({"entity": "city", "value": "Rome", "role": "to", "group": "g1"}),
            ]
        );
        let Step::User(u) = &s.steps[2] else { panic!() };
        assert_eq!(u.intent, None);
        assert_eq!(u.text.as_deref(), Some("fly to Berlin now"));
        assert_eq!(
            u.entities,
            vec![json!({"start": 7, "end": 13, "value": "BER", "entity": "city"})]
        );
        let Step::User(u) = &s.steps[3] else { panic!() };
        assert_eq!(
            (u.intent.as_deref(), u.text.as_deref()),
            (Some("greet"), Some("hi"))
        );
        assert_eq!(s.steps[4], Step::Action("utter_x".into()));
        assert_eq!(s.steps[5], Step::Bot("Hello there".into()));
        assert_eq!(
            s.steps[6],
            Step::SlotWasSet(vec![("a".into(), Some(json!(1))), ("b".into(), None)])
        );
        assert_eq!(s.steps[7], Step::ActiveLoop(Some("f".into())));
        assert_eq!(s.steps[8], Step::ActiveLoop(None));
        let Step::Or(alts) = &s.steps[9] else {
            panic!()
        };
        assert_eq!(alts.len(), 3);
        let OrAlternative::User(u) = &alts[1] else {
            panic!()
        };
        assert_eq!(u.intent.as_deref(), Some("faq"));
        assert_eq!(u.full_retrieval_intent.as_deref(), Some("faq/ask_name"));
        assert_eq!(alts[2], OrAlternative::Slot("c".into(), Some(json!(true))));
    }

    #[test]
    fn rule_flags_and_conditions() {
        let r = one(
            "rules:\n- rule: r\n  conversation_start: true\n  wait_for_user_input: false\n  condition:\n  - active_loop: f\n  - slot_was_set:\n    - s: null\n  steps:\n  - intent: a\n  - action: b\n",
        );
        assert!(r.is_rule && r.conversation_start && !r.wait_for_user_input);
        assert_eq!(r.conditions.len(), 2);
        assert_eq!(r.steps.len(), 2);
        let s = one("stories:\n- story: s\n  steps:\n  - intent: a\n");
        assert!(!s.is_rule && !s.conversation_start && s.wait_for_user_input);
    }

    #[test]
    fn problems() {
        let err = |t: &str| TrainingData::from_yaml(t).unwrap_err().to_string();
        assert!(err("stories:\n- story: s\n  steps:\n  - foo: bar\n").contains("unknown step"));
        assert!(err("stories:\n- story: s\n  steps:\n  - action: [x]\n").contains("'action'"));
        assert!(
            err("stories:\n- story: s\n  steps:\n  - intent: a\n    entities: x\n")
                .contains("'entities' must be a list")
        );
        assert!(err("stories:\n- story: s\n  steps: 5\n").contains("'steps' must be a list"));
        assert!(err("stories:\n- story: s\n  steps:\n  - or: [{action: x}]\n").contains("'or'"));
        let d = TrainingData::from_yaml(
            "stories:\n- story: empty\n  steps: []\n- just a string\n- story: s\n  steps:\n  - \"...\"\n  - intent: a\n",
        )
        .unwrap();
        assert_eq!(d.stories.len(), 1);
        assert_eq!(d.warnings.len(), 3, "{:?}", d.warnings);
    }
}
