//! The handoff console's server side: `GET /conversations`, the console's files, a
//! human agent's answer through each kind of channel, and the opt-in webhook auth of
//! credentials.yml.

mod common;

use std::sync::{Arc, Mutex};

use common::{jwt, send, Options, Server, JWT_SECRET, TOKEN};
use serde_json::{json, Value};

async fn list(s: &Server, query: &str) -> (u16, Value) {
    s.get(&format!("/conversations?token={TOKEN}{query}")).await
}

async fn rest_message(s: &Server, sender: &str, text: &str) -> Value {
    Value::from(s.say(sender, text).await)
}

fn ids(page: &Value) -> Vec<&str> {
    page["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["sender_id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn conversations_are_listed_newest_first_with_paused_marked() {
    let s = Server::start().await;
    let (status, page) = list(&s, "").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        page,
        json!({"conversations": [], "total": 0, "offset": 0, "limit": 50, "next_offset": null})
    );
    for id in ["a", "b", "c", "d"] {
        rest_message(&s, id, "/greet").await;
    }
    let (_, body) = s.post_events("b", &json!({"event": "pause"}), "").await;
    assert_eq!(body["paused"], true);
    let (_, page) = list(&s, "").await;
    assert_eq!(ids(&page), vec!["b", "d", "c", "a"]);
    assert_eq!(page["total"], 4);
    let b = &page["conversations"][0];
    assert_eq!(b["paused"], true);
    assert!(b["latest_event_time"].as_f64().unwrap() > 1.7e9);
    assert_eq!(page["conversations"][1]["paused"], false);
    // The tracker says the same.
    assert_eq!(s.tracker("b", "").await["paused"], true);

    let (_, page) = list(&s, "&limit=3").await;
    assert_eq!(ids(&page), vec!["b", "d", "c"]);
    assert_eq!(page["next_offset"], 3);
    let (_, page) = list(&s, "&limit=3&offset=3").await;
    assert_eq!(ids(&page), vec!["a"]);
    assert_eq!(page["next_offset"], Value::Null);
    let (_, page) = list(&s, "&offset=10").await;
    assert_eq!(ids(&page), Vec::<&str>::new());
    assert_eq!(page["total"], 4);
    // An offset past any count (schemathesis sends these) is an empty page, not an error.
    let (status, page) = list(&s, "&offset=292841043916087417349").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(ids(&page), Vec::<&str>::new());
    assert_eq!(page["next_offset"], Value::Null);
    let (_, page) = list(&s, "&paused=true").await;
    assert_eq!(ids(&page), vec!["b"]);
    assert_eq!(page["total"], 1);
    let (_, page) = list(&s, "&paused=false&limit=2").await;
    assert_eq!(ids(&page), vec!["d", "c"]);
    assert_eq!(page["total"], 3);

    // Resumed, restarted: no longer paused.
    s.post_events("b", &json!({"event": "resume"}), "").await;
    s.post_events("c", &json!({"event": "pause"}), "").await;
    s.post_events("c", &json!({"event": "restart"}), "").await;
    let (_, page) = list(&s, "&paused=true").await;
    assert_eq!(page["total"], 0, "{page}");

    for bad in [
        "&limit=0",
        "&limit=1001",
        "&limit=x",
        "&offset=-1",
        "&paused=maybe",
    ] {
        let (status, body) = list(&s, bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["reason"], "BadRequest");
    }
}

#[tokio::test]
async fn the_list_is_for_admins_only() {
    let s = Server::start().await;
    rest_message(&s, "alice", "/greet").await;
    let (status, _) = s.get("/conversations").await;
    assert_eq!(status, 401);
    let (status, _) = s.get("/conversations?token=wrong").await;
    assert_eq!(status, 401);
    let user = jwt(
        json!({"user": {"username": "alice", "role": "user"}}),
        JWT_SECRET,
    );
    let (status, _) = send(s.client.get(s.url("/conversations")).bearer_auth(&user)).await;
    assert_eq!(status, 403);
    let admin = jwt(
        json!({"user": {"username": "ops", "role": "admin"}}),
        JWT_SECRET,
    );
    let (status, page) = send(s.client.get(s.url("/conversations/")).bearer_auth(&admin)).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&page), vec!["alice"]);
    // Without --enable-api there is neither the list nor the console.
    let closed = Server::with(Options {
        no_api: true,
        ..Options::default()
    })
    .await;
    assert_eq!(
        closed.get(&format!("/conversations?token={TOKEN}")).await.0,
        404
    );
    assert_eq!(closed.get("/console/").await.0, 404);
}

#[tokio::test]
async fn the_console_page_is_served_with_a_strict_policy() {
    let s = Server::start().await;
    let resp = s.client.get(s.url("/console")).send().await.unwrap();
    // reqwest follows the redirect to /console/.
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.url().path(), "/console/");
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let html = resp.text().await.unwrap();
    assert!(html.contains("<script src=\"console.js\" defer>"));
    for (path, kind) in [
        ("/console/console.js", "text/javascript"),
        ("/console/console.css", "text/css"),
    ] {
        let resp = s.client.get(s.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with(kind));
    }
}

/// A local HTTP server that records what the callback channel posts.
async fn callback_receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let store = seen.clone();
    let app = axum::Router::new().route(
        "/bot",
        axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
            let store = store.clone();
            async move {
                store.lock().unwrap().push(v);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/bot", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

async fn answer_as_agent(s: &Server, id: &str, text: &str) -> Value {
    let (status, body) = s
        .post_events(
            id,
            &json!({"event": "bot", "text": text, "metadata": {"human_agent": "ann"}}),
            "&execute_side_effects=true&output_channel=latest",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn an_agents_answer_goes_through_the_users_channel() {
    let (url, seen) = callback_receiver().await;
    let s = Server::with(Options {
        credentials: Some(format!("rest:\ncallback:\n  url: {url}\n")),
        ..Options::default()
    })
    .await;
    // A callback user: the answer is posted to the callback URL.
    let (status, _) = send(
        s.client
            .post(s.url("/webhooks/callback/webhook"))
            .json(&json!({"sender": "cb-user", "message": "/greet"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        seen.lock().unwrap().clone(),
        vec![json!({"recipient_id": "cb-user", "text": "Hello!"})]
    );
    let tracker = answer_as_agent(&s, "cb-user", "Ann here.").await;
    assert_eq!(
        seen.lock().unwrap().last().cloned(),
        Some(json!({"recipient_id": "cb-user", "text": "Ann here."}))
    );
    let bot = tracker["events"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(bot["event"], "bot");
    assert_eq!(bot["text"], "Ann here.");
    assert_eq!(bot["metadata"]["human_agent"], "ann");

    // A REST user: the answer stays on the tracker, where the client reads it.
    rest_message(&s, "rest-user", "/greet").await;
    let before = seen.lock().unwrap().len();
    answer_as_agent(&s, "rest-user", "Ann for REST.").await;
    assert_eq!(seen.lock().unwrap().len(), before);
    let events = s.tracker("rest-user", "").await["events"].clone();
    let last = events.as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (
            last["text"].clone(),
            last["metadata"]["human_agent"].clone()
        ),
        (json!("Ann for REST."), json!("ann"))
    );
}

#[tokio::test]
async fn webhooks_stay_open_unless_credentials_ask_for_auth() {
    let (url, _seen) = callback_receiver().await;
    let s = Server::with(Options {
        credentials: Some(format!(
            "rest:\n  webhook_auth:\n    secret: hunter2\ncallback:\n  url: {url}\n  webhook_auth:\n    jwt_key: cbkey\n"
        )),
        ..Options::default()
    })
    .await;
    let post = |path: &str| {
        s.client
            .post(s.url(path))
            .json(&json!({"sender": "x", "message": "/greet"}))
    };
    // REST: the shared secret in X-Webhook-Secret.
    let (status, body) = send(post("/webhooks/rest/webhook")).await;
    assert_eq!(status, 401);
    assert_eq!(body["reason"], "NotAuthenticated");
    let (status, _) = send(post("/webhooks/rest/webhook").header("X-Webhook-Secret", "nope")).await;
    assert_eq!(status, 401);
    // The API token is not the webhook secret.
    let (status, _) = send(post(&format!("/webhooks/rest/webhook?token={TOKEN}"))).await;
    assert_eq!(status, 401);
    let (status, body) =
        send(post("/webhooks/rest/webhook").header("X-Webhook-Secret", "hunter2")).await;
    assert_eq!(
        (status, body),
        (200, json!([{"recipient_id": "x", "text": "Hello!"}]))
    );
    // Health stays open.
    assert_eq!(s.get("/webhooks/rest/").await.0, 200);
    // Callback: a JWT signed with its key.
    let (status, _) = send(post("/webhooks/callback/webhook")).await;
    assert_eq!(status, 401);
    let wrong = jwt(json!({"sub": "x"}), "other");
    let (status, _) = send(post("/webhooks/callback/webhook").bearer_auth(&wrong)).await;
    assert_eq!(status, 401);
    let good = jwt(json!({"sub": "x"}), "cbkey");
    let (status, _) = send(post("/webhooks/callback/webhook").bearer_auth(&good)).await;
    assert_eq!(status, 200);
    // Nothing refused was logged.
    let tracker = s.tracker("x", "").await;
    let users = tracker["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "user")
        .count();
    assert_eq!(users, 2);

    // Without webhook_auth, Rasa's open webhooks.
    let open = Server::start().await;
    let (status, _) = send(
        open.client
            .post(open.url("/webhooks/rest/webhook"))
            .json(&json!({"sender": "y", "message": "/greet"})),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_bad_webhook_auth_setting_stops_the_server_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let bot = dir.path().join("bot");
    std::fs::create_dir_all(&bot).unwrap();
    for entry in std::fs::read_dir(common::fixture_bot()).unwrap().flatten() {
        let to = bot.join(entry.file_name());
        if entry.path().is_dir() {
            std::fs::create_dir_all(&to).unwrap();
            for f in std::fs::read_dir(entry.path()).unwrap().flatten() {
                std::fs::copy(f.path(), to.join(f.file_name())).unwrap();
            }
        } else {
            std::fs::copy(entry.path(), to).unwrap();
        }
    }
    std::fs::write(
        bot.join("credentials.yml"),
        "rest:\n  webhook_auth:\n    secret: a\n    jwt_key: b\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_palaver"))
        .current_dir(dir.path())
        .args(["run", "bot", "--port", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("rest.webhook_auth"), "{stderr}");
}
