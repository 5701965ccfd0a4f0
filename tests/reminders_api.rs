//! Reminders over HTTP: scheduled by `POST .../tracker/events?execute_side_effects=true`
//! (and by custom actions), cancelled as Rasa matches them, fired once through the
//! prediction loop, kept across restarts; `trigger_intent` with entities and output
//! channels.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{FixedOffset, Utc};
use common::{send, Options, Server, TOKEN};
use serde_json::{json, Value};

fn reminders_bot() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reminders_bot")
}

async fn start() -> Server {
    Server::with(Options {
        bot: Some(reminders_bot()),
        ..Default::default()
    })
    .await
}

/// `now + secs` as an ISO date-time with the given UTC offset (hours).
fn at_offset(secs: f64, offset_hours: i32) -> String {
    let t = Utc::now() + chrono::Duration::milliseconds((secs * 1000.0) as i64);
    let tz = FixedOffset::east_opt(offset_hours * 3600).unwrap();
    t.with_timezone(&tz)
        .format("%Y-%m-%dT%H:%M:%S%.6f%:z")
        .to_string()
}

fn at(secs: f64) -> String {
    at_offset(secs, 0)
}

fn reminder(name: &str, person: &str, due: String, kill: bool) -> Value {
    json!({"event": "reminder", "intent": "EXTERNAL_reminder", "name": name,
        "entities": [{"entity": "PERSON", "value": person}],
        "date_time": due, "kill_on_user_msg": kill})
}

async fn post(s: &Server, id: &str, body: Value) {
    let (status, out) = s
        .post_events(id, &body, "&execute_side_effects=true&include_events=NONE")
        .await;
    assert_eq!(status, 200, "{out}");
}

async fn say(s: &Server, id: &str, text: &str) -> Value {
    let (status, body) = send(
        s.client
            .post(s.url("/webhooks/rest/webhook"))
            .json(&json!({"sender": id, "message": text})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The external `user` events of a tracker: (intent, entities).
fn externals(tracker: &Value) -> Vec<(String, Value)> {
    tracker["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["event"] == "user" && e["metadata"]["is_external"] == true)
        .map(|e| {
            (
                e["parse_data"]["intent"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                e["parse_data"]["entities"].clone(),
            )
        })
        .collect()
}

fn bot_texts(tracker: &Value) -> Vec<String> {
    tracker["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["event"] == "bot")
        .filter_map(|e| e["text"].as_str().map(str::to_owned))
        .collect()
}

async fn all_events(s: &Server, id: &str) -> Value {
    s.tracker(id, "&include_events=ALL").await
}

/// Polls a conversation until it has `n` external events (or `timeout`).
async fn wait_externals(s: &Server, id: &str, n: usize, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let t = all_events(s, id).await;
        if externals(&t).len() >= n || Instant::now() > deadline {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_scheduled_reminder_fires_once_and_a_cancelled_one_does_not() {
    let s = start().await;
    post(&s, "ada", reminder("call", "Ada", at(1.0), false)).await;
    post(&s, "ada", reminder("other", "Bob", at(1.0), false)).await;
    // Posted without side effects: stored, never scheduled (as Rasa).
    let (status, _) = s
        .post_events("ada", &reminder("quiet", "Cy", at(0.5), false), "")
        .await;
    assert_eq!(status, 200);
    post(
        &s,
        "ada",
        json!({"event": "cancel_reminder", "name": "other"}),
    )
    .await;
    let t = wait_externals(&s, "ada", 1, Duration::from_secs(10)).await;
    // Time for anything else to fire.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let t2 = all_events(&s, "ada").await;
    assert_eq!(t2["events"], t["events"]);
    assert_eq!(
        externals(&t),
        vec![(
            "EXTERNAL_reminder".to_owned(),
            json!([{"entity": "PERSON", "value": "Ada"}])
        )]
    );
    assert_eq!(bot_texts(&t), vec!["Remember to call Ada!"]);
    let user = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "user")
        .unwrap();
    assert_eq!(user["text"], "EXTERNAL: EXTERNAL_reminder");
    assert_eq!(user["parse_data"]["metadata"], json!({"is_external": true}));
    assert_eq!(t["slots"]["PERSON"], "Ada");
}

#[tokio::test]
async fn cancel_by_intent_and_entities_and_everything() {
    let s = start().await;
    let later = || at(2.0);
    post(&s, "c1", reminder("a", "Ada", later(), false)).await;
    post(&s, "c1", reminder("b", "Bob", later(), false)).await;
    post(
        &s,
        "c1",
        json!({"event": "reminder", "intent": "EXTERNAL_other", "name": "c", "date_time": later()}),
    )
    .await;
    // Entities as given (Rasa compares their text form); intent narrows.
    post(
        &s,
        "c1",
        json!({"event": "cancel_reminder", "intent": "EXTERNAL_reminder",
            "entities": [{"entity": "PERSON", "value": "Bob"}]}),
    )
    .await;
    post(
        &s,
        "c1",
        json!({"event": "cancel_reminder", "intent": "EXTERNAL_other"}),
    )
    .await;
    // Everything of another conversation; c1 is not touched (names are per conversation).
    post(&s, "c2", reminder("a", "Zed", later(), false)).await;
    post(&s, "c2", json!({"event": "cancel_reminder"})).await;
    wait_externals(&s, "c1", 1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let t = all_events(&s, "c1").await;
    assert_eq!(bot_texts(&t), vec!["Remember to call Ada!"]);
    assert!(externals(&all_events(&s, "c2").await).is_empty());
}

#[tokio::test]
async fn kill_on_user_msg_both_ways() {
    let s = start().await;
    for (id, kill) in [("killed", true), ("kept", false), ("quiet", true)] {
        post(&s, id, reminder("r", "Ada", at(1.5), kill)).await;
    }
    for id in ["killed", "kept"] {
        assert_eq!(say(&s, id, "/greet").await[0]["text"], "Hello!");
    }
    wait_externals(&s, "kept", 1, Duration::from_secs(10)).await;
    wait_externals(&s, "quiet", 1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let killed = all_events(&s, "killed").await;
    assert!(externals(&killed).is_empty(), "{killed}");
    assert_eq!(bot_texts(&killed), vec!["Hello!"]);
    assert_eq!(
        bot_texts(&all_events(&s, "kept").await),
        vec!["Hello!", "Remember to call Ada!"]
    );
    assert_eq!(
        bot_texts(&all_events(&s, "quiet").await),
        vec!["Remember to call Ada!"]
    );
}

#[tokio::test]
async fn a_restart_drops_the_reminder_and_a_paused_conversation_hears_nothing() {
    let s = start().await;
    post(&s, "restarted", reminder("r", "Ada", at(1.0), false)).await;
    post(&s, "restarted", json!({"event": "restart"})).await;
    post(&s, "paused", reminder("r", "Ada", at(1.0), false)).await;
    post(&s, "paused", json!({"event": "pause"})).await;
    let paused = wait_externals(&s, "paused", 1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // Paused: the external message is logged (and fills slots), no action runs (Rasa).
    assert_eq!(externals(&paused).len(), 1);
    assert!(bot_texts(&paused).is_empty(), "{paused}");
    assert_eq!(paused["slots"]["PERSON"], "Ada");
    assert!(externals(&all_events(&s, "restarted").await).is_empty());
}

#[tokio::test]
async fn past_due_dates_and_offsets_and_names_per_conversation() {
    let s = start().await;
    // In the past: fires at once. With an offset: the instant it names.
    post(&s, "past", reminder("r", "Ada", at(-3600.0), false)).await;
    post(&s, "east", reminder("r", "Bo", at_offset(1.0, 5), false)).await;
    post(&s, "west", reminder("r", "Cy", at_offset(1.0, -7), false)).await;
    let zulu = (Utc::now() + chrono::Duration::milliseconds(800))
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    post(&s, "zulu", reminder("r", "Di", zulu, false)).await;
    // Same name in two conversations: both fire (Rasa would keep only the last).
    let past = wait_externals(&s, "past", 1, Duration::from_secs(5)).await;
    assert_eq!(bot_texts(&past), vec!["Remember to call Ada!"]);
    for (id, who) in [("east", "Bo"), ("west", "Cy"), ("zulu", "Di")] {
        let t = wait_externals(&s, id, 1, Duration::from_secs(10)).await;
        assert_eq!(
            bot_texts(&t),
            vec![format!("Remember to call {who}!")],
            "{id}"
        );
    }
    // The same name again in one conversation replaces the earlier reminder.
    post(&s, "again", reminder("r", "Ed", at(1.0), false)).await;
    post(&s, "again", reminder("r", "Flo", at(1.5), false)).await;
    wait_externals(&s, "again", 1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        bot_texts(&all_events(&s, "again").await),
        vec!["Remember to call Flo!"]
    );
}

#[tokio::test]
async fn a_reminder_survives_a_restart_and_fires_once() {
    let mut s = start().await;
    post(&s, "durable", reminder("soon", "Ada", at(2.0), false)).await;
    post(&s, "durable", reminder("later", "Bob", at(6.0), false)).await;
    post(&s, "durable2", reminder("soon", "Cy", at(2.0), true)).await;
    s.kill9();
    // Down while "soon" falls due.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    s.restart().await;
    let t = wait_externals(&s, "durable", 2, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(all_events(&s, "durable").await["events"], t["events"]);
    assert_eq!(
        bot_texts(&t),
        vec!["Remember to call Ada!", "Remember to call Bob!"]
    );
    // A second restart fires nothing again.
    s.restart().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(all_events(&s, "durable").await["events"], t["events"]);
    assert_eq!(
        bot_texts(&all_events(&s, "durable2").await),
        vec!["Remember to call Cy!"]
    );
}

/// A web server that records what the callback channel posts.
async fn callback_sink() -> (u16, Arc<Mutex<Vec<Value>>>) {
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/bot",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, received)
}

#[tokio::test]
async fn reminders_and_trigger_intent_push_to_the_callback_channel() {
    let (port, received) = callback_sink().await;
    let s = Server::with(Options {
        bot: Some(reminders_bot()),
        credentials: Some(format!(
            "rest:\ncallback:\n  url: http://127.0.0.1:{port}/bot\n"
        )),
        ..Default::default()
    })
    .await;
    // The user talks through the callback channel.
    let resp = s
        .client
        .post(s.url("/webhooks/callback/webhook"))
        .json(&json!({"sender": "cb", "message": "/greet"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // A reminder scheduled for the user's latest channel pushes there when it fires.
    let (status, body) = s
        .post_events(
            "cb",
            &reminder("r", "Ada", at(0.5), false),
            "&execute_side_effects=true&output_channel=latest",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let t = wait_externals(&s, "cb", 1, Duration::from_secs(10)).await;
    assert_eq!(bot_texts(&t), vec!["Hello!", "Remember to call Ada!"]);
    let external = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["metadata"]["is_external"] == true)
        .unwrap();
    assert_eq!(external["input_channel"], "callback");
    // trigger_intent: entities as a {entity: value} shorthand, output_channel=callback.
    let (status, body) = send(
        s.client
            .post(s.url(&format!(
                "/conversations/cb/trigger_intent?token={TOKEN}&output_channel=callback"
            )))
            .json(&json!({"name": "EXTERNAL_reminder", "entities": {"PERSON": "Zoe"}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["messages"],
        json!([{"recipient_id": "cb", "text": "Remember to call Zoe!"}])
    );
    // Entities as a list, collected in the answer (no output_channel).
    let (status, body) = send(
        s.client
            .post(s.url(&format!("/conversations/cb/trigger_intent?token={TOKEN}")))
            .json(&json!({"name": "EXTERNAL_reminder",
                "entities": [{"entity": "PERSON", "value": "Yan"}]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["messages"],
        json!([{"recipient_id": "cb", "text": "Remember to call Yan!"}])
    );
    assert_eq!(body["tracker"]["slots"]["PERSON"], "Yan");
    let got = received.lock().unwrap().clone();
    assert_eq!(
        got,
        vec![
            json!({"recipient_id": "cb", "text": "Hello!"}),
            json!({"recipient_id": "cb", "text": "Remember to call Ada!"}),
            json!({"recipient_id": "cb", "text": "Remember to call Zoe!"}),
        ]
    );
}

#[tokio::test]
async fn a_1x_reminder_naming_an_action_runs_it() {
    let s = start().await;
    post(
        &s,
        "legacy",
        json!({"event": "reminder", "action": "utter_greet", "date_time": at(0.5),
            "name": "old", "kill_on_user_msg": false}),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut t = all_events(&s, "legacy").await;
    while bot_texts(&t).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        t = all_events(&s, "legacy").await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let t = all_events(&s, "legacy").await;
    assert_eq!(bot_texts(&t), vec!["Hello!"], "{t}");
    assert!(externals(&t).is_empty());
    let actions: Vec<&str> = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "action")
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(
        actions,
        vec![
            "action_session_start",
            "action_listen",
            "utter_greet",
            "action_listen"
        ]
    );
}
