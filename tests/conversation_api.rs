//! The conversation API against a real palaver process: every route, every event's
//! effect on the tracker, include_events, until, replace, story, bad input.

mod common;

use common::{enc, send, summary, user, Options, Server, TOKEN};
use serde_json::{json, Value};

#[tokio::test]
async fn root_version_and_status() {
    let s = Server::start().await;
    let resp = s.client.get(s.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "Hello from Rasa: 3.6.21");
    let (status, body) = s.get("/version?token=wrong").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"version": "3.6.21", "minimum_compatible_version": "3.6.21"})
    );
    let (status, body) = s.get(&format!("/status?token={TOKEN}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["num_active_training_jobs"], 0);
    assert_eq!(body["model_file"], "bot.tar.gz");
    assert_eq!(body["model_id"].as_str().unwrap().len(), 32);
    let (status, body) = s.get("/status").await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (401, Some("NotAuthenticated"))
    );
    // Unknown paths and wrong methods get the framework's errors.
    let (status, body) = s.get("/nope").await;
    assert_eq!(
        (status, body["description"].as_str()),
        (404, Some("Not Found"))
    );
    let (status, _) = send(
        s.client
            .delete(s.url(&format!("/conversations/a/tracker?token={TOKEN}"))),
    )
    .await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn without_enable_api_only_root_answers() {
    let s = Server::with(Options {
        no_api: true,
        ..Default::default()
    })
    .await;
    assert_eq!(s.get("/").await.0, 200);
    assert_eq!(s.get(&format!("/version?token={TOKEN}")).await.0, 404);
    assert_eq!(
        s.get(&format!("/conversations/a/tracker?token={TOKEN}"))
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn new_conversation_shows_an_unstored_session_start() {
    let s = Server::start().await;
    let t = s.tracker("fresh", "&include_events=ALL").await;
    assert_eq!(
        summary(&t),
        [
            "action:action_session_start",
            "session_started",
            "action:action_listen"
        ]
    );
    assert_eq!(t["events"][0]["confidence"], 1.0);
    assert_eq!(
        t["events"][0]["metadata"]["assistant_id"],
        "palaver_test_bot"
    );
    assert_eq!(
        t["slots"],
        json!({"name": null, "items": null, "vip": false, "visits": null,
        "tier": null, "extra": null, "requested_slot": null, "session_started_metadata": null})
    );
    assert_eq!(
        t["latest_message"],
        json!({"intent": {}, "entities": [], "text": null, "message_id": null, "metadata": {}})
    );
    // Not stored: the story route does not know the conversation.
    let (status, body) = s
        .get(&format!("/conversations/fresh/story?token={TOKEN}"))
        .await;
    assert_eq!((status, body["reason"].as_str()), (404, Some("Not found")));
}

#[tokio::test]
async fn posting_events_prepends_a_session_start_once() {
    let s = Server::start().await;
    let (status, t) = s
        .post_events(
            "c1",
            &json!({"event": "slot", "name": "name", "value": "Ada"}),
            "",
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        summary(&t),
        [
            "action:action_session_start",
            "session_started",
            "action:action_listen",
            "slot:name"
        ]
    );
    assert_eq!(t["slots"]["name"], "Ada");
    let (_, t) = s
        .post_events(
            "c1",
            &json!([{"event": "slot", "name": "vip", "value": true}]),
            "",
        )
        .await;
    assert_eq!(summary(&t).len(), 5);
    // Events that begin with a session start get none added.
    let (_, t) = s
        .post_events(
            "c2",
            &json!([{"event": "action", "name": "action_session_start"}, {"event": "session_started"}]),
            "&include_events=ALL",
        )
        .await;
    assert_eq!(
        summary(&t),
        ["action:action_session_start", "session_started"]
    );
    assert_eq!(t["events"][0]["confidence"], Value::Null);
}

#[tokio::test]
async fn every_event_changes_the_tracker_as_in_rasa() {
    let s = Server::start().await;
    let id = "effects";
    let post = |body: Value| {
        let s = &s;
        async move {
            let (status, t) = s.post_events(id, &body, "&include_events=ALL").await;
            assert_eq!(status, 200, "{t}");
            t
        }
    };
    let t = post(json!([{"event": "action", "name": "action_listen"},
        {"event": "user", "text": "hi Ada", "input_channel": "rest", "message_id": "m1",
         "parse_data": {"intent": {"name": "greet", "confidence": 0.9},
                        "entities": [{"entity": "name", "value": "Ada", "start": 3, "end": 6}],
                        "intent_ranking": [{"name": "greet", "confidence": 0.9}]}}]))
    .await;
    assert_eq!(t["latest_message"]["intent"]["name"], "greet");
    assert_eq!(t["latest_message"]["text"], "hi Ada");
    assert_eq!(t["latest_message"]["message_id"], "m1");
    assert_eq!(t["latest_message"]["intent_ranking"][0]["name"], "greet");
    assert_eq!(t["latest_input_channel"], "rest");
    assert_eq!(t["followup_action"], Value::Null);
    // entities / user_featurization apply only right after action_listen.
    let t =
        post(json!({"event": "entities", "entities": [{"entity": "tier", "value": "gold"}]})).await;
    assert_eq!(t["latest_message"]["entities"].as_array().unwrap().len(), 2);
    let stored_user = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "user")
        .unwrap();
    assert_eq!(
        stored_user["parse_data"]["entities"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    post(json!({"event": "user_featurization", "use_text_for_featurization": false})).await;
    // slot: typed slots keep the value; a list slot wraps; unknown slots are kept but ignored.
    let t = post(json!([{"event": "slot", "name": "items", "value": "a"},
        {"event": "slot", "name": "visits", "value": 3.5},
        {"event": "slot", "name": "nope", "value": 1}]))
    .await;
    assert_eq!(t["slots"]["items"], json!(["a"]));
    assert_eq!(t["slots"]["visits"], 3.5);
    assert!(t["slots"].get("nope").is_none());
    assert_eq!(summary(&t).last().unwrap(), "slot:nope");
    // action: latest_action, clears followup.
    let t = post(json!([{"event": "followup", "name": "utter_greet"}])).await;
    assert_eq!(t["followup_action"], "utter_greet");
    let t = post(json!({"event": "action", "name": "utter_greet", "policy": "RulePolicy", "confidence": 1.0})).await;
    assert_eq!(t["latest_action"], json!({"action_name": "utter_greet"}));
    assert_eq!(t["latest_action_name"], "utter_greet");
    assert_eq!(t["followup_action"], Value::Null);
    let t = post(json!({"event": "bot", "text": "Hello!", "data": {"buttons": [{"title": "a", "payload": "/a"}]}})).await;
    let bot = t["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(bot["data"]["buttons"][0]["title"], "a");
    assert_eq!(bot["metadata"]["model_id"].as_str().map(str::len), Some(32));
    // pause / resume.
    assert_eq!(post(json!({"event": "pause"})).await["paused"], true);
    assert_eq!(post(json!({"event": "resume"})).await["paused"], false);
    // loops.
    let t = post(json!({"event": "active_loop", "name": "contact_form"})).await;
    assert_eq!(t["active_loop"]["name"], "contact_form");
    assert_eq!(
        t["active_loop"]["trigger_message"]["intent"]["name"],
        "greet"
    );
    let t = post(json!({"event": "loop_interrupted", "is_interrupted": true})).await;
    assert_eq!(t["active_loop"]["is_interrupted"], true);
    let t = post(json!({"event": "action_execution_rejected", "name": "contact_form"})).await;
    assert_eq!(t["active_loop"]["rejected"], true);
    let t = post(json!({"event": "form_validation", "validate": true})).await;
    assert_eq!(t["active_loop"]["is_interrupted"], false);
    assert_eq!(summary(&t).last().unwrap(), "loop_interrupted");
    let t = post(json!({"event": "form", "name": null})).await;
    assert_eq!(t["active_loop"], json!({}));
    assert_eq!(summary(&t).last().unwrap(), "active_loop");
    // Events without state effect are still recorded.
    let t = post(json!([{"event": "reminder", "intent": "greet", "date_time": "2031-05-01T10:00:00+02:00", "name": "r1",
        "entities": {"name": "Ada"}},
        {"event": "cancel_reminder", "name": "r1"}, {"event": "export"}, {"event": "agent", "text": "x"}]))
    .await;
    let events = t["events"].as_array().unwrap();
    let n = events.len();
    assert_eq!(events[n - 4]["date_time"], "2031-05-01T10:00:00+02:00");
    assert_eq!(events[n - 4]["kill_on_user_msg"], true);
    assert!(
        events[n - 3].get("name").is_none(),
        "cancel_reminder is written without its fields"
    );
    // reset_slots: back to initial values.
    let t = post(json!({"event": "reset_slots"})).await;
    assert_eq!(t["slots"]["vip"], false);
    assert_eq!(t["slots"]["items"], Value::Null);
    // What is stored reads back the same.
    let stored = s.tracker(id, "&include_events=ALL").await;
    assert_eq!(summary(&stored), summary(&t));
    assert_eq!(stored["latest_message"], t["latest_message"]);
}

#[tokio::test]
async fn restart_rewind_undo_and_session_started() {
    let s = Server::start().await;
    let id = "reverts";
    let (_, _) = s
        .post_events(
            id,
            &json!([{"event": "slot", "name": "name", "value": "Ada"},
            {"event": "action", "name": "action_listen"}, user("greet"),
            {"event": "action", "name": "utter_greet"}, {"event": "bot", "text": "Hello!"},
            {"event": "action", "name": "action_listen"}, user("inform"),
            {"event": "slot", "name": "vip", "value": true}]),
            "",
        )
        .await;
    // rewind drops the latest user message and the listen before it.
    let (_, t) = s
        .post_events(id, &json!({"event": "rewind"}), "&include_events=APPLIED")
        .await;
    assert_eq!(t["latest_message"]["intent"]["name"], "greet");
    assert_eq!(t["slots"]["vip"], false);
    assert_eq!(summary(&t).last().unwrap(), "bot:Hello!");
    // undo drops the latest action and what followed it.
    let (_, t) = s
        .post_events(id, &json!({"event": "undo"}), "&include_events=APPLIED")
        .await;
    assert_eq!(t["latest_action_name"], "action_listen");
    assert_eq!(summary(&t).last().unwrap(), "user:/greet");
    // restart resets everything; the live answer has the followup Rasa sets...
    let (_, t) = s.post_events(id, &json!({"event": "restart"}), "").await;
    assert_eq!(t["followup_action"], "action_session_start");
    assert_eq!(t["slots"]["name"], Value::Null);
    assert_eq!(t["events"], json!([]));
    // ...and a reload shows what Rasa's store gives back.
    let t = s.tracker(id, "").await;
    assert_eq!(t["followup_action"], "action_listen");
    let all = s.tracker(id, "&include_events=ALL").await;
    assert!(summary(&all).contains(&"restart".to_string()));
    let (_, t) = s
        .post_events(id, &json!([{"event": "slot", "name": "name", "value": "Bob"}, {"event": "session_started"}]), "")
        .await;
    assert_eq!(t["slots"]["name"], Value::Null);
    assert_eq!(t["followup_action"], "action_listen");
}

#[tokio::test]
async fn include_events_values() {
    let s = Server::start().await;
    s.post_events(
        "inc",
        &json!([{"event": "slot", "name": "name", "value": "a"}, {"event": "restart"},
        {"event": "slot", "name": "name", "value": "b"}, {"event": "session_started"},
        {"event": "slot", "name": "vip", "value": true}]),
        "",
    )
    .await;
    assert_eq!(
        summary(&s.tracker("inc", "&include_events=ALL").await).len(),
        8
    );
    assert_eq!(
        summary(&s.tracker("inc", "&include_events=all").await).len(),
        8
    );
    assert_eq!(
        summary(&s.tracker("inc", "").await),
        ["slot:name", "session_started", "slot:vip"]
    );
    assert_eq!(
        summary(&s.tracker("inc", "&include_events=AFTER_RESTART").await).len(),
        3
    );
    assert_eq!(
        summary(&s.tracker("inc", "&include_events=APPLIED").await),
        ["slot:vip"]
    );
    assert_eq!(
        s.tracker("inc", "&include_events=NONE").await["events"],
        Value::Null
    );
    let (status, body) = s
        .get(&format!(
            "/conversations/inc/tracker?token={TOKEN}&include_events=SOME"
        ))
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["details"],
        json!({"parameter": "include_events", "in": "query"})
    );
    let (status, _) = s
        .post_events("inc", &json!({"event": "pause"}), "&include_events=bad")
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        s.tracker("inc", "").await["paused"],
        false,
        "a rejected request changes nothing"
    );
}

#[tokio::test]
async fn until_replays_up_to_a_time() {
    let s = Server::start().await;
    let (status, _) = s
        .put_events(
            "u",
            &json!([{"event": "slot", "name": "name", "value": "Ada", "timestamp": 1000.0},
            {"event": "slot", "name": "name", "value": "Bob", "timestamp": 2000.0}]),
            "",
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(s.tracker("u", "&until=1500").await["slots"]["name"], "Ada");
    assert_eq!(s.tracker("u", "&until=0").await["events"], json!([]));
    assert_eq!(s.tracker("u", "&until=junk").await["slots"]["name"], "Bob");
}

#[tokio::test]
async fn put_replaces_the_history() {
    let s = Server::start().await;
    s.post_events(
        "p",
        &json!({"event": "slot", "name": "name", "value": "Ada"}),
        "",
    )
    .await;
    let (status, t) = s
        .put_events(
            "p",
            &json!([{"event": "slot", "name": "vip", "value": true}]),
            "&include_events=ALL",
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(summary(&t), ["slot:vip"]);
    assert!(t["events"][0].get("metadata").is_none(), "stored as given");
    assert_eq!(
        summary(&s.tracker("p", "&include_events=ALL").await),
        ["slot:vip"]
    );
    let (status, t) = s.put_events("p", &json!([]), "").await;
    assert_eq!(status, 200);
    assert_eq!(t["events"], json!([]));
    let (status, body) = s.put_events("p", &json!({"event": "pause"}), "").await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (500, Some("ConversationError"))
    );
}

#[tokio::test]
async fn story_of_a_conversation() {
    let s = Server::start().await;
    s.post_events(
        "st",
        &json!([{"event": "action", "name": "action_listen"}, user("greet"),
        {"event": "action", "name": "utter_greet"}, {"event": "bot", "text": "Hello!"},
        {"event": "action", "name": "action_listen"}]),
        "",
    )
    .await;
    let resp = s
        .client
        .get(s.url(&format!("/conversations/st/story?token={TOKEN}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = resp.text().await.unwrap();
    assert!(
        text.starts_with("version: \"3.1\"\nstories:\n- story: st\n"),
        "{text}"
    );
    assert!(text.contains("- intent: greet"), "{text}");
    assert!(text.contains("- action: utter_greet"), "{text}");
}

#[tokio::test]
async fn bad_input_gets_rasa_errors_and_changes_nothing() {
    let s = Server::with(Options {
        args: vec!["--max-body-size".into(), "2000".into()],
        ..Default::default()
    })
    .await;
    let url = s.url(&format!("/conversations/bad/tracker/events?token={TOKEN}"));
    let raw = |body: &'static str| {
        s.client
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
    };
    let (status, body) = send(raw("{not json")).await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"description": "Bad Request", "status": 400, "message": "Failed when parsing body as json"})
        )
    );
    let (status, body) = send(raw("")).await;
    assert_eq!((status, body["reason"].as_str()), (400, Some("BadRequest")));
    assert!(body["message"]
        .as_str()
        .unwrap()
        .starts_with("Failed to validate the events format"));
    assert_eq!(body["help"], "https://rasa.com/docs/rasa/pages/http-api");
    for bad in [
        json!({"event": "nope"}),
        json!({"event": "slot", "value": 1}),
        json!({"event": "slot", "name": 3, "value": 1}),
        json!({"event": "user", "text": 5}),
        json!({"event": "action", "confidence": "high"}),
        json!({"no": "event"}),
        json!([{"event": "pause"}, {"event": "bogus"}]),
        json!("text"),
        json!(42),
        json!({"event": "entities", "entities": [{"value": 1}]}),
        json!({"event": "bot", "timestamp": "now"}),
    ] {
        let (status, body) = s.post_events("bad", &bad, "").await;
        assert_eq!(
            (status, body["reason"].as_str()),
            (400, Some("BadRequest")),
            "{bad}: {body}"
        );
    }
    for unusable in [
        json!({"event": "user"}),
        json!({"event": "action"}),
        json!({"event": "reminder", "intent": "x"}),
        json!([{"event": "pause"}, {"event": "reminder", "date_time": "not a date"}]),
        json!([]),
    ] {
        let (status, body) = s.post_events("bad", &unusable, "").await;
        assert_eq!(
            (status, body["reason"].as_str()),
            (500, Some("ConversationError")),
            "{unusable}: {body}"
        );
        assert!(body["message"]
            .as_str()
            .unwrap()
            .starts_with("An unexpected error occurred. Error: "));
    }
    let big = format!("[{}]", vec![r#"{"event":"pause"}"#; 200].join(","));
    let (status, body) = send(
        s.client
            .post(&url)
            .header("content-type", "application/json")
            .body(big),
    )
    .await;
    assert_eq!((status, body["status"].as_u64()), (413, Some(413)));
    // Nothing of the above was stored.
    let (status, _) = s
        .get(&format!("/conversations/bad/story?token={TOKEN}"))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn odd_conversation_ids() {
    let s = Server::start().await;
    let long = "x".repeat(3000);
    for id in [
        "a/b",
        "été 🎉",
        "with%percent",
        "semi;colon?&=",
        long.as_str(),
    ] {
        let (status, t) = s
            .post_events(
                id,
                &json!({"event": "slot", "name": "name", "value": id}),
                "",
            )
            .await;
        assert_eq!(status, 200, "{id}");
        assert_eq!(t["sender_id"], id);
        assert_eq!(s.tracker(id, "").await["slots"]["name"], id);
    }
    // An unencoded slash addresses the same conversation.
    let (status, t) = s
        .get(&format!("/conversations/a/b/tracker?token={TOKEN}"))
        .await;
    assert_eq!((status, t["slots"]["name"].as_str()), (200, Some("a/b")));
    let _ = enc("x");
}

#[tokio::test]
async fn cors_as_configured() {
    let s = Server::with(Options {
        args: vec!["--cors".into(), "http://ok.example".into()],
        ..Default::default()
    })
    .await;
    let resp = s
        .client
        .get(s.url("/version"))
        .header("Origin", "http://ok.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "http://ok.example"
    );
    assert_eq!(resp.headers()["access-control-allow-credentials"], "true");
    let resp = s
        .client
        .get(s.url("/version"))
        .header("Origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    let resp = s
        .client
        .request(
            reqwest::Method::OPTIONS,
            s.url("/conversations/x/tracker/events"),
        )
        .header("Origin", "http://ok.example")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["access-control-allow-headers"],
        "content-type"
    );
    let none = Server::start().await;
    let resp = none
        .client
        .get(none.url("/"))
        .header("Origin", "http://ok.example")
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn in_memory_store_from_endpoints() {
    let mut s = Server::with(Options {
        endpoints: Some("tracker_store:\n  type: in_memory\n".into()),
        ..Default::default()
    })
    .await;
    s.post_events("m", &json!({"event": "pause"}), "").await;
    assert_eq!(s.tracker("m", "").await["paused"], true);
    assert!(!s.dir.path().join("palaver.db").exists());
    s.restart().await;
    assert_eq!(
        s.tracker("m", "").await["paused"],
        false,
        "in-memory conversations end with the process"
    );
}

#[tokio::test]
async fn sqlite_store_keeps_conversations_across_restarts() {
    let mut s = Server::with(Options {
        endpoints: Some("tracker_store:\n  type: SQL\n  dialect: sqlite\n  db: convos.db\n".into()),
        ..Default::default()
    })
    .await;
    s.post_events(
        "keep",
        &json!([{"event": "slot", "name": "name", "value": "Ada"}, {"event": "pause"}]),
        "",
    )
    .await;
    s.restart().await;
    let t = s.tracker("keep", "").await;
    assert_eq!(
        (t["slots"]["name"].as_str(), t["paused"].as_bool()),
        (Some("Ada"), Some(true))
    );
    assert!(s.dir.path().join("convos.db").exists());
}
