//! The authentication matrix of Rasa's API: token, JWT roles, bad JWTs.

mod common;

use common::{jwt, send, Options, Server, JWT_SECRET, TOKEN};
use serde_json::{json, Value};

async fn get_with(s: &Server, path: &str, auth: Option<&str>) -> (u16, Value) {
    let mut req = s.client.get(s.url(path));
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    send(req).await
}

#[tokio::test]
async fn token_and_jwt_matrix() {
    let s = Server::start().await;
    s.post_events(
        "alice",
        &json!({"event": "slot", "name": "name", "value": "Alice"}),
        "",
    )
    .await;
    let tracker = "/conversations/alice/tracker";
    let admin = format!(
        "Bearer {}",
        jwt(
            json!({"user": {"username": "ops", "role": "admin"}}),
            JWT_SECRET
        )
    );
    let alice = format!(
        "Bearer {}",
        jwt(
            json!({"user": {"username": "alice", "role": "user"}}),
            JWT_SECRET
        )
    );
    let bob = format!(
        "Bearer {}",
        jwt(
            json!({"user": {"username": "bob", "role": "user"}}),
            JWT_SECRET
        )
    );
    let no_role = format!(
        "Bearer {}",
        jwt(json!({"user": {"username": "alice"}}), JWT_SECRET)
    );
    let expired = format!(
        "Bearer {}",
        jwt(
            json!({"user": {"username": "ops", "role": "admin"}, "exp": 1_000_000}),
            JWT_SECRET
        )
    );
    let bad_sig = format!(
        "Bearer {}",
        jwt(
            json!({"user": {"username": "ops", "role": "admin"}}),
            "other"
        )
    );
    let hs512 = format!(
        "Bearer {}",
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
            &json!({"user": {"username": "ops", "role": "admin"}}),
            &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
        )
        .unwrap()
    );
    let cases: Vec<(String, Option<&str>, u16)> = vec![
        (tracker.to_string(), None, 401),
        (format!("{tracker}?token=wrong"), None, 401),
        (format!("{tracker}?token={TOKEN}"), None, 200),
        (tracker.to_string(), Some(&admin), 200),
        (tracker.to_string(), Some(&alice), 200),
        (tracker.to_string(), Some(&bob), 403),
        (tracker.to_string(), Some(&no_role), 403),
        (tracker.to_string(), Some(&expired), 401),
        (tracker.to_string(), Some(&bad_sig), 401),
        (tracker.to_string(), Some(&hs512), 401),
        (tracker.to_string(), Some("Bearer"), 400),
        (tracker.to_string(), Some("Token abc"), 400),
        (format!("{tracker}?token={TOKEN}"), Some("Token abc"), 200),
        ("/status".to_string(), Some(&admin), 200),
        ("/status".to_string(), Some(&alice), 403),
        ("/version".to_string(), None, 200),
        ("/".to_string(), None, 200),
    ];
    for (path, auth, expected) in cases {
        let (status, body) = get_with(&s, &path, auth).await;
        assert_eq!(status, expected, "{path} with {auth:?}: {body}");
        match status {
            401 => assert_eq!(body["reason"], "NotAuthenticated"),
            403 => {
                assert_eq!(body["reason"], "NotAuthorized");
                assert_eq!(body["help"], "https://rasa.com/docs/rasa/user-guide/configuring-http-api/#security-considerations");
            }
            400 => assert_eq!(body["exception"], "InvalidAuthorizationHeader"),
            _ => {}
        }
    }
    // Role user may write to its own conversation only.
    let post = |who: String, id: &'static str| {
        let s = &s;
        async move {
            send(
                s.client
                    .post(s.url(&format!("/conversations/{id}/tracker/events")))
                    .header("Authorization", who)
                    .json(&json!({"event": "pause"})),
            )
            .await
            .0
        }
    };
    assert_eq!(post(alice.clone(), "alice").await, 200);
    assert_eq!(post(alice, "bob").await, 403);
}

#[tokio::test]
async fn open_server_without_token_or_jwt() {
    let s = Server::with(Options {
        open: true,
        ..Default::default()
    })
    .await;
    let (status, _) = s.get("/conversations/x/tracker").await;
    assert_eq!(status, 200);
    let (status, _) = s.get("/status").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn rs256_public_key() {
    // A fixed RSA test key pair (generated for this test only).
    let private = include_str!("fixtures/jwt_rs256_private.pem");
    let public = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jwt_rs256_public.pem");
    let s = Server::with(Options {
        open: true,
        args: vec![
            "--jwt-secret".into(),
            public.display().to_string(),
            "--jwt-method".into(),
            "RS256".into(),
        ],
        ..Default::default()
    })
    .await;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &json!({"user": {"username": "x", "role": "admin"}}),
        &jsonwebtoken::EncodingKey::from_rsa_pem(private.as_bytes()).unwrap(),
    )
    .unwrap();
    let (status, _) = get_with(&s, "/status", Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, 200);
    let hs = jwt(
        json!({"user": {"username": "x", "role": "admin"}}),
        "secret",
    );
    let (status, _) = get_with(&s, "/status", Some(&format!("Bearer {hs}"))).await;
    assert_eq!(status, 401);
    let (status, _) = get_with(&s, "/status", None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn tokens_never_reach_the_logs() {
    // Run with debug logs to a file and look for the secrets in it.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.txt");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_palaver"))
        .current_dir(dir.path())
        .arg("run")
        .arg(common::fixture_bot())
        .args([
            "--enable-api",
            "--port",
            &port.to_string(),
            "--interface",
            "127.0.0.1",
        ])
        .args([
            "--auth-token",
            "tok-SECRET-1",
            "--jwt-secret",
            "jwt-SECRET-2",
        ])
        .env("RUST_LOG", "trace")
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if client.get(&base).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let bearer = jwt(
        json!({"user": {"username": "x", "role": "admin"}}),
        "jwt-SECRET-2",
    );
    let _ = client
        .get(format!("{base}/status?token=tok-SECRET-1"))
        .send()
        .await
        .unwrap();
    let _ = client
        .get(format!("{base}/status"))
        .header("Authorization", format!("Bearer {bearer}"))
        .send()
        .await
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("/status"), "request logs expected: {text}");
    assert!(!text.contains("tok-SECRET-1"));
    assert!(!text.contains(&bearer));
    assert!(!text.contains("jwt-SECRET-2"));
}
