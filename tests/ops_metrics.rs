//! Prometheus metrics and health probes of a running server: each metric family moves
//! when its thing happens, routes are labelled by template, readiness checks the stores.

mod common;
mod ops_support;

use common::{send, Options, Server, TOKEN};
use ops_support::{metric, ActionServer, Reply};
use serde_json::{json, Value};

async fn scrape(s: &Server) -> String {
    let resp = s.client.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    resp.text().await.unwrap()
}

async fn say(s: &Server, sender: &str, text: &str) -> Value {
    Value::from(s.say(sender, text).await)
}

fn pause_reply() -> Reply {
    Reply {
        status: 200,
        body: json!({"events": [{"event": "pause"}], "responses": [{"text": "A human will answer."}]}),
    }
}

#[tokio::test]
async fn every_metric_family_moves_when_its_thing_happens() {
    let mut actions = ActionServer::start(
        vec![Reply {
            status: 500,
            body: json!({"error": "boom"}),
        }],
        pause_reply(),
        true,
    )
    .await;
    let s = Server::with(Options {
        args: vec!["--metrics".into()],
        endpoints: Some(actions.endpoints()),
        ..Options::default()
    })
    .await;
    let before = scrape(&s).await;
    assert_eq!(metric(&before, "palaver_build_info", &[]), 1.0);
    assert_eq!(metric(&before, "palaver_pending_reminders", &[]), 0.0);
    assert_eq!(metric(&before, "palaver_open_conversations", &[]), 0.0);

    // A rule with a response: message, actions, stores, HTTP.
    assert_eq!(
        say(&s, "alice", "/greet").await,
        json!([{"recipient_id": "alice", "text": "Hello!"}])
    );
    let after = scrape(&s).await;
    let rest_ok = [("channel", "rest"), ("outcome", "ok")];
    assert_eq!(
        metric(&after, "palaver_messages_processed_total", &rest_ok)
            - metric(&before, "palaver_messages_processed_total", &rest_ok),
        1.0
    );
    assert_eq!(
        metric(
            &after,
            "palaver_message_processing_duration_seconds_count",
            &[("channel", "rest")]
        ),
        1.0
    );
    for (action, kind) in [
        ("action_session_start", "default"),
        ("action_listen", "default"),
        ("utter_greet", "response"),
    ] {
        let labels = [("action", action), ("kind", kind), ("outcome", "ok")];
        assert!(
            metric(&after, "palaver_actions_total", &labels) >= 1.0,
            "{action}: {after}"
        );
        assert!(
            metric(
                &after,
                "palaver_action_duration_seconds_count",
                &[("action", action)]
            ) >= 1.0
        );
    }
    for (store, op) in [
        ("tracker", "retrieve"),
        ("tracker", "append"),
        ("lock", "lock"),
    ] {
        let labels = [("store", store), ("operation", op)];
        assert!(
            metric(
                &after,
                "palaver_store_operation_duration_seconds_count",
                &labels
            ) >= 1.0,
            "{store} {op}"
        );
    }
    let webhook = [
        ("method", "POST"),
        ("route", "/webhooks/rest/webhook"),
        ("status", "200"),
    ];
    assert_eq!(metric(&after, "palaver_http_requests_total", &webhook), 1.0);
    assert_eq!(
        metric(
            &after,
            "palaver_http_request_duration_seconds_count",
            &webhook
        ),
        1.0
    );
    assert!(after.contains("palaver_http_request_duration_seconds_bucket{"));

    // A custom action: held by the action server while we look at the open gauges.
    let client = s.client.clone();
    let url = s.url("/webhooks/rest/webhook");
    let first = tokio::spawn(async move {
        send(
            client
                .post(url)
                .json(&json!({"sender": "bob", "message": "/human"})),
        )
        .await
    });
    let call = actions.received.recv().await.unwrap();
    assert_eq!(call["next_action"], "action_pause_conversation");
    let during = scrape(&s).await;
    assert_eq!(metric(&during, "palaver_open_conversations", &[]), 1.0);
    assert!(metric(&during, "palaver_http_requests_in_flight", &[]) >= 1.0);
    actions.release();
    // The first call answers 500: a failed custom action.
    let (status, body) = first.await.unwrap();
    assert_eq!((status, body), (200, json!([])));
    let client = s.client.clone();
    let url = s.url("/webhooks/rest/webhook");
    let second = tokio::spawn(async move {
        send(
            client
                .post(url)
                .json(&json!({"sender": "carol", "message": "/human"})),
        )
        .await
    });
    actions.received.recv().await.unwrap();
    actions.release();
    let (status, body) = second.await.unwrap();
    assert_eq!(
        (status, body),
        (
            200,
            json!([{"recipient_id": "carol", "text": "A human will answer."}])
        )
    );
    let end = scrape(&s).await;
    assert_eq!(metric(&end, "palaver_open_conversations", &[]), 0.0);
    let pause = ("action", "action_pause_conversation");
    assert_eq!(
        metric(
            &end,
            "palaver_actions_total",
            &[pause, ("kind", "custom"), ("outcome", "failed")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &end,
            "palaver_actions_total",
            &[pause, ("kind", "custom"), ("outcome", "ok")]
        ),
        1.0
    );
    for status in ["500", "200"] {
        assert_eq!(
            metric(
                &end,
                "palaver_action_server_request_duration_seconds_count",
                &[pause, ("status", status)]
            ),
            1.0,
            "{end}"
        );
    }
}

#[tokio::test]
async fn routes_are_labelled_by_template_never_by_conversation_id() {
    let s = Server::with(Options {
        args: vec!["--metrics".into()],
        ..Options::default()
    })
    .await;
    let id = "user-8c1f0e5a";
    s.tracker(id, "").await;
    let (status, _) = s
        .get(&format!("/conversations/{id}/story?token={TOKEN}"))
        .await;
    assert_eq!(status, 404);
    let (status, _) = s.get(&format!("/nothing/here/{id}")).await;
    assert_eq!(status, 404);
    let text = scrape(&s).await;
    assert!(!text.contains(id), "{text}");
    let tracker = [
        ("route", "/conversations/{conversation_id}/tracker"),
        ("status", "200"),
    ];
    assert_eq!(metric(&text, "palaver_http_requests_total", &tracker), 1.0);
    let story = [
        ("route", "/conversations/{conversation_id}/story"),
        ("status", "404"),
    ];
    assert_eq!(metric(&text, "palaver_http_requests_total", &story), 1.0);
    let unmatched = [("route", "unmatched"), ("status", "404")];
    assert_eq!(
        metric(&text, "palaver_http_requests_total", &unmatched),
        1.0
    );
}

#[tokio::test]
async fn metrics_are_off_by_default_and_can_have_their_own_port() {
    let s = Server::start().await;
    let (status, _) = s.get("/metrics").await;
    assert_eq!(status, 404);

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = Server::with(Options {
        args: vec!["--metrics-port".into(), port.to_string()],
        ..Options::default()
    })
    .await;
    // Not on the API port...
    let (status, _) = s.get("/metrics").await;
    assert_eq!(status, 404);
    say(&s, "dave", "/greet").await;
    // ...but on its own.
    let text = s
        .client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        metric(
            &text,
            "palaver_messages_processed_total",
            &[("outcome", "ok")]
        ),
        1.0
    );
}

#[tokio::test]
async fn liveness_and_readiness() {
    let s = Server::start().await;
    assert_eq!(s.get("/health/live").await, (200, json!({"status": "ok"})));
    let (status, body) = s.get("/health/ready").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"status": "ok", "checks": {"model": "ok", "tracker_store": "ok",
            "lock_store": "ok", "shutting_down": false}})
    );
    // Without a bot the server is alive but not ready.
    let (status, _) = send(s.client.delete(s.url(&format!("/model?token={TOKEN}")))).await;
    assert_eq!(status, 204);
    let (status, body) = s.get("/health/ready").await;
    assert_eq!(status, 503);
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["checks"]["model"], "no bot is loaded");
    assert_eq!(s.get("/health/live").await.0, 200);
}

/// Waits (up to 20 s) until `palaver_pending_reminders` reads `want`.
async fn wait_for_pending_reminders(s: &Server, want: f64) {
    for _ in 0..100 {
        if metric(&scrape(s).await, "palaver_pending_reminders", &[]) == want {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("palaver_pending_reminders never became {want}");
}

/// `palaver_pending_reminders` follows the reminder store: up when one is scheduled,
/// down when it is cancelled (the scheduler recounts every few seconds).
#[tokio::test]
async fn pending_reminders_gauge_follows_the_store() {
    let s = Server::with(Options {
        args: vec!["--metrics".into()],
        ..Options::default()
    })
    .await;
    let due = (chrono::Local::now() + chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    for name in ["first", "second"] {
        let (status, body) = s
            .post_events(
                "alice",
                &json!({"event": "reminder", "intent": "greet", "name": name,
                        "date_time": due, "kill_on_user_msg": false}),
                "&execute_side_effects=true&include_events=NONE",
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    wait_for_pending_reminders(&s, 2.0).await;
    let (status, body) = s
        .post_events(
            "alice",
            &json!({"event": "cancel_reminder", "name": "first"}),
            "&execute_side_effects=true&include_events=NONE",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    wait_for_pending_reminders(&s, 1.0).await;
}
