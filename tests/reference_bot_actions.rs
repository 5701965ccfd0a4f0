//! The reference bot's custom actions served by a real `rasa_sdk` action server: slots
//! of several types set by an action, a message with buttons and a custom payload, the
//! form, and the human-handoff recipe (pause from a custom action; resume + followup
//! posted by an ops script) end to end.

mod common;

use std::path::{Path, PathBuf};

use common::rasa_sdk::ActionServer;
use common::{Options, Server};
use serde_json::{json, Value};

fn reference_bot() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference_bot")
}

async fn start() -> Option<(Server, ActionServer)> {
    let actions = ActionServer::start(&reference_bot()).await?;
    let server = Server::with(Options {
        bot: Some(reference_bot()),
        endpoints: Some(actions.endpoints_yml()),
        ..Options::default()
    })
    .await;
    Some((server, actions))
}

async fn webhook(server: &Server, sender: &str, message: &str) -> Vec<Value> {
    server.say(sender, message).await
}

fn texts(messages: &[Value]) -> Vec<&str> {
    messages.iter().filter_map(|m| m["text"].as_str()).collect()
}

#[tokio::test]
async fn an_action_sets_slots_of_several_types() {
    let Some((server, _actions)) = start().await else {
        return;
    };
    let out = webhook(&server, "profile", "/set_profile").await;
    assert_eq!(texts(&out), ["Your profile is saved."]);
    webhook(&server, "profile", "/set_profile").await;
    let t = server.tracker("profile", "").await;
    assert_eq!(t["slots"]["profile_status"], "complete");
    assert_eq!(t["slots"]["vip"], true);
    assert_eq!(t["slots"]["visits"], 2.0);
}

#[tokio::test]
async fn an_action_sends_buttons_and_a_custom_payload() {
    let Some((server, _actions)) = start().await else {
        return;
    };
    let out = webhook(&server, "options", "/show_options").await;
    // As Rasa's REST channel: the text with its buttons, then the custom payload.
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[0]["text"], "Choose an option:");
    assert_eq!(
        out[0]["buttons"],
        json!([{"title": "Talk to a human", "payload": "/pause_conversation"},
               {"title": "Leave contact", "payload": "/request_contact"}])
    );
    assert_eq!(
        out[1]["custom"],
        json!({"kind": "options", "items": [1, 2], "nested": {"ok": true, "note": null}})
    );
}

#[tokio::test]
async fn the_contact_form_collects_name_and_email() {
    let Some((server, _actions)) = start().await else {
        return;
    };
    let s = "contact";
    assert_eq!(
        texts(&webhook(&server, s, "/request_contact").await),
        ["What is your name?"]
    );
    assert_eq!(
        texts(&webhook(&server, s, r#"/inform{"name": "Ada"}"#).await),
        ["What is your email address?"]
    );
    assert_eq!(
        texts(&webhook(&server, s, r#"/inform{"email": "ada@example.com"}"#).await),
        ["Thanks Ada, we will contact you at ada@example.com."]
    );
}

#[tokio::test]
async fn handoff_pause_then_resume_with_followup() {
    let Some((server, _actions)) = start().await else {
        return;
    };
    let s = "handoff";
    let out = webhook(&server, s, "/pause_conversation").await;
    assert_eq!(
        texts(&out),
        ["Pausing this conversation, with ID: handoff. A human will take over."]
    );
    // While paused: messages are logged, nothing answers.
    assert!(webhook(&server, s, "/greet").await.is_empty());
    assert!(webhook(&server, s, "/mood_great").await.is_empty());
    let t = server.tracker(s, "").await;
    assert_eq!(t["paused"], true);
    let users: Vec<&str> = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "user")
        .filter_map(|e| e["text"].as_str())
        .collect();
    assert_eq!(users, ["/pause_conversation", "/greet", "/mood_great"]);

    // The ops script resumes with a followup.
    let (status, _) = server
        .post_events(
            s,
            &json!([{"event": "resume"}, {"event": "followup", "name": "action_resume_conversation"}]),
            "",
        )
        .await;
    assert_eq!(status, 200);
    // The next message runs the followup first (its message reaches the user), then
    // the bot answers the message, and the conversation stays resumed.
    let out = webhook(&server, s, "/greet").await;
    assert_eq!(
        texts(&out),
        [
            "Resumed this conversation, with ID: handoff.",
            "Hey! How are you?"
        ]
    );
    let t = server.tracker(s, "").await;
    assert_eq!(t["paused"], false);
    assert_eq!(
        texts(&webhook(&server, s, "/bot_challenge").await),
        ["I am a bot, powered by Rasa."]
    );
}
