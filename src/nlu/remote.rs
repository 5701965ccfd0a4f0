//! External NLU: endpoints.yml `nlu: {url: ..., token: ...}` sends every text to a
//! remote NLU server instead of the built-in pipeline, as Rasa's
//! `RasaNLUHttpInterpreter` does: `POST {url}/model/parse` with the JSON
//! `{"token": ..., "text": ..., "message_id": <sender id>}`; a 200 answer's JSON is the
//! parse data. On any failure the error is logged and the message gets Rasa's empty
//! parse (`intent.name` "", no entities), so the conversation goes on.

use std::time::Duration;

use serde_json::{json, Value};

use crate::events::JsonMap;

/// A remote NLU server.
#[derive(Debug, Clone)]
pub struct RemoteNlu {
    /// `{url}/model/parse`.
    pub parse_url: String,
    /// The `token` sent in the body.
    pub token: Option<String>,
    client: reqwest::Client,
}

impl RemoteNlu {
    /// From endpoints.yml (the whole file); `None` without an `nlu:` section with a `url`.
    pub fn from_endpoints(endpoints: &Value) -> Option<RemoteNlu> {
        let nlu = endpoints.get("nlu")?;
        let url = nlu.get("url")?.as_str()?.trim();
        if url.is_empty() {
            return None;
        }
        let parse_url = if url.ends_with('/') {
            format!("{url}model/parse")
        } else {
            format!("{url}/model/parse")
        };
        let token = match nlu.get("token") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Null) | None => None,
            Some(v) => Some(v.to_string()),
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap_or_default();
        Some(RemoteNlu {
            parse_url,
            token,
            client,
        })
    }

    /// The remote parse of `text`, or Rasa's empty parse when the server fails.
    pub async fn parse(&self, text: Option<&str>, sender_id: &str) -> JsonMap {
        let body = json!({"token": self.token, "text": text, "message_id": sender_id});
        let result = async {
            let resp = self.client.post(&self.parse_url).json(&body).send().await?;
            let status = resp.status();
            let text = resp.text().await?;
            Ok::<_, reqwest::Error>((status, text))
        }
        .await;
        match result {
            Ok((status, body)) if status.is_success() => {
                match serde_json::from_str::<Value>(&body) {
                    Ok(Value::Object(m)) => return m,
                    _ => tracing::error!(
                        url = %self.parse_url,
                        "Failed to parse text using rasa NLU over http: the answer is not a JSON object"
                    ),
                }
            }
            Ok((status, body)) => tracing::error!(
                url = %self.parse_url,
                %status,
                "Failed to parse text using rasa NLU over http. Error: {body}"
            ),
            Err(e) => tracing::error!(
                url = %self.parse_url,
                "Failed to parse text using rasa NLU over http: {e}"
            ),
        }
        let mut p = JsonMap::new();
        p.insert("intent".into(), json!({"name": "", "confidence": 0.0}));
        p.insert("entities".into(), json!([]));
        p.insert("text".into(), json!(""));
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_endpoint() {
        let r =
            RemoteNlu::from_endpoints(&json!({"nlu": {"url": "http://nlu:5000/", "token": "t"}}))
                .unwrap();
        assert_eq!(r.parse_url, "http://nlu:5000/model/parse");
        assert_eq!(r.token.as_deref(), Some("t"));
        let r = RemoteNlu::from_endpoints(&json!({"nlu": {"url": "http://nlu:5000"}})).unwrap();
        assert_eq!(r.parse_url, "http://nlu:5000/model/parse");
        assert!(RemoteNlu::from_endpoints(&json!({"action_endpoint": {"url": "x"}})).is_none());
        assert!(RemoteNlu::from_endpoints(&Value::Null).is_none());
    }

    #[tokio::test]
    async fn posts_text_and_falls_back_on_errors() {
        use axum::{routing::post, Json, Router};
        let app = Router::new().route(
            "/model/parse",
            post(|Json(b): Json<Value>| async move {
                Json(
                    json!({"text": b["text"], "intent": {"name": "greet", "confidence": 0.9},
                    "entities": [], "seen": b}),
                )
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let r = RemoteNlu::from_endpoints(
            &json!({"nlu": {"url": format!("http://{addr}"), "token": "s"}}),
        )
        .unwrap();
        let p = r.parse(Some("hi"), "alice").await;
        assert_eq!(p["intent"]["name"], "greet");
        assert_eq!(
            p["seen"],
            json!({"token": "s", "text": "hi", "message_id": "alice"})
        );
        let down =
            RemoteNlu::from_endpoints(&json!({"nlu": {"url": "http://127.0.0.1:9/x"}})).unwrap();
        let p = down.parse(Some("hi"), "alice").await;
        assert_eq!(p["intent"], json!({"name": "", "confidence": 0.0}));
    }
}
