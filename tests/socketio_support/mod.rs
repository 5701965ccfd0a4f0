//! Real socket.io clients for the socket.io tests: `tests/browser/sio_driver.js`
//! (socket.io-client 4 and 2 from npm) driven over stdin/stdout.
//!
//! The clients need `npm ci` in `tests/browser`. Without it the tests are skipped,
//! unless `PALAVER_TEST_SOCKETIO_CLIENT` is set (as `.ci/run` does): then a missing
//! client is a failure.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// How long to wait for one report before failing.
const WAIT: Duration = Duration::from_secs(15);

pub fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Whether the npm packages are there; panics when CI says they must be.
pub fn clients_available() -> bool {
    let ok = browser_dir().join("node_modules/socket.io-client").is_dir()
        && browser_dir()
            .join("node_modules/socket.io-client-v2")
            .is_dir();
    if !ok {
        assert!(
            std::env::var_os("PALAVER_TEST_SOCKETIO_CLIENT").is_none(),
            "PALAVER_TEST_SOCKETIO_CLIENT is set but tests/browser/node_modules is missing: run `npm ci` in tests/browser"
        );
        eprintln!("skipped: no socket.io client (run `npm ci` in tests/browser)");
    }
    ok
}

/// A node process holding any number of socket.io clients, each with an id.
pub struct Clients {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    /// Reports read but not yet asked for.
    seen: VecDeque<Value>,
    url: String,
}

impl Clients {
    /// Starts the driver for a server at `url`; `None` (test skipped) without clients.
    pub async fn start(url: &str) -> Option<Clients> {
        if !clients_available() {
            return None;
        }
        let mut child = Command::new("node")
            .arg(browser_dir().join("sio_driver.js"))
            .current_dir(browser_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("cannot start node");
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut clients = Clients {
            child,
            stdin,
            lines,
            seen: VecDeque::new(),
            url: url.to_owned(),
        };
        let ready = clients.read().await;
        assert_eq!(ready, json!({"ready": true}));
        Some(clients)
    }

    async fn read(&mut self) -> Value {
        let line = tokio::time::timeout(WAIT, self.lines.next_line())
            .await
            .expect("no report from the socket.io client in time")
            .expect("reading the socket.io client")
            .expect("the socket.io client exited");
        let v: Value = serde_json::from_str(&line).expect("a JSON report");
        eprintln!("sio report: {v}");
        assert!(v.get("error").is_none(), "socket.io client: {v}");
        v
    }

    /// Sends one command.
    pub async fn send(&mut self, cmd: Value) {
        let mut line = cmd.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// The next report of client `id` for `event`; other reports are kept for later.
    pub async fn next(&mut self, id: &str, event: &str) -> Value {
        let matches = |v: &Value| v["id"] == id && v["event"] == event;
        if let Some(i) = self.seen.iter().position(matches) {
            return self.seen.remove(i).unwrap();
        }
        loop {
            let v = self.read().await;
            if matches(&v) {
                return v;
            }
            self.seen.push_back(v);
        }
    }

    /// The next `bot_uttered` (or another bot event) argument list of client `id`.
    pub async fn bot(&mut self, id: &str, event: &str) -> Vec<Value> {
        self.next(id, event).await["args"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Every report of client `id` for `event` received so far (none are waited for).
    pub fn drain(&mut self, id: &str, event: &str) -> Vec<Value> {
        let (taken, kept): (VecDeque<Value>, VecDeque<Value>) = self
            .seen
            .drain(..)
            .partition(|v| v["id"] == id && v["event"] == event);
        self.seen = kept;
        taken.into_iter().collect()
    }

    /// Connects client `id` with extra options (see sio_driver.js); returns the
    /// `connect` or `connect_error` report.
    pub async fn connect(&mut self, id: &str, options: Value) -> Value {
        let mut cmd = json!({"cmd": "connect", "id": id, "url": self.url});
        if let (Some(c), Some(o)) = (cmd.as_object_mut(), options.as_object()) {
            for (k, v) in o {
                c.insert(k.clone(), v.clone());
            }
        }
        self.send(cmd).await;
        let matches =
            |v: &Value| v["id"] == id && (v["event"] == "connect" || v["event"] == "connect_error");
        if let Some(i) = self.seen.iter().position(matches) {
            return self.seen.remove(i).unwrap();
        }
        loop {
            let v = self.read().await;
            if matches(&v) {
                return v;
            }
            self.seen.push_back(v);
        }
    }

    /// Connects and asserts it worked; returns the socket id.
    pub async fn connected(&mut self, id: &str, options: Value) -> String {
        let r = self.connect(id, options).await;
        assert_eq!(r["event"], "connect", "{r}");
        r["sid"].as_str().unwrap().to_owned()
    }

    /// Emits an event with arguments.
    pub async fn emit(&mut self, id: &str, event: &str, args: Value) {
        self.send(json!({"cmd": "emit", "id": id, "event": event, "args": args}))
            .await;
    }

    /// Emits an event asking for an ack, and waits for the ack's arguments.
    pub async fn emit_acked(&mut self, id: &str, event: &str, args: Value) -> Value {
        self.send(json!({"cmd": "emit", "id": id, "event": event, "args": args, "ack": true}))
            .await;
        self.next(id, "ack").await["args"].clone()
    }

    /// Asks for a session and returns the confirmed id.
    pub async fn session(&mut self, id: &str, session_id: Value) -> Value {
        self.emit(id, "session_request", json!([{ "session_id": session_id }]))
            .await;
        let confirm = self.next(id, "session_confirm").await;
        confirm["args"][0].clone()
    }

    /// Disconnects client `id`.
    pub async fn disconnect(&mut self, id: &str) {
        self.send(json!({"cmd": "disconnect", "id": id})).await;
    }

    /// Stops the driver.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
