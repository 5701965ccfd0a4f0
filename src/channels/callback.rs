//! The `callback` channel: every bot message is POSTed to a URL (credentials.yml
//! `callback: {url: ...}`), one JSON object per message, in order.

use serde_json::Value;

use crate::config::EndpointConfig;

use super::{collected_messages, BotMessage, CollectingOutputChannel, OutputChannel};

/// Where the callback channel posts (`callback:` in credentials.yml).
pub type CallbackEndpoint = EndpointConfig;

/// Reads `callback:` of credentials.yml; `None` when it has no `url`.
pub fn endpoint_from_credentials(raw: &Value) -> Option<CallbackEndpoint> {
    EndpointConfig::from_value(raw.get("callback")?)
}

/// Posts each bot message to the callback URL (and collects it, as Rasa's does).
pub struct CallbackOutputChannel {
    endpoint: CallbackEndpoint,
    client: reqwest::Client,
    collected: CollectingOutputChannel,
}

impl CallbackOutputChannel {
    /// A channel posting to `endpoint`.
    pub fn new(endpoint: CallbackEndpoint) -> CallbackOutputChannel {
        CallbackOutputChannel {
            endpoint,
            client: reqwest::Client::new(),
            collected: CollectingOutputChannel::named("callback"),
        }
    }

    /// The messages sent so far.
    pub fn take(&self) -> Vec<Value> {
        self.collected.take()
    }
}

#[async_trait::async_trait]
impl OutputChannel for CallbackOutputChannel {
    fn name(&self) -> Option<&str> {
        Some("callback")
    }

    async fn send(&self, recipient_id: &str, message: &BotMessage) {
        self.collected.collect(recipient_id, message);
        for m in collected_messages(recipient_id, message) {
            match self.endpoint.post(&self.client).json(&m).send().await {
                Ok(r) if r.status().as_u16() >= 400 => {
                    tracing::error!(status = %r.status(), url = %self.endpoint.url, "the callback URL refused a bot message")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, url = %self.endpoint.url, "cannot post a bot message to the callback URL")
                }
            }
        }
    }
}
