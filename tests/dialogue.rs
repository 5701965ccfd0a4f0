//! The dialogue engine over HTTP: messages in, rules and stories predict, responses
//! out, paused conversations, followups, the action limit, and the API routes that
//! drive it (`messages`, `predict`, `execute`, `trigger_intent`, `/model/*`, `/domain`).

mod common;

use common::{send, summary, Options, Server, TOKEN};
use serde_json::{json, Value};

async fn say(s: &Server, sender: &str, text: &str) -> Value {
    let (status, body) = send(
        s.client
            .post(s.url("/webhooks/rest/webhook"))
            .json(&json!({"sender": sender, "message": text})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn texts(messages: &Value) -> Vec<String> {
    messages
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["text"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_rule_answers_through_the_rest_webhook() {
    let s = Server::start().await;
    assert_eq!(
        s.get("/webhooks/rest/").await,
        (200, json!({"status": "ok"}))
    );
    let answer = say(&s, "u1", "/greet").await;
    assert_eq!(answer, json!([{"recipient_id": "u1", "text": "Hello!"}]));
    let t = s.tracker("u1", "&include_events=ALL").await;
    assert_eq!(
        summary(&t),
        [
            "action:action_session_start",
            "session_started",
            "action:action_listen",
            "user:/greet",
            "user_featurization",
            "action:utter_greet",
            "bot:Hello!",
            "action:action_listen"
        ]
    );
    let events = t["events"].as_array().unwrap();
    assert_eq!(events[5]["policy"], "RulePolicy");
    assert_eq!(events[6]["metadata"]["utter_action"], "utter_greet");
    assert_eq!(t["latest_input_channel"], "rest");
    assert_eq!(
        t["latest_message"]["intent"],
        json!({"name": "greet", "confidence": 1.0})
    );
}

#[tokio::test]
async fn slots_from_shortcut_entities_fill_responses() {
    let s = Server::start().await;
    let answer = say(&s, "u2", "/goodbye{\"name\": \"Ada\"}").await;
    assert_eq!(texts(&answer), ["Bye Ada!"]);
    let t = s.tracker("u2", "").await;
    assert_eq!(t["slots"]["name"], "Ada");
}

#[tokio::test]
async fn unknown_turn_falls_back_and_rewinds() {
    let s = Server::start().await;
    let answer = say(&s, "u3", "/inform").await;
    assert_eq!(texts(&answer), ["Sorry, I did not get that."]);
    let t = s.tracker("u3", "&include_events=ALL").await;
    let tail: Vec<String> = summary(&t).into_iter().rev().take(3).collect();
    assert_eq!(
        tail,
        [
            "action:action_listen",
            "rewind",
            "bot:Sorry, I did not get that."
        ]
    );
    let events = t["events"].as_array().unwrap();
    let fallback = events
        .iter()
        .find(|e| e["name"] == "action_default_fallback")
        .unwrap();
    assert_eq!(
        (fallback["policy"].as_str(), fallback["confidence"].as_f64()),
        (Some("RulePolicy"), Some(0.3))
    );
    assert_eq!(events.last().unwrap()["policy"], "followup_action");
}

#[tokio::test]
async fn paused_conversations_log_messages_and_answer_nothing() {
    let s = Server::start().await;
    s.post_events("p1", &json!({"event": "pause"}), "").await;
    assert_eq!(say(&s, "p1", "/greet").await, json!([]));
    let t = s.tracker("p1", "&include_events=ALL").await;
    assert!(summary(&t).contains(&"user:/greet".to_string()));
    assert!(!summary(&t).contains(&"action:utter_greet".to_string()));
    assert_eq!(t["paused"], true);
    // H2: /restart works while paused.
    say(&s, "p1", "/restart").await;
    let t = s.tracker("p1", "").await;
    assert_eq!(t["paused"], false);
    // Resumed, the bot answers again.
    assert_eq!(texts(&say(&s, "p1", "/greet").await), ["Hello!"]);
}

#[tokio::test]
async fn handoff_recipe_resume_with_followup() {
    let s = Server::start().await;
    say(&s, "h1", "/greet").await;
    s.post_events("h1", &json!({"event": "pause"}), "").await;
    say(&s, "h1", "/inform").await; // logged while paused
    s.post_events(
        "h1",
        &json!([{"event": "resume"}, {"event": "followup", "name": "utter_greet"}]),
        "",
    )
    .await;
    // H3: the followup runs first, then the message is answered normally.
    let answer = say(&s, "h1", "/goodbye").await;
    assert_eq!(texts(&answer), ["Hello!", "Bye None!"]);
    let t = s.tracker("h1", "").await;
    assert_eq!(
        (t["paused"].as_bool(), t["followup_action"].clone()),
        (Some(false), Value::Null)
    );
}

#[tokio::test]
async fn the_action_limit_stops_a_runaway_story() {
    let s = Server::start().await;
    let answer = say(&s, "spin", "/spin").await;
    assert_eq!(texts(&answer).len(), 10);
    let t = s.tracker("spin", "&include_events=ALL").await;
    assert_ne!(
        summary(&t).last().unwrap(),
        "action:action_listen",
        "no action_listen after the limit"
    );
}

#[tokio::test]
async fn messages_predict_execute_trigger() {
    let s = Server::start().await;
    let q = format!("?token={TOKEN}");
    let (status, t) = send(
        s.client
            .post(s.url(&format!("/conversations/api/messages{q}")))
            .json(&json!({"text": "/greet", "sender": "user"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(summary(&t).last().unwrap(), "user:/greet");
    let (status, p) = send(
        s.client
            .post(s.url(&format!("/conversations/api/predict{q}"))),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        p["scores"][0],
        json!({"action": "utter_greet", "score": 1.0})
    );
    assert_eq!(p["policy"], "RulePolicy");
    let (status, e) = send(
        s.client
            .post(s.url(&format!("/conversations/api/execute{q}")))
            .json(&json!({"name": "utter_greet"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        e["messages"],
        json!([{"recipient_id": "api", "text": "Hello!"}])
    );
    let (status, body) = send(
        s.client
            .post(s.url(&format!("/conversations/api/execute{q}")))
            .json(&json!({"name": "nope"})),
    )
    .await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (500, Some("ConversationError"))
    );
    let (status, r) = send(
        s.client
            .post(s.url(&format!("/conversations/api/trigger_intent{q}")))
            .json(&json!({"name": "goodbye", "entities": {"name": "Bob"}})),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(texts(&r["messages"]), ["Bye Bob!"]);
    let user = r["tracker"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e["event"] == "user")
        .unwrap()
        .clone();
    assert_eq!(user["text"], "EXTERNAL: goodbye");
    assert_eq!(user["metadata"]["is_external"], true);
    let (status, body) = send(
        s.client
            .post(s.url(&format!("/conversations/api/trigger_intent{q}")))
            .json(&json!({"name": "nope"})),
    )
    .await;
    assert_eq!((status, body["reason"].as_str()), (404, Some("NotFound")));
    let (status, _) = send(
        s.client
            .post(s.url(&format!("/conversations/never/predict{q}"))),
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn model_routes() {
    let s = Server::start().await;
    let q = format!("?token={TOKEN}");
    let (status, p) = send(
        s.client
            .post(s.url(&format!("/model/parse{q}")))
            .json(&json!({"text": "/greet"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(p["intent"]["name"], "greet");
    let (status, _) = send(
        s.client
            .post(s.url(&format!("/model/parse{q}")))
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, 500);
    let (status, d) = send(
        s.client
            .get(s.url(&format!("/domain{q}")))
            .header("Accept", "application/json"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(d["intents"].to_string().contains("greet"));
    let (status, _) = send(
        s.client
            .get(s.url(&format!("/domain{q}")))
            .header("Accept", "*/*"),
    )
    .await;
    assert_eq!(status, 406);
    let (status, y) = send(
        s.client
            .get(s.url(&format!("/domain{q}")))
            .header("Accept", "application/x-yaml"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(y.as_str().unwrap().contains("utter_greet"));
    let (status, mp) = send(
        s.client
            .post(s.url(&format!("/model/predict{q}")))
            .json(&json!([{"event": "action", "name": "action_listen"}, common::user("greet")])),
    )
    .await;
    assert_eq!(status, 200, "{mp}");
    assert_eq!(mp["policy"], "RulePolicy");
    // Unload: 409; reload: back.
    let (status, _) = send(s.client.delete(s.url(&format!("/model{q}")))).await;
    assert_eq!(status, 204);
    let (status, body) = s.get(&format!("/status{q}")).await;
    assert_eq!((status, body["reason"].as_str()), (409, Some("Conflict")));
    assert_eq!(say(&s, "x", "/greet").await, json!([]));
    let dir = s.dir.path().join("bot");
    let (status, _) = send(
        s.client
            .put(s.url(&format!("/model{q}")))
            .json(&json!({"model_file": dir.display().to_string()})),
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(texts(&say(&s, "x", "/greet").await), ["Hello!"]);
}

#[tokio::test]
async fn session_expiry_starts_a_new_session() {
    let s = Server::start().await;
    // A user message from two hours ago: the next message starts a new session.
    let old = common::user("greet");
    let mut old = old.as_object().unwrap().clone();
    old.insert("timestamp".into(), json!(1_000_000.0));
    s.put_events(
        "old",
        &json!([{"event": "action", "name": "action_session_start", "timestamp": 999_999.0},
                {"event": "session_started", "timestamp": 999_999.0},
                {"event": "action", "name": "action_listen", "timestamp": 999_999.0},
                Value::Object(old),
                {"event": "slot", "name": "name", "value": "Ada", "timestamp": 1_000_001.0}]),
        "",
    )
    .await;
    say(&s, "old", "/greet").await;
    let t = s.tracker("old", "&include_events=ALL").await;
    let sessions = summary(&t)
        .iter()
        .filter(|e| *e == "session_started")
        .count();
    assert_eq!(sessions, 2);
    assert_eq!(t["slots"]["name"], "Ada", "slots are carried over");
}

#[tokio::test]
async fn project_loading_errors_name_the_problem() {
    for (file, content, expected) in [
        (
            "domain.yml",
            "slots:\n  x:\n    type: texty\n",
            "unknown type 'texty'",
        ),
        ("domain.yml", "intents: [greet\n", "domain.yml"),
        ("config.yml", "policies: [\n", "config.yml"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let bot = dir.path().join("bot");
        std::fs::create_dir_all(&bot).unwrap();
        for f in ["domain.yml", "config.yml"] {
            std::fs::copy(common::fixture_bot().join(f), bot.join(f)).unwrap();
        }
        std::fs::write(bot.join(file), content).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_palaver"))
            .current_dir(dir.path())
            .args(["run", "bot", "--port", "0"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{file}: {err}");
    }
    let _ = Options::default();
}

#[test]
fn data_validate_reports_undefined_things() {
    let run = |dir: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_palaver"))
            .args(["data", "validate"])
            .arg(dir)
            .output()
            .unwrap()
    };
    let good = run(&common::fixture_bot());
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stdout)
    );
    let dir = tempfile::tempdir().unwrap();
    let bot = dir.path();
    for f in ["domain.yml", "config.yml"] {
        std::fs::copy(common::fixture_bot().join(f), bot.join(f)).unwrap();
    }
    std::fs::create_dir_all(bot.join("data")).unwrap();
    std::fs::write(
        bot.join("data/rules.yml"),
        "version: \"3.1\"\nrules:\n  - rule: r\n    steps:\n      - intent: not_in_domain\n      - action: utter_nowhere\n",
    )
    .unwrap();
    let bad = run(bot);
    let out = String::from_utf8_lossy(&bad.stdout);
    assert!(!bad.status.success(), "{out}");
    assert!(out.contains("not_in_domain"), "{out}");
    assert!(out.contains("utter_nowhere"), "{out}");
}

#[tokio::test]
async fn callback_channel_posts_each_bot_message() {
    use std::sync::{Arc, Mutex};
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
    let s = Server::with(Options {
        credentials: Some(format!(
            "rest:\ncallback:\n  url: http://127.0.0.1:{port}/bot\n"
        )),
        ..Default::default()
    })
    .await;
    assert_eq!(
        s.get("/webhooks/callback/").await,
        (200, json!({"status": "ok"}))
    );
    let resp = s
        .client
        .post(s.url("/webhooks/callback/webhook"))
        .json(&json!({"sender": "cb", "message": "/greet"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "success");
    assert_eq!(
        *received.lock().unwrap(),
        vec![json!({"recipient_id": "cb", "text": "Hello!"})]
    );
    assert_eq!(
        s.tracker("cb", "").await["latest_input_channel"],
        "callback"
    );
}

#[tokio::test]
async fn default_actions_through_execute() {
    let s = Server::start().await;
    let q = format!("?token={TOKEN}&include_events=ALL");
    say(&s, "d", "/greet").await;
    let execute = |name: &'static str| {
        let s = &s;
        let q = q.clone();
        async move {
            let (status, body) = send(
                s.client
                    .post(s.url(&format!("/conversations/d/execute{q}")))
                    .json(&json!({"name": name})),
            )
            .await;
            assert_eq!(status, 200, "{name}: {body}");
            (
                body["messages"].clone(),
                s.tracker("d", "&include_events=ALL").await,
            )
        }
    };
    let (messages, _) = execute("action_default_ask_affirmation").await;
    assert_eq!(
        messages,
        json!([{"recipient_id": "d", "text": "Did you mean 'greet'?",
            "buttons": [{"title": "Yes", "payload": "/greet"}, {"title": "No", "payload": "/out_of_scope"}]}])
    );
    s.post_events(
        "d",
        &json!({"event": "active_loop", "name": "contact_form"}),
        "",
    )
    .await;
    let (_, t) = execute("action_deactivate_loop").await;
    assert_eq!(t["active_loop"], json!({}));
    assert_eq!(summary(&t).last().unwrap(), "slot:requested_slot");
    let (messages, t) = execute("action_default_fallback").await;
    assert_eq!(texts(&messages), ["Sorry, I did not get that."]);
    assert_eq!(summary(&t).last().unwrap(), "rewind");
    let (_, t) = execute("action_back").await;
    let tail: Vec<String> = summary(&t).into_iter().rev().take(2).collect();
    assert_eq!(tail, ["rewind", "rewind"]);
    let (_, t) = execute("action_restart").await;
    assert_eq!(summary(&t).last().unwrap(), "restart");
    assert_eq!(
        t["followup_action"], "action_listen",
        "reloaded tracker, as Rasa's store gives it"
    );
    // The next message starts a new session (the restart emptied the applied events).
    assert_eq!(texts(&say(&s, "d", "/greet").await), ["Hello!"]);
    let t = s.tracker("d", "&include_events=AFTER_RESTART").await;
    assert_eq!(summary(&t)[0], "action:action_session_start");
}

#[tokio::test]
async fn rest_webhook_streams_json_lines() {
    let s = Server::start().await;
    let resp = s
        .client
        .post(s.url("/webhooks/rest/webhook?stream=true"))
        .json(&json!({"sender": "st", "message": "/greet"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let body = resp.text().await.unwrap();
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, vec![json!({"recipient_id": "st", "text": "Hello!"})]);
    assert!(body.ends_with('\n'));
    // The conversation was stored as for a plain request.
    assert_eq!(
        summary(&s.tracker("st", "").await).last().unwrap(),
        "action:action_listen"
    );
}
