//! Test harness: runs the real `palaver` binary on a random loopback port, in a
//! temporary working directory with a copy of `tests/fixtures/bot`, and talks HTTP
//! to it.

#![allow(dead_code)]

pub mod rasa_sdk;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const TOKEN: &str = "s3cret";
pub const JWT_SECRET: &str = "j3cret";

/// How to start a server.
#[derive(Clone, Default)]
pub struct Options {
    /// Extra `palaver run` arguments.
    pub args: Vec<String>,
    /// Contents of endpoints.yml, if any.
    pub endpoints: Option<String>,
    /// Contents of credentials.yml, if any.
    pub credentials: Option<String>,
    /// Do not pass --enable-api.
    pub no_api: bool,
    /// Do not pass the default token and JWT secret.
    pub open: bool,
    /// The bot folder to copy (default: tests/fixtures/bot).
    pub bot: Option<PathBuf>,
    /// Extra environment variables of the server process.
    pub env: Vec<(String, String)>,
}

/// A running palaver process.
pub struct Server {
    pub base: String,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    pub port: u16,
    options: Options,
    child: Option<Child>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

pub fn fixture_bot() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bot")
}

impl Server {
    /// Starts a server with the token `s3cret` and JWT secret `j3cret`.
    pub async fn start() -> Server {
        Server::with(Options::default()).await
    }

    /// Starts a server with options.
    pub async fn with(options: Options) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let bot = options.bot.clone().unwrap_or_else(fixture_bot);
        copy_dir(&bot, &dir.path().join("bot"));
        if let Some(e) = &options.endpoints {
            std::fs::write(dir.path().join("bot/endpoints.yml"), e).unwrap();
        }
        if let Some(c) = &options.credentials {
            std::fs::write(dir.path().join("bot/credentials.yml"), c).unwrap();
        }
        let mut server = Server {
            base: String::new(),
            client: reqwest::Client::new(),
            dir,
            port: 0,
            options,
            child: None,
        };
        server.spawn().await;
        server
    }

    async fn spawn(&mut self) {
        for _attempt in 0..5 {
            let port = free_port();
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_palaver"));
            cmd.current_dir(self.dir.path())
                .arg("run")
                .arg("bot")
                .args(["--port", &port.to_string(), "--interface", "127.0.0.1"])
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit());
            if !self.options.no_api {
                cmd.arg("--enable-api");
            }
            if !self.options.open {
                cmd.args(["--auth-token", TOKEN, "--jwt-secret", JWT_SECRET]);
            }
            cmd.args(&self.options.args);
            cmd.envs(self.options.env.iter().map(|(k, v)| (k, v)));
            let mut child = cmd.spawn().expect("cannot start palaver");
            self.base = format!("http://127.0.0.1:{port}");
            self.port = port;
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if self.client.get(&self.base).send().await.is_ok() {
                    self.child = Some(child);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("palaver did not start");
    }

    /// Kills the process with SIGKILL (no chance to clean up).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the process again in the same directory.
    pub async fn restart(&mut self) {
        self.kill9();
        self.spawn().await;
    }

    /// The process id (to send it signals).
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(Child::id)
            .expect("the server is not running")
    }

    /// Waits (polling, at most `timeout`) for the process to exit; its status.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    self.child = None;
                    return Some(status);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// `POST /webhooks/rest/webhook` with `{"sender", "message"}`: asserts a 200 and
    /// gives the bot's messages (one place for what most test files need).
    pub async fn say(&self, sender: &str, message: &str) -> Vec<Value> {
        let (status, body) = send(
            self.client
                .post(self.url("/webhooks/rest/webhook"))
                .json(&serde_json::json!({"sender": sender, "message": message})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        body.as_array()
            .cloned()
            .expect("the REST channel answers with a list")
    }

    /// `POST /model/parse` with `{"text"}`: asserts a 200 and gives the parse data.
    pub async fn parse(&self, text: &str) -> Value {
        let (status, body) = send(
            self.client
                .post(self.url(&format!("/model/parse?token={TOKEN}")))
                .json(&serde_json::json!({"text": text})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// `POST /conversations/{id}/tracker/events?token=...` with extra query.
    pub async fn post_events(&self, id: &str, body: &Value, query: &str) -> (u16, Value) {
        let url = self.url(&format!(
            "/conversations/{}/tracker/events?token={TOKEN}{query}",
            enc(id)
        ));
        send(self.client.post(url).json(body)).await
    }

    pub async fn put_events(&self, id: &str, body: &Value, query: &str) -> (u16, Value) {
        let url = self.url(&format!(
            "/conversations/{}/tracker/events?token={TOKEN}{query}",
            enc(id)
        ));
        send(self.client.put(url).json(body)).await
    }

    pub async fn tracker(&self, id: &str, query: &str) -> Value {
        let url = self.url(&format!(
            "/conversations/{}/tracker?token={TOKEN}{query}",
            enc(id)
        ));
        let (status, body) = send(self.client.get(url)).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        send(self.client.get(self.url(path))).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Percent-encodes a conversation id for a path.
pub fn enc(id: &str) -> String {
    percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Sends a request; the body as JSON (or as a JSON string when it is not JSON).
pub async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.expect("request failed");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// Event list summary: `type:name` or `type:text` or `type`.
pub fn summary(tracker: &Value) -> Vec<String> {
    tracker["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .map(|e| {
                    let t = e["event"].as_str().unwrap_or_default();
                    match (
                        e.get("name").and_then(Value::as_str),
                        e.get("text").and_then(Value::as_str),
                    ) {
                        (Some(n), _) => format!("{t}:{n}"),
                        (None, Some(x)) => format!("{t}:{x}"),
                        _ => t.to_owned(),
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn user(intent: &str) -> Value {
    json!({"event": "user", "text": format!("/{intent}"),
        "parse_data": {"intent": {"name": intent, "confidence": 1.0}, "entities": []}})
}

/// A signed HS256 JWT with the given claims.
pub fn jwt(claims: Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}
