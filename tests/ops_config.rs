//! Configuration: `palaver init` then `palaver run` answers; every flag has an environment
//! variable; configuration mistakes stop the server with an error that says what to fix.

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use clap::CommandFactory;
use common::fixture_bot;
use serde_json::{json, Value};

fn palaver(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_palaver"));
    cmd.current_dir(dir).env("RUST_LOG", "warn");
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `base` answers; panics if the process exits first.
async fn wait_up(child: &mut Child, base: &str) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.get(base).send().await.is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("palaver exited: {status}");
        }
        assert!(Instant::now() < deadline, "palaver did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn init_then_run_answers_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = palaver(dir.path())
        .args(["init", "mybot"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("palaver run mybot"), "{stdout}");
    // The bot passes Rasa's data checks.
    let out = palaver(dir.path())
        .args(["data", "validate", "mybot"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // A second init does not overwrite it.
    let out = palaver(dir.path())
        .args(["init", "mybot"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));

    let port = free_port();
    let child = palaver(dir.path())
        .args([
            "run",
            "mybot",
            "--port",
            &port.to_string(),
            "-i",
            "127.0.0.1",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Killed(child);
    let base = format!("http://127.0.0.1:{port}");
    wait_up(&mut child.0, &base).await;
    let client = reqwest::Client::new();
    let answer: Value = client
        .post(format!("{base}/webhooks/rest/webhook"))
        .json(&json!({"sender": "newcomer", "message": "/greet"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        answer,
        json!([{"recipient_id": "newcomer", "text": "Hey! How are you?"}])
    );
    let answer: Value = client
        .post(format!("{base}/webhooks/rest/webhook"))
        .json(&json!({"sender": "newcomer", "message": "/mood_great"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        answer,
        json!([{"recipient_id": "newcomer", "text": "Great, carry on!"}])
    );
}

#[test]
fn every_run_flag_has_an_environment_variable() {
    let cli = palaver::config::Cli::command();
    for sub in ["run", "shell"] {
        let cmd = cli.find_subcommand(sub).unwrap();
        let mut count = 0;
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            let env = arg
                .get_env()
                .unwrap_or_else(|| panic!("`palaver {sub}` flag '{id}' has no env var"));
            let expected = format!("PALAVER_{}", id.to_ascii_uppercase());
            assert_eq!(env.to_str(), Some(expected.as_str()), "flag '{id}'");
            count += 1;
        }
        assert!(count >= 18, "{count}");
    }
}

#[tokio::test]
async fn flags_can_be_given_as_environment_variables() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = palaver(dir.path())
        .arg("run")
        .env("PALAVER_PROJECT", fixture_bot())
        .env("PALAVER_PORT", port.to_string())
        .env("PALAVER_INTERFACE", "127.0.0.1")
        .env("PALAVER_ENABLE_API", "true")
        .env("PALAVER_AUTH_TOKEN", "envtoken")
        .env("PALAVER_METRICS", "true")
        .env("PALAVER_SHUTDOWN_TIMEOUT", "2.5")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Killed(child);
    let base = format!("http://127.0.0.1:{port}");
    wait_up(&mut child.0, &base).await;
    let client = reqwest::Client::new();
    let status = |path: &str| {
        let client = client.clone();
        let url = format!("{base}{path}");
        async move { client.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status("/status").await, 401);
    assert_eq!(status("/status?token=envtoken").await, 200);
    assert_eq!(status("/metrics").await, 200);
    // `palaver health` finds the server through PALAVER_PORT.
    let out = palaver(dir.path())
        .arg("health")
        .env("PALAVER_PORT", port.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// Runs `palaver run` in a copy of the fixture bot changed by `setup`; it must fail at
/// once, and its error must contain every piece of `expected`.
fn fails_with(setup: impl FnOnce(&Path), args: &[&str], expected: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let bot = dir.path().join("bot");
    copy_dir(&fixture_bot(), &bot);
    setup(&bot);
    let mut cmd = palaver(dir.path());
    cmd.args(["run", "--port", "0", "-i", "127.0.0.1"]);
    if args.first().is_none_or(|a| a.starts_with('-')) {
        cmd.arg("bot");
    }
    cmd.args(args);
    let out: Output = cmd.output().unwrap();
    assert!(!out.status.success(), "should fail: {args:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for e in expected {
        assert!(stderr.contains(e), "expected '{e}' in: {stderr}");
    }
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

fn write(bot: &Path, name: &str, text: &str) {
    std::fs::write(bot.join(name), text).unwrap();
}

#[test]
fn configuration_mistakes_are_explained() {
    // No such project folder.
    fails_with(
        |_| {},
        &["nowhere"],
        &["'nowhere' does not exist", "palaver init"],
    );
    // endpoints.yml: broken YAML, the wrong shape, an action endpoint without url, an
    // unknown tracker store, a variable that is not set.
    fails_with(
        |b| write(b, "endpoints.yml", "action_endpoint:\n  url: \"x\n"),
        &[],
        &["endpoints.yml"],
    );
    fails_with(
        |b| write(b, "endpoints.yml", "- tracker_store\n"),
        &[],
        &["endpoints.yml", "must be a mapping"],
    );
    fails_with(
        |b| write(b, "endpoints.yml", "action_endpoint:\n  token: x\n"),
        &[],
        &["action_endpoint needs a 'url'"],
    );
    fails_with(
        |b| write(b, "endpoints.yml", "tracker_store:\n  type: cassandra\n"),
        &[],
        &["tracker_store", "cassandra"],
    );
    fails_with(
        |b| {
            write(
                b,
                "endpoints.yml",
                "action_endpoint:\n  url: ${PALAVER_TEST_UNSET_VARIABLE_8}\n",
            )
        },
        &[],
        &["PALAVER_TEST_UNSET_VARIABLE_8"],
    );
    // credentials.yml: the wrong shape, a callback channel without url.
    fails_with(
        |b| write(b, "credentials.yml", "- rest\n"),
        &[],
        &["credentials.yml", "mapping of channel names"],
    );
    fails_with(
        |b| write(b, "credentials.yml", "callback:\n  token: x\n"),
        &[],
        &["credentials.yml", "callback channel needs a 'url'"],
    );
    // Files named by flags that do not exist.
    fails_with(
        |_| {},
        &["--endpoints", "prod.yml"],
        &["--endpoints prod.yml", "no such file"],
    );
    fails_with(
        |_| {},
        &["--credentials", "prod-credentials.yml"],
        &["--credentials prod-credentials.yml", "no such file"],
    );
    // A broken domain names the file and the problem.
    fails_with(
        |b| write(b, "domain.yml", "intents: 5\n"),
        &[],
        &["domain.yml", "intents"],
    );
    // Bad flag values.
    fails_with(
        |_| {},
        &["--shutdown-timeout", "soon"],
        &["not a number of seconds"],
    );
    fails_with(
        |_| {},
        &["--jwt-secret", "k", "--jwt-method", "XS999"],
        &["XS999"],
    );
}
