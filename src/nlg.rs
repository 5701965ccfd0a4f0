//! Responses: from a domain `utter_*` response to a `bot` event.
//!
//! Mirrors Rasa 3.6's template generator: pick a variation (channel-specific and
//! conditional variations first), fill `{slot}` placeholders the way Python's
//! `str.format` would print the values, and turn the message into a `bot` event whose
//! `data` holds the rich parts and whose `metadata` holds everything else.

use rand::seq::IndexedRandom;
use serde_json::{Map, Value};

use crate::events::{Event, EventKind, JsonMap};

/// Keys of a message that go into a `bot` event's `data`, in Rasa's order.
const DATA_KEYS: [&str; 6] = [
    "elements",
    "quick_replies",
    "buttons",
    "attachment",
    "image",
    "custom",
];

/// Whether a conditional variation matches the current slots: every `{type: slot,
/// name, value}` constraint holds (strings compared case-insensitively).
fn condition_matches(condition: &Value, slots: &JsonMap) -> bool {
    let Some(constraints) = condition.as_array() else {
        return true;
    };
    constraints.iter().all(|c| {
        if c.get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t != "slot")
        {
            return true;
        }
        let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
        let want = c.get("value").unwrap_or(&Value::Null);
        let have = slots.get(name).unwrap_or(&Value::Null);
        match (want, have) {
            (Value::String(a), Value::String(b)) => a.to_lowercase() == b.to_lowercase(),
            (a, b) => a == b,
        }
    })
}

/// Chooses a variation of a response as Rasa 3.6 does: matching conditional variations
/// for this channel, then plain ones for this channel, then matching conditional ones
/// for any channel, then plain ones for any channel; uniformly at random in the pool.
pub fn choose_variation<'a>(
    variations: &'a [Value],
    slots: &JsonMap,
    channel: Option<&str>,
) -> Option<&'a Value> {
    let for_channel =
        |v: &Value| v.get("channel").and_then(Value::as_str) == channel && channel.is_some();
    let no_channel = |v: &Value| v.get("channel").is_none_or(Value::is_null);
    let conditional = |v: &Value| v.get("condition").is_some_and(|c| !c.is_null());
    let pools: [Vec<&Value>; 4] = [
        variations
            .iter()
            .filter(|v| {
                for_channel(v) && conditional(v) && condition_matches(&v["condition"], slots)
            })
            .collect(),
        variations
            .iter()
            .filter(|v| for_channel(v) && !conditional(v))
            .collect(),
        variations
            .iter()
            .filter(|v| {
                no_channel(v) && conditional(v) && condition_matches(&v["condition"], slots)
            })
            .collect(),
        variations
            .iter()
            .filter(|v| no_channel(v) && !conditional(v))
            .collect(),
    ];
    let pool = pools.into_iter().find(|p| !p.is_empty())?;
    pool.choose(&mut rand::rng()).copied()
}

/// A value as Python's `str()` prints it (what Rasa puts into `{slot}` placeholders).
pub fn python_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => python_repr(other),
    }
}

fn python_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => {
            if n.is_f64() {
                let f = n.as_f64().unwrap_or_default();
                if f.fract() == 0.0 && f.abs() < 1e16 {
                    format!("{f:.1}")
                } else {
                    f.to_string()
                }
            } else {
                n.to_string()
            }
        }
        Value::String(s) => {
            if s.contains('\'') && !s.contains('"') {
                format!("\"{s}\"")
            } else {
                format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
            }
        }
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(python_repr).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!(
                    "{}: {}",
                    python_repr(&Value::String(k.clone())),
                    python_repr(v)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Fills `{name}` placeholders. As in Rasa, if any placeholder has no value the text is
/// returned unchanged; `{{` and `}}` stand for literal braces.
pub fn interpolate_text(text: &str, values: &JsonMap) -> String {
    if values.is_empty() || !text.contains('{') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("{{") {
            out.push('{');
            rest = after;
        } else if let Some(after) = tail.strip_prefix("}}") {
            out.push('}');
            rest = after;
        } else if let Some(stripped) = tail.strip_prefix('{') {
            match stripped.find(['}', '{', '\n']) {
                Some(end) if stripped.as_bytes()[end] == b'}' && end > 0 => {
                    let key = &stripped[..end];
                    match values.get(key) {
                        Some(v) => out.push_str(&python_str(v)),
                        None => {
                            tracing::error!(
                                key,
                                "a response refers to an unknown slot; sent as written"
                            );
                            return text.to_owned();
                        }
                    }
                    rest = &stripped[end + 1..];
                }
                _ => return text.to_owned(),
            }
        } else {
            // A lone `}`.
            return text.to_owned();
        }
    }
    out.push_str(rest);
    out
}

fn interpolate_value(v: &Value, values: &JsonMap) -> Value {
    match v {
        Value::String(s) => Value::String(interpolate_text(s, values)),
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| interpolate_value(i, values)).collect())
        }
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), interpolate_value(v, values)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Renders the response `name`: a chosen variation with placeholders filled from the
/// slots (overridden by `kwargs`). `None` if the domain has no usable variation.
pub fn generate(
    responses: &Map<String, Value>,
    name: &str,
    slots: &JsonMap,
    kwargs: &JsonMap,
    channel: Option<&str>,
) -> Option<JsonMap> {
    let variations = responses.get(name)?.as_array()?;
    let chosen = choose_variation(variations, slots, channel)?.as_object()?;
    let mut values = slots.clone();
    for (k, v) in kwargs {
        values.insert(k.clone(), v.clone());
    }
    let mut message = JsonMap::new();
    for (k, v) in chosen {
        let filled = match k.as_str() {
            "text" | "image" | "custom" | "buttons" | "attachment" | "quick_replies"
            | "elements" => interpolate_value(v, &values),
            _ => v.clone(),
        };
        message.insert(k.clone(), filled);
    }
    Some(message)
}

/// Turns a generated message into a `bot` event, as Rasa's `create_bot_utterance`.
pub fn bot_event(mut message: JsonMap) -> Event {
    let text = match message.remove("text") {
        Some(Value::String(s)) => Some(s),
        Some(Value::Null) | None => None,
        Some(other) => Some(python_str(&other)),
    };
    let mut data = JsonMap::new();
    for key in DATA_KEYS {
        let v = match key {
            "attachment" => {
                let a = message.remove("attachment").filter(|v| !v.is_null());
                a.or_else(|| message.get("image").cloned())
                    .unwrap_or(Value::Null)
            }
            _ => message.remove(key).unwrap_or(Value::Null),
        };
        data.insert(key.into(), v);
    }
    Event {
        timestamp: crate::events::now(),
        metadata: message,
        kind: EventKind::Bot {
            text,
            data: Value::Object(data),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> JsonMap {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn interpolation_like_python_format() {
        let slots =
            map(json!({"name": "Ada", "n": 3.0, "ok": true, "none": null, "l": ["a", "b"]}));
        assert_eq!(interpolate_text("Hello {name}!", &slots), "Hello Ada!");
        assert_eq!(
            interpolate_text("{n} {ok} {none} {l}", &slots),
            "3.0 True None ['a', 'b']"
        );
        assert_eq!(
            interpolate_text("{missing} {name}", &slots),
            "{missing} {name}"
        );
        assert_eq!(interpolate_text("{{name}} {name}", &slots), "{name} Ada");
        assert_eq!(interpolate_text("no slots", &JsonMap::new()), "no slots");
    }

    #[test]
    fn variation_pools() {
        let vs = vec![
            json!({"text": "plain"}),
            json!({"text": "gold", "condition": [{"type": "slot", "name": "tier", "value": "Gold"}]}),
            json!({"text": "slack", "channel": "slack"}),
        ];
        let gold = map(json!({"tier": "gold"}));
        assert_eq!(choose_variation(&vs, &gold, None).unwrap()["text"], "gold");
        assert_eq!(
            choose_variation(&vs, &JsonMap::new(), None).unwrap()["text"],
            "plain"
        );
        assert_eq!(
            choose_variation(&vs, &gold, Some("slack")).unwrap()["text"],
            "slack"
        );
    }

    #[test]
    fn bot_event_like_rasa() {
        let responses =
            map(json!({"utter_x": [{"text": "Hi {name}", "image": "http://i", "id": "v1"}]}));
        let mut m = generate(
            &responses,
            "utter_x",
            &map(json!({"name": "Ada"})),
            &JsonMap::new(),
            None,
        )
        .unwrap();
        m.insert("utter_action".into(), json!("utter_x"));
        let e = bot_event(m).to_json();
        assert_eq!(e["text"], "Hi Ada");
        assert_eq!(
            e["data"],
            json!({"elements": null, "quick_replies": null, "buttons": null, "attachment": "http://i", "image": "http://i", "custom": null})
        );
        assert_eq!(
            e["metadata"],
            json!({"id": "v1", "utter_action": "utter_x"})
        );
    }
}
