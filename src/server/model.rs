//! `/model/parse`, `/model/predict`, `/domain`, `PUT /model`, `DELETE /model`.
//!
//! palaver's "model" is the project folder: `PUT /model` with `{"model_file": DIR}`
//! loads another project (or the same one again), `DELETE /model` unloads it.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::emulation::Emulation;
use super::{json_bytes, read_json, ApiError, QueryParams, SharedState};
use crate::agent::Agent;
use crate::events;
use crate::processor::messages::{parse_message_remote, UserMessage};
use crate::tracker::DialogueStateTracker;

fn parsing_error(detail: impl std::fmt::Display) -> ApiError {
    ApiError::with_reason(
        StatusCode::INTERNAL_SERVER_ERROR,
        "ParsingError",
        format!("An unexpected error occurred. Error: {detail}"),
    )
}

/// `POST /model/parse`: the parse data of a text; nothing is stored.
pub async fn parse(
    State(state): State<SharedState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Response, ApiError> {
    let q = QueryParams::parse(query.as_deref());
    state.auth.check(&headers, q.get("token"), None)?;
    let agent = state.agent()?;
    let body = match read_json(body, state.body_limit).await {
        Ok(v) => v,
        Err(e) if e.status() == StatusCode::BAD_REQUEST => {
            return Err(parsing_error("Failed when parsing body as json"))
        }
        Err(e) => return Err(e),
    };
    if body.is_null() {
        return Err(ApiError::with_reason(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "No text message defined in request_body. Add text message to request body in order to obtain the intent and extracted entities.",
        ));
    }
    let emulation = match q.get("emulation_mode") {
        None => None,
        Some(mode) => match Emulation::from_param(mode) {
            Some(e) => Some(e),
            None => {
                return Err(ApiError::bad_parameter(
                    "Invalid parameter value for 'emulation_mode'. Should be one of WIT, LUIS, DIALOGFLOW",
                    "emulation_mode",
                    "query",
                ))
            }
        },
    };
    let text = match body.get("text") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(items)) => items
            .first()
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        Some(other) if !other.is_null() => other.to_string(),
        _ => return Err(parsing_error("'text'")),
    };
    let msg = UserMessage {
        text: Some(text.clone()),
        ..UserMessage::default()
    };
    let mut parsed = parse_message_remote(&agent, &msg, "").await;
    parsed.remove("message_id");
    parsed.remove("metadata");
    parsed.insert("text".into(), json!(text));
    let parsed = Value::Object(parsed);
    match emulation {
        Some(e) => json_value(e.response(&parsed)),
        None => json_value(parsed),
    }
}

fn json_value(v: Value) -> Result<Response, ApiError> {
    serde_json::to_vec(&v)
        .map(json_bytes)
        .map_err(ApiError::conversation_error)
}

/// `POST /model/predict`: the next action for a list of events; nothing is stored.
pub async fn predict(
    State(state): State<SharedState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Response, ApiError> {
    let q = QueryParams::parse(query.as_deref());
    state.auth.check(&headers, q.get("token"), None)?;
    let agent = state.agent()?;
    let body = read_json(body, state.body_limit).await?;
    let items = events::validate_events(&body).map_err(|e| ApiError::invalid_events(&e))?;
    let verbosity = q.include_events()?;
    if !body.is_array() {
        return Err(ApiError::bad_parameter(
            "Supplied events are not valid. The request body must be a list of events.",
            "",
            "body",
        ));
    }
    let parsed = events::parse_events(&items).map_err(|e| {
        ApiError::bad_parameter(format!("Supplied events are not valid. {e}"), "", "body")
    })?;
    let tracker = DialogueStateTracker::from_events("default", agent.slots.clone(), parsed);
    let p = agent.policies.predict(&tracker, &agent.domain);
    json_value(json!({
        "scores": p.scores.iter().map(|(a, s)| json!({"action": a, "score": s})).collect::<Vec<_>>(),
        "policy": p.policy,
        "confidence": p.confidence,
        "tracker": serde_json::to_value(tracker.current_state(verbosity)).map_err(ApiError::conversation_error)?,
    }))
}

/// `GET /domain`: the domain as JSON or YAML, chosen by the `Accept` header as Rasa
/// does (a missing header means JSON; `*/*` is refused).
pub async fn domain(
    State(state): State<SharedState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let q = QueryParams::parse(query.as_deref());
    state.auth.check(&headers, q.get("token"), None)?;
    let agent = state.agent()?;
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    match accept {
        None => json_value(agent.domain_json.clone()),
        Some(a) if a.ends_with("json") => json_value(agent.domain_json.clone()),
        Some(a) if a.ends_with("yml") || a.ends_with("yaml") => Ok((
            [(header::CONTENT_TYPE, "application/x-yaml")],
            agent.domain.to_yaml(),
        )
            .into_response()),
        Some(_) => Err(ApiError::with_reason(
            StatusCode::NOT_ACCEPTABLE,
            "NotAcceptable",
            "Invalid Accept header. Domain can be provided as json (\"Accept: application/json\") or\
             yml (\"Accept: application/x-yaml\"). Make sure you've set the appropriate Accept header.",
        )),
    }
}

fn loading_error(detail: impl std::fmt::Display) -> ApiError {
    ApiError::with_reason(
        StatusCode::INTERNAL_SERVER_ERROR,
        "LoadingError",
        format!("An unexpected error occurred. Error: {detail}"),
    )
}

/// `PUT /model`: loads the project at `model_file` (a folder) and swaps it in.
pub async fn replace(
    State(state): State<SharedState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Response, ApiError> {
    let q = QueryParams::parse(query.as_deref());
    state.auth.check(&headers, q.get("token"), None)?;
    let body = read_json(body, state.body_limit).await?;
    if body.is_null() {
        return Err(ApiError::with_reason(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "The model file to load is missing from the request body (\"model_file\").",
        ));
    }
    if !body.is_object() {
        return Err(ApiError::bad_parameter(
            "The request body must be an object with the \"model_file\" to load.",
            "model_file",
            "body",
        ));
    }
    if body.get("model_server").is_some_and(|v| !v.is_null())
        || body.get("remote_storage").is_some_and(|v| !v.is_null())
    {
        return Err(ApiError::bad_parameter(
            "palaver loads projects from a folder: use \"model_file\" with the project's path.",
            "model_server",
            "body",
        ));
    }
    let dir = match body.get("model_file") {
        Some(Value::String(p)) => PathBuf::from(p),
        None | Some(Value::Null) => state.project.dir.clone(),
        Some(_) => {
            return Err(ApiError::bad_parameter(
                "\"model_file\" must be the path of a project folder.",
                "model_file",
                "body",
            ))
        }
    };
    let options = state.project.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        Agent::load_project(&dir, None, None, &options.endpoints)
    })
    .await
    .map_err(loading_error)?;
    let agent = loaded.map_err(|e| {
        ApiError::bad_parameter(
            format!(
                "Agent with name '{}' could not be loaded. {e}",
                body["model_file"]
            ),
            "model",
            "query",
        )
    })?;
    *state.agent.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(agent));
    state.conversations.clear_cache();
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE /model`: unloads the bot; model routes answer 409 until one is loaded.
pub async fn unload(
    State(state): State<SharedState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let q = QueryParams::parse(query.as_deref());
    state.auth.check(&headers, q.get("token"), None)?;
    *state.agent.write().unwrap_or_else(|p| p.into_inner()) = None;
    state.conversations.clear_cache();
    Ok(StatusCode::NO_CONTENT.into_response())
}
