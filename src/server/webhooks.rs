//! Input channels: `/webhooks/rest/...` and `/webhooks/callback/...`.
//!
//! Channel webhooks are never protected by `--auth-token`/`--jwt-secret`, as in Rasa;
//! a channel may opt in to its own auth in credentials.yml (`webhook_auth`, see
//! [`crate::channels::auth`]).
//! The REST webhook always answers 200 with the bot's messages (an empty list when the
//! bot says nothing, is paused, or failed: the failure is logged).

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::{read_json, ApiError, QueryParams, SharedState};
use crate::channels::callback::CallbackOutputChannel;
use crate::channels::{collected_messages, BotMessage, CollectingOutputChannel, OutputChannel};
use crate::processor::messages::{handle_message, UserMessage};

/// `GET /webhooks/<channel>/`: health of a channel.
pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The fields of a channel message body that Rasa reads.
fn user_message(
    body: &Value,
    default_channel: &str,
    read_extras: bool,
) -> Result<UserMessage, ApiError> {
    let Value::Object(o) = body else {
        return Err(ApiError::framework_500(
            "The request body must be a JSON object.",
        ));
    };
    let sender_id = match o.get("sender") {
        None | Some(Value::Null) => "default".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let text = match o.get("message") {
        Some(Value::String(s)) => Some(s.trim().to_owned()),
        Some(Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    };
    let metadata = if read_extras {
        o.get("metadata").and_then(Value::as_object).cloned()
    } else {
        None
    };
    let input_channel = if read_extras {
        o.get("input_channel")
            .and_then(Value::as_str)
            .unwrap_or(default_channel)
    } else {
        default_channel
    };
    Ok(UserMessage {
        text,
        sender_id,
        input_channel: Some(input_channel.to_owned()),
        metadata,
        ..UserMessage::default()
    })
}

/// Sends each bot message to a stream as soon as it is produced (`?stream=true`).
struct StreamingOutputChannel {
    name: String,
    tx: tokio::sync::mpsc::UnboundedSender<Value>,
}

#[async_trait::async_trait]
impl OutputChannel for StreamingOutputChannel {
    fn name(&self) -> Option<&str> {
        Some(&self.name)
    }

    async fn send(&self, recipient_id: &str, message: &BotMessage) {
        for m in collected_messages(recipient_id, message) {
            // The client may have gone: the message is still logged on the tracker.
            let _ = self.tx.send(m);
        }
    }
}

/// `?stream=true`: the messages as JSON lines, written as they are produced (Rasa
/// writes no `data:` prefix either). Processing goes on if the client leaves.
fn stream_answer(
    state: SharedState,
    agent: std::sync::Arc<crate::agent::Agent>,
    msg: UserMessage,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let out = StreamingOutputChannel {
        name: msg.input_channel.clone().unwrap_or_else(|| "rest".into()),
        tx,
    };
    tokio::spawn(async move {
        if let Err(e) = handle_message(&state.conversations, agent, msg, &out).await {
            tracing::error!(error = %e, "handling a streamed REST message failed");
        }
    });
    let lines = futures::stream::unfold(rx, |mut rx| async move {
        let m = rx.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(format!("{m}\n")), rx))
    });
    (
        [(axum::http::header::CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(lines),
    )
        .into_response()
}

/// `POST /webhooks/rest/webhook`: handles a message and answers the bot's messages.
pub async fn rest(
    State(state): State<SharedState>,
    RawQuery(query): RawQuery,
    headers: axum::http::HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    state.channel_auth.check("rest", &headers)?;
    let body = read_json(body, state.body_limit).await?;
    let msg = user_message(&body, "rest", true)?;
    let stream = QueryParams::parse(query.as_deref()).bool("stream", false);
    let out = CollectingOutputChannel::named(msg.input_channel.as_deref().unwrap_or("rest"));
    let Ok(agent) = state.agent() else {
        return Ok(Json(json!([])).into_response());
    };
    if msg.text.is_none() {
        // Rasa fails on a message without text and answers what it has: nothing.
        tracing::error!(sender = %msg.sender_id, "a REST message without text was ignored");
        return Ok(Json(json!([])).into_response());
    }
    if stream {
        return Ok(stream_answer(state.clone(), agent, msg));
    }
    if let Err(e) = handle_message(&state.conversations, agent, msg, &out).await {
        tracing::error!(error = %e, "handling a REST message failed");
        if let crate::processor::messages::ProcessError::Store(s) = e {
            // The message was not stored: say so instead of pretending it was handled.
            return Err(s.into());
        }
    }
    Ok(Json(Value::Array(out.take())).into_response())
}

/// `POST /webhooks/callback/webhook`: handles a message; the bot's messages are POSTed
/// to the callback URL; answers `success`.
pub async fn callback(
    State(state): State<SharedState>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    state.channel_auth.check("callback", &headers)?;
    let body = read_json(body, state.body_limit).await?;
    let msg = user_message(&body, "callback", false)?;
    let Some(endpoint) = state.callback.clone() else {
        return Err(ApiError::unknown_path("/webhooks/callback/webhook"));
    };
    let out = CallbackOutputChannel::new(endpoint);
    if let Ok(agent) = state.agent() {
        if msg.text.is_some() {
            if let Err(e) = handle_message(&state.conversations, agent, msg, &out).await {
                tracing::error!(error = %e, "handling a callback message failed");
                if let crate::processor::messages::ProcessError::Store(s) = e {
                    return Err(s.into());
                }
            }
        }
    }
    Ok((
        [(axum::http::header::CONTENT_TYPE, "text/plain")],
        "success",
    )
        .into_response())
}
