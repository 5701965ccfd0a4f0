//! `GET /`, `GET /version` and `GET /status`.

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::{ApiError, QueryParams, SharedState};
use crate::agent::RASA_VERSION;

/// `GET /`: a liveness greeting, never protected.
pub async fn hello() -> String {
    format!("Hello from Rasa: {RASA_VERSION}")
}

/// `GET /version`: the Rasa version palaver is compatible with; never protected.
pub async fn version() -> Json<serde_json::Value> {
    Json(json!({"version": RASA_VERSION, "minimum_compatible_version": RASA_VERSION}))
}

/// `GET /status`: which bot is loaded (admin only).
pub async fn status(
    State(state): State<SharedState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let q = QueryParams::parse(query.as_deref());
    state.auth.check(&headers, q.get("token"), None)?;
    let agent = state.agent()?;
    Ok(Json(json!({
        "model_file": agent.model_file,
        "model_id": agent.model_id,
        "num_active_training_jobs": 0,
    }))
    .into_response())
}
