//! Rasa's two-stage fallback: ask to affirm, ask to rephrase, give up — and when the
//! user clarifies, the fallback turns are reverted and the clarified message answered.

mod common;

use std::path::{Path, PathBuf};

use common::{Options, Server};
use serde_json::{json, Value};

fn fallback_bot() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fallback_bot")
}

async fn start() -> Server {
    Server::with(Options {
        bot: Some(fallback_bot()),
        ..Options::default()
    })
    .await
}

async fn say(server: &Server, sender: &str, message: &str) -> Vec<Value> {
    server.say(sender, message).await
}

fn texts(messages: &[Value]) -> Vec<&str> {
    messages.iter().filter_map(|m| m["text"].as_str()).collect()
}

#[tokio::test]
async fn a_clarified_intent_reverts_the_fallback_and_is_answered() {
    let server = start().await;
    let s = "clarify";
    assert_eq!(texts(&say(&server, s, "/greet").await), ["Hello!"]);
    let ask = say(&server, s, "/nlu_fallback").await;
    assert_eq!(texts(&ask), ["Did you mean 'nlu_fallback'?"]);
    assert_eq!(
        ask[0]["buttons"],
        json!([{"title": "Yes", "payload": "/nlu_fallback"}, {"title": "No", "payload": "/out_of_scope"}])
    );
    let t = server.tracker(s, "").await;
    assert_eq!(t["active_loop"]["name"], "action_two_stage_fallback");

    assert_eq!(texts(&say(&server, s, "/greet").await), ["Hello!"]);
    let t = server.tracker(s, "&include_events=APPLIED").await;
    assert_eq!(t["active_loop"], json!({}));
    // The fallback turn is gone from the applied events; the first greeting stays.
    let users: Vec<&str> = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "user")
        .filter_map(|e| e["text"].as_str())
        .collect();
    assert_eq!(users, ["/greet", "/greet"]);
    assert_eq!(t["latest_message"]["intent"]["confidence"], 1.0);
}

#[tokio::test]
async fn two_fallbacks_in_a_row_give_up() {
    let server = start().await;
    let s = "give-up";
    assert_eq!(
        texts(&say(&server, s, "/nlu_fallback").await),
        ["Did you mean 'nlu_fallback'?"]
    );
    assert_eq!(
        texts(&say(&server, s, "/nlu_fallback").await),
        ["Sorry, I give up."]
    );
    let t = server.tracker(s, "").await;
    assert_eq!(t["active_loop"], json!({}));
    // The bot is usable again.
    assert_eq!(texts(&say(&server, s, "/greet").await), ["Hello!"]);
}

#[tokio::test]
async fn deny_then_rephrase_then_a_second_failed_affirmation_gives_up() {
    let server = start().await;
    let s = "rephrase";
    assert_eq!(
        texts(&say(&server, s, "/nlu_fallback").await),
        ["Did you mean 'nlu_fallback'?"]
    );
    assert_eq!(
        texts(&say(&server, s, "/out_of_scope").await),
        ["Can you rephrase?"]
    );
    assert_eq!(
        texts(&say(&server, s, "/nlu_fallback").await),
        ["Did you mean 'nlu_fallback'?"]
    );
    assert_eq!(
        texts(&say(&server, s, "/out_of_scope").await),
        ["Sorry, I give up."]
    );
    let t = server.tracker(s, "").await;
    assert_eq!(t["active_loop"], json!({}));
}
