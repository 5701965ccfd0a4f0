//! Input channels: `/webhooks/rest/...` and `/webhooks/callback/...`.
//!
//! Channel webhooks are never protected by `--auth-token`/`--jwt-secret`, as in Rasa.
//! The REST webhook always answers 200 with the bot's messages (an empty list when the
//! bot says nothing, is paused, or failed: the failure is logged).

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::{read_json, ApiError, SharedState};
use crate::channels::callback::CallbackOutputChannel;
use crate::channels::CollectingOutputChannel;
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

/// `POST /webhooks/rest/webhook`: handles a message and answers the bot's messages.
pub async fn rest(State(state): State<SharedState>, body: Body) -> Result<Response, ApiError> {
    let body = read_json(body, state.body_limit).await?;
    let msg = user_message(&body, "rest", true)?;
    let out = CollectingOutputChannel::named(msg.input_channel.as_deref().unwrap_or("rest"));
    let Ok(agent) = state.agent() else {
        return Ok(Json(json!([])).into_response());
    };
    if msg.text.is_none() {
        // Rasa fails on a message without text and answers what it has: nothing.
        tracing::error!(sender = %msg.sender_id, "a REST message without text was ignored");
        return Ok(Json(json!([])).into_response());
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
pub async fn callback(State(state): State<SharedState>, body: Body) -> Result<Response, ApiError> {
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
