//! Output channels: where the bot's messages go.
//!
//! A `bot` event becomes one or more channel messages the way Rasa's
//! `OutputChannel.send_response` splits it: text first (plain, with buttons, or with
//! quick replies), then custom, image, attachment and elements. The collecting channel
//! (REST webhook, `messages` arrays, callback) renders each part as a JSON object
//! `{"recipient_id": ..., "text"|"image"|"buttons"|"custom"|"attachment": ...}`.
//!
//! Input channels: REST and callback webhooks (`server::webhooks`), socket.io
//! ([`socketio`]); their opt-in authentication is in [`auth`]; [`push`] reaches users
//! outside of a request; [`relay`] carries socket.io pushes between replicas.

pub mod auth;
pub mod callback;
pub mod push;
pub mod relay;
pub mod socketio;

use std::sync::Mutex;

use serde_json::{json, Map, Value};

use crate::events::{is_truthy, Event, EventKind};

/// A bot response as channels see it: the `bot` event's text and data.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BotMessage {
    /// Text, if any.
    pub text: Option<String>,
    /// `data` keys plus metadata (as Rasa's `BotUttered.message()`).
    pub data: Map<String, Value>,
}

impl BotMessage {
    /// The message of a `bot` event; `None` for other events.
    pub fn from_event(e: &Event) -> Option<BotMessage> {
        let EventKind::Bot { text, data } = &e.kind else {
            return None;
        };
        let mut m = data.as_object().cloned().unwrap_or_default();
        for (k, v) in &e.metadata {
            m.insert(k.clone(), v.clone());
        }
        // Rasa mirrors a lone image into `attachment`; send the image once.
        if m.get("image").is_some_and(is_truthy) && m.get("image") == m.get("attachment") {
            m.insert("attachment".into(), Value::Null);
        }
        Some(BotMessage {
            text: text.clone(),
            data: m,
        })
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.data.get(key).filter(|v| is_truthy(v))
    }
}

/// Renders a bot message as the collecting channel's JSON objects, in send order.
pub fn collected_messages(recipient_id: &str, m: &BotMessage) -> Vec<Value> {
    let mut out = Vec::new();
    let text = m.text.as_deref().filter(|t| !t.is_empty());
    let with = |mut o: Map<String, Value>| {
        o.insert("recipient_id".into(), json!(recipient_id));
        let mut ordered = Map::new();
        ordered.insert("recipient_id".into(), json!(recipient_id));
        for (k, v) in o {
            if k != "recipient_id" {
                ordered.insert(k, v);
            }
        }
        Value::Object(ordered)
    };
    if let Some(buttons) = m.get("quick_replies").or_else(|| m.get("buttons")) {
        let mut o = Map::new();
        o.insert("text".into(), json!(text.unwrap_or_default()));
        o.insert("buttons".into(), buttons.clone());
        out.push(with(o));
    } else if let Some(t) = text {
        for part in t.trim().split("\n\n") {
            let mut o = Map::new();
            o.insert("text".into(), json!(part));
            out.push(with(o));
        }
    }
    if let Some(custom) = m.get("custom") {
        let mut o = Map::new();
        o.insert("custom".into(), custom.clone());
        out.push(with(o));
    }
    if let Some(image) = m.get("image") {
        let mut o = Map::new();
        o.insert("image".into(), image.clone());
        out.push(with(o));
    }
    if let Some(attachment) = m.get("attachment") {
        let mut o = Map::new();
        o.insert("attachment".into(), attachment.clone());
        out.push(with(o));
    }
    if let Some(Value::Array(elements)) = m.get("elements") {
        for el in elements {
            let title = el.get("title").and_then(Value::as_str).unwrap_or_default();
            let subtitle = el
                .get("subtitle")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let mut o = Map::new();
            o.insert("text".into(), json!(format!("{title} : {subtitle}")));
            o.insert(
                "buttons".into(),
                el.get("buttons").cloned().unwrap_or(json!([])),
            );
            out.push(with(o));
        }
    }
    out
}

/// Where the bot's messages of one conversation go.
#[async_trait::async_trait]
pub trait OutputChannel: Send + Sync {
    /// The channel's name (selects channel-specific response variations).
    fn name(&self) -> Option<&str>;
    /// Delivers one bot message.
    async fn send(&self, recipient_id: &str, message: &BotMessage);
}

/// Collects the messages of one request (REST webhook, `/execute`, ...).
#[derive(Debug, Default)]
pub struct CollectingOutputChannel {
    name: Option<String>,
    messages: Mutex<Vec<Value>>,
}

#[async_trait::async_trait]
impl OutputChannel for CollectingOutputChannel {
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    async fn send(&self, recipient_id: &str, message: &BotMessage) {
        self.collect(recipient_id, message);
    }
}

impl CollectingOutputChannel {
    /// An empty collector with no channel name.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty collector that reports `name` as its channel.
    pub fn named(name: &str) -> Self {
        CollectingOutputChannel {
            name: Some(name.to_owned()),
            messages: Mutex::new(Vec::new()),
        }
    }

    /// Adds a bot message for `recipient_id`.
    pub fn collect(&self, recipient_id: &str, m: &BotMessage) {
        let rendered = collected_messages(recipient_id, m);
        self.messages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(rendered);
    }

    /// The collected messages, in order.
    pub fn take(&self) -> Vec<Value> {
        std::mem::take(&mut *self.messages.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(text: Option<&str>, data: Value) -> BotMessage {
        BotMessage {
            text: text.map(str::to_owned),
            data: data.as_object().cloned().unwrap(),
        }
    }

    #[test]
    fn rest_rendering_like_rasa() {
        let m = msg(
            Some("Here:"),
            json!({"image": "http://i", "attachment": null}),
        );
        assert_eq!(
            collected_messages("u", &m),
            vec![
                json!({"recipient_id": "u", "text": "Here:"}),
                json!({"recipient_id": "u", "image": "http://i"})
            ]
        );
        let m = msg(Some("a\n\nb"), json!({}));
        assert_eq!(collected_messages("u", &m).len(), 2);
        let m = msg(
            Some("Pick\n\none"),
            json!({"buttons": [{"title": "x", "payload": "/x"}]}),
        );
        assert_eq!(
            collected_messages("u", &m),
            vec![
                json!({"recipient_id": "u", "text": "Pick\n\none", "buttons": [{"title": "x", "payload": "/x"}]})
            ]
        );
        let m = msg(None, json!({"custom": {"k": 1}}));
        assert_eq!(
            collected_messages("u", &m),
            vec![json!({"recipient_id": "u", "custom": {"k": 1}})]
        );
    }
}
