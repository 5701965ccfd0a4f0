//! Stories and rules as the event sequences the policies train on, built the way
//! Rasa's `StoryStepBuilder`, `StoryStep.explicit_events` and `TrainingDataGenerator`
//! build them (without augmentation, which the rule and memoization policies ignore):
//!
//! * A story is cut into blocks at its checkpoints; `or:` steps multiply a block into
//!   one variant per alternative.
//! * Blocks are glued from the story start along matching checkpoints (a start
//!   checkpoint's `slot_was_set` conditions must hold); a path never reuses a block,
//!   and generation stops at [`MAX_TRACKERS`] sequences.
//! * In every block an `action_listen` goes before each user message (unless one is
//!   already there) and at the end of a block that ends the story.
//! * Rules: the conditions come first, then the `...` snippet action unless
//!   `conversation_start: true`; `wait_for_user_input: false` appends `...`; `null`
//!   slot values and `active_loop: null` become `should_not_be_set`.
//! * A bare slot name gets Rasa's placeholder value: `filled` for text slots,
//!   `["filled"]` for list slots, nothing (`null`) otherwise.
//! * The first action of a story-start block that comes before any user message is
//!   unpredictable: policies do not learn it.

use std::collections::HashSet;

use serde_json::{json, Value};

use super::stories::{OrAlternative, Step, Story, UserStep};
use super::TrainingData;
use crate::domain::{Domain, RULE_SNIPPET_ACTION_NAME};
use crate::events::{ActionExecuted, Event, EventKind, JsonMap, UserUttered, ACTION_LISTEN};
use crate::slots::SlotType;

/// The placeholder Rasa puts in rules for "must not be set".
pub const SHOULD_NOT_BE_SET: &str = "should_not_be_set";
/// Upper bound on generated sequences per kind (stories, rules).
pub const MAX_TRACKERS: usize = 20_000;
const MAX_VARIANTS_PER_BLOCK: usize = 2_000;
const STORY_START: &str = "STORY_START";

/// One training conversation: a story or rule path as events.
#[derive(Debug, Clone)]
pub struct TrainingTracker {
    /// The story/rule name(s) the events come from (`a > b` when glued).
    pub name: String,
    /// The events, `action_listen`s included.
    pub events: Vec<Event>,
    /// For each event: whether it is an action the policies must not learn.
    pub unpredictable: Vec<bool>,
    /// Whether it was built from rules.
    pub is_rule: bool,
    /// Where the first block came from (`file:line`).
    pub location: String,
}

#[derive(Debug, Clone)]
struct Block {
    name: String,
    location: String,
    starts: Vec<(String, Vec<(String, Value)>)>,
    ends: Vec<String>,
    /// Each variant: (event, unpredictable) without implicit listens.
    variants: Vec<Vec<(Event, bool)>>,
}

fn user_event(u: &UserStep) -> Event {
    let mut pd = JsonMap::new();
    pd.insert(
        "intent".into(),
        json!({"name": u.intent, "confidence": 1.0}),
    );
    pd.insert("entities".into(), Value::Array(u.entities.clone()));
    Event::new(EventKind::User(UserUttered::new(
        u.text.clone(),
        Some(&pd),
        None,
        None,
        &JsonMap::new(),
    )))
}

fn action_event(name: &str) -> Event {
    Event::action(name, None, None)
}

fn bot_event(text: &str) -> Event {
    Event::new(EventKind::Action(ActionExecuted {
        name: None,
        policy: None,
        confidence: None,
        action_text: Some(text.to_owned()),
        hide_rule_turn: false,
    }))
}

/// Rasa's `_slot_default_value` for a slot written as a bare name.
fn bare_slot_value(domain: &Domain, slot: &str) -> Value {
    match domain.slot(slot).map(|s| &s.slot_type) {
        Some(SlotType::Text) => json!("filled"),
        Some(SlotType::List) => json!(["filled"]),
        _ => Value::Null,
    }
}

fn slot_event(domain: &Domain, name: &str, value: &Option<Value>, is_rule: bool) -> Event {
    let mut value = match value {
        Some(v) => v.clone(),
        None => bare_slot_value(domain, name),
    };
    if is_rule && value.is_null() {
        value = json!(SHOULD_NOT_BE_SET);
    }
    Event::new(EventKind::Slot {
        name: name.to_owned(),
        value,
    })
}

fn loop_event(name: &Option<String>, is_rule: bool) -> Event {
    let name = match name {
        None if is_rule => Some(SHOULD_NOT_BE_SET.to_owned()),
        other => other.clone(),
    };
    Event::new(EventKind::ActiveLoop { name })
}

/// Cuts a story into blocks (checkpoints) with their `or` variants.
fn blocks_of(story: &Story, domain: &Domain) -> Vec<Block> {
    let is_rule = story.is_rule;
    let mut blocks = Vec::new();
    let mut starts: Vec<(String, Vec<(String, Value)>)> = Vec::new();
    let mut ends: Vec<String> = Vec::new();
    let mut variants: Vec<Vec<(Event, bool)>> = vec![Vec::new()];
    let mut has_events = false;

    let mut steps: Vec<Step> = Vec::new();
    steps.extend(story.conditions.iter().cloned());
    let snippet = Step::Action(RULE_SNIPPET_ACTION_NAME.to_owned());
    if is_rule && !story.conversation_start {
        steps.push(snippet.clone());
    }
    steps.extend(story.steps.iter().cloned());
    if is_rule && !story.wait_for_user_input {
        steps.push(snippet);
    }

    let close = |starts: &mut Vec<(String, Vec<(String, Value)>)>,
                 ends: &mut Vec<String>,
                 variants: &mut Vec<Vec<(Event, bool)>>,
                 blocks: &mut Vec<Block>| {
        let st = if starts.is_empty() {
            vec![(STORY_START.to_owned(), Vec::new())]
        } else {
            std::mem::take(starts)
        };
        blocks.push(Block {
            name: story.name.clone(),
            location: story.location(),
            starts: st,
            ends: std::mem::take(ends),
            variants: std::mem::replace(variants, vec![Vec::new()]),
        });
    };

    for step in &steps {
        if let Step::Checkpoint { name, slots } = step {
            if !has_events {
                starts.push((name.clone(), slots.clone()));
            } else {
                ends.push(name.clone());
            }
            continue;
        }
        if !ends.is_empty() {
            // Events after an end checkpoint start a new block from it.
            let next_starts: Vec<(String, Vec<(String, Value)>)> =
                ends.iter().map(|e| (e.clone(), Vec::new())).collect();
            close(&mut starts, &mut ends, &mut variants, &mut blocks);
            starts = next_starts;
        }
        has_events = true;
        let alternatives: Vec<Event> = match step {
            Step::User(u) => vec![user_event(u)],
            Step::Action(a) => vec![action_event(a)],
            Step::Bot(t) => vec![bot_event(t)],
            Step::SlotWasSet(slots) => {
                for (name, value) in slots {
                    let e = slot_event(domain, name, value, is_rule);
                    for v in variants.iter_mut() {
                        v.push((e.clone(), false));
                    }
                }
                continue;
            }
            Step::ActiveLoop(l) => vec![loop_event(l, is_rule)],
            Step::Or(alts) => alts
                .iter()
                .map(|a| match a {
                    OrAlternative::User(u) => user_event(u),
                    OrAlternative::Slot(name, value) => slot_event(domain, name, value, is_rule),
                })
                .collect(),
            Step::Checkpoint { .. } => continue,
        };
        if alternatives.len() == 1 {
            for v in variants.iter_mut() {
                v.push((alternatives[0].clone(), false));
            }
        } else {
            let mut next = Vec::new();
            'outer: for v in &variants {
                for a in &alternatives {
                    if next.len() >= MAX_VARIANTS_PER_BLOCK {
                        break 'outer;
                    }
                    let mut nv = v.clone();
                    nv.push((a.clone(), false));
                    next.push(nv);
                }
            }
            variants = next;
        }
    }
    if has_events || !starts.is_empty() {
        close(&mut starts, &mut ends, &mut variants, &mut blocks);
    }
    // Rasa: a story-start block's first action before any user message is unpredictable.
    for b in &mut blocks {
        if b.starts.iter().any(|(s, _)| s == STORY_START) {
            for v in &mut b.variants {
                for (e, unpredictable) in v.iter_mut() {
                    match e.kind {
                        EventKind::User(_) => break,
                        EventKind::Action(_) => {
                            *unpredictable = true;
                            break;
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    blocks
}

fn is_listen(e: &Event) -> bool {
    e.action_name() == Some(ACTION_LISTEN)
}

/// `StoryStep.explicit_events`: listens before user messages and at a story's end.
fn explicit(variant: &[(Event, bool)], ends_story: bool) -> Vec<(Event, bool)> {
    let mut out: Vec<(Event, bool)> = Vec::with_capacity(variant.len() + 4);
    for (e, u) in variant {
        if matches!(e.kind, EventKind::User(_)) && !out.last().is_some_and(|(l, _)| is_listen(l)) {
            out.push((action_event(ACTION_LISTEN), false));
        }
        out.push((e.clone(), *u));
    }
    if ends_story && !out.last().is_some_and(|(l, _)| is_listen(l)) {
        out.push((action_event(ACTION_LISTEN), false));
    }
    out
}

fn slot_value_after(events: &[(Event, bool)], domain: &Domain, slot: &str) -> Value {
    let mut value = domain
        .slot(slot)
        .map(|s| s.initial_value.clone())
        .unwrap_or(Value::Null);
    for (e, _) in events {
        match &e.kind {
            EventKind::Slot { name, value: v } if name == slot => value = v.clone(),
            EventKind::Restart | EventKind::SessionStarted | EventKind::ResetSlots => {
                value = domain
                    .slot(slot)
                    .map(|s| s.initial_value.clone())
                    .unwrap_or(Value::Null)
            }
            _ => {}
        }
    }
    value
}

struct Partial {
    checkpoint: String,
    events: Vec<(Event, bool)>,
    names: Vec<String>,
    location: String,
    used: Vec<usize>,
}

/// A finished sequence and the index of its first block (for file order).
struct Finished {
    first_block: usize,
    tracker: TrainingTracker,
}

fn generate(stories: &[Story], domain: &Domain, is_rule: bool) -> Vec<TrainingTracker> {
    let blocks: Vec<Block> = stories.iter().flat_map(|s| blocks_of(s, domain)).collect();
    let mut finished: Vec<Finished> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut queue: Vec<Partial> = vec![Partial {
        checkpoint: STORY_START.to_owned(),
        events: Vec::new(),
        names: Vec::new(),
        location: String::new(),
        used: Vec::new(),
    }];
    let mut finish = |p: Partial, finished: &mut Vec<Finished>| {
        if p.events.is_empty() || finished.len() >= MAX_TRACKERS {
            return;
        }
        let (events, unpredictable): (Vec<Event>, Vec<bool>) = p.events.into_iter().unzip();
        let dedup: String = events
            .iter()
            .zip(&unpredictable)
            .map(|(e, u)| {
                let mut j = e.to_json();
                if let Some(o) = j.as_object_mut() {
                    o.remove("timestamp");
                }
                format!("{u}{j}")
            })
            .collect();
        if !seen.insert(dedup) {
            return;
        }
        finished.push(Finished {
            first_block: p.used.first().copied().unwrap_or(usize::MAX),
            tracker: TrainingTracker {
                name: p.names.join(" > "),
                events,
                unpredictable,
                is_rule,
                location: p.location,
            },
        });
    };
    let mut steps = 0usize;
    while let Some(p) = queue.pop() {
        steps += 1;
        if steps > MAX_TRACKERS * 4 || finished.len() >= MAX_TRACKERS {
            break;
        }
        let mut continued = false;
        for (bi, b) in blocks.iter().enumerate() {
            if p.used.contains(&bi) {
                continue;
            }
            let Some((_, conditions)) = b.starts.iter().find(|(s, _)| *s == p.checkpoint) else {
                continue;
            };
            if !conditions
                .iter()
                .all(|(slot, v)| slot_value_after(&p.events, domain, slot) == *v)
            {
                continue;
            }
            continued = true;
            for variant in &b.variants {
                let mut events = p.events.clone();
                events.extend(explicit(variant, b.ends.is_empty()));
                let mut names = p.names.clone();
                if !names.contains(&b.name) {
                    names.push(b.name.clone());
                }
                let mut used = p.used.clone();
                used.push(bi);
                let location = if p.location.is_empty() {
                    b.location.clone()
                } else {
                    p.location.clone()
                };
                if b.ends.is_empty() {
                    finish(
                        Partial {
                            checkpoint: String::new(),
                            events,
                            names,
                            location,
                            used,
                        },
                        &mut finished,
                    );
                } else {
                    for end in &b.ends {
                        queue.push(Partial {
                            checkpoint: end.clone(),
                            events: events.clone(),
                            names: names.clone(),
                            location: location.clone(),
                            used: used.clone(),
                        });
                    }
                }
            }
        }
        if !continued && p.checkpoint != STORY_START {
            finish(p, &mut finished);
        }
    }
    // Keep the file order of the stories (the queue is a stack).
    finished.sort_by_key(|f| f.first_block);
    finished.into_iter().map(|f| f.tracker).collect()
}

impl TrainingData {
    /// The stories as training conversations.
    pub fn story_trackers(&self, domain: &Domain) -> Vec<TrainingTracker> {
        generate(&self.stories, domain, false)
    }

    /// The rules as training conversations.
    pub fn rule_trackers(&self, domain: &Domain) -> Vec<TrainingTracker> {
        generate(&self.rules, domain, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain() -> Domain {
        Domain::from_documents(&[(
            "d.yml".into(),
            crate::yaml::parse_str(
                "intents: [a, b, c]\nslots:\n  t: {type: text, mappings: []}\n  l: {type: list, mappings: []}\n  f: {type: bool, mappings: []}\n",
                "d.yml",
            )
            .unwrap(),
        )])
        .unwrap()
    }

    fn show(t: &TrainingTracker) -> Vec<String> {
        t.events
            .iter()
            .zip(&t.unpredictable)
            .map(|(e, u)| {
                let s = match &e.kind {
                    EventKind::Action(a) => a.name.clone().unwrap_or_else(|| {
                        format!("bot:{}", a.action_text.clone().unwrap_or_default())
                    }),
                    EventKind::User(u) => format!(
                        "user:{}",
                        u.intent_name()
                            .map(str::to_owned)
                            .or(u.text.clone())
                            .unwrap_or_default()
                    ),
                    EventKind::Slot { name, value } => format!("slot:{name}={value}"),
                    EventKind::ActiveLoop { name } => {
                        format!("loop:{}", name.clone().unwrap_or_default())
                    }
                    _ => e.type_name().to_owned(),
                };
                if *u {
                    format!("!{s}")
                } else {
                    s
                }
            })
            .collect()
    }

    fn data(text: &str) -> TrainingData {
        TrainingData::from_yaml(text).unwrap()
    }

    #[test]
    fn listens_are_inserted() {
        let d = data("stories:\n- story: s\n  steps:\n  - intent: a\n  - action: x\n  - action: y\n  - intent: b\n  - bot: hi\n");
        let t = d.story_trackers(&domain());
        assert_eq!(t.len(), 1);
        assert_eq!(
            show(&t[0]),
            [
                "action_listen",
                "user:a",
                "x",
                "y",
                "action_listen",
                "user:b",
                "bot:hi",
                "action_listen"
            ]
        );
        let d = data("stories:\n- story: s\n  steps:\n  - action: x\n  - intent: a\n");
        assert_eq!(
            show(&d.story_trackers(&domain())[0]),
            ["!x", "action_listen", "user:a", "action_listen"]
        );
    }

    #[test]
    fn rules_get_snippets_and_should_not_be_set() {
        let d = data(
            "rules:\n- rule: r\n  condition:\n  - active_loop: null\n  - slot_was_set:\n    - t\n    - f\n  steps:\n  - intent: a\n  - action: x\n  - slot_was_set:\n    - l\n- rule: s\n  conversation_start: true\n  wait_for_user_input: false\n  steps:\n  - intent: b\n  - action: y\n",
        );
        let t = d.rule_trackers(&domain());
        assert_eq!(t.len(), 2);
        assert!(t.iter().all(|t| t.is_rule));
        assert_eq!(
            show(&t[0]),
            [
                "loop:should_not_be_set",
                "slot:t=\"filled\"",
                "slot:f=\"should_not_be_set\"",
                "!...",
                "action_listen",
                "user:a",
                "x",
                "slot:l=[\"filled\"]",
                "action_listen"
            ]
        );
        // Rasa appends the final listen after the trailing `...` too.
        assert_eq!(
            show(&t[1]),
            ["action_listen", "user:b", "y", "...", "action_listen"]
        );
    }

    #[test]
    fn or_expands_and_checkpoints_glue() {
        let d = data(
            r#"stories:
- story: start
  steps:
  - intent: a
  - or:
    - intent: b
    - slot_was_set:
      - t: x
  - action: x
  - checkpoint: mid
- story: after
  steps:
  - checkpoint: mid
  - intent: c
  - action: z
- story: conditional
  steps:
  - checkpoint: mid
    slot_was_set:
    - t: x
  - action: w
"#,
        );
        let t = d.story_trackers(&domain());
        let shown: Vec<Vec<String>> = t.iter().map(show).collect();
        assert!(shown.contains(&vec![
            "action_listen".into(),
            "user:a".into(),
            "action_listen".into(),
            "user:b".into(),
            "x".into(),
            "action_listen".into(),
            "user:c".into(),
            "z".into(),
            "action_listen".into()
        ]));
        assert!(shown.contains(&vec![
            "action_listen".into(),
            "user:a".into(),
            "slot:t=\"x\"".into(),
            "x".into(),
            "w".into(),
            "action_listen".into()
        ]));
        assert_eq!(t.len(), 3, "{shown:?}");
        assert!(t.iter().any(|t| t.name == "start > after"));
    }

    #[test]
    fn dangling_checkpoints_and_cycles_terminate() {
        let d = data(
            "stories:\n- story: a\n  steps:\n  - intent: a\n  - checkpoint: loop\n- story: b\n  steps:\n  - checkpoint: loop\n  - intent: b\n  - checkpoint: loop\n- story: c\n  steps:\n  - intent: c\n  - checkpoint: nowhere\n",
        );
        let t = d.story_trackers(&domain());
        assert!(!t.is_empty() && t.len() < 10);
        assert!(t.iter().any(|t| show(t) == ["action_listen", "user:c"]));
    }
}
