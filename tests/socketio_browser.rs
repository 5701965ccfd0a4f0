//! Browser tests: headless Chromium (Debian's `chromium`) driven by playwright-core from
//! npm (`tests/browser`), against palaver running the example handoff bot
//! (`examples/handoff_bot`) with its custom actions on a real rasa_sdk action server.
//!
//! 1. `tests/browser/webchat_handoff.js`: a page embedding rasa-webchat from npm,
//!    unchanged, greets the bot, is handed to a human, receives the agent's answer
//!    pushed from the console, is resumed.
//! 2. `tests/browser/console_agent.js`: an agent drives the console on a phone-sized
//!    screen with the keyboard: finds the paused conversation, answers, resumes.
//!
//! Screenshots go to `test-artifacts/` (gitignored). The tests need `npm ci` in
//! tests/browser, `/usr/bin/chromium` (or `CHROMIUM`) and `PALAVER_TEST_RASA_SDK_PYTHON`;
//! without them they are skipped, unless `PALAVER_TEST_BROWSER` is set (as `.ci/run`
//! does): then anything missing is a failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::rasa_sdk::ActionServer;
use common::{Options, Server, TOKEN};
use serde_json::{json, Value};

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn example_bot() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/handoff_bot")
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Whether everything the browser tests need is here; panics when CI says it must be.
fn browser_available() -> bool {
    let mut missing = Vec::new();
    if !browser_dir().join("node_modules/playwright-core").is_dir()
        || !browser_dir().join("node_modules/rasa-webchat").is_dir()
    {
        missing.push("tests/browser/node_modules (run `npm ci` in tests/browser)");
    }
    if !chromium().is_file() {
        missing.push("/usr/bin/chromium (apt-get install chromium)");
    }
    if std::env::var_os("PALAVER_TEST_RASA_SDK_PYTHON").is_none() {
        missing.push("PALAVER_TEST_RASA_SDK_PYTHON");
    }
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("PALAVER_TEST_BROWSER").is_none(),
        "PALAVER_TEST_BROWSER is set but these are missing: {missing:?}"
    );
    eprintln!("skipped: no browser test setup ({missing:?})");
    false
}

/// palaver on the example bot, its actions on rasa_sdk, CORS open for the widget's page.
async fn handoff_bot() -> Option<(Server, ActionServer)> {
    if !browser_available() {
        return None;
    }
    let actions = ActionServer::start(&example_bot()).await?;
    let credentials = std::fs::read_to_string(example_bot().join("credentials.yml"))
        .expect("examples/handoff_bot/credentials.yml");
    let server = Server::with(Options {
        bot: Some(example_bot()),
        endpoints: Some(actions.endpoints_yml()),
        credentials: Some(credentials),
        args: vec!["--cors".into(), "*".into()],
        ..Options::default()
    })
    .await;
    Some((server, actions))
}

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("cannot create test-artifacts/");
    dir
}

/// Runs one browser script; its last stdout line (JSON) on success.
async fn run_script(script: &str, server: &Server, extra_env: &[(&str, &str)]) -> Value {
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(browser_dir().join(script))
        .current_dir(browser_dir())
        .env("PALAVER_URL", &server.base)
        .env("PALAVER_TOKEN", TOKEN)
        .env("PALAVER_ARTIFACTS", artifacts())
        .env("CHROMIUM", chromium())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let run = cmd.spawn().expect("cannot start node");
    let out = tokio::time::timeout(Duration::from_secs(90), run.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{script} did not finish in 90 s"))
        .expect("node failed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{script} failed: {stdout}");
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|_| panic!("{script} printed {stdout}"))
}

fn events(tracker: &Value) -> Vec<Value> {
    tracker["events"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn webchat_user_is_handed_to_a_human_and_back() {
    let Some((s, _actions)) = handoff_bot().await else {
        return;
    };
    let result = run_script("webchat_handoff.js", &s, &[]).await;
    let id = result["session_id"].as_str().expect("a session id");
    let tracker = s.tracker(id, "&include_events=ALL").await;
    let evs = events(&tracker);
    // The user spoke through socket.io, with rasa-webchat's customData as metadata.
    let first_user = evs
        .iter()
        .find(|e| e["event"] == "user")
        .expect("a user event");
    assert_eq!(first_user["input_channel"], "socketio");
    assert_eq!(first_user["metadata"]["language"], "en", "{first_user}");
    // The agent's answer is a bot event naming the agent.
    let answer = evs
        .iter()
        .find(|e| e["event"] == "bot" && e["metadata"]["human_agent"] == "Grace")
        .unwrap_or_else(|| panic!("no answer of the agent in {evs:?}"));
    assert!(answer["text"]
        .as_str()
        .unwrap()
        .contains("Grace from support"));
    // Paused, then resumed with the followup run at once.
    let kinds: Vec<&str> = evs.iter().filter_map(|e| e["event"].as_str()).collect();
    let pause = kinds.iter().position(|k| *k == "pause").expect("paused");
    let resume = kinds.iter().rposition(|k| *k == "resume").expect("resumed");
    assert!(pause < resume);
    assert_eq!(tracker["paused"], json!(false));
    assert!(evs
        .iter()
        .any(|e| e["event"] == "action" && e["name"] == "action_resume_conversation"));
}

#[tokio::test]
async fn an_agent_drives_the_console_with_the_keyboard_on_a_phone() {
    let Some((s, _actions)) = handoff_bot().await else {
        return;
    };
    // Two older conversations that the bot handles, so the list has an order to show.
    for sender in ["older-1", "older-2"] {
        let (status, _) = common::send(
            s.client
                .post(s.url("/webhooks/rest/webhook"))
                .json(&json!({"sender": sender, "message": "/greet"})),
        )
        .await;
        assert_eq!(status, 200);
    }
    let id = "web-user-42";
    let result = run_script("console_agent.js", &s, &[("SESSION_ID", id)]).await;
    let texts: Vec<&str> = result["received"]
        .as_array()
        .expect("received")
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    let answer = texts
        .iter()
        .position(|t| t.contains("I have reset your password"))
        .expect("the user got the agent's answer");
    let back = texts
        .iter()
        .position(|t| t.contains("The bot is back"))
        .expect("the user heard the bot is back");
    assert!(answer < back, "{texts:?}");
    let tracker = s.tracker(id, "&include_events=ALL").await;
    let evs = events(&tracker);
    let agent_answers: Vec<&Value> = evs
        .iter()
        .filter(|e| e["event"] == "bot" && e["metadata"]["human_agent"] == "Ada")
        .collect();
    assert_eq!(agent_answers.len(), 1, "{evs:?}");
    // The list puts it first now too, unpaused.
    let (status, page) = s
        .get(&format!("/conversations?token={TOKEN}&limit=1"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["conversations"][0]["sender_id"], id, "{page}");
    assert_eq!(page["conversations"][0]["paused"], false);
    assert_eq!(page["total"], 3);
}
