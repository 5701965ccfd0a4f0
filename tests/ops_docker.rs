//! The Dockerfile's runtime half, checked without a Docker engine: the image's ENV,
//! ENTRYPOINT + CMD (with `/bot` pointing at examples/handoff_bot, as the image copies
//! it) start the server on the example bot, and its HEALTHCHECK command passes against
//! it. (`docker build` itself cannot run here; `.ci/run` lints the file with hadolint.)

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The Dockerfile's instructions after its last `FROM`, continuation lines joined.
fn final_stage() -> Vec<(String, String)> {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile")).unwrap();
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(start) = line.strip_suffix('\\') {
            current.push_str(start);
            current.push(' ');
        } else {
            current.push_str(line);
            joined.push(std::mem::take(&mut current));
        }
    }
    let last_from = joined.iter().rposition(|l| l.starts_with("FROM ")).unwrap();
    joined[last_from..]
        .iter()
        .map(|l| {
            let (op, rest) = l.split_once(' ').unwrap();
            (op.to_owned(), rest.trim().to_owned())
        })
        .collect()
}

fn exec_form(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not exec form ({e}): {text}"))
}

#[tokio::test]
async fn the_image_command_serves_the_example_bot_and_passes_its_healthcheck() {
    let stage = final_stage();
    let get = |op: &str| -> Vec<&String> {
        stage
            .iter()
            .filter(|(o, _)| o == op)
            .map(|(_, r)| r)
            .collect()
    };
    assert!(get("USER")[0].starts_with("65532"), "runs as non-root");
    assert_eq!(get("COPY").len(), 3);
    assert!(get("COPY")
        .iter()
        .any(|c| c.as_str() == "examples/handoff_bot /bot"));
    let mut env: HashMap<String, String> = HashMap::new();
    for e in get("ENV") {
        for pair in e.split_whitespace() {
            let (k, v) = pair.split_once('=').unwrap();
            env.insert(k.to_owned(), v.to_owned());
        }
    }
    let entrypoint = exec_form(get("ENTRYPOINT")[0]);
    assert_eq!(entrypoint, ["/usr/local/bin/palaver"]);
    let healthcheck = get("HEALTHCHECK")[0];
    let health_cmd = exec_form(&healthcheck[healthcheck.find("CMD ").unwrap() + 4..]);
    assert_eq!(health_cmd[0], "/usr/local/bin/palaver");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/handoff_bot");
    let cmd: Vec<String> = exec_form(get("CMD")[0])
        .into_iter()
        .map(|a| {
            if a == "/bot" {
                example.display().to_string()
            } else {
                a
            }
        })
        .collect();

    // The container's port is mapped to a free one here; the rest of ENV as written.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    env.insert("PALAVER_PORT".into(), port.to_string());
    env.insert("PALAVER_INTERFACE".into(), "127.0.0.1".into());
    let workdir = tempfile::tempdir().unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_palaver"))
        .args(&cmd)
        .envs(&env)
        .current_dir(workdir.path())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.get(&base).send().await.is_err() {
        assert!(
            server.try_wait().unwrap().is_none(),
            "the image's command exited"
        );
        assert!(Instant::now() < deadline, "palaver did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let health = Command::new(env!("CARGO_BIN_EXE_palaver"))
        .args(&health_cmd[1..])
        .envs(&env)
        .output()
        .unwrap();
    let answer: Value = client
        .post(format!("{base}/webhooks/rest/webhook"))
        .json(&json!({"sender": "docker", "message": "/greet"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert!(health.status.success(), "{health:?}");
    assert_eq!(
        answer,
        json!([{"recipient_id": "docker", "text": "Hi! How can I help?"}])
    );
    // Conversations went to the working directory (the image's /data volume).
    assert!(workdir.path().join("palaver.db").exists());
    // The healthcheck fails when nothing listens.
    let down = Command::new(env!("CARGO_BIN_EXE_palaver"))
        .args(&health_cmd[1..])
        .envs(&env)
        .output()
        .unwrap();
    assert!(!down.status.success());
}
