//! Conversations written as Rasa test stories, for `GET /conversations/<id>/story`.
//!
//! Rasa 3.6 answers that endpoint with `tracker.as_story().story_steps` rendered by
//! `YAMLStoryWriter().dumps(steps, is_test_story=True)`. Clients compare that text
//! or feed it back to `rasa test`, so palaver writes the same bytes:
//!
//! * Which events become steps follows Rasa's story writer: user messages (`intent`
//!   and the entity-annotated `user` text), actions (`action`, or `bot` for end-to-end
//!   predictions), `slot_was_set` and `active_loop`. `action_listen`,
//!   `action_session_start` and every other event type are left out.
//! * A user message's intent is left out when the message was featurized by its text,
//!   which Rasa learns from the `user_featurization` event that follows it; entities
//!   added by an `entities` event show up in the annotated text. Both are replayed the
//!   way Rasa's tracker applies those events.
//! * The YAML is laid out and quoted as ruamel.yaml (Rasa's writer) does: block style,
//!   sequences not indented under their key, strings plain unless YAML would read
//!   them as another type or they hold special characters.
//!
//! The events to pass are the ones Rasa puts in the story: every event of the session,
//! including those a later `rewind`, `undo` or `restart` reverted (Rasa's `as_story`
//! uses `tracker.events`, not the applied events).
//!
//! Known gaps, all far from what conversations contain: ruamel's line folding past
//! 4096 columns; the loop-specific pruning of Rasa's `applied_events` when replaying
//! after a `rewind` or `undo`; and where Rasa fails with a 500 (a user text holding a
//! malformed inline annotation such as `[x]{bad}`, two entities with the same start
//! but different ends) palaver writes the story anyway.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use crate::events::{
    is_truthy, Event, EventKind, UserUttered, ACTION_LISTEN, ACTION_SESSION_START,
};
use crate::pyjson;

/// The action name Rasa uses for the `...` rule snippet; never written.
const RULE_SNIPPET_ACTION: &str = "...";

/// One conversation session to export: the story name and the session's events, oldest first.
pub struct StoryInput<'a> {
    /// The story name (`story:`), e.g. the conversation id.
    pub name: String,
    /// The session's events, oldest first, reverted ones included (as Rasa writes them).
    pub events: Vec<&'a Event>,
}

/// Renders stories as Rasa's YAML test-story format (`version: "3.1"`, `stories:` ...).
///
/// With no stories the output is `version: "3.1"` alone, as Rasa's writer leaves out
/// an empty `stories` key.
pub fn export_stories(stories: &[StoryInput<'_>]) -> String {
    let mut w = Writer::default();
    w.out.push_str("version: \"3.1\"\n");
    if !stories.is_empty() {
        let stories = stories
            .iter()
            .map(|s| {
                Node::Map(vec![
                    ("story".into(), Node::Str(s.name.clone())),
                    ("steps".into(), Node::Seq(story_steps(&s.events))),
                ])
            })
            .collect();
        w.map(&[("stories".into(), Node::Seq(stories))], 0, false);
    }
    if w.open_ended {
        // ruamel closes a document whose last scalar keeps its trailing newlines.
        w.out.push_str("...\n");
    }
    w.out
}

/// The steps of one story, in event order.
fn story_steps(events: &[&Event]) -> Vec<Node> {
    let users = replay_user_messages(events);
    let mut steps = Vec::new();
    for (event, user) in events.iter().zip(&users) {
        let step = match (&event.kind, user) {
            (EventKind::User(u), Some(state)) => user_step(u, state),
            (EventKind::Action(a), _) => {
                let name = a.name.as_deref().filter(|n| !n.is_empty());
                match (name, a.action_text.as_deref()) {
                    (Some(ACTION_LISTEN | ACTION_SESSION_START | RULE_SNIPPET_ACTION), _) => vec![],
                    (Some(name), _) => vec![("action".into(), Node::Str(name.into()))],
                    (None, Some(text)) if !text.is_empty() => {
                        vec![("bot".into(), Node::Str(text.into()))]
                    }
                    _ => vec![],
                }
            }
            (EventKind::Slot { name, value }, _) => vec![(
                "slot_was_set".into(),
                Node::Seq(vec![Node::Map(vec![(name.clone(), json_node(value))])]),
            )],
            (EventKind::ActiveLoop { name }, _) => {
                let name = match name {
                    Some(n) => Node::Str(n.clone()),
                    None => Node::Raw("null".into()),
                };
                vec![("active_loop".into(), name)]
            }
            _ => vec![],
        };
        if !step.is_empty() {
            steps.push(Node::Map(step));
        }
    }
    steps
}

/// A user step: the intent (unless the message was featurized by its text) and the
/// text with its entities annotated inline.
fn user_step(user: &UserUttered, state: &UserState) -> Vec<(String, Node)> {
    let mut step = Vec::new();
    if let Some(intent) = user.intent_name().filter(|i| !i.is_empty()) {
        if !state.use_text {
            let full = user
                .parse_data
                .get("intent")
                .and_then(|i| i.get("full_retrieval_intent_name"))
                .and_then(Value::as_str)
                .filter(|f| !f.is_empty());
            step.push(("intent".into(), Node::Str(full.unwrap_or(intent).into())));
        }
    }
    if let Some(text) = user.text.as_deref().filter(|t| !t.is_empty()) {
        step.push((
            "user".into(),
            Node::Literal(annotate(text, &state.entities)),
        ));
    }
    step
}

/// What Rasa's tracker changes on a logged user message afterwards.
struct UserState {
    /// Whether the message was featurized by its text (then its intent is not written).
    use_text: bool,
    /// The message's entities, plus those that `entities` events added.
    entities: Vec<Value>,
}

/// The parts of Rasa's tracker state that decide whether `user_featurization` and
/// `entities` events change the latest user message.
#[derive(Default)]
struct Tracker {
    latest_action: Option<String>,
    latest_message: Option<usize>,
}

impl Tracker {
    /// Applies one event: what Rasa's `apply_to` does to the state kept here and,
    /// for `user_featurization` and `entities`, to the latest user message.
    fn apply(&mut self, index: usize, event: &Event, users: &mut [Option<UserState>]) {
        let listening = self.latest_action.as_deref() == Some(ACTION_LISTEN);
        let target = match self.latest_message {
            Some(m) if listening => users[m].as_mut(),
            _ => None,
        };
        match &event.kind {
            EventKind::User(_) => self.latest_message = Some(index),
            EventKind::Action(a) => {
                self.latest_action = a
                    .name
                    .clone()
                    .filter(|n| !n.is_empty())
                    .or_else(|| a.action_text.clone());
            }
            EventKind::UserFeaturization {
                use_text_for_featurization,
            } => {
                if let Some(user) = target {
                    user.use_text = is_truthy(use_text_for_featurization);
                }
            }
            EventKind::EntitiesAdded { entities } => {
                if let Some(user) = target {
                    for entity in entities {
                        if !user.entities.contains(entity) {
                            user.entities.push(entity.clone());
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// Applies the events in order as Rasa's tracker does (a `restart` or `session_started`
/// resets it, `rewind` and `undo` replay what is left) and returns, per event, the
/// final state of each user message.
fn replay_user_messages(events: &[&Event]) -> Vec<Option<UserState>> {
    let mut users: Vec<Option<UserState>> = events
        .iter()
        .map(|e| match &e.kind {
            EventKind::User(u) => Some(UserState {
                // Rasa's default: a message with text but no intent is featurized by text.
                use_text: u.text.as_deref().is_some_and(|t| !t.is_empty())
                    && u.intent_name().is_none_or(str::is_empty),
                entities: u.entities().to_vec(),
            }),
            _ => None,
        })
        .collect();
    let mut tracker = Tracker::default();
    let mut applied: Vec<usize> = Vec::new();
    for (i, event) in events.iter().enumerate() {
        match &event.kind {
            EventKind::Restart | EventKind::SessionStarted => {
                tracker = Tracker::default();
                applied.clear();
            }
            EventKind::Rewind | EventKind::Undo => {
                if matches!(event.kind, EventKind::Rewind) {
                    undo_till(&mut applied, events, |k| matches!(k, EventKind::User(_)));
                }
                undo_till(&mut applied, events, |k| matches!(k, EventKind::Action(_)));
                tracker = Tracker::default();
                for &j in &applied {
                    tracker.apply(j, events[j], &mut users);
                }
            }
            _ => {
                tracker.apply(i, event, &mut users);
                applied.push(i);
            }
        }
    }
    users
}

/// Drops applied events from the end up to and including the latest one of a kind.
fn undo_till(applied: &mut Vec<usize>, events: &[&Event], kind: impl Fn(&EventKind) -> bool) {
    while let Some(j) = applied.pop() {
        if kind(&events[j].kind) {
            break;
        }
    }
}

/// Rasa's markdown entity annotation (`[text](type)`, `[text]{...}`, `[text][...]`).
static ENTITY_ANNOTATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"\[(?P<text>[^\]]+?)\]",
        r"(?:\((?P<entity>[^:)]+?)(?::(?P<value>[^)]+))?\)",
        r"|\{(?P<dict>[^}]+?)\}",
        r"|\[(?P<list>.*?)\])",
    ))
    .expect("valid regex")
});

/// Rasa's `format_message`: the text with annotations in it reduced to plain text,
/// then (unless it starts with `/`) annotated with the entities that have positions.
fn annotate(text: &str, entities: &[Value]) -> String {
    let plain = ENTITY_ANNOTATION.replace_all(text, "$text").into_owned();
    if plain.starts_with('/') {
        return plain;
    }
    // Group the entities by start position, keeping their order within a group.
    let mut groups: Vec<(i64, Vec<&serde_json::Map<String, Value>>)> = Vec::new();
    for entity in entities.iter().filter_map(Value::as_object) {
        let (Some(start), Some(_)) = (position(entity, "start"), position(entity, "end")) else {
            continue;
        };
        match groups.iter_mut().find(|(s, _)| *s == start) {
            Some((_, group)) => group.push(entity),
            None => groups.push((start, vec![entity])),
        }
    }
    groups.sort_by_key(|(start, _)| *start);
    let chars: Vec<char> = plain.chars().collect();
    let mut out = String::new();
    let mut pos = 0;
    for (start, group) in &groups {
        let end = position(group[0], "end").unwrap_or(*start);
        out.push_str(&py_slice(&chars, pos, *start));
        let covered = py_slice(&chars, *start, end);
        out.push('[');
        out.push_str(&covered);
        out.push(']');
        if let [entity] = group.as_slice() {
            out.push_str(&entity_attributes(&covered, entity, true));
        } else {
            let attributes: Vec<String> = group
                .iter()
                .map(|e| entity_attributes(&covered, e, false))
                .collect();
            out.push('[');
            out.push_str(&attributes.join(", "));
            out.push(']');
        }
        pos = end;
    }
    out.push_str(&py_slice(&chars, pos, chars.len() as i64));
    out
}

/// An entity's `start` or `end` offset, when it is an integer.
fn position(entity: &serde_json::Map<String, Value>, key: &str) -> Option<i64> {
    entity.get(key).and_then(Value::as_i64)
}

/// The annotation after `[text]`: `(type)`, or a JSON object with type, role, group
/// and value (the value only when it differs from the text).
fn entity_attributes(text: &str, entity: &serde_json::Map<String, Value>, short: bool) -> String {
    let field = |k: &str| entity.get(k).filter(|v| !v.is_null());
    let kind = field("entity");
    let value = field("value").filter(|v| !(is_truthy(v) && v.as_str() == Some(text)));
    let (role, group) = (field("role"), field("group"));
    if short && value.is_none() && role.is_none() && group.is_none() {
        let kind = match kind {
            Some(Value::String(s)) => s.clone(),
            Some(other) => pyjson::dumps(other),
            None => "None".into(),
        };
        return format!("({kind})");
    }
    let parts: Vec<String> = [
        ("entity", kind),
        ("role", role),
        ("group", group),
        ("value", value),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| format!("\"{k}\": {}", pyjson::dumps(v))))
    .collect();
    format!("{{{}}}", parts.join(", "))
}

/// Python's `text[start:end]` on characters (negative positions count from the end).
fn py_slice(chars: &[char], start: i64, end: i64) -> String {
    let len = chars.len() as i64;
    let clamp = |i: i64| (if i < 0 { i + len } else { i }).clamp(0, len) as usize;
    let (start, end) = (clamp(start), clamp(end));
    if start >= end {
        return String::new();
    }
    chars[start..end].iter().collect()
}

/// A YAML node as Rasa's writer builds it.
enum Node {
    /// Written exactly as given (`null`, `true`, numbers).
    Raw(String),
    /// A string, plain or quoted as ruamel.yaml chooses.
    Str(String),
    /// A string written as a literal block (`|`).
    Literal(String),
    /// A block sequence (`[]` when empty).
    Seq(Vec<Node>),
    /// A block mapping with string keys (`{}` when empty).
    Map(Vec<(String, Node)>),
}

/// A JSON value (a slot value) as a YAML node.
fn json_node(v: &Value) -> Node {
    match v {
        Value::Null => Node::Raw("null".into()),
        Value::Bool(b) => Node::Raw(b.to_string()),
        Value::Number(_) => Node::Raw(pyjson::number_text(v)),
        Value::String(s) => Node::Str(s.clone()),
        Value::Array(items) => Node::Seq(items.iter().map(json_node).collect()),
        Value::Object(map) => {
            Node::Map(map.iter().map(|(k, v)| (k.clone(), json_node(v))).collect())
        }
    }
}

/// Block-style YAML output with ruamel.yaml's defaults as Rasa configures them
/// (mappings indented by 2, sequences at their key's column, unicode allowed).
#[derive(Default)]
struct Writer {
    out: String,
    /// The last scalar was a literal that keeps its trailing newlines (`|+`).
    open_ended: bool,
}

impl Writer {
    /// A mapping whose keys sit at column `indent`; with `inline` the first key
    /// continues the current line (after `- `).
    fn map(&mut self, entries: &[(String, Node)], indent: usize, inline: bool) {
        for (i, (key, value)) in entries.iter().enumerate() {
            self.open_ended = false;
            if i > 0 || !inline {
                self.pad(indent);
            }
            if is_simple_key(key) {
                self.scalar(key, true, indent + 2);
                self.out.push(':');
                match value {
                    Node::Seq(items) if !items.is_empty() => {
                        self.out.push('\n');
                        self.seq(items, indent, false);
                    }
                    Node::Map(entries) if !entries.is_empty() => {
                        self.out.push('\n');
                        self.map(entries, indent + 2, false);
                    }
                    other => {
                        self.out.push(' ');
                        self.leaf(other, indent + 2);
                    }
                }
            } else {
                // A complex key: `? key` and `: value` on lines of their own.
                self.out.push_str("? ");
                self.scalar(key, false, indent + 2);
                self.out.push('\n');
                self.pad(indent);
                self.out.push_str(": ");
                self.item(value, indent + 2);
            }
        }
    }

    /// A sequence whose dashes sit at column `indent`; with `inline` the first dash
    /// continues the current line (after another `- `).
    fn seq(&mut self, items: &[Node], indent: usize, inline: bool) {
        for (i, item) in items.iter().enumerate() {
            self.open_ended = false;
            if i > 0 || !inline {
                self.pad(indent);
            }
            self.out.push_str("- ");
            self.item(item, indent + 2);
        }
    }

    /// A node that continues the current line after `- ` or `: `, its own
    /// content at column `indent`.
    fn item(&mut self, node: &Node, indent: usize) {
        match node {
            Node::Seq(items) if !items.is_empty() => self.seq(items, indent, true),
            Node::Map(entries) if !entries.is_empty() => self.map(entries, indent, true),
            other => self.leaf(other, indent),
        }
    }

    /// A scalar, literal block or empty collection, ending its line.
    fn leaf(&mut self, node: &Node, indent: usize) {
        match node {
            Node::Raw(text) => self.out.push_str(text),
            Node::Str(s) => self.scalar(s, false, indent),
            Node::Literal(s) => return self.literal(s, indent),
            Node::Seq(_) => self.out.push_str("[]"),
            Node::Map(_) => self.out.push_str("{}"),
        }
        self.out.push('\n');
    }

    /// Indents a new line to column `indent`.
    fn pad(&mut self, indent: usize) {
        self.out.extend(std::iter::repeat_n(' ', indent));
    }

    /// A string in the style ruamel.yaml picks for it; `indent` is where a line
    /// continues after a line break inside single quotes.
    fn scalar(&mut self, s: &str, simple_key: bool, indent: usize) {
        match scalar_style(s, simple_key) {
            Style::Plain => self.out.push_str(s),
            Style::Single => {
                self.out.push('\'');
                let mut in_breaks = false;
                for c in s.chars() {
                    if in_breaks && !is_break(c) {
                        self.pad(indent);
                    }
                    in_breaks = is_break(c);
                    match c {
                        '\'' => self.out.push_str("''"),
                        _ => self.out.push(c),
                    }
                }
                if in_breaks {
                    self.pad(indent);
                }
                self.out.push('\'');
            }
            Style::Double => double_quoted(&mut self.out, s),
        }
    }

    /// A literal block scalar whose lines sit at column `indent`.
    fn literal(&mut self, s: &str, indent: usize) {
        let chars: Vec<char> = s.chars().collect();
        self.out.push('|');
        if chars.first().is_some_and(|&c| c == ' ' || is_break(c)) {
            self.out.push('2');
        }
        // Chomping: strip a missing final newline, keep several.
        let n = chars.len();
        if !chars.last().is_some_and(|&c| is_break(c)) {
            self.out.push('-');
        } else if n == 1 || is_break(chars[n - 2]) {
            self.out.push('+');
            self.open_ended = true;
        }
        self.out.push('\n');
        let mut at_line_start = true;
        for &c in &chars {
            if is_break(c) {
                // ruamel writes "\n" for a newline and the other breaks as themselves.
                self.out.push(c);
                at_line_start = true;
            } else {
                if at_line_start {
                    self.pad(indent);
                    at_line_start = false;
                }
                self.out.push(c);
            }
        }
        if !at_line_start {
            self.out.push('\n');
        }
    }
}

/// YAML's line breaks (ruamel.yaml writes the ones other than `\n` as they are).
fn is_break(c: char) -> bool {
    matches!(c, '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// Whether ruamel.yaml writes a mapping key as `key:` (else as `? key`): keys on
/// one line and shorter than 128 characters, less the 5 its `!!str` tag counts for.
fn is_simple_key(key: &str) -> bool {
    !key.chars().any(is_break) && key.chars().count() < 123
}

/// How a string scalar is written.
enum Style {
    Plain,
    Single,
    Double,
}

/// ruamel.yaml's choice of style for a string in block context
/// (`Emitter.choose_scalar_style` after `analyze_scalar`).
fn scalar_style(s: &str, simple_key: bool) -> Style {
    let is_space = |c: char| matches!(c, '\0' | ' ' | '\t' | '\r') || is_break(c);
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len();
    let mut block_indicators = s.starts_with("---") || s.starts_with("...");
    let (mut line_breaks, mut special) = (false, false);
    let (mut leading, mut trailing) = (false, false);
    let (mut break_space, mut space_break) = (false, false);
    let (mut previous_space, mut previous_break) = (false, false);
    for (i, &c) in chars.iter().enumerate() {
        let followed_by_space = i + 1 >= n || is_space(chars[i + 1]);
        if i == 0 {
            block_indicators |= "#,[]{}&*!|>'\"%@`".contains(c)
                || (matches!(c, '?' | ':' | '-') && followed_by_space);
        } else {
            block_indicators |=
                (c == ':' && followed_by_space) || (c == '#' && is_space(chars[i - 1]));
        }
        line_breaks |= is_break(c);
        let printable = c == '\n'
            || (' '..='~').contains(&c)
            || ((c == '\u{85}'
                || ('\u{a0}'..='\u{d7ff}').contains(&c)
                || ('\u{e000}'..='\u{fffd}').contains(&c)
                || c >= '\u{10000}')
                && c != '\u{feff}');
        special |= !printable;
        if c == ' ' || is_break(c) {
            if i == 0 || i == n - 1 {
                leading |= i == 0;
                trailing |= i == n - 1;
            }
            if c == ' ' {
                break_space |= previous_break;
            } else {
                space_break |= previous_space;
            }
        }
        previous_space = c == ' ';
        previous_break = is_break(c);
    }
    let allow_plain = n > 0
        && !(leading || trailing || break_space || space_break || special || line_breaks)
        && !block_indicators;
    let allow_single = !(break_space || space_break || special);
    if allow_plain && !resolves_to_other_type(s) {
        return Style::Plain;
    }
    if s.contains('\'') || s.contains('\n') {
        return Style::Double;
    }
    if allow_single && !(simple_key && line_breaks) {
        Style::Single
    } else {
        Style::Double
    }
}

/// Plain scalars that YAML 1.2 (ruamel.yaml's resolver) reads as something other
/// than a string: null, booleans, numbers, timestamps, `<<` and `=`.
static IMPLICIT_TYPES: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^(?:",
        r"~|null|Null|NULL|true|True|TRUE|false|False|FALSE|<<|=",
        r"|[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?",
        r"|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+",
        r"|[-+]?\.[0-9_]+(?:[eE][-+][0-9]+)?",
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)",
        r"|[-+]?0b[0-1_]+|[-+]?0o?[0-7_]+|[-+]?[0-9_]+|[-+]?0x[0-9a-fA-F_]+",
        r"|[0-9]{4}-[0-9]{2}-[0-9]{2}",
        r"|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?",
        r"(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?",
        r")$"
    ))
    .expect("valid regex")
});

/// Whether a plain scalar would not read back as a string. ruamel.yaml only tries
/// the patterns whose first characters match, so `_1` stays a string.
fn resolves_to_other_type(s: &str) -> bool {
    !s.starts_with('_') && IMPLICIT_TYPES.is_match(s)
}

/// A double-quoted scalar with ruamel.yaml's escapes (unicode kept, except the
/// characters outside the Basic Multilingual Plane).
fn double_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        let keep = matches!(c, ' '..='~' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}')
            && !matches!(c, '"' | '\\' | '\u{2028}' | '\u{2029}' | '\u{feff}');
        if keep {
            out.push(c);
            continue;
        }
        let escape = match c {
            '\0' => "0",
            '\u{7}' => "a",
            '\u{8}' => "b",
            '\t' => "t",
            '\n' => "n",
            '\u{b}' => "v",
            '\u{c}' => "f",
            '\r' => "r",
            '\u{1b}' => "e",
            '"' => "\"",
            '\\' => "\\",
            '\u{85}' => "N",
            '\u{2028}' => "L",
            '\u{2029}' => "P",
            _ => "",
        };
        out.push('\\');
        if !escape.is_empty() {
            out.push_str(escape);
        } else if (c as u32) <= 0xff {
            out.push_str(&format!("x{:02X}", c as u32));
        } else if (c as u32) <= 0xffff {
            out.push_str(&format!("u{:04X}", c as u32));
        } else {
            out.push_str(&format!("U{:08X}", c as u32));
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Events from their JSON, as the tracker store holds them.
    fn events(list: Value) -> Vec<Event> {
        let items = list.as_array().expect("a list of events");
        items
            .iter()
            .map(|e| {
                Event::from_json(e)
                    .expect("valid event")
                    .expect("not ignored")
            })
            .collect()
    }

    fn export_one(name: &str, events: &[Event]) -> String {
        export_stories(&[StoryInput {
            name: name.into(),
            events: events.iter().collect(),
        }])
    }

    fn user(text: &str, intent: &str, entities: Value) -> Value {
        json!({"event": "user", "text": text,
               "parse_data": {"intent": {"name": intent, "confidence": 1.0}, "entities": entities}})
    }

    fn action(name: &str) -> Value {
        json!({"event": "action", "name": name})
    }

    fn featurization(by_text: bool) -> Value {
        json!({"event": "user_featurization", "use_text_for_featurization": by_text})
    }

    // Expected outputs below were written by Rasa 3.6 (`get_test_stories`) from the same events.

    #[test]
    fn writes_a_session_like_rasa() {
        let all = events(json!([
            action("action_session_start"),
            {"event": "session_started"},
            action("action_listen"),
            user("/greet", "greet", json!([])),
            featurization(false),
            action("utter_greet"),
            {"event": "bot", "text": "Hey! How are you?"},
            action("action_listen"),
            user("/mood_great", "mood_great", json!([])),
            featurization(false),
            action("utter_happy"),
            {"event": "bot", "text": "Great, carry on!"},
            action("action_listen"),
            user(r#"/introduce{"name":"Ada"}"#, "introduce",
                 json!([{"entity": "name", "value": "Ada", "start": 10, "end": 23}])),
            {"event": "slot", "name": "name", "value": "Ada"},
            featurization(false),
            action("utter_hello_name"),
            {"event": "bot", "text": "Hello Ada!"},
            action("action_listen"),
        ]));
        let expected = r#"version: "3.1"
stories:
- story: SENDER
  steps:
  - intent: greet
    user: |-
      /greet
  - action: utter_greet
  - intent: mood_great
    user: |-
      /mood_great
  - action: utter_happy
  - intent: introduce
    user: |-
      /introduce{"name":"Ada"}
  - slot_was_set:
    - name: Ada
  - action: utter_hello_name
"#;
        // The applied events of the session, as the server passes them.
        assert_eq!(export_one("SENDER", &all[2..]), expected);
        // The session start events would be left out anyway.
        assert_eq!(export_one("SENDER", &all), expected);
    }

    #[test]
    fn annotates_entities_with_role_and_group() {
        let events = events(json!([
            action("action_listen"),
            user(
                "fly from Berlin to San Francisco",
                "book_flight",
                json!([
                    {"entity": "city", "value": "Berlin", "start": 9, "end": 15, "role": "from"},
                    {"entity": "city", "value": "SF", "start": 19, "end": 32, "role": "to", "group": "1"},
                ])
            ),
            featurization(false),
            action("utter_ok"),
            action("action_listen"),
            user(
                "I am Ada",
                "introduce",
                json!([
                    {"entity": "name", "value": "Ada", "start": 5, "end": 8},
                    {"entity": "person", "value": "Ada", "start": 5, "end": 8},
                ])
            ),
            // Featurized by text: Rasa leaves the intent out.
            featurization(true),
            action("action_listen"),
        ]));
        let expected = r#"version: "3.1"
stories:
- story: flights
  steps:
  - intent: book_flight
    user: |-
      fly from [Berlin]{"entity": "city", "role": "from"} to [San Francisco]{"entity": "city", "role": "to", "group": "1", "value": "SF"}
  - action: utter_ok
  - user: |-
      I am [Ada][{"entity": "name"}, {"entity": "person"}]
"#;
        assert_eq!(export_one("flights", &events), expected);
    }

    #[test]
    fn writes_slot_values_of_any_type() {
        let events = events(json!([
            {"event": "slot", "name": "cities", "value": ["Berlin", "Lisbon"]},
            {"event": "slot", "name": "name", "value": null},
            {"event": "slot", "name": "confirmed", "value": true},
            {"event": "slot", "name": "count", "value": 3},
            {"event": "slot", "name": "ratio", "value": 0.5},
            {"event": "slot", "name": "answer", "value": "yes"},
            {"event": "slot", "name": "address", "value": {"street": "Main St: 1", "zip": "01234"}},
        ]));
        let expected = r#"version: "3.1"
stories:
- story: slots
  steps:
  - slot_was_set:
    - cities:
      - Berlin
      - Lisbon
  - slot_was_set:
    - name: null
  - slot_was_set:
    - confirmed: true
  - slot_was_set:
    - count: 3
  - slot_was_set:
    - ratio: 0.5
  - slot_was_set:
    - answer: yes
  - slot_was_set:
    - address:
        street: 'Main St: 1'
        zip: '01234'
"#;
        assert_eq!(export_one("slots", &events), expected);
    }

    #[test]
    fn writes_active_loops_and_end_to_end_bot_turns() {
        let events = events(json!([
            action("action_listen"),
            user("/request_restaurant", "request_restaurant", json!([])),
            action("restaurant_form"),
            {"event": "active_loop", "name": "restaurant_form"},
            {"event": "slot", "name": "requested_slot", "value": "cuisine"},
            action("action_listen"),
            user("Italian please", "inform",
                 json!([{"entity": "cuisine", "value": "italian", "start": 0, "end": 7}])),
            action("restaurant_form"),
            {"event": "slot", "name": "cuisine", "value": "italian"},
            {"event": "slot", "name": "requested_slot", "value": null},
            {"event": "active_loop", "name": null},
            {"event": "action", "name": null, "action_text": "Buon appetito!"},
        ]));
        let expected = r#"version: "3.1"
stories:
- story: form
  steps:
  - intent: request_restaurant
    user: |-
      /request_restaurant
  - action: restaurant_form
  - active_loop: restaurant_form
  - slot_was_set:
    - requested_slot: cuisine
  - intent: inform
    user: |-
      [Italian]{"entity": "cuisine", "value": "italian"} please
  - action: restaurant_form
  - slot_was_set:
    - cuisine: italian
  - slot_was_set:
    - requested_slot: null
  - active_loop: null
  - bot: Buon appetito!
"#;
        assert_eq!(export_one("form", &events), expected);
    }

    #[test]
    fn writes_empty_conversations() {
        let only_listen = events(json!([action("action_listen"), {"event": "bot", "text": "hi"}]));
        let stories = [
            StoryInput {
                name: "empty".into(),
                events: vec![],
            },
            StoryInput {
                name: "123".into(),
                events: only_listen.iter().collect(),
            },
        ];
        let expected = "version: \"3.1\"\nstories:\n- story: empty\n  steps: []\n- story: '123'\n  steps: []\n";
        assert_eq!(export_stories(&stories), expected);
        assert_eq!(export_stories(&[]), "version: \"3.1\"\n");
    }

    #[test]
    fn keeps_reverted_events_as_rasa_does() {
        let events = events(json!([
            action("action_listen"),
            user("hi", "greet", json!([])),
            action("action_default_fallback"),
            {"event": "rewind"},
            action("utter_x"),
            {"event": "undo"},
            {"event": "restart"},
            action("utter_after_restart"),
        ]));
        let expected = r#"version: "3.1"
stories:
- story: c
  steps:
  - intent: greet
    user: |-
      hi
  - action: action_default_fallback
  - action: utter_x
  - action: utter_after_restart
"#;
        assert_eq!(export_one("c", &events), expected);
    }

    #[test]
    fn quotes_strings_like_ruamel() {
        let cases = [
            ("plain text", "plain text"),
            ("yes", "yes"),
            ("true", "'true'"),
            ("null", "'null'"),
            ("", "''"),
            ("42", "'42'"),
            ("1.5e3", "'1.5e3'"),
            ("2024-01-31", "'2024-01-31'"),
            ("_1", "_1"),
            ("a: b", "'a: b'"),
            ("a #b", "'a #b'"),
            ("- a", "'- a'"),
            ("it's", "it's"),
            ("'quoted'", "\"'quoted'\""),
            ("a\nb", "\"a\\nb\""),
            ("tab\there", "\"tab\\there\""),
            (" lead", "' lead'"),
            ("héllo 日本", "héllo 日本"),
            ("emoji 😀", "emoji 😀"),
            ("'😀", "\"'\\U0001F600\""),
        ];
        for (input, expected) in cases {
            let mut w = Writer::default();
            w.scalar(input, false, 0);
            assert_eq!(w.out, expected, "for {input:?}");
        }
    }

    #[test]
    fn writes_literal_blocks_with_rasas_chomping() {
        let cases = [
            ("a\nb", "|-\n  a\n  b\n"),
            ("a\n", "|\n  a\n"),
            ("a\n\n", "|+\n  a\n\n"),
            (" a", "|2-\n   a\n"),
            ("a\n\nb", "|-\n  a\n\n  b\n"),
        ];
        for (input, expected) in cases {
            let mut w = Writer::default();
            w.literal(input, 2);
            assert_eq!(w.out, expected, "for {input:?}");
        }
    }

    #[test]
    fn formats_numbers_like_python() {
        let cases = [
            (json!(1.0), "1.0"),
            (json!(0.0001), "0.0001"),
            (json!(1.5e-5), "1.5e-05"),
            (json!(1e15), "1000000000000000.0"),
            (json!(1e16), "1e+16"),
            (json!(-0.0), "-0.0"),
            (json!(-7), "-7"),
            (json!(u64::MAX), "18446744073709551615"),
        ];
        for (input, expected) in cases {
            assert_eq!(crate::pyjson::number_text(&input), expected, "for {input}");
        }
    }
}
