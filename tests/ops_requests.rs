//! Request ids (`X-Request-ID` echoed or made up, and in the logs) and JSON logs.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{fixture_bot, Server};
use serde_json::{json, Value};

#[tokio::test]
async fn responses_carry_the_request_id() {
    let s = Server::start().await;
    let given = s
        .client
        .get(s.url("/version"))
        .header("x-request-id", "trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-request-id"], "trace-42");
    let made = s.client.get(s.url("/version")).send().await.unwrap();
    let id = made.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "{id}");
    let other = s.client.get(s.url("/nowhere")).send().await.unwrap();
    assert_eq!(other.status(), 404);
    let second = other.headers()["x-request-id"].to_str().unwrap();
    assert_ne!(second, id, "each request gets its own id");
}

#[tokio::test]
async fn json_logs_name_the_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_palaver"))
        .current_dir(dir.path())
        .arg("run")
        .arg(fixture_bot())
        .args(["--port", &port.to_string(), "--interface", "127.0.0.1"])
        .env("PALAVER_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.get(&base).send().await.is_err() {
        assert!(Instant::now() < deadline, "palaver did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A REST message without text is logged as an error inside the request.
    let resp = client
        .post(format!("{base}/webhooks/rest/webhook"))
        .header("x-request-id", "req-json-7")
        .json(&json!({"sender": "gina"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut found = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    while found.is_none() && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            let v: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
            if v["span"]["request_id"] == "req-json-7" {
                found = Some(v);
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let line = found.expect("no log line with the request id");
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["span"]["path"], "/webhooks/rest/webhook");
    assert!(line["fields"]["message"]
        .as_str()
        .unwrap()
        .contains("without text"));
}
