//! The action server of the `action` scenario: either a fast one inside this process
//! (so that palaver's own cost per custom action is what shows), or a real `rasa_sdk`
//! server started with Python.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::ValueEnum;
use serde_json::{json, Value};

/// Which action server answers `action_bench`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// An axum server in the benchmark process that answers at once.
    Fast,
    /// `python -m rasa_sdk` with a one-action `actions.py`.
    RasaSdk,
}

impl Kind {
    /// The name in notes and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Fast => "fast in-process",
            Kind::RasaSdk => "rasa_sdk",
        }
    }
}

/// The custom action both servers run: one slot event and one message, as a typical
/// action does.
const ACTIONS_PY: &str = r#"from rasa_sdk import Action
from rasa_sdk.events import SlotSet


class ActionBench(Action):
    def name(self):
        return "action_bench"

    def run(self, dispatcher, tracker, domain):
        dispatcher.utter_message(text="done")
        return [SlotSet("name", "acted")]
"#;

/// A running action server; stopped when dropped.
pub struct ActionServer {
    /// The webhook URL for `action_endpoint`.
    pub url: String,
    child: Option<Child>,
    task: Option<tokio::task::JoinHandle<()>>,
}

async fn fast_webhook(Json(_body): Json<Value>) -> Json<Value> {
    Json(json!({
        "events": [{"event": "slot", "timestamp": null, "name": "name", "value": "acted"}],
        "responses": [{"text": "done"}]
    }))
}

impl ActionServer {
    /// Starts the action server of `kind`; `dir` holds the rasa_sdk actions package.
    pub async fn start(kind: Kind, python: &str, dir: &Path) -> Result<ActionServer> {
        match kind {
            Kind::Fast => {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .context("binding the fast action server")?;
                let addr = listener.local_addr()?;
                let app = Router::new()
                    .route("/webhook", post(fast_webhook))
                    .route("/health", get(|| async { Json(json!({"status": "ok"})) }));
                let task = tokio::spawn(async move {
                    let _ = axum::serve(listener, app).await;
                });
                Ok(ActionServer {
                    url: format!("http://{addr}/webhook"),
                    child: None,
                    task: Some(task),
                })
            }
            Kind::RasaSdk => {
                let actions = dir.join("actions");
                std::fs::create_dir_all(&actions)
                    .with_context(|| format!("creating {}", actions.display()))?;
                std::fs::write(actions.join("__init__.py"), "")?;
                std::fs::write(actions.join("actions.py"), ACTIONS_PY)?;
                let port = std::net::TcpListener::bind("127.0.0.1:0")?
                    .local_addr()?
                    .port();
                let mut child = Command::new(python)
                    .current_dir(dir)
                    .args(["-m", "rasa_sdk", "--actions", "actions", "--port"])
                    .arg(port.to_string())
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .with_context(|| format!("starting rasa_sdk with {python}"))?;
                let client = reqwest::Client::new();
                let health = format!("http://127.0.0.1:{port}/health");
                let started = Instant::now();
                loop {
                    if let Some(status) = child.try_wait()? {
                        bail!("rasa_sdk exited ({status}); is rasa-sdk installed for {python}?");
                    }
                    if let Ok(r) = client.get(&health).send().await {
                        if r.status().is_success() {
                            break;
                        }
                    }
                    if started.elapsed() > Duration::from_secs(60) {
                        let _ = child.kill();
                        bail!("rasa_sdk did not answer {health} within 60 s");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Ok(ActionServer {
                    url: format!("http://127.0.0.1:{port}/webhook"),
                    child: Some(child),
                    task: None,
                })
            }
        }
    }
}

impl Drop for ActionServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}
