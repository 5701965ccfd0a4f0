//! An action server that misbehaves: down, slower than the timeout, answering garbage
//! or events that do not validate. In each case the user message is kept, the action
//! is logged without its events (as Rasa does), nothing half-applied, and the
//! conversation goes on.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use axum::routing::post;
use axum::Router;
use common::{Options, Server};
use serde_json::{json, Value};

fn forms_bot() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/forms_bot")
}

/// Serves `router` on a random loopback port; returns its webhook URL.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}/webhook")
}

async fn start(endpoints: String) -> Server {
    Server::with(Options {
        bot: Some(forms_bot()),
        endpoints: Some(endpoints),
        ..Options::default()
    })
    .await
}

async fn say(server: &Server, sender: &str, message: &str) -> Vec<String> {
    server
        .say(sender, message)
        .await
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The event types (and action names) after the latest user message.
async fn after_user(server: &Server, sender: &str) -> Vec<String> {
    let t = server.tracker(sender, "").await;
    let events = t["events"].as_array().cloned().unwrap_or_default();
    let start = events
        .iter()
        .rposition(|e| e["event"] == "user")
        .expect("the user message is stored");
    events[start..]
        .iter()
        .map(|e| match e["event"].as_str().unwrap_or_default() {
            "action" => format!("action:{}", e["name"].as_str().unwrap_or_default()),
            other => other.to_owned(),
        })
        .collect()
}

/// The action is logged without events, then the bot listens; the next message works.
async fn assert_failed_action_is_harmless(server: &Server, sender: &str) {
    assert_eq!(
        after_user(server, sender).await,
        [
            "user",
            "user_featurization",
            "action:action_crash",
            "action:action_listen"
        ]
    );
    let t = server.tracker(sender, "").await;
    assert_eq!(t["slots"]["referral"], Value::Null);
    assert_eq!(say(server, sender, "/greet").await, ["Hello!"]);
}

#[tokio::test]
async fn action_server_down() {
    // A port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let server = start(format!(
        "action_endpoint:\n  url: \"http://127.0.0.1:{port}/webhook\"\n"
    ))
    .await;
    assert!(say(&server, "down", "/crash").await.is_empty());
    assert_failed_action_is_harmless(&server, "down").await;
}

#[tokio::test]
async fn action_server_slower_than_the_timeout() {
    let url = serve(Router::new().route(
        "/webhook",
        post(|| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            axum::Json(json!({"events": [], "responses": [{"text": "too late"}]}))
        }),
    ))
    .await;
    let server = start(format!(
        "action_endpoint:\n  url: \"{url}\"\n  timeout: 1\n"
    ))
    .await;
    let started = Instant::now();
    assert!(say(&server, "slow", "/crash").await.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the call was not cut off by the timeout"
    );
    assert_failed_action_is_harmless(&server, "slow").await;
}

#[tokio::test]
async fn action_server_answers_garbage() {
    let url = serve(Router::new().route(
        "/webhook",
        post(|| async { "<html>Internal error, but 200</html>" }),
    ))
    .await;
    let server = start(format!("action_endpoint:\n  url: \"{url}\"\n")).await;
    assert!(say(&server, "garbage", "/crash").await.is_empty());
    assert_failed_action_is_harmless(&server, "garbage").await;
}

#[tokio::test]
async fn action_server_answers_an_invalid_event() {
    // One good event, one bad: nothing of the answer is applied, no message is sent.
    let url = serve(Router::new().route(
        "/webhook",
        post(|| async {
            axum::Json(json!({
                "events": [
                    {"event": "slot", "name": "referral", "value": "half"},
                    {"event": "slot", "value": "no name"}
                ],
                "responses": [{"text": "must not be sent"}]
            }))
        }),
    ))
    .await;
    let server = start(format!("action_endpoint:\n  url: \"{url}\"\n")).await;
    assert!(say(&server, "invalid", "/crash").await.is_empty());
    assert_failed_action_is_harmless(&server, "invalid").await;
}

#[tokio::test]
async fn action_server_answers_404_for_an_unknown_action() {
    let url = serve(Router::new().route(
        "/webhook",
        post(|| async {
            (
                axum::http::StatusCode::NOT_FOUND,
                axum::Json(json!({"error": "No registered action found for name 'action_crash'.", "action_name": "action_crash"})),
            )
        }),
    ))
    .await;
    let server = start(format!("action_endpoint:\n  url: \"{url}\"\n")).await;
    assert!(say(&server, "unknown", "/crash").await.is_empty());
    assert_failed_action_is_harmless(&server, "unknown").await;
}

#[tokio::test]
async fn responses_name_domain_responses_filled_with_kwargs() {
    // What rasa_sdk sends for `dispatcher.utter_message(response="utter_booked", guests=3, ...)`
    // and a plain message with buttons and an image: kwargs fill the response's
    // placeholders, before the slots.
    let url = serve(Router::new().route(
        "/webhook",
        post(|axum::Json(call): axum::Json<Value>| async move {
            if call["next_action"] != "action_crash" {
                // action_extract_slots calls the slot mapping actions too.
                return axum::Json(json!({"events": [], "responses": []}));
            }
            axum::Json(json!({
                "events": [{"event": "slot", "name": "referral", "value": "from-action"}],
                "responses": [
                    {"text": null, "buttons": [], "elements": [], "custom": {}, "template": "utter_booked",
                     "response": "utter_booked", "image": null, "attachment": null,
                     "guests": 3, "departure": "Oslo", "destination": "Rome", "email": "ada@example.com"},
                    {"text": "Pick one", "buttons": [{"title": "A", "payload": "/greet"}], "elements": [],
                     "custom": {}, "template": null, "response": null, "image": "https://example.com/a.png",
                     "attachment": null}
                ]
            }))
        }),
    ))
    .await;
    let server = start(format!("action_endpoint:\n  url: \"{url}\"\n")).await;
    let (status, body) = common::send(
        server
            .client
            .post(server.url("/webhooks/rest/webhook"))
            .json(&json!({"sender": "kwargs", "message": "/crash"})),
    )
    .await;
    assert_eq!(status, 200);
    let messages = body.as_array().expect("a list");
    assert_eq!(
        messages[0]["text"],
        "Booked 3 seats from Oslo to Rome for ada@example.com."
    );
    assert_eq!(messages[1]["text"], "Pick one");
    assert_eq!(
        messages[1]["buttons"],
        json!([{"title": "A", "payload": "/greet"}])
    );
    assert!(
        messages
            .iter()
            .any(|m| m["image"] == "https://example.com/a.png"),
        "{messages:?}"
    );
    let t = server.tracker("kwargs", "").await;
    assert_eq!(t["slots"]["referral"], "from-action");
    let bots: Vec<&Value> = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "bot")
        .collect();
    assert_eq!(bots.len(), 2, "{bots:#?}");
    assert_eq!(bots[0]["metadata"]["utter_action"], "utter_booked");
}
