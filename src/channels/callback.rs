//! The `callback` channel: every bot message is POSTed to a URL (credentials.yml
//! `callback: {url: ...}`), one JSON object per message, in order.

use serde_json::Value;

use super::{collected_messages, BotMessage, CollectingOutputChannel, OutputChannel};

/// Where the callback channel posts (`callback:` in credentials.yml).
#[derive(Debug, Clone, PartialEq)]
pub struct CallbackEndpoint {
    /// The URL bot messages are POSTed to.
    pub url: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Query parameters (the token under its `token_name`, too).
    pub params: Vec<(String, String)>,
    /// HTTP basic auth.
    pub basic_auth: Option<(String, String)>,
}

impl CallbackEndpoint {
    /// Reads `callback:` of credentials.yml; `None` when it has no `url`.
    pub fn from_credentials(raw: &Value) -> Option<CallbackEndpoint> {
        let cfg = raw.get("callback")?;
        let url = cfg.get("url")?.as_str()?.to_owned();
        let text = |v: &Value| {
            v.as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| v.to_string())
        };
        let mut params: Vec<(String, String)> = cfg
            .get("params")
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), text(v))).collect())
            .unwrap_or_default();
        if let Some(token) = cfg.get("token").filter(|v| !v.is_null()) {
            let name = cfg
                .get("token_name")
                .and_then(Value::as_str)
                .unwrap_or("token");
            params.push((name.to_owned(), text(token)));
        }
        let headers = cfg
            .get("headers")
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), text(v))).collect())
            .unwrap_or_default();
        let basic_auth = cfg.get("basic_auth").and_then(|b| {
            Some((
                b.get("username").map(text)?,
                b.get("password").map(text).unwrap_or_default(),
            ))
        });
        Some(CallbackEndpoint {
            url,
            headers,
            params,
            basic_auth,
        })
    }
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
            let mut req = self
                .client
                .post(&self.endpoint.url)
                .query(&self.endpoint.params)
                .json(&m);
            for (k, v) in &self.endpoint.headers {
                req = req.header(k, v);
            }
            if let Some((u, p)) = &self.endpoint.basic_auth {
                req = req.basic_auth(u, Some(p));
            }
            match req.send().await {
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
