//! Helpers of the operations tests (`tests/ops_*.rs`): a custom action server the test
//! controls, Prometheus text parsing, signals.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;
use tokio::sync::{mpsc, Semaphore};

/// What the action server answers.
#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

struct ActionState {
    replies: Mutex<Vec<Reply>>,
    default: Reply,
    received: mpsc::UnboundedSender<Value>,
    /// Requests wait for a permit when the server is held.
    gate: Arc<Semaphore>,
    held: bool,
}

/// A custom action server on a random loopback port. Every request is reported on
/// `received` (its JSON body); when started held, each answer waits for [`release`].
pub struct ActionServer {
    pub url: String,
    pub received: mpsc::UnboundedReceiver<Value>,
    gate: Arc<Semaphore>,
}

impl ActionServer {
    /// Answers `default` to every call, after the queued `replies` are used up.
    pub async fn start(replies: Vec<Reply>, default: Reply, held: bool) -> ActionServer {
        let (tx, rx) = mpsc::unbounded_channel();
        let gate = Arc::new(Semaphore::new(0));
        let state = Arc::new(ActionState {
            replies: Mutex::new(replies.into_iter().rev().collect()),
            default,
            received: tx,
            gate: gate.clone(),
            held,
        });
        let app = Router::new()
            .route("/webhook", post(answer))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/webhook", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        ActionServer {
            url,
            received: rx,
            gate,
        }
    }

    /// Lets one held request answer.
    pub fn release(&self) {
        self.gate.add_permits(1);
    }

    /// endpoints.yml pointing at this server.
    pub fn endpoints(&self) -> String {
        format!(
            "action_endpoint:\n  url: \"{}\"\ntracker_store:\n  type: SQL\n  dialect: sqlite\n  db: conversations.db\n",
            self.url
        )
    }
}

async fn answer(
    State(state): State<Arc<ActionState>>,
    Json(body): Json<Value>,
) -> impl IntoResponse {
    let _ = state.received.send(body);
    if state.held {
        if let Ok(permit) = state.gate.acquire().await {
            permit.forget();
        }
    }
    let reply = state
        .replies
        .lock()
        .unwrap()
        .pop()
        .unwrap_or_else(|| state.default.clone());
    (
        StatusCode::from_u16(reply.status).unwrap(),
        Json(reply.body),
    )
}

/// The sum of the samples of `name` whose labels include all of `labels`.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut total = 0.0;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (label_text, value) = if let Some(inner) = rest.strip_prefix('{') {
            let Some(end) = inner.rfind('}') else {
                continue;
            };
            (&inner[..end], inner[end + 1..].trim())
        } else if rest.starts_with(' ') {
            ("", rest.trim())
        } else {
            continue;
        };
        let all = labels
            .iter()
            .all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")));
        if all {
            total += value.parse::<f64>().unwrap_or(0.0);
        }
    }
    total
}

/// Sends a signal to a process.
pub fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}
