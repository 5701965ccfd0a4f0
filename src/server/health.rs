//! Liveness and readiness probes: `GET /health/live` and `GET /health/ready`.
//!
//! `/status` stays what Rasa makes it (the loaded model, admin only); these two are for
//! orchestrators and load balancers, so they are never protected and always mounted.
//!
//! - live: the process answers HTTP (200 `{"status": "ok"}`), nothing else is checked,
//!   so a slow database never gets a healthy process restarted.
//! - ready: the process can serve conversations now — a bot is loaded, the tracker store
//!   and the lock store answer their ping within [`PING_TIMEOUT`], and the server is not
//!   shutting down. 200 when all hold, else 503; the body tells each check.

use std::future::Future;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::SharedState;
use crate::stores::StoreError;

/// How long a store may take to answer the readiness ping.
pub const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /health/live`.
pub async fn live() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn check(ping: impl Future<Output = Result<(), StoreError>>) -> Value {
    match tokio::time::timeout(PING_TIMEOUT, ping).await {
        Ok(Ok(())) => json!("ok"),
        Ok(Err(e)) => json!(e.to_string()),
        Err(_) => json!(format!("no answer within {} s", PING_TIMEOUT.as_secs_f64())),
    }
}

/// `GET /health/ready`.
pub async fn ready(State(state): State<SharedState>) -> Response {
    let conversations = &state.conversations;
    let (tracker_store, lock_store) = tokio::join!(
        check(conversations.store().ping()),
        check(conversations.locks().ping())
    );
    let model = if state.agent().is_ok() {
        json!("ok")
    } else {
        json!("no bot is loaded")
    };
    let draining = state.lifecycle.is_draining();
    let checks = json!({
        "model": model,
        "tracker_store": tracker_store,
        "lock_store": lock_store,
        "shutting_down": draining,
    });
    let ok = !draining
        && [&model, &tracker_store, &lock_store]
            .iter()
            .all(|c| *c == "ok");
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({"status": if ok { "ok" } else { "unavailable" }, "checks": checks});
    (status, Json(body)).into_response()
}
