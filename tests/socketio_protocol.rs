//! The socket.io channel against real socket.io clients (socket.io-client 4 and 2 from
//! npm, see tests/socketio_support): every event and credentials.yml option of Rasa's
//! `socketio` channel, and pushes of messages produced outside of a socket request.

mod common;
mod socketio_support;

use common::{enc, send, Options, Server, TOKEN};
use serde_json::{json, Value};
use socketio_support::Clients;

/// A server whose credentials.yml has the given `socketio:` section (and `rest:`).
async fn server(socketio: &str) -> Server {
    Server::with(Options {
        credentials: Some(format!("rest:\nsocketio:\n{socketio}")),
        ..Options::default()
    })
    .await
}

async fn clients(s: &Server) -> Option<Clients> {
    Clients::start(&s.base).await
}

async fn user_events(s: &Server, id: &str) -> Vec<Value> {
    s.tracker(id, "&include_events=ALL").await["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "user")
        .cloned()
        .collect()
}

#[tokio::test]
async fn session_request_confirms_the_given_or_a_new_id() {
    let s = server("").await;
    let Some(mut c) = clients(&s).await else {
        return;
    };
    c.connected("a", json!({})).await;
    assert_eq!(c.session("a", json!("abc")).await, json!("abc"));
    let new = c.session("a", Value::Null).await;
    let new = new.as_str().unwrap();
    assert_eq!(new.len(), 32, "{new}");
    assert!(new.chars().all(|ch| ch.is_ascii_hexdigit()));
    // No argument at all, as some clients send it.
    c.emit("a", "session_request", json!([])).await;
    let other = c.next("a", "session_confirm").await["args"][0].clone();
    assert_eq!(other.as_str().unwrap().len(), 32);
    assert_ne!(other, json!(new));
    c.stop().await;
}

#[tokio::test]
async fn without_session_persistence_the_conversation_is_the_socket() {
    let s = server("").await;
    let Some(mut c) = clients(&s).await else {
        return;
    };
    let sid = c.connected("a", json!({})).await;
    c.session("a", json!("ignored-session")).await;
    // The ack comes once the message is handled, with no arguments (python-socketio).
    let ack = c
        .emit_acked(
            "a",
            "user_uttered",
            json!([{"message": "  /greet  ", "session_id": "ignored-session"}]),
        )
        .await;
    assert_eq!(ack, json!([]));
    assert_eq!(
        c.bot("a", "bot_uttered").await,
        vec![json!({"text": "Hello!"})]
    );
    let users = user_events(&s, &sid).await;
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["text"], "/greet");
    assert_eq!(users[0]["input_channel"], "socketio");
    assert_eq!(users[0]["parse_data"]["intent"]["name"], "greet");
    // The session id named no conversation.
    let (status, _) = s
        .get(&format!(
            "/conversations/ignored-session/story?token={TOKEN}"
        ))
        .await;
    assert_eq!(status, 404);
    c.stop().await;
}

#[tokio::test]
async fn with_session_persistence_the_conversation_is_the_session_and_its_room() {
    let s = server("  session_persistence: true\n").await;
    let Some(mut c) = clients(&s).await else {
        return;
    };
    c.connected("a", json!({"transports": ["websocket"]})).await;
    c.connected("b", json!({"transports": ["polling"]})).await;
    c.connected("other", json!({})).await;
    assert_eq!(c.session("a", json!("s-1")).await, json!("s-1"));
    assert_eq!(c.session("b", json!("s-1")).await, json!("s-1"));
    assert_eq!(c.session("other", json!("s-2")).await, json!("s-2"));
    // A message without a session id is ignored (Rasa warns and drops it) ...
    let ack = c
        .emit_acked("a", "user_uttered", json!([{"message": "/greet"}]))
        .await;
    assert_eq!(ack, json!([]));
    // ... and so is one with an empty session id.
    c.emit_acked(
        "a",
        "user_uttered",
        json!([{"message": "/greet", "session_id": ""}]),
    )
    .await;
    c.emit_acked(
        "a",
        "user_uttered",
        json!([{"message": "/greet", "session_id": "s-1"}]),
    )
    .await;
    // Both sockets of the session get the answer (once: the earlier messages made none).
    assert_eq!(
        c.bot("a", "bot_uttered").await,
        vec![json!({"text": "Hello!"})]
    );
    assert_eq!(
        c.bot("b", "bot_uttered").await,
        vec![json!({"text": "Hello!"})]
    );
    assert!(c.drain("a", "bot_uttered").is_empty());
    let users = user_events(&s, "s-1").await;
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["input_channel"], "socketio");
    // The socket of another session got nothing: its own message is answered first.
    c.emit_acked(
        "other",
        "user_uttered",
        json!([{"message": "/goodbye", "session_id": "s-2"}]),
    )
    .await;
    assert_eq!(
        c.bot("other", "bot_uttered").await,
        vec![json!({"text": "Bye None!"})]
    );
    c.stop().await;
}

#[tokio::test]
async fn metadata_key_reads_objects_and_json_text() {
    let s = server("  session_persistence: true\n  metadata_key: customData\n").await;
    let Some(mut c) = clients(&s).await else {
        return;
    };
    c.connected("a", json!({})).await;
    c.session("a", json!("meta")).await;
    // rasa-webchat sends its customData this way.
    c.emit_acked(
        "a",
        "user_uttered",
        json!([{"message": "/greet", "session_id": "meta", "customData": {"language": "en"}}]),
    )
    .await;
    c.emit_acked(
        "a",
        "user_uttered",
        json!([{"message": "/greet", "session_id": "meta", "customData": "{\"page\": \"/shop\"}"}]),
    )
    .await;
    // The default key is not read when another is configured.
    c.emit_acked(
        "a",
        "user_uttered",
        json!([{"message": "/greet", "session_id": "meta", "metadata": {"x": 1}}]),
    )
    .await;
    let users = user_events(&s, "meta").await;
    assert_eq!(users.len(), 3);
    // (palaver adds model_id and assistant_id to every event's metadata, as Rasa.)
    assert_eq!(users[0]["metadata"]["language"], "en");
    assert_eq!(
        users[0]["parse_data"]["metadata"],
        json!({"language": "en"})
    );
    assert_eq!(users[1]["metadata"]["page"], "/shop");
    assert_eq!(users[1]["parse_data"]["metadata"], json!({"page": "/shop"}));
    assert_eq!(users[2]["parse_data"]["metadata"], json!({}));
    assert!(users[2]["metadata"].get("x").is_none());
    // The first message's metadata started the session, as Rasa's session start does.
    let tracker = s.tracker("meta", "&include_events=ALL").await;
    let started = tracker["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "slot" && e["name"] == "session_started_metadata")
        .cloned()
        .expect("session_started_metadata");
    assert_eq!(started["value"], json!({"language": "en"}));
    c.stop().await;
}

#[tokio::test]
async fn event_names_path_and_namespace_are_configurable() {
    let s = server(
        "  user_message_evt: say\n  bot_message_evt: said\n  socketio_path: /chat/socket.io\n  namespace: web\n",
    )
    .await;
    let Some(mut c) = clients(&s).await else {
        return;
    };
    // The default path serves nothing.
    let r = c.connect("default", json!({})).await;
    assert_eq!(r["event"], "connect_error", "{r}");
    c.connected(
        "a",
        json!({"path": "/chat/socket.io", "namespace": "/web", "listen": ["session_confirm", "said", "bot_uttered"]}),
    )
    .await;
    c.session("a", json!("x")).await;
    c.emit_acked("a", "say", json!([{"message": "/greet"}]))
        .await;
    assert_eq!(c.bot("a", "said").await, vec![json!({"text": "Hello!"})]);
    // The default event names mean nothing here (no handler, so no ack either).
    c.emit("a", "user_uttered", json!([{"message": "/goodbye"}]))
        .await;
    c.emit_acked("a", "say", json!([{"message": "/greet"}]))
        .await;
    assert_eq!(c.bot("a", "said").await, vec![json!({"text": "Hello!"})]);
    assert!(c.drain("a", "bot_uttered").is_empty());
    assert!(c.drain("a", "said").is_empty());
    // The health route of the channel.
    let (status, body) = s.get("/webhooks/socketio/").await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));
    c.stop().await;
}

#[tokio::test]
async fn jwt_key_refuses_connections_without_a_valid_token() {
    let s = server("  jwt_key: sock3t\n  jwt_method: HS256\n").await;
    let Some(mut c) = clients(&s).await else {
        return;
    };
    let refused = c.connect("none", json!({})).await;
    assert_eq!(refused["event"], "connect_error");
    assert_eq!(refused["message"], "Connection rejected by server");
    let wrong = common::jwt(json!({"sub": "u"}), "other");
    let r = c.connect("wrong", json!({"auth": {"token": wrong}})).await;
    assert_eq!(r["event"], "connect_error");
    let expired = common::jwt(json!({"sub": "u", "exp": 1000}), "sock3t");
    let r = c
        .connect("expired", json!({"auth": {"token": expired}}))
        .await;
    assert_eq!(r["event"], "connect_error");
    let good = common::jwt(json!({"sub": "u"}), "sock3t");
    c.connected("good", json!({"auth": {"token": good}})).await;
    c.connected(
        "bearer",
        json!({"auth": {"token": format!("Bearer {good}")}}),
    )
    .await;
    c.session("good", json!("j")).await;
    c.emit_acked("good", "user_uttered", json!([{"message": "/greet"}]))
        .await;
    assert_eq!(
        c.bot("good", "bot_uttered").await,
        vec![json!({"text": "Hello!"})]
    );
    c.stop().await;
}

#[tokio::test]
async fn jwt_method_selects_the_signing_algorithm() {
    let s = server("  jwt_key: k512\n  jwt_method: HS512\n").await;
    let Some(mut c) = clients(&s).await else {
        return;
    };
    let hs512 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
        &json!({"sub": "u"}),
        &jsonwebtoken::EncodingKey::from_secret(b"k512"),
    )
    .unwrap();
    // The right key but another algorithm is refused.
    let hs256 = common::jwt(json!({"sub": "u"}), "k512");
    let r = c.connect("hs256", json!({"auth": {"token": hs256}})).await;
    assert_eq!(r["event"], "connect_error", "{r}");
    c.connected("hs512", json!({"auth": {"token": hs512}}))
        .await;
    assert_eq!(c.session("hs512", json!("m")).await, json!("m"));
    c.stop().await;
}

#[tokio::test]
async fn old_clients_speak_engine_io_3() {
    let s = server("  session_persistence: true\n").await;
    let Some(mut c) = clients(&s).await else {
        return;
    };
    for (id, transports) in [("poll", json!(["polling"])), ("ws", json!(["websocket"]))] {
        c.connected(id, json!({"client": "v2", "transports": transports}))
            .await;
        assert_eq!(c.session(id, json!(id)).await, json!(id));
        c.emit_acked(
            id,
            "user_uttered",
            json!([{"message": "/greet", "session_id": id}]),
        )
        .await;
        assert_eq!(
            c.bot(id, "bot_uttered").await,
            vec![json!({"text": "Hello!"})]
        );
    }
    c.stop().await;
}

#[tokio::test]
async fn messages_of_a_socket_are_handled_in_arrival_order() {
    let s = server("  session_persistence: true\n").await;
    let Some(mut c) = clients(&s).await else {
        return;
    };
    // Long polling delivers several packets in one request: the hardest case.
    c.connected("a", json!({"transports": ["polling"]})).await;
    c.session("a", json!("order")).await;
    for i in 0..30 {
        c.emit(
            "a",
            "user_uttered",
            json!([{"message": format!("/inform{{\"name\": \"n{i}\"}}"), "session_id": "order"}]),
        )
        .await;
    }
    c.emit_acked(
        "a",
        "user_uttered",
        json!([{"message": "/greet", "session_id": "order"}]),
    )
    .await;
    let texts: Vec<String> = user_events(&s, "order")
        .await
        .iter()
        .map(|u| u["text"].as_str().unwrap().to_owned())
        .collect();
    let mut expected: Vec<String> = (0..30)
        .map(|i| format!("/inform{{\"name\": \"n{i}\"}}"))
        .collect();
    expected.push("/greet".into());
    assert_eq!(texts, expected);
    c.stop().await;
}

/// Posts events with side effects to a conversation's channel.
async fn post_with_side_effects(s: &Server, id: &str, events: Value, channel: &str) -> Value {
    let (status, body) = s
        .post_events(
            id,
            &events,
            &format!("&execute_side_effects=true&output_channel={channel}"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn bot_messages_have_rasas_socketio_shapes() {
    let s = server("  session_persistence: true\n").await;
    let Some(mut c) = clients(&s).await else {
        return;
    };
    c.connected("a", json!({})).await;
    c.connected("elsewhere", json!({})).await;
    c.session("a", json!("shapes")).await;
    c.session("elsewhere", json!("room-2")).await;
    let cases = [
        (
            json!({"event": "bot", "text": "one\n\ntwo", "data": {"buttons": [
                {"title": "Yes", "payload": "/affirm"}, {"title": "No", "payload": "/deny"}]}}),
            json!([
                {"text": "one", "quick_replies": []},
                {"text": "two", "quick_replies": [
                    {"content_type": "text", "title": "Yes", "payload": "/affirm"},
                    {"content_type": "text", "title": "No", "payload": "/deny"}]}
            ]),
        ),
        (
            json!({"event": "bot", "text": "pick", "data": {"quick_replies": [{"title": "A", "payload": "a"}]}}),
            json!([{"text": "pick", "quick_replies": [{"content_type": "text", "title": "A", "payload": "a"}]}]),
        ),
        (
            json!({"event": "bot", "text": " first \n\nsecond "}),
            // Rasa strips the whole text, not each part.
            json!([{"text": "first "}, {"text": "second"}]),
        ),
        (
            json!({"event": "bot", "text": "look", "data": {"image": "https://x/i.png"}}),
            json!([{"text": "look"}, {"attachment": {"type": "image", "payload": {"src": "https://x/i.png"}}}]),
        ),
        (
            json!({"event": "bot", "data": {"attachment": {"type": "video", "payload": {"src": "v"}}}}),
            json!([{"attachment": {"type": "video", "payload": {"src": "v"}}}]),
        ),
        (
            json!({"event": "bot", "data": {"elements": [{"title": "t1"}, {"title": "t2"}]}}),
            json!([
                {"attachment": {"type": "template", "payload": {"template_type": "generic", "elements": {"title": "t1"}}}},
                {"attachment": {"type": "template", "payload": {"template_type": "generic", "elements": {"title": "t2"}}}}
            ]),
        ),
        (
            json!({"event": "bot", "data": {"custom": {"data": {"kind": "card", "n": 1}}}}),
            json!([{"kind": "card", "n": 1}]),
        ),
    ];
    for (event, expected) in cases {
        post_with_side_effects(&s, "shapes", event.clone(), "socketio").await;
        let mut got = Vec::new();
        for _ in 0..expected.as_array().unwrap().len() {
            let args = c.bot("a", "bot_uttered").await;
            assert_eq!(args.len(), 1, "{event}: {args:?}");
            got.push(args[0].clone());
        }
        assert_eq!(Value::Array(got), expected, "{event}");
    }
    // A custom payload without `data` is an event without arguments.
    post_with_side_effects(
        &s,
        "shapes",
        json!({"event": "bot", "data": {"custom": {"room": "shapes"}}}),
        "socketio",
    )
    .await;
    assert!(c.bot("a", "bot_uttered").await.is_empty());
    // A custom payload with a room goes there instead.
    post_with_side_effects(
        &s,
        "shapes",
        json!({"event": "bot", "data": {"custom": {"data": "psst", "room": "room-2"}}}),
        "socketio",
    )
    .await;
    assert_eq!(c.bot("elsewhere", "bot_uttered").await, vec![json!("psst")]);
    // One with keys socket.io's emit does not take is not sent (Rasa fails on it).
    post_with_side_effects(
        &s,
        "shapes",
        json!([{"event": "bot", "data": {"custom": {"text": "no"}}}, {"event": "bot", "text": "after"}]),
        "socketio",
    )
    .await;
    assert_eq!(
        c.bot("a", "bot_uttered").await,
        vec![json!({"text": "after"})]
    );
    c.stop().await;
}

#[tokio::test]
async fn messages_made_outside_a_socket_request_are_pushed() {
    let s = server("  session_persistence: true\n").await;
    let Some(mut c) = clients(&s).await else {
        return;
    };
    c.connected("a", json!({})).await;
    c.session("a", json!("push")).await;
    c.emit_acked(
        "a",
        "user_uttered",
        json!([{"message": "/greet", "session_id": "push"}]),
    )
    .await;
    c.bot("a", "bot_uttered").await;

    // A human agent's answer, through the user's latest channel.
    let body = post_with_side_effects(
        &s,
        "push",
        json!({"event": "bot", "text": "Hi, I am Ann.", "metadata": {"human_agent": "ann"}}),
        "latest",
    )
    .await;
    assert_eq!(
        c.bot("a", "bot_uttered").await,
        vec![json!({"text": "Hi, I am Ann."})]
    );
    let last = body["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["event"], "bot");
    assert_eq!(last["metadata"]["human_agent"], "ann");

    // trigger_intent with output_channel=latest: pushed, and no `messages` in the
    // answer (Rasa reports messages of collecting channels only).
    let (status, body) = send(
        s.client
            .post(s.url(&format!(
                "/conversations/push/trigger_intent?token={TOKEN}&output_channel=latest"
            )))
            .json(&json!({"name": "greet"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("messages").is_none(), "{body}");
    assert_eq!(
        c.bot("a", "bot_uttered").await,
        vec![json!({"text": "Hello!"})]
    );

    // execute with output_channel=socketio.
    let (status, body) = send(
        s.client
            .post(s.url(&format!(
                "/conversations/{}/execute?token={TOKEN}&output_channel=socketio",
                enc("push")
            )))
            .json(&json!({"name": "utter_goodbye"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("messages").is_none(), "{body}");
    assert_eq!(
        c.bot("a", "bot_uttered").await,
        vec![json!({"text": "Bye None!"})]
    );

    // Pause, then resume with a followup run at once (H4): its message is pushed.
    post_with_side_effects(&s, "push", json!({"event": "pause"}), "latest").await;
    post_with_side_effects(
        &s,
        "push",
        json!([{"event": "resume"}, {"event": "followup", "name": "utter_greet"}]),
        "latest",
    )
    .await;
    assert_eq!(
        c.bot("a", "bot_uttered").await,
        vec![json!({"text": "Hello!"})]
    );

    // Without side effects nothing is sent.
    s.post_events("push", &json!({"event": "bot", "text": "quiet"}), "")
        .await;
    // With a collecting channel the messages are answered, not pushed.
    let (status, body) = send(
        s.client
            .post(s.url(&format!(
                "/conversations/push/trigger_intent?token={TOKEN}&output_channel=rest"
            )))
            .json(&json!({"name": "greet"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["messages"],
        json!([{"recipient_id": "push", "text": "Hello!"}])
    );
    // The next push is the next thing the socket sees.
    post_with_side_effects(
        &s,
        "push",
        json!({"event": "bot", "text": "loud"}),
        "socketio",
    )
    .await;
    assert_eq!(
        c.bot("a", "bot_uttered").await,
        vec![json!({"text": "loud"})]
    );

    // A push to a conversation with nobody connected is fine.
    c.disconnect("a").await;
    c.next("a", "disconnect").await;
    post_with_side_effects(
        &s,
        "push",
        json!({"event": "bot", "text": "gone"}),
        "latest",
    )
    .await;
    c.stop().await;
}

/// `now + secs` as an ISO date-time, as a `reminder` event's `date_time`.
fn in_secs(secs: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(secs))
        .format("%Y-%m-%dT%H:%M:%S%.6f%:z")
        .to_string()
}

#[tokio::test]
async fn a_reminder_reaches_the_sockets_of_its_conversation_when_it_fires() {
    let s = server("  session_persistence: true\n").await;
    let Some(mut c) = clients(&s).await else {
        return;
    };
    c.connected("a", json!({})).await;
    c.session("a", json!("remind-me")).await;
    c.emit_acked(
        "a",
        "user_uttered",
        json!([{"message": "/greet", "session_id": "remind-me"}]),
    )
    .await;
    c.bot("a", "bot_uttered").await;
    // Scheduled through the API as a side effect, for the user's latest channel.
    let body = post_with_side_effects(
        &s,
        "remind-me",
        json!({"event": "reminder", "intent": "greet", "name": "nudge",
               "date_time": in_secs(2), "kill_on_user_msg": false}),
        "latest",
    )
    .await;
    assert_eq!(
        body["events"].as_array().unwrap().last().unwrap()["event"],
        "reminder"
    );
    // The widget reloads meanwhile: a new socket of the same session gets the push.
    c.disconnect("a").await;
    c.next("a", "disconnect").await;
    c.connected("b", json!({})).await;
    c.session("b", json!("remind-me")).await;
    assert_eq!(
        c.bot("b", "bot_uttered").await,
        vec![json!({"text": "Hello!"})]
    );
    c.stop().await;
}
