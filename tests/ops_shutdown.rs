//! Graceful shutdown: on SIGTERM the server stops accepting connections, lets the
//! request in progress finish and store its events, and exits 0; a request that outlives
//! `--shutdown-timeout` is cut off and the process still exits.

mod common;
mod ops_support;

use std::time::Duration;

use common::{send, summary, Options, Server};
use ops_support::{signal, ActionServer, Reply};
use serde_json::json;

fn pause_reply() -> Reply {
    Reply {
        status: 200,
        body: json!({"events": [{"event": "pause"}], "responses": [{"text": "A human will answer."}]}),
    }
}

/// Polls until a new TCP connection to `port` is refused (the listener closed).
async fn refused(port: u16) -> bool {
    for _ in 0..500 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn sigterm_finishes_the_request_in_progress_and_refuses_new_ones() {
    let mut actions = ActionServer::start(Vec::new(), pause_reply(), true).await;
    let mut s = Server::with(Options {
        endpoints: Some(actions.endpoints()),
        ..Options::default()
    })
    .await;
    let client = s.client.clone();
    let url = s.url("/webhooks/rest/webhook");
    let in_flight = tokio::spawn(async move {
        send(
            client
                .post(url)
                .json(&json!({"sender": "erin", "message": "/human"})),
        )
        .await
    });
    // The message is in the custom action, waiting for the action server.
    let call = actions.received.recv().await.unwrap();
    assert_eq!(call["sender_id"], "erin");
    signal(s.pid(), "TERM");
    assert!(refused(s.port).await, "new connections are still accepted");
    assert!(!in_flight.is_finished());
    // Let the action answer: the request completes with the action's message.
    actions.release();
    let (status, body) = in_flight.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!([{"recipient_id": "erin", "text": "A human will answer."}])
    );
    let exit = s.wait_exit(Duration::from_secs(20)).await;
    assert_eq!(exit.map(|e| e.code()), Some(Some(0)), "{exit:?}");
    // Its events were stored before the process exited.
    s.restart().await;
    let t = s.tracker("erin", "").await;
    let events = summary(&t);
    assert!(
        events.ends_with(&[
            "user:/human".to_string(),
            "user_featurization".to_string(),
            "action:action_pause_conversation".to_string(),
            "bot:A human will answer.".to_string(),
            "pause".to_string(),
        ]),
        "{events:?}"
    );
    assert_eq!(t["paused"], true);
}

#[tokio::test]
async fn a_request_that_outlives_the_deadline_is_cut_off() {
    // The action server never answers (it is held and never released).
    let mut actions = ActionServer::start(Vec::new(), pause_reply(), true).await;
    let mut s = Server::with(Options {
        endpoints: Some(actions.endpoints()),
        args: vec!["--shutdown-timeout".into(), "0.5".into()],
        ..Options::default()
    })
    .await;
    let client = s.client.clone();
    let url = s.url("/webhooks/rest/webhook");
    let in_flight = tokio::spawn(async move {
        client
            .post(url)
            .json(&json!({"sender": "frank", "message": "/human"}))
            .send()
            .await
    });
    actions.received.recv().await.unwrap();
    signal(s.pid(), "TERM");
    let exit = s.wait_exit(Duration::from_secs(20)).await;
    assert_eq!(exit.map(|e| e.code()), Some(Some(0)), "{exit:?}");
    // The client saw its connection closed without an answer.
    assert!(in_flight.await.unwrap().is_err());
    // Nothing of the cut-off message was stored: it is as if it never came.
    s.restart().await;
    let t = s.tracker("frank", "").await;
    assert!(!summary(&t).contains(&"user:/human".to_string()));
}

#[tokio::test]
async fn ctrl_c_shuts_down_too() {
    let mut s = Server::start().await;
    signal(s.pid(), "INT");
    let exit = s.wait_exit(Duration::from_secs(20)).await;
    assert_eq!(exit.map(|e| e.code()), Some(Some(0)), "{exit:?}");
}
