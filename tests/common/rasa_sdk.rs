//! A real `rasa_sdk` action server for tests: `python -m rasa_sdk --actions actions`
//! in a bot folder, on a random loopback port.
//!
//! The Python interpreter with rasa-sdk installed comes from
//! `PALAVER_TEST_RASA_SDK_PYTHON` (`.ci/run` creates the venv and sets it). When the
//! variable is unset, [`ActionServer::start`] returns `None` and the calling test
//! skips; CI always sets it.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running rasa_sdk action server.
pub struct ActionServer {
    /// `http://127.0.0.1:<port>/webhook`
    pub webhook: String,
    child: Child,
}

impl ActionServer {
    /// Starts `rasa_sdk` serving `bot_dir/actions`; `None` if no interpreter is set.
    pub async fn start(bot_dir: &Path) -> Option<ActionServer> {
        let python = match std::env::var("PALAVER_TEST_RASA_SDK_PYTHON") {
            Ok(p) if !p.is_empty() => p,
            _ => {
                eprintln!("PALAVER_TEST_RASA_SDK_PYTHON is not set: skipping the rasa_sdk test");
                return None;
            }
        };
        let client = reqwest::Client::new();
        for _attempt in 0..5 {
            let port = super::free_port();
            let mut child = Command::new(&python)
                .current_dir(bot_dir)
                .args(["-m", "rasa_sdk", "--actions", "actions", "--port"])
                .arg(port.to_string())
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("cannot start the rasa_sdk action server");
            let health = format!("http://127.0.0.1:{port}/health");
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if let Ok(r) = client.get(&health).send().await {
                    if r.status().is_success() {
                        return Some(ActionServer {
                            webhook: format!("http://127.0.0.1:{port}/webhook"),
                            child,
                        });
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("the rasa_sdk action server did not start");
    }

    /// endpoints.yml pointing palaver at this server.
    pub fn endpoints_yml(&self) -> String {
        format!("action_endpoint:\n  url: \"{}\"\n", self.webhook)
    }
}

impl Drop for ActionServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
