//! Custom actions, run by an action server (`action_endpoint` in endpoints.yml) over
//! HTTP exactly as Rasa calls a `rasa_sdk` server: POST `{next_action, sender_id,
//! tracker, domain, version}`, answer `{events, responses}`; a 400 with `action_name`
//! is a rejection; anything else that goes wrong is a failed action.

use std::time::Duration;

use serde_json::{json, Value};

use super::ActionOutcome;
use crate::agent::{Agent, RASA_VERSION};
use crate::config::EndpointConfig;
use crate::events::{self, Event, JsonMap};
use crate::nlg;
use crate::tracker::{DialogueStateTracker, EventVerbosity};

/// `action_endpoint` of endpoints.yml.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionEndpoint {
    /// Where to POST, with its parameters, headers and auth.
    pub endpoint: EndpointConfig,
    /// Send the domain only to actions marked `send_domain`.
    pub enable_selective_domain: bool,
    /// Total time allowed for one call.
    pub timeout: Duration,
}

impl ActionEndpoint {
    /// Reads the `action_endpoint` section; `None` when there is none.
    pub fn from_endpoints(raw: &Value) -> Result<Option<ActionEndpoint>, String> {
        let Some(cfg) = raw.get("action_endpoint").filter(|v| !v.is_null()) else {
            return Ok(None);
        };
        let endpoint = EndpointConfig::from_value(cfg).ok_or("endpoints.yml: action_endpoint needs a 'url' (the action server's webhook, e.g. http://localhost:5055/webhook)")?;
        let timeout = cfg
            .get("timeout")
            .and_then(Value::as_f64)
            .filter(|t| *t > 0.0)
            .unwrap_or(300.0);
        Ok(Some(ActionEndpoint {
            endpoint,
            enable_selective_domain: cfg
                .get("enable_selective_domain")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            timeout: Duration::from_secs_f64(timeout),
        }))
    }
}

/// Calls the action server; one pooled HTTP client for every conversation.
#[derive(Debug, Clone)]
pub struct RemoteActionExecutor {
    client: reqwest::Client,
    endpoint: Option<ActionEndpoint>,
}

impl RemoteActionExecutor {
    /// An executor for `endpoint` (or one that fails every call when there is none).
    pub fn new(endpoint: Option<ActionEndpoint>) -> RemoteActionExecutor {
        RemoteActionExecutor {
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .unwrap_or_default(),
            endpoint,
        }
    }

    /// Runs custom action `name` with `tracker` (the state the action should see).
    pub async fn run(
        &self,
        agent: &Agent,
        tracker: &DialogueStateTracker,
        name: &str,
        domain: Value,
        channel: Option<&str>,
    ) -> ActionOutcome {
        let Some(endpoint) = &self.endpoint else {
            return ActionOutcome::Failed(format!(
                "custom action '{name}' cannot run: endpoints.yml has no action_endpoint"
            ));
        };
        let mut body = json!({
            "next_action": name,
            "sender_id": tracker.sender_id(),
            "tracker": tracker.current_state(EventVerbosity::All),
            "version": RASA_VERSION,
        });
        if !endpoint.enable_selective_domain {
            body["domain"] = domain;
        }
        let req = endpoint
            .endpoint
            .post(&self.client)
            .timeout(endpoint.timeout)
            .json(&body);
        let started = std::time::Instant::now();
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                crate::telemetry::action_server_call(name, None, started.elapsed());
                return ActionOutcome::Failed(format!(
                    "custom action '{name}': the action server at {} did not answer: {e}",
                    endpoint.endpoint.url
                ));
            }
        };
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        crate::telemetry::action_server_call(name, Some(status.as_u16()), started.elapsed());
        let parsed: Option<Value> = serde_json::from_str(&text).ok();
        if status.as_u16() == 400 {
            if let Some(p) = parsed.as_ref().filter(|p| p.get("action_name").is_some()) {
                let why = p.get("error").cloned().unwrap_or(Value::Null);
                tracing::info!(action = name, error = %why, "custom action rejected itself");
                return ActionOutcome::Rejected;
            }
        }
        if !status.is_success() {
            return ActionOutcome::Failed(format!(
                "custom action '{name}': the action server answered {status}: {text}"
            ));
        }
        let Some(reply) = parsed else {
            return ActionOutcome::Failed(format!(
                "custom action '{name}': the action server's answer is not JSON"
            ));
        };
        match events_from_reply(agent, tracker, &reply, channel) {
            Ok(events) => ActionOutcome::Events(events),
            Err(e) => ActionOutcome::Failed(format!("custom action '{name}': {e}")),
        }
    }
}

/// The events of an action server's reply: one `bot` event per response, then the
/// returned events, validated as a whole.
pub fn events_from_reply(
    agent: &Agent,
    tracker: &DialogueStateTracker,
    reply: &Value,
    channel: Option<&str>,
) -> Result<Vec<Event>, String> {
    let reply = reply.as_object().ok_or("the reply is not a JSON object")?;
    let returned = match reply.get("events") {
        None | Some(Value::Null) => Vec::new(),
        Some(v @ Value::Array(_)) => {
            let items = events::validate_events(v).map_err(|e| format!("invalid events: {e}"))?;
            events::parse_events(&items).map_err(|e| format!("invalid events: {e}"))?
        }
        Some(_) => return Err("'events' is not a list".into()),
    };
    let mut out = Vec::new();
    match reply.get("responses") {
        None | Some(Value::Null) => {}
        Some(Value::Array(responses)) => {
            for r in responses {
                let r = r.as_object().ok_or("a response is not an object")?;
                if let Some(m) = render_response(agent, tracker, r, channel) {
                    out.push(nlg::bot_event(m));
                }
            }
        }
        Some(_) => return Err("'responses' is not a list".into()),
    }
    for mut e in returned {
        e.timestamp = events::now();
        out.push(e);
    }
    Ok(out)
}

/// One message of an action server's `responses`, rendered as Rasa does.
fn render_response(
    agent: &Agent,
    tracker: &DialogueStateTracker,
    r: &JsonMap,
    channel: Option<&str>,
) -> Option<JsonMap> {
    let template = r
        .get("response")
        .or_else(|| r.get("template"))
        .and_then(Value::as_str);
    let mut message = match template {
        Some(name) => {
            let kwargs: JsonMap = r
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "response" | "template"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let mut m = nlg::generate(
                &agent.domain.responses,
                name,
                &super::slot_values(tracker),
                &kwargs,
                channel,
            )?;
            m.insert("utter_action".into(), json!(name));
            m
        }
        None => JsonMap::new(),
    };
    if let Some(Value::Array(extra)) = r.get("buttons").filter(|b| events::is_truthy(b)) {
        let mut buttons = message
            .get("buttons")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        buttons.extend(extra.iter().cloned());
        message.insert("buttons".into(), Value::Array(buttons));
    }
    for (k, v) in r {
        if matches!(k.as_str(), "response" | "template" | "buttons") || !events::is_truthy(v) {
            continue;
        }
        message.insert(k.clone(), v.clone());
    }
    Some(message)
}
