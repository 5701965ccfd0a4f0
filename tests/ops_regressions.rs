//! Bugs the schemathesis run (.ci/schemathesis.sh) found, kept fixed.

mod common;

use common::{send, Server, TOKEN};
use serde_json::json;

/// An empty message has no intent (`intent.name: null`); its stored event must read
/// back, or the conversation is lost for good ("stored data is corrupt").
#[tokio::test]
async fn a_message_without_intent_does_not_break_the_conversation() {
    let mut s = Server::start().await;
    for text in ["", "/greet"] {
        let (status, body) = send(
            s.client
                .post(s.url("/webhooks/rest/webhook"))
                .json(&json!({"sender": "quiet", "message": text})),
        )
        .await;
        assert_eq!(status, 200, "{text:?}: {body}");
    }
    // Read back from the store, not from the cache.
    s.restart().await;
    let t = s.tracker("quiet", "").await;
    assert_eq!(t["latest_message"]["intent"]["name"], "greet");
}

#[tokio::test]
async fn invalid_parse_data_is_refused_before_it_is_stored() {
    let s = Server::start().await;
    let url = s.url(&format!("/conversations/pd/messages?token={TOKEN}"));
    let (status, body) = send(
        s.client
            .post(&url)
            .json(&json!({"text": "hi", "sender": "user", "parse_data": {"intent": false}})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["details"]["parameter"], "parse_data");
    // Null parse data means "parse the text", and huge integers are integers.
    let (status, body) = send(s.client.post(&url).json(&json!({"text": "hi", "sender": "user",
        "parse_data": {"intent": {"name": "greet", "confidence": 1.0},
            "entities": [{"entity": "name", "value": "x", "start": 0, "end": 99999999999999999999u128 as f64}]}})))
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(
        s.client
            .post(&url)
            .json(&json!({"text": "hi", "sender": "user", "parse_data": null})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    s.tracker("pd", "").await;
}

#[tokio::test]
async fn put_model_refuses_bodies_it_cannot_read() {
    let s = Server::start().await;
    let url = s.url(&format!("/model?token={TOKEN}"));
    for body in [json!([null, null]), json!({"model_file": {}}), json!("bot")] {
        let (status, answer) = send(s.client.put(&url).json(&body)).await;
        assert_eq!(status, 400, "{body}: {answer}");
    }
    // Null or absent: the server's own project again.
    let (status, _) = send(s.client.put(&url).json(&json!({"model_file": null}))).await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn a_wrong_method_on_a_conversation_route_names_the_allowed_ones() {
    let s = Server::start().await;
    for (method, path, allow) in [
        ("TRACE", "/conversations/a/tracker", "GET"),
        ("DELETE", "/conversations/a/tracker/events", "POST, PUT"),
        ("GET", "/conversations/a/messages", "POST"),
    ] {
        let resp = s
            .client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                s.url(&format!("{path}?token={TOKEN}")),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 405, "{method} {path}");
        assert_eq!(resp.headers()["allow"], allow, "{method} {path}");
    }
}
